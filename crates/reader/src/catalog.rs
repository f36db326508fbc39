//! The SQLite catalog: one row per book (path, title, author, format, size, pages, the
//! three hashes, mtime, cover, when it was added), plus reading positions, metadata edits,
//! tags and shelves (see [`crate::browse`]). Opened in WAL mode so the scanner's write
//! transactions never block readers.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::error::Result;

/// A book's format; `pdf`, `epub` or `txt` in JSON and in the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// A PDF.
    Pdf,
    /// A plain-text file.
    Txt,
    /// An EPUB (2 or 3).
    Epub,
}

impl std::fmt::Display for Format {
    /// The lowercase name (`pdf`, `txt`, `epub`); honours width and alignment.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

impl Format {
    /// From a file name's extension (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "pdf" => Some(Self::Pdf),
            "txt" => Some(Self::Txt),
            "epub" => Some(Self::Epub),
            _ => None,
        }
    }

    /// The lowercase name stored in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Txt => "txt",
            Self::Epub => "epub",
        }
    }

    /// The media type.
    pub fn mime(self) -> &'static str {
        match self {
            Self::Pdf => "application/pdf",
            Self::Txt => "text/plain; charset=utf-8",
            Self::Epub => crate::epub::MIME,
        }
    }
}

/// One catalog row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Book {
    /// Stable id (kept while the path stays the same).
    pub id: i64,
    /// Path relative to the books root, `/`-separated.
    pub path: String,
    /// Title (PDF metadata or EPUB OPF, else the file name without extension).
    pub title: String,
    /// Author(s) from the PDF metadata or the EPUB OPF (`, `-separated).
    pub author: Option<String>,
    /// Format.
    pub format: Format,
    /// Size in bytes.
    pub size: u64,
    /// Page count (TXT: at the server's default page size; EPUB: chapters, the spine's
    /// length); `None` when unreadable.
    pub pages: Option<u64>,
    /// Why the book cannot be read, if it cannot.
    pub error: Option<String>,
    /// TXT encoding detected.
    pub encoding: Option<String>,
    /// MD5 of the file (the course client's cache key).
    pub md5: String,
    /// KOReader partial MD5 (the kosync document id).
    pub partial_md5: String,
    /// BLAKE3 of the file (ETag, cache key).
    pub blake3: String,
    /// Modification time, microseconds since the epoch (change detection).
    pub mtime: i64,
    /// The cover image next to the book (`NAME.jpg`), relative to the books root.
    pub cover_file: Option<String>,
    /// Language (EPUB `dc:language`).
    pub language: Option<String>,
    /// Series (EPUB `calibre:series` or `belongs-to-collection`).
    pub series: Option<String>,
    /// Position in the series.
    pub series_index: Option<f64>,
    /// Description (EPUB `dc:description`, as plain text).
    pub description: Option<String>,
    /// When the book entered the catalog, microseconds since the epoch.
    pub added: i64,
    /// Tags (catalog only, set in the web UI), sorted.
    pub tags: Vec<String>,
}

impl Book {
    /// The media type its file is served with: a TXT book with its detected charset
    /// (`text/plain; charset=gbk`), a PDF or an EPUB with theirs.
    pub fn media_type(&self) -> String {
        match (self.format, self.encoding.as_deref()) {
            (Format::Txt, Some(enc)) => {
                format!("text/plain; charset={}", enc.to_ascii_lowercase())
            }
            (Format::Txt, None) => "text/plain".to_owned(),
            (f, _) => f.mime().to_owned(),
        }
    }
}

/// Opens (creating) the catalog database at `path`.
///
/// # Errors
/// SQLite errors.
pub fn open(path: &Path) -> Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS books(
            id INTEGER PRIMARY KEY,
            path TEXT NOT NULL UNIQUE,
            title TEXT NOT NULL,
            author TEXT,
            format TEXT NOT NULL,
            size INTEGER NOT NULL,
            pages INTEGER,
            error TEXT,
            encoding TEXT,
            md5 TEXT NOT NULL,
            partial_md5 TEXT NOT NULL,
            blake3 TEXT NOT NULL,
            mtime INTEGER NOT NULL,
            cover_file TEXT
        );
        CREATE INDEX IF NOT EXISTS books_partial ON books(partial_md5);
        CREATE TABLE IF NOT EXISTS users(
            username TEXT PRIMARY KEY,
            key TEXT NOT NULL,
            created INTEGER NOT NULL
        );
        CREATE TABLE IF NOT EXISTS progress(
            username TEXT NOT NULL,
            document TEXT NOT NULL,
            progress TEXT NOT NULL,
            percentage REAL NOT NULL,
            device TEXT NOT NULL,
            device_id TEXT,
            timestamp INTEGER NOT NULL,
            PRIMARY KEY(username, document)
        );",
    )?;
    // Columns added after the first catalogs were written.
    let have: Vec<String> = conn
        .prepare("SELECT name FROM pragma_table_info('books')")?
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for (col, ty) in [
        ("language", "TEXT"),
        ("series", "TEXT"),
        ("series_index", "REAL"),
        ("description", "TEXT"),
    ] {
        if !have.iter().any(|h| h == col) {
            conn.execute_batch(&format!("ALTER TABLE books ADD COLUMN {col} {ty}"))?;
        }
    }
    if !have.iter().any(|h| h == "added") {
        // Older catalogs did not record when a book arrived: its mtime is the best guess.
        conn.execute_batch(
            "ALTER TABLE books ADD COLUMN added INTEGER; UPDATE books SET added = mtime;",
        )?;
    }
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS books_title ON books(title COLLATE NOCASE, id);
        CREATE INDEX IF NOT EXISTS books_author ON books(author COLLATE NOCASE, id);
        CREATE INDEX IF NOT EXISTS books_by_author ON books(author IS NULL, author COLLATE NOCASE, title COLLATE NOCASE, id);
        CREATE INDEX IF NOT EXISTS books_by_series ON books(series IS NULL, series COLLATE NOCASE, series_index, title COLLATE NOCASE, id);
        CREATE INDEX IF NOT EXISTS books_added ON books(added, id);
        CREATE INDEX IF NOT EXISTS books_series ON books(series COLLATE NOCASE, series_index, id);
        CREATE INDEX IF NOT EXISTS books_format ON books(format, id);
        CREATE INDEX IF NOT EXISTS books_blake3 ON books(blake3);
        CREATE INDEX IF NOT EXISTS progress_recent ON progress(username, timestamp);
        CREATE TABLE IF NOT EXISTS meta_edits(
            book_id INTEGER PRIMARY KEY,
            title TEXT,
            author TEXT,
            series_set INTEGER NOT NULL DEFAULT 0,
            series TEXT,
            series_index REAL
        );
        CREATE TABLE IF NOT EXISTS book_tags(
            book_id INTEGER NOT NULL,
            tag TEXT NOT NULL,
            PRIMARY KEY(book_id, tag)
        );
        CREATE INDEX IF NOT EXISTS book_tags_tag ON book_tags(tag COLLATE NOCASE, book_id);
        CREATE TABLE IF NOT EXISTS shelves(
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL,
            name TEXT NOT NULL,
            created INTEGER NOT NULL,
            UNIQUE(username, name)
        );
        CREATE TABLE IF NOT EXISTS shelf_books(
            shelf_id INTEGER NOT NULL,
            book_id INTEGER NOT NULL,
            added INTEGER NOT NULL,
            PRIMARY KEY(shelf_id, book_id)
        );
        CREATE INDEX IF NOT EXISTS shelf_books_book ON shelf_books(book_id);",
    )?;
    Ok(conn)
}

/// The columns [`row_to_book`] reads, of `books b`.
pub(crate) const COLS: &str = "b.id, b.path, b.title, b.author, b.format, b.size, b.pages, \
    b.error, b.encoding, b.md5, b.partial_md5, b.blake3, b.mtime, b.cover_file, b.language, \
    b.series, b.series_index, b.description, coalesce(b.added, b.mtime), \
    (SELECT group_concat(tag, char(31)) FROM book_tags t WHERE t.book_id = b.id)";

/// A [`Book`] from a row selected with [`COLS`].
pub(crate) fn row_to_book(r: &Row<'_>) -> rusqlite::Result<Book> {
    let format: String = r.get(4)?;
    Ok(Book {
        id: r.get(0)?,
        path: r.get(1)?,
        title: r.get(2)?,
        author: r.get(3)?,
        format: match format.as_str() {
            "pdf" => Format::Pdf,
            "epub" => Format::Epub,
            _ => Format::Txt,
        },
        size: r.get::<_, i64>(5)?.max(0) as u64,
        pages: r.get::<_, Option<i64>>(6)?.map(|p| p.max(0) as u64),
        error: r.get(7)?,
        encoding: r.get(8)?,
        md5: r.get(9)?,
        partial_md5: r.get(10)?,
        blake3: r.get(11)?,
        mtime: r.get(12)?,
        cover_file: r.get(13)?,
        language: r.get(14)?,
        series: r.get(15)?,
        series_index: r.get(16)?,
        description: r.get(17)?,
        added: r.get(18)?,
        tags: {
            let joined: Option<String> = r.get(19)?;
            let mut tags: Vec<String> = joined
                .as_deref()
                .unwrap_or("")
                .split('\u{1f}')
                .filter(|t| !t.is_empty())
                .map(str::to_owned)
                .collect();
            tags.sort_by_key(|t| t.to_lowercase());
            tags
        },
    })
}

/// Every book, sorted by title then path; `query` filters on title, author, series and path
/// (case-insensitive substring).
///
/// # Errors
/// SQLite errors.
pub fn list(conn: &Connection, query: Option<&str>) -> Result<Vec<Book>> {
    let q = query.map(str::trim).filter(|q| !q.is_empty());
    let sql = format!(
        "SELECT {COLS} FROM books b WHERE ?1 IS NULL OR instr(lower(b.title || ' ' || \
         coalesce(b.author, '') || ' ' || coalesce(b.series, '') || ' ' || b.path), lower(?1)) > 0 \
         ORDER BY b.title COLLATE NOCASE, b.path"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![q], row_to_book)?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

/// One book by id.
///
/// # Errors
/// SQLite errors.
pub fn by_id(conn: &Connection, id: i64) -> Result<Option<Book>> {
    let sql = format!("SELECT {COLS} FROM books b WHERE b.id = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![id], row_to_book)
        .optional()?)
}

/// One book by its path relative to the books root.
///
/// # Errors
/// SQLite errors.
pub fn by_path(conn: &Connection, path: &str) -> Result<Option<Book>> {
    let sql = format!("SELECT {COLS} FROM books b WHERE b.path = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![path], row_to_book)
        .optional()?)
}

/// One book by its content's BLAKE3 (the first by id if several files hold the same
/// bytes).
///
/// # Errors
/// SQLite errors.
pub fn by_blake3(conn: &Connection, blake3: &str) -> Result<Option<Book>> {
    let sql = format!("SELECT {COLS} FROM books b WHERE b.blake3 = ?1 ORDER BY b.id LIMIT 1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![blake3], row_to_book)
        .optional()?)
}

/// One book by its KOReader partial MD5.
///
/// # Errors
/// SQLite errors.
pub fn by_partial_md5(conn: &Connection, doc: &str) -> Result<Option<Book>> {
    let sql = format!("SELECT {COLS} FROM books b WHERE b.partial_md5 = ?1 LIMIT 1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row(params![doc], row_to_book)
        .optional()?)
}

/// Inserts or updates a book by path (its id is kept).
///
/// # Errors
/// SQLite errors.
pub fn upsert(conn: &Connection, b: &Book) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO books(path, title, author, format, size, pages, error, encoding, md5, \
         partial_md5, blake3, mtime, cover_file, language, series, series_index, description, \
         added) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18) \
         ON CONFLICT(path) DO UPDATE SET title=excluded.title, author=excluded.author, \
         format=excluded.format, size=excluded.size, pages=excluded.pages, error=excluded.error, \
         encoding=excluded.encoding, md5=excluded.md5, partial_md5=excluded.partial_md5, \
         blake3=excluded.blake3, mtime=excluded.mtime, cover_file=excluded.cover_file, \
         language=excluded.language, series=excluded.series, series_index=excluded.series_index, \
         description=excluded.description",
    )?
    .execute(params![
        b.path,
        b.title,
        b.author,
        b.format.as_str(),
        i64::try_from(b.size).unwrap_or(i64::MAX),
        b.pages.map(|p| i64::try_from(p).unwrap_or(i64::MAX)),
        b.error,
        b.encoding,
        b.md5,
        b.partial_md5,
        b.blake3,
        b.mtime,
        b.cover_file,
        b.language,
        b.series,
        b.series_index,
        b.description,
        b.added,
    ])?;
    // Metadata edited in the web UI wins over what the file says.
    conn.prepare_cached(
        "UPDATE books SET title = coalesce(e.title, books.title), \
         author = CASE WHEN e.author IS NULL THEN books.author ELSE nullif(e.author, '') END, \
         series = CASE WHEN e.series_set THEN e.series ELSE books.series END, \
         series_index = CASE WHEN e.series_set THEN e.series_index ELSE books.series_index END \
         FROM meta_edits e WHERE e.book_id = books.id AND books.path = ?1",
    )?
    .execute(params![b.path])?;
    Ok(())
}

/// Sets only the cover file of a book (the cover changed, the book did not).
///
/// # Errors
/// SQLite errors.
pub fn set_cover(conn: &Connection, path: &str, cover: Option<&str>) -> Result<()> {
    conn.prepare_cached("UPDATE books SET cover_file = ?2 WHERE path = ?1")?
        .execute(params![path, cover])?;
    Ok(())
}

/// Removes a book by path.
///
/// # Errors
/// SQLite errors.
pub fn remove(conn: &Connection, path: &str) -> Result<()> {
    for table in ["meta_edits", "book_tags", "shelf_books"] {
        conn.prepare_cached(&format!(
            "DELETE FROM {table} WHERE book_id IN (SELECT id FROM books WHERE path = ?1)"
        ))?
        .execute(params![path])?;
    }
    conn.prepare_cached("DELETE FROM books WHERE path = ?1")?
        .execute(params![path])?;
    Ok(())
}

/// What the scanner compares: `(path, size, mtime, cover_file)`.
pub type Fingerprint = (String, u64, i64, Option<String>);

/// The [`Fingerprint`] of every book, for the scanner's comparison.
///
/// # Errors
/// SQLite errors.
pub fn fingerprints(conn: &Connection) -> Result<Vec<Fingerprint>> {
    let mut stmt = conn.prepare_cached("SELECT path, size, mtime, cover_file FROM books")?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, i64>(1)?.max(0) as u64,
            r.get::<_, i64>(2)?,
            r.get::<_, Option<String>>(3)?,
        ))
    })?;
    Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn book(path: &str, title: &str) -> Book {
        Book {
            id: 0,
            path: path.into(),
            title: title.into(),
            author: Some("Lewis Carroll".into()),
            format: Format::Txt,
            size: 3,
            pages: Some(1),
            error: None,
            encoding: Some("UTF-8".into()),
            md5: "m".into(),
            partial_md5: "p".into(),
            blake3: "b".into(),
            mtime: 1,
            cover_file: None,
            language: None,
            series: None,
            series_index: None,
            description: None,
            added: 1,
            tags: Vec::new(),
        }
    }

    #[test]
    fn upsert_keeps_id_and_search_filters() {
        let dir = tempfile::tempdir().unwrap();
        let c = open(&dir.path().join("c.db")).unwrap();
        upsert(&c, &book("alice.txt", "Alice")).unwrap();
        upsert(&c, &book("b.txt", "Bob")).unwrap();
        let id = by_path(&c, "alice.txt").unwrap().unwrap().id;
        let mut changed = book("alice.txt", "Alice in Wonderland");
        changed.size = 9;
        upsert(&c, &changed).unwrap();
        let again = by_id(&c, id).unwrap().unwrap();
        assert_eq!(
            (again.title.as_str(), again.size),
            ("Alice in Wonderland", 9)
        );
        assert_eq!(list(&c, Some("wonder")).unwrap().len(), 1);
        assert_eq!(list(&c, Some("carroll")).unwrap().len(), 2);
        assert_eq!(list(&c, None).unwrap().len(), 2);
        remove(&c, "b.txt").unwrap();
        assert_eq!(list(&c, None).unwrap().len(), 1);
    }

    #[test]
    fn older_catalogs_gain_the_new_columns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE books(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE, \
                 title TEXT NOT NULL, author TEXT, format TEXT NOT NULL, size INTEGER NOT NULL, \
                 pages INTEGER, error TEXT, encoding TEXT, md5 TEXT NOT NULL, \
                 partial_md5 TEXT NOT NULL, blake3 TEXT NOT NULL, mtime INTEGER NOT NULL, cover_file TEXT);
                 INSERT INTO books(path, title, format, size, md5, partial_md5, blake3, mtime) \
                 VALUES ('a.txt', 'A', 'txt', 1, 'm', 'p', 'b', 1);",
            )
            .unwrap();
        }
        let c = open(&path).unwrap();
        let mut b = book("e.epub", "E");
        b.format = Format::Epub;
        b.series = Some("S".into());
        b.series_index = Some(2.0);
        upsert(&c, &b).unwrap();
        let a = by_path(&c, "a.txt").unwrap().unwrap();
        assert_eq!(
            (a.series, a.added, a.tags.len()),
            (None, 1, 0),
            "added = mtime"
        );
        let e = by_path(&c, "e.epub").unwrap().unwrap();
        assert_eq!(
            (e.format, e.series.as_deref(), e.series_index),
            (Format::Epub, Some("S"), Some(2.0))
        );
        drop(c);
        open(&path).unwrap();
    }

    #[test]
    fn formats() {
        assert_eq!(Format::from_name("A.PDF"), Some(Format::Pdf));
        assert_eq!(Format::from_name("a.txt"), Some(Format::Txt));
        assert_eq!(Format::from_name("a.Epub"), Some(Format::Epub));
        assert_eq!(Format::from_name("a.jpg"), None);
        assert_eq!(Format::from_name("noext"), None);
    }
}
