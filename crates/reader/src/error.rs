//! The reader's error type: every variant names the thing that failed and, where there is
//! one, the fix. Each maps to an HTTP status and to the classic protocol's error text.
//!
//! The text of every error may be sent to a client, so it never contains a server-side
//! path: an I/O error shows only the last component of its path (the name the client
//! asked for, or a neutral one) and the OS's reason; the full path is logged on the server
//! when the error is made ([`ReaderError::io`]).

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

/// Everything the reader can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// A request path that would leave the books root (`..`, absolute, NUL, symlink out).
    #[error("path `{0}` is outside the library")]
    Traversal(String),
    /// No such book or file.
    #[error("no such book: {0}")]
    NotFound(String),
    /// A page number outside the book.
    #[error("no page {page}: the book has {pages} page(s)")]
    PageOutOfRange {
        /// The page asked for (1-based).
        page: u64,
        /// The book's page count.
        pages: u64,
    },
    /// The file is empty.
    #[error("{0} is empty (0 bytes); nothing to read")]
    Empty(String),
    /// A .txt file whose bytes are not text in any encoding we detect.
    #[error("{0} is not a text file (binary data)")]
    NotText(String),
    /// An encrypted (password-protected) PDF.
    #[error("{0} is an encrypted PDF; sockit cannot open password-protected PDFs")]
    Encrypted(String),
    /// A PDF that cannot be parsed or rendered.
    #[error("{name} is not a readable PDF: {reason}")]
    BadPdf {
        /// The book.
        name: String,
        /// What the parser or renderer said.
        reason: String,
    },
    /// An EPUB that cannot be opened (not a zip, unsafe entry names, no package) or that
    /// is over a limit.
    #[error("{name} is not a readable EPUB: {reason}")]
    BadEpub {
        /// The book.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation does not apply to this format (e.g. TXT paging of a PDF).
    #[error("{0}")]
    Unsupported(String),
    /// A malformed request (bad number, missing field).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// Missing or wrong credentials.
    #[error("unknown user or wrong key: {0}")]
    Unauthorized(String),
    /// A request over a configured limit.
    #[error("{0}")]
    TooLarge(String),
    /// The route needs a signed-in account (the caller has none).
    #[error("{0}")]
    LoginRequired(String),
    /// The thing to create exists already (a shelf's name).
    #[error("{0}")]
    Conflict(String),
    /// The caller may not do this (a non-administrator deleting a book, an upload to a
    /// server that takes none).
    #[error("{0}")]
    Forbidden(String),
    /// An upload whose content is already in the library.
    #[error("this file is already in the library as “{title}” ({path}, book {id})")]
    Duplicate {
        /// The existing book's id.
        id: i64,
        /// Its title.
        title: String,
        /// Its path in the books root.
        path: String,
    },
    /// A worker panicked or was cancelled; the server goes on.
    #[error("internal error while {0}; the server keeps running")]
    Worker(String),
    /// An I/O error on a file (shown without the server-side directory, see the module
    /// documentation).
    #[error("{}", io_message(.path, .err))]
    Io {
        /// The file (full path: for logs, never for clients).
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
    /// A catalog (SQLite) error.
    #[error("catalog: {0}")]
    Db(#[from] rusqlite::Error),
    /// An image could not be encoded or decoded.
    #[error("image: {0}")]
    Image(String),
}

/// Longest file name shown in an error (a client may send a very long one).
const MAX_SHOWN_NAME: usize = 80;

/// `` `NAME`: REASON `` with NAME the path's last component and REASON the OS's text (or
/// the error kind when the error is not from the OS: wrapped errors may carry paths).
fn io_message(path: &Path, err: &std::io::Error) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_owned());
    let shown: String = if name.chars().count() > MAX_SHOWN_NAME {
        let mut s: String = name.chars().take(MAX_SHOWN_NAME).collect();
        s.push('…');
        s
    } else {
        name
    };
    let reason = if err.raw_os_error().is_some() {
        err.to_string()
    } else {
        err.kind().to_string()
    };
    format!("`{shown}`: {reason}")
}

/// Whether an I/O error means the client named something that is not there (or cannot
/// be: a name too long, a file where a directory was expected).
fn is_missing(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::NotFound | ErrorKind::NotADirectory | ErrorKind::InvalidFilename
    )
}

impl ReaderError {
    /// Wraps an I/O error with the path it happened on, logging the full path (the error's
    /// text shows only its last component).
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        let path = path.into();
        if is_missing(err.kind()) {
            tracing::debug!(path = %path.display(), error = %err, "file error");
        } else {
            tracing::warn!(path = %path.display(), error = %err, "file error");
        }
        Self::Io { path, err }
    }

    /// The HTTP status code this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Traversal(_) => 403,
            Self::Unauthorized(_) => 401,
            Self::NotFound(_) => 404,
            Self::PageOutOfRange { .. } => 404,
            Self::Empty(_)
            | Self::NotText(_)
            | Self::Encrypted(_)
            | Self::BadPdf { .. }
            | Self::BadEpub { .. } => 422,
            Self::Unsupported(_) => 415,
            Self::BadRequest(_) => 400,
            Self::TooLarge(_) => 413,
            Self::LoginRequired(_) => 401,
            Self::Conflict(_) | Self::Duplicate { .. } => 409,
            Self::Forbidden(_) => 403,
            Self::Io { err, .. } if is_missing(err.kind()) => 404,
            Self::Worker(_) | Self::Io { .. } | Self::Db(_) | Self::Image(_) => 500,
        }
    }

    /// A short machine-readable code (the JSON API's `code`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Traversal(_) => "denied",
            Self::Unauthorized(_) => "auth_failed",
            Self::NotFound(_) | Self::PageOutOfRange { .. } => "not_found",
            Self::Empty(_) => "empty",
            Self::NotText(_) => "not_text",
            Self::Encrypted(_) => "encrypted",
            Self::BadPdf { .. } => "bad_pdf",
            Self::BadEpub { .. } => "bad_epub",
            Self::Unsupported(_) => "unsupported",
            Self::BadRequest(_) => "bad_request",
            Self::TooLarge(_) => "too_large",
            Self::LoginRequired(_) => "unauthorized",
            Self::Conflict(_) => "exists",
            Self::Duplicate { .. } => "duplicate",
            Self::Forbidden(_) => "forbidden",
            Self::Io { err, .. } if is_missing(err.kind()) => "not_found",
            Self::Worker(_) | Self::Io { .. } | Self::Db(_) | Self::Image(_) => "internal",
        }
    }
}

/// The reader's result type.
pub type Result<T, E = ReaderError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_hide_the_directory() {
        let long = "a".repeat(300);
        let path = Path::new("/srv/data/books").join(&long);
        let e = ReaderError::io(&path, std::io::Error::from_raw_os_error(36));
        let text = e.to_string();
        assert!(!text.contains("/srv"), "{text}");
        assert!(text.contains("aaaa") && text.contains('…'), "{text}");
        assert!(text.chars().count() < 200, "{text}");
        assert_eq!(e.http_status(), 404);
        assert_eq!(e.code(), "not_found");
    }

    #[test]
    fn wrapped_io_errors_show_only_their_kind() {
        let inner = std::io::Error::new(
            ErrorKind::PermissionDenied,
            "cannot create temporary file in /srv/state/staging",
        );
        let e = ReaderError::io("/srv/state/staging/x", inner);
        let text = e.to_string();
        assert!(!text.contains("/srv"), "{text}");
        assert_eq!(text, "`x`: permission denied");
        assert_eq!(e.http_status(), 500);
    }
}
