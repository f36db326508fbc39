//! Browsing a large catalog: sorted, filtered, paginated queries (every one a single
//! indexed SQL statement with `LIMIT`/`OFFSET`, never all rows), the "continue reading"
//! row, per-user shelves and metadata edited in the web UI (kept in the catalog, never
//! written into the book file, and re-applied over what a rescan reads from the file).

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::accounts::Progress;
use crate::catalog::{row_to_book, Book, Format, COLS};
use crate::error::{ReaderError, Result};

/// The largest page of a listing.
pub const MAX_PER_PAGE: u64 = 500;
/// The page size when none is asked for.
pub const DEFAULT_PER_PAGE: u64 = 50;
/// At most this many books in the "continue reading" row.
pub const CONTINUE_LIMIT: u64 = 24;
/// The longest title, author list, series name or shelf name accepted.
pub const MAX_TEXT: usize = 500;
/// The most tags a book may have, and the longest tag.
pub const MAX_TAGS: usize = 64;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 100;

/// What a listing is sorted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    /// Title, case-insensitive (the default).
    #[default]
    Title,
    /// Authors as stored (`, `-separated), books without one last.
    Author,
    /// When the book entered the catalog.
    Added,
    /// When the caller last saved a position in it; unread books last.
    Read,
    /// Series, then position in it; books without a series last.
    Series,
}

impl Sort {
    /// Every value, as the API spells it.
    pub const NAMES: &'static str = "title, author, added, read or series";

    /// The default direction: A→Z for names, newest first for times.
    pub fn default_order(self) -> Order {
        match self {
            Self::Title | Self::Author | Self::Series => Order::Asc,
            Self::Added | Self::Read => Order::Desc,
        }
    }
}

impl std::str::FromStr for Sort {
    type Err = ReaderError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "title" => Ok(Self::Title),
            "author" => Ok(Self::Author),
            "added" => Ok(Self::Added),
            "read" => Ok(Self::Read),
            "series" => Ok(Self::Series),
            _ => Err(ReaderError::BadRequest(format!(
                "sort `{}`: use {}",
                clip(s),
                Self::NAMES
            ))),
        }
    }
}

/// Ascending or descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Ascending.
    Asc,
    /// Descending.
    Desc,
}

impl std::str::FromStr for Order {
    type Err = ReaderError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "asc" => Ok(Self::Asc),
            "desc" => Ok(Self::Desc),
            _ => Err(ReaderError::BadRequest(format!(
                "order `{}`: use asc or desc",
                clip(s)
            ))),
        }
    }
}

impl Order {
    fn sql(self) -> &'static str {
        match self {
            Self::Asc => "ASC",
            Self::Desc => "DESC",
        }
    }
}

/// The first 40 characters of a value, for error messages.
pub fn clip(s: &str) -> String {
    s.chars().take(40).collect()
}

/// A listing request, validated.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListQuery {
    /// Sort key.
    pub sort: Sort,
    /// Direction (default: [`Sort::default_order`]).
    pub order: Option<Order>,
    /// Only this format.
    pub format: Option<Format>,
    /// Only books with this author (one of its `, `-separated names, case-insensitive).
    pub author: Option<String>,
    /// Only this series (case-insensitive).
    pub series: Option<String>,
    /// Only books with this tag (case-insensitive).
    pub tag: Option<String>,
    /// Only books on this shelf (of the caller).
    pub shelf: Option<i64>,
    /// Substring of title, author, series or path (case-insensitive).
    pub q: Option<String>,
    /// 1-based page.
    pub page: u64,
    /// Books per page, 1..=[`MAX_PER_PAGE`].
    pub per_page: u64,
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    /// How many books match in all.
    pub total: u64,
    /// The books of this page, each with the caller's last read time (seconds), if any.
    pub books: Vec<(Book, Option<i64>)>,
}

/// The `q` filter on `books b`: the parameter is a substring of the title, authors, series
/// or path (case-insensitive).
macro_rules! q_match {
    ($param:literal) => {
        concat!(
            "instr(lower(b.title || ' ' || coalesce(b.author, '') || ' ' || \
             coalesce(b.series, '') || ' ' || b.path), lower(",
            $param,
            ")) > 0"
        )
    };
}

const FILTERS: &str = concat!(
    "(?1 IS NULL OR b.format = ?1) \
    AND (?2 IS NULL OR b.author = ?2 COLLATE NOCASE \
         OR instr(', ' || lower(b.author) || ', ', ', ' || lower(?2) || ', ') > 0) \
    AND (?3 IS NULL OR b.series = ?3 COLLATE NOCASE) \
    AND (?4 IS NULL OR EXISTS (SELECT 1 FROM book_tags g WHERE g.book_id = b.id AND g.tag = ?4 COLLATE NOCASE)) \
    AND (?5 IS NULL OR EXISTS (SELECT 1 FROM shelf_books s WHERE s.shelf_id = ?5 AND s.book_id = b.id)) \
    AND (?6 IS NULL OR ",
    q_match!("?6"),
    ")"
);

/// Of the books `ids`, those in the catalog, each with whether the listing filter `q`
/// matches it (title, authors, series or path), in the order given.
///
/// # Errors
/// SQLite errors.
pub fn metadata_matches(conn: &Connection, q: &str, ids: &[i64]) -> Result<Vec<(i64, bool)>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        q_match!("?2"),
        " FROM books b WHERE b.id = ?1"
    ))?;
    let mut out = Vec::with_capacity(ids.len());
    for &id in ids {
        if let Some(m) = stmt
            .query_row(params![id, q.trim()], |r| r.get::<_, bool>(0))
            .optional()?
        {
            out.push((id, m));
        }
    }
    Ok(out)
}

fn none_if_blank(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// One page of the books matching `q`, sorted, for `user` (whose reading times sort by
/// `read`). The shelf, if any, must be `user`'s (checked by the caller with [`shelf`]).
///
/// # Errors
/// SQLite errors.
pub fn list(conn: &Connection, user: &str, q: &ListQuery) -> Result<ListPage> {
    let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
    let offset = q.page.max(1).saturating_sub(1).saturating_mul(per_page);
    let offset = i64::try_from(offset).unwrap_or(i64::MAX);
    let dir = q.order.unwrap_or(q.sort.default_order()).sql();
    let order = match q.sort {
        Sort::Title => format!("b.title COLLATE NOCASE {dir}, b.id {dir}"),
        Sort::Author => {
            format!("b.author IS NULL, b.author COLLATE NOCASE {dir}, b.title COLLATE NOCASE, b.id")
        }
        Sort::Added => format!("b.added {dir}, b.id {dir}"),
        Sort::Read => {
            format!("p.timestamp IS NULL, p.timestamp {dir}, b.title COLLATE NOCASE, b.id")
        }
        Sort::Series => format!(
            "b.series IS NULL, b.series COLLATE NOCASE {dir}, b.series_index {dir}, \
             b.title COLLATE NOCASE, b.id"
        ),
    };
    let format = q.format.map(Format::as_str);
    let args = params![
        format,
        none_if_blank(&q.author),
        none_if_blank(&q.series),
        none_if_blank(&q.tag),
        q.shelf,
        none_if_blank(&q.q),
    ];
    let total: i64 = conn
        .prepare_cached(&format!("SELECT count(*) FROM books b WHERE {FILTERS}"))?
        .query_row(args, |r| r.get(0))?;
    let sql = format!(
        "SELECT {COLS}, p.timestamp FROM books b LEFT JOIN progress p \
         ON p.username = ?7 AND p.document = b.partial_md5 \
         WHERE {FILTERS} ORDER BY {order} LIMIT ?8 OFFSET ?9"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(
        params![
            format,
            none_if_blank(&q.author),
            none_if_blank(&q.series),
            none_if_blank(&q.tag),
            q.shelf,
            none_if_blank(&q.q),
            user,
            i64::try_from(per_page).unwrap_or(i64::MAX),
            offset,
        ],
        |r| Ok((row_to_book(r)?, r.get::<_, Option<i64>>(20)?)),
    )?;
    Ok(ListPage {
        total: total.max(0) as u64,
        books: rows.collect::<rusqlite::Result<Vec<_>>>()?,
    })
}

/// `user`'s books in progress (a saved position below 100 %), most recent first.
///
/// # Errors
/// SQLite errors.
pub fn continue_reading(conn: &Connection, user: &str) -> Result<Vec<(Book, Progress)>> {
    let sql = format!(
        "SELECT {COLS}, p.document, p.progress, p.percentage, p.device, p.device_id, p.timestamp \
         FROM progress p JOIN books b ON b.partial_md5 = p.document \
         WHERE p.username = ?1 AND p.percentage < 1.0 \
         ORDER BY p.timestamp DESC, b.id LIMIT ?2"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![user, CONTINUE_LIMIT as i64], |r| {
        Ok((
            row_to_book(r)?,
            Progress {
                document: r.get(20)?,
                progress: r.get(21)?,
                percentage: r.get(22)?,
                device: r.get(23)?,
                device_id: r.get(24)?,
                timestamp: r.get(25)?,
            },
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// A metadata edit: each `Some` field replaces what the file says (for good: rescans
/// keep it), each `None` leaves the field as it is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Edit {
    /// New title (non-empty).
    pub title: Option<String>,
    /// New authors (empty: none).
    pub authors: Option<Vec<String>>,
    /// New series (`Some(None)`: none) and position in it.
    pub series: Option<(Option<String>, Option<f64>)>,
    /// New tags (replacing all).
    pub tags: Option<Vec<String>>,
}

fn check_text(what: &str, s: &str) -> Result<String> {
    let s = s.trim();
    if s.chars().count() > MAX_TEXT {
        return Err(ReaderError::BadRequest(format!(
            "{what} is longer than {MAX_TEXT} characters"
        )));
    }
    if s.chars().any(char::is_control) {
        return Err(ReaderError::BadRequest(format!(
            "{what} `{}` holds a control character",
            clip(s).escape_debug()
        )));
    }
    Ok(s.to_owned())
}

impl Edit {
    /// Checks and normalizes the edit (trimmed, no control characters, bounded sizes;
    /// names must not hold `,`, which separates authors).
    ///
    /// # Errors
    /// [`ReaderError::BadRequest`] naming the field.
    pub fn validated(self) -> Result<Self> {
        let title = match self.title {
            Some(t) => {
                let t = check_text("title", &t)?;
                if t.is_empty() {
                    return Err(ReaderError::BadRequest("title must not be empty".into()));
                }
                Some(t)
            }
            None => None,
        };
        let authors = match self.authors {
            Some(list) => {
                let mut out = Vec::new();
                for a in &list {
                    let a = check_text("author", a)?;
                    if a.contains(',') {
                        return Err(ReaderError::BadRequest(format!(
                            "author `{}`: one name per entry, without `,`",
                            clip(&a)
                        )));
                    }
                    if !a.is_empty() && !out.contains(&a) {
                        out.push(a);
                    }
                }
                if out.join(", ").chars().count() > MAX_TEXT {
                    return Err(ReaderError::BadRequest(format!(
                        "authors are longer than {MAX_TEXT} characters"
                    )));
                }
                Some(out)
            }
            None => None,
        };
        let series = match self.series {
            Some((name, index)) => {
                let name = match name {
                    Some(n) => Some(check_text("series", &n)?).filter(|n| !n.is_empty()),
                    None => None,
                };
                if let Some(i) = index {
                    if !i.is_finite() || !(0.0..=1e9).contains(&i) {
                        return Err(ReaderError::BadRequest(format!(
                            "series_index {i}: use a number from 0 to 1000000000"
                        )));
                    }
                }
                Some((name.clone(), index.filter(|_| name.is_some())))
            }
            None => None,
        };
        let tags = match self.tags {
            Some(list) => {
                let mut out: Vec<String> = Vec::new();
                for t in &list {
                    let t = check_text("tag", t)?;
                    if t.chars().count() > MAX_TAG_CHARS {
                        return Err(ReaderError::BadRequest(format!(
                            "tag `{}…` is longer than {MAX_TAG_CHARS} characters",
                            clip(&t)
                        )));
                    }
                    if !t.is_empty() && !out.iter().any(|o| o.to_lowercase() == t.to_lowercase()) {
                        out.push(t);
                    }
                }
                if out.len() > MAX_TAGS {
                    return Err(ReaderError::BadRequest(format!(
                        "{} tags: at most {MAX_TAGS}",
                        out.len()
                    )));
                }
                Some(out)
            }
            None => None,
        };
        Ok(Self {
            title,
            authors,
            series,
            tags,
        })
    }
}

/// Applies a validated [`Edit`] to book `id` (stored in `meta_edits` and `book_tags`,
/// and at once in the book's row). `false` when there is no such book.
///
/// # Errors
/// SQLite errors.
pub fn edit(conn: &Connection, id: i64, e: &Edit) -> Result<bool> {
    let tx = conn.unchecked_transaction()?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM books WHERE id = ?1")?
        .query_row(params![id], |_| Ok(()))
        .optional()?
        .is_some();
    if !exists {
        return Ok(false);
    }
    let author = e.authors.as_ref().map(|a| a.join(", "));
    let (series_set, series, index) = match &e.series {
        Some((s, i)) => (true, s.clone(), *i),
        None => (false, None, None),
    };
    tx.prepare_cached(
        "INSERT INTO meta_edits(book_id, title, author, series_set, series, series_index) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(book_id) DO UPDATE SET \
         title = coalesce(excluded.title, meta_edits.title), \
         author = coalesce(excluded.author, meta_edits.author), \
         series_set = max(excluded.series_set, meta_edits.series_set), \
         series = CASE WHEN excluded.series_set THEN excluded.series ELSE meta_edits.series END, \
         series_index = CASE WHEN excluded.series_set THEN excluded.series_index \
                        ELSE meta_edits.series_index END",
    )?
    .execute(params![id, e.title, author, series_set, series, index])?;
    tx.prepare_cached(
        "UPDATE books SET title = coalesce(m.title, books.title), \
         author = CASE WHEN m.author IS NULL THEN books.author ELSE nullif(m.author, '') END, \
         series = CASE WHEN m.series_set THEN m.series ELSE books.series END, \
         series_index = CASE WHEN m.series_set THEN m.series_index ELSE books.series_index END \
         FROM meta_edits m WHERE m.book_id = books.id AND books.id = ?1",
    )?
    .execute(params![id])?;
    if let Some(tags) = &e.tags {
        tx.prepare_cached("DELETE FROM book_tags WHERE book_id = ?1")?
            .execute(params![id])?;
        for t in tags {
            tx.prepare_cached("INSERT OR IGNORE INTO book_tags(book_id, tag) VALUES (?1, ?2)")?
                .execute(params![id, t])?;
        }
    }
    tx.commit()?;
    Ok(true)
}

/// A shelf: a named, per-user list of books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shelf {
    /// Its id.
    pub id: i64,
    /// Its name (unique per user).
    pub name: String,
    /// How many books it holds.
    pub books: u64,
}

fn row_to_shelf(r: &rusqlite::Row<'_>) -> rusqlite::Result<Shelf> {
    Ok(Shelf {
        id: r.get(0)?,
        name: r.get(1)?,
        books: r.get::<_, i64>(2)?.max(0) as u64,
    })
}

const SHELF_COLS: &str =
    "h.id, h.name, (SELECT count(*) FROM shelf_books s WHERE s.shelf_id = h.id)";

/// `user`'s shelves, by name.
///
/// # Errors
/// SQLite errors.
pub fn shelves(conn: &Connection, user: &str) -> Result<Vec<Shelf>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {SHELF_COLS} FROM shelves h WHERE h.username = ?1 ORDER BY h.name COLLATE NOCASE, h.id"
    ))?;
    let rows = stmt.query_map(params![user], row_to_shelf)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// `user`'s shelf `id`, if it is theirs.
///
/// # Errors
/// SQLite errors.
pub fn shelf(conn: &Connection, user: &str, id: i64) -> Result<Option<Shelf>> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {SHELF_COLS} FROM shelves h WHERE h.username = ?1 AND h.id = ?2"
        ))?
        .query_row(params![user, id], row_to_shelf)
        .optional()?)
}

/// The most shelves one user may have.
pub const MAX_SHELVES: usize = 1000;

/// Creates a shelf for `user`.
///
/// # Errors
/// [`ReaderError::BadRequest`] for an empty or bad name or too many shelves,
/// [`ReaderError::Conflict`] when the user has a shelf of that name, SQLite errors.
pub fn create_shelf(conn: &Connection, user: &str, name: &str) -> Result<Shelf> {
    let name = check_text("shelf name", name)?;
    if name.is_empty() {
        return Err(ReaderError::BadRequest(
            "shelf name must not be empty".into(),
        ));
    }
    if shelves(conn, user)?.len() >= MAX_SHELVES {
        return Err(ReaderError::BadRequest(format!(
            "at most {MAX_SHELVES} shelves per user"
        )));
    }
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO shelves(username, name, created) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![user, name, chrono::Utc::now().timestamp()])?;
    if n == 0 {
        return Err(ReaderError::Conflict(format!(
            "you already have a shelf named `{}`",
            clip(&name)
        )));
    }
    Ok(Shelf {
        id: conn.last_insert_rowid(),
        name,
        books: 0,
    })
}

/// Deletes `user`'s shelf `id` (not the books); `false` if it is not theirs.
///
/// # Errors
/// SQLite errors.
pub fn delete_shelf(conn: &Connection, user: &str, id: i64) -> Result<bool> {
    let tx = conn.unchecked_transaction()?;
    let n = tx
        .prepare_cached("DELETE FROM shelves WHERE username = ?1 AND id = ?2")?
        .execute(params![user, id])?;
    if n > 0 {
        tx.prepare_cached("DELETE FROM shelf_books WHERE shelf_id = ?1")?
            .execute(params![id])?;
    }
    tx.commit()?;
    Ok(n > 0)
}

/// Puts book `book` on (`on`) or takes it off `user`'s shelf `id`; the shelf after the
/// change, `None` if the shelf is not theirs.
///
/// # Errors
/// [`ReaderError::NotFound`] for an unknown book, SQLite errors.
pub fn shelve(
    conn: &Connection,
    user: &str,
    id: i64,
    book: i64,
    on: bool,
) -> Result<Option<Shelf>> {
    if shelf(conn, user, id)?.is_none() {
        return Ok(None);
    }
    if on {
        if crate::catalog::by_id(conn, book)?.is_none() {
            return Err(ReaderError::NotFound(format!("book {book}")));
        }
        conn.prepare_cached(
            "INSERT OR IGNORE INTO shelf_books(shelf_id, book_id, added) VALUES (?1, ?2, ?3)",
        )?
        .execute(params![id, book, chrono::Utc::now().timestamp()])?;
    } else {
        conn.prepare_cached("DELETE FROM shelf_books WHERE shelf_id = ?1 AND book_id = ?2")?
            .execute(params![id, book])?;
    }
    shelf(conn, user, id)
}

/// The ids of `user`'s shelves that hold `book`.
///
/// # Errors
/// SQLite errors.
pub fn shelves_of(conn: &Connection, user: &str, book: i64) -> Result<Vec<i64>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.id FROM shelves h JOIN shelf_books s ON s.shelf_id = h.id \
         WHERE h.username = ?1 AND s.book_id = ?2 ORDER BY h.id",
    )?;
    let rows = stmt.query_map(params![user, book], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}
