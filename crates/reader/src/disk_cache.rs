//! A content-addressed disk cache for rendered pages, covers and thumbnails. Entries are
//! written atomically; the cache is trimmed (oldest first) when it grows past its cap.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{ReaderError, Result};

/// The cache directory and its size cap.
#[derive(Debug)]
pub struct DiskCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Writes since the last trim; trimming walks the directory, so not on every write.
    writes: AtomicU64,
}

impl DiskCache {
    /// A cache in `dir` (created), trimmed to `max_bytes`.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn new(dir: PathBuf, max_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(&dir).map_err(|e| ReaderError::io(&dir, e))?;
        Ok(Self {
            dir,
            max_bytes,
            writes: AtomicU64::new(0),
        })
    }

    fn path(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(safe)
    }

    /// The cached bytes for `key`, if present.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        std::fs::read(self.path(key)).ok()
    }

    /// Stores `bytes` under `key` (atomically).
    ///
    /// # Errors
    /// The entry cannot be written.
    pub fn put(&self, key: &str, bytes: &[u8]) -> Result<()> {
        crate::atomic::write(&self.path(key), bytes)?;
        if self.writes.fetch_add(1, Ordering::Relaxed) % 64 == 63 {
            self.trim();
        }
        Ok(())
    }

    /// Deletes the oldest entries until the cache is under its cap.
    pub fn trim(&self) {
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut entries: Vec<_> = rd
            .filter_map(|e| {
                let e = e.ok()?;
                let m = e.metadata().ok()?;
                Some((m.modified().ok()?, m.len(), e.path()))
            })
            .take(1_000_000)
            .collect();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        entries.sort();
        for (_, len, path) in entries {
            if total <= self.max_bytes {
                break;
            }
            if std::fs::remove_file(&path).is_ok() {
                total = total.saturating_sub(len);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_get_trim() {
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::new(dir.path().join("c"), 10).unwrap();
        c.put("a", b"12345678").unwrap();
        assert_eq!(c.get("a").unwrap(), b"12345678");
        c.put("../b", b"12345678").unwrap();
        assert!(dir.path().join("c").join(".._b").exists());
        c.trim();
        let left = std::fs::read_dir(dir.path().join("c")).unwrap().count();
        assert_eq!(left, 1);
    }
}
