//! File access confined to the TFTP root: the shared rules of
//! [`sockit_runtime::confine`] with TFTP's reading of names.
//!
//! [`resolve`] checks a requested name as a string (no `..`, no control character, no
//! drive prefix; `\` is a separator; a leading `/` means the root, as with tftp-hpa
//! `--secure`, since PXE and U-Boot configurations often say `/pxelinux.0`); every open
//! then goes through the root's `cap-std` directory handle ([`Root`]), so a symlink that
//! points outside the root cannot be followed either. Uploads go through a
//! [`Staging`](sockit_runtime::confine::Staging) file that becomes the target only once
//! committed.

use sockit_runtime::confine::{check, Leading};

pub(crate) use sockit_runtime::confine::{NameError as PathError, RelPath, Root};

/// Turns a requested file name into a path inside the root.
///
/// `\` and `/` both separate components; leading separators, empty and `.` components
/// are dropped (so `/pxelinux.0` names `ROOT/pxelinux.0`).
///
/// # Errors
/// [`PathError`] for anything that could leave the root or is not a file name.
pub(crate) fn resolve(name: &str) -> Result<RelPath, PathError> {
    check(name, Leading::Root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_as_tftp_hpa_secure_reads_them() {
        let ok = |name: &str| resolve(name).map(|p| p.as_str().to_owned());
        assert_eq!(ok("a.bin"), Ok("a.bin".into()));
        assert_eq!(ok("/pxelinux.0"), Ok("pxelinux.0".into()));
        assert_eq!(ok("boot\\grub\\x"), Ok("boot/grub/x".into()));
        assert_eq!(ok("/etc/passwd"), Ok("etc/passwd".into()));
        assert_eq!(ok("../etc/passwd"), Err(PathError::ParentDir));
        assert_eq!(ok("a\\..\\..\\b"), Err(PathError::ParentDir));
        assert_eq!(ok("a\0b"), Err(PathError::Control));
        assert_eq!(ok("C:\\boot.ini"), Err(PathError::Drive));
        assert_eq!(ok("/./"), Err(PathError::Empty));
    }
}
