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
    /// Writing an upload failed because the server's disk (or the account's quota) is
    /// full; the partial upload was removed, or kept with `--keep-partial`.
    #[error("{}", describe_no_space(path, *quota, *kept))]
    NoSpace {
        /// The path being uploaded.
        path: RelPath,
        /// EDQUOT (a quota) rather than ENOSPC (the filesystem).
        quota: bool,
        /// Bytes of the partial upload kept for resuming (`None`: removed).
        kept: Option<u64>,
    },
    /// A symlink whose target would lead outside the root (or cannot be checked).
    #[error("{path}: {source}")]
    Link {
        /// The link that was not created.
        path: RelPath,
        /// Why.
        source: crate::meta::LinkError,
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
    /// The request asks for something this server does not offer (a body `encoding` it
    /// does not accept).
    #[error("{0}")]
    Unsupported(String),
}

impl FilesError {
    /// Wraps an I/O error with its path.
    pub(crate) fn io(path: &RelPath, source: io::Error) -> Self {
        Self::Io {
            path: path.clone(),
            source,
        }
    }

    /// Whether `e` means the disk or the quota is full (ENOSPC, EDQUOT).
    pub(crate) fn is_no_space(e: &io::Error) -> bool {
        matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
    }

    /// The protocol error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::BadRequest(_) => ErrorCode::BadRequest,
            Self::Path(_) | Self::Link { .. } => ErrorCode::Denied,
            Self::Exists(_) => ErrorCode::Exists,
            Self::Busy(_) => ErrorCode::Busy,
            Self::TooLarge { .. } | Self::NoSpace { .. } => ErrorCode::TooLarge,
            Self::HashMismatch { .. } => ErrorCode::BadRequest,
            Self::Unsupported(_) => ErrorCode::Unsupported,
            Self::Io { source, .. } => io_code(source),
        }
    }

    /// As a reply error for the framed service.
    pub(crate) fn into_reply(self) -> CommandError {
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

fn describe_no_space(path: &RelPath, quota: bool, kept: Option<u64>) -> String {
    let what = if quota {
        "the server's disk quota is exceeded"
    } else {
        "no space left on the server"
    };
    match kept {
        None => format!("{what} while writing {path}; the partial upload was removed"),
        Some(n) => format!(
            "{what} while writing {path}; the partial upload ({n} bytes) was kept \
             (--keep-partial): once space is freed, `put --resume` continues it, or `rm {path}` drops it"
        ),
    }
}

/// A message naming the cause the user can act on. It holds the client's own (relative)
/// path and never a server-side absolute path: an OS error is described by its errno only,
/// and any other error text is scrubbed of absolute paths.
fn describe_io(path: &RelPath, e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOSPC) => return format!("no space left on the server while writing {path}"),
        Some(libc::EDQUOT) => {
            return format!("the server's disk quota is exceeded while writing {path}")
        }
        Some(libc::EFBIG) => return format!("{path} is over the server's file size limit"),
        Some(libc::EROFS) => return format!("server's data root is read-only (writing {path})"),
        Some(libc::ENOTEMPTY) => {
            return format!("{path} is a directory that is not empty; use rm -r")
        }
        Some(libc::EISDIR) => return format!("{path} is a directory"),
        Some(libc::ENOTDIR) => return format!("{path} or one of its parents is not a directory"),
        Some(libc::ELOOP) => return format!("{path}: too many symlinks (denied)"),
        _ => {}
    }
    match e.kind() {
        // Our own explanation (e.g. "directory d does not exist; create it with mkdir -p").
        io::ErrorKind::NotFound if e.raw_os_error().is_none() && e.get_ref().is_some() => {
            format!("{path}: {}", scrub_abs_paths(&e.to_string()))
        }
        io::ErrorKind::NotFound => format!("no such file or directory: {path}"),
        io::ErrorKind::AlreadyExists => format!("{path} already exists"),
        io::ErrorKind::PermissionDenied => {
            format!("access to {path} denied (outside the data root or not permitted)")
        }
        _ => match e.raw_os_error() {
            // Only the errno's text: a wrapped error could carry a server path.
            Some(code) => format!("{path}: {}", io::Error::from_raw_os_error(code)),
            None => format!("{path}: {}", scrub_abs_paths(&e.to_string())),
        },
    }
}

/// Replaces every absolute path in `text` (a word starting with `/`, longer than `/` alone;
/// a quoted one runs to its closing quote) by `<server path>`.
pub(crate) fn scrub_abs_paths(text: &str) -> String {
    const QUOTES: [char; 3] = ['"', '\'', '`'];
    let mut out = String::with_capacity(text.len());
    // Inside a path: `Some(None)` for a bare one, `Some(Some(q))` for one quoted by `q`.
    let mut in_path: Option<Option<char>> = None;
    let mut prev: Option<char> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(quote) = in_path {
            let ends = match quote {
                Some(q) => c == q,
                None => {
                    c.is_whitespace()
                        || QUOTES.contains(&c)
                        || matches!(c, ')' | ',' | ';')
                        || (c == ':' && chars.peek().is_none_or(|n| n.is_whitespace()))
                }
            };
            if ends {
                in_path = None;
                out.push(c);
            }
        } else {
            let starts_word = prev.is_none_or(|p| {
                p.is_whitespace() || QUOTES.contains(&p) || matches!(p, '(' | '=' | ':')
            });
            let next_is_path = chars
                .peek()
                .is_some_and(|n| !n.is_whitespace() && !QUOTES.contains(n) && *n != ')');
            if c == '/' && starts_word && next_is_path {
                in_path = Some(prev.filter(|p| QUOTES.contains(p)));
                out.push_str("<server path>");
            } else {
                out.push(c);
            }
        }
        prev = Some(c);
    }
    out
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
        assert_eq!(
            e.to_string(),
            "no space left on the server while writing big.bin"
        );
        assert_eq!(e.code(), ErrorCode::TooLarge);
    }

    #[test]
    fn no_space_says_what_happened_to_the_partial() {
        let p = RelPath::parse("big.bin").unwrap();
        let removed = FilesError::NoSpace {
            path: p.clone(),
            quota: false,
            kept: None,
        };
        assert_eq!(
            removed.to_string(),
            "no space left on the server while writing big.bin; the partial upload was removed"
        );
        assert_eq!(removed.code(), ErrorCode::TooLarge);
        let kept = FilesError::NoSpace {
            path: p,
            quota: true,
            kept: Some(42),
        };
        assert!(kept.to_string().contains("quota"), "{kept}");
        assert!(kept.to_string().contains("(42 bytes) was kept"), "{kept}");
        assert!(FilesError::is_no_space(&io::Error::from_raw_os_error(
            libc::EDQUOT
        )));
        assert!(!FilesError::is_no_space(&io::Error::from_raw_os_error(
            libc::EIO
        )));
    }

    #[test]
    fn wrapped_errors_lose_server_paths() {
        let p = RelPath::parse("x").unwrap();
        let e = FilesError::io(
            &p,
            io::Error::other("failed to open /srv/data/files/x: nope"),
        );
        assert_eq!(e.to_string(), "x: failed to open <server path>: nope");
        let e = FilesError::io(&p, io::Error::from_raw_os_error(libc::EIO));
        assert_eq!(e.to_string(), "x: Input/output error (os error 5)");
        assert_eq!(
            scrub_abs_paths("cannot read '/a/b c' or (/d), see /"),
            "cannot read '<server path>' or (<server path>), see /"
        );
        assert_eq!(scrub_abs_paths("a/b and 1/2"), "a/b and 1/2");
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
