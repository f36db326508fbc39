//! The library: the catalog, the books root, the caches and the blocking workers that
//! decode, page and render. Every front end (classic, HTTP, OPDS, kosync) goes through it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use serde::Serialize;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use sockit_accounts::Accounts;

use crate::accounts::Sessions;
use crate::catalog::{self, Book, Format};
use crate::config::ReaderConfig;
use crate::disk_cache::DiskCache;
use crate::error::{ReaderError, Result};
use crate::scan::{self, ScanReport};
use crate::txt::pages::Paged;

/// Paged TXT books in memory, keyed by (BLAKE3, characters per page), oldest first.
type TxtCache = VecDeque<((String, usize), Arc<Paged>)>;

/// Decoded-and-paged TXT books kept in memory.
const TXT_CACHE_ENTRIES: usize = 16;
/// Largest TXT page size a client may ask for, in characters.
pub const MAX_PAGE_CHARS: usize = 100_000;

/// One page of a TXT book.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxtPage {
    /// The page number (1-based).
    pub page: u64,
    /// The page count at this page size.
    pub pages: u64,
    /// Characters per page used.
    pub page_chars: usize,
    /// The page's text.
    pub text: String,
}

/// Image formats pages and covers are served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageFormat {
    /// PNG (lossless; the default for pages).
    Png,
    /// JPEG (smaller; covers and thumbnails).
    Jpeg,
}

impl ImageFormat {
    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Png => "image/png",
            Self::Jpeg => "image/jpeg",
        }
    }

    fn ext(self) -> &'static str {
        match self {
            Self::Png => "png",
            Self::Jpeg => "jpg",
        }
    }
}

/// The library shared by every front end.
#[derive(Debug)]
pub struct Library {
    cfg: ReaderConfig,
    /// Canonical books root; every served path is checked to be under it.
    root: PathBuf,
    db_path: PathBuf,
    /// The readers' connection (writers use their own; WAL keeps them apart).
    db: Mutex<Connection>,
    txt: Mutex<TxtCache>,
    render_slots: Semaphore,
    cache: DiskCache,
    /// Bumped whenever a scan changed the catalog (PDF.db is rebuilt on the next request).
    generation: AtomicU64,
    /// The generation `PDF.db` was last built for.
    course_db_built: Mutex<Option<u64>>,
    /// Serializes scans (start-up, the watcher, tests).
    scan_lock: Mutex<()>,
    /// The server's accounts.
    accounts: Arc<Accounts>,
    /// Web UI logins.
    sessions: Sessions,
}

/// Moves the kosync keys an older catalog kept in clear into `accounts` (hashed), then
/// deletes them from the catalog. Reading positions stay (they are keyed by name).
fn migrate_clear_keys(db: &Connection, accounts: &Accounts) -> Result<()> {
    let pairs = crate::accounts::clear_keys(db)?;
    if pairs.is_empty() {
        return Ok(());
    }
    let found = pairs.len();
    let moved = accounts.migrate_clear_keys(pairs).map_err(|e| {
        warn!(error = %e, "cannot move the catalog's clear keys into the accounts");
        ReaderError::Worker("moving clear keys into the accounts".into())
    })?;
    crate::accounts::drop_clear_keys(db)?;
    info!(
        found,
        moved,
        accounts = %accounts.path().display(),
        "moved the catalog's clear kosync keys into the hashed accounts store"
    );
    Ok(())
}

/// Runs blocking work on a worker thread; a panic or a cancelled worker becomes an error.
///
/// # Errors
/// Whatever `f` returns, or [`ReaderError::Worker`].
pub async fn blocking<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r,
        Err(e) => {
            warn!(task = what, error = %e, "worker failed");
            Err(ReaderError::Worker(what.to_owned()))
        }
    }
}

impl Library {
    /// Opens the library: creates the directories, writes the sample books when asked or
    /// when the books root is empty, opens the catalog and runs a first scan.
    ///
    /// # Errors
    /// Directories or the catalog cannot be created.
    pub fn open(cfg: ReaderConfig) -> Result<Arc<Self>> {
        for d in [&cfg.books_dir, &cfg.state_dir] {
            std::fs::create_dir_all(d).map_err(|e| ReaderError::io(d, e))?;
        }
        let root = cfg
            .books_dir
            .canonicalize()
            .map_err(|e| ReaderError::io(&cfg.books_dir, e))?;
        let empty = std::fs::read_dir(&root)
            .map(|mut rd| rd.next().is_none())
            .unwrap_or(false);
        if cfg.demo || empty {
            let written = crate::demo::write_samples(&root)?;
            if !written.is_empty() {
                info!(books = %root.display(), files = written.len(), "wrote the sample library");
            }
        }
        let db_path = cfg.state_dir.join("catalog.db");
        let db = catalog::open(&db_path)?;
        let accounts = match &cfg.accounts {
            Some(a) => a.clone(),
            None => {
                let path = cfg.state_dir.join("accounts.db");
                Accounts::open(&path).map_err(|e| {
                    warn!(file = %path.display(), error = %e, "cannot open the accounts");
                    ReaderError::Worker("opening the accounts".into())
                })?
            }
        };
        migrate_clear_keys(&db, &accounts)?;
        let sessions = Sessions::new(cfg.session_ttl, cfg.max_sessions);
        let cache = DiskCache::new(cfg.state_dir.join("cache"), cfg.cache_max_bytes)?;
        let lib = Arc::new(Self {
            render_slots: Semaphore::new(cfg.render_workers.max(1)),
            cfg,
            root,
            db_path,
            db: Mutex::new(db),
            txt: Mutex::new(VecDeque::new()),
            cache,
            generation: AtomicU64::new(0),
            course_db_built: Mutex::new(None),
            scan_lock: Mutex::new(()),
            accounts,
            sessions,
        });
        lib.rescan()?;
        Ok(lib)
    }

    /// The settings.
    pub fn config(&self) -> &ReaderConfig {
        &self.cfg
    }

    /// The server's accounts.
    pub fn accounts(&self) -> &Arc<Accounts> {
        &self.accounts
    }

    /// The web UI's sessions.
    pub fn sessions(&self) -> &Sessions {
        &self.sessions
    }

    /// Whether every route needs a login: the server asked for it, or an account exists.
    pub fn auth_required(&self) -> bool {
        self.cfg.require_auth || self.accounts.any()
    }

    /// The canonical books root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The catalog generation (changes whenever the catalog does).
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Scans the books root now (blocking).
    ///
    /// # Errors
    /// The catalog cannot be written.
    pub fn rescan(&self) -> Result<ScanReport> {
        let _one = self.scan_lock.lock().unwrap_or_else(|p| p.into_inner());
        let report = scan::scan(&self.root, &self.db_path, &self.cfg)?;
        if report.changed() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        Ok(report)
    }

    /// Rescans every `rescan_interval` until `shutdown` (the catalog follows the files).
    pub async fn watch(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.cfg.rescan_interval) => {}
            }
            let lib = self.clone();
            if let Err(e) = blocking("scanning the books root", move || lib.rescan()).await {
                warn!(error = %e, "rescan failed");
            }
        }
    }

    /// Runs `f` with the readers' catalog connection.
    ///
    /// # Errors
    /// Whatever `f` returns.
    pub fn with_db<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let conn = self.db.lock().unwrap_or_else(|p| p.into_inner());
        f(&conn)
    }

    /// Books matching `query` (all when `None`).
    ///
    /// # Errors
    /// Catalog errors.
    pub fn books(&self, query: Option<&str>) -> Result<Vec<Book>> {
        self.with_db(|c| catalog::list(c, query))
    }

    /// A book by id.
    ///
    /// # Errors
    /// `NotFound`, or catalog errors.
    pub fn book(&self, id: i64) -> Result<Book> {
        self.with_db(|c| catalog::by_id(c, id))?
            .ok_or_else(|| ReaderError::NotFound(format!("book {id}")))
    }

    /// A book by its path relative to the books root (after the traversal check).
    ///
    /// # Errors
    /// `Traversal`, `NotFound`, catalog errors.
    pub fn book_by_path(&self, name: &str) -> Result<Book> {
        let rel = crate::safe_path::components(name)?.join("/");
        self.with_db(|c| catalog::by_path(c, &rel))?
            .ok_or_else(|| ReaderError::NotFound(name.to_owned()))
    }

    /// The on-disk path of a file in the books root (books, covers), checked to be inside.
    ///
    /// # Errors
    /// `Traversal`, `NotFound`.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        crate::safe_path::resolve(&self.root, name)
    }

    /// The decoded, paged text of a TXT book at `page_chars` characters per page.
    ///
    /// # Errors
    /// `Unsupported` for a PDF; `Empty`, `NotText`, `TooLarge`, I/O errors.
    pub async fn txt(self: &Arc<Self>, book: &Book, page_chars: usize) -> Result<Arc<Paged>> {
        if book.format != Format::Txt {
            return Err(ReaderError::Unsupported(format!(
                "{} is a PDF; ask for its pages as images",
                book.path
            )));
        }
        if page_chars == 0 || page_chars > MAX_PAGE_CHARS {
            return Err(ReaderError::BadRequest(format!(
                "page size {page_chars} is out of range 1..={MAX_PAGE_CHARS}"
            )));
        }
        let key = (book.blake3.clone(), page_chars);
        if let Some(p) = self.cached_txt(&key) {
            return Ok(p);
        }
        let path = self.file(&book.path)?;
        let (name, cap) = (book.path.clone(), self.cfg.max_txt_bytes);
        let paged = blocking("decoding a text book", move || {
            let bytes = scan::read_capped(&path, cap)?;
            let d = crate::txt::decode::decode(&name, &bytes)?;
            Ok(Arc::new(Paged::new(d.text, page_chars)))
        })
        .await?;
        let mut cache = self.txt.lock().unwrap_or_else(|p| p.into_inner());
        cache.push_back((key, paged.clone()));
        while cache.len() > TXT_CACHE_ENTRIES {
            cache.pop_front();
        }
        Ok(paged)
    }

    fn cached_txt(&self, key: &(String, usize)) -> Option<Arc<Paged>> {
        let cache = self.txt.lock().unwrap_or_else(|p| p.into_inner());
        cache.iter().find(|(k, _)| k == key).map(|(_, p)| p.clone())
    }

    /// Page `page` (1-based) of a TXT book.
    ///
    /// # Errors
    /// `PageOutOfRange`, plus those of [`Library::txt`].
    pub async fn txt_page(
        self: &Arc<Self>,
        book: &Book,
        page: u64,
        page_chars: usize,
    ) -> Result<TxtPage> {
        let paged = self.txt(book, page_chars).await?;
        let pages = paged.len() as u64;
        let text = usize::try_from(page)
            .ok()
            .and_then(|n| paged.page(n))
            .ok_or(ReaderError::PageOutOfRange { page, pages })?;
        Ok(TxtPage {
            page,
            pages,
            page_chars,
            text: text.to_owned(),
        })
    }

    fn pdf_bytes(&self, book: &Book) -> Result<Vec<u8>> {
        if book.format != Format::Pdf {
            return Err(ReaderError::Unsupported(format!(
                "{} is a text book; ask for its pages as text",
                book.path
            )));
        }
        let bytes = scan::read_capped(&self.file(&book.path)?, self.cfg.max_pdf_bytes)?;
        if book.pages.is_none() {
            // The catalog found it unreadable: answer with the typed reason.
            crate::pdf::inspect(&book.path, &bytes)?;
        }
        Ok(bytes)
    }

    /// Page `page` (1-based) of a PDF rendered `width` pixels wide, encoded; cached on disk.
    ///
    /// # Errors
    /// `PageOutOfRange`, `BadRequest` (width), `Encrypted`, `BadPdf`, `Worker`.
    pub async fn pdf_page(
        self: &Arc<Self>,
        book: &Book,
        page: u64,
        width: u32,
        fmt: ImageFormat,
    ) -> Result<Vec<u8>> {
        if let Some(pages) = book.pages {
            if page == 0 || page > pages {
                return Err(ReaderError::PageOutOfRange { page, pages });
            }
        }
        let key = format!("page-{}-{page}-{width}.{}", book.blake3, fmt.ext());
        if let Some(bytes) = self.cache.get(&key) {
            return Ok(bytes);
        }
        let _slot = self
            .render_slots
            .acquire()
            .await
            .map_err(|_| ReaderError::Worker("waiting for a render slot".into()))?;
        if let Some(bytes) = self.cache.get(&key) {
            return Ok(bytes);
        }
        let lib = self.clone();
        let book = book.clone();
        blocking("rendering a PDF page", move || {
            let bytes = lib.pdf_bytes(&book)?;
            let img = crate::pdf::render(&book.path, &bytes, page, width)?;
            let out = encode(image::DynamicImage::ImageRgba8(img), fmt)?;
            lib.cache.put(&key, &out)?;
            Ok(out)
        })
        .await
    }

    /// The text of page `page` (1-based) of a PDF.
    ///
    /// # Errors
    /// `PageOutOfRange`, `Encrypted`, `BadPdf`, `Worker`.
    pub async fn pdf_text(self: &Arc<Self>, book: &Book, page: u64) -> Result<String> {
        let lib = self.clone();
        let book = book.clone();
        blocking("extracting PDF text", move || {
            let bytes = lib.pdf_bytes(&book)?;
            crate::pdf::page_text(&book.path, &bytes, page)
        })
        .await
    }

    /// A book's cover as JPEG, `width` pixels wide (the cover file next to the book, else
    /// the first PDF page, else a generated one); cached on disk.
    ///
    /// # Errors
    /// `Worker`, image errors.
    pub async fn cover(self: &Arc<Self>, book: &Book, width: u32) -> Result<Vec<u8>> {
        let width = width.clamp(16, 1200);
        let key = format!(
            "cover-{}-{}-{width}.jpg",
            book.blake3,
            crate::hashes::md5_hex(book.cover_file.as_deref().unwrap_or("").as_bytes())
        );
        if let Some(bytes) = self.cache.get(&key) {
            return Ok(bytes);
        }
        let lib = self.clone();
        let book = book.clone();
        blocking("making a cover", move || {
            let img = crate::cover::cover_image(&lib, &book, width)?;
            let out = encode(img, ImageFormat::Jpeg)?;
            lib.cache.put(&key, &out)?;
            Ok(out)
        })
        .await
    }

    /// The path of `PDF.db`, the course client's catalog, rebuilt when the catalog changed.
    ///
    /// # Errors
    /// The file cannot be built.
    pub async fn course_db(self: &Arc<Self>) -> Result<PathBuf> {
        let lib = self.clone();
        blocking("building PDF.db", move || {
            let path = lib.cfg.state_dir.join("PDF.db");
            let mut built = lib
                .course_db_built
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let gen = lib.generation();
            if *built != Some(gen) || !path.exists() {
                let books = lib.books(None)?;
                crate::course_db::build(&path, &books)?;
                *built = Some(gen);
            }
            Ok(path)
        })
        .await
    }

    /// Reads a (non-PDF) image file from the books root, for covers.
    pub(crate) fn read_book_file(&self, rel: &str, cap: u64) -> Result<Vec<u8>> {
        scan::read_capped(&self.file(rel)?, cap)
    }

    /// The bytes of a PDF book (for cover rendering).
    pub(crate) fn pdf_bytes_for_cover(&self, book: &Book) -> Result<Vec<u8>> {
        self.pdf_bytes(book)
    }
}

/// Encodes an image as PNG or JPEG.
///
/// # Errors
/// The encoder failed.
pub fn encode(img: image::DynamicImage, fmt: ImageFormat) -> Result<Vec<u8>> {
    let mut out = std::io::Cursor::new(Vec::new());
    let r = match fmt {
        ImageFormat::Png => img.write_to(&mut out, image::ImageFormat::Png),
        ImageFormat::Jpeg => image::DynamicImage::ImageRgb8(img.to_rgb8())
            .write_to(&mut out, image::ImageFormat::Jpeg),
    };
    r.map_err(|e| ReaderError::Image(e.to_string()))?;
    Ok(out.into_inner())
}
