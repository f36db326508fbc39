//! Running a sync: list both trees, plan, then carry out each action on the destination
//! side: deltas up (`sync_sig` then `sync_patch`) or down (`sync_pull`), directories,
//! symlinks, removals and attributes with the ordinary commands or local calls.
//!
//! A pulled file is built in `.NAME.sockit-sync` beside its destination, checked (size and
//! BLAKE3), given its mode and time, fsynced and renamed into place, so a file never
//! appears half-written under its name. The first failing action stops the sync.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;
use sockit_wire::{ClientError, ErrorCode, Header};
use tokio::io::AsyncWriteExt;

use super::chunks::{self, Chunk};
use super::delta;
use super::exclude::Excludes;
use super::plan::{plan, Action, Node, PlanOptions, Tree};
use super::stream::{ApplyTask, DeltaSource};
use super::walk::local_tree;
use super::{Side, SyncError};
use crate::client::{remote_join, FilesClient, FilesClientError, Progress};
use crate::cmd::sync::MAX_SIG_BYTES;
use crate::messages::{
    PutReply, SyncPatchRequest, SyncPullReply, SyncPullRequest, SyncSigReply, SyncSigRequest,
};
use crate::meta::{self, Mtime, REPORTED_MODE_BITS};

/// How to sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncOptions {
    /// Compare files by BLAKE3 of their content instead of size and time.
    pub checksum: bool,
    /// Remove destination entries the source does not have.
    pub delete: bool,
    /// Only report what would change.
    pub dry_run: bool,
    /// Glob patterns of paths to leave alone on both sides.
    pub exclude: Vec<String>,
}

/// What a sync did (or, with `dry_run`, would do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SyncReport {
    /// Regular files in the source.
    pub files: u64,
    /// Files created on the destination.
    pub new: u64,
    /// Files whose content was updated.
    pub changed: u64,
    /// Files already the same.
    pub same: u64,
    /// Destination entries removed because the source lacks them (`--delete`).
    pub deleted: u64,
    /// Directories created.
    pub dirs: u64,
    /// Symlinks created or replaced.
    pub symlinks: u64,
    /// Bytes of the files sent (what the deltas represent).
    pub bytes_total: u64,
    /// Bytes that crossed the network for them: deltas and chunk lists.
    pub bytes_sent: u64,
    /// Of `bytes_sent`, the deltas.
    pub delta_bytes: u64,
    /// Of `bytes_sent`, the chunk lists.
    pub signature_bytes: u64,
    /// The changes, one line each (`new a`, `update b`, `delete c`, ...).
    pub changes: Vec<String>,
    /// Entries not synced, with why.
    pub skipped: Vec<String>,
    /// Whether nothing was changed (`--dry-run`).
    pub dry_run: bool,
}

/// A path of the tree on its side.
fn local_at(top: &Path, rel: &str) -> PathBuf {
    if rel.is_empty() {
        top.to_owned()
    } else {
        top.join(rel)
    }
}

fn remote_at(top: &str, rel: &str) -> String {
    if rel.is_empty() {
        top.to_owned()
    } else {
        remote_join(top, rel)
    }
}

fn local_err(path: &Path) -> impl FnOnce(std::io::Error) -> FilesClientError + '_ {
    move |e| FilesClientError::local(path, e)
}

async fn on_thread<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, FilesClientError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("disk thread failed: {e}"))))
        .map_err(local_err(path))
}

fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut h)?;
    Ok(*h.finalize().as_bytes())
}

/// Files on both sides with the same size: the ones `--checksum` must hash.
fn to_hash(src: &Tree, dst: &Tree) -> Vec<String> {
    src.entries
        .iter()
        .filter(|(p, s)| match (s, dst.entries.get(*p)) {
            (Node::File { size: a, .. }, Some(Node::File { size: b, .. })) => a == b,
            _ => false,
        })
        .map(|(p, _)| p.clone())
        .collect()
}

fn set_hash(tree: &mut Tree, path: &str, h: [u8; 32]) {
    if let Some(Node::File { blake3, .. }) = tree.entries.get_mut(path) {
        *blake3 = Some(h);
    }
}

/// Replaces (or creates) the local symlink `path`: made beside it, then renamed over it.
fn make_local_link(path: &Path, target: &str, mtime: Mtime) -> Result<(), FilesClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.sockit-link"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(local_err(&tmp))?;
    let _ = meta::set_symlink_mtime(libc::AT_FDCWD, &tmp, mtime);
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        FilesClientError::local(path, e)
    })
}

fn remove_local(path: &Path) -> Result<(), FilesClientError> {
    let m = std::fs::symlink_metadata(path).map_err(local_err(path))?;
    if m.is_dir() {
        std::fs::remove_dir_all(path).map_err(local_err(path))
    } else {
        std::fs::remove_file(path).map_err(local_err(path))
    }
}

fn frame(e: sockit_wire::FrameError) -> FilesClientError {
    ClientError::from(e).into()
}

impl FilesClient {
    /// Makes the tree `dst` equal to `src` (one side local, the other remote), sending only
    /// the changed parts of changed files.
    ///
    /// # Errors
    /// Both sides local or both remote, a bad `--exclude`, or the first failing action.
    pub async fn sync(
        &mut self,
        src: &Side,
        dst: &Side,
        opts: &SyncOptions,
        progress: &mut dyn Progress,
    ) -> Result<SyncReport, SyncError> {
        let ex = Excludes::new(&opts.exclude).map_err(SyncError::Usage)?;
        let mut report = SyncReport {
            dry_run: opts.dry_run,
            ..SyncReport::default()
        };
        let (mut st, mut dt) =
            match (src, dst) {
                (Side::Local(l), Side::Remote(r)) => {
                    let s = local_tree(l, &ex, &mut report.skipped)?;
                    if s.top.is_none() {
                        return Err(SyncError::Usage(format!(
                            "{}: no such directory",
                            l.display()
                        )));
                    }
                    (s, self.remote_tree(r, &ex, &mut report.skipped).await?)
                }
                (Side::Remote(r), Side::Local(l)) => {
                    let s = self.remote_tree(r, &ex, &mut report.skipped).await?;
                    if s.top.is_none() {
                        return Err(SyncError::Usage(format!(
                            "{r}: no such directory on the server"
                        )));
                    }
                    (s, local_tree(l, &ex, &mut report.skipped)?)
                }
                _ => return Err(SyncError::Usage(
                    "one side of a sync must be local and the other remote (HOST:PATH or :PATH)"
                        .into(),
                )),
            };
        if opts.checksum {
            for p in to_hash(&st, &dt) {
                for (side, tree) in [(src, &mut st), (dst, &mut dt)] {
                    let h = self.hash_of(side, &p).await?;
                    set_hash(tree, &p, h);
                }
            }
        }
        let actions = plan(
            &st,
            &dt,
            PlanOptions {
                checksum: opts.checksum,
                delete: opts.delete,
            },
        );
        report.files = st
            .entries
            .values()
            .filter(|n| matches!(n, Node::File { .. }))
            .count() as u64;
        let mut total = 0u64;
        for a in &actions {
            match a {
                Action::Send { new, size, .. } => {
                    if *new {
                        report.new += 1
                    } else {
                        report.changed += 1
                    }
                    total += size;
                }
                Action::Remove { extra: true, .. } => report.deleted += 1,
                Action::Mkdir { .. } => report.dirs += 1,
                Action::Link { .. } => report.symlinks += 1,
                _ => {}
            }
            report.changes.extend(a.describe());
        }
        report.same = report.files - report.new - report.changed;
        if opts.dry_run {
            return Ok(report);
        }
        if dt.top.is_none() {
            match dst {
                Side::Local(l) => std::fs::create_dir_all(l).map_err(local_err(l))?,
                Side::Remote(r) => self.mkdir(r, true).await?,
            }
        }
        if total > 0 {
            progress.start("sync", total, 0);
        }
        let result = self
            .carry_out(src, dst, &actions, &mut report, progress)
            .await;
        if total > 0 {
            progress.finish();
        }
        result?;
        Ok(report)
    }

    async fn hash_of(&mut self, side: &Side, rel: &str) -> Result<[u8; 32], FilesClientError> {
        match side {
            Side::Local(top) => {
                let p = local_at(top, rel);
                let q = p.clone();
                on_thread(&p, move || hash_file(&q)).await
            }
            Side::Remote(top) => {
                let path = remote_at(top, rel);
                let st = self.stat(&path, true).await?;
                st.blake3
                    .and_then(|h| blake3::Hash::from_hex(h).ok())
                    .map(|h| *h.as_bytes())
                    .ok_or_else(|| {
                        FilesClientError::Protocol(format!("the server sent no blake3 for {path}"))
                    })
            }
        }
    }

    async fn carry_out(
        &mut self,
        src: &Side,
        dst: &Side,
        actions: &[Action],
        report: &mut SyncReport,
        progress: &mut dyn Progress,
    ) -> Result<(), FilesClientError> {
        for a in actions {
            match (a, src, dst) {
                (Action::Remove { path, dir, .. }, _, Side::Remote(top)) => {
                    self.rm(&remote_at(top, path), *dir).await?
                }
                (Action::Remove { path, .. }, _, Side::Local(top)) => {
                    remove_local(&local_at(top, path))?
                }
                (Action::Mkdir { path }, _, Side::Remote(top)) => {
                    self.mkdir(&remote_at(top, path), true).await?
                }
                (Action::Mkdir { path }, _, Side::Local(top)) => {
                    let p = local_at(top, path);
                    std::fs::create_dir(&p).map_err(local_err(&p))?
                }
                (
                    Action::Send {
                        path, base, size, ..
                    },
                    Side::Local(ltop),
                    Side::Remote(rtop),
                ) => {
                    let base = base.as_deref().map(|b| remote_at(rtop, b));
                    self.push_file(&local_at(ltop, path), &remote_at(rtop, path), base, report)
                        .await?;
                    progress.advance(*size);
                }
                (
                    Action::Send {
                        path, base, size, ..
                    },
                    Side::Remote(rtop),
                    Side::Local(ltop),
                ) => {
                    let base = base.as_deref().map(|b| local_at(ltop, b));
                    self.pull_file(&remote_at(rtop, path), &local_at(ltop, path), base, report)
                        .await?;
                    progress.advance(*size);
                }
                (
                    Action::Link {
                        path,
                        target,
                        mtime,
                    },
                    _,
                    Side::Remote(top),
                ) => {
                    self.symlink(&remote_at(top, path), target, true, Some(*mtime))
                        .await?
                }
                (
                    Action::Link {
                        path,
                        target,
                        mtime,
                    },
                    _,
                    Side::Local(top),
                ) => make_local_link(&local_at(top, path), target, *mtime)?,
                (Action::Attrs { path, mode, mtime }, _, Side::Remote(top)) => {
                    self.setattr(&remote_at(top, path), Some(*mode), Some(*mtime))
                        .await?
                }
                (Action::Attrs { path, mode, mtime }, _, Side::Local(top)) => {
                    let p = local_at(top, path);
                    let f = std::fs::File::open(&p).map_err(local_err(&p))?;
                    meta::apply_to_file(&f, Some(*mode), Some(*mtime)).map_err(local_err(&p))?
                }
                (Action::Send { .. }, _, _) => {
                    return Err(FilesClientError::Protocol(
                        "a sync sends between a local and a remote side".into(),
                    ))
                }
            }
        }
        Ok(())
    }

    /// The chunk list of the remote file `path` (empty when it does not exist).
    async fn remote_chunks(
        &mut self,
        path: &str,
        report: &mut SyncReport,
    ) -> Result<Option<Vec<Chunk>>, FilesClientError> {
        let reply: SyncSigReply = match self
            .call(&SyncSigRequest {
                path: path.to_owned(),
            })
            .await
        {
            Ok(r) => r,
            Err(e) if e.remote_code() == Some(ErrorCode::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        let body = self
            .inner()
            .connection()
            .read_body_to_vec(MAX_SIG_BYTES)
            .await
            .map_err(frame)?;
        report.signature_bytes += body.len() as u64;
        report.bytes_sent += body.len() as u64;
        let list = chunks::decode(&body).map_err(FilesClientError::Protocol)?;
        if list.len() as u64 != reply.chunks {
            return Err(FilesClientError::Protocol(format!(
                "sync_sig announced {} chunks and sent {}",
                reply.chunks,
                list.len()
            )));
        }
        Ok(Some(list))
    }

    /// Sends the local file `local` to `remote` as a delta against the remote `base`.
    async fn push_file(
        &mut self,
        local: &Path,
        remote: &str,
        base: Option<String>,
        report: &mut SyncReport,
    ) -> Result<(), FilesClientError> {
        let base_chunks = match &base {
            Some(b) => self.remote_chunks(b, report).await?,
            None => None,
        };
        let base = base.filter(|_| base_chunks.is_some());
        let list = base_chunks.unwrap_or_default();
        let l = local.to_owned();
        let (file, m, plan) = on_thread(local, move || {
            let file = std::fs::File::open(&l)?;
            let m = file.metadata()?;
            let plan = delta::plan(BufReader::with_capacity(1 << 20, &file), &list)?;
            Ok((file, m, plan))
        })
        .await?;
        use std::os::unix::fs::MetadataExt;
        let mtime = Mtime::of(m.mtime(), m.mtime_nsec());
        let size = plan.encoded_len();
        let expected = plan.blake3.to_hex().to_string();
        let req = SyncPatchRequest {
            path: remote.to_owned(),
            base,
            total: plan.total,
            blake3: expected.clone(),
            mode: Some(m.mode() & REPORTED_MODE_BITS),
            mtime: Some(mtime.secs),
            mtime_nsec: Some(mtime.nsec),
            data_size: size,
        };
        let total = plan.total;
        let conn = self.inner().connection();
        conn.send(&Header::encode(&req).map_err(ClientError::from)?)
            .await
            .map_err(frame)?;
        let mut source = DeltaSource::spawn(file, plan);
        loop {
            match source.next().await {
                Ok(Some(piece)) => conn
                    .stream_mut()
                    .write_all(&piece)
                    .await
                    .map_err(|e| frame(sockit_wire::FrameError::Io(e)))?,
                Ok(None) => break,
                // The server still expects the rest of the body: this connection is done.
                Err(e) => return Err(FilesClientError::local(local, e)),
            }
        }
        source.finish().await;
        conn.stream_mut()
            .flush()
            .await
            .map_err(|e| frame(sockit_wire::FrameError::Io(e)))?;
        let reply = self.inner().read_response().await?;
        let PutReply { stored } = reply.decode().map_err(ClientError::from)?;
        if stored.blake3 != expected || stored.size != total {
            return Err(FilesClientError::Verify(format!(
                "server stored {remote} with blake3 {}, expected {expected}",
                stored.blake3
            )));
        }
        report.delta_bytes += size;
        report.bytes_sent += size;
        report.bytes_total += total;
        Ok(())
    }

    /// Builds the local file `local` from the remote `remote`, as a delta against the
    /// local `base`.
    async fn pull_file(
        &mut self,
        remote: &str,
        local: &Path,
        base: Option<PathBuf>,
        report: &mut SyncReport,
    ) -> Result<(), FilesClientError> {
        let (base_file, base_len, list) = match base {
            Some(b) => {
                on_thread(&b.clone(), move || match std::fs::File::open(&b) {
                    Ok(f) => {
                        let sig = chunks::signature(BufReader::with_capacity(1 << 20, &f))?;
                        Ok((Some(f), sig.total, sig.chunks))
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((None, 0, Vec::new())),
                    Err(e) => Err(e),
                })
                .await?
            }
            None => (None, 0, Vec::new()),
        };
        let body = chunks::encode(&list);
        let req = SyncPullRequest {
            path: remote.to_owned(),
            data_size: body.len() as u64,
        };
        report.signature_bytes += body.len() as u64;
        report.bytes_sent += body.len() as u64;
        let h = Header::encode(&req).map_err(ClientError::from)?;
        let reply = self
            .inner()
            .request_with_body(&h, Bytes::from(body))
            .await?;
        let reply: SyncPullReply = reply.decode().map_err(ClientError::from)?;
        let expected = blake3::Hash::from_hex(&reply.blake3).map_err(|_| {
            FilesClientError::Protocol("sync_pull reply `blake3` is not 64 hex digits".into())
        })?;
        let dir = local.parent().unwrap_or(Path::new("."));
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.sockit-sync"));
        let out = std::fs::File::create(&tmp).map_err(local_err(&tmp))?;
        let mut task = ApplyTask::spawn(base_file, base_len, out, reply.total);
        let conn = self.inner().connection();
        let delta_len = conn.body_remaining();
        let mut ok = true;
        loop {
            match conn.read_body_chunk().await {
                Ok(Some(chunk)) => {
                    if ok && !task.feed(chunk).await {
                        ok = false; // keep reading so the connection stays in step
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = task.finish().await;
                    let _ = std::fs::remove_file(&tmp);
                    return Err(frame(e));
                }
            }
        }
        let done = task.finish().await;
        let fail = |e: FilesClientError| {
            let _ = std::fs::remove_file(&tmp);
            e
        };
        let (file, hash, written) = done.map_err(|e| fail(FilesClientError::local(&tmp, e)))?;
        if hash != expected || written != reply.total {
            return Err(fail(FilesClientError::Verify(format!(
                "{remote}: the rebuilt file hashes to {} ({written} bytes), the server announced {} ({} bytes); nothing was replaced",
                hash.to_hex(),
                reply.blake3,
                reply.total
            ))));
        }
        let mtime = Mtime::new(reply.mtime, reply.mtime_nsec).ok();
        let mode = reply.mode;
        let t = tmp.clone();
        on_thread(&tmp, move || {
            meta::apply_to_file(&file, mode, mtime)?;
            file.sync_all()?;
            std::fs::rename(&t, local_owned(&t, &name))
        })
        .await
        .map_err(fail)?;
        report.delta_bytes += delta_len;
        report.bytes_sent += delta_len;
        report.bytes_total += reply.total;
        Ok(())
    }
}

/// The destination beside the temporary file `tmp` (`dir/.NAME.sockit-sync` → `dir/NAME`).
fn local_owned(tmp: &Path, name: &str) -> PathBuf {
    tmp.parent().unwrap_or(Path::new(".")).join(name)
}
