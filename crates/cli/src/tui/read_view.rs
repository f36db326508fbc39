//! The terminal reader's model: the library list (fetched a page at a time as it is
//! scrolled, filtered by title/author and searched in full text), the open book cut into
//! screen pages, the go-to prompt, bookmarks, the help overlay, and when to save the
//! reading position. Pure: keys, sizes, results and the time come in, [`Effect`]s (what to
//! fetch or save) go out, so it is unit-tested; [`read`](super::read) does the I/O and
//! draws it.
//!
//! Saving: a page turn marks the position dirty and due [`SAVE_DELAY`] later, so paging
//! quickly sends one write; leaving the book or quitting sends it at once. The server
//! keeps the latest write (its own timestamp), whoever wrote it.

use std::time::{Duration, Instant};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use sockit_reader::http::api_types::{
    BookJson, BookList, PutProgress, SavedProgress, SearchResults,
};

pub use super::read_list::{Entry, Library};
use super::read_marks::{self, Bookmark};
use super::read_pages::{cells, fit, Area, Pages};
use super::read_text::{BookText, UnitKind};

/// Books fetched per listing request.
pub const PER_PAGE: u64 = 100;
/// Full-text hits fetched per search.
pub const SEARCH_LIMIT: usize = 100;
/// How long after a page turn the position is saved (turns in between restart it).
pub const SAVE_DELAY: Duration = Duration::from_millis(1500);
/// The device name positions are saved with.
pub const DEVICE: &str = "sockit-read";
/// Rows below the last shown one that are fetched ahead in the library list.
const PRELOAD_ROWS: usize = 20;

/// Something to fetch or store for the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// One page of the listing (`GET /api/books?q=&page=&per_page=`).
    List {
        /// The listing this belongs to (answers to an older one are dropped).
        gen: u64,
        /// The title/author filter.
        query: Option<String>,
        /// The page, from 1.
        page: u64,
    },
    /// A full-text search (`GET /api/search`).
    Search {
        /// The listing this belongs to.
        gen: u64,
        /// The words.
        query: String,
    },
    /// Load a book's text, its saved position and its bookmarks.
    Open {
        /// The load this is (answers to a cancelled one are dropped).
        gen: u64,
        /// The book.
        id: i64,
        /// The book as listed, when known (a search hit has only the id).
        book: Option<Box<BookJson>>,
    },
    /// Stop loading.
    CancelOpen,
    /// Save the reading position.
    Save {
        /// The book.
        id: i64,
        /// The position.
        progress: PutProgress,
    },
    /// Store a book's bookmarks.
    SaveMarks {
        /// The document id (partial MD5).
        document: String,
        /// All its marks.
        marks: Vec<Bookmark>,
    },
    /// Leave the program (after the saves before it).
    Quit,
}

/// A book loaded for reading.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The book.
    pub book: BookJson,
    /// Its text.
    pub text: BookText,
    /// The caller's saved position, if any.
    pub saved: Option<SavedProgress>,
    /// Its bookmarks, or why they cannot be read.
    pub marks: Result<Vec<Bookmark>, String>,
}

/// A book being loaded.
#[derive(Debug, Clone)]
pub struct Loading {
    /// Its title.
    pub title: String,
    /// Units fetched.
    pub done: usize,
    /// Units to fetch (0 until known).
    pub total: usize,
    /// Where to open it instead of the saved position (a search hit's unit).
    jump: Option<u64>,
    gen: u64,
}

/// The open book.
#[derive(Debug, Clone)]
pub struct Reader {
    /// The book.
    pub book: BookJson,
    /// Its text.
    pub text: BookText,
    /// The text cut for the terminal.
    pub pages: Pages,
    /// The page shown (0-based).
    pub page: usize,
    /// The place the reader is at (byte offset): kept across resizes, so the page shown
    /// after one holds the same text.
    anchor: usize,
    /// Its bookmarks.
    pub marks: Vec<Bookmark>,
    /// Why the bookmarks file cannot be used, if it cannot.
    marks_error: Option<String>,
    /// The position changed since it was last saved.
    dirty: bool,
    /// When to save it.
    due: Option<Instant>,
}

impl Reader {
    /// The position to save for the page shown.
    pub fn position(&self) -> super::read_text::Position {
        let last = self.page + 1 >= self.pages.len();
        self.text
            .position(self.anchor, last && self.pages.len() > 1)
    }

    /// The unit the page shown starts in (1-based).
    pub fn unit(&self) -> u64 {
        self.text.unit_at(self.anchor).0
    }

    /// The screen page (0-based) of a bookmark.
    pub fn page_of_mark(&self, m: &Bookmark) -> usize {
        self.pages.page_of(self.text.locate(m.unit, m.fraction))
    }

    /// The first words of page `page`.
    pub fn label(&self, page: usize) -> String {
        let text = self.text.text();
        let mut label = String::new();
        for &(s, e) in self.pages.rows(page) {
            let row = text.get(s..e).unwrap_or("").trim();
            if row.is_empty() {
                continue;
            }
            if !label.is_empty() {
                label.push(' ');
            }
            label.push_str(row);
            if cells(&label) >= 60 {
                break;
            }
        }
        fit(&label, 60)
    }
}

/// What is shown over the screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// The keys.
    Help,
    /// The go-to-page prompt and what is typed.
    GoTo(String),
    /// The bookmark list and the selected one.
    Marks(usize),
}

/// The main screen.
#[derive(Debug, Clone)]
pub enum Screen {
    /// The library list.
    Library,
    /// A book being loaded.
    Loading(Loading),
    /// A book open.
    Book(Box<Reader>),
}

/// The state of the last position save.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sync {
    /// Nothing saved yet.
    Idle,
    /// A save is on its way.
    Saving,
    /// The server has it.
    Saved,
    /// It failed.
    Failed(String),
}

/// The whole model.
#[derive(Debug, Clone)]
pub struct App {
    /// The server, for the title bar.
    pub server: String,
    /// The library list (kept while a book is open).
    pub library: Library,
    /// What is shown.
    pub screen: Screen,
    /// What is shown over it.
    pub overlay: Option<Overlay>,
    /// A note for the status line (cleared by the next key).
    pub message: Option<String>,
    /// The last position save.
    pub sync: Sync,
    /// The terminal's size (columns, rows).
    size: (usize, usize),
    effects: Vec<Effect>,
    gen: u64,
}

/// The text area of a book on a terminal of `size`: a column of margin on each side
/// (when there are 40 columns or more) and every row but the status line.
pub fn text_area(size: (usize, usize)) -> Area {
    let (cols, rows) = size;
    let margin = if cols >= 40 { 2 } else { 0 };
    Area {
        width: cols.saturating_sub(margin).max(2),
        height: rows.saturating_sub(1).max(1),
    }
}

/// Whether `key` is Ctrl-C.
fn ctrl_c(key: &KeyEvent) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c')
}

impl App {
    /// The model with the first listing page (fetched before the screen opened) for
    /// `query`, on a terminal of `size`.
    pub fn new(server: &str, first: BookList, query: Option<String>, size: (usize, usize)) -> Self {
        let mut app = App {
            server: server.to_owned(),
            library: Library::default(),
            screen: Screen::Library,
            overlay: None,
            message: None,
            sync: Sync::Idle,
            size,
            effects: Vec::new(),
            gen: 1,
        };
        app.library.query = query.clone();
        app.library.gen = app.gen;
        app.library.next_page = 1;
        app.library.fetching = true;
        app.on_list(app.gen, Ok(first));
        if let Some(q) = query {
            app.library.searching = true;
            app.effects.push(Effect::Search {
                gen: app.gen,
                query: q,
            });
        }
        app
    }

    /// What the model asks for, in order.
    pub fn take_effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.effects)
    }

    /// Rows of the library list on screen.
    pub fn list_rows(&self) -> usize {
        self.size.1.saturating_sub(2).max(1)
    }

    /// When [`App::tick`] has something to do next.
    pub fn deadline(&self) -> Option<Instant> {
        match &self.screen {
            Screen::Book(r) if r.dirty => r.due,
            _ => None,
        }
    }

    /// Time passed: saves a position that is due.
    pub fn tick(&mut self, now: Instant) {
        if let Screen::Book(r) = &self.screen {
            if r.dirty && r.due.is_some_and(|d| d <= now) {
                self.save();
            }
        }
    }

    /// The terminal was resized: a book is cut again and stays at its place.
    pub fn resize(&mut self, size: (usize, usize)) {
        self.size = size;
        let area = text_area(size);
        if let Screen::Book(r) = &mut self.screen {
            if r.pages.area() != area {
                r.pages = Pages::new(r.text.text(), &r.text.breaks(), area);
                r.page = r.pages.page_of(r.anchor);
            }
        }
        self.scroll_list();
    }

    /// A key was pressed at `now`.
    pub fn on_key(&mut self, key: KeyEvent, now: Instant) {
        self.message = None;
        if ctrl_c(&key) {
            self.quit();
            return;
        }
        if self.overlay.is_some() {
            self.overlay_key(key, now);
            return;
        }
        match &self.screen {
            Screen::Library => self.library_key(key),
            Screen::Loading(_) => {
                if matches!(key.code, KeyCode::Esc | KeyCode::Char('q')) {
                    self.effects.push(Effect::CancelOpen);
                    self.screen = Screen::Library;
                }
            }
            Screen::Book(_) => self.book_key(key, now),
        }
    }

    fn quit(&mut self) {
        if matches!(&self.screen, Screen::Book(r) if r.dirty) {
            self.save();
        }
        self.effects.push(Effect::Quit);
    }

    fn overlay_key(&mut self, key: KeyEvent, now: Instant) {
        let Some(overlay) = self.overlay.take() else {
            return;
        };
        match overlay {
            Overlay::Help => {}
            Overlay::GoTo(mut typed) => match key.code {
                KeyCode::Char(c) if c.is_ascii_digit() && typed.len() < 9 => {
                    typed.push(c);
                    self.overlay = Some(Overlay::GoTo(typed));
                }
                KeyCode::Backspace => {
                    typed.pop();
                    self.overlay = Some(Overlay::GoTo(typed));
                }
                KeyCode::Enter => {
                    let Screen::Book(r) = &self.screen else {
                        return;
                    };
                    let pages = r.pages.len();
                    match typed.parse::<usize>() {
                        Ok(n) if (1..=pages).contains(&n) => self.turn_to(n - 1, now),
                        Ok(n) => {
                            self.message = Some(format!("no page {n}: pages are 1 to {pages}"))
                        }
                        Err(_) => {}
                    }
                }
                KeyCode::Esc => {}
                _ => self.overlay = Some(Overlay::GoTo(typed)),
            },
            Overlay::Marks(selected) => {
                let Screen::Book(r) = &mut self.screen else {
                    return;
                };
                let n = r.marks.len();
                match key.code {
                    KeyCode::Up | KeyCode::Char('k') => {
                        self.overlay = Some(Overlay::Marks(selected.saturating_sub(1)));
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        let s = (selected + 1).min(n.saturating_sub(1));
                        self.overlay = Some(Overlay::Marks(s));
                    }
                    KeyCode::Enter => {
                        if let Some(m) = r.marks.get(selected).cloned() {
                            let at = r.text.locate(m.unit, m.fraction);
                            self.move_to(at, now);
                        }
                    }
                    KeyCode::Char('d') | KeyCode::Delete if selected < n => {
                        r.marks.remove(selected);
                        let document = r.book.partial_md5.clone();
                        let marks = r.marks.clone();
                        let left = r.marks.len();
                        self.effects.push(Effect::SaveMarks { document, marks });
                        self.message = Some("bookmark removed".into());
                        if left > 0 {
                            self.overlay = Some(Overlay::Marks(selected.min(left - 1)));
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    fn library_key(&mut self, key: KeyEvent) {
        if let Some(mut typed) = self.library.input.take() {
            match key.code {
                KeyCode::Enter => {
                    let q = typed.trim().to_owned();
                    self.apply_query((!q.is_empty()).then_some(q));
                }
                KeyCode::Esc => {}
                KeyCode::Backspace => {
                    typed.pop();
                    self.library.input = Some(typed);
                }
                KeyCode::Char('u') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    self.library.input = Some(String::new());
                }
                KeyCode::Char(c) if !key.modifiers.contains(KeyModifiers::CONTROL) => {
                    if typed.chars().count() < 200 {
                        typed.push(c);
                    }
                    self.library.input = Some(typed);
                }
                _ => self.library.input = Some(typed),
            }
            return;
        }
        let page = self.list_rows();
        match key.code {
            KeyCode::Char('q') => self.quit(),
            KeyCode::Esc if self.library.query.is_some() => self.apply_query(None),
            KeyCode::Esc => self.quit(),
            KeyCode::Char('?') => self.overlay = Some(Overlay::Help),
            KeyCode::Char('/') => {
                self.library.input = Some(self.library.query.clone().unwrap_or_default());
            }
            KeyCode::Char('r') => self.apply_query(self.library.query.clone()),
            KeyCode::Up | KeyCode::Char('k') => self.select_by(-1),
            KeyCode::Down | KeyCode::Char('j') => self.select_by(1),
            KeyCode::PageUp => self.select_by(-(page as isize)),
            KeyCode::PageDown => self.select_by(page as isize),
            KeyCode::Home => self.select_by(isize::MIN / 2),
            KeyCode::End => self.select_by(isize::MAX / 2),
            KeyCode::Enter => self.open_selected(),
            _ => {}
        }
    }

    /// Moves the selection by `delta` rows, over the heading.
    fn select_by(&mut self, delta: isize) {
        let entries = self.library.entries();
        if entries.is_empty() {
            return;
        }
        let last = entries.len() - 1;
        let mut i = (self.library.selected as isize)
            .saturating_add(delta)
            .clamp(0, last as isize) as usize;
        if entries[i] == Entry::Header {
            i = if delta < 0 && i > 0 {
                i - 1
            } else if i < last {
                i + 1
            } else {
                i.saturating_sub(1)
            };
        }
        self.library.selected = i;
        self.scroll_list();
    }

    /// Keeps the selection on screen and fetches the next listing page when the rows
    /// shown come near the end of what is fetched.
    fn scroll_list(&mut self) {
        let rows = self.list_rows();
        let lib = &mut self.library;
        let entries = lib.entries();
        lib.selected = lib.selected.min(entries.len().saturating_sub(1));
        // The heading is not selectable.
        if entries.get(lib.selected) == Some(&Entry::Header) && lib.selected + 1 < entries.len() {
            lib.selected += 1;
        }
        if lib.selected < lib.top {
            lib.top = lib.selected;
        } else if lib.selected >= lib.top + rows {
            lib.top = lib.selected + 1 - rows;
        }
        if !lib.fetching
            && lib.books.len() < lib.total
            && lib.top + rows + PRELOAD_ROWS >= lib.books.len()
        {
            lib.fetching = true;
            self.effects.push(Effect::List {
                gen: lib.gen,
                query: lib.query.clone(),
                page: lib.next_page,
            });
        }
    }

    /// Lists the books matching `query` (all without one) and searches their text.
    fn apply_query(&mut self, query: Option<String>) {
        self.gen += 1;
        self.library = Library {
            query: query.clone(),
            gen: self.gen,
            next_page: 1,
            fetching: true,
            searching: query.is_some(),
            ..Library::default()
        };
        self.effects.push(Effect::List {
            gen: self.gen,
            query: query.clone(),
            page: 1,
        });
        if let Some(q) = query {
            self.effects.push(Effect::Search {
                gen: self.gen,
                query: q,
            });
        }
    }

    fn open_selected(&mut self) {
        let lib = &self.library;
        let Some(&entry) = lib.entries().get(lib.selected) else {
            return;
        };
        self.gen += 1;
        let (id, title, book, jump) = match entry {
            Entry::Header => return,
            Entry::Book(i) => {
                let b = &lib.books[i];
                (b.id, b.title.clone(), Some(Box::new(b.clone())), None)
            }
            Entry::Hit(i) => {
                let h = &lib.hits[i];
                (h.book, h.title.clone(), None, Some(h.location))
            }
        };
        self.screen = Screen::Loading(Loading {
            title,
            done: 0,
            total: 0,
            jump,
            gen: self.gen,
        });
        self.effects.push(Effect::Open {
            gen: self.gen,
            id,
            book,
        });
    }

    fn book_key(&mut self, key: KeyEvent, now: Instant) {
        let Screen::Book(r) = &self.screen else {
            return;
        };
        let page = r.page;
        let last = r.pages.len() - 1;
        match key.code {
            KeyCode::PageDown
            | KeyCode::Right
            | KeyCode::Down
            | KeyCode::Char(' ' | 'j' | 'l' | 'n') => {
                if page == last {
                    self.message = Some("the end of the book".into());
                } else {
                    self.turn_to(page + 1, now);
                }
            }
            KeyCode::PageUp
            | KeyCode::Left
            | KeyCode::Up
            | KeyCode::Backspace
            | KeyCode::Char('k' | 'h' | 'p') => {
                if page == 0 {
                    self.message = Some("the first page".into());
                } else {
                    self.turn_to(page - 1, now);
                }
            }
            KeyCode::Home => self.turn_to(0, now),
            KeyCode::End => self.turn_to(last, now),
            KeyCode::Char('g') => self.overlay = Some(Overlay::GoTo(String::new())),
            KeyCode::Char('b') => self.add_mark(),
            KeyCode::Char('B') => {
                if r.marks.is_empty() {
                    self.message = Some("no bookmarks yet: b adds one".into());
                } else {
                    let here = r
                        .marks
                        .iter()
                        .position(|m| r.page_of_mark(m) >= page)
                        .unwrap_or(0);
                    self.overlay = Some(Overlay::Marks(here));
                }
            }
            KeyCode::Char('?') => self.overlay = Some(Overlay::Help),
            KeyCode::Char('q') | KeyCode::Esc => {
                if r.dirty {
                    self.save();
                }
                self.screen = Screen::Library;
                self.scroll_list();
            }
            _ => {}
        }
    }

    /// Shows page `page` and makes the position due for saving.
    fn turn_to(&mut self, page: usize, now: Instant) {
        let Screen::Book(r) = &mut self.screen else {
            return;
        };
        let page = page.min(r.pages.len() - 1);
        if page == r.page && r.pages.page_of(r.anchor) == page && r.anchor == r.pages.start(page) {
            return;
        }
        r.page = page;
        r.anchor = r.pages.start(page);
        r.dirty = true;
        r.due = Some(now + SAVE_DELAY);
    }

    /// Goes to the page holding byte `at`, keeping `at` as the place.
    fn move_to(&mut self, at: usize, now: Instant) {
        let Screen::Book(r) = &mut self.screen else {
            return;
        };
        r.page = r.pages.page_of(at);
        r.anchor = at;
        r.dirty = true;
        r.due = Some(now + SAVE_DELAY);
    }

    /// Sends the position now.
    fn save(&mut self) {
        let Screen::Book(r) = &mut self.screen else {
            return;
        };
        let p = r.position();
        r.dirty = false;
        r.due = None;
        self.sync = Sync::Saving;
        self.effects.push(Effect::Save {
            id: r.book.id,
            progress: PutProgress {
                page: p.unit,
                percentage: Some(p.percentage),
                device: Some(DEVICE.into()),
            },
        });
    }

    fn add_mark(&mut self) {
        let Screen::Book(r) = &mut self.screen else {
            return;
        };
        if let Some(e) = &r.marks_error {
            self.message = Some(format!("bookmarks cannot be saved: {e}"));
            return;
        }
        let page = r.page;
        if r.marks.iter().any(|m| r.page_of_mark(m) == page) {
            self.message = Some(format!("page {} is already bookmarked", page + 1));
            return;
        }
        if r.marks.len() >= read_marks::MAX_PER_BOOK {
            self.message = Some(format!(
                "at most {} bookmarks a book",
                read_marks::MAX_PER_BOOK
            ));
            return;
        }
        let (unit, fraction) = r.text.unit_at(r.anchor);
        r.marks.push(Bookmark {
            unit,
            fraction,
            label: r.label(page),
        });
        read_marks::sort(&mut r.marks);
        self.message = Some(format!("page {} bookmarked (B lists them)", page + 1));
        self.effects.push(Effect::SaveMarks {
            document: r.book.partial_md5.clone(),
            marks: r.marks.clone(),
        });
    }

    /// A listing page arrived.
    pub fn on_list(&mut self, gen: u64, result: Result<BookList, String>) {
        let lib = &mut self.library;
        if gen != lib.gen {
            return;
        }
        lib.fetching = false;
        match result {
            Ok(list) => {
                let before = lib.books.len();
                for b in list.books {
                    if lib.seen.insert(b.id) {
                        lib.books.push(b);
                    }
                }
                lib.total = list.total;
                lib.next_page += 1;
                if lib.books.len() == before {
                    // Nothing new (the catalog shrank meanwhile): the list is complete.
                    lib.total = lib.books.len();
                }
            }
            Err(e) => {
                lib.total = lib.books.len();
                self.message = Some(format!("cannot list books: {e}"));
            }
        }
        self.scroll_list();
    }

    /// Full-text results arrived.
    pub fn on_search(&mut self, gen: u64, result: Result<SearchResults, String>) {
        let lib = &mut self.library;
        if gen != lib.gen {
            return;
        }
        lib.searching = false;
        match result {
            Ok(r) => {
                lib.hits = r.hits;
                lib.hits_total = r.total;
                lib.indexing = r.indexing;
            }
            Err(e) => self.message = Some(format!("full-text search failed: {e}")),
        }
        self.scroll_list();
    }

    /// Loading made progress: `done` of `total` units.
    pub fn on_progress(&mut self, gen: u64, done: usize, total: usize) {
        if let Screen::Loading(l) = &mut self.screen {
            if l.gen == gen {
                l.done = done;
                l.total = total;
            }
        }
    }

    /// A book finished loading (or failed to).
    pub fn on_opened(&mut self, gen: u64, result: Result<Opened, String>) {
        let Screen::Loading(l) = &self.screen else {
            return;
        };
        if l.gen != gen {
            return;
        }
        let jump = l.jump;
        let opened = match result {
            Ok(o) => o,
            Err(e) => {
                self.screen = Screen::Library;
                self.message = Some(e);
                return;
            }
        };
        let Opened {
            book,
            text,
            saved,
            marks,
        } = opened;
        let pages = Pages::new(text.text(), &text.breaks(), text_area(self.size));
        let end = text.text().len();
        let (anchor, note) = match (jump, &saved) {
            (Some(unit), _) => (
                Some(text.locate(unit, 0.0)),
                format!("{} {unit} (the match)", text.kind().name()),
            ),
            (None, Some(s)) => (
                text.place_of(s.page, s.percentage),
                format!(
                    "resumed where {} left off ({}%)",
                    s.device,
                    (s.percentage * 100.0).floor()
                ),
            ),
            (None, None) => (Some(0), String::new()),
        };
        let page = match anchor {
            Some(a) => pages.page_of(a),
            None => pages.len() - 1,
        };
        let (marks, marks_error) = match marks {
            Ok(m) => (m, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        if let Some(e) = &marks_error {
            self.message = Some(format!("bookmarks unavailable: {e}"));
        } else if !note.is_empty() {
            self.message = Some(note);
        }
        self.screen = Screen::Book(Box::new(Reader {
            book,
            anchor: anchor.unwrap_or_else(|| pages.start(page)).min(end),
            text,
            pages,
            page,
            marks,
            marks_error,
            // Opening moves nothing: the position is saved when a page is turned.
            dirty: false,
            due: None,
        }));
    }

    /// A position save finished.
    pub fn on_saved(&mut self, result: Result<(), String>) {
        self.sync = match result {
            Ok(()) => Sync::Saved,
            Err(e) => Sync::Failed(e),
        };
    }

    /// Storing bookmarks finished.
    pub fn on_marks_saved(&mut self, result: Result<(), String>) {
        if let Err(e) = result {
            self.message = Some(format!("bookmarks not saved: {e}"));
        }
    }

    /// The status line of the open book, `width` cells: the title (and the chapter's),
    /// the chapter or PDF page, page N/M and the percentage; then the note or the save
    /// state, and the help key. The title is cut first, the page never.
    pub fn book_status(&self, width: usize) -> Option<String> {
        let Screen::Book(r) = &self.screen else {
            return None;
        };
        let units = r.text.units();
        let unit = r.unit();
        let place = match r.text.kind() {
            UnitKind::Chapter => format!("ch. {unit}/{units} · "),
            UnitKind::PdfPage => format!("PDF p. {unit}/{units} · "),
            UnitKind::TxtPage => String::new(),
        };
        let pct = (r.position().percentage * 100.0).floor();
        let info = format!(" · {place}page {}/{} · {pct}% ", r.page + 1, r.pages.len());
        let note = match (&self.message, &self.sync) {
            (Some(m), _) => m.clone(),
            // A turn not saved yet.
            (None, _) if r.dirty => String::new(),
            (None, Sync::Failed(e)) => format!("position not saved: {e}"),
            (None, Sync::Saving) => "saving…".into(),
            (None, Sync::Saved) => "saved".into(),
            (None, Sync::Idle) => String::new(),
        };
        let right = if note.is_empty() {
            "? help ".to_owned()
        } else {
            format!("{note} · ? help ")
        };
        let info = fit(&info, width);
        let right = fit(&right, width.saturating_sub(cells(&info) + 8));
        let mut title = format!(" {}", r.book.title);
        if let Some(t) = r.text.title(unit).filter(|t| *t != r.book.title) {
            title.push_str(&format!(" — {t}"));
        }
        let room = width.saturating_sub(cells(&info) + cells(&right));
        let title = fit(&title, room);
        let pad = room.saturating_sub(cells(&title));
        Some(format!("{title}{info}{}{right}", " ".repeat(pad)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::read_text::UnitText;
    use ratatui::crossterm::event::KeyEventKind;
    use sockit_reader::catalog::Format;
    use sockit_reader::http::api_types::SearchHit;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent {
            code,
            modifiers: KeyModifiers::NONE,
            kind: KeyEventKind::Press,
            state: ratatui::crossterm::event::KeyEventState::NONE,
        }
    }

    fn ch(c: char) -> KeyEvent {
        key(KeyCode::Char(c))
    }

    /// A book as the server sends it (fields it may add have defaults).
    fn book(id: i64, title: &str, format: Format, pages: u64) -> BookJson {
        serde_json::from_value(serde_json::json!({
            "id": id, "path": format!("{title}.txt"), "title": title, "author": null,
            "format": format, "size": 1, "pages": pages, "error": null, "encoding": null,
            "md5": "m", "partial_md5": format!("doc{id}"), "blake3": "h", "mtime": 0,
            "cover_file": null, "cover_url": "", "thumb_url": "", "file_url": "",
        }))
        .unwrap()
    }

    fn list(books: Vec<BookJson>, total: usize, page: u64) -> BookList {
        BookList {
            total,
            generation: 1,
            page,
            per_page: PER_PAGE,
            books,
        }
    }

    /// A TXT book of 200 lines in 7 server pages.
    fn opened(saved: Option<SavedProgress>) -> Opened {
        let lines: Vec<String> = (1..=200).map(|i| format!("line {i:03}\n")).collect();
        let units = lines
            .chunks(30)
            .map(|c| UnitText {
                text: c.concat(),
                title: None,
            })
            .collect();
        Opened {
            book: book(7, "Lines", Format::Txt, 7),
            text: BookText::new(units, UnitKind::TxtPage, |_| String::new()),
            saved,
            marks: Ok(vec![]),
        }
    }

    fn app_with_book(saved: Option<SavedProgress>) -> (App, Instant) {
        let mut app = App::new(
            "h:1",
            list(vec![book(7, "Lines", Format::Txt, 7)], 1, 1),
            None,
            (80, 24),
        );
        app.on_key(key(KeyCode::Enter), Instant::now());
        let effects = app.take_effects();
        assert!(
            matches!(effects[..], [Effect::Open { id: 7, .. }]),
            "{effects:?}"
        );
        let Effect::Open { gen, .. } = effects[0] else {
            unreachable!()
        };
        app.on_opened(gen, Ok(opened(saved)));
        (app, Instant::now())
    }

    fn reader(app: &App) -> &Reader {
        match &app.screen {
            Screen::Book(r) => r,
            other => panic!("no book open: {other:?}"),
        }
    }

    fn saves(effects: &[Effect]) -> Vec<PutProgress> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Save { progress, .. } => Some(progress.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn the_list_fetches_more_pages_as_it_scrolls() {
        let first: Vec<BookJson> = (0..100)
            .map(|i| book(i, &format!("b{i}"), Format::Txt, 1))
            .collect();
        let mut app = App::new("h:1", list(first, 250, 1), None, (80, 24));
        // 22 rows shown and 20 ahead: nothing to fetch yet, nor after three pages down.
        for _ in 0..3 {
            app.on_key(key(KeyCode::PageDown), Instant::now());
        }
        assert!(app.take_effects().is_empty());
        app.on_key(key(KeyCode::PageDown), Instant::now());
        let e = app.take_effects();
        assert_eq!(
            e,
            vec![Effect::List {
                gen: 1,
                query: None,
                page: 2
            }]
        );
        // Only one request in flight.
        app.on_key(key(KeyCode::PageDown), Instant::now());
        assert!(app.take_effects().is_empty());
        let second: Vec<BookJson> = (100..200)
            .map(|i| book(i, &format!("b{i}"), Format::Txt, 1))
            .collect();
        app.on_list(1, Ok(list(second, 250, 2)));
        assert_eq!(app.library.books.len(), 200);
        // A stale answer (an older listing) is dropped.
        app.on_list(0, Ok(list(vec![book(999, "old", Format::Txt, 1)], 1, 1)));
        assert_eq!(app.library.books.len(), 200);
        app.on_key(key(KeyCode::End), Instant::now());
        assert_eq!(
            app.take_effects(),
            vec![Effect::List {
                gen: 1,
                query: None,
                page: 3
            }]
        );
    }

    #[test]
    fn search_filters_titles_and_searches_the_text() {
        let mut app = App::new(
            "h:1",
            list(vec![book(1, "a", Format::Txt, 1)], 1, 1),
            None,
            (80, 24),
        );
        app.on_key(ch('/'), Instant::now());
        for c in "lamp".chars() {
            app.on_key(ch(c), Instant::now());
        }
        assert_eq!(app.library.input.as_deref(), Some("lamp"));
        app.on_key(key(KeyCode::Enter), Instant::now());
        let e = app.take_effects();
        assert_eq!(
            e,
            vec![
                Effect::List {
                    gen: 2,
                    query: Some("lamp".into()),
                    page: 1
                },
                Effect::Search {
                    gen: 2,
                    query: "lamp".into()
                },
            ]
        );
        app.on_list(
            2,
            Ok(list(vec![book(3, "The lamp", Format::Epub, 3)], 1, 1)),
        );
        app.on_search(
            2,
            Ok(SearchResults {
                query: "lamp".into(),
                total: 1,
                offset: 0,
                indexing: false,
                // As the server sends it (fields it may add have defaults).
                hits: vec![serde_json::from_value::<SearchHit>(serde_json::json!({
                    "book": 4, "title": "Keeper", "format": "epub", "unit": "chapter",
                    "location": 2, "snippet": "the <mark>lamp</mark> &amp; more"
                }))
                .unwrap()],
            }),
        );
        assert_eq!(
            app.library.entries(),
            vec![Entry::Book(0), Entry::Header, Entry::Hit(0)]
        );
        // Down skips the heading; Enter opens the hit's book.
        app.on_key(key(KeyCode::Down), Instant::now());
        assert_eq!(app.library.selected, 2);
        app.on_key(key(KeyCode::Enter), Instant::now());
        assert_eq!(
            app.take_effects(),
            vec![Effect::Open {
                gen: 3,
                id: 4,
                book: None
            }]
        );
        // Esc while loading goes back; Esc in the list clears the filter.
        app.on_key(key(KeyCode::Esc), Instant::now());
        assert_eq!(app.take_effects(), vec![Effect::CancelOpen]);
        app.on_key(key(KeyCode::Esc), Instant::now());
        assert_eq!(
            app.take_effects(),
            vec![Effect::List {
                gen: 4,
                query: None,
                page: 1
            }]
        );
    }

    #[test]
    fn pages_turn_and_the_position_is_saved_once_after_a_pause() {
        let (mut app, t0) = app_with_book(None);
        assert_eq!(reader(&app).page, 0);
        assert_eq!(reader(&app).pages.len(), 9, "200 lines in pages of 23 rows");
        app.on_key(key(KeyCode::PageDown), t0);
        app.on_key(key(KeyCode::Right), t0 + Duration::from_millis(500));
        app.on_key(ch(' '), t0 + Duration::from_millis(900));
        assert_eq!(reader(&app).page, 3);
        assert!(saves(&app.take_effects()).is_empty());
        // Not yet due: the last turn restarted the delay.
        app.tick(t0 + Duration::from_millis(1600));
        assert!(saves(&app.take_effects()).is_empty());
        assert_eq!(
            app.deadline(),
            Some(t0 + Duration::from_millis(900) + SAVE_DELAY)
        );
        app.tick(t0 + Duration::from_millis(2400));
        let s = saves(&app.take_effects());
        // Page 4 starts with line 070: server page 3 (lines 61..=90), a third into it.
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].page, 3);
        assert_eq!(s[0].device.as_deref(), Some(DEVICE));
        let pct = s[0].percentage.unwrap();
        assert!((pct - (2.0 + 9.0 / 30.0) / 7.0).abs() < 1e-9, "{pct}");
        assert_eq!(app.deadline(), None);
        // Nothing changed: nothing more to save, even on leaving.
        app.on_key(ch('q'), t0 + Duration::from_secs(5));
        assert!(saves(&app.take_effects()).is_empty());
        assert!(matches!(app.screen, Screen::Library));
    }

    #[test]
    fn reopening_lands_on_the_saved_page() {
        let (mut app, t0) = app_with_book(None);
        app.on_key(ch('g'), t0);
        app.on_key(ch('7'), t0);
        app.on_key(key(KeyCode::Enter), t0);
        assert_eq!(reader(&app).page, 6);
        app.on_key(key(KeyCode::Esc), t0);
        let s = saves(&app.take_effects());
        assert_eq!(s.len(), 1, "leaving saves at once");
        let saved = SavedProgress {
            page: Some(s[0].page),
            progress: s[0].page.to_string(),
            percentage: s[0].percentage.unwrap(),
            device: DEVICE.into(),
            timestamp: 1,
        };
        let (app, _) = app_with_book(Some(saved));
        assert_eq!(reader(&app).page, 6);
        let status = app.book_status(80).unwrap();
        assert!(status.contains(" · page 7/9 · 65% "), "{status}");
        assert!(
            status.contains("resumed where sockit-read left off"),
            "{status}"
        );
        assert_eq!(cells(&status), 80);
        // Narrow: the title goes first, the page stays.
        let status = app.book_status(24).unwrap();
        assert!(status.contains("page 7/9"), "{status}");
        assert!(cells(&status) <= 24, "{status}");
    }

    #[test]
    fn a_position_from_another_device_opens_its_page() {
        // KOReader (or the web UI) at server page 5 of 7: page 5 starts at line 121.
        let saved = SavedProgress {
            page: Some(5),
            progress: "5".into(),
            percentage: 5.0 / 7.0,
            device: "kobo".into(),
            timestamp: 1,
        };
        let (app, _) = app_with_book(Some(saved));
        let r = reader(&app);
        let (s, e) = r.pages.rows(r.page)[0];
        let first = &r.text.text()[s..e];
        let n: usize = first["line ".len()..].parse().unwrap();
        assert!(n <= 121 && 121 < n + 23, "page starting at line {n}");
        // At 100 % in the last unit: the last page.
        let end = SavedProgress {
            page: Some(7),
            progress: "7".into(),
            percentage: 1.0,
            device: "kobo".into(),
            timestamp: 1,
        };
        let (app, _) = app_with_book(Some(end));
        assert_eq!(reader(&app).page, 8);
    }

    #[test]
    fn go_to_refuses_pages_out_of_range() {
        let (mut app, t0) = app_with_book(None);
        app.on_key(ch('g'), t0);
        app.on_key(ch('x'), t0);
        app.on_key(ch('9'), t0);
        app.on_key(ch('9'), t0);
        assert_eq!(app.overlay, Some(Overlay::GoTo("99".into())));
        app.on_key(key(KeyCode::Enter), t0);
        assert_eq!(reader(&app).page, 0);
        assert_eq!(app.message.as_deref(), Some("no page 99: pages are 1 to 9"));
        app.on_key(key(KeyCode::End), t0);
        assert_eq!(reader(&app).page, 8);
        app.on_key(key(KeyCode::PageDown), t0);
        assert_eq!(app.message.as_deref(), Some("the end of the book"));
        app.on_key(key(KeyCode::Home), t0);
        assert_eq!(reader(&app).page, 0);
    }

    #[test]
    fn resize_keeps_the_place() {
        let (mut app, t0) = app_with_book(None);
        app.on_key(ch('g'), t0);
        for c in "5\r".chars() {
            let k = if c == '\r' {
                key(KeyCode::Enter)
            } else {
                ch(c)
            };
            app.on_key(k, t0);
        }
        let first_row = |app: &App| {
            let r = reader(app);
            let (s, e) = r.pages.rows(r.page)[0];
            r.text.text()[s..e].to_owned()
        };
        let before = first_row(&app);
        assert_eq!(before, "line 093");
        app.resize((80, 10));
        let r = reader(&app);
        assert_eq!(r.pages.area().height, 9);
        let text = r.text.text();
        let shown: Vec<&str> = r
            .pages
            .rows(r.page)
            .iter()
            .map(|&(s, e)| &text[s..e])
            .collect();
        assert!(shown.contains(&"line 093"), "{shown:?}");
        app.resize((80, 24));
        assert_eq!(first_row(&app), "line 093");
    }

    #[test]
    fn bookmarks_are_added_listed_and_followed() {
        let (mut app, t0) = app_with_book(None);
        app.on_key(ch('B'), t0);
        assert_eq!(app.message.as_deref(), Some("no bookmarks yet: b adds one"));
        app.on_key(key(KeyCode::PageDown), t0);
        app.on_key(key(KeyCode::PageDown), t0);
        app.on_key(ch('b'), t0);
        let e = app.take_effects();
        let Some(Effect::SaveMarks { document, marks }) = e.last() else {
            panic!("{e:?}")
        };
        assert_eq!(document, "doc7");
        assert_eq!(marks.len(), 1);
        assert!(
            marks[0].label.starts_with("line 047 line 048"),
            "{}",
            marks[0].label
        );
        app.on_key(ch('b'), t0);
        assert_eq!(app.message.as_deref(), Some("page 3 is already bookmarked"));
        app.on_key(key(KeyCode::End), t0);
        app.on_key(ch('b'), t0);
        app.on_key(key(KeyCode::Home), t0);
        app.on_key(ch('B'), t0);
        assert_eq!(app.overlay, Some(Overlay::Marks(0)));
        app.on_key(key(KeyCode::Down), t0);
        app.on_key(key(KeyCode::Enter), t0);
        assert_eq!(reader(&app).page, 8);
        app.on_key(ch('B'), t0);
        assert_eq!(app.overlay, Some(Overlay::Marks(1)));
        app.on_key(ch('d'), t0);
        assert_eq!(reader(&app).marks.len(), 1);
        assert_eq!(app.overlay, Some(Overlay::Marks(0)));
    }

    #[test]
    fn quitting_saves_first() {
        let (mut app, t0) = app_with_book(None);
        app.on_key(key(KeyCode::PageDown), t0);
        app.take_effects();
        let ctrl_c = KeyEvent {
            modifiers: KeyModifiers::CONTROL,
            ..ch('c')
        };
        app.on_key(ctrl_c, t0);
        let e = app.take_effects();
        assert!(
            matches!(e[..], [Effect::Save { id: 7, .. }, Effect::Quit]),
            "{e:?}"
        );
    }

    #[test]
    fn a_failed_load_goes_back_with_its_reason() {
        let mut app = App::new(
            "h:1",
            list(vec![book(1, "a", Format::Pdf, 2)], 1, 1),
            None,
            (80, 24),
        );
        app.on_key(key(KeyCode::Enter), Instant::now());
        let Some(Effect::Open { gen, .. }) = app.take_effects().pop() else {
            panic!()
        };
        app.on_progress(gen, 1, 2);
        assert!(matches!(&app.screen, Screen::Loading(l) if l.done == 1 && l.total == 2));
        app.on_opened(gen, Err("a has no text layer".into()));
        assert!(matches!(app.screen, Screen::Library));
        assert_eq!(app.message.as_deref(), Some("a has no text layer"));
    }

    #[test]
    fn a_row_shows_format_title_author_and_size() {
        let mut b = book(1, "山庙故事", Format::Epub, 3);
        b.author = Some("佚名".into());
        assert_eq!(
            crate::tui::read_list::book_row(&b),
            (" EPUB  山庙故事 — 佚名".to_owned(), "3 ch. ".to_owned())
        );
        b.last_read = Some(1);
        b.error = Some("bad".into());
        assert_eq!(crate::tui::read_list::book_row(&b).1, "• unreadable ");
    }
}
