//! `PDF.db`: the catalog in the course client's shape, a SQLite file with the table
//! `book_info(path, page, flag, md5)`. `page` is the starting page the course server
//! shipped (0 for PDFs, 1 for TXT), `flag` is NULL, `md5` is the file's MD5 — the client
//! drops its cached copy of a book when that changes.

use std::path::Path;

use rusqlite::{params, Connection};

use crate::catalog::{Book, Format};
use crate::error::{ReaderError, Result};

/// Builds the file at `path` (atomically: a staging file renamed into place).
///
/// # Errors
/// SQLite or file errors.
pub fn build(path: &Path, books: &[Book]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let staging = tempfile::Builder::new()
        .prefix(".PDF.db-")
        .tempfile_in(dir)
        .map_err(|e| ReaderError::io(dir, e))?;
    {
        let mut conn = Connection::open(staging.path())?;
        conn.execute_batch(
            "PRAGMA journal_mode = DELETE;
             CREATE TABLE book_info(path TEXT PRIMARY KEY, page INTEGER, flag INTEGER, md5 TEXT);",
        )?;
        let tx = conn.transaction()?;
        for b in books.iter().filter(|b| b.error.is_none()) {
            let page = match b.format {
                Format::Pdf | Format::Epub => 0,
                Format::Txt => 1,
            };
            tx.execute(
                "INSERT OR REPLACE INTO book_info(path, page, flag, md5) VALUES (?1, ?2, NULL, ?3)",
                params![b.path, page, b.md5],
            )?;
        }
        tx.commit()?;
    }
    staging
        .as_file()
        .sync_all()
        .map_err(|e| ReaderError::io(staging.path(), e))?;
    staging
        .persist(path)
        .map_err(|e| ReaderError::io(path, e.error))?;
    Ok(())
}
