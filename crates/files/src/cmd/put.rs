//! `put {filename|path, size|filesize, offset?, blake3?, overwrite?, trailer?, mode?, mtime?,
//! mtime_nsec?}` + body → `{stored:{path,size,blake3}}`.
//!
//! The body streams into the path's staging file (hashed as it arrives, never buffered
//! whole), is checked against the client's hash when one is given, gets the request's
//! `mode` (its `rwx` bits) and `mtime`, is fsynced (data and metadata at once), and only
//! then moved into place, so the file appears under its name complete and with them. A
//! hash can come in the header (`blake3`, when the client knew it up front) or, with
//! `trailer: true`, in a `{cmd:"commit", blake3}` frame right after the body (so the client
//! can hash while it sends instead of reading its file twice). A transfer
//! cut short keeps its staging file: `put` with `offset` = the staged size resumes it.
//! Refusals (`exists`, `busy`, `too_large`, `denied`, disk full) are sent as soon as they
//! are known, before the body is consumed.
//!
//! A write that fails for lack of space (ENOSPC, EDQUOT) removes the staging file before
//! the path is freed (unless `--keep-partial`), so a full disk does not stay full: the
//! client gets `too_large` saying so, and the next put succeeds once space exists.

use std::sync::Arc;

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::header::{ErrorReply, Message};
use sockit_wire::{ErrorCode, FrameError, Header, Incoming};

use crate::cmd::{rel_path, reply_now, request_encoding};
use crate::compress::blocks::{skip_blocks, BlocksError, BodyReader};
use crate::disk::DiskSink;
use crate::error::FilesError;
use crate::messages::{Commit, PutReply, PutRequest, PutTrailer, Stored};
use crate::meta::{self, Mtime};
use crate::path::RelPath;
use crate::root::{blocking, FilesRoot};

/// The `put` command.
#[derive(Debug)]
pub struct Put {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

/// The checked request.
struct Upload {
    path: RelPath,
    offset: u64,
    len: u64,
    blake3: Option<blake3::Hash>,
    overwrite: bool,
    trailer: bool,
    mode: Option<u32>,
    mtime: Option<Mtime>,
}

fn check(req: PutRequest, len: u64) -> Result<Upload, FilesError> {
    let path = rel_path(&req.path)?;
    if path.is_root() {
        return Err(FilesError::BadRequest(
            "put needs a file name, not the root".into(),
        ));
    }
    let blake3 = match req.blake3 {
        None => None,
        Some(hex) => Some(
            blake3::Hash::from_hex(hex)
                .map_err(|_| FilesError::BadRequest("`blake3` must be 64 hex digits".into()))?,
        ),
    };
    let mode = req
        .mode
        .map(meta::check_mode)
        .transpose()
        .map_err(FilesError::BadRequest)?;
    let mtime = match (req.mtime, req.mtime_nsec) {
        (None, None) => None,
        (secs, nsec) => {
            Some(Mtime::new(secs.unwrap_or(0), nsec.unwrap_or(0)).map_err(FilesError::BadRequest)?)
        }
    };
    Ok(Upload {
        path,
        offset: req.offset,
        len,
        blake3,
        overwrite: req.overwrite,
        trailer: req.trailer,
        mode,
        mtime,
    })
}

/// Checks the target before any byte is written and opens the staging file.
fn prepare(root: &FilesRoot, req: &Upload) -> Result<std::fs::File, FilesError> {
    check_target(root, &req.path, req.overwrite)?;
    root.open_staging(&req.path, req.offset)
}

/// Checks that `path` may receive an upload: not a directory, absent unless `overwrite`,
/// its parent an existing directory.
///
/// # Errors
/// `bad_request`, `exists` or `not_found`, naming the client's path.
pub(crate) fn check_target(
    root: &FilesRoot,
    path: &RelPath,
    overwrite: bool,
) -> Result<(), FilesError> {
    check_name(root, path, overwrite)?;
    check_parent(root, path)
}

/// The first half of [`check_target`]: `path` itself is not a directory, and is absent
/// unless `overwrite`.
///
/// # Errors
/// `bad_request` or `exists`.
pub(crate) fn check_name(
    root: &FilesRoot,
    path: &RelPath,
    overwrite: bool,
) -> Result<(), FilesError> {
    match root.dir().metadata(path.to_path()) {
        Ok(m) if m.is_dir() => {
            return Err(FilesError::BadRequest(format!(
                "{path} is a directory; put the file inside it"
            )))
        }
        Ok(_) if !overwrite => return Err(FilesError::Exists(path.clone())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(FilesError::io(path, e)),
    }
    Ok(())
}

/// The second half of [`check_target`]: the parent of `path` is an existing directory.
///
/// # Errors
/// `bad_request` or `not_found`.
pub(crate) fn check_parent(root: &FilesRoot, path: &RelPath) -> Result<(), FilesError> {
    if let Some(parent) = path.parent().filter(|p| !p.is_root()) {
        match root.dir().metadata(parent.to_path()) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(FilesError::BadRequest(format!(
                    "{parent} is not a directory"
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(FilesError::io(
                    path,
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        format!("directory {parent} does not exist; create it with mkdir -p"),
                    ),
                ))
            }
            Err(e) => return Err(FilesError::io(&parent, e)),
        }
    }
    Ok(())
}

/// A complete staging file, verified, waiting for its metadata and its name.
pub(crate) struct Staged {
    /// The staging file.
    pub file: std::fs::File,
    /// Its BLAKE3 (recorded in the hash cache once it has its name).
    pub hash: blake3::Hash,
    /// Permission bits to give it.
    pub mode: Option<u32>,
    /// Modification time to give it.
    pub mtime: Option<Mtime>,
}

/// Commits a verified staging file of `path`: its mode and time, then one fsync (data and
/// metadata at once, so the file never appears under its name without them), then the
/// move into place ([`FilesRoot::promote`]: a rename with `overwrite`, else a hard link
/// that never replaces) and the hash cache entry. Call it while the path is claimed.
///
/// # Errors
/// A failed fsync or promotion; out of space is [`FilesError::NoSpace`] (the staging file
/// removed, or kept with `--keep-partial`), anything else leaves the staging file.
pub(crate) async fn commit_staged(
    root: &Arc<FilesRoot>,
    path: &RelPath,
    staged: Staged,
    overwrite: bool,
) -> Result<(), FilesError> {
    let Staged {
        file,
        hash,
        mode,
        mtime,
    } = staged;
    let sealed = tokio::task::spawn_blocking(move || {
        meta::apply_to_file(&file, mode, mtime)?;
        file.sync_all()
    })
    .await
    .unwrap_or_else(|e| Err(std::io::Error::other(format!("disk thread failed: {e}"))));
    if let Err(e) = sealed {
        return Err(write_failed(root, path, e).await);
    }
    let p = path.clone();
    let promoted = blocking(root, move |root| {
        root.promote(&p, overwrite)?;
        if let Ok(meta) = root.dir().metadata(p.to_path()) {
            root.hashes().insert(FilesRoot::file_key(&p, &meta), hash);
        }
        Ok(())
    })
    .await;
    match promoted {
        Err(FilesError::Io { source, .. }) if FilesError::is_no_space(&source) => {
            Err(write_failed(root, path, source).await)
        }
        other => other,
    }
}

/// The refusal for a failed write to the staging file of `path`. Out of space removes the
/// partial upload (or keeps it with `--keep-partial`); call it while the path is still
/// claimed, so another upload of it cannot lose its staging file.
pub(crate) async fn write_failed(
    root: &Arc<FilesRoot>,
    path: &RelPath,
    e: std::io::Error,
) -> FilesError {
    if !FilesError::is_no_space(&e) {
        return FilesError::io(path, e);
    }
    let quota = e.raw_os_error() == Some(libc::EDQUOT);
    let p = path.clone();
    let kept = blocking(root, move |root| Ok(root.after_no_space(&p)))
        .await
        .unwrap_or(None);
    FilesError::NoSpace {
        path: path.clone(),
        quota,
        kept,
    }
}

/// The next chunk of an upload's body; while none is ready yet, what the sink has gathered
/// goes to disk first, so the staged file holds everything that arrived whenever the
/// client pauses (what `stat` reports as `partial`, and what a resume continues from).
async fn next_or_hand_over(
    body: &mut BodyReader,
    conn: &mut ServerConnection,
    clock: &sockit_runtime::guarded::RequestClock,
    sink: &mut DiskSink,
) -> Result<Option<bytes::Bytes>, BlocksError> {
    let next = body.next(conn, Some(clock));
    tokio::pin!(next);
    if let std::task::Poll::Ready(r) = futures::poll!(&mut next) {
        return r;
    }
    // A stopped writer reports its error when the next chunk is written.
    let _ = sink.hand_over().await;
    next.await
}

/// Reads the `commit` frame that follows the body of a `trailer: true` upload.
async fn read_commit(conn: &mut ServerConnection) -> Result<Option<blake3::Hash>, FilesError> {
    match conn.read_header().await {
        Ok(Some(Incoming::Header(h))) if h.cmd() == Commit::CMD => h
            .decode::<Commit>()
            .ok()
            .and_then(|c| blake3::Hash::from_hex(c.blake3).ok())
            .map(Some)
            .ok_or_else(|| FilesError::BadRequest("`commit` needs `blake3`: 64 hex digits".into())),
        Ok(Some(_)) => Err(FilesError::BadRequest(
            "expected {\"cmd\":\"commit\",\"blake3\":...} after the body of a trailer upload"
                .into(),
        )),
        Ok(None) | Err(_) => Ok(None),
    }
}

/// Refuses an upload at once. For a `trailer` upload the rest of the body and its `commit`
/// frame are then consumed here, so the connection stays in step for the next request (a
/// client that stops sending instead must close the connection).
async fn refuse(
    conn: &mut ServerConnection,
    err: FilesError,
    expect_commit: bool,
) -> Result<(), CommandError> {
    reply_now(conn, err).await?;
    if expect_commit {
        conn.discard_body().await?;
        // The blocks of a compressed upload come before its commit.
        match skip_blocks(conn).await? {
            Some(Incoming::Header(h)) if h.cmd() == Commit::CMD => {}
            None => {}
            Some(_) => {
                conn.send(
                    &ErrorReply::new(
                        ErrorCode::BadRequest,
                        "expected the `commit` frame of the refused upload",
                    )
                    .to_header(),
                )
                .await?
            }
        }
    }
    Ok(())
}

#[async_trait]
impl Command for Put {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        let trailer = req.parse::<PutTrailer>().is_ok_and(|t| t.trailer);
        let req = match req.decode::<PutRequest>() {
            Ok(r) => r,
            Err(e) => {
                return refuse(conn, FilesError::BadRequest(e.to_string()), trailer).await;
            }
        };
        let encoded = match request_encoding(
            &self.root,
            req.encoding.as_deref(),
            req.raw_size,
            conn.body_remaining(),
        ) {
            Ok(e) => e,
            Err(e) => return refuse(conn, e, trailer).await,
        };
        let req = match check(req, encoded.unwrap_or(conn.body_remaining())) {
            Ok(r) => r,
            Err(e) => return refuse(conn, e, trailer).await,
        };
        let total = req.offset.saturating_add(req.len);
        let limit = self.root.config().max_upload;
        if total > limit {
            return refuse(conn, FilesError::TooLarge { size: total, limit }, trailer).await;
        }
        let guard = match self.root.claim_upload(&req.path) {
            Ok(g) => g,
            Err(e) => return refuse(conn, e, trailer).await,
        };
        let req = Arc::new(req);
        let r = req.clone();
        let file = match blocking(&self.root, move |root| prepare(root, &r)).await {
            Ok(f) => f,
            Err(e) => {
                // Free the path before skipping the rest of the body.
                drop(guard);
                return refuse(conn, e, trailer).await;
            }
        };
        let path = req.path.clone();
        let started = std::time::Instant::now();
        let mut sink = DiskSink::spawn(file, req.offset);
        let mut body = BodyReader::new(encoded);
        loop {
            match next_or_hand_over(&mut body, conn, &session.clock, &mut sink).await {
                Ok(Some(chunk)) => {
                    if sink.write(chunk).await.is_err() {
                        let e = match sink.finish(false).await {
                            Err(e) => e,
                            Ok(_) => std::io::Error::other("disk writer stopped"),
                        };
                        let e = write_failed(&self.root, &path, e).await;
                        drop(guard);
                        return refuse(conn, e, trailer).await;
                    }
                }
                Ok(None) => break,
                Err(BlocksError::Bad(e)) => {
                    // A malformed block: the stream cannot be trusted; what arrived before
                    // it stays staged for a resume.
                    let _ = sink.finish(false).await;
                    drop(guard);
                    let e = FilesError::BadRequest(format!("{path}: {e}"));
                    reply_now(conn, e).await?;
                    return Err(FrameError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "malformed block in an upload",
                    ))
                    .into());
                }
                Err(BlocksError::Frame(e)) => {
                    // The client went away mid-body: keep what arrived so `offset` resumes it.
                    let kept = match sink.finish(false).await {
                        Ok(d) => d.written,
                        Err(w) => {
                            write_failed(&self.root, &path, w).await;
                            0
                        }
                    };
                    tracing::info!(peer = %session.peer, %path, received = kept, error = %e, "upload interrupted; staged for resume");
                    return Err(e.into());
                }
            }
        }
        // The fsync comes once the upload is verified, after its mode and time are set
        // (one fsync covers the data and the metadata).
        let done = match sink.finish(false).await {
            Ok(d) => d,
            Err(e) => {
                let e = write_failed(&self.root, &path, e).await;
                drop(guard);
                return refuse(conn, e, trailer).await;
            }
        };
        let file = done.file;
        let hash = done.hasher.finalize();
        let mut expected = req.blake3;
        if req.trailer {
            match read_commit(conn).await {
                Ok(Some(h)) => expected = Some(h),
                Ok(None) => {
                    tracing::info!(peer = %session.peer, %path, "client left before commit; staged for resume");
                    return Ok(());
                }
                Err(e) => return reply_now(conn, e).await,
            }
        }
        if let Some(exp) = expected {
            if exp != hash {
                self.root.discard_staging(&path);
                let e = FilesError::HashMismatch {
                    path: path.clone(),
                    expected: exp.to_hex().to_string(),
                    actual: hash.to_hex().to_string(),
                };
                return reply_now(conn, e).await;
            }
        }
        let staged = Staged {
            file,
            hash,
            mode: req.mode,
            mtime: req.mtime,
        };
        if let Err(e) = commit_staged(&self.root, &path, staged, req.overwrite).await {
            drop(guard);
            return reply_now(conn, e).await;
        }
        drop(guard);
        tracing::info!(peer = %session.peer, %path, bytes = total, received = done.written, wire = body.wire(), offset = req.offset, secs = started.elapsed().as_secs_f64(), "put done");
        let reply = PutReply {
            stored: Stored {
                path: path.as_string(),
                size: total,
                blake3: hash.to_hex().to_string(),
            },
        };
        conn.send(&Header::reply(&reply)?).await?;
        Ok(())
    }
}
