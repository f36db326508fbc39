//! The bodies of the reader's JSON API and of kosync, as types: the server
//! (the JSON API and kosync routes of [`crate::http`]) builds its answers from them, and
//! clients ([`crate::client`], `sockit read`) read them back with the same types. These
//! types are the schema of the JSON API; a field renamed here is renamed on both sides.
//!
//! Every error of the JSON API is an [`ErrorBody`] (`{"status":"error","code","message"}`,
//! built by [`crate::http::ApiError`] and [`crate::http::json_error`]); kosync keeps
//! koreader-sync-server's own shapes ([`KoErrorBody`] and the `Ko*` types).

use serde::{Deserialize, Serialize};

use crate::catalog::{Book, Format};

/// `GET /api/books/ID/text/N?chars=C`: one page of a TXT book (the library's own type).
pub use crate::library::TxtPage;

/// `GET /api/books/ID/toc` and `GET /api/books/ID/chapter/N`: an EPUB's table of contents
/// and one sanitized chapter (the library's own types).
pub use crate::epub::{Chapter, Toc, TocItem};

/// A book as the API shows it: the catalog row plus its links.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookJson {
    /// Stable id (kept while the path stays the same).
    pub id: i64,
    /// Path relative to the books root, `/`-separated.
    pub path: String,
    /// Title (PDF metadata or EPUB OPF, else the file name without extension).
    pub title: String,
    /// Author(s) from the PDF metadata or the EPUB OPF.
    pub author: Option<String>,
    /// `pdf`, `epub` or `txt`.
    pub format: Format,
    /// Size in bytes.
    pub size: u64,
    /// Page count (TXT: at the server's default page size; EPUB: chapters); `None` when
    /// unreadable.
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
    /// Modification time, microseconds since the epoch.
    pub mtime: i64,
    /// The cover image next to the book (`NAME.jpg`), relative to the books root.
    pub cover_file: Option<String>,
    /// Language (EPUB `dc:language`).
    #[serde(default)]
    pub language: Option<String>,
    /// Series (EPUB `calibre:series` or `belongs-to-collection`).
    #[serde(default)]
    pub series: Option<String>,
    /// Position in the series.
    #[serde(default)]
    pub series_index: Option<f64>,
    /// Description (EPUB `dc:description`, plain text).
    #[serde(default)]
    pub description: Option<String>,
    /// When the book entered the catalog, microseconds since the epoch.
    #[serde(default)]
    pub added: i64,
    /// Tags (set in the web UI; catalog only).
    #[serde(default)]
    pub tags: Vec<String>,
    /// When the caller last saved a position in it (seconds since the epoch); only in
    /// listings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_read: Option<i64>,
    /// The caller's shelves that hold the book (ids); only in `GET /api/books/ID`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shelves: Option<Vec<i64>>,
    /// `/api/books/ID/cover`.
    pub cover_url: String,
    /// `/api/books/ID/cover?w=200`.
    pub thumb_url: String,
    /// `/api/books/ID/file`.
    pub file_url: String,
}

impl From<Book> for BookJson {
    fn from(book: Book) -> Self {
        let id = book.id;
        Self {
            id,
            path: book.path,
            title: book.title,
            author: book.author,
            format: book.format,
            size: book.size,
            pages: book.pages,
            error: book.error,
            encoding: book.encoding,
            md5: book.md5,
            partial_md5: book.partial_md5,
            blake3: book.blake3,
            mtime: book.mtime,
            cover_file: book.cover_file,
            language: book.language,
            series: book.series,
            series_index: book.series_index,
            description: book.description,
            added: book.added,
            tags: book.tags,
            last_read: None,
            shelves: None,
            cover_url: format!("/api/books/{id}/cover"),
            thumb_url: format!("/api/books/{id}/cover?w=200"),
            file_url: format!("/api/books/{id}/file"),
        }
    }
}

/// `GET /api/books?q=TEXT`: one page of the matching books.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BookList {
    /// How many books matched (on all pages).
    pub total: usize,
    /// The catalog's generation (changes when a scan changed anything).
    pub generation: u64,
    /// This page's number (1-based).
    #[serde(default = "one")]
    pub page: u64,
    /// The page size asked for (the last page may hold fewer).
    #[serde(default)]
    pub per_page: u64,
    /// The books of this page.
    pub books: Vec<BookJson>,
}

fn one() -> u64 {
    1
}

/// Sort keys and directions of `GET /api/books` (the catalog's own types).
pub use crate::browse::{Order, Shelf, Sort};

/// The query of `GET /api/books`: every field optional, an empty value counts as absent,
/// and a bad value is a 400 naming it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BooksQuery {
    /// `title` (default), `author`, `added`, `read` (the caller's last position) or `series`.
    #[serde(
        default,
        deserialize_with = "parsed",
        skip_serializing_if = "Option::is_none"
    )]
    pub sort: Option<Sort>,
    /// `asc` or `desc` (default: A→Z for names, newest first for `added` and `read`).
    #[serde(
        default,
        deserialize_with = "parsed",
        skip_serializing_if = "Option::is_none"
    )]
    pub order: Option<Order>,
    /// `pdf`, `epub` or `txt`.
    #[serde(
        default,
        deserialize_with = "parsed",
        skip_serializing_if = "Option::is_none"
    )]
    pub format: Option<FormatParam>,
    /// One of the book's authors (case-insensitive, whole name).
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub author: Option<String>,
    /// The series (case-insensitive, whole name).
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub series: Option<String>,
    /// A tag (case-insensitive).
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub tag: Option<String>,
    /// One of the caller's shelves (its id).
    #[serde(
        default,
        deserialize_with = "parsed",
        skip_serializing_if = "Option::is_none"
    )]
    pub shelf: Option<Number<i64>>,
    /// Text in the title, author, series or file name.
    #[serde(
        default,
        deserialize_with = "text",
        skip_serializing_if = "Option::is_none"
    )]
    pub q: Option<String>,
    /// Page number, from 1.
    #[serde(
        default,
        deserialize_with = "parsed",
        skip_serializing_if = "Option::is_none"
    )]
    pub page: Option<Number<u64>>,
    /// Books per page, 1..=500 (default 50).
    #[serde(
        default,
        deserialize_with = "parsed",
        skip_serializing_if = "Option::is_none"
    )]
    pub per_page: Option<Number<u64>>,
}

/// A book format as a query value (`pdf`, `epub`, `txt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FormatParam(pub Format);

impl std::str::FromStr for FormatParam {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "pdf" => Ok(Self(Format::Pdf)),
            "epub" => Ok(Self(Format::Epub)),
            "txt" => Ok(Self(Format::Txt)),
            _ => Err(format!(
                "format `{}`: use pdf, epub or txt",
                crate::browse::clip(s)
            )),
        }
    }
}

/// A number as a query value (its parse error names the value).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Number<T>(pub T);

impl<T: std::str::FromStr> std::str::FromStr for Number<T> {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.parse()
            .map(Self)
            .map_err(|_| format!("`{}` is not a valid number", crate::browse::clip(s)))
    }
}

fn parsed<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let s = String::deserialize(d)?;
    let s = s.trim();
    if s.is_empty() {
        return Ok(None);
    }
    s.parse().map(Some).map_err(serde::de::Error::custom)
}

fn text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    Ok((!s.is_empty()).then(|| s.to_owned()))
}

/// A book in the "continue reading" row: the book and the caller's position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinueItem {
    /// The book.
    pub book: BookJson,
    /// The caller's position in it.
    pub progress: SavedProgress,
}

/// `GET /api/continue`: the caller's books in progress, most recent first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContinueList {
    /// The books (at most 24).
    pub books: Vec<ContinueItem>,
}

/// `GET /api/shelves`: the caller's shelves, by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShelfList {
    /// The shelves.
    pub shelves: Vec<Shelf>,
}

/// Body of `POST /api/shelves`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewShelf {
    /// The new shelf's name (unique per user).
    pub name: String,
}

/// Body of `PATCH /api/books/ID`: the fields to change (absent ones stay). Stored in the
/// catalog, never written into the file; rescans keep them.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BookEdit {
    /// New title (non-empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// New authors, one name each (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authors: Option<Vec<String>>,
    /// New series (`""`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<String>,
    /// Position in the series (only with `series`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series_index: Option<f64>,
    /// New tags, replacing all (`[]`: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<String>>,
}

/// `GET /api/books/ID/pdftext/N`: the text of one PDF page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PdfText {
    /// The page number (1-based).
    pub page: u64,
    /// The book's page count, when known.
    pub pages: Option<u64>,
    /// The page's text.
    pub text: String,
}

/// A reading position as `GET /api/books/ID/progress` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedProgress {
    /// The page, when the position is a page number (positions written by KOReader are
    /// its own strings).
    pub page: Option<u64>,
    /// The position string, as written.
    pub progress: String,
    /// 0.0..=1.0.
    pub percentage: f64,
    /// The device that wrote it.
    pub device: String,
    /// Server time of the write, seconds since the epoch.
    pub timestamp: i64,
}

/// `GET /api/books/ID/progress`: the caller's position, or `{}` when there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProgressReply {
    /// A position is saved.
    Saved(SavedProgress),
    /// Nothing saved yet: `{}`.
    None {},
}

impl ProgressReply {
    /// The saved position, if any.
    pub fn saved(&self) -> Option<&SavedProgress> {
        match self {
            Self::Saved(p) => Some(p),
            Self::None {} => None,
        }
    }
}

/// Body of `PUT /api/books/ID/progress`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PutProgress {
    /// The page (1-based).
    pub page: u64,
    /// 0.0..=1.0 (default: page / pages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub percentage: Option<f64>,
    /// The device name (default `sockit-web`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// The answer to a stored position, `{"document","timestamp"}` (the API's
/// `PUT /api/books/ID/progress` and kosync's `PUT /syncs/progress`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProgressStored {
    /// The document id (KOReader's partial MD5).
    pub document: String,
    /// Server time of the write, seconds since the epoch.
    pub timestamp: i64,
}

/// Body of `POST /api/login` and `POST /api/register`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// The account.
    pub username: String,
    /// Its password.
    pub password: String,
}

/// `{"username"}`: the account just logged in or registered (API and kosync).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserReply {
    /// The account.
    pub username: String,
}

/// `POST /api/logout`: `{"status":"ok"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusReply {
    /// `ok`.
    pub status: String,
}

impl StatusReply {
    /// `{"status":"ok"}`.
    pub fn ok() -> Self {
        Self {
            status: "ok".into(),
        }
    }
}

/// `GET /api/me`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    /// The caller's account, `null` without credentials.
    pub username: Option<String>,
    /// Whether the library needs a login.
    pub auth_required: bool,
    /// Whether new accounts may register.
    pub registration: bool,
    /// Whether the caller is an administrator (may delete books).
    #[serde(default)]
    pub admin: bool,
    /// The largest upload accepted, in bytes (0: uploads are off).
    #[serde(default)]
    pub upload_limit: u64,
}

/// Every error of the JSON API: `{"status":"error","code","message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `error`.
    pub status: String,
    /// A short machine-readable code (`not_found`, `bad_request`, `auth_failed`, ...).
    pub code: String,
    /// What went wrong, for a person.
    pub message: String,
    /// The book the error is about, when it names one (409 `duplicate`: the book that
    /// already holds the uploaded content).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub book: Option<i64>,
}

impl ErrorBody {
    /// An error body with `code` and `message`.
    pub fn new(code: &str, message: &str) -> Self {
        Self {
            status: "error".into(),
            code: code.to_owned(),
            message: message.to_owned(),
            book: None,
        }
    }
}

/// A kosync error, koreader-sync-server's `{"code","message"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KoErrorBody {
    /// 2000..=2005.
    pub code: u32,
    /// The reference server's text.
    pub message: String,
}

/// kosync `GET /users/auth`: `{"authorized":"OK"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KoAuthorized {
    /// `OK`.
    pub authorized: String,
}

/// kosync `GET /healthcheck`: `{"state":"OK"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KoHealth {
    /// `OK`.
    pub state: String,
}

/// A position as kosync's `GET /syncs/progress/DOC` returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KoProgress {
    /// 0.0..=1.0.
    pub percentage: f64,
    /// The client's position string, byte for byte.
    pub progress: String,
    /// Device name.
    pub device: String,
    /// Device id, if the client sent one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Server time of the write, seconds since the epoch.
    pub timestamp: i64,
    /// The document id.
    pub document: String,
}

/// kosync `GET /syncs/progress/DOC`: the position, or `{}` when there is none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum KoProgressReply {
    /// A position is stored.
    Saved(KoProgress),
    /// Nothing stored: `{}`.
    None {},
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use serde_json::json;

    fn roundtrip<T: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(v: T) {
        let text = serde_json::to_string(&v).unwrap();
        assert_eq!(serde_json::from_str::<T>(&text).unwrap(), v, "{text}");
    }

    fn book() -> BookJson {
        BookJson {
            id: 3,
            path: "a/b.pdf".into(),
            title: "B".into(),
            author: None,
            format: Format::Pdf,
            size: 10,
            pages: Some(2),
            error: None,
            encoding: None,
            md5: "m".into(),
            partial_md5: "p".into(),
            blake3: "h".into(),
            mtime: 1,
            cover_file: None,
            language: None,
            series: None,
            series_index: None,
            description: None,
            added: 5,
            tags: vec!["sf".into()],
            last_read: None,
            shelves: Some(vec![1]),
            cover_url: "/api/books/3/cover".into(),
            thumb_url: "/api/books/3/cover?w=200".into(),
            file_url: "/api/books/3/file".into(),
        }
    }

    #[test]
    fn every_body_roundtrips() {
        roundtrip(book());
        roundtrip(BookList {
            total: 1,
            generation: 4,
            page: 1,
            per_page: 50,
            books: vec![book()],
        });
        roundtrip(BookEdit {
            title: Some("T".into()),
            authors: Some(vec!["A".into()]),
            series: Some(String::new()),
            series_index: None,
            tags: Some(vec![]),
        });
        roundtrip(ShelfList {
            shelves: vec![Shelf {
                id: 1,
                name: "Later".into(),
                books: 2,
            }],
        });
        roundtrip(NewShelf { name: "x".into() });
        roundtrip(TxtPage {
            page: 1,
            pages: 2,
            page_chars: 3000,
            text: "hi".into(),
        });
        roundtrip(Toc {
            title: "T".into(),
            chapters: 2,
            entries: vec![TocItem {
                label: "One".into(),
                chapter: Some(1),
                fragment: None,
                level: 0,
            }],
        });
        roundtrip(Chapter {
            chapter: 2,
            chapters: 2,
            title: None,
            path: "c2.xhtml".into(),
            html: "<p>x</p>".into(),
            styles: vec![],
            prev: Some(1),
            next: None,
            percentage: 0.5,
        });
        roundtrip(PdfText {
            page: 1,
            pages: None,
            text: "t".into(),
        });
        roundtrip(ProgressReply::None {});
        roundtrip(ProgressReply::Saved(SavedProgress {
            page: Some(2),
            progress: "2".into(),
            percentage: 0.5,
            device: "sockit-web".into(),
            timestamp: 9,
        }));
        roundtrip(PutProgress {
            page: 2,
            percentage: Some(0.25),
            device: None,
        });
        roundtrip(ProgressStored {
            document: "d".into(),
            timestamp: 9,
        });
        roundtrip(Credentials {
            username: "u".into(),
            password: "p".into(),
        });
        roundtrip(UserReply {
            username: "u".into(),
        });
        roundtrip(StatusReply::ok());
        roundtrip(Me {
            username: None,
            auth_required: true,
            registration: false,
            admin: true,
            upload_limit: 1 << 20,
        });
        roundtrip(ErrorBody::new("not_found", "no book 3"));
        roundtrip(KoErrorBody {
            code: 2001,
            message: "Unauthorized".into(),
        });
        roundtrip(KoAuthorized {
            authorized: "OK".into(),
        });
        roundtrip(KoHealth { state: "OK".into() });
        roundtrip(KoProgressReply::None {});
        roundtrip(KoProgressReply::Saved(KoProgress {
            percentage: 0.3125,
            progress: "/body/DocFragment[3]".into(),
            device: "kobo".into(),
            device_id: Some("ABC123".into()),
            timestamp: 9,
            document: "d".into(),
        }));
    }

    fn v<T: Serialize>(body: &T) -> serde_json::Value {
        serde_json::to_value(body).unwrap()
    }

    /// The shapes the handlers sent when they were built with `json!`.
    #[test]
    fn bodies_keep_their_shape() {
        assert_eq!(v(&ProgressReply::None {}), json!({}));
        assert_eq!(v(&KoProgressReply::None {}), json!({}));
        assert_eq!(
            v(&ProgressReply::Saved(SavedProgress {
                page: None,
                progress: "x".into(),
                percentage: 0.5,
                device: "d".into(),
                timestamp: 1,
            })),
            json!({"page": null, "progress": "x", "percentage": 0.5, "device": "d", "timestamp": 1})
        );
        assert_eq!(
            v(&KoProgressReply::Saved(KoProgress {
                percentage: 0.5,
                progress: "x".into(),
                device: "d".into(),
                device_id: None,
                timestamp: 1,
                document: "doc".into(),
            })),
            json!({"percentage": 0.5, "progress": "x", "device": "d", "timestamp": 1, "document": "doc"})
        );
        assert_eq!(
            v(&ErrorBody::new("bad_request", "m")),
            json!({"status": "error", "code": "bad_request", "message": "m"})
        );
        assert_eq!(
            v(&PutProgress {
                page: 2,
                percentage: None,
                device: Some("sockit-read".into()),
            }),
            json!({"page": 2, "device": "sockit-read"})
        );
        assert_eq!(
            v(&Me {
                username: None,
                auth_required: false,
                registration: true,
                admin: false,
                upload_limit: 0,
            }),
            json!({"username": null, "auth_required": false, "registration": true,
                   "admin": false, "upload_limit": 0})
        );
        let b = v(&book());
        assert_eq!(b["author"], serde_json::Value::Null);
        assert_eq!(b["format"], "pdf");
        assert_eq!(
            v(&TxtPage {
                page: 1,
                pages: 2,
                page_chars: 3000,
                text: "hi".into(),
            }),
            json!({"page": 1, "pages": 2, "page_chars": 3000, "text": "hi"})
        );
        assert_eq!(b["file_url"], "/api/books/3/file");
    }

    /// A positions body from `GET /api/books/ID/progress` reads back whatever it holds.
    #[test]
    fn progress_reply_reads_both_shapes() {
        let r: ProgressReply = serde_json::from_str("{}").unwrap();
        assert!(r.saved().is_none());
        let r: ProgressReply = serde_json::from_str(
            r#"{"page":3,"progress":"3","percentage":0.3,"device":"kobo","timestamp":5}"#,
        )
        .unwrap();
        assert_eq!(r.saved().and_then(|p| p.page), Some(3));
    }
}

/// `GET /api/search?q=&limit=&offset=`: sections of books whose text matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchResults {
    /// The query as asked.
    pub query: String,
    /// Matching sections in all.
    pub total: usize,
    /// Index of the first hit of this page.
    pub offset: usize,
    /// Whether catalog changes are still being indexed (results may be incomplete).
    pub indexing: bool,
    /// This page of hits, best first.
    pub hits: Vec<SearchHit>,
}

/// One matching section of a book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchHit {
    /// The book's id.
    pub book: i64,
    /// Its title.
    pub title: String,
    /// Its authors (`, `-separated), when known.
    #[serde(default)]
    pub author: Option<String>,
    /// Its format.
    pub format: Format,
    /// `chapter` (EPUB) or `page` (TXT, PDF).
    pub unit: String,
    /// The chapter or page, 1-based.
    pub location: u64,
    /// Text around the match, HTML-escaped, matches in `<mark>…</mark>`.
    pub snippet: String,
}
