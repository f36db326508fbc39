//! Atomic file writes: every file sockit writes for keeps (keys, certificates, addr files,
//! catalogs, caches) is written to a staging file in the same directory, synced, and
//! renamed over the target, so a reader sees the old file or the whole new one, never a
//! torn one, even after a crash.

use std::io::Write;
use std::path::Path;

/// Who may read a file written by [`write_atomic`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// 0644: a file a user would create (addr files, caches, benchmark results).
    Public,
    /// 0600: secrets (keys, private certificates).
    Private,
}

impl Mode {
    fn bits(self) -> u32 {
        match self {
            Mode::Public => 0o644,
            Mode::Private => 0o600,
        }
    }
}

/// Writes `bytes` to `path` atomically with the permissions of `mode`: staging file in the
/// target's directory, write, fsync, rename, fsync of the directory (the rename is durable
/// only once the directory entry is).
///
/// # Errors
/// The staging file cannot be created, written, synced or renamed.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: Mode) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".staging-")
        .permissions(std::fs::Permissions::from_mode(mode.bits()))
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn replaces_whole_file_with_the_asked_mode_and_leaves_no_staging_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, b"old contents, longer than the new").unwrap();
        write_atomic(&path, b"new", Mode::Private).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        write_atomic(&path, b"public", Mode::Public).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("key")]);
    }

    #[test]
    fn a_missing_directory_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no/such/dir/file");
        assert!(write_atomic(&path, b"x", Mode::Public).is_err());
    }
}
