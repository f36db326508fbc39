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

/// What the cache holds for one path: the version it hashed and the hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    size: u64,
    mtime_ns: i128,
    ino: u64,
    hash: blake3::Hash,
}

impl Version {
    fn matches(&self, key: &FileKey) -> bool {
        (self.size, self.mtime_ns, self.ino) == (key.size, key.mtime_ns, key.ino)
    }
}

/// A bounded map from file version to hash, one version per path (a newer version of a
/// path replaces the older one). Indexed by path, so recording the hash of each file of a
/// large tree upload costs one lookup, not a scan of the cache.
#[derive(Debug)]
pub(crate) struct HashCache {
    map: Mutex<HashMap<RelPath, Version>>,
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
        self.lock()
            .get(&key.path)
            .filter(|v| v.matches(key))
            .map(|v| v.hash)
    }

    /// Remembers a hash; an older version of the same path is forgotten.
    pub fn insert(&self, key: FileKey, hash: blake3::Hash) {
        if self.capacity == 0 {
            return;
        }
        let mut map = self.lock();
        if map.len() >= self.capacity && !map.contains_key(&key.path) {
            // Evict an arbitrary entry: a miss costs one read of a file, nothing more.
            if let Some(k) = map.keys().next().cloned() {
                map.remove(&k);
            }
        }
        let version = Version {
            size: key.size,
            mtime_ns: key.mtime_ns,
            ino: key.ino,
            hash,
        };
        map.insert(key.path, version);
    }

    /// Forgets every version of `path`.
    pub fn forget(&self, path: &RelPath) {
        self.lock().remove(path);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<RelPath, Version>> {
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

    #[test]
    fn another_version_of_a_path_is_a_miss() {
        let c = HashCache::new(8);
        c.insert(key("a", 1), blake3::hash(b"x"));
        let mut other = key("a", 1);
        other.ino = 2;
        assert_eq!(c.get(&other), None);
        assert_eq!(c.get(&key("b", 1)), None);
        c.forget(&RelPath::parse("a").unwrap());
        assert_eq!(c.get(&key("a", 1)), None);
    }

    /// A full cache takes a new version of a path it holds without evicting another.
    #[test]
    fn replacing_a_version_evicts_nothing() {
        let c = HashCache::new(2);
        c.insert(key("a", 1), blake3::hash(b"x"));
        c.insert(key("b", 1), blake3::hash(b"y"));
        c.insert(key("a", 2), blake3::hash(b"z"));
        assert_eq!(c.get(&key("b", 1)), Some(blake3::hash(b"y")));
        assert_eq!(c.get(&key("a", 2)), Some(blake3::hash(b"z")));
    }
}
