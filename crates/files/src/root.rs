//! The data root as a capability directory, with its staging area, the registry of uploads
//! in progress and the hash cache.
//!
//! Every filesystem access of the file service goes through [`FilesRoot::dir`], a
//! `cap_std::fs::Dir`: paths are resolved by the capability filesystem, which refuses any
//! resolution that would leave the root (`..` through a symlink, absolute symlink targets,
//! symlinks pointing outside) with `PermissionDenied`, mapped to `denied`.

use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, Metadata, MetadataExt, OpenOptions};

use crate::error::FilesError;
use crate::hash_cache::{FileKey, HashCache};
use crate::path::{RelPath, STAGING_DIR};

/// Limits and settings of the file service (each has a `sockit serve` flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesConfig {
    /// Largest file an upload may produce, in bytes (`--max-upload`).
    pub max_upload: u64,
    /// Staged uploads untouched this long are deleted at start (`--staging-ttl`).
    pub staging_ttl: Duration,
    /// How many whole-file hashes the server remembers (`--hash-cache`).
    pub hash_cache_entries: usize,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_upload: 16 * 1024 * 1024 * 1024,
            staging_ttl: Duration::from_secs(7 * 24 * 3600),
            hash_cache_entries: 4096,
        }
    }
}

/// The shared state of the file service.
#[derive(Debug)]
pub struct FilesRoot {
    dir: Dir,
    staging: Dir,
    config: FilesConfig,
    /// Paths with an upload running now (a second one gets `busy`).
    uploads: Mutex<HashSet<RelPath>>,
    hashes: HashCache,
}

/// Holds a path in the upload registry; dropping it frees the path.
#[derive(Debug)]
pub struct UploadGuard {
    root: Arc<FilesRoot>,
    path: RelPath,
}

impl Drop for UploadGuard {
    fn drop(&mut self) {
        self.root.lock_uploads().remove(&self.path);
    }
}

impl FilesRoot {
    /// Opens the data root `path` (which must exist), creates its staging area and deletes
    /// staged uploads older than the TTL.
    ///
    /// # Errors
    /// The root cannot be opened or the staging area cannot be created.
    pub fn open(path: &Path, config: FilesConfig) -> io::Result<Arc<Self>> {
        let dir = Dir::open_ambient_dir(path, ambient_authority())?;
        match dir.create_dir(STAGING_DIR) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        let staging = dir.open_dir(STAGING_DIR)?;
        let root = Self {
            dir,
            staging,
            config,
            uploads: Mutex::new(HashSet::new()),
            hashes: HashCache::new(config.hash_cache_entries),
        };
        root.clean_staging();
        Ok(Arc::new(root))
    }

    /// The root directory capability.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// The staging directory capability.
    pub fn staging(&self) -> &Dir {
        &self.staging
    }

    /// The settings.
    pub fn config(&self) -> &FilesConfig {
        &self.config
    }

    /// The hash cache.
    pub fn hashes(&self) -> &HashCache {
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
    pub fn is_uploading(&self, path: &RelPath) -> bool {
        self.lock_uploads().contains(path)
    }

    /// Claims `path` for an upload.
    ///
    /// # Errors
    /// [`FilesError::Busy`] when another upload of it is running.
    pub fn claim_upload(self: &Arc<Self>, path: &RelPath) -> Result<UploadGuard, FilesError> {
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
    pub fn open_staging(&self, path: &RelPath, offset: u64) -> Result<std::fs::File, FilesError> {
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

    /// Deletes the staging file of `path` (if any).
    pub fn discard_staging(&self, path: &RelPath) {
        let _ = self.staging.remove_file(Self::staging_name(path));
    }

    /// Moves the complete staging file of `path` into place. Without `overwrite` an existing
    /// target is never replaced (a hard link, which fails if the name exists, then the
    /// staging name is removed); with it, an atomic rename replaces it. The parent directory
    /// is fsynced so the new name survives a crash.
    ///
    /// # Errors
    /// [`FilesError::Exists`], or an I/O error.
    pub fn promote(&self, path: &RelPath, overwrite: bool) -> Result<(), FilesError> {
        let name = Self::staging_name(path);
        let target = path.to_path();
        if overwrite {
            self.staging
                .rename(&name, &self.dir, &target)
                .map_err(|e| FilesError::io(path, e))?;
        } else {
            match self.staging.hard_link(&name, &self.dir, &target) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(FilesError::Exists(path.clone()))
                }
                Err(e) => return Err(FilesError::io(path, e)),
            }
            let _ = self.staging.remove_file(&name);
        }
        let parent = path.parent().unwrap_or_else(RelPath::root);
        if let Ok(d) = self.dir.open_dir(parent.to_path()) {
            if let Ok(f) = d.open(".") {
                let _ = f.sync_all();
            }
        }
        Ok(())
    }

    /// The cache key of an open file's current version.
    pub fn file_key(path: &RelPath, meta: &Metadata) -> FileKey {
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

/// Runs filesystem work on the blocking pool.
///
/// # Errors
/// Whatever `f` returns; a panicked task becomes an internal I/O error.
pub async fn blocking<T, F>(root: &Arc<FilesRoot>, f: F) -> Result<T, FilesError>
where
    T: Send + 'static,
    F: FnOnce(&FilesRoot) -> Result<T, FilesError> + Send + 'static,
{
    let root = root.clone();
    tokio::task::spawn_blocking(move || f(&root))
        .await
        .map_err(|e| FilesError::io(&RelPath::root(), io::Error::other(e.to_string())))?
}

/// Seconds since the epoch of a modification time (0 when unknown).
pub fn mtime_secs(meta: &Metadata) -> i64 {
    meta.mtime()
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
