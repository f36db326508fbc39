//! Running a sync: list both trees, plan, then carry out each action on the destination
//! side: deltas up (`sync_sig` then `sync_patch`) or down (`sync_pull`), directories,
//! symlinks, removals and attributes with the ordinary commands or local calls.
//!
//! A pulled file is built in `.NAME.sockit-sync` beside its destination, checked (size and
//! BLAKE3), given its mode and time, fsynced and renamed into place, so a file never
//! appears half-written under its name; the directories that received files are fsynced
//! at the end. A pushed file is built by the server in its staging area the same way. The
//! first failing action stops the sync (what was done stays done; running it again
//! continues).

use std::collections::BTreeSet;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use serde::Serialize;
use sockit_wire::{ClientError, ErrorCode, FrameError, Header};

use super::chunks::{self, Chunk, ChunkParams};
use super::delta;
use super::exclude::Excludes;
use super::plan::{plan, Action, Node, PlanOptions, Tree};
use super::stream::{ApplyTask, DeltaSource};
use super::walk::{local_tree, Role};
use super::{Side, SyncError};
use crate::client::features::reply_encoding;
use crate::client::put::early_refusal;
use crate::client::tree::make_local_link;
use crate::client::{remote_join, FilesClient, FilesClientError, Progress};
use crate::compress::blocks::{BlocksError, BodyReader, BodyWriter};
use crate::messages::ZSTD;
use crate::messages::{
    PutReply, SyncPatchRequest, SyncPullReply, SyncPullRequest, SyncSigReply, SyncSigRequest,
};
use crate::meta::{self, Mtime, APPLIED_MODE_BITS, REPORTED_MODE_BITS};
use crate::path::RelPath;

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
    /// Regular files in the source (each one checked against the destination).
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
    /// Bytes of the files sent: what the deltas represent (with `dry_run`: what would be
    /// sent).
    pub bytes_represented: u64,
    /// Bytes that crossed the network for them, both ways: the bodies of the chunk lists
    /// and of the deltas (request and reply headers not counted).
    pub bytes_on_wire: u64,
    /// Of `bytes_on_wire`, the deltas.
    pub delta_bytes: u64,
    /// Of `bytes_on_wire`, the chunk lists.
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

/// Opens a regular file of a local tree for reading, never through a symlink put there
/// since the tree was listed.
fn open_local(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
}

fn hash_file(path: &Path) -> std::io::Result<[u8; 32]> {
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut open_local(path)?, &mut h)?;
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

/// The hidden name a pulled file is built under: `.NAME.sockit-sync` beside it (a
/// hashed name when that would be too long for the filesystem).
fn temp_beside(path: &Path) -> PathBuf {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = format!(".{name}.sockit-sync");
    if tmp.len() <= 255 {
        dir.join(tmp)
    } else {
        let h = blake3::hash(name.as_bytes());
        dir.join(format!(".{}.sockit-sync", &h.to_hex()[..32]))
    }
}

/// Gives a local file or directory its mode and time, by name (no need to open it, so a
/// file without read permission works too; the time is set without following a link).
fn set_local_attrs(path: &Path, mode: u32, mtime: Mtime) -> Result<(), FilesClientError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        path,
        std::fs::Permissions::from_mode(mode & APPLIED_MODE_BITS),
    )
    .map_err(local_err(path))?;
    meta::set_symlink_mtime(libc::AT_FDCWD, path, mtime).map_err(local_err(path))
}

fn remove_local(path: &Path) -> Result<(), FilesClientError> {
    let m = std::fs::symlink_metadata(path).map_err(local_err(path))?;
    if m.is_dir() {
        std::fs::remove_dir_all(path).map_err(local_err(path))
    } else {
        std::fs::remove_file(path).map_err(local_err(path))
    }
}

fn frame(e: FrameError) -> FilesClientError {
    ClientError::from(e).into()
}

fn blocks_err(e: BlocksError) -> FilesClientError {
    match e {
        BlocksError::Frame(e) => frame(e),
        BlocksError::Bad(e) => FilesClientError::Protocol(e.to_string()),
    }
}

/// Whether the remote path names the data root (whose mode belongs to its operator).
fn is_remote_root(path: &str) -> bool {
    RelPath::parse(path).is_ok_and(|p| p.is_root())
}

/// The progress of one file of a sync on the bar of the whole tree: moves up to the
/// file's size as its delta goes (a copy counts as the bytes it stands for).
struct FileProgress<'a> {
    progress: &'a mut dyn Progress,
    /// The file's size as listed.
    size: u64,
    /// How much of it the bar shows.
    shown: u64,
}

impl FileProgress<'_> {
    /// The bar shows `n` bytes of this file done (at most its size).
    fn to(&mut self, n: u64) {
        let n = n.min(self.size);
        if n > self.shown {
            self.progress.advance(n - self.shown);
            self.shown = n;
        }
    }

    /// The file is done.
    fn done(&mut self) {
        self.to(self.size);
    }
}

/// Makes the local directory holding `path` writable and searchable by its owner if it is
/// not (a read-only directory of an earlier sync); its own mode comes back afterwards
/// with its attributes, which a directory whose contents changed always gets.
fn writable_parent(path: &Path) -> Result<(), FilesClientError> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let m = std::fs::symlink_metadata(dir).map_err(local_err(dir))?;
    let mode = m.mode() & APPLIED_MODE_BITS;
    if m.is_dir() && mode & 0o300 != 0o300 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o300))
            .map_err(local_err(dir))?;
    }
    Ok(())
}

/// The local directories that received a new name during a sync, fsynced at the end.
type Received = BTreeSet<PathBuf>;

fn received_in(received: &mut Received, path: &Path) {
    received.insert(path.parent().unwrap_or(Path::new(".")).to_owned());
}

impl FilesClient {
    /// Makes the tree `dst` equal to `src` (one side local, the other remote), sending only
    /// the changed parts of changed files.
    ///
    /// # Errors
    /// Both sides local or both remote, a missing source, a bad `--exclude`, or the first
    /// failing action.
    pub async fn sync(
        &mut self,
        src: &Side,
        dst: &Side,
        opts: &SyncOptions,
        progress: &mut dyn Progress,
    ) -> Result<SyncReport, SyncError> {
        let ex = Excludes::new(&opts.exclude).map_err(SyncError::Usage)?;
        if !self.server_has("sync_patch") {
            return Err(SyncError::Client(FilesClientError::Protocol(
                "the server does not offer sync (sync_sig, sync_pull, sync_patch); it predates them"
                    .into(),
            )));
        }
        let mut report = SyncReport {
            dry_run: opts.dry_run,
            ..SyncReport::default()
        };
        let skipped = &mut report.skipped;
        let (mut st, mut dt) = match (src, dst) {
            (Side::Local(l), Side::Remote(r)) => {
                let s = local_tree(l, &ex, Role::Source, skipped)?;
                if s.top.is_none() {
                    return Err(SyncError::Usage(format!(
                        "{}: no such directory",
                        l.display()
                    )));
                }
                let d = self.remote_tree(r, &ex, Role::Destination, skipped).await?;
                (s, d)
            }
            (Side::Remote(r), Side::Local(l)) => {
                let s = self.remote_tree(r, &ex, Role::Source, skipped).await?;
                if s.top.is_none() {
                    return Err(SyncError::Usage(format!(
                        "{r}: no such directory on the server"
                    )));
                }
                (s, local_tree(l, &ex, Role::Destination, skipped)?)
            }
            _ => {
                return Err(SyncError::Usage(
                    "one side of a sync must be local and the other remote".into(),
                ));
            }
        };
        if opts.checksum {
            for p in to_hash(&st, &dt) {
                let h = self.hash_of(src, &p).await?;
                set_hash(&mut st, &p, h);
                let h = self.hash_of(dst, &p).await?;
                set_hash(&mut dt, &p, h);
            }
        }
        let actions = plan(
            &st,
            &dt,
            PlanOptions {
                checksum: opts.checksum,
                delete: opts.delete,
                keep_top_mode: matches!(dst, Side::Remote(r) if is_remote_root(r)),
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
        report.same = report
            .files
            .saturating_sub(report.new)
            .saturating_sub(report.changed);
        if opts.dry_run {
            report.bytes_represented = total;
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
        let mut received = Received::new();
        for a in actions {
            let size = match a {
                Action::Send { size, .. } => *size,
                _ => 0,
            };
            let mut bar = FileProgress {
                progress: &mut *progress,
                size,
                shown: 0,
            };
            match dst {
                Side::Remote(top) => self.act_remote(a, src, top, report, &mut bar).await?,
                Side::Local(top) => {
                    self.act_local(a, src, top, report, &mut received, &mut bar)
                        .await?
                }
            }
            bar.done();
        }
        // The new names survive a crash only once their directories are on disk.
        for dir in received {
            let d = dir.clone();
            on_thread(&dir, move || std::fs::File::open(&d)?.sync_all()).await?;
        }
        Ok(())
    }

    /// Carries out one action on a remote destination under `top`.
    async fn act_remote(
        &mut self,
        a: &Action,
        src: &Side,
        top: &str,
        report: &mut SyncReport,
        bar: &mut FileProgress<'_>,
    ) -> Result<(), FilesClientError> {
        match a {
            Action::Remove { path, dir, .. } => self.rm(&remote_at(top, path), *dir).await,
            Action::Mkdir { path } => self.mkdir(&remote_at(top, path), true).await,
            Action::Send { path, base, .. } => {
                let Side::Local(ltop) = src else {
                    return Err(both_remote());
                };
                let base = base.as_deref().map(|b| remote_at(top, b));
                let (local, remote) = (local_at(ltop, path), remote_at(top, path));
                let delta = base.is_some();
                match self.push_file(&local, &remote, base, report, bar).await {
                    // A delta the server could not rebuild the file from (a base that
                    // changed meanwhile, or chunk hashes that matched different bytes):
                    // the file goes whole.
                    Err(e)
                        if delta
                            && !self.broken
                            && e.remote_code() == Some(ErrorCode::BadRequest) =>
                    {
                        tracing::warn!(%remote, error = %e, "the delta was refused; sending the file whole");
                        self.push_file(&local, &remote, None, report, bar).await
                    }
                    other => other,
                }
            }
            Action::Link {
                path,
                target,
                mtime,
            } => {
                let made = self
                    .symlink(&remote_at(top, path), target, true, Some(*mtime))
                    .await;
                match made {
                    // The server checks more than the tree's shape (a target that resolves
                    // through a loop or a link placed there by other means): such a link
                    // is left out, as unsafe links of the source are.
                    Err(e) if e.remote_code() == Some(ErrorCode::Denied) => {
                        report.symlinks = report.symlinks.saturating_sub(1);
                        report
                            .changes
                            .retain(|c| Action::describe(a).as_deref() != Some(c.as_str()));
                        report
                            .skipped
                            .push(format!("{path}: the server refused the symlink: {e}"));
                        Ok(())
                    }
                    other => other,
                }
            }
            Action::Attrs { path, mode, mtime } => {
                self.setattr(&remote_at(top, path), Some(*mode), Some(*mtime))
                    .await
            }
            Action::LinkTime { path, mtime } => {
                self.setattr(&remote_at(top, path), None, Some(*mtime))
                    .await
            }
        }
    }

    /// Carries out one action on a local destination under `top`.
    async fn act_local(
        &mut self,
        a: &Action,
        src: &Side,
        top: &Path,
        report: &mut SyncReport,
        received: &mut Received,
        bar: &mut FileProgress<'_>,
    ) -> Result<(), FilesClientError> {
        if !matches!(a, Action::Attrs { .. } | Action::LinkTime { .. }) && !a.path().is_empty() {
            writable_parent(&local_at(top, a.path()))?;
        }
        match a {
            Action::Remove { path, .. } => remove_local(&local_at(top, path)),
            Action::Mkdir { path } => {
                let p = local_at(top, path);
                match std::fs::create_dir(&p) {
                    // Made meanwhile: fine if it is a real directory (never a symlink).
                    Err(e)
                        if e.kind() != std::io::ErrorKind::AlreadyExists
                            || !std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) =>
                    {
                        Err(FilesClientError::local(&p, e))
                    }
                    _ => Ok(()),
                }
            }
            Action::Send { path, base, .. } => {
                let Side::Remote(rtop) = src else {
                    return Err(both_remote());
                };
                let base = base.as_deref().map(|b| local_at(top, b));
                let local = local_at(top, path);
                let remote = remote_at(rtop, path);
                let delta = base.is_some();
                match self.pull_file(&remote, &local, base, report, bar).await {
                    // The delta did not rebuild the file (see the push above): fetch it
                    // whole.
                    Err(e @ FilesClientError::Verify(_)) if delta && !self.broken => {
                        tracing::warn!(%remote, error = %e, "the delta did not rebuild the file; fetching it whole");
                        self.pull_file(&remote, &local, None, report, bar).await?;
                    }
                    other => other?,
                }
                received_in(received, &local);
                Ok(())
            }
            Action::Link {
                path,
                target,
                mtime,
            } => {
                let p = local_at(top, path);
                make_local_link(&p, target, *mtime)?;
                received_in(received, &p);
                Ok(())
            }
            Action::Attrs { path, mode, mtime } => {
                set_local_attrs(&local_at(top, path), *mode, *mtime)
            }
            Action::LinkTime { path, mtime } => {
                let p = local_at(top, path);
                meta::set_symlink_mtime(libc::AT_FDCWD, &p, *mtime).map_err(local_err(&p))
            }
        }
    }

    /// The chunk list of the remote file `path`; `None` when the server has none to give
    /// (no such file, not a regular file, a list over the server's `sync_max_chunk_list`):
    /// the base is only
    /// a saving, so the file is then sent whole.
    async fn remote_chunks(
        &mut self,
        path: &str,
        report: &mut SyncReport,
    ) -> Result<Option<(Vec<Chunk>, ChunkParams)>, FilesClientError> {
        // Asked before the request: its body must be read right after the reply.
        let max = self.features().await?.sync_max_chunk_list;
        let req = SyncSigRequest {
            path: path.to_owned(),
        };
        let reply: SyncSigReply = match self.call(&req).await {
            Ok(r) => r,
            Err(e) if e.remote_code().is_some() => return Ok(None),
            Err(e) => return Err(e),
        };
        let conn = self.inner().connection();
        if reply.data_size > max {
            conn.discard_body().await.map_err(frame)?;
            return Ok(None);
        }
        let body = conn.read_body_to_vec(max).await.map_err(frame)?;
        report.signature_bytes += body.len() as u64;
        report.bytes_on_wire += body.len() as u64;
        let params = ChunkParams::from_avg(reply.chunk_avg).map_err(FilesClientError::Protocol)?;
        let list = chunks::decode(&body, params).map_err(FilesClientError::Protocol)?;
        let covered: u64 = list.iter().map(|c| u64::from(c.len)).sum();
        if list.len() as u64 != reply.chunks || covered != reply.total {
            return Err(FilesClientError::Protocol(format!(
                "sync_sig announced {} chunks over {} bytes and sent {} over {covered}",
                reply.chunks,
                reply.total,
                list.len()
            )));
        }
        Ok(Some((list, params)))
    }

    /// Sends the local file `local` to `remote` as a delta against the remote `base`.
    async fn push_file(
        &mut self,
        local: &Path,
        remote: &str,
        base: Option<String>,
        report: &mut SyncReport,
        bar: &mut FileProgress<'_>,
    ) -> Result<(), FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        // The whole-file hash starts at once, beside the server cutting the base; with
        // the base's list the local file is then cut only where it differs from the base
        // (the rest is hashed along the base's chunks).
        let l = local.to_owned();
        let (file, m) = on_thread(local, move || {
            let file = open_local(&l)?;
            let m = file.metadata()?;
            if !m.is_file() {
                return Err(std::io::Error::other("is no longer a regular file"));
            }
            Ok((file, m))
        })
        .await?;
        let len = m.len();
        let to_hash = file.try_clone().map_err(local_err(local))?;
        let to_cut = file.try_clone().map_err(local_err(local))?;
        let hashing = on_thread(local, move || chunks::whole_hash(&to_hash, len));
        let planning = async {
            let (base, list, params) = match base {
                Some(b) => match self.remote_chunks(&b, report).await? {
                    Some((list, params)) => (Some(b), list, params),
                    None => (None, Vec::new(), ChunkParams::default()),
                },
                None => (None, Vec::new(), ChunkParams::default()),
            };
            let ops =
                on_thread(local, move || delta::plan_ops(&to_cut, len, &list, params)).await?;
            Ok::<_, FilesClientError>((base, ops))
        };
        let (blake3, planned) = tokio::join!(hashing, planning);
        let (base, ops) = planned?;
        let blake3 = blake3?;
        let plan = delta::Plan {
            ops,
            total: len,
            blake3,
        };
        let mtime = Mtime::of(m.mtime(), m.mtime_nsec());
        let size = plan.encoded_len();
        let total = plan.total;
        let expected = plan.blake3.to_hex().to_string();
        let compressed = size > 0 && self.upload_compressed().await?;
        let req = SyncPatchRequest {
            path: remote.to_owned(),
            base,
            total,
            blake3: expected.clone(),
            mode: Some(m.mode() & REPORTED_MODE_BITS),
            mtime: Some(mtime.secs),
            mtime_nsec: Some(mtime.nsec),
            data_size: if compressed { 0 } else { size },
            encoding: compressed.then(|| ZSTD.to_owned()),
            raw_size: compressed.then_some(size),
        };
        let header = Header::encode(&req).map_err(ClientError::from)?;
        let conn = self.inner().connection();
        conn.send(&header).await.map_err(frame)?;
        let mut source = DeltaSource::spawn(file, plan);
        let mut body = BodyWriter::new(compressed);
        let mut sent = 0u64;
        let mut wire = 0u64;
        let mut stood_for = 0u64;
        let outcome: Result<(), FilesClientError> = async {
            while let Some((piece, n)) = source
                .next()
                .await
                .map_err(|e| FilesClientError::local(local, e))?
            {
                sent += piece.len() as u64;
                body.write(conn, piece).await.map_err(frame)?;
                stood_for += n;
                bar.to(stood_for);
                // A refusal can arrive while we send (busy, disk full, ...): stop early.
                if let Some(e) = early_refusal(conn) {
                    return Err(e);
                }
            }
            wire = body.finish(conn).await.map_err(frame)?;
            Ok(())
        }
        .await;
        source.finish().await;
        if let Err(e) = outcome {
            // The server still expects the rest of the body: this connection is done.
            self.broken = sent < size || compressed;
            return Err(e);
        }
        let reply = self.inner().read_response().await?;
        let PutReply { stored } = reply.decode().map_err(ClientError::from)?;
        if stored.blake3 != expected || stored.size != total {
            return Err(FilesClientError::Verify(format!(
                "the server stored {remote} with blake3 {} ({} bytes), expected {expected} ({total} bytes)",
                stored.blake3, stored.size
            )));
        }
        report.delta_bytes += wire;
        report.bytes_on_wire += wire;
        report.bytes_represented += total;
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
        bar: &mut FileProgress<'_>,
    ) -> Result<(), FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        let max = self.features().await?.sync_max_chunk_list;
        let (base_file, base_len, list, params) = match base {
            Some(b) => {
                on_thread(&b.clone(), move || {
                    let f = match open_local(&b) {
                        Ok(f) => f,
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                            return Ok((None, 0, Vec::new(), ChunkParams::default()));
                        }
                        Err(e) => return Err(e),
                    };
                    let m = f.metadata()?;
                    if !m.is_file() {
                        return Ok((None, 0, Vec::new(), ChunkParams::default()));
                    }
                    let params = ChunkParams::for_size(m.len());
                    // Only the chunks go to the server; the whole-file hash is not needed.
                    let list = chunks::chunks_at(&f, m.len(), params)?;
                    // A list the server would refuse: send the file whole instead.
                    if (list.len() * chunks::RECORD_LEN) as u64 > max {
                        return Ok((None, 0, Vec::new(), ChunkParams::default()));
                    }
                    Ok((Some(f), m.len(), list, params))
                })
                .await?
            }
            None => (None, 0, Vec::new(), ChunkParams::default()),
        };
        let body = chunks::encode(&list);
        let req = SyncPullRequest {
            path: remote.to_owned(),
            data_size: body.len() as u64,
            chunk_avg: params.avg(),
            compress: self.accepted(),
        };
        report.signature_bytes += body.len() as u64;
        report.bytes_on_wire += body.len() as u64;
        let h = Header::encode(&req).map_err(ClientError::from)?;
        let reply = self
            .inner()
            .request_with_body(&h, Bytes::from(body))
            .await?;
        let reply: SyncPullReply = reply.decode().map_err(ClientError::from)?;
        let expected = blake3::Hash::from_hex(&reply.blake3).map_err(|_| {
            FilesClientError::Protocol("sync_pull reply `blake3` is not 64 hex digits".into())
        })?;
        let tmp = temp_beside(local);
        let _ = std::fs::remove_file(&tmp);
        let out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(local_err(&tmp));
        let asked = self.compress;
        let conn = self.inner().connection();
        let encoded = reply_encoding(
            asked,
            reply.encoding.as_deref(),
            reply.raw_size,
            conn.body_remaining(),
        );
        let encoded = match encoded {
            Ok(e) => e,
            Err(e) => {
                self.broken = true;
                return Err(e);
            }
        };
        let mut body = BodyReader::new(encoded);
        let out = match out {
            Ok(f) => f,
            Err(e) => {
                // Keep the connection in step for whoever reports the error.
                while body.next(conn, None).await.map_err(blocks_err)?.is_some() {}
                return Err(e);
            }
        };
        let mut task = ApplyTask::spawn(base_file, base_len, out, reply.total);
        let mut applying = true;
        let mut delta_len = 0u64;
        loop {
            match body.next(conn, None).await {
                Ok(Some(chunk)) => {
                    delta_len += chunk.len() as u64;
                    // After a failure keep reading, so the connection stays in step.
                    if applying && !task.feed(chunk).await {
                        applying = false;
                    }
                    bar.to(task.written());
                }
                Ok(None) => break,
                Err(e) => {
                    let _ = task.finish().await;
                    let _ = std::fs::remove_file(&tmp);
                    self.broken = true;
                    return Err(blocks_err(e));
                }
            }
        }
        let fail = |e: FilesClientError| {
            let _ = std::fs::remove_file(&tmp);
            e
        };
        let (file, hash, written) = task
            .finish()
            .await
            .map_err(|e| fail(FilesClientError::local(&tmp, e)))?;
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
        let (t, dest) = (tmp.clone(), local.to_owned());
        on_thread(local, move || {
            meta::apply_to_file(&file, mode, mtime)?;
            file.sync_all()?;
            std::fs::rename(&t, &dest)
        })
        .await
        .map_err(fail)?;
        let wire = body.wire().unwrap_or(delta_len);
        report.delta_bytes += wire;
        report.bytes_on_wire += wire;
        report.bytes_represented += reply.total;
        Ok(())
    }
}

fn both_remote() -> FilesClientError {
    FilesClientError::Protocol("a sync sends between a local and a remote side".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_names_stay_within_a_name_limit() {
        assert_eq!(
            temp_beside(Path::new("d/a.txt")),
            Path::new("d/.a.txt.sockit-sync")
        );
        let long = "x".repeat(250);
        let t = temp_beside(&Path::new("d").join(&long));
        let name = t.file_name().unwrap().to_str().unwrap();
        assert!(
            name.len() <= 255 && name.ends_with(".sockit-sync"),
            "{name}"
        );
    }

    #[test]
    fn the_data_root_is_recognised() {
        assert!(is_remote_root("") && is_remote_root(".") && is_remote_root("./"));
        assert!(!is_remote_root("backup"));
    }
}
