//! EPUB 2 and 3: the zip container read with limits ([`Archive`]), the package document
//! ([`opf`]), the table of contents ([`toc`]), and chapters and style sheets made safe to
//! show ([`html`]). Parsing ([`container`], [`opf`], [`toc`], [`path`], [`xml`], [`html`])
//! is pure and total; this module does the reading.
//!
//! Limits ([`Limits`], defaults in brackets): entries per book [10 000], uncompressed bytes
//! per entry [32 MiB] and per operation (opening a book, one chapter, one image) [256 MiB].
//! Sizes are counted while inflating, never taken from the zip headers: a zip bomb stops
//! at the limit. Entry names are checked ([`path::check_entry_name`]): a book with a name
//! that is absolute, has a `..` component, a backslash, a drive prefix or a control
//! character is refused as a whole. Nothing is ever extracted to disk.

pub mod container;
pub mod html;
pub mod opf;
pub mod path;
pub mod toc;
pub mod xml;

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use crate::error::{ReaderError, Result};

/// The media type of an EPUB file.
pub const MIME: &str = "application/epub+zip";

/// Limits applied to every EPUB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most entries in the zip.
    pub max_entries: usize,
    /// Most uncompressed bytes read from one entry.
    pub max_entry_bytes: u64,
    /// Most uncompressed bytes read in one operation (opening, one chapter, one file).
    pub max_total_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_entry_bytes: 32 << 20,
            max_total_bytes: 256 << 20,
        }
    }
}

fn bad(book: &str, reason: impl Into<String>) -> ReaderError {
    ReaderError::BadEpub {
        name: book.to_owned(),
        reason: reason.into(),
    }
}

/// Runs `f`, turning a panic of the zip reader into [`ReaderError::BadEpub`].
fn guard<T>(book: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| Err(bad(book, "zip reader crashed")))
}

/// A zip archive whose entry names were checked, read within [`Limits`].
#[derive(Debug)]
pub struct Archive<R> {
    zip: zip::ZipArchive<R>,
    names: HashMap<String, usize>,
    limits: Limits,
    /// Uncompressed bytes read in the current operation.
    spent: u64,
    book: String,
}

impl<R: Read + Seek> Archive<R> {
    /// Reads the zip's central directory and checks every entry name.
    ///
    /// # Errors
    /// `BadEpub`: not a zip, too many entries, an unsafe or undecodable name.
    pub fn new(book: &str, reader: R, limits: Limits) -> Result<Self> {
        guard(book, || {
            let zip = zip::ZipArchive::new(reader)
                .map_err(|e| bad(book, format!("not a zip archive ({e})")))?;
            if zip.len() > limits.max_entries {
                return Err(bad(
                    book,
                    format!(
                        "{} entries, over the limit of {}",
                        zip.len(),
                        limits.max_entries
                    ),
                ));
            }
            let mut names = HashMap::with_capacity(zip.len());
            for i in 0..zip.len() {
                let name = match zip.name_for_index(i) {
                    Some(Ok(n)) => n.into_owned(),
                    _ => return Err(bad(book, format!("entry {i} has an undecodable name"))),
                };
                if let Err(why) = path::check_entry_name(&name) {
                    let shown: String = name.chars().take(80).collect();
                    return Err(bad(book, format!("unsafe entry name `{shown}` ({why})")));
                }
                if !name.ends_with('/') {
                    names.entry(name).or_insert(i);
                }
            }
            Ok(Self {
                zip,
                names,
                limits,
                spent: 0,
                book: book.to_owned(),
            })
        })
    }

    /// Starts a new operation: the per-operation byte budget is full again.
    pub fn begin(&mut self) {
        self.spent = 0;
    }

    /// Whether the book has an entry named `path`.
    pub fn contains(&self, path: &str) -> bool {
        self.names.contains_key(path)
    }

    /// The uncompressed bytes of entry `path`, refusing past the per-entry limit or the
    /// operation's budget (counted while inflating).
    ///
    /// # Errors
    /// `NotFound`, `TooLarge`, `BadEpub` (corrupt or encrypted entry).
    pub fn read(&mut self, path: &str) -> Result<Vec<u8>> {
        let Some(&index) = self.names.get(path) else {
            return Err(ReaderError::NotFound(format!("{path} in {}", self.book)));
        };
        let left = self.limits.max_total_bytes.saturating_sub(self.spent);
        let cap = self.limits.max_entry_bytes.min(left);
        let book = self.book.clone();
        let zip = &mut self.zip;
        let bytes = guard(&book, || {
            let entry = zip
                .by_index(index)
                .map_err(|e| bad(&book, format!("entry `{path}`: {e}")))?;
            let mut bytes = Vec::new();
            entry
                .take(cap.saturating_add(1))
                .read_to_end(&mut bytes)
                .map_err(|e| bad(&book, format!("entry `{path}` is corrupt ({e})")))?;
            Ok(bytes)
        })?;
        if bytes.len() as u64 > cap {
            let which = if cap == self.limits.max_entry_bytes {
                format!(
                    "the limit of {} bytes per entry",
                    self.limits.max_entry_bytes
                )
            } else {
                format!(
                    "the limit of {} bytes per request",
                    self.limits.max_total_bytes
                )
            };
            return Err(ReaderError::TooLarge(format!(
                "entry `{path}` of {} inflates past {which}",
                self.book
            )));
        }
        self.spent += bytes.len() as u64;
        Ok(bytes)
    }
}

/// One entry of [`Toc`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TocItem {
    /// What the book calls it.
    pub label: String,
    /// The chapter it is in (1-based spine position), if it is in the spine.
    pub chapter: Option<u64>,
    /// The anchor inside the chapter, if any.
    pub fragment: Option<String>,
    /// Nesting level, 0 at the top.
    pub level: u32,
}

/// `GET /api/books/ID/toc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toc {
    /// The book's title.
    pub title: String,
    /// How many chapters (spine items) the book has.
    pub chapters: u64,
    /// The table of contents (from the nav document or the NCX; one entry per chapter
    /// when the book has neither).
    pub entries: Vec<TocItem>,
}

/// `GET /api/books/ID/chapter/N`: one chapter, sanitized.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chapter {
    /// The chapter (1-based spine position).
    pub chapter: u64,
    /// How many chapters the book has.
    pub chapters: u64,
    /// Its title (the table of contents' label, else the document's `<title>`).
    pub title: Option<String>,
    /// Its entry name in the book.
    pub path: String,
    /// The body as safe HTML (through ammonia: no script, no event handlers, no `style`
    /// attributes, links and images rewritten to the reader's routes).
    pub html: String,
    /// The URLs of its style sheets (served sanitized from inside the book).
    pub styles: Vec<String>,
    /// The previous chapter, if any.
    pub prev: Option<u64>,
    /// The next chapter, if any.
    pub next: Option<u64>,
    /// How far into the book the chapter starts, 0.0..1.0.
    pub percentage: f64,
}

/// An opened EPUB: its archive, package and table of contents.
#[derive(Debug)]
pub struct Epub<R> {
    /// The archive.
    pub archive: Archive<R>,
    /// What the OPF says.
    pub package: opf::Package,
    /// The table of contents.
    pub toc: Vec<toc::Entry>,
}

/// The media type an entry is served with, for the types a chapter may use (images,
/// style sheets, fonts); `None` for anything else.
pub fn resource_mime(path: &str) -> Option<&'static str> {
    let ext = path.rsplit_once('.')?.1.to_ascii_lowercase();
    Some(match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "svg" => "image/svg+xml",
        "css" => "text/css; charset=utf-8",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        _ => return None,
    })
}

impl<R: Read + Seek> Epub<R> {
    /// Opens `reader` as the EPUB `book` (the name used in errors).
    ///
    /// # Errors
    /// `BadEpub` (not a zip, unsafe names, no container or package, empty spine),
    /// `TooLarge`.
    pub fn open(book: &str, reader: R, limits: Limits) -> Result<Self> {
        let mut archive = Archive::new(book, reader, limits)?;
        let container = archive.read(container::CONTAINER).map_err(|e| match e {
            ReaderError::NotFound(_) => bad(book, "no META-INF/container.xml"),
            e => e,
        })?;
        let opf_path = container::rootfile(&container)
            .ok_or_else(|| bad(book, "META-INF/container.xml names no package document"))?;
        let opf = archive.read(&opf_path).map_err(|e| match e {
            ReaderError::NotFound(_) => bad(book, format!("the package `{opf_path}` is missing")),
            e => e,
        })?;
        let package = opf::parse(&opf, &opf_path);
        if package.spine.is_empty() {
            return Err(bad(book, "the package's spine lists no document"));
        }
        let mut toc = Vec::new();
        if let Some(nav) = package.nav.clone() {
            if let Ok(b) = archive.read(&nav) {
                toc = toc::from_nav(&b, &nav);
            }
        }
        if toc.is_empty() {
            if let Some(ncx) = package.ncx.clone() {
                if let Ok(b) = archive.read(&ncx) {
                    toc = toc::from_ncx(&b, &ncx);
                }
            }
        }
        Ok(Self {
            archive,
            package,
            toc,
        })
    }

    /// How many chapters (spine items).
    pub fn chapters(&self) -> usize {
        self.package.spine.len()
    }

    /// The chapter (1-based) an entry is, if it is in the spine.
    pub fn chapter_of(&self, path: &str) -> Option<usize> {
        self.package
            .spine
            .iter()
            .position(|p| p == path)
            .map(|i| i + 1)
    }

    /// The table of contents, with chapter numbers.
    pub fn toc(&self) -> Toc {
        let mut entries: Vec<TocItem> = self
            .toc
            .iter()
            .map(|e| TocItem {
                label: e.label.clone(),
                chapter: self.chapter_of(&e.path).map(|c| c as u64),
                fragment: e.fragment.clone(),
                level: e.level,
            })
            .collect();
        if entries.is_empty() {
            entries = self
                .package
                .spine
                .iter()
                .enumerate()
                .map(|(i, p)| TocItem {
                    label: p.rsplit('/').next().unwrap_or(p).to_owned(),
                    chapter: Some(i as u64 + 1),
                    fragment: None,
                    level: 0,
                })
                .collect();
        }
        Toc {
            title: self.package.title.clone().unwrap_or_default(),
            chapters: self.chapters() as u64,
            entries,
        }
    }

    /// Chapter `n` (1-based) as safe HTML, its links rewritten for book `book_id`.
    ///
    /// # Errors
    /// `PageOutOfRange`, `NotFound` (the spine names a missing entry), `TooLarge`.
    pub fn chapter(&mut self, n: u64, book_id: i64) -> Result<Chapter> {
        let total = self.chapters() as u64;
        let index = usize::try_from(n)
            .ok()
            .filter(|&i| i >= 1 && i as u64 <= total)
            .ok_or(ReaderError::PageOutOfRange {
                page: n,
                pages: total,
            })?;
        let path = self.package.spine[index - 1].clone();
        self.archive.begin();
        let bytes = self.archive.read(&path)?;
        let text = xml::decode(&bytes);
        let tree = xml::parse(&bytes);
        let links = html::Links {
            book_id,
            doc: &path,
            chapter: index,
            spine: &self.package.spine,
        };
        let body = html::sanitize_chapter(&text, &links);
        let title = self
            .toc
            .iter()
            .filter(|e| e.path == path)
            .min_by_key(|e| e.fragment.is_some())
            .map(|e| e.label.clone())
            .or_else(|| html::title(&tree));
        let styles = html::stylesheets(&tree, &path)
            .into_iter()
            .filter(|s| self.archive.contains(s))
            .map(|s| html::resource_url(book_id, &s))
            .collect();
        Ok(Chapter {
            chapter: n,
            chapters: total,
            title,
            path,
            html: body,
            styles,
            prev: (n > 1).then(|| n - 1),
            next: (n < total).then(|| n + 1),
            percentage: (n - 1) as f64 / total.max(1) as f64,
        })
    }

    /// An image, style sheet (sanitized) or font of the book, with its media type.
    ///
    /// # Errors
    /// `Traversal` (an unsafe name), `NotFound`, `Unsupported` (another kind of entry:
    /// chapters are served sanitized by [`Epub::chapter`]), `TooLarge`.
    pub fn resource(&mut self, name: &str, book_id: i64) -> Result<(Vec<u8>, &'static str)> {
        if path::check_entry_name(name).is_err() {
            return Err(ReaderError::Traversal(name.to_owned()));
        }
        let Some(mime) = resource_mime(name) else {
            return Err(ReaderError::Unsupported(format!(
                "`{name}` is not an image, style sheet or font; chapters are served by /api/books/{book_id}/chapter/N"
            )));
        };
        self.archive.begin();
        let bytes = self.archive.read(name)?;
        if mime.starts_with("text/css") {
            let css = html::sanitize_css(&xml::decode(&bytes), name, book_id);
            return Ok((css.into_bytes(), mime));
        }
        Ok((bytes, mime))
    }

    /// The cover image's bytes, if the package names one.
    ///
    /// # Errors
    /// `TooLarge`, `BadEpub` (a corrupt entry).
    pub fn cover(&mut self) -> Result<Option<Vec<u8>>> {
        let Some(cover) = self.package.cover.clone() else {
            return Ok(None);
        };
        self.archive.begin();
        match self.archive.read(&cover) {
            Ok(b) => Ok(Some(b)),
            Err(ReaderError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Cursor, Write};

    fn zip(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opt = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            w.start_file(*name, opt).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    const CONTAINER: &[u8] = br#"<container><rootfiles><rootfile full-path="c.opf" media-type="application/oebps-package+xml"/></rootfiles></container>"#;
    const OPF: &[u8] = br#"<package version="3.0"><metadata><dc:title>T</dc:title></metadata><manifest>
        <item id="a" href="a.xhtml" media-type="application/xhtml+xml"/><item id="b" href="big.xhtml" media-type="application/xhtml+xml"/>
        </manifest><spine><itemref idref="a"/><itemref idref="b"/></spine></package>"#;

    #[test]
    fn zip_bombs_stop_at_the_limit() {
        let big = vec![b'a'; 4 << 20];
        let bytes = zip(&[
            ("META-INF/container.xml", CONTAINER),
            ("c.opf", OPF),
            ("a.xhtml", b"<html><body><p>hi</p></body></html>"),
            ("big.xhtml", &big),
        ]);
        assert!(bytes.len() < 64 << 10, "{}", bytes.len());
        let limits = Limits {
            max_entry_bytes: 1 << 20,
            ..Limits::default()
        };
        let mut e = Epub::open("b.epub", Cursor::new(bytes), limits).unwrap();
        assert!(e.chapter(1, 1).unwrap().html.contains("hi"));
        assert!(matches!(e.chapter(2, 1), Err(ReaderError::TooLarge(_))));
        assert!(matches!(
            e.chapter(3, 1),
            Err(ReaderError::PageOutOfRange { .. })
        ));
    }

    #[test]
    fn unsafe_names_refuse_the_book() {
        for name in ["../../etc/passwd", "/abs", "a\\..\\b"] {
            let bytes = zip(&[
                ("META-INF/container.xml", CONTAINER),
                ("c.opf", OPF),
                (name, b"x"),
            ]);
            let err = Epub::open("e.epub", Cursor::new(bytes), Limits::default()).unwrap_err();
            assert!(
                matches!(&err, ReaderError::BadEpub { reason, .. } if reason.contains("unsafe entry name")),
                "{name}: {err}"
            );
        }
    }

    #[test]
    fn not_epubs() {
        for bytes in [&b""[..], b"PK\x03\x04garbage", b"plain text"] {
            assert!(matches!(
                Epub::open("x.epub", Cursor::new(bytes.to_vec()), Limits::default()),
                Err(ReaderError::BadEpub { .. })
            ));
        }
        let no_container = zip(&[("c.opf", OPF)]);
        let e = Epub::open("x.epub", Cursor::new(no_container), Limits::default()).unwrap_err();
        assert!(e.to_string().contains("container.xml"), "{e}");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_arbitrary_entries(
            names in proptest::collection::vec("[a-zA-Z0-9./\\\\:%-]{0,24}", 0..6),
            blobs in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..300), 0..6),
            opf in "(<[a-z:]{1,8}( [a-z:-]{1,8}=\"[^\"]{0,12}\")*/?>|</[a-z]{1,6}>|[^<]{0,10}){0,30}",
        ) {
            let mut entries: Vec<(String, Vec<u8>)> = vec![
                ("META-INF/container.xml".into(), CONTAINER.to_vec()),
                ("c.opf".into(), opf.into_bytes()),
            ];
            for (n, b) in names.iter().zip(blobs.iter().cycle()) {
                entries.push((n.clone(), b.clone()));
            }
            let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
            for (n, b) in &entries {
                if w.start_file(n.as_str(), zip::write::SimpleFileOptions::default()).is_ok() {
                    let _ = w.write_all(b);
                }
            }
            if let Ok(c) = w.finish() {
                if let Ok(mut e) = Epub::open("p.epub", Cursor::new(c.into_inner()), Limits::default()) {
                    let _ = e.toc();
                    for n in 0..=e.chapters() as u64 + 1 {
                        let _ = e.chapter(n, 1);
                    }
                    for n in &names {
                        let _ = e.resource(n, 1);
                    }
                    let _ = e.cover();
                }
            }
        }

        #[test]
        fn never_panics_on_arbitrary_bytes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..2000)) {
            let _ = Epub::open("p.epub", Cursor::new(bytes.clone()), Limits::default());
            let _ = opf::parse(&bytes, "x/c.opf");
            let _ = toc::from_nav(&bytes, "n.xhtml");
            let _ = toc::from_ncx(&bytes, "t.ncx");
            let _ = container::rootfile(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = html::sanitize_css(&text, "s.css", 1);
            let _ = html::body_of(&text);
        }
    }
}
