//! OPDS 1.2 catalog (<https://specs.opds.io/opds-1.2>) with OpenSearch and OPDS-PSE 1.2
//! page streaming (<https://anansi-project.github.io/docs/opds-pse/specs/v1.2>), written
//! with quick-xml.
//!
//! ```text
//! /opds                  navigation feed: All books, Recently added
//! /opds/all?page=N       acquisition feed, 50 entries a page (first/prev/next/last links)
//! /opds/recent           the 50 most recently changed books
//! /opds/search?q=TEXT    acquisition feed of the books whose title, authors, series or file
//!                        name hold TEXT, then those whose text does (page or chapter and a
//!                        snippet in the entry); /opds/opensearch.xml describes it
//! /opds/shelves          navigation feed: the caller's shelves
//! /opds/shelf/ID?page=N  acquisition feed of one of the caller's shelves
//! /opds/pse/ID/P?width=W page P (0-based) of a PDF as JPEG, at most W pixels wide
//! ```
//! The same catalog as OPDS 2.0 JSON is [`super::opds2`] (`/opds/v2`), linked from the
//! root feed as `alternate`.
//!
//! When the library needs a login (see [`crate::http::guard`]), every OPDS request needs
//! HTTP Basic auth (the account's user name and password; a `401` carries the Basic
//! challenge so OPDS readers prompt).

use std::collections::HashMap;
use std::io;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use quick_xml::events::{BytesDecl, BytesText, Event};
use quick_xml::Writer;

use crate::browse::{self, ListQuery};
use crate::catalog::{Book, Format};
use crate::error::ReaderError;
use crate::http::{api, cached_bytes, ApiError, ApiResult, AppState, Caller};
use crate::library::ImageFormat;
use crate::search::books::TextMatch;
use axum::Extension;

/// Entries per acquisition feed page.
pub const PAGE_SIZE: usize = 50;
/// Navigation feed media type.
pub const NAV: &str = "application/atom+xml;profile=opds-catalog;kind=navigation";
/// Acquisition feed media type.
pub const ACQ: &str = "application/atom+xml;profile=opds-catalog;kind=acquisition";
/// The PSE namespace.
pub const PSE_NS: &str = "http://vaemendis.net/opds-pse/ns";
/// Page width used when a PSE client leaves `{maxWidth}` unfilled.
const PSE_DEFAULT_WIDTH: u32 = 1200;

/// The OPDS routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/opds", get(root))
        .route("/opds/all", get(all))
        .route("/opds/recent", get(recent))
        .route("/opds/search", get(search))
        .route("/opds/shelves", get(shelves))
        .route("/opds/shelf/{id}", get(shelf))
        .route("/opds/opensearch.xml", get(opensearch))
        .route("/opds/pse/{id}/{page}", get(pse_page))
}

fn xml(mime: &'static str, body: Vec<u8>) -> Response {
    let mut r = (StatusCode::OK, body).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(mime));
    r
}

type W = Writer<Vec<u8>>;

fn link(w: &mut W, rel: &str, href: &str, ty: &str) -> io::Result<()> {
    w.create_element("link")
        .with_attributes([("rel", rel), ("href", href), ("type", ty)])
        .write_empty()?;
    Ok(())
}

fn text(w: &mut W, name: &str, value: &str) -> io::Result<()> {
    w.create_element(name)
        .write_text_content(BytesText::new(value))?;
    Ok(())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(crate) fn iso(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Writes a feed: the header links, then `body`.
fn feed(
    id: &str,
    title: &str,
    self_href: &str,
    kind: &str,
    links: &[(&str, String, &str)],
    body: impl FnOnce(&mut W) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
    w.create_element("feed")
        .with_attributes([
            ("xmlns", "http://www.w3.org/2005/Atom"),
            ("xmlns:dc", "http://purl.org/dc/terms/"),
            ("xmlns:opds", "http://opds-spec.org/2010/catalog"),
            ("xmlns:opensearch", "http://a9.com/-/spec/opensearch/1.1/"),
            ("xmlns:pse", PSE_NS),
        ])
        .write_inner_content(|w| {
            text(w, "id", id)?;
            text(w, "title", title)?;
            text(w, "updated", &now())?;
            w.create_element("author")
                .write_inner_content(|w| text(w, "name", "sockit"))?;
            link(w, "self", self_href, kind)?;
            link(w, "start", "/opds", NAV)?;
            link(
                w,
                "search",
                "/opds/opensearch.xml",
                "application/opensearchdescription+xml",
            )?;
            for (rel, href, ty) in links {
                link(w, rel, href, ty)?;
            }
            body(w)
        })?;
    Ok(w.into_inner())
}

fn book_entry(w: &mut W, b: &Book, found: Option<&TextMatch>) -> io::Result<()> {
    w.create_element("entry").write_inner_content(|w| {
        text(w, "title", &b.title)?;
        text(w, "id", &format!("urn:sockit:book:{}", b.blake3))?;
        text(w, "updated", &iso(b.mtime))?;
        if let Some(a) = &b.author {
            w.create_element("author")
                .write_inner_content(|w| text(w, "name", a))?;
        }
        text(w, "dc:format", &b.media_type())?;
        if let Some(l) = &b.language {
            text(w, "dc:language", l)?;
        }
        if let Some(d) = &b.description {
            w.create_element("summary")
                .with_attribute(("type", "text"))
                .write_text_content(BytesText::new(d))?;
        }
        let summary = match (b.format, b.pages, &b.error) {
            (_, _, Some(e)) => format!("Unreadable: {e}"),
            (Format::Pdf, Some(p), _) => format!("PDF, {p} pages, {} bytes", b.size),
            (Format::Txt, Some(p), _) => format!("Text, {p} pages, {} bytes", b.size),
            (Format::Epub, Some(p), _) => format!("EPUB, {p} chapters, {} bytes", b.size),
            _ => format!("{} bytes", b.size),
        };
        let summary = match found {
            Some(m) => format!(
                "{summary}\nFound on {} {}: {}",
                TextMatch::unit(b.format),
                m.location,
                m.plain_snippet()
            ),
            None => summary,
        };
        w.create_element("content")
            .with_attribute(("type", "text"))
            .write_text_content(BytesText::new(&summary))?;
        let id = b.id;
        link(
            w,
            "http://opds-spec.org/image",
            &format!("/api/books/{id}/cover"),
            "image/jpeg",
        )?;
        link(
            w,
            "http://opds-spec.org/image/thumbnail",
            &format!("/api/books/{id}/cover?w=200"),
            "image/jpeg",
        )?;
        link(
            w,
            "http://opds-spec.org/acquisition",
            &format!("/api/books/{id}/file"),
            &b.media_type(),
        )?;
        if let Some(m) = found {
            let href = format!("/#/read/{id}/{}", m.location);
            let title = format!(
                "{} {} in the web reader",
                TextMatch::unit(b.format),
                m.location
            );
            w.create_element("link")
                .with_attributes([
                    ("rel", "alternate"),
                    ("type", "text/html"),
                    ("href", href.as_str()),
                    ("title", title.as_str()),
                ])
                .write_empty()?;
        }
        if let (Format::Pdf, Some(pages), None) = (b.format, b.pages, &b.error) {
            let count = pages.to_string();
            let href = format!("/opds/pse/{id}/{{pageNumber}}?width={{maxWidth}}");
            w.create_element("link")
                .with_attributes([
                    ("rel", "http://vaemendis.net/opds-pse/stream"),
                    ("type", "image/jpeg"),
                    ("href", href.as_str()),
                    ("pse:count", count.as_str()),
                ])
                .write_empty()?;
        }
        Ok(())
    })?;
    Ok(())
}

pub(crate) fn page_param(q: &HashMap<String, String>) -> ApiResult<usize> {
    match q.get("page") {
        None => Ok(1),
        Some(p) => {
            let n: usize = api::number("page", p)?;
            if n == 0 {
                return Err(ApiError(ReaderError::BadRequest(
                    "feed pages start at 1".into(),
                )));
            }
            Ok(n)
        }
    }
}

/// The entries of one feed page: each book with where its text matched (searches).
pub(crate) type Entries = Vec<(Book, Option<TextMatch>)>;

/// Page `page` of a listing, by title, from the catalog (only that page is loaded).
pub(crate) fn listed(
    s: &AppState,
    user: &str,
    page: usize,
    mut q: ListQuery,
) -> ApiResult<(usize, Entries)> {
    q.page = page as u64;
    q.per_page = PAGE_SIZE as u64;
    let found = s.lib.with_db(|c| browse::list(c, user, &q))?;
    let total = usize::try_from(found.total).unwrap_or(usize::MAX);
    Ok((
        total,
        found.books.into_iter().map(|(b, _)| (b, None)).collect(),
    ))
}

/// Page `page` of the books matching `term` ([`crate::search::books`]).
pub(crate) async fn searched(s: &AppState, term: &str, page: usize) -> ApiResult<(usize, Entries)> {
    let found = s
        .lib
        .search_books(term, page as u64, PAGE_SIZE as u64)
        .await?;
    Ok((
        found.total,
        found.books.into_iter().map(|m| (m.book, m.text)).collect(),
    ))
}

/// The 50 most recently changed books.
pub(crate) fn recent_books(s: &AppState) -> ApiResult<(usize, Entries)> {
    let mut books = s.lib.books(None)?;
    books.sort_by_key(|b| std::cmp::Reverse(b.mtime));
    books.truncate(PAGE_SIZE);
    Ok((books.len(), books.into_iter().map(|b| (b, None)).collect()))
}

/// `s` percent-encoded for a query string (unreserved characters kept).
pub(crate) fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The paging links of page `page` of a feed of `total` books under `base` (OPDS 1.2 and
/// 2.0 alike).
pub(crate) struct PageLinks {
    /// This page's address.
    pub(crate) this: String,
    /// `first`, `last`, then `previous` and `next` where they exist.
    pub(crate) nav: Vec<(&'static str, String)>,
}

impl PageLinks {
    /// The links, or a 404-style error for a page past the last.
    pub(crate) fn new(base: &str, total: usize, page: usize) -> ApiResult<PageLinks> {
        let last = total.div_ceil(PAGE_SIZE).max(1);
        if page > last {
            return Err(ApiError(ReaderError::PageOutOfRange {
                page: page as u64,
                pages: last as u64,
            }));
        }
        let sep = if base.contains('?') { '&' } else { '?' };
        let href = |p: usize| format!("{base}{sep}page={p}");
        let mut nav = vec![("first", href(1)), ("last", href(last))];
        if page > 1 {
            nav.push(("previous", href(page - 1)));
        }
        if page < last {
            nav.push(("next", href(page + 1)));
        }
        Ok(PageLinks {
            this: href(page),
            nav,
        })
    }
}

/// Page `page` of an acquisition feed: `total` books in all, `books` on this page.
fn acquisition(
    id: &str,
    title: &str,
    base: &str,
    (total, books): (usize, Entries),
    page: usize,
) -> ApiResult<Response> {
    let paged = PageLinks::new(base, total, page)?;
    let links: Vec<_> = paged
        .nav
        .into_iter()
        .map(|(rel, href)| (rel, href, ACQ))
        .collect();
    let body = feed(id, title, &paged.this, ACQ, &links, |w| {
        text(w, "opensearch:totalResults", &total.to_string())?;
        text(w, "opensearch:itemsPerPage", &PAGE_SIZE.to_string())?;
        text(
            w,
            "opensearch:startIndex",
            &((page - 1) * PAGE_SIZE + 1).to_string(),
        )?;
        for (b, found) in &books {
            book_entry(w, b, found.as_ref())?;
        }
        Ok(())
    })
    .map_err(|e| ApiError(ReaderError::io("opds feed", e)))?;
    Ok(xml(ACQ, body))
}

async fn root(State(s): State<AppState>) -> ApiResult<Response> {
    let (total, _) = listed(&s, "", 1, ListQuery::default())?;
    let body = feed(
        "urn:sockit:opds:root",
        "sockit library",
        "/opds",
        NAV,
        &[("alternate", "/opds/v2".to_owned(), super::opds2::MIME)],
        |w| {
            for (id, title, href, rel, content) in [
                (
                    "urn:sockit:opds:all",
                    "All books",
                    "/opds/all",
                    "subsection",
                    format!("{total} books, by title"),
                ),
                (
                    "urn:sockit:opds:recent",
                    "Recently added",
                    "/opds/recent",
                    "http://opds-spec.org/sort/new",
                    "The newest books first".to_owned(),
                ),
                (
                    "urn:sockit:opds:shelves",
                    "Shelves",
                    "/opds/shelves",
                    "subsection",
                    "Your shelves".to_owned(),
                ),
            ] {
                w.create_element("entry").write_inner_content(|w| {
                    text(w, "title", title)?;
                    text(w, "id", id)?;
                    text(w, "updated", &now())?;
                    w.create_element("content")
                        .with_attribute(("type", "text"))
                        .write_text_content(BytesText::new(&content))?;
                    let kind = if href == "/opds/shelves" { NAV } else { ACQ };
                    link(w, rel, href, kind)
                })?;
            }
            Ok(())
        },
    )
    .map_err(|e| ApiError(ReaderError::io("opds feed", e)))?;
    Ok(xml(NAV, body))
}

async fn all(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = page_param(&q)?;
    acquisition(
        "urn:sockit:opds:all",
        "All books",
        "/opds/all",
        listed(&s, "", page, ListQuery::default())?,
        page,
    )
}

async fn recent(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = page_param(&q)?;
    acquisition(
        "urn:sockit:opds:recent",
        "Recently added",
        "/opds/recent",
        recent_books(&s)?,
        page,
    )
}

async fn search(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = page_param(&q)?;
    let term = q.get("q").cloned().unwrap_or_default();
    let found = searched(&s, &term, page).await?;
    let encoded = percent_encode(&term);
    acquisition(
        "urn:sockit:opds:search",
        &format!("Search: {term}"),
        &format!("/opds/search?q={encoded}"),
        found,
        page,
    )
}

pub(crate) fn who(c: Caller) -> String {
    c.0.unwrap_or_default()
}

async fn shelves(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Response> {
    let list = s.lib.with_db(|db| browse::shelves(db, &who(c)))?;
    let body = feed(
        "urn:sockit:opds:shelves",
        "Shelves",
        "/opds/shelves",
        NAV,
        &[],
        |w| {
            for sh in &list {
                w.create_element("entry").write_inner_content(|w| {
                    text(w, "title", &sh.name)?;
                    text(w, "id", &format!("urn:sockit:opds:shelf:{}", sh.id))?;
                    text(w, "updated", &now())?;
                    w.create_element("content")
                        .with_attribute(("type", "text"))
                        .write_text_content(BytesText::new(&format!("{} books", sh.books)))?;
                    link(w, "subsection", &format!("/opds/shelf/{}", sh.id), ACQ)
                })?;
            }
            Ok(())
        },
    )
    .map_err(|e| ApiError(ReaderError::io("opds feed", e)))?;
    Ok(xml(NAV, body))
}

async fn shelf(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = page_param(&q)?;
    let id: i64 = api::number("shelf id", &id)?;
    let user = who(c);
    let Some(sh) = s.lib.with_db(|db| browse::shelf(db, &user, id))? else {
        return Err(ApiError(ReaderError::NotFound(format!("shelf {id}"))));
    };
    let found = listed(
        &s,
        &user,
        page,
        ListQuery {
            shelf: Some(id),
            ..ListQuery::default()
        },
    )?;
    acquisition(
        &format!("urn:sockit:opds:shelf:{id}"),
        &sh.name,
        &format!("/opds/shelf/{id}"),
        found,
        page,
    )
}

async fn opensearch() -> ApiResult<Response> {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 1);
    let r: io::Result<()> = (|| {
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))?;
        w.create_element("OpenSearchDescription")
            .with_attribute(("xmlns", "http://a9.com/-/spec/opensearch/1.1/"))
            .write_inner_content(|w| {
                text(w, "ShortName", "sockit")?;
                text(
                    w,
                    "Description",
                    "Search the sockit library: titles, authors, series, file names and the books' text",
                )?;
                text(w, "InputEncoding", "UTF-8")?;
                text(w, "OutputEncoding", "UTF-8")?;
                w.create_element("Url")
                    .with_attributes([("type", ACQ), ("template", "/opds/search?q={searchTerms}")])
                    .write_empty()?;
                w.create_element("Url")
                    .with_attributes([
                        ("type", super::opds2::MIME),
                        ("template", "/opds/v2/search?query={searchTerms}"),
                    ])
                    .write_empty()?;
                Ok(())
            })?;
        Ok(())
    })();
    r.map_err(|e| ApiError(ReaderError::io("opensearch", e)))?;
    Ok(xml("application/opensearchdescription+xml", w.into_inner()))
}

async fn pse_page(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path((id, page)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let book = s.lib.book(api::number("book id", &id)?)?;
    let zero_based: u64 = api::number("pageNumber", &page)?;
    let width = match q.get("width").map(String::as_str) {
        None | Some("{maxWidth}") | Some("") => PSE_DEFAULT_WIDTH,
        Some(w) => api::number::<u32>("maxWidth", w)?.min(crate::pdf::MAX_WIDTH),
    };
    let bytes = s
        .lib
        .pdf_page(
            &book,
            zero_based.saturating_add(1),
            width,
            ImageFormat::Jpeg,
        )
        .await?;
    Ok(cached_bytes(&headers, "image/jpeg", bytes))
}
