//! Atomic file writes: a staging file in the target's directory, fsync, rename.

use std::io::Write;
use std::path::Path;

use crate::error::{ReaderError, Result};

/// Writes `bytes` to `path` so readers see either the old file or the whole new one.
/// The file is world-readable (0644), like a file a user creates: it holds demo books,
/// page caches and benchmark results, never secrets.
///
/// # Errors
/// The staging file cannot be created, written, synced or renamed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".staging-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .tempfile_in(dir)
        .map_err(|e| ReaderError::io(dir, e))?;
    tmp.write_all(bytes).map_err(|e| ReaderError::io(path, e))?;
    tmp.as_file()
        .sync_all()
        .map_err(|e| ReaderError::io(path, e))?;
    tmp.persist(path)
        .map_err(|e| ReaderError::io(path, e.error))?;
    Ok(())
}
