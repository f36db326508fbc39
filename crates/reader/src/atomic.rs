//! Atomic file writes with the reader's error type ([`sockit_runtime::fs::write_atomic`]).

use std::path::Path;

use crate::error::{ReaderError, Result};

/// Writes `bytes` to `path` so readers see either the old file or the whole new one.
/// The file is world-readable (0644), like a file a user creates: it holds demo books,
/// page caches and benchmark results, never secrets.
///
/// # Errors
/// The staging file cannot be created, written, synced or renamed.
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    sockit_runtime::fs::write_atomic(path, bytes, sockit_runtime::fs::Mode::Public)
        .map_err(|e| ReaderError::io(path, e))
}
