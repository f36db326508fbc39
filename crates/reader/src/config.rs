//! The reader's settings (every limit here has a `sockit serve` flag).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sockit_accounts::Accounts;

/// Settings of one library.
#[derive(Debug, Clone)]
pub struct ReaderConfig {
    /// The books root (`ROOT/books` unless `--books DIR`).
    pub books_dir: PathBuf,
    /// Where the catalog database, `PDF.db` and the page/cover caches live.
    pub state_dir: PathBuf,
    /// Characters per TXT page for the classic protocol, the catalog and the web UI.
    pub txt_page_chars: usize,
    /// How often the books root is checked for added, removed and changed files.
    pub rescan_interval: Duration,
    /// Most PDF pages rendered at once (each render is one blocking worker).
    pub render_workers: usize,
    /// Largest TXT file opened, in bytes.
    pub max_txt_bytes: u64,
    /// Largest PDF parsed or rendered, in bytes.
    pub max_pdf_bytes: u64,
    /// Size the render/cover cache is trimmed to, in bytes.
    pub cache_max_bytes: u64,
    /// Whether `POST /users/create` (kosync registration) and the web UI's "Register"
    /// are open.
    pub allow_registration: bool,
    /// The server's accounts (shared with IRC). `None`: the library opens
    /// `state_dir/accounts.db` itself.
    pub accounts: Option<Arc<Accounts>>,
    /// Require a login on every route even while no account exists (set when the server
    /// has a key). Logins are required anyway as soon as one account exists.
    pub require_auth: bool,
    /// How long a web UI login (session cookie) lasts.
    pub session_ttl: Duration,
    /// Most web UI sessions kept at once (the oldest are dropped first).
    pub max_sessions: usize,
    /// Limits on every EPUB (entries, inflated bytes); fixed at their defaults by
    /// `sockit serve` (no flag).
    pub epub: crate::epub::Limits,
    /// Write the sample library into the books root (also done when it is empty).
    pub demo: bool,
    /// Largest book accepted through `POST /api/books` (the web UI's upload), in bytes;
    /// 0 turns uploads off.
    pub max_upload_bytes: u64,
}

impl ReaderConfig {
    /// Defaults for a data root: books in `ROOT/books`, state in `ROOT/reader`.
    pub fn for_root(root: &std::path::Path) -> Self {
        Self {
            books_dir: root.join("books"),
            state_dir: root.join("reader"),
            txt_page_chars: 1500,
            rescan_interval: Duration::from_secs(5),
            render_workers: 2,
            max_txt_bytes: 64 << 20,
            max_pdf_bytes: 512 << 20,
            cache_max_bytes: 512 << 20,
            allow_registration: true,
            accounts: None,
            require_auth: false,
            session_ttl: Duration::from_secs(7 * 24 * 3600),
            max_sessions: 10_000,
            epub: crate::epub::Limits::default(),
            demo: false,
            max_upload_bytes: 200 << 20,
        }
    }
}
