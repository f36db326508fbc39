//! File access confined to a served directory: one rule for every service that opens a
//! file a client names.
//!
//! Two fences:
//!
//! 1. [`check`] looks at the client's name as a string, before any filesystem call: no
//!    `..`, no NUL or other control character, no drive prefix (`C:`); `\` and `/` both
//!    separate components; empty and `.` components are dropped. A leading separator is
//!    decided by the caller's [`Leading`] policy: TFTP reads it as the root, as tftp-hpa
//!    `--secure` does ([`Leading::Root`]); the reader refuses it ([`Leading::Refuse`]).
//!    What passes is a [`RelPath`]; what does not is a [`NameError`], whose text names the
//!    rule, never a server path.
//! 2. Every open goes through [`Root`], a `cap-std` directory handle: the path is resolved
//!    beneath the handle by the kernel (`openat2` with `RESOLVE_BENEATH` where Linux has
//!    it), so a symlink that leads outside, even one swapped in after the check, is
//!    refused ([`is_escape`]). The file that is read is the file that was checked.
//!
//! Uploads are written to a staging file next to the target ([`Root::create_staging`]),
//! fsynced by the caller, and only then renamed (or, without overwrite, hard-linked so an
//! existing file is never replaced) onto the target name ([`Staging::commit`]). A staging
//! file that is not committed is removed when dropped.

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptions};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// What a leading `/` (or `\`) in a client's name means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leading {
    /// The root of the served tree: `/pxelinux.0` is `ROOT/pxelinux.0` (TFTP, as
    /// tftp-hpa `--secure`).
    Root,
    /// Refused with [`NameError::Absolute`] (the reader: names are relative).
    Refuse,
}

/// Why a client's name is refused before touching the filesystem. The text names the
/// rule only: neither the name (the caller may quote it) nor any server path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, or naming the root itself (`/`, `./`).
    #[error("empty file name")]
    Empty,
    /// A `..` component.
    #[error("`..` is not allowed: names stay inside the served directory")]
    ParentDir,
    /// A NUL or other control character.
    #[error("control characters (NUL, newline, ...) are not allowed in file names")]
    Control,
    /// A DOS drive prefix such as `C:`.
    #[error("drive prefixes such as `C:` are not allowed")]
    Drive,
    /// A leading `/` or `\` under [`Leading::Refuse`].
    #[error("absolute names are not allowed: names are relative to the served directory")]
    Absolute,
}

/// A checked name relative to a served directory: at least one component, each neither
/// empty, `.` nor `..`, none holding a separator, a control character or a drive prefix.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelPath {
    /// The components joined with `/`.
    joined: String,
}

impl RelPath {
    /// The name with its components joined by `/` (`a\b` and `/a//b` both give `a/b`).
    pub fn as_str(&self) -> &str {
        &self.joined
    }

    /// The name as a relative path.
    pub fn as_path(&self) -> &Path {
        Path::new(&self.joined)
    }

    /// The components, in order.
    pub fn components(&self) -> impl Iterator<Item = &str> {
        self.joined.split('/')
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.joined.rsplit('/').next().unwrap_or(&self.joined)
    }

    /// The name as an owned relative path.
    pub fn into_path_buf(self) -> PathBuf {
        PathBuf::from(self.joined)
    }
}

impl AsRef<Path> for RelPath {
    fn as_ref(&self) -> &Path {
        self.as_path()
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.joined)
    }
}

/// Whether `component` starts like a DOS drive: a letter then `:` (`C:`, `C:x`), or any
/// two-character component ending in `:`.
fn is_drive(component: &str) -> bool {
    let b = component.as_bytes();
    b.len() >= 2 && b[1] == b':' && (b[0].is_ascii_alphabetic() || b.len() == 2)
}

/// Checks a client's file name lexically and turns it into a [`RelPath`]. Total: any
/// string gives a path or an error, never a panic.
///
/// # Errors
/// [`NameError`] for anything that could leave the served directory or names no file.
pub fn check(name: &str, leading: Leading) -> Result<RelPath, NameError> {
    if name.chars().any(char::is_control) {
        return Err(NameError::Control);
    }
    if leading == Leading::Refuse && name.starts_with(['/', '\\']) {
        return Err(NameError::Absolute);
    }
    let mut joined = String::with_capacity(name.len());
    for component in name.split(['/', '\\']) {
        match component {
            "" | "." => continue,
            ".." => return Err(NameError::ParentDir),
            c if joined.is_empty() && is_drive(c) => return Err(NameError::Drive),
            c => {
                if !joined.is_empty() {
                    joined.push('/');
                }
                joined.push_str(c);
            }
        }
    }
    if joined.is_empty() {
        return Err(NameError::Empty);
    }
    Ok(RelPath { joined })
}

/// Whether `err` is the refusal of a path that led outside the [`Root`] (through a
/// symlink, or an absolute or `..` path given to it). `cap-std` reports those as
/// `PermissionDenied` without an OS error code; a file the server may not read has one.
pub fn is_escape(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::PermissionDenied && err.raw_os_error().is_none()
}

/// A served directory, opened once as a capability; every access is resolved beneath it.
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

    /// The root's path as given (for the server's logs, never for clients).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory handle, for accesses this module does not offer.
    pub fn dir(&self) -> &Dir {
        &self.dir
    }

    /// Opens a regular file for reading; returns it with its size.
    ///
    /// The open does not block on a FIFO or a device (it is made non-blocking, and only
    /// a regular file is returned).
    ///
    /// # Errors
    /// `NotFound`, `PermissionDenied` (escapes through symlinks included: see
    /// [`is_escape`]), or `InvalidInput` when the name is not a regular file.
    pub fn open_read(&self, relative: impl AsRef<Path>) -> io::Result<(std::fs::File, u64)> {
        let mut options = OpenOptions::new();
        options.read(true);
        #[cfg(unix)]
        {
            use cap_std::fs::OpenOptionsExt;
            options.custom_flags(libc::O_NONBLOCK);
        }
        let file = self.dir.open_with(relative.as_ref(), &options)?.into_std();
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
    pub fn exists(&self, relative: impl AsRef<Path>) -> bool {
        self.dir.symlink_metadata(relative.as_ref()).is_ok()
    }

    /// The metadata of `relative`, following symlinks that stay inside the root.
    ///
    /// # Errors
    /// As [`Root::open_read`], for any kind of file.
    pub fn metadata(&self, relative: impl AsRef<Path>) -> io::Result<cap_std::fs::Metadata> {
        self.dir.metadata(relative.as_ref())
    }

    /// Creates a staging file for an upload to `relative`.
    ///
    /// # Errors
    /// `NotFound` when the parent directory does not exist, `AlreadyExists` when the
    /// target exists and `overwrite` is false, `PermissionDenied` on escape attempts and
    /// when the target is a symlink, `InvalidInput` when it is a directory.
    pub fn create_staging(
        &self,
        relative: impl AsRef<Path>,
        overwrite: bool,
    ) -> io::Result<Staging> {
        let relative = relative.as_ref();
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
    use proptest::prelude::*;
    use std::io::{Read, Write};
    use std::path::Component;

    fn tftp(name: &str) -> Result<String, NameError> {
        check(name, Leading::Root).map(|p| p.as_str().to_owned())
    }

    fn reader(name: &str) -> Result<String, NameError> {
        check(name, Leading::Refuse).map(|p| p.as_str().to_owned())
    }

    #[test]
    fn plain_names() {
        assert_eq!(tftp("a.bin"), Ok("a.bin".into()));
        assert_eq!(reader("a/./b.txt"), Ok("a/b.txt".into()));
        assert_eq!(reader("挽歌.pdf"), Ok("挽歌.pdf".into()));
        assert_eq!(reader("a b.txt"), Ok("a b.txt".into()));
        assert_eq!(tftp("a//b/"), Ok("a/b".into()));
    }

    #[test]
    fn backslash_separates() {
        assert_eq!(tftp("boot\\grub\\x"), Ok("boot/grub/x".into()));
        assert_eq!(reader("a\\b"), Ok("a/b".into()));
    }

    #[test]
    fn leading_slash_is_the_root_or_refused() {
        assert_eq!(tftp("/pxelinux.0"), Ok("pxelinux.0".into()));
        assert_eq!(tftp("\\boot.ini"), Ok("boot.ini".into()));
        assert_eq!(tftp("/etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(reader("/etc/passwd"), Err(NameError::Absolute));
        assert_eq!(reader("\\x"), Err(NameError::Absolute));
    }

    #[test]
    fn parent_components() {
        for name in ["../etc/passwd", "a/../../b", "a\\..\\..\\b", "..", "x/.."] {
            assert_eq!(tftp(name), Err(NameError::ParentDir), "{name}");
            assert_eq!(reader(name), Err(NameError::ParentDir), "{name}");
        }
        assert_eq!(tftp("/../x"), Err(NameError::ParentDir));
        // Dots that are not a whole component are names.
        assert_eq!(reader("...txt"), Ok("...txt".into()));
        assert_eq!(reader("a..b"), Ok("a..b".into()));
    }

    #[test]
    fn control_characters() {
        for name in [
            "a\0b",
            "good.txt\0/../../secret.txt",
            "a\nb",
            "\u{7f}",
            "\u{85}",
        ] {
            assert_eq!(tftp(name), Err(NameError::Control), "{name:?}");
            assert_eq!(reader(name), Err(NameError::Control), "{name:?}");
        }
    }

    #[test]
    fn drive_prefixes() {
        for name in ["C:\\boot.ini", "C:x", "c:", "1:"] {
            assert_eq!(tftp(name), Err(NameError::Drive), "{name}");
            assert_eq!(reader(name), Err(NameError::Drive), "{name}");
        }
        assert_eq!(tftp("/C:/boot.ini"), Err(NameError::Drive));
        // A colon later in a name is only a character.
        assert_eq!(reader("a/C:"), Ok("a/C:".into()));
        assert_eq!(reader("ab:c"), Ok("ab:c".into()));
    }

    #[test]
    fn empty_names() {
        for name in ["", "/./", ".", "./", "//"] {
            assert_eq!(tftp(name), Err(NameError::Empty), "{name}");
        }
        assert_eq!(reader(""), Err(NameError::Empty));
        assert_eq!(reader("./"), Err(NameError::Empty));
    }

    #[test]
    fn errors_name_no_path() {
        for e in [
            NameError::Empty,
            NameError::ParentDir,
            NameError::Control,
            NameError::Drive,
            NameError::Absolute,
        ] {
            let text = e.to_string();
            assert!(!text.contains('/'), "{text}");
        }
    }

    fn assert_confined(p: &RelPath) {
        assert!(!p.as_str().is_empty());
        assert!(p.as_path().is_relative());
        for c in p.as_path().components() {
            assert!(matches!(c, Component::Normal(_)), "{p}: {c:?}");
        }
        for c in p.components() {
            assert!(!c.is_empty() && c != "." && c != "..", "{p}");
            assert!(!c.contains(['/', '\\']) && !c.chars().any(char::is_control));
        }
    }

    /// Names built from the pieces that matter: separators, dots, drive letters, NUL.
    fn tricky() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            Just("/".to_owned()),
            Just("\\".to_owned()),
            Just(".".to_owned()),
            Just("..".to_owned()),
            Just(":".to_owned()),
            Just("C:".to_owned()),
            Just("\0".to_owned()),
            Just("%2e".to_owned()),
            "[a-z]{1,3}",
            any::<char>().prop_map(String::from),
        ];
        prop::collection::vec(piece, 0..12).prop_map(|v| v.concat())
    }

    proptest! {
        #[test]
        fn any_string_is_checked_without_panic(name in any::<String>()) {
            for leading in [Leading::Root, Leading::Refuse] {
                if let Ok(p) = check(&name, leading) {
                    assert_confined(&p);
                }
            }
        }

        #[test]
        fn tricky_names_never_leave_the_root(name in tricky()) {
            for leading in [Leading::Root, Leading::Refuse] {
                if let Ok(p) = check(&name, leading) {
                    assert_confined(&p);
                    // Checking the result again changes nothing.
                    prop_assert_eq!(check(p.as_str(), leading), Ok(p.clone()));
                }
            }
            if name.starts_with(['/', '\\']) {
                prop_assert!(check(&name, Leading::Refuse).is_err());
            }
        }
    }

    #[test]
    fn open_read_returns_the_file_and_its_size() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/in.txt"), b"hello").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let (mut file, size) = root
            .open_read(check("sub/in.txt", Leading::Refuse).unwrap())
            .unwrap();
        assert_eq!(size, 5);
        let mut text = String::new();
        file.read_to_string(&mut text).unwrap();
        assert_eq!(text, "hello");
        assert!(root.exists("sub/in.txt"));
        assert!(!root.exists("nope"));
        assert_eq!(root.metadata("sub/in.txt").unwrap().len(), 5);
        let missing = root.open_read("nope.txt").unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
        assert!(!is_escape(&missing));
        let directory = root.open_read("sub").unwrap_err();
        assert_eq!(directory.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn symlinks_out_are_refused() {
        let top = tempfile::tempdir().unwrap();
        let books = top.path().join("books");
        std::fs::create_dir(&books).unwrap();
        std::fs::write(top.path().join("secret"), b"s").unwrap();
        std::fs::write(books.join("in.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), books.join("abs")).unwrap();
        std::os::unix::fs::symlink("../secret", books.join("rel")).unwrap();
        std::os::unix::fs::symlink(top.path(), books.join("updir")).unwrap();
        std::os::unix::fs::symlink("in.txt", books.join("inside")).unwrap();
        let root = Root::open(&books).unwrap();
        for name in ["abs", "rel", "updir/secret"] {
            let err = root.open_read(name).unwrap_err();
            assert!(is_escape(&err), "{name}: {err}");
            assert!(root.metadata(name).is_err(), "{name}");
        }
        // Paths that skip the lexical check are refused by the handle all the same.
        assert!(is_escape(&root.open_read("../secret").unwrap_err()));
        assert!(is_escape(
            &root.open_read(top.path().join("secret")).unwrap_err()
        ));
        // A symlink that stays inside is followed.
        assert_eq!(root.open_read("inside").unwrap().1, 1);
    }

    #[test]
    fn a_symlink_swapped_in_after_the_check_is_refused() {
        let top = tempfile::tempdir().unwrap();
        let books = top.path().join("books");
        std::fs::create_dir(&books).unwrap();
        std::fs::write(top.path().join("secret"), b"s").unwrap();
        std::fs::write(books.join("book.txt"), b"x").unwrap();
        let root = Root::open(&books).unwrap();
        let name = check("book.txt", Leading::Refuse).unwrap();
        assert!(root.exists(&name));
        std::fs::remove_file(books.join("book.txt")).unwrap();
        std::os::unix::fs::symlink(top.path().join("secret"), books.join("book.txt")).unwrap();
        assert!(is_escape(&root.open_read(&name).unwrap_err()));
    }

    #[test]
    fn a_fifo_is_not_a_regular_file_and_does_not_block() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(fifo.as_os_str()))
            .unwrap();
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let root = Root::open(dir.path()).unwrap();
        let err = root.open_read("fifo").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn staging_removed_unless_committed() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::open(dir.path()).unwrap();
        drop(root.create_staging("f", false).unwrap());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        let mut staging = root.create_staging("f", false).unwrap();
        let mut file = staging.take_file().unwrap();
        file.write_all(b"new").unwrap();
        file.sync_all().unwrap();
        assert!(staging.take_file().is_none());
        staging.commit(false).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("f")]);
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");
    }

    #[test]
    fn staging_in_a_subdirectory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        root.create_staging("d/f", false)
            .unwrap()
            .commit(false)
            .unwrap();
        assert!(dir.path().join("d/f").is_file());
        let missing = root.create_staging("nope/f", false).unwrap_err();
        assert_eq!(missing.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"old").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let err = root.create_staging("f", false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
    }

    #[test]
    fn overwrite_replaces_but_a_target_created_meanwhile_is_kept_without_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("f"), b"old").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let mut staging = root.create_staging("f", true).unwrap();
        staging.take_file().unwrap().write_all(b"new").unwrap();
        staging.commit(true).unwrap();
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");

        let staging = root.create_staging("g", false).unwrap();
        std::fs::write(dir.path().join("g"), b"theirs").unwrap();
        let err = staging.commit(false).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(dir.path().join("g")).unwrap(), b"theirs");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 2, "the staging file is gone");
    }

    #[test]
    fn symlink_and_directory_targets_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("d")).unwrap();
        std::os::unix::fs::symlink("d", dir.path().join("l")).unwrap();
        let root = Root::open(dir.path()).unwrap();
        let link = root.create_staging("l", true).unwrap_err();
        assert_eq!(link.kind(), io::ErrorKind::PermissionDenied);
        let directory = root.create_staging("d", true).unwrap_err();
        assert_eq!(directory.kind(), io::ErrorKind::InvalidInput);
        let escape = root.create_staging("../x", true).unwrap_err();
        assert!(is_escape(&escape), "{escape}");
    }
}
