//! Bookmarks of the terminal reader, kept on this machine: the reader's server stores one
//! position per account and book and has no place for a list of marks, so they live in
//! `bookmarks.json` in the user's data directory (`--data DIR`; by default the platform's,
//! e.g. `~/.local/share/sockit/reader`). They are keyed by the book's document id (its
//! KOReader partial MD5, the key of positions on the server), so a book keeps its marks
//! when it is renamed or read from another server. A mark is a position in the server's
//! terms (unit and the fraction into it), so it survives a terminal of another size.
//!
//! Each save reads the file again and replaces only the book's list, written atomically
//! (staging file, fsync, rename): two readers open at once lose nothing of other books.
//! A file that cannot be read as bookmarks is never overwritten.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file's name in the data directory.
pub const FILE: &str = "bookmarks.json";
/// Most marks kept per book.
pub const MAX_PER_BOOK: usize = 1000;
/// Largest bookmarks file read.
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// One bookmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bookmark {
    /// The unit (TXT page at the server's size, EPUB chapter, PDF page), 1-based.
    pub unit: u64,
    /// How far into the unit, 0.0..1.0.
    pub fraction: f64,
    /// The first words of the marked page.
    pub label: String,
}

/// The file: marks by document id.
#[derive(Debug, Default, Serialize, Deserialize)]
struct MarkFile {
    #[serde(default)]
    books: BTreeMap<String, Vec<Bookmark>>,
}

/// Why marks could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MarkError {
    /// No data directory (no `--data`, and the platform has none).
    #[error("no data directory for bookmarks (use --data DIR)")]
    NoDir,
    /// Reading or writing failed.
    #[error("{path}: {err}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        err: std::io::Error,
    },
    /// The file holds something else.
    #[error("{path} is not a bookmarks file ({why}); it is left as it is")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Where bookmarks are kept.
#[derive(Debug, Clone)]
pub struct MarkStore {
    file: Option<PathBuf>,
}

impl MarkStore {
    /// The store in `dir`, else in the platform's data directory.
    pub fn new(dir: Option<PathBuf>) -> Self {
        let dir = dir.or_else(|| dirs::data_dir().map(|d| d.join("sockit").join("reader")));
        Self {
            file: dir.map(|d| d.join(FILE)),
        }
    }

    /// The file, if there is a place for it.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    fn read(&self) -> Result<(PathBuf, MarkFile), MarkError> {
        let path = self.file.clone().ok_or(MarkError::NoDir)?;
        let io = |err| MarkError::Io {
            path: path.clone(),
            err,
        };
        let bytes = match std::fs::metadata(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Ok((path, MarkFile::default()))
            }
            Err(e) => return Err(io(e)),
            Ok(m) if m.len() > MAX_FILE_BYTES => {
                return Err(MarkError::Unreadable {
                    path,
                    why: format!("over {MAX_FILE_BYTES} bytes"),
                })
            }
            Ok(_) => std::fs::read(&path).map_err(io)?,
        };
        let file = serde_json::from_slice(&bytes).map_err(|e| MarkError::Unreadable {
            path: path.clone(),
            why: e.to_string(),
        })?;
        Ok((path, file))
    }

    /// The marks of document `document`, in book order.
    ///
    /// # Errors
    /// No directory, an I/O error, or a file that is not a bookmarks file.
    pub fn load(&self, document: &str) -> Result<Vec<Bookmark>, MarkError> {
        let (_, file) = self.read()?;
        let mut marks = file.books.get(document).cloned().unwrap_or_default();
        sort(&mut marks);
        Ok(marks)
    }

    /// Replaces the marks of `document` (at most [`MAX_PER_BOOK`]; none removes the book).
    ///
    /// # Errors
    /// No directory, an I/O error, or an existing file that is not a bookmarks file.
    pub fn save(&self, document: &str, marks: &[Bookmark]) -> Result<(), MarkError> {
        let (path, mut file) = self.read()?;
        if marks.is_empty() {
            file.books.remove(document);
        } else {
            let mut marks: Vec<Bookmark> = marks.iter().take(MAX_PER_BOOK).cloned().collect();
            sort(&mut marks);
            file.books.insert(document.to_owned(), marks);
        }
        let io = |err| MarkError::Io {
            path: path.clone(),
            err,
        };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| io(std::io::Error::other(e)))?;
        sockit_runtime::fs::write_atomic(&path, &bytes, sockit_runtime::fs::Mode::Public)
            .map_err(io)
    }
}

/// Marks in book order.
pub fn sort(marks: &mut [Bookmark]) {
    marks.sort_by(|a, b| a.unit.cmp(&b.unit).then(a.fraction.total_cmp(&b.fraction)));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mark(unit: u64, fraction: f64) -> Bookmark {
        Bookmark {
            unit,
            fraction,
            label: format!("u{unit}"),
        }
    }

    #[test]
    fn marks_round_trip_per_document() {
        let dir = tempfile::tempdir().unwrap();
        let store = MarkStore::new(Some(dir.path().join("sub")));
        assert!(store.load("doc").unwrap().is_empty());
        store.save("doc", &[mark(3, 0.5), mark(1, 0.25)]).unwrap();
        store.save("other", &[mark(2, 0.0)]).unwrap();
        assert_eq!(
            store.load("doc").unwrap(),
            vec![mark(1, 0.25), mark(3, 0.5)]
        );
        assert_eq!(store.load("other").unwrap(), vec![mark(2, 0.0)]);
        store.save("doc", &[]).unwrap();
        assert!(store.load("doc").unwrap().is_empty());
        assert_eq!(store.load("other").unwrap().len(), 1);
    }

    #[test]
    fn a_foreign_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE);
        std::fs::write(&path, b"not json").unwrap();
        let store = MarkStore::new(Some(dir.path().to_owned()));
        assert!(matches!(store.load("d"), Err(MarkError::Unreadable { .. })));
        assert!(store.save("d", &[mark(1, 0.0)]).is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"not json");
    }
}
