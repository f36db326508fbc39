//! The reader's error type: every variant names the thing that failed and, where there is
//! one, the fix. Each maps to an HTTP status and to the classic protocol's error text.

use std::path::PathBuf;

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
    /// A worker panicked or was cancelled; the server goes on.
    #[error("internal error while {0}; the server keeps running")]
    Worker(String),
    /// An I/O error on a file.
    #[error("{path}: {err}")]
    Io {
        /// The file.
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

impl ReaderError {
    /// Wraps an I/O error with the path it happened on.
    pub fn io(path: impl Into<PathBuf>, err: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            err,
        }
    }

    /// The HTTP status code this error is answered with.
    pub fn http_status(&self) -> u16 {
        match self {
            Self::Traversal(_) => 403,
            Self::Unauthorized(_) => 401,
            Self::NotFound(_) => 404,
            Self::PageOutOfRange { .. } => 404,
            Self::Empty(_) | Self::NotText(_) | Self::Encrypted(_) | Self::BadPdf { .. } => 422,
            Self::Unsupported(_) => 415,
            Self::BadRequest(_) => 400,
            Self::TooLarge(_) => 413,
            Self::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => 404,
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
            Self::Unsupported(_) => "unsupported",
            Self::BadRequest(_) => "bad_request",
            Self::TooLarge(_) => "too_large",
            Self::Io { err, .. } if err.kind() == std::io::ErrorKind::NotFound => "not_found",
            Self::Worker(_) | Self::Io { .. } | Self::Db(_) | Self::Image(_) => "internal",
        }
    }
}

/// The reader's result type.
pub type Result<T, E = ReaderError> = std::result::Result<T, E>;
