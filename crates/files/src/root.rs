//! The data root as a capability directory, with its staging area, the registry of uploads
//! in progress and the hash cache.
//!
//! The served tree is a [`sockit_runtime::confine::Root`], the capability handle every
//! sockit service confines its files with; every filesystem access of the file service
//! goes through it ([`FilesRoot::dir`] is its `cap_std::fs::Dir`, for the operations the
//! shared module does not offer): paths are resolved beneath the handle, which refuses any
//! resolution that would leave the root (`..` through a symlink, absolute symlink targets,
//! symlinks pointing outside) with `PermissionDenied`, mapped to `denied`.
//!
//! Uploads in progress live in a second, separate capability directory (the staging
//! area). With [`FilesRoot::open_split`] it sits outside the served tree (e.g.
//! `ROOT/files` served, `ROOT/state/staging` for staging), so no client path can name it;
//! [`FilesRoot::open`] keeps the older layout with staging in the root's hidden
//! `.sockit-staging`. Either way a finished upload is moved into place by one `renameat`
//! from the staging directory into the root, which is atomic only within one mounted
//! filesystem: opening checks that, and refuses two filesystems (or two mounts).

use std::collections::HashSet;
use std::io;
use std::path::{Component, Path};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions};
use sockit_runtime::confine::Root;

use crate::error::FilesError;
use crate::hash_cache::{FileKey, HashCache};
use crate::messages::{BATCH_MAX_BYTES, BATCH_MAX_FILES};
use crate::path::{is_reserved, RelPath, STAGING_DIR};

/// Limits and settings of the file service (each has a `sockit serve` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesConfig {
    /// Largest file an upload may produce, in bytes (`--max-upload`).
    pub max_upload: u64,
    /// Staged uploads untouched this long are deleted at start (`--staging-ttl`).
    pub staging_ttl: Duration,
    /// How many whole-file hashes the server remembers (`--hash-cache`).
    pub hash_cache_entries: usize,
    /// Keep the staged part of an upload that failed for lack of space (ENOSPC, EDQUOT)
    /// so it can be resumed once space exists (`--keep-partial`). By default it is removed,
    /// so a full disk does not stay full.
    pub keep_partial: bool,
    /// Most files one `putmany` or `getmany` may name (`--batch-max-files`).
    pub batch_max_files: usize,
    /// Most body bytes of one `putmany` request or `getmany` reply
    /// (`--batch-max-bytes`); a batch is held in memory whole.
    pub batch_max_bytes: u64,
    /// Largest chunk list `sync_sig` sends or `sync_pull` accepts, in bytes
    /// (`--sync-max-chunk-list`); a larger file is sent whole by `sync`. Held in memory.
    pub sync_max_chunk_list: u64,
    /// Offer zstd compression to clients that ask (`--no-compress` turns it off).
    pub compress: bool,
}

/// Default of [`FilesConfig::sync_max_chunk_list`]: enough for a file of about 14 GiB at
/// the average chunk size.
pub const SYNC_MAX_CHUNK_LIST: u64 = 64 * 1024 * 1024;

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_upload: 16 * 1024 * 1024 * 1024,
            staging_ttl: Duration::from_secs(7 * 24 * 3600),
            hash_cache_entries: 4096,
            keep_partial: false,
            batch_max_files: BATCH_MAX_FILES,
            batch_max_bytes: BATCH_MAX_BYTES,
            sync_max_chunk_list: SYNC_MAX_CHUNK_LIST,
            compress: true,
        }
    }
}

/// The shared state of the file service.
#[derive(Debug)]
pub struct FilesRoot {
    /// The served tree.
    tree: Root,
    /// The staging area (outside the tree, or its hidden `.sockit-staging`).
    staging: Dir,
    config: FilesConfig,
    /// Paths with an upload running now (a second one gets `busy`).
    uploads: Mutex<HashSet<RelPath>>,
    hashes: HashCache,
}

/// Holds a path in the upload registry; dropping it frees the path.
#[derive(Debug)]
pub(crate) struct UploadGuard {
    root: Arc<FilesRoot>,
    path: RelPath,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.root.lock_uploads().remove(&self.path);
    }
}

impl FilesRoot {
    /// Opens the data root `path` (which must exist) in the older single-tree layout: its
    /// staging area is the root's hidden `.sockit-staging` (never listed, never nameable by
    /// a client). Stale staged uploads (older than the TTL) are deleted.
    ///
    /// # Errors
    /// The root cannot be opened or the staging area cannot be created.
    pub fn open(path: &Path, config: FilesConfig) -> io::Result<Arc<Self>> {
        let tree = Root::open(path)?;
        match tree.dir().create_dir(STAGING_DIR) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let staging = tree.dir().open_dir(STAGING_DIR)?;
        Self::from_dirs(tree, staging, config)
    }

    /// Opens the served tree `files_root` (which must exist) with its staging area in
    /// `staging_dir` (created if missing, mode 0700), a directory outside the served tree.
    /// Uploads are moved from staging into the tree by an atomic rename, so both must be on
    /// the same mounted filesystem; that is checked here. Uploads staged by an older server
    /// in `files_root/.sockit-staging` are moved into `staging_dir` (so they can still be
    /// resumed) and the old directory is removed, with a log line. Stale staged uploads
    /// (older than the TTL) are deleted.
    ///
    /// # Errors
    /// Either directory cannot be opened or created; `staging_dir` is inside `files_root`
    /// (clients could see uploads in progress); the two are on different filesystems or
    /// different mounts (the rename into place would fail with `EXDEV`).
    pub fn open_split(
        files_root: &Path,
        staging_dir: &Path,
        config: FilesConfig,
    ) -> io::Result<Arc<Self>> {
        let tree = Root::open(files_root).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot open the files root {}: {e}", files_root.display()),
            )
        })?;
        if !staging_dir.exists() {
            create_private_dir_all(staging_dir).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!(
                        "cannot create the staging directory {}: {e}",
                        staging_dir.display()
                    ),
                )
            })?;
        }
        let staging = Dir::open_ambient_dir(staging_dir, ambient_authority()).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!(
                    "cannot open the staging directory {}: {e}",
                    staging_dir.display()
                ),
            )
        })?;
        check_outside(files_root, staging_dir)?;
        check_same_mount(tree.dir(), &staging).map_err(|why| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the staging directory {} and the files root {} are on {why}: finished \
                     uploads are moved into place by an atomic rename, which cannot cross \
                     filesystems or mounts; put both on one filesystem (e.g. under one data root)",
                    staging_dir.display(),
                    files_root.display()
                ),
            )
        })?;
        migrate_legacy_staging(tree.dir(), &staging);
        Self::from_dirs(tree, staging, config)
    }

    fn from_dirs(tree: Root, staging: Dir, config: FilesConfig) -> io::Result<Arc<Self>> {
        let root = Self {
            tree,
            staging,
            config,
            uploads: Mutex::new(HashSet::new()),
            hashes: HashCache::new(config.hash_cache_entries),
        };
        root.clean_staging();
        Ok(Arc::new(root))
    }

    /// The served tree's directory capability (what [`Root`] resolves beneath).
    pub(crate) fn dir(&self) -> &Dir {
        self.tree.dir()
    }

    /// The staging directory capability.
    pub(crate) fn staging(&self) -> &Dir {
        &self.staging
    }

    /// The settings.
    pub fn config(&self) -> &FilesConfig {
        &self.config
    }

    /// The hash cache.
    pub(crate) fn hashes(&self) -> &HashCache {
        &self.hashes
    }

    /// The staging file name of an upload of `path` (stable, so `offset` can resume it).
    pub fn staging_name(path: &RelPath) -> String {
        let h = blake3::hash(path.as_string().as_bytes());
        format!("{}.part", &h.to_hex()[..32])
    }

    /// Size of a staged (interrupted or running) upload of `path`.
    pub fn staged_len(&self, path: &RelPath) -> Option<u64> {
        self.staging
            .metadata(Self::staging_name(path))
            .ok()
            .map(|m| m.len())
    }

    /// Whether an upload of `path` is running now.
    pub(crate) fn is_uploading(&self, path: &RelPath) -> bool {
        self.lock_uploads().contains(path)
    }

    /// Claims `path` for an upload.
    ///
    /// # Errors
    /// [`FilesError::Busy`] when another upload of it is running.
    pub(crate) fn claim_upload(
        self: &Arc<Self>,
        path: &RelPath,
    ) -> Result<UploadGuard, FilesError> {
        if !self.lock_uploads().insert(path.clone()) {
            return Err(FilesError::Busy(path.clone()));
        }
        Ok(UploadGuard {
            root: self.clone(),
            path: path.clone(),
        })
    }

    /// Opens the staging file of `path` for a transfer starting at `offset`: a fresh upload
    /// (offset 0) truncates any old one; a resumed upload needs at least `offset` staged bytes.
    ///
    /// # Errors
    /// Nothing (or too little) is staged to resume, or an I/O error.
    pub(crate) fn open_staging(
        &self,
        path: &RelPath,
        offset: u64,
    ) -> Result<std::fs::File, FilesError> {
        let name = Self::staging_name(path);
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if offset == 0 {
            opts.create(true);
        }
        let file = match self.staging.open_with(&name, &opts) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(FilesError::BadRequest(format!(
                    "cannot resume {path} at offset {offset}: nothing is staged; start at offset 0"
                )))
            }
            Err(e) => return Err(FilesError::io(path, e)),
        };
        let staged = file.metadata().map_err(|e| FilesError::io(path, e))?.len();
        if offset > staged {
            return Err(FilesError::BadRequest(format!(
                "cannot resume {path} at offset {offset}: only {staged} bytes are staged"
            )));
        }
        Ok(file.into_std())
    }

    /// A new, empty staging file for `path` (an existing one is truncated), for an upload
    /// that starts at 0 and needs no resume check (the files of a `putmany`).
    ///
    /// # Errors
    /// The create failed.
    pub(crate) fn create_staging(&self, path: &RelPath) -> io::Result<std::fs::File> {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        Ok(self
            .staging
            .open_with(Self::staging_name(path), &opts)?
            .into_std())
    }

    /// Deletes the staging file of `path` (if any).
    pub(crate) fn discard_staging(&self, path: &RelPath) {
        let _ = self.staging.remove_file(Self::staging_name(path));
    }

    /// After a write to the staging file of `path` failed for lack of space: removes the
    /// staging file (so the space comes back and the next put can succeed), or, with
    /// [`FilesConfig::keep_partial`], keeps it for a later resume. Returns the bytes kept
    /// (`None` when removed).
    pub(crate) fn after_no_space(&self, path: &RelPath) -> Option<u64> {
        if self.config.keep_partial {
            let kept = self.staged_len(path).unwrap_or(0);
            tracing::warn!(%path, kept, "out of space; partial upload kept (--keep-partial)");
            Some(kept)
        } else {
            self.discard_staging(path);
            tracing::warn!(%path, "out of space; partial upload removed");
            None
        }
    }

    /// Moves the complete staging file of `path` into place. Without `overwrite` an existing
    /// target is never replaced (a hard link, which fails if the name exists, then the
    /// staging name is removed); with it, an atomic rename replaces it. The parent directory
    /// is fsynced so the new name survives a crash.
    ///
    /// # Errors
    /// [`FilesError::Exists`], or an I/O error.
    pub(crate) fn promote(&self, path: &RelPath, overwrite: bool) -> Result<(), FilesError> {
        let name = Self::staging_name(path);
        let target = path.to_path();
        if overwrite {
            self.staging
                .rename(&name, self.dir(), &target)
                .map_err(|e| FilesError::io(path, e))?;
        } else {
            match self.staging.hard_link(&name, self.dir(), &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(FilesError::Exists(path.clone()))
                }
                Err(e) => return Err(FilesError::io(path, e)),
            }
            let _ = self.staging.remove_file(&name);
        }
        let parent = path.parent().unwrap_or_else(RelPath::root);
        if let Ok(d) = self.dir().open_dir(parent.to_path()) {
            if let Ok(f) = d.open(".") {
                let _ = f.sync_all();
            }
        }
        Ok(())
    }

    /// The cache key of an open file's current version.
    pub(crate) fn file_key(path: &RelPath, meta: &Metadata) -> FileKey {
        FileKey {
            path: path.clone(),
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            ino: meta.ino(),
        }
    }

    /// Deletes staged uploads older than the TTL.
    fn clean_staging(&self) {
        let Ok(entries) = self.staging.entries() else {
            return;
        };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            let Ok(modified) = meta.modified() else {
                continue;
            };
            let age = now
                .duration_since(modified.into_std())
                .unwrap_or(Duration::ZERO);
            if age > self.config.staging_ttl {
                let name = entry.file_name();
                tracing::info!(name = ?name, "removing stale staged upload");
                let _ = self.staging.remove_file(name);
            }
        }
    }

    fn lock_uploads(&self) -> std::sync::MutexGuard<'_, HashSet<RelPath>> {
        self.uploads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Creates `path` and its missing parents; the last one gets mode 0700 (staged uploads are
/// for the server only).
fn create_private_dir_all(path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut b = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
    match b.create(path) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        r => r,
    }
}

/// Refuses a staging directory inside the served tree, unless it is one of the reserved
/// top-level names clients can neither name nor list.
fn check_outside(files_root: &Path, staging_dir: &Path) -> io::Result<()> {
    let (Ok(root), Ok(staging)) = (files_root.canonicalize(), staging_dir.canonicalize()) else {
        return Ok(()); // both opened fine; a path that cannot be canonicalized is not inside
    };
    let Ok(rel) = staging.strip_prefix(&root) else {
        return Ok(());
    };
    let first = rel.components().next();
    let hidden = matches!(first, Some(Component::Normal(n)) if n.to_str().is_some_and(is_reserved));
    if hidden {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "the staging directory {} is inside the served files root {}: clients could read \
             uploads in progress; keep service state outside the served tree",
            staging_dir.display(),
            files_root.display()
        ),
    ))
}

/// `Err(why)` unless `a` and `b` are on the same filesystem and the same mount (a rename
/// between two mounts of one filesystem, e.g. bind mounts, fails with `EXDEV` too).
fn check_same_mount(a: &Dir, b: &Dir) -> Result<(), &'static str> {
    let (Ok(ma), Ok(mb)) = (a.dir_metadata(), b.dir_metadata()) else {
        return Err("filesystems that cannot be compared");
    };
    if ma.dev() != mb.dev() {
        return Err("different filesystems");
    }
    match (mount_id(a), mount_id(b)) {
        (Some(x), Some(y)) if x != y => Err("different mounts of the same filesystem"),
        _ => Ok(()),
    }
}

/// The mount a directory is on (Linux `statx` `STATX_MNT_ID`, kernel 5.8+), when known.
#[cfg(all(target_os = "linux", any(target_env = "gnu", target_env = "musl")))]
fn mount_id(dir: &Dir) -> Option<u64> {
    use std::os::fd::AsRawFd;
    let mut buf = std::mem::MaybeUninit::<libc::statx>::zeroed();
    // SAFETY: the descriptor is open for the call's duration, the path is a valid empty C
    // string (AT_EMPTY_PATH: stat the descriptor itself), and `buf` is large enough.
    let rc = unsafe {
        libc::statx(
            dir.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            buf.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: statx succeeded and filled the buffer (which was zeroed anyway).
    let st = unsafe { buf.assume_init() };
    (st.stx_mask & libc::STATX_MNT_ID != 0).then_some(st.stx_mnt_id)
}

/// The mount a directory is on: unknown on this platform (the device check still runs).
#[cfg(not(all(target_os = "linux", any(target_env = "gnu", target_env = "musl"))))]
fn mount_id(_dir: &Dir) -> Option<u64> {
    None
}

/// Moves uploads staged by an older server in the root's `.sockit-staging` into the new
/// staging directory (same names, so they still resume) and removes the old directory.
fn migrate_legacy_staging(root: &Dir, staging: &Dir) {
    let Ok(old) = root.open_dir(STAGING_DIR) else {
        return;
    };
    if let (Ok(a), Ok(b)) = (old.dir_metadata(), staging.dir_metadata()) {
        if a.dev() == b.dev() && a.ino() == b.ino() {
            return; // the staging directory is the legacy one itself
        }
    }
    let mut moved = 0usize;
    let mut left = 0usize;
    if let Ok(entries) = old.entries() {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let is_part = name.to_str().is_some_and(|n| n.ends_with(".part"));
            let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
            if is_part && is_file && old.rename(&name, staging, &name).is_ok() {
                moved += 1;
            } else {
                left += 1;
            }
        }
    }
    drop(old);
    if left == 0 && root.remove_dir(STAGING_DIR).is_ok() {
        tracing::info!(
            moved,
            "moved staged uploads from the files root's legacy `{STAGING_DIR}` into the staging directory"
        );
    } else {
        tracing::warn!(
            moved,
            left,
            "the files root's legacy `{STAGING_DIR}` still holds entries that are not staged uploads; left in place (hidden from clients)"
        );
    }
}

/// Runs filesystem work on the blocking pool.
///
/// # Errors
/// Whatever `f` returns; a panicked task becomes an internal I/O error.
pub(crate) async fn blocking<T, F>(root: &Arc<FilesRoot>, f: F) -> Result<T, FilesError>
where
    T: Send + 'static,
    F: FnOnce(&FilesRoot) -> Result<T, FilesError> + Send + 'static,
{
    let root = root.clone();
    tokio::task::spawn_blocking(move || f(&root))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "file service task failed");
            FilesError::io(
                &RelPath::root(),
                io::Error::other("a server task failed; see the server log"),
            )
        })?
}

/// The modification time of `meta`, with its nanoseconds.
pub(crate) fn mtime_of(meta: &Metadata) -> crate::meta::Mtime {
    crate::meta::Mtime::of(meta.mtime(), meta.mtime_nsec())
}

/// The permission bits of `meta` as `ls`/`stat` report them (`st_mode & 0o7777`).
pub(crate) fn mode_of(meta: &Metadata) -> u32 {
    meta.mode() & crate::meta::REPORTED_MODE_BITS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_hidden_name_is_stable() {
        let p = RelPath::parse("a/b").unwrap();
        assert_eq!(FilesRoot::staging_name(&p), FilesRoot::staging_name(&p));
        assert_ne!(
            FilesRoot::staging_name(&p),
            FilesRoot::staging_name(&RelPath::parse("a/c").unwrap())
        );
    }

    #[test]
    fn second_claim_is_busy() {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::open(dir.path(), FilesConfig::default()).unwrap();
        let p = RelPath::parse("x").unwrap();
        let g = root.claim_upload(&p).unwrap();
        assert!(matches!(root.claim_upload(&p), Err(FilesError::Busy(_))));
        drop(g);
        assert!(root.claim_upload(&p).is_ok());
    }

    #[test]
    fn promote_without_overwrite_keeps_existing() {
        let dir = tempfile::tempdir().unwrap();
        let root = FilesRoot::open(dir.path(), FilesConfig::default()).unwrap();
        std::fs::write(dir.path().join("x"), b"old").unwrap();
        let p = RelPath::parse("x").unwrap();
        let mut f = root.open_staging(&p, 0).unwrap();
        std::io::Write::write_all(&mut f, b"new").unwrap();
        assert!(matches!(
            root.promote(&p, false),
            Err(FilesError::Exists(_))
        ));
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"old");
        root.promote(&p, true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"new");
        assert_eq!(root.staged_len(&p), None);
    }
}
