//! Server-side failures of file commands, each mapped to a protocol error code and a
//! message that names the real cause ("disk full on server", not "connection closed").

use std::io;

use sockit_wire::framed::CommandError;
use sockit_wire::ErrorCode;

use crate::path::{PathError, RelPath};

/// A file command failed.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The request is malformed.
    #[error("{0}")]
    BadRequest(String),
    /// The path was refused before touching the filesystem.
    #[error("path denied: {0}")]
    Path(#[from] PathError),
    /// A filesystem operation on `path` failed.
    #[error("{}", describe_io(path, source))]
    Io {
        /// The path involved.
        path: RelPath,
        /// The cause.
        source: io::Error,
    },
    /// The target exists and `overwrite` was not given.
    #[error("{0} exists; pass overwrite (sockit put --overwrite) to replace it")]
    Exists(RelPath),
    /// Another upload of the same path is running.
    #[error("an upload of {0} is already in progress; try again when it finishes")]
    Busy(RelPath),
    /// Over the upload limit.
    #[error("upload of {size} bytes is over the server's limit of {limit} bytes (--max-upload)")]
    TooLarge {
        /// The announced size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The upload's content does not match the client's hash.
    #[error("blake3 mismatch for {path}: client says {expected}, server received {actual}; the upload was discarded")]
    HashMismatch {
        /// The path.
        path: RelPath,
        /// The client's hash.
        expected: String,
        /// The hash of what arrived.
        actual: String,
    },
}

impl FilesError {
    /// Wraps an I/O error with its path.
    pub fn io(path: &RelPath, source: io::Error) -> Self {
        Self::Io {
            path: path.clone(),
            source,
        }
    }

    /// The protocol error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Path(_) => ErrorCode::Denied,
            Self::Exists(_) => ErrorCode::Exists,
            Self::Busy(_) => ErrorCode::Busy,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::HashMismatch { .. } => ErrorCode::BadRequest,
            Self::Io { source, .. } => io_code(source),
        }
    }

    /// As a reply error for the framed service.
    pub fn into_reply(self) -> CommandError {
        CommandError::Reply(self.code(), self.to_string())
    }
}

impl From<FilesError> for CommandError {
    fn from(e: FilesError) -> Self {
        e.into_reply()
    }
}

fn io_code(e: &io::Error) -> ErrorCode {
    match e.kind() {
        io::ErrorKind::NotFound => ErrorCode::NotFound,
        io::ErrorKind::AlreadyExists => ErrorCode::Exists,
        io::ErrorKind::PermissionDenied => ErrorCode::Denied,
        _ => match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG) => ErrorCode::TooLarge,
            Some(libc::ENOTEMPTY) | Some(libc::EEXIST) => ErrorCode::Exists,
            Some(libc::ELOOP) | Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EXDEV) => {
                ErrorCode::Denied
            }
            Some(libc::ENAMETOOLONG) => ErrorCode::Denied,
            Some(libc::ENOTDIR) | Some(libc::EISDIR) => ErrorCode::BadRequest,
            _ => ErrorCode::Internal,
        },
    }
}

/// A message naming the cause the user can act on.
fn describe_io(path: &RelPath, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => return format!("disk full on server while writing {path}"),
        Some(libc::EDQUOT) => return format!("disk quota exceeded on server while writing {path}"),
        Some(libc::EFBIG) => return format!("{path} is over the server's file size limit"),
        Some(libc::EROFS) => return format!("server's data root is read-only (writing {path})"),
        Some(libc::ENOTEMPTY) => {
            return format!("{path} is a directory that is not empty; use rm -r")
        }
        Some(libc::EISDIR) => return format!("{path} is a directory"),
        Some(libc::ENOTDIR) => return format!("a parent of {path} is not a directory"),
        Some(libc::ELOOP) => return format!("{path}: too many symlinks (denied)"),
        _ => {}
    }
    match e.kind() {
        io::ErrorKind::NotFound => format!("no such file or directory: {path}"),
        io::ErrorKind::AlreadyExists => format!("{path} already exists"),
        io::ErrorKind::PermissionDenied => {
            format!("access to {path} denied (outside the data root or not permitted)")
        }
        _ => format!("{path}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enospc_is_disk_full() {
        let e = FilesError::io(
            &RelPath::parse("big.bin").unwrap(),
            io::Error::from_raw_os_error(libc::ENOSPC),
        );
        assert_eq!(e.to_string(), "disk full on server while writing big.bin");
        assert_eq!(e.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn escape_is_denied() {
        let e = FilesError::io(
            &RelPath::parse("link").unwrap(),
            io::Error::new(io::ErrorKind::PermissionDenied, "a path led outside"),
        );
        assert_eq!(e.code(), ErrorCode::Denied);
    }

    #[test]
    fn missing_is_not_found() {
        let e = FilesError::io(
            &RelPath::parse("nope").unwrap(),
            io::Error::from(io::ErrorKind::NotFound),
        );
        assert_eq!(e.code(), ErrorCode::NotFound);
        assert_eq!(e.to_string(), "no such file or directory: nope");
    }
}
