//! The server side of `sockit sync`'s delta transfer (see `docs/files.md` "sync"):
//!
//! - `sync_sig {path}` → `{total, blake3, chunks, data_size}` + the file's chunk list
//!   (content-defined chunks with BLAKE3 hashes), so a client can send only what changed;
//! - `sync_pull {path}` + the client's chunk list of its copy → `{total, blake3, mtime,
//!   mtime_nsec, mode, data_size}` + a delta that turns the client's copy into the file;
//! - `sync_patch {path, base?, total, blake3, mode?, mtime?, mtime_nsec?}` + a delta
//!   against `base` → the result is built in the staging area, checked (size and BLAKE3),
//!   given its mode and time, fsynced and renamed over `path`, as `put` does; answered like
//!   `put`.
//!
//! `sync_patch` is an upload: it goes through `put`'s steps (the path confined and
//! claimed, `--max-upload`, [`check_target`], the staging area outside the served tree,
//! [`commit_staged`]: metadata, one fsync, rename, hash cache; running out of space as
//! [`write_failed`] says), and its refusals are sent at once, before the body is read.
//!
//! Listing a tree uses `ls`, directories `mkdir`/`setattr`, symlinks `symlink`, removals `rm`.

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::{ErrorCode, FrameError, Header};

use crate::cmd::get::open_regular;
use crate::cmd::put::{check_target, commit_staged, write_failed, Staged};
use crate::cmd::{rel_path, reply_compressed, reply_now, request_encoding};
use crate::compress::blocks::{BlocksError, BodyReader, BodyWriter};
use crate::error::FilesError;
use crate::messages::{
    PutReply, Stored, SyncPatchRequest, SyncPullReply, SyncPullRequest, SyncSigReply,
    SyncSigRequest, ZSTD,
};
use crate::meta::{self, Mtime};
use crate::path::RelPath;
use crate::root::{blocking, mode_of, mtime_of, FilesRoot};
use crate::sync::chunks::{self, ChunkParams, RECORD_LEN};
use crate::sync::delta;
use crate::sync::stream::{ApplyTask, DeltaSource};

/// The `sync_sig` command.
#[derive(Debug)]
pub struct SyncSig {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for SyncSig {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let req: SyncSigRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        let p = path.clone();
        let sig = blocking(&self.root, move |root| {
            let (file, meta) = open_regular(root, &p)?;
            let params = ChunkParams::for_size(meta.len());
            let key = FilesRoot::file_key(&p, &meta);
            let known = root.hashes().get(&key);
            let sig = chunks::signature_at(&file, meta.len(), params, known)
                .map_err(|e| FilesError::io(&p, e))?;
            root.hashes().insert(key, sig.blake3);
            Ok((sig, params))
        })
        .await?;
        let (sig, params) = sig;
        let body = chunks::encode(&sig.chunks);
        let max = self.root.config().sync_max_chunk_list;
        if body.len() as u64 > max {
            // The client sends such a file whole instead.
            return Err(CommandError::reply(
                ErrorCode::TooLarge,
                format!("the chunk list of {path} is over this server's {max} bytes"),
            ));
        }
        let reply = SyncSigReply {
            path: path.as_string(),
            total: sig.total,
            blake3: sig.blake3.to_hex().to_string(),
            chunks: sig.chunks.len() as u64,
            data_size: body.len() as u64,
            chunk_avg: params.avg(),
        };
        conn.send_with_body(&Header::reply(&reply)?, Bytes::from(body))
            .await?;
        Ok(())
    }
}

/// The `sync_pull` command.
#[derive(Debug)]
pub struct SyncPull {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for SyncPull {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        let req: SyncPullRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        let len = conn.body_remaining();
        let max = self.root.config().sync_max_chunk_list;
        if len > max || !len.is_multiple_of(RECORD_LEN as u64) {
            return Err(FilesError::BadRequest(format!(
                "a chunk list is {RECORD_LEN}-byte records, at most {max} bytes on this server; got {len}"
            ))
            .into());
        }
        let params = ChunkParams::from_avg(req.chunk_avg).map_err(FilesError::BadRequest)?;
        let compress = reply_compressed(&self.root, &req.compress);
        let body = conn.read_body_to_vec(max).await?;
        let base = chunks::decode(&body, params).map_err(FilesError::BadRequest)?;
        let p = path.clone();
        let (file, plan, mtime, mode) = blocking(&self.root, move |root| {
            let (file, meta) = open_regular(root, &p)?;
            let key = FilesRoot::file_key(&p, &meta);
            let known = root.hashes().get(&key);
            let plan = delta::plan_at(&file, meta.len(), &base, params, known)
                .map_err(|e| FilesError::io(&p, e))?;
            root.hashes().insert(key, plan.blake3);
            Ok((file, plan, mtime_of(&meta), mode_of(&meta)))
        })
        .await?;
        let size = plan.encoded_len();
        let compress = compress && size > 0;
        let reply = SyncPullReply {
            path: path.as_string(),
            total: plan.total,
            blake3: plan.blake3.to_hex().to_string(),
            mtime: mtime.secs,
            mtime_nsec: mtime.nsec,
            mode: Some(mode),
            data_size: if compress { 0 } else { size },
            encoding: compress.then(|| ZSTD.to_owned()),
            raw_size: compress.then_some(size),
        };
        conn.send(&Header::reply(&reply)?).await?;
        let mut source = DeltaSource::spawn(file, plan);
        let mut body = BodyWriter::new(compress);
        loop {
            match source.next().await {
                Ok(Some((piece, _))) => body.write(conn, piece).await?,
                Ok(None) => break,
                Err(e) => {
                    // The header promised bytes we cannot deliver: close the connection.
                    tracing::warn!(peer = %session.peer, %path, error = %e, "sync_pull aborted");
                    return Err(FrameError::Io(e).into());
                }
            }
        }
        let wire = body.finish(conn).await?;
        source.finish().await;
        tracing::info!(peer = %session.peer, %path, delta = size, wire, "sync_pull done");
        Ok(())
    }
}

/// The `sync_patch` command.
#[derive(Debug)]
pub struct SyncPatch {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

/// The checked request.
struct Patch {
    path: RelPath,
    base: Option<RelPath>,
    total: u64,
    blake3: blake3::Hash,
    mode: Option<u32>,
    mtime: Option<Mtime>,
}

fn check(req: SyncPatchRequest) -> Result<Patch, FilesError> {
    let path = rel_path(&req.path)?;
    if path.is_root() {
        return Err(FilesError::BadRequest(
            "sync_patch needs a file name, not the root".into(),
        ));
    }
    let base = req.base.as_deref().map(rel_path).transpose()?;
    let blake3 = blake3::Hash::from_hex(&req.blake3)
        .map_err(|_| FilesError::BadRequest("`blake3` must be 64 hex digits".into()))?;
    let mode = req
        .mode
        .map(meta::check_mode)
        .transpose()
        .map_err(FilesError::BadRequest)?;
    let mtime = match (req.mtime, req.mtime_nsec) {
        (None, None) => None,
        (s, n) => Some(Mtime::new(s.unwrap_or(0), n.unwrap_or(0)).map_err(FilesError::BadRequest)?),
    };
    Ok(Patch {
        path,
        base,
        total: req.total,
        blake3,
        mode,
        mtime,
    })
}

/// Checks the target as `put --overwrite` does (not a directory, its parent a directory),
/// opens the base and a fresh staging file.
fn prepare(
    root: &FilesRoot,
    req: &Patch,
) -> Result<(Option<std::fs::File>, u64, std::fs::File), FilesError> {
    check_target(root, &req.path, true)?;
    let (base, base_len) = match &req.base {
        None => (None, 0),
        Some(b) => {
            let (f, m) = open_regular(root, b)?;
            (Some(f), m.len())
        }
    };
    let staging = root.open_staging(&req.path, 0)?;
    staging
        .set_len(0)
        .map_err(|e| FilesError::io(&req.path, e))?;
    Ok((base, base_len, staging))
}

/// The refusal for a delta that could not be applied: a malformed delta is the client's
/// fault (`bad_request`); out of space is handled as for `put`; the staging file goes
/// (unless `--keep-partial` kept it after running out of space).
async fn apply_failed(root: &Arc<FilesRoot>, path: &RelPath, e: std::io::Error) -> FilesError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        root.discard_staging(path);
        return FilesError::BadRequest(format!("{path}: {e}"));
    }
    if !FilesError::is_no_space(&e) {
        root.discard_staging(path);
    }
    write_failed(root, path, e).await
}

#[async_trait]
impl Command for SyncPatch {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        // Refusals go out at once, as `put`'s do; the rest of the body is skipped.
        let req = match req.decode::<SyncPatchRequest>() {
            Ok(r) => r,
            Err(e) => return reply_now(conn, FilesError::BadRequest(e.to_string())).await,
        };
        let encoded = match request_encoding(
            &self.root,
            req.encoding.as_deref(),
            req.raw_size,
            conn.body_remaining(),
        ) {
            Ok(e) => e,
            Err(e) => return reply_now(conn, e).await,
        };
        let req = match check(req) {
            Ok(r) => r,
            Err(e) => return reply_now(conn, e).await,
        };
        let limit = self.root.config().max_upload;
        if req.total > limit {
            let e = FilesError::TooLarge {
                size: req.total,
                limit,
            };
            return reply_now(conn, e).await;
        }
        let guard = match self.root.claim_upload(&req.path) {
            Ok(g) => g,
            Err(e) => return reply_now(conn, e).await,
        };
        let req = Arc::new(req);
        let r = req.clone();
        let (base, base_len, staging) =
            match blocking(&self.root, move |root| prepare(root, &r)).await {
                Ok(p) => p,
                Err(e) => {
                    drop(guard);
                    return reply_now(conn, e).await;
                }
            };
        let path = req.path.clone();
        let delta_len = encoded.unwrap_or(conn.body_remaining());
        let mut task = ApplyTask::spawn(base, base_len, staging, req.total);
        let mut body = BodyReader::new(encoded);
        loop {
            match body.next(conn, Some(&session.clock)).await {
                Ok(Some(chunk)) => {
                    // A stopped applier reports its error from `finish`.
                    if !task.feed(chunk).await {
                        break;
                    }
                }
                Ok(None) => break,
                Err(BlocksError::Bad(e)) => {
                    let _ = task.finish().await;
                    self.root.discard_staging(&path);
                    drop(guard);
                    reply_now(conn, FilesError::BadRequest(format!("{path}: {e}"))).await?;
                    return Err(FrameError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "malformed block in a sync_patch",
                    ))
                    .into());
                }
                Err(BlocksError::Frame(e)) => {
                    let _ = task.finish().await;
                    self.root.discard_staging(&path);
                    tracing::info!(peer = %session.peer, %path, error = %e, "sync_patch interrupted");
                    return Err(e.into());
                }
            }
        }
        let (file, hash, written) = match task.finish().await {
            Ok(a) => a,
            Err(e) => {
                let e = apply_failed(&self.root, &path, e).await;
                drop(guard);
                return reply_now(conn, e).await;
            }
        };
        if written != req.total || hash != req.blake3 {
            self.root.discard_staging(&path);
            drop(guard);
            let e = FilesError::HashMismatch {
                path: path.clone(),
                expected: req.blake3.to_hex().to_string(),
                actual: format!("{} ({written} bytes)", hash.to_hex()),
            };
            return reply_now(conn, e).await;
        }
        let staged = Staged {
            file,
            hash,
            mode: req.mode,
            mtime: req.mtime,
        };
        if let Err(e) = commit_staged(&self.root, &path, staged, true).await {
            if !matches!(e, FilesError::NoSpace { kept: Some(_), .. }) {
                self.root.discard_staging(&path);
            }
            drop(guard);
            return reply_now(conn, e).await;
        }
        drop(guard);
        tracing::info!(peer = %session.peer, %path, bytes = written, delta = delta_len, wire = body.wire(), "sync_patch done");
        let reply = PutReply {
            stored: Stored {
                path: path.as_string(),
                size: written,
                blake3: hash.to_hex().to_string(),
            },
        };
        conn.send(&Header::reply(&reply)?).await?;
        Ok(())
    }
}

/// Adds `sync_sig`, `sync_pull` and `sync_patch` over `root` to `table`.
pub fn register(table: &mut sockit_wire::framed::CommandTable, root: Arc<FilesRoot>) {
    table.register("sync_sig", Arc::new(SyncSig { root: root.clone() }));
    table.register("sync_pull", Arc::new(SyncPull { root: root.clone() }));
    table.register("sync_patch", Arc::new(SyncPatch { root }));
}
