//! File access confined to the server root.
//!
//! Two layers: [`resolve`] checks the requested name as a string (no `..`, no NUL, no
//! drive prefix; `\` is a separator; a leading `/` means the root, as with tftp-hpa
//! `--secure`), then every open goes through a `cap-std` directory handle, so a symlink
//! that points outside the root cannot be followed either.
//!
//! Uploads are written to a staging file next to the target, fsynced, and only then
//! renamed (or, without overwrite, hard-linked so an existing file is never replaced)
//! onto the target name. A staging file that is not committed is removed when dropped.

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a requested name is refused before touching the filesystem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// Empty name, or one naming the root itself.
    #[error("empty file name")]
    Empty,
    /// A `..` component.
    #[error("'..' is not allowed in {0:?}")]
    ParentComponent(String),
    /// A NUL or other control character.
    #[error("control character in file name {0:?}")]
    ControlCharacter(String),
    /// A DOS drive prefix such as `C:`.
    #[error("drive prefix in {0:?}")]
    DrivePrefix(String),
}

/// Turns a requested file name into a relative path inside the root.
///
/// `\` and `/` both separate components; leading separators, empty and `.` components
/// are dropped (so `/pxelinux.0` names `ROOT/pxelinux.0`, as tftp-hpa `--secure` does).
///
/// # Errors
/// [`PathError`] for anything that could leave the root or is not a file name.
pub fn resolve(name: &str) -> Result<PathBuf, PathError> {
    if name.chars().any(char::is_control) {
        return Err(PathError::ControlCharacter(name.to_owned()));
    }
    let mut path = PathBuf::new();
    for (i, component) in name.split(['/', '\\']).enumerate() {
        match component {
            "" | "." => continue,
            ".." => return Err(PathError::ParentComponent(name.to_owned())),
            c if i == 0 && c.len() == 2 && c.ends_with(':') => {
                return Err(PathError::DrivePrefix(name.to_owned()))
            }
            c => path.push(c),
        }
    }
    if path.as_os_str().is_empty() {
        return Err(PathError::Empty);
    }
    Ok(path)
}

/// The server root, opened once as a capability.
#[derive(Debug)]
pub struct Root {
    dir: Dir,
    path: PathBuf,
}

/// Distinguishes staging files of concurrent uploads in one process.
static STAGING_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Root {
    /// Opens `path` as the root.
    ///
    /// # Errors
    /// The error opening the directory.
    pub fn open(path: &Path) -> io::Result<Root> {
        Ok(Root {
            dir: Dir::open_ambient_dir(path, ambient_authority())?,
            path: path.to_owned(),
        })
    }

    /// The root's path as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens a regular file for reading; returns it with its size.
    ///
    /// # Errors
    /// `NotFound`, `PermissionDenied` (including escapes through symlinks), or
    /// `InvalidInput` when the name is not a regular file.
    pub fn open_read(&self, relative: &Path) -> io::Result<(std::fs::File, u64)> {
        let file = self.dir.open(relative)?.into_std();
        let metadata = file.metadata()?;
        if !metadata.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        Ok((file, metadata.len()))
    }

    /// Whether `relative` exists (without following a final symlink).
    pub fn exists(&self, relative: &Path) -> bool {
        self.dir.symlink_metadata(relative).is_ok()
    }

    /// Creates a staging file for an upload to `relative`.
    ///
    /// # Errors
    /// `NotFound` when the parent directory does not exist, `AlreadyExists` when the
    /// target exists and `overwrite` is false, `PermissionDenied` on escape attempts and
    /// when the target is a symlink.
    pub fn create_staging(&self, relative: &Path, overwrite: bool) -> io::Result<Staging> {
        let target = relative
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
            .to_owned();
        let parent = match relative.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => self.dir.open_dir(parent)?,
            _ => self.dir.try_clone()?,
        };
        if let Ok(meta) = parent.symlink_metadata(&target) {
            if !overwrite {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            if meta.is_symlink() {
                // Replacing a symlink would be safe (rename does not follow it) but it
                // silently breaks an administrator's setup; refuse instead.
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "target is a symbolic link",
                ));
            }
            if meta.is_dir() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "target is a directory",
                ));
            }
        }
        let n = STAGING_COUNTER.fetch_add(1, Ordering::Relaxed);
        let mut staging = std::ffi::OsString::from(".");
        staging.push(&target);
        staging.push(format!(".sockit-{}-{n}.part", std::process::id()));
        let staging = PathBuf::from(staging);
        let file = parent
            .open_with(&staging, OpenOptions::new().write(true).create_new(true))?
            .into_std();
        Ok(Staging {
            parent,
            staging,
            target: PathBuf::from(target),
            file: Some(file),
            committed: false,
        })
    }
}

/// An upload in progress: a staging file that becomes the target only on [`Staging::commit`].
#[derive(Debug)]
pub struct Staging {
    parent: Dir,
    staging: PathBuf,
    target: PathBuf,
    file: Option<std::fs::File>,
    committed: bool,
}

impl Staging {
    /// Takes the open staging file (once) to write into.
    pub fn take_file(&mut self) -> Option<std::fs::File> {
        self.file.take()
    }

    /// Moves the (already fsynced) staging file onto the target and syncs the directory.
    /// Without `overwrite`, a target created meanwhile is not replaced.
    ///
    /// # Errors
    /// `AlreadyExists` without overwrite when the target appeared, or the rename error.
    pub fn commit(mut self, overwrite: bool) -> io::Result<()> {
        if overwrite {
            self.parent
                .rename(&self.staging, &self.parent, &self.target)?;
        } else {
            self.parent
                .hard_link(&self.staging, &self.parent, &self.target)?;
            let _ = self.parent.remove_file(&self.staging);
        }
        self.committed = true;
        // Make the rename durable; some filesystems cannot sync directories.
        if let Ok(dir) = self.parent.try_clone() {
            let _ = dir.into_std_file().sync_all();
        }
        Ok(())
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.parent.remove_file(&self.staging);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        assert_eq!(resolve("a.bin"), Ok(PathBuf::from("a.bin")));
    }

    #[test]
    fn backslash_separator() {
        assert_eq!(resolve("boot\\grub\\x"), Ok(PathBuf::from("boot/grub/x")));
    }

    #[test]
    fn leading_slash_is_root() {
        assert_eq!(resolve("/pxelinux.0"), Ok(PathBuf::from("pxelinux.0")));
    }

    #[test]
    fn dot_dot() {
        assert!(matches!(
            resolve("../etc/passwd"),
            Err(PathError::ParentComponent(_))
        ));
        assert!(matches!(
            resolve("a/../../b"),
            Err(PathError::ParentComponent(_))
        ));
        assert!(matches!(
            resolve("a\\..\\..\\b"),
            Err(PathError::ParentComponent(_))
        ));
    }

    #[test]
    fn nul() {
        assert!(matches!(
            resolve("a\0b"),
            Err(PathError::ControlCharacter(_))
        ));
    }

    #[test]
    fn drive() {
        assert!(matches!(
            resolve("C:\\boot.ini"),
            Err(PathError::DrivePrefix(_))
        ));
    }

    #[test]
    fn empty() {
        assert_eq!(resolve(""), Err(PathError::Empty));
        assert_eq!(resolve("/./"), Err(PathError::Empty));
    }

    #[test]
    fn symlink_escape_refused() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), b"x").unwrap();
        let root_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path().join("secret"), root_dir.path().join("link"))
            .unwrap();
        let root = Root::open(root_dir.path()).unwrap();
        assert!(root.open_read(Path::new("link")).is_err());
    }

    #[test]
    fn staging_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        drop(root.create_staging(Path::new("f"), false).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let staging = root.create_staging(Path::new("f"), false).unwrap();
        staging.commit(false).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
    }

    #[test]
    fn no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"old").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let err = root.create_staging(Path::new("f"), false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }
}
