//! OPDS 2.0 (<https://drafts.opds.io/opds-2.0>): the OPDS 1.2 catalog of [`super::opds`]
//! again as JSON (`application/opds+json`), for Thorium, Readium-based apps and other
//! OPDS 2 clients. The feeds are built from the same catalog queries and the same book
//! search as their 1.2 twins.
//!
//! ```text
//! /opds/v2                      navigation: All books, Recently added, Shelves; the search template
//! /opds/v2/all?page=N           publications, 50 a page (first/previous/next/last links)
//! /opds/v2/recent               the 50 most recently changed books
//! /opds/v2/search?query=TEXT    the books whose title, authors, series or file name hold TEXT,
//!                               then those whose text does (`q=` is accepted too); the
//!                               template is `/opds/v2/search{?query}`
//! /opds/v2/shelves              navigation: the caller's shelves
//! /opds/v2/shelf/ID?page=N      publications of one of them
//! /opds/v2/books/ID             one publication (application/opds-publication+json)
//! ```
//! Every publication has an acquisition link (the file), a cover and a thumbnail; a
//! search hit adds an `alternate` link to the page or chapter in the web UI, titled with
//! the snippet.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::{Deserialize, Serialize};

use crate::browse::{self, ListQuery};
use crate::catalog::{Book, Format};
use crate::error::ReaderError;
use crate::http::opds::{self, Entries, PAGE_SIZE};
use crate::http::{api, ApiError, ApiResult, AppState, Caller};
use crate::search::books::TextMatch;

/// The media type of OPDS 2.0 feeds.
pub const MIME: &str = "application/opds+json";
/// The media type of one OPDS 2.0 publication.
pub const PUBLICATION_MIME: &str = "application/opds-publication+json";
/// The search link's URI template (RFC 6570).
pub const SEARCH_TEMPLATE: &str = "/opds/v2/search{?query}";

/// The OPDS 2.0 routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/opds/v2", get(root))
        .route("/opds/v2/all", get(all))
        .route("/opds/v2/recent", get(recent))
        .route("/opds/v2/search", get(search))
        .route("/opds/v2/shelves", get(shelves))
        .route("/opds/v2/shelf/{id}", get(shelf))
        .route("/opds/v2/books/{id}", get(publication))
}

/// An OPDS 2.0 feed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Feed {
    /// Title and paging.
    pub metadata: FeedMetadata,
    /// `self`, `start`, `search`, paging links.
    pub links: Vec<Link>,
    /// Navigation entries (navigation feeds; present even when empty, as a feed has at
    /// least one collection).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub navigation: Option<Vec<Link>>,
    /// Books (publication feeds; present even when empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publications: Option<Vec<Publication>>,
}

/// A feed's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedMetadata {
    /// The feed's title.
    pub title: String,
    /// Books on all pages.
    #[serde(
        rename = "numberOfItems",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_items: Option<usize>,
    /// Books per page.
    #[serde(
        rename = "itemsPerPage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub items_per_page: Option<usize>,
    /// This page (1-based).
    #[serde(
        rename = "currentPage",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub current_page: Option<usize>,
}

/// A link object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Link {
    /// The target (relative to the server).
    pub href: String,
    /// Its media type.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// The relation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rel: Option<String>,
    /// A title for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Whether `href` is a URI template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub templated: Option<bool>,
}

impl Link {
    fn new(rel: &str, href: impl Into<String>, ty: &str) -> Self {
        Self {
            href: href.into(),
            ty: Some(ty.to_owned()),
            rel: Some(rel.to_owned()),
            title: None,
            templated: None,
        }
    }

    fn titled(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }
}

/// A book.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    /// What is known about it.
    pub metadata: PublicationMetadata,
    /// Acquisition, `self`, and for search hits the web reader's page.
    pub links: Vec<Link>,
    /// Cover and thumbnail.
    pub images: Vec<Image>,
}

/// A book's metadata.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PublicationMetadata {
    /// `http://schema.org/Book`.
    #[serde(rename = "@type")]
    pub ty: String,
    /// `urn:sockit:book:BLAKE3`, as in OPDS 1.2.
    pub identifier: String,
    /// The title.
    pub title: String,
    /// The authors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub author: Vec<Contributor>,
    /// BCP 47 language, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// When the file last changed (RFC 3339).
    pub modified: String,
    /// The description (EPUB), or why the book cannot be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Pages (PDF only: TXT pages depend on the page size, EPUBs have chapters).
    #[serde(
        rename = "numberOfPages",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub number_of_pages: Option<u64>,
    /// Tags.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject: Vec<String>,
    /// The series, when the book is in one.
    #[serde(rename = "belongsTo", default, skip_serializing_if = "Option::is_none")]
    pub belongs_to: Option<BelongsTo>,
}

/// A person.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Contributor {
    /// The name.
    pub name: String,
}

/// Collections a book belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BelongsTo {
    /// Its series.
    pub series: Vec<SeriesRef>,
}

/// A series and the book's place in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesRef {
    /// The series' name.
    pub name: String,
    /// The book's number in it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub position: Option<f64>,
}

/// An image link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Image {
    /// Where it is.
    pub href: String,
    /// `image/jpeg`.
    #[serde(rename = "type")]
    pub ty: String,
    /// Its width in pixels, when fixed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub width: Option<u32>,
}

fn json<T: Serialize>(mime: &'static str, body: &T) -> ApiResult<Response> {
    let bytes = serde_json::to_vec(body)
        .map_err(|e| ApiError(ReaderError::Worker(format!("writing an OPDS feed: {e}"))))?;
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static(mime));
    Ok(r)
}

/// The links every feed carries besides `self`.
fn common_links(self_href: &str) -> Vec<Link> {
    let mut search = Link::new("search", SEARCH_TEMPLATE, MIME).titled("Search the library");
    search.templated = Some(true);
    vec![
        Link::new("self", self_href, MIME),
        Link::new("start", "/opds/v2", MIME),
        search,
        Link::new("alternate", "/opds", opds::NAV),
    ]
}

fn publication_of(b: &Book, found: Option<&TextMatch>) -> Publication {
    let id = b.id;
    let mut links = vec![
        Link::new(
            "http://opds-spec.org/acquisition",
            format!("/api/books/{id}/file"),
            &b.media_type(),
        ),
        Link::new("self", format!("/opds/v2/books/{id}"), PUBLICATION_MIME),
    ];
    if let Some(m) = found {
        let unit = TextMatch::unit(b.format);
        links.push(
            Link::new(
                "alternate",
                format!("/#/read/{id}/{}", m.location),
                "text/html",
            )
            .titled(format!("{unit} {}: {}", m.location, m.plain_snippet())),
        );
    }
    let authors = b
        .author
        .as_deref()
        .unwrap_or("")
        .split(", ")
        .filter(|a| !a.trim().is_empty())
        .map(|a| Contributor {
            name: a.trim().to_owned(),
        })
        .collect();
    Publication {
        metadata: PublicationMetadata {
            ty: "http://schema.org/Book".into(),
            identifier: format!("urn:sockit:book:{}", b.blake3),
            title: b.title.clone(),
            author: authors,
            language: b.language.clone(),
            modified: opds::iso(b.mtime),
            description: match &b.error {
                Some(e) => Some(format!("Unreadable: {e}")),
                None => b.description.clone(),
            },
            number_of_pages: if b.format == Format::Pdf {
                b.pages
            } else {
                None
            },
            subject: b.tags.clone(),
            belongs_to: b.series.as_ref().map(|name| BelongsTo {
                series: vec![SeriesRef {
                    name: name.clone(),
                    position: b.series_index,
                }],
            }),
        },
        links,
        images: vec![
            Image {
                href: format!("/api/books/{id}/cover"),
                ty: "image/jpeg".into(),
                width: None,
            },
            Image {
                href: format!("/api/books/{id}/cover?w=200"),
                ty: "image/jpeg".into(),
                width: Some(200),
            },
        ],
    }
}

/// Page `page` of a publications feed: `total` books in all, `entries` on this page.
fn publications(
    title: &str,
    base: &str,
    (total, entries): (usize, Entries),
    page: usize,
) -> ApiResult<Response> {
    let paged = super::opds::PageLinks::new(base, total, page)?;
    let mut links = common_links(&paged.this);
    links.extend(
        paged
            .nav
            .into_iter()
            .map(|(rel, href)| Link::new(rel, href, MIME)),
    );
    let feed = Feed {
        metadata: FeedMetadata {
            title: title.to_owned(),
            number_of_items: Some(total),
            items_per_page: Some(PAGE_SIZE),
            current_page: Some(page),
        },
        links,
        navigation: None,
        publications: Some(
            entries
                .iter()
                .map(|(b, found)| publication_of(b, found.as_ref()))
                .collect(),
        ),
    };
    json(MIME, &feed)
}

fn navigation(title: &str, self_href: &str, navigation: Vec<Link>) -> ApiResult<Response> {
    let feed = Feed {
        metadata: FeedMetadata {
            title: title.to_owned(),
            number_of_items: None,
            items_per_page: None,
            current_page: None,
        },
        links: common_links(self_href),
        navigation: Some(navigation),
        publications: None,
    };
    json(MIME, &feed)
}

async fn root(State(s): State<AppState>) -> ApiResult<Response> {
    let (total, _) = opds::listed(&s, "", 1, ListQuery::default())?;
    navigation(
        "sockit library",
        "/opds/v2",
        vec![
            Link::new("subsection", "/opds/v2/all", MIME)
                .titled(format!("All books ({total}, by title)")),
            Link::new("http://opds-spec.org/sort/new", "/opds/v2/recent", MIME)
                .titled("Recently added"),
            Link::new("subsection", "/opds/v2/shelves", MIME).titled("Shelves"),
        ],
    )
}

async fn all(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = opds::page_param(&q)?;
    publications(
        "All books",
        "/opds/v2/all",
        opds::listed(&s, "", page, ListQuery::default())?,
        page,
    )
}

async fn recent(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = opds::page_param(&q)?;
    publications(
        "Recently added",
        "/opds/v2/recent",
        opds::recent_books(&s)?,
        page,
    )
}

async fn search(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = opds::page_param(&q)?;
    let term = q
        .get("query")
        .or_else(|| q.get("q"))
        .cloned()
        .unwrap_or_default();
    let found = opds::searched(&s, &term, page).await?;
    publications(
        &format!("Search: {term}"),
        &format!("/opds/v2/search?query={}", opds::percent_encode(&term)),
        found,
        page,
    )
}

async fn shelves(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Response> {
    let list = s.lib.with_db(|db| browse::shelves(db, &opds::who(c)))?;
    navigation(
        "Shelves",
        "/opds/v2/shelves",
        list.iter()
            .map(|sh| {
                Link::new("subsection", format!("/opds/v2/shelf/{}", sh.id), MIME)
                    .titled(format!("{} ({} books)", sh.name, sh.books))
            })
            .collect(),
    )
}

async fn shelf(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let page = opds::page_param(&q)?;
    let id: i64 = api::number("shelf id", &id)?;
    let user = opds::who(c);
    let Some(sh) = s.lib.with_db(|db| browse::shelf(db, &user, id))? else {
        return Err(ApiError(ReaderError::NotFound(format!("shelf {id}"))));
    };
    let found = opds::listed(
        &s,
        &user,
        page,
        ListQuery {
            shelf: Some(id),
            ..ListQuery::default()
        },
    )?;
    publications(&sh.name, &format!("/opds/v2/shelf/{id}"), found, page)
}

async fn publication(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Response> {
    let b = s.lib.book(api::number("book id", &id)?)?;
    json(PUBLICATION_MIME, &publication_of(&b, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_metadata_have_the_spec_names() {
        let mut search = Link::new("search", SEARCH_TEMPLATE, MIME);
        search.templated = Some(true);
        let v = serde_json::to_value(&Feed {
            metadata: FeedMetadata {
                title: "t".into(),
                number_of_items: Some(3),
                items_per_page: Some(50),
                current_page: Some(1),
            },
            links: vec![search],
            navigation: None,
            publications: Some(vec![]),
        })
        .unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "metadata": {"title": "t", "numberOfItems": 3, "itemsPerPage": 50, "currentPage": 1},
                "links": [{"href": "/opds/v2/search{?query}", "type": "application/opds+json",
                           "rel": "search", "templated": true}],
                "publications": []
            })
        );
    }
}
