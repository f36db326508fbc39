//! The background indexer: one thread per library, woken whenever the catalog changes
//! (and once at start), that brings the full-text index in line with the catalog —
//! books gone from the catalog, changed (another BLAKE3) or now unreadable are removed,
//! new and changed readable books are extracted ([`super::extract`]) and indexed,
//! committing every few books so searches see progress. It never runs on a request.

use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::catalog::{Book, Format};
use crate::error::{ReaderError, Result};
use crate::library::Library;
use crate::search::extract::{self, Section};

/// Books indexed between commits.
const BOOKS_PER_COMMIT: usize = 16;
/// Section bytes indexed between commits.
const BYTES_PER_COMMIT: usize = 16 << 20;
/// How long the indexer waits for the index's lock (held by a library being closed).
const LOCK_WAIT: Duration = Duration::from_secs(60);

#[derive(Debug, Default)]
struct State {
    /// Catalog changes asked to be indexed.
    requested: u64,
    /// The last request the index has caught up with.
    done: u64,
    /// The library is gone: the thread ends.
    closed: bool,
}

/// What the library and its indexer thread share: pending work and progress.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    state: Mutex<State>,
    cv: Condvar,
}

impl Signal {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Asks for the index to follow the catalog.
    pub(crate) fn request(&self) {
        self.lock().requested += 1;
        self.cv.notify_all();
    }

    /// Ends the thread (when the library is dropped).
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.cv.notify_all();
    }

    /// Waits until every change requested so far is indexed, at most `limit`; whether it
    /// was.
    pub(crate) fn wait_caught_up(&self, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        let mut s = self.lock();
        let want = s.requested;
        while s.done < want && !s.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            s = self
                .cv
                .wait_timeout(s, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        s.done >= want
    }

    /// Whether changes are waiting to be indexed.
    pub(crate) fn pending(&self) -> bool {
        let s = self.lock();
        s.done < s.requested
    }

    /// The next request to work on; `None` once closed.
    fn next(&self) -> Option<u64> {
        let mut s = self.lock();
        loop {
            if s.closed {
                return None;
            }
            if s.done < s.requested {
                return Some(s.requested);
            }
            s = self.cv.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    fn finished(&self, upto: u64) {
        let mut s = self.lock();
        s.done = s.done.max(upto);
        drop(s);
        self.cv.notify_all();
    }
}

/// Starts the indexer thread of `lib`.
///
/// # Errors
/// The thread cannot be spawned.
pub(crate) fn spawn(lib: &Arc<Library>, signal: Arc<Signal>) -> Result<()> {
    let weak = Arc::downgrade(lib);
    std::thread::Builder::new()
        .name("reader-index".into())
        .spawn(move || run(&weak, &signal))
        .map(|_| ())
        .map_err(|e| {
            warn!(error = %e, "cannot start the full-text indexer");
            ReaderError::Worker("starting the full-text indexer".into())
        })
}

fn run(weak: &Weak<Library>, signal: &Signal) {
    while let Some(upto) = signal.next() {
        let Some(lib) = weak.upgrade() else {
            return;
        };
        if !wait_for_lock(&lib, signal) {
            drop(lib);
            signal.finished(upto);
            continue;
        }
        match sync(&lib) {
            Ok((added, removed)) if added + removed > 0 => {
                info!(indexed = added, removed, "full-text index updated");
            }
            Ok(_) => {}
            Err(e) => warn!(error = %e, "full-text indexing failed"),
        }
        drop(lib);
        signal.finished(upto);
    }
}

/// Waits (bounded) for the index's writer lock: a library just closed on the same state
/// directory may still hold it for a moment.
fn wait_for_lock(lib: &Library, signal: &Signal) -> bool {
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        if lib.search_index().writer_ready() {
            return true;
        }
        if Instant::now() >= deadline || signal.lock().closed {
            warn!("the full-text index is locked by another writer; not updated");
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Brings the index in line with the catalog; returns (books indexed, books removed).
///
/// # Errors
/// Catalog or index errors.
pub(crate) fn sync(lib: &Library) -> Result<(usize, usize)> {
    let ix = lib.search_index();
    let books = lib.books(None)?;
    let indexed = ix.indexed()?;
    let wanted: HashSet<i64> = books
        .iter()
        .filter(|b| b.error.is_none())
        .map(|b| b.id)
        .collect();
    let mut removed = 0;
    for id in indexed.keys().filter(|id| !wanted.contains(id)) {
        ix.remove(*id)?;
        removed += 1;
    }
    let todo: Vec<&Book> = books
        .iter()
        .filter(|b| b.error.is_none() && indexed.get(&b.id) != Some(&b.blake3))
        .collect();
    let (mut added, mut since_commit, mut bytes) = (0, 0, 0);
    for b in todo {
        let sections = sections(lib, b).unwrap_or_else(|e| {
            warn!(book = %b.path, error = %e, "cannot extract the book's text; not searchable");
            Vec::new()
        });
        bytes += sections.iter().map(|s| s.text.len()).sum::<usize>();
        ix.put(b.id, &b.blake3, &sections)?;
        added += 1;
        since_commit += 1;
        if since_commit >= BOOKS_PER_COMMIT || bytes >= BYTES_PER_COMMIT {
            ix.commit()?;
            (since_commit, bytes) = (0, 0);
        }
    }
    if added + removed > 0 {
        ix.commit()?;
    }
    Ok((added, removed))
}

/// The searchable sections of one book (blocking).
fn sections(lib: &Library, b: &Book) -> Result<Vec<Section>> {
    let cfg = lib.config();
    match b.format {
        Format::Txt => {
            let bytes = lib.read_book_file(&b.path, cfg.max_txt_bytes)?;
            extract::txt(&b.path, &bytes, cfg.txt_page_chars)
        }
        Format::Pdf => {
            let bytes = lib.read_book_file(&b.path, cfg.max_pdf_bytes)?;
            extract::pdf(&b.path, &bytes)
        }
        Format::Epub => {
            let (file, _) = lib.open_file(&b.path)?;
            let mut e = crate::epub::Epub::open(&b.path, file, cfg.epub)?;
            Ok(extract::epub(&mut e))
        }
    }
}
