//! The reader's settings (every limit here has a `sockit serve` flag).

use std::path::PathBuf;
use std::time::Duration;

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
    /// Whether `POST /users/create` (kosync registration) is open.
    pub allow_registration: bool,
    /// Write the sample library into the books root (also done when it is empty).
    pub demo: bool,
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
            demo: false,
        }
    }
}
