//! Whole-file BLAKE3 hashes, remembered per file version.
//!
//! A `get` announces the whole file's hash in its header, before the first body byte, so
//! the hash must be known up front. Computing it on every `get` would read each file twice;
//! instead the server remembers hashes keyed by (path, size, mtime, inode): an upload
//! records the hash it computed while the bytes streamed in, and the first `get` of a file
//! put there by other means computes it once. Any change to the file changes the key, so a
//! stale hash is never served (a file rewritten in place within the same mtime tick with
//! the same size is caught by the client, which verifies the hash end to end).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::path::RelPath;

/// Identifies one version of a file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileKey {
    /// Path relative to the root.
    pub path: RelPath,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number (a rename over the path changes it).
    pub ino: u64,
}

/// A bounded map from file version to hash.
#[derive(Debug)]
pub(crate) struct HashCache {
    map: Mutex<HashMap<FileKey, blake3::Hash>>,
    capacity: usize,
}

impl HashCache {
    /// A cache holding at most `capacity` hashes (0 disables it).
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Mutex::new(HashMap::new()),
            capacity,
        }
    }

    /// The remembered hash of this file version.
    pub fn get(&self, key: &FileKey) -> Option<blake3::Hash> {
        self.lock().get(key).copied()
    }

    /// Remembers a hash; older versions of the same path are forgotten.
    pub fn insert(&self, key: FileKey, hash: blake3::Hash) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.lock();
        map.retain(|k, _| k.path != key.path);
        if map.len() >= self.capacity {
            // Evict an arbitrary entry: a miss costs one read of a file, nothing more.
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        map.insert(key, hash);
    }

    /// Forgets every version of `path`.
    pub fn forget(&self, path: &RelPath) {
        self.lock().retain(|k, _| &k.path != path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<FileKey, blake3::Hash>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(p: &str, size: u64) -> FileKey {
        FileKey {
            path: RelPath::parse(p).unwrap(),
            size,
            mtime_ns: 1,
            ino: 1,
        }
    }

    #[test]
    fn new_version_replaces_old() {
        let c = HashCache::new(8);
        c.insert(key("a", 1), blake3::hash(b"x"));
        c.insert(key("a", 2), blake3::hash(b"y"));
        assert_eq!(c.get(&key("a", 1)), None);
        assert_eq!(c.get(&key("a", 2)), Some(blake3::hash(b"y")));
    }

    #[test]
    fn bounded() {
        let c = HashCache::new(2);
        for i in 0..10 {
            c.insert(key(&format!("f{i}"), 1), blake3::hash(b"x"));
        }
        assert!(c.lock().len() <= 2);
    }
}
