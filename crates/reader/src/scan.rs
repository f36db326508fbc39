//! Bringing the catalog in line with the books root: new files are hashed and inspected,
//! changed ones (size or mtime) re-hashed, vanished ones removed. The slow part (hashing,
//! parsing) runs before the write transaction, and the catalog is in WAL mode, so readers
//! are never blocked by a scan.

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use tracing::{debug, info, warn};

use crate::catalog::{self, Book, Format};
use crate::config::ReaderConfig;
use crate::error::{ReaderError, Result};
use crate::hashes;

/// Deepest directory level scanned under the books root.
const MAX_DEPTH: usize = 16;
/// Most files looked at in one scan.
const MAX_FILES: usize = 100_000;

/// What one scan changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanReport {
    /// Books new to the catalog.
    pub added: usize,
    /// Books whose file changed.
    pub updated: usize,
    /// Books whose file is gone.
    pub removed: usize,
    /// Books whose cover appeared, changed or went away.
    pub covers: usize,
}

impl ScanReport {
    /// Whether anything changed.
    pub fn changed(&self) -> bool {
        self.added + self.updated + self.removed + self.covers > 0
    }
}

/// A book file found on disk.
#[derive(Debug)]
struct Found {
    rel: String,
    abs: PathBuf,
    format: Format,
    size: u64,
    mtime: i64,
    cover: Option<String>,
}

/// Scans `root` (canonical) and updates the catalog at `db_path`.
///
/// # Errors
/// The catalog cannot be opened or written. Unreadable books are recorded with their
/// error, not returned.
pub fn scan(root: &Path, db_path: &Path, cfg: &ReaderConfig) -> Result<ScanReport> {
    let found = walk(root);
    let conn = catalog::open(db_path)?;
    let known: std::collections::HashMap<String, (u64, i64, Option<String>)> =
        catalog::fingerprints(&conn)?
            .into_iter()
            .map(|(p, s, m, c)| (p, (s, m, c)))
            .collect();
    let mut report = ScanReport::default();
    let mut upserts = Vec::new();
    let mut covers = Vec::new();
    for f in &found {
        match known.get(&f.rel) {
            Some((size, mtime, cover)) if *size == f.size && *mtime == f.mtime => {
                if *cover != f.cover {
                    covers.push((f.rel.clone(), f.cover.clone()));
                    report.covers += 1;
                }
            }
            Some(_) => {
                upserts.push(inspect(f, cfg));
                report.updated += 1;
            }
            None => {
                upserts.push(inspect(f, cfg));
                report.added += 1;
            }
        }
    }
    let present: std::collections::HashSet<&str> = found.iter().map(|f| f.rel.as_str()).collect();
    let gone: Vec<&String> = known
        .keys()
        .filter(|k| !present.contains(k.as_str()))
        .collect();
    report.removed = gone.len();
    if report.changed() {
        let tx = conn.unchecked_transaction()?;
        for b in upserts.into_iter().flatten() {
            catalog::upsert(&tx, &b)?;
        }
        for (path, cover) in &covers {
            catalog::set_cover(&tx, path, cover.as_deref())?;
        }
        for path in gone {
            catalog::remove(&tx, path)?;
        }
        tx.commit()?;
        info!(
            added = report.added,
            updated = report.updated,
            removed = report.removed,
            covers = report.covers,
            "catalog updated"
        );
    }
    Ok(report)
}

/// Hashes and inspects one file; `None` when it vanished or cannot be read at all.
fn inspect(f: &Found, cfg: &ReaderConfig) -> Option<Book> {
    let h = match hashes::hash_file(&f.abs) {
        Ok(h) => h,
        Err(e) => {
            warn!(path = %f.rel, error = %e, "cannot hash book; skipped");
            return None;
        }
    };
    let stem = f
        .rel
        .rsplit('/')
        .next()
        .and_then(|n| n.rsplit_once('.').map(|(s, _)| s))
        .unwrap_or(&f.rel)
        .to_owned();
    let mut book = Book {
        id: 0,
        path: f.rel.clone(),
        title: stem,
        author: None,
        format: f.format,
        size: h.size,
        pages: None,
        error: None,
        encoding: None,
        md5: h.md5,
        partial_md5: h.partial_md5,
        blake3: h.blake3,
        mtime: f.mtime,
        cover_file: f.cover.clone(),
        language: None,
        series: None,
        series_index: None,
        description: None,
        added: chrono::Utc::now().timestamp_micros(),
        tags: Vec::new(),
    };
    let outcome = read_metadata(&f.abs, &f.rel, f.format, cfg, &mut book);
    if let Err(e) = outcome {
        if f.format == Format::Epub {
            // Malformed or hostile EPUBs are worth a line: they were skipped before.
            warn!(path = %f.rel, error = %e, "EPUB is not readable; cataloged with its error");
        } else {
            debug!(path = %f.rel, error = %e, "book is not readable");
        }
        book.error = Some(e.to_string());
    }
    Some(book)
}

/// Reads what the book file at `abs` (`rel` in the books root, for errors) says about
/// itself into `book`: pages, title, authors, language, series, description, the TXT
/// encoding. The catalog's own inspection, also run on an upload before it is kept.
///
/// # Errors
/// Why the book cannot be read (`Empty`, `NotText`, `Encrypted`, `BadPdf`, `BadEpub`,
/// `TooLarge`, I/O errors).
pub(crate) fn read_metadata(
    abs: &Path,
    rel: &str,
    format: Format,
    cfg: &ReaderConfig,
    book: &mut Book,
) -> Result<()> {
    match format {
        Format::Txt => read_capped(abs, rel, cfg.max_txt_bytes).and_then(|bytes| {
            let d = crate::txt::decode::decode(rel, &bytes)?;
            book.encoding = Some(d.encoding.to_owned());
            let paged = crate::txt::pages::Paged::new(d.text, cfg.txt_page_chars);
            book.pages = Some(paged.len() as u64);
            Ok(())
        }),
        Format::Pdf => read_capped(abs, rel, cfg.max_pdf_bytes).and_then(|bytes| {
            let info = crate::pdf::inspect(rel, &bytes)?;
            book.pages = Some(info.pages);
            if let Some(t) = info.title {
                book.title = t;
            }
            book.author = info.author;
            Ok(())
        }),
        Format::Epub => std::fs::File::open(abs)
            .map_err(|e| ReaderError::io(abs, e))
            .and_then(|file| {
                let epub = crate::epub::Epub::open(rel, file, cfg.epub)?;
                let p = &epub.package;
                book.pages = Some(epub.chapters() as u64);
                if let Some(t) = &p.title {
                    book.title = t.clone();
                }
                book.author = (!p.authors.is_empty()).then(|| p.authors.join(", "));
                book.language = p.language.clone();
                book.series = p.series.clone();
                book.series_index = p.series_index;
                book.description = p.description.clone();
                Ok(())
            }),
    }
}

/// Reads a whole file (`name` relative to the books root, for the error, which is shown to
/// clients), refusing one over `cap` bytes.
///
/// # Errors
/// `TooLarge`, or the read error.
pub fn read_capped(path: &Path, name: &str, cap: u64) -> Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| ReaderError::io(path, e))?
        .len();
    if len > cap {
        return Err(ReaderError::TooLarge(format!(
            "{name} is {len} bytes, over the limit of {cap}"
        )));
    }
    std::fs::read(path).map_err(|e| ReaderError::io(path, e))
}

/// Lists book files under `root` (no symlinks, no hidden files, bounded depth and count).
fn walk(root: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut names: Vec<(String, std::fs::Metadata, PathBuf)> = Vec::new();
        for e in rd.flatten() {
            seen += 1;
            if seen > MAX_FILES {
                warn!(
                    limit = MAX_FILES,
                    "books root has too many files; the rest are not scanned"
                );
                break;
            }
            let Ok(name) = e.file_name().into_string() else {
                continue;
            };
            if name.starts_with('.') {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            names.push((name, meta, e.path()));
        }
        for (name, meta, path) in &names {
            if meta.is_dir() && depth < MAX_DEPTH {
                stack.push((path.clone(), depth + 1));
                continue;
            }
            if !meta.is_file() {
                continue;
            }
            let Some(format) = Format::from_name(name) else {
                continue;
            };
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let Some(rel) = rel.to_str().map(|s| s.replace('\\', "/")) else {
                continue;
            };
            let stem = name.rsplit_once('.').map_or(name.as_str(), |(s, _)| s);
            let cover = names
                .iter()
                .find(|(n, m, _)| {
                    m.is_file()
                        && n.rsplit_once('.').is_some_and(|(s, ext)| {
                            s == stem
                                && matches!(
                                    ext.to_ascii_lowercase().as_str(),
                                    "jpg" | "jpeg" | "png"
                                )
                        })
                })
                .and_then(|(_, _, p)| p.strip_prefix(root).ok()?.to_str().map(str::to_owned));
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| {
                    i64::try_from(d.as_nanos() / 1000).unwrap_or(i64::MAX)
                });
            out.push(Found {
                rel,
                abs: path.clone(),
                format,
                size: meta.len(),
                mtime,
                cover,
            });
        }
    }
    out.sort_by(|a, b| a.rel.cmp(&b.rel));
    out
}
