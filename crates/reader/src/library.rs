//! The library: the catalog, the books root, the caches and the blocking workers that
//! decode, page and render. Every front end (classic, HTTP, OPDS, kosync) goes through it.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use sockit_accounts::Accounts;
use sockit_runtime::confine::{self, Leading, NameError, RelPath, Root};

use crate::accounts::Sessions;
use crate::catalog::{self, Book, Format};
use crate::config::ReaderConfig;
use crate::disk_cache::DiskCache;
use crate::epub::{Chapter, Epub, Toc};
use crate::error::{ReaderError, Result};
use crate::scan::{self, ScanReport};
use crate::search::books::BookResults;
use crate::search::indexer::{self, Signal};
use crate::search::{Found, SearchIndex};
use crate::txt::pages::Paged;
use crate::upload;

/// Paged TXT books in memory, keyed by (BLAKE3, characters per page), oldest first.
type TxtCache = VecDeque<((String, usize), Arc<Paged>)>;

/// Opened EPUBs (their zip directory, package and table of contents), keyed by BLAKE3,
/// oldest first.
type EpubCache = VecDeque<(String, Arc<Mutex<Epub<std::fs::File>>>)>;

/// Opened EPUBs kept.
const EPUB_CACHE_ENTRIES: usize = 8;
/// Decoded-and-paged TXT books kept in memory.
const TXT_CACHE_ENTRIES: usize = 16;
/// Largest TXT page size a client may ask for, in characters.
pub const MAX_PAGE_CHARS: usize = 100_000;

/// One page of a TXT book: also the body of `GET /api/books/ID/text/N?chars=C`
/// (re-exported as [`crate::http::api_types::TxtPage`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Canonical books root (scans, logs).
    root: PathBuf,
    /// The books root as a capability: every served file is opened beneath it.
    books: Root,
    db_path: PathBuf,
    /// The readers' connection (writers use their own; WAL keeps them apart).
    db: Mutex<Connection>,
    txt: Mutex<TxtCache>,
    epubs: Mutex<EpubCache>,
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
    /// The full-text index (kept in line with the catalog by a background thread).
    search: SearchIndex,
    /// Wakes the indexer thread and reports its progress.
    index_signal: Arc<Signal>,
    /// Where uploads are staged (`STATE/uploads`, outside the books root), as a
    /// capability: a finished upload is linked from it into the books root.
    uploads: Root,
    /// Serializes the duplicate check and the publishing of uploads.
    upload_lock: Mutex<()>,
}

impl Drop for Library {
    fn drop(&mut self) {
        self.index_signal.close();
        // Releases the index's lock now (a library reopened on the same state directory
        // takes it next).
        self.search.close_writer();
    }
}

/// Opens the full-text index; an index that cannot be opened (damaged, or of an
/// incompatible version) is deleted and built again from the books.
fn open_search(state_dir: &Path) -> Result<SearchIndex> {
    match SearchIndex::open(state_dir) {
        Ok(ix) => Ok(ix),
        Err(e) => {
            let dir = state_dir.join(crate::search::DIR);
            warn!(dir = %dir.display(), error = %e, "full-text index unusable; rebuilding it");
            std::fs::remove_dir_all(&dir).map_err(|e| ReaderError::io(&dir, e))?;
            SearchIndex::open(state_dir)
        }
    }
}

/// Creates (or empties of the staging files a crash left) the uploads directory and
/// opens it.
fn open_uploads(dir: &Path) -> Result<Root> {
    std::fs::create_dir_all(dir).map_err(|e| ReaderError::io(dir, e))?;
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_file()) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Root::open(dir).map_err(|e| ReaderError::io(dir, e))
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
        let books = Root::open(&root).map_err(|e| ReaderError::io(&root, e))?;
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
        let search = open_search(&cfg.state_dir)?;
        let index_signal = Arc::new(Signal::default());
        let uploads = open_uploads(&cfg.state_dir.join("uploads"))?;
        let lib = Arc::new(Self {
            render_slots: Semaphore::new(cfg.render_workers.max(1)),
            cfg,
            root,
            books,
            db_path,
            db: Mutex::new(db),
            txt: Mutex::new(VecDeque::new()),
            epubs: Mutex::new(VecDeque::new()),
            cache,
            generation: AtomicU64::new(0),
            course_db_built: Mutex::new(None),
            scan_lock: Mutex::new(()),
            accounts,
            sessions,
            search,
            index_signal: index_signal.clone(),
            uploads,
            upload_lock: Mutex::new(()),
        });
        lib.rescan()?;
        indexer::spawn(&lib, index_signal.clone())?;
        index_signal.request();
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
            self.index_signal.request();
        }
        Ok(report)
    }

    /// Where uploads are staged while they arrive (outside the books root).
    pub fn upload_dir(&self) -> &Path {
        self.uploads.path()
    }

    /// Keeps the finished, fsynced upload `staged` (a file in [`Library::upload_dir`])
    /// that the client calls `client_name`, whose content has `blake3`, as a book (see
    /// [`crate::upload`]): its content decides its format, a duplicate is refused, the
    /// catalog must be able to read it, and it is linked into the books root under a safe,
    /// free name and cataloged. Blocking.
    ///
    /// # Errors
    /// `Unsupported` (not a PDF, EPUB or TXT, or named like another format), `Duplicate`,
    /// the inspection's error (`NotText`, `Encrypted`, `BadPdf`, `BadEpub`, `TooLarge` …),
    /// I/O and catalog errors.
    pub fn add_upload(&self, staged: &Path, client_name: &str, blake3: &str) -> Result<Book> {
        let format = upload::decide(client_name, upload::sniff(&upload::head(staged)?))?;
        let name = upload::file_name(client_name, format);
        let staged_name = staged
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ReaderError::Worker("naming a staged upload".into()))?;
        let _one = self.upload_lock.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = self.with_db(|c| catalog::by_blake3(c, blake3))? {
            return Err(ReaderError::Duplicate {
                id: b.id,
                title: b.title,
                path: b.path,
            });
        }
        let mut probe = upload::blank_book(&name, format);
        crate::scan::read_metadata(staged, &name, format, &self.cfg, &mut probe)?;
        let kept = upload::publish(&self.uploads, staged_name, staged, &self.books, &name)?;
        self.rescan()?;
        let book = self.book_by_path(&kept)?;
        info!(book = %book.path, id = book.id, format = %format, "added an uploaded book");
        Ok(book)
    }

    /// Deletes book `id`: its file and cover file, its catalog row (edits, tags, shelf
    /// entries) and its full-text sections. Blocking.
    ///
    /// # Errors
    /// `NotFound`, I/O errors removing the file, catalog errors.
    pub fn delete_book(&self, id: i64) -> Result<Book> {
        let _one = self.scan_lock.lock().unwrap_or_else(|p| p.into_inner());
        let book = self.book(id)?;
        upload::remove_files(&self.books, &book)?;
        self.with_db(|c| catalog::remove(c, &book.path))?;
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Err(e) = self.search.remove(id).and_then(|()| self.search.commit()) {
            // The indexer drops sections of books gone from the catalog on its next run.
            warn!(error = %e, id, "cannot drop a deleted book from the full-text index now");
        }
        self.index_signal.request();
        Ok(book)
    }

    /// The full-text index.
    pub(crate) fn search_index(&self) -> &SearchIndex {
        &self.search
    }

    /// Sections of books whose text matches `query` (words and `"phrases"`, all
    /// required), best first: `limit` (1..=[`crate::search::MAX_LIMIT`]) from `offset`.
    ///
    /// # Errors
    /// `Worker` when the index fails.
    pub async fn search_text(
        self: &Arc<Self>,
        query: &str,
        limit: usize,
        offset: usize,
    ) -> Result<Found> {
        let lib = self.clone();
        let query = query.to_owned();
        blocking("searching the full text", move || {
            lib.search.search(&query, limit, offset)
        })
        .await
    }

    /// Page `page` (1-based, `per_page` books) of the books matching `query`: those whose
    /// title, authors, series or file name hold it, then those only their text matches
    /// (see [`crate::search::books`]).
    ///
    /// # Errors
    /// Catalog or index errors.
    pub async fn search_books(
        self: &Arc<Self>,
        query: &str,
        page: u64,
        per_page: u64,
    ) -> Result<BookResults> {
        let lib = self.clone();
        let query = query.to_owned();
        blocking("searching books", move || {
            crate::search::books::find(&lib, &query, page, per_page)
        })
        .await
    }

    /// Whether catalog changes are still waiting to be indexed for full-text search.
    pub fn indexing(&self) -> bool {
        self.index_signal.pending()
    }

    /// Blocks until every catalog change made so far is in the full-text index, at most
    /// `limit`; whether it is.
    pub fn wait_indexed(&self, limit: std::time::Duration) -> bool {
        self.index_signal.wait_caught_up(limit)
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
        let rel = check_name(name)?;
        self.with_db(|c| catalog::by_path(c, rel.as_str()))?
            .ok_or_else(|| ReaderError::NotFound(name.to_owned()))
    }

    /// Opens a regular file of the books root (a book, a cover) for reading; returns it
    /// with its size. The name is checked lexically, then opened beneath the root's
    /// directory handle, so a symlink out (even one swapped in after the check) is
    /// refused: the file returned is the file that was checked.
    ///
    /// # Errors
    /// `Traversal` (lexical, or a symlink out), `BadRequest` (a name naming no file),
    /// `NotFound` (also directories and other non-regular files), I/O errors.
    pub fn open_file(&self, name: &str) -> Result<(std::fs::File, u64)> {
        open_in(&self.books, name)
    }

    /// Reads a whole file of the books root, refusing one over `cap` bytes.
    ///
    /// # Errors
    /// Those of [`Library::open_file`], `TooLarge`, read errors.
    fn read_file(&self, name: &str, cap: u64) -> Result<Vec<u8>> {
        let (file, size) = self.open_file(name)?;
        read_capped(file, size, cap, name, &self.books)
    }

    /// The decoded, paged text of a TXT book at `page_chars` characters per page.
    ///
    /// # Errors
    /// `Unsupported` for a PDF; `Empty`, `NotText`, `TooLarge`, I/O errors.
    pub async fn txt(self: &Arc<Self>, book: &Book, page_chars: usize) -> Result<Arc<Paged>> {
        match book.format {
            Format::Txt => {}
            Format::Pdf => {
                return Err(ReaderError::Unsupported(format!(
                    "{} is a PDF; ask for its pages as images",
                    book.path
                )))
            }
            Format::Epub => {
                return Err(ReaderError::Unsupported(format!(
                    "{} is an EPUB; ask for its chapters",
                    book.path
                )))
            }
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
        let lib = self.clone();
        let (name, cap) = (book.path.clone(), self.cfg.max_txt_bytes);
        let paged = blocking("decoding a text book", move || {
            let bytes = lib.read_file(&name, cap)?;
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
        match book.format {
            Format::Pdf => {}
            Format::Txt => {
                return Err(ReaderError::Unsupported(format!(
                    "{} is a text book; ask for its pages as text",
                    book.path
                )))
            }
            Format::Epub => {
                return Err(ReaderError::Unsupported(format!(
                    "{} is an EPUB; ask for its chapters",
                    book.path
                )))
            }
        }
        let bytes = self.read_file(&book.path, self.cfg.max_pdf_bytes)?;
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
        // A generated cover draws the title and author, so an edit of either must not
        // serve the old card: they are part of the key with the cover file.
        let drawn = format!(
            "{}\0{}\0{}",
            book.cover_file.as_deref().unwrap_or(""),
            book.title,
            book.author.as_deref().unwrap_or("")
        );
        let key = format!(
            "cover3-{}-{}-{width}.jpg",
            book.blake3,
            crate::hashes::md5_hex(drawn.as_bytes())
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

    /// The opened EPUB of `book` (from the cache, else opened beneath the books root).
    /// Blocking.
    ///
    /// # Errors
    /// `Unsupported` for other formats; those of [`Library::open_file`] and
    /// [`Epub::open`].
    fn epub(&self, book: &Book) -> Result<Arc<Mutex<Epub<std::fs::File>>>> {
        if book.format != Format::Epub {
            return Err(ReaderError::Unsupported(format!(
                "{} is not an EPUB",
                book.path
            )));
        }
        {
            let cache = self.epubs.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((_, e)) = cache.iter().find(|(k, _)| *k == book.blake3) {
                return Ok(e.clone());
            }
        }
        let (file, _) = self.open_file(&book.path)?;
        let e = Arc::new(Mutex::new(Epub::open(&book.path, file, self.cfg.epub)?));
        let mut cache = self.epubs.lock().unwrap_or_else(|p| p.into_inner());
        cache.push_back((book.blake3.clone(), e.clone()));
        while cache.len() > EPUB_CACHE_ENTRIES {
            cache.pop_front();
        }
        Ok(e)
    }

    /// Runs `f` on the opened EPUB of `book` in a blocking worker.
    async fn with_epub<T: Send + 'static>(
        self: &Arc<Self>,
        what: &str,
        book: &Book,
        f: impl FnOnce(&mut Epub<std::fs::File>) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let lib = self.clone();
        let book = book.clone();
        blocking(what, move || {
            let e = lib.epub(&book)?;
            let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut e)
        })
        .await
    }

    /// The table of contents of an EPUB.
    ///
    /// # Errors
    /// `Unsupported` (not an EPUB), `BadEpub`, I/O errors.
    pub async fn epub_toc(self: &Arc<Self>, book: &Book) -> Result<Toc> {
        self.with_epub("reading an EPUB", book, |e| Ok(e.toc()))
            .await
    }

    /// Chapter `n` (1-based) of an EPUB, sanitized.
    ///
    /// # Errors
    /// `PageOutOfRange`, `Unsupported`, `BadEpub`, `TooLarge`, I/O errors.
    pub async fn epub_chapter(self: &Arc<Self>, book: &Book, n: u64) -> Result<Chapter> {
        let id = book.id;
        self.with_epub("reading an EPUB chapter", book, move |e| e.chapter(n, id))
            .await
    }

    /// An image, style sheet (sanitized) or font from inside an EPUB, with its media type.
    ///
    /// # Errors
    /// `Traversal`, `NotFound`, `Unsupported`, `BadEpub`, `TooLarge`, I/O errors.
    pub async fn epub_resource(
        self: &Arc<Self>,
        book: &Book,
        path: &str,
    ) -> Result<(Vec<u8>, &'static str)> {
        let (id, path) = (book.id, path.to_owned());
        self.with_epub("reading an EPUB resource", book, move |e| {
            e.resource(&path, id)
        })
        .await
    }

    /// The cover image inside an EPUB, if it names one (blocking, for covers).
    pub(crate) fn epub_cover_bytes(&self, book: &Book) -> Result<Option<Vec<u8>>> {
        let e = self.epub(book)?;
        let mut e = e.lock().unwrap_or_else(|p| p.into_inner());
        e.cover()
    }

    /// Reads a (non-PDF) image file from the books root, for covers.
    pub(crate) fn read_book_file(&self, rel: &str, cap: u64) -> Result<Vec<u8>> {
        self.read_file(rel, cap)
    }

    /// The bytes of a PDF book (for cover rendering).
    pub(crate) fn pdf_bytes_for_cover(&self, book: &Book) -> Result<Vec<u8>> {
        self.pdf_bytes(book)
    }
}

/// Checks a client's name for a file of the books root (relative: a leading `/` is
/// refused).
///
/// # Errors
/// `Traversal` for `..`, absolute names, control characters (NUL included) and drive
/// prefixes; `BadRequest` for a name that names no file.
pub(crate) fn check_name(name: &str) -> Result<RelPath> {
    confine::check(name, Leading::Refuse).map_err(|e| match e {
        NameError::Empty if name.is_empty() => ReaderError::BadRequest("empty file name".into()),
        NameError::Empty => ReaderError::BadRequest(format!("`{name}` names no file")),
        NameError::ParentDir | NameError::Control | NameError::Drive | NameError::Absolute => {
            ReaderError::Traversal(name.to_owned())
        }
    })
}

/// Opens `name` beneath `root`, with the reader's errors.
fn open_in(root: &Root, name: &str) -> Result<(std::fs::File, u64)> {
    let rel = check_name(name)?;
    root.open_read(&rel).map_err(|e| {
        if confine::is_escape(&e) {
            tracing::debug!(name, error = %e, "refused a path out of the books root");
            ReaderError::Traversal(name.to_owned())
        } else if matches!(
            e.kind(),
            std::io::ErrorKind::NotFound
                | std::io::ErrorKind::NotADirectory
                | std::io::ErrorKind::InvalidInput
        ) {
            ReaderError::NotFound(name.to_owned())
        } else {
            ReaderError::io(root.path().join(rel.as_path()), e)
        }
    })
}

/// Reads an open file of `size` bytes whole, refusing one over `cap` (also one that grew
/// past it since it was opened).
fn read_capped(
    file: std::fs::File,
    size: u64,
    cap: u64,
    name: &str,
    root: &Root,
) -> Result<Vec<u8>> {
    let too_large =
        |len: u64| ReaderError::TooLarge(format!("{name} is {len} bytes, over the limit of {cap}"));
    if size > cap {
        return Err(too_large(size));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| ReaderError::io(root.path().join(name), e))?;
    if bytes.len() as u64 > cap {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_relative_and_stay_inside() {
        for name in [
            "../x",
            "a/../../x",
            "a\\..\\x",
            "/etc/passwd",
            "\\x",
            "a\0b",
            "C:x",
        ] {
            assert!(
                matches!(check_name(name), Err(ReaderError::Traversal(_))),
                "{name:?}"
            );
        }
        assert_eq!(check_name("a/./b.txt").unwrap().as_str(), "a/b.txt");
        assert_eq!(check_name("挽歌.pdf").unwrap().as_str(), "挽歌.pdf");
        assert!(matches!(check_name(""), Err(ReaderError::BadRequest(_))));
        assert!(matches!(check_name("./"), Err(ReaderError::BadRequest(_))));
    }

    #[test]
    fn symlinks_out_are_traversal_and_missing_files_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let books = dir.path().join("books");
        std::fs::create_dir_all(books.join("sub")).unwrap();
        std::fs::write(dir.path().join("secret"), b"s").unwrap();
        std::fs::write(books.join("in.txt"), b"x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), books.join("link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.path(), books.join("updir")).unwrap();
        let root = Root::open(&books).unwrap();
        assert_eq!(open_in(&root, "in.txt").unwrap().1, 1);
        for name in ["link.txt", "updir/secret", "../secret"] {
            assert!(
                matches!(open_in(&root, name), Err(ReaderError::Traversal(_))),
                "{name}"
            );
        }
        for name in ["nope.txt", "sub", "in.txt/x"] {
            assert!(
                matches!(open_in(&root, name), Err(ReaderError::NotFound(_))),
                "{name}"
            );
        }
    }

    #[test]
    fn reads_are_capped_and_errors_name_no_server_path() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("big.txt"), b"0123456789").unwrap();
        let root = Root::open(dir.path()).unwrap();
        let (file, size) = open_in(&root, "big.txt").unwrap();
        assert_eq!(
            read_capped(file, size, 10, "big.txt", &root).unwrap().len(),
            10
        );
        let (file, size) = open_in(&root, "big.txt").unwrap();
        let err = read_capped(file, size, 9, "big.txt", &root).unwrap_err();
        assert!(matches!(err, ReaderError::TooLarge(_)));
        let text = err.to_string();
        assert!(!text.contains(&*dir.path().to_string_lossy()), "{text}");
    }
}
