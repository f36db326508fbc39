//! File metadata the service keeps (permission bits and modification times) and the rule
//! that decides which symlinks may be created.
//!
//! Both sides use these helpers: the server when it commits an upload, creates a symlink or
//! sets a directory's attributes; the client when it commits a download or recreates a
//! tree. See `docs/files.md` ("Metadata") for what is kept and what is not.

use std::ffi::CString;
use std::fs::{File, FileTimes, Permissions};
use std::io;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::path::RelPath;

/// The permission bits a transfer applies: `rwx` for user, group and other. Set-id and
/// sticky bits are reported by `ls`/`stat` but never applied.
pub const APPLIED_MODE_BITS: u32 = 0o777;

/// The bits `ls`/`stat` report: the permission bits with set-id and sticky.
pub const REPORTED_MODE_BITS: u32 = 0o7777;

/// A modification time: seconds since the epoch (negative before 1970) and nanoseconds
/// within that second (`0..1_000_000_000`), as `stat` reports them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mtime {
    /// Whole seconds since 1970-01-01 UTC.
    pub secs: i64,
    /// Nanoseconds within the second.
    pub nsec: u32,
}

impl Mtime {
    /// A checked time from the protocol's `mtime` and `mtime_nsec` fields.
    ///
    /// # Errors
    /// `nsec` is not below one second.
    pub fn new(secs: i64, nsec: u32) -> Result<Self, String> {
        if nsec >= 1_000_000_000 {
            return Err(format!("`mtime_nsec` must be below 1000000000, got {nsec}"));
        }
        Ok(Self { secs, nsec })
    }

    /// The modification time of `meta` (std or cap-std metadata, via their `MetadataExt`).
    pub fn of(secs: i64, nsec: i64) -> Self {
        Self {
            secs,
            nsec: u32::try_from(nsec.clamp(0, 999_999_999)).unwrap_or(0),
        }
    }

    /// As a [`SystemTime`] (`None` when the platform cannot represent it).
    pub fn to_system_time(self) -> Option<SystemTime> {
        let nanos = Duration::from_nanos(u64::from(self.nsec));
        if self.secs >= 0 {
            UNIX_EPOCH.checked_add(Duration::from_secs(self.secs.unsigned_abs()) + nanos)
        } else {
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(self.secs.unsigned_abs()))?
                .checked_add(nanos)
        }
    }
}

/// Checks a `mode` from the protocol: at most the twelve permission bits.
///
/// # Errors
/// Bits above `0o7777` (file type bits do not belong in `mode`).
pub fn check_mode(mode: u32) -> Result<u32, String> {
    if mode > REPORTED_MODE_BITS {
        return Err(format!(
            "`mode` must be permission bits (at most 0o7777 = 4095), got {mode}"
        ));
    }
    Ok(mode)
}

/// Applies `mode` (masked to [`APPLIED_MODE_BITS`]) and `mtime` to an open file or
/// directory. The access time is left as it is (rsync does not keep it either).
///
/// # Errors
/// `fchmod` or `futimens` failed.
pub fn apply_to_file(file: &File, mode: Option<u32>, mtime: Option<Mtime>) -> io::Result<()> {
    if let Some(mode) = mode {
        file.set_permissions(Permissions::from_mode(mode & APPLIED_MODE_BITS))?;
    }
    if let Some(t) = mtime.and_then(Mtime::to_system_time) {
        file.set_times(FileTimes::new().set_modified(t))?;
    }
    Ok(())
}

/// Sets the modification time of the symlink `name` in the directory `dir_fd` itself (not
/// of what it points to). `dir_fd` may be `libc::AT_FDCWD` with `name` a whole path.
///
/// # Errors
/// The name holds a NUL byte, or `utimensat` failed.
pub fn set_symlink_mtime(dir_fd: RawFd, name: &Path, mtime: Mtime) -> io::Result<()> {
    let c = CString::new(name.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "name holds a NUL byte"))?;
    let times = [
        libc::timespec {
            tv_sec: 0,
            tv_nsec: libc::UTIME_OMIT,
        },
        libc::timespec {
            tv_sec: mtime.secs as libc::time_t,
            tv_nsec: libc::c_long::from(i32::try_from(mtime.nsec).unwrap_or(0)),
        },
    ];
    // SAFETY: `c` is a NUL-terminated string and `times` two valid timespecs, both alive
    // for the call; the descriptor is only read.
    let rc = unsafe {
        libc::utimensat(
            dir_fd,
            c.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Longest symlink target accepted (Linux's `PATH_MAX`).
pub const MAX_TARGET: usize = 4096;

/// Why a symlink is not created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The target is empty, too long or holds a NUL byte.
    #[error("symlink target must be 1 to {MAX_TARGET} bytes without NUL")]
    Malformed,
    /// An absolute target (`/etc/passwd`).
    #[error("symlink target `{0}` is absolute; only relative targets inside the tree are kept")]
    Absolute(String),
    /// More `..` than there are directories above the link.
    #[error("symlink target `{0}` leads outside the tree")]
    Escapes(String),
    /// A `..` after a name (`a/../b`): where it leads depends on whether `a` is itself a
    /// symlink, so it cannot be decided without following links.
    #[error(
        "symlink target `{0}` has `..` after a name; only leading `..` components are accepted"
    )]
    InnerParent(String),
    /// The target passes through an existing symlink that leads outside the root.
    #[error("symlink target `{0}` passes through a symlink that leads outside the root")]
    ThroughEscapingLink(String),
    /// A directory above the link is itself a symlink, so the link's `..` would climb from
    /// wherever that points.
    #[error("`{0}` above the link is a symlink; symlinks are created only in real directories")]
    InSymlinkedDir(String),
    /// The resolved target is a name the service refuses (reserved, control characters ...).
    #[error("symlink target `{target}` resolves to a refused path: {why}")]
    Refused {
        /// The target as given.
        target: String,
        /// Why the resolved path is refused.
        why: String,
    },
}

/// Resolves the symlink target `target` of a link whose directory is `link_dir` (the
/// `/`-separated path of that directory inside the tree, `""` at the top), without looking
/// at the filesystem, and returns the path (inside the tree) it points to.
///
/// The rule, stricter than `rsync --safe-links`: the target is relative, its `..`
/// components all come first and are no more than the directories above the link, and
/// the rest are names (`.` and empty components are dropped). A `..` after a name is
/// refused, because `a/../b` leaves the tree when `a` is a symlink to somewhere deeper.
/// Together with "the link's own directory holds no symlinks" (checked by the caller),
/// this keeps the link pointing inside the tree however the filesystem resolves it.
///
/// # Errors
/// See [`LinkError`].
pub fn resolve_link_target(link_dir: &str, target: &str) -> Result<RelPath, LinkError> {
    if target.is_empty() || target.len() > MAX_TARGET || target.contains('\0') {
        return Err(LinkError::Malformed);
    }
    if target.starts_with('/') {
        return Err(LinkError::Absolute(target.to_owned()));
    }
    let mut base: Vec<&str> = link_dir
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    let mut names = Vec::new();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." if names.is_empty() => {
                if base.pop().is_none() {
                    return Err(LinkError::Escapes(target.to_owned()));
                }
            }
            ".." => return Err(LinkError::InnerParent(target.to_owned())),
            name => names.push(name),
        }
    }
    base.extend(names);
    RelPath::parse(&base.join("/")).map_err(|e| LinkError::Refused {
        target: target.to_owned(),
        why: e.to_string(),
    })
}

/// `ls -l`'s ten-character mode string for a kind (`file`, `dir`, `symlink`, other) and
/// permission bits: `-rwxr-xr-x`, `drwxr-sr-t`, `lrwxrwxrwx`.
pub fn mode_string(kind: &str, mode: u32) -> String {
    let mut s = String::with_capacity(10);
    s.push(match kind {
        "file" => '-',
        "dir" => 'd',
        "symlink" => 'l',
        "partial" => '-',
        _ => '?',
    });
    let special = [(0o4000, 's', 'S'), (0o2000, 's', 'S'), (0o1000, 't', 'T')];
    for (i, shift) in [6u32, 3, 0].into_iter().enumerate() {
        let bits = (mode >> shift) & 0o7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let (flag, with_x, without_x) = special[i];
        let x = bits & 1 != 0;
        s.push(match (mode & flag != 0, x) {
            (true, true) => with_x,
            (true, false) => without_x,
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(dir: &str, target: &str) -> String {
        resolve_link_target(dir, target).unwrap().as_string()
    }

    #[test]
    fn targets_inside_resolve() {
        assert_eq!(ok("", "a.txt"), "a.txt");
        assert_eq!(ok("d", "../a.txt"), "a.txt");
        assert_eq!(ok("d/e", "../../x/./y"), "x/y");
        assert_eq!(ok("d", ".."), "");
        assert_eq!(ok("d", "."), "d");
        assert_eq!(ok("", "sub//f"), "sub/f");
    }

    #[test]
    fn targets_outside_are_refused() {
        use LinkError::*;
        let e = |dir, t| resolve_link_target(dir, t).unwrap_err();
        assert!(matches!(e("", "../x"), Escapes(_)));
        assert!(matches!(e("d", "../../x"), Escapes(_)));
        assert!(matches!(e("", "/etc/passwd"), Absolute(_)));
        assert!(matches!(e("", "a/../b"), InnerParent(_)));
        assert!(matches!(e("d", "s/x/../.."), InnerParent(_)));
        assert!(matches!(e("", ""), Malformed));
        assert!(matches!(e("", "a\0b"), Malformed));
        assert!(matches!(e("", ".sockit-staging/x"), Refused { .. }));
        assert!(matches!(e("d", "../.sockit"), Refused { .. }));
        assert!(matches!(e("", "a\\..\\b"), Refused { .. }));
        assert!(matches!(e("", &"a/".repeat(2100)), Malformed));
    }

    #[test]
    fn mode_strings_match_ls() {
        assert_eq!(mode_string("file", 0o755), "-rwxr-xr-x");
        assert_eq!(mode_string("file", 0o600), "-rw-------");
        assert_eq!(mode_string("dir", 0o2755), "drwxr-sr-x");
        assert_eq!(mode_string("dir", 0o1777), "drwxrwxrwt");
        assert_eq!(mode_string("file", 0o4644), "-rwSr--r--");
        assert_eq!(mode_string("symlink", 0o777), "lrwxrwxrwx");
    }

    #[test]
    fn times_and_modes_are_checked() {
        assert!(Mtime::new(1, 999_999_999).is_ok());
        assert!(Mtime::new(1, 1_000_000_000).is_err());
        assert!(check_mode(0o7777).is_ok());
        assert!(check_mode(0o100644).is_err());
        let t = Mtime::new(-10, 5).unwrap().to_system_time().unwrap();
        assert_eq!(
            UNIX_EPOCH.duration_since(t).unwrap(),
            Duration::from_nanos(9_999_999_995)
        );
    }
}
