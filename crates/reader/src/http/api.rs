//! The JSON API behind the web UI and `sockit read`.
//!
//! ```text
//! GET  /api/books?sort=title|author|added|read|series&order=asc|desc&format=&author=&series=
//!      &tag=&shelf=&q=&page=&per_page=   {"total", "generation", "page", "per_page", "books":[book...]}
//! GET  /api/continue                     the caller's books in progress, most recent first
//! GET  /api/shelves, POST /api/shelves {"name"}           the caller's shelves / a new one
//! PUT|DELETE /api/shelves/ID/books/BOOK  puts a book on a shelf / takes it off
//! DELETE /api/shelves/ID                 deletes a shelf (not its books)
//! POST /api/books?name=FILE              the file as the body (signed-in accounts) → 201 book
//! GET  /api/books/ID                     book
//! PATCH /api/books/ID                    {"title"?,"authors"?,"series"?,"series_index"?,"tags"?}
//!                                        (signed-in accounts; stored in the catalog only)
//! DELETE /api/books/ID                   administrators: the file, its row, its index entries
//! GET  /api/books/ID/file?utf8=1        the file (ETag, Range); `utf8=1` transcodes a TXT
//!                                        book to UTF-8 (`text/plain; charset=utf-8`)
//! GET  /api/books/ID/cover?w=PX          JPEG cover (w default 400)
//! GET  /api/books/ID/page/N?width=PX&format=png|jpeg   PDF page N (1-based) as an image
//! GET  /api/books/ID/text/N?chars=C      TXT page N: {"page","pages","page_chars","text"}
//! GET  /api/books/ID/pdftext/N           PDF page N's text: {"page","pages","text"}
//! GET  /api/books/ID/toc                 EPUB table of contents: {"title","chapters","entries":[…]}
//! GET  /api/books/ID/chapter/N           EPUB chapter N (1-based), sanitized:
//!                                        {"chapter","chapters","title","path","html","styles","prev","next","percentage"}
//! GET  /api/books/ID/epub/PATH           an image, style sheet (sanitized) or font inside an EPUB
//! GET  /api/books/ID/progress            the caller's position: {} or {"page","percentage","progress","timestamp"}
//! PUT  /api/books/ID/progress            {"page", "percentage"?, "device"?}
//! POST /api/login, /api/register         {"username","password"} → {"username"} + session cookie
//! POST /api/logout                       ends the session
//! GET  /api/me                           {"username" (or null), "auth_required", "registration",
//!                                        "admin", "upload_limit"}
//! GET  /books/PATH                       a file of the books root by name (course layout)
//! GET  /api/search?q=&limit=&offset=     full-text hits: {"query","total","offset","indexing",
//!                                        "hits":[{"book","title","format","unit","location","snippet"}]}
//! ```
//! The bodies are the types of [`crate::http::api_types`].
//! The caller is the account of the session cookie, of `x-auth-user`/`x-auth-key` or of
//! HTTP Basic (see [`crate::http::guard`]); on a library open to anonymous readers,
//! positions without credentials are kept for an anonymous reader.

use std::collections::HashMap;

use crate::accounts::{self, Progress};
use crate::browse::{self, Edit, ListQuery};
use crate::catalog::Book;
use crate::error::ReaderError;
use crate::http::api_types::{
    BookEdit, BookList, BooksQuery, Chapter, ContinueItem, ContinueList, Me, NewShelf, PdfText,
    ProgressReply, ProgressStored, SavedProgress, Shelf, ShelfList, StatusReply, Toc, TxtPage,
    UserReply,
};
pub use crate::http::api_types::{BookJson, Credentials, PutProgress};
use crate::http::{
    self, cached_bytes, download, json_error, ApiError, ApiResult, AppState, AuthFailure, Caller,
    ClientIp, RegisterError,
};
use crate::library::ImageFormat;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};

/// Default rendered page width for the web UI.
pub const DEFAULT_WIDTH: u32 = 1000;
/// The progress owner for requests without credentials.
const ANONYMOUS: &str = "";

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/books", get(list).post(super::upload::upload))
        .route(
            "/api/books/{id}",
            get(one).patch(edit).delete(super::upload::delete),
        )
        .route("/api/continue", get(continue_reading))
        .route("/api/shelves", get(shelves).post(create_shelf))
        .route("/api/shelves/{id}", axum::routing::delete(delete_shelf))
        .route(
            "/api/shelves/{id}/books/{book}",
            put(shelve).delete(unshelve),
        )
        .route("/api/books/{id}/file", get(file))
        .route("/api/books/{id}/cover", get(cover))
        .route("/api/books/{id}/page/{n}", get(page_image))
        .route("/api/books/{id}/text/{n}", get(text_page))
        .route("/api/books/{id}/pdftext/{n}", get(pdf_text))
        .route("/api/books/{id}/toc", get(epub_toc))
        .route("/api/books/{id}/chapter/{n}", get(epub_chapter))
        .route("/api/books/{id}/epub/{*path}", get(epub_resource))
        .route(
            "/api/books/{id}/progress",
            get(get_progress).put(put_progress),
        )
        .route("/api/login", post(login))
        .route("/api/register", post(register))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/api/search", get(search))
        .route("/books/{*path}", get(by_path))
}

/// Parses a path or query number.
pub fn number<T: std::str::FromStr>(what: &str, s: &str) -> Result<T, ApiError> {
    s.trim().parse().map_err(|_| {
        ApiError(ReaderError::BadRequest(format!(
            "{what} `{}` is not a valid number",
            s.chars().take(40).collect::<String>()
        )))
    })
}

fn book(state: &AppState, id: &str) -> ApiResult<Book> {
    Ok(state.lib.book(number("book id", id)?)?)
}

fn bad(message: impl Into<String>) -> ApiError {
    ApiError(ReaderError::BadRequest(message.into()))
}

/// Checks a listing query: page ≥ 1, per_page 1..=500, the shelf the caller's.
fn list_query(s: &AppState, user: &str, q: BooksQuery) -> ApiResult<ListQuery> {
    let page = q.page.map_or(1, |n| n.0);
    if page == 0 {
        return Err(bad("page 0: pages count from 1"));
    }
    let per_page = q.per_page.map_or(browse::DEFAULT_PER_PAGE, |n| n.0);
    if per_page == 0 || per_page > browse::MAX_PER_PAGE {
        return Err(bad(format!(
            "per_page {per_page}: use 1 to {}",
            browse::MAX_PER_PAGE
        )));
    }
    let shelf = q.shelf.map(|n| n.0);
    if let Some(id) = shelf {
        if s.lib.with_db(|c| browse::shelf(c, user, id))?.is_none() {
            return Err(ApiError(ReaderError::NotFound(format!("shelf {id}"))));
        }
    }
    Ok(ListQuery {
        sort: q.sort.unwrap_or_default(),
        order: q.order,
        format: q.format.map(|f| f.0),
        author: q.author,
        series: q.series,
        tag: q.tag,
        shelf,
        q: q.q,
        page,
        per_page,
    })
}

async fn list(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    q: Result<Query<BooksQuery>, QueryRejection>,
) -> ApiResult<Json<BookList>> {
    let Query(q) = q.map_err(|e| bad(query_error(&e)))?;
    let user = caller(c);
    let q = list_query(&s, &user, q)?;
    let page = s.lib.with_db(|c| browse::list(c, &user, &q))?;
    let books = page
        .books
        .into_iter()
        .map(|(b, read)| BookJson {
            last_read: read,
            ..BookJson::from(b)
        })
        .collect();
    Ok(Json(BookList {
        total: usize::try_from(page.total).unwrap_or(usize::MAX),
        generation: s.lib.generation(),
        page: q.page,
        per_page: q.per_page,
        books,
    }))
}

/// The message of a rejected query string, without axum's prefix.
fn query_error(e: &QueryRejection) -> String {
    let text = e.body_text();
    let text = text
        .strip_prefix("Failed to deserialize query string: ")
        .unwrap_or(&text);
    format!("query: {text}")
}

async fn one(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<BookJson>> {
    let b = book(&s, &id)?;
    let user = caller(c);
    let shelves = s.lib.with_db(|c| browse::shelves_of(c, &user, b.id))?;
    Ok(Json(BookJson {
        shelves: Some(shelves),
        ..b.into()
    }))
}

async fn edit(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
    body: Result<Json<BookEdit>, JsonRejection>,
) -> ApiResult<Json<BookJson>> {
    if c.0.is_none() {
        return Err(ApiError(ReaderError::LoginRequired(
            "sign in to edit a book's metadata".into(),
        )));
    }
    let id: i64 = number("book id", &id)?;
    let Json(body) = body.map_err(|e| bad(format!("body: {}", e.body_text())))?;
    if body.series_index.is_some() && body.series.is_none() {
        return Err(bad("series_index needs series"));
    }
    let e = Edit {
        title: body.title,
        authors: body.authors,
        series: body.series.map(|n| (Some(n), body.series_index)),
        tags: body.tags,
    }
    .validated()?;
    if !s.lib.with_db(|c| browse::edit(c, id, &e))? {
        return Err(ApiError(ReaderError::NotFound(format!("book {id}"))));
    }
    Ok(Json(s.lib.book(id)?.into()))
}

fn saved(p: crate::accounts::Progress) -> SavedProgress {
    SavedProgress {
        page: position_page(&p.progress),
        progress: p.progress,
        percentage: p.percentage,
        device: p.device,
        timestamp: p.timestamp,
    }
}

async fn continue_reading(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<ContinueList>> {
    let user = caller(c);
    let rows = s.lib.with_db(|c| browse::continue_reading(c, &user))?;
    Ok(Json(ContinueList {
        books: rows
            .into_iter()
            .map(|(b, p)| ContinueItem {
                book: b.into(),
                progress: saved(p),
            })
            .collect(),
    }))
}

async fn shelves(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<ShelfList>> {
    let user = caller(c);
    Ok(Json(ShelfList {
        shelves: s.lib.with_db(|c| browse::shelves(c, &user))?,
    }))
}

async fn create_shelf(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    body: Result<Json<NewShelf>, JsonRejection>,
) -> ApiResult<(StatusCode, Json<Shelf>)> {
    let user = caller(c);
    let Json(body) = body.map_err(|e| bad(format!("body: {}", e.body_text())))?;
    let shelf = s
        .lib
        .with_db(|c| browse::create_shelf(c, &user, &body.name))?;
    Ok((StatusCode::CREATED, Json(shelf)))
}

fn no_shelf(id: i64) -> ApiError {
    ApiError(ReaderError::NotFound(format!("shelf {id}")))
}

async fn delete_shelf(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<StatusReply>> {
    let user = caller(c);
    let id: i64 = number("shelf id", &id)?;
    if !s.lib.with_db(|c| browse::delete_shelf(c, &user, id))? {
        return Err(no_shelf(id));
    }
    Ok(Json(StatusReply::ok()))
}

async fn set_shelved(
    s: &AppState,
    c: Caller,
    id: &str,
    book: &str,
    on: bool,
) -> ApiResult<Json<Shelf>> {
    let user = caller(c);
    let id: i64 = number("shelf id", id)?;
    let book: i64 = number("book id", book)?;
    match s.lib.with_db(|c| browse::shelve(c, &user, id, book, on))? {
        Some(shelf) => Ok(Json(shelf)),
        None => Err(no_shelf(id)),
    }
}

async fn shelve(
    State(s): State<AppState>,
    Path((id, book)): Path<(String, String)>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Shelf>> {
    set_shelved(&s, c, &id, &book, true).await
}

async fn unshelve(
    State(s): State<AppState>,
    Path((id, book)): Path<(String, String)>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<Shelf>> {
    set_shelved(&s, c, &id, &book, false).await
}

/// Parses a yes/no query value (`?utf8=1`).
fn flag(what: &str, v: Option<&String>) -> ApiResult<bool> {
    match v.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
        None | Some("" | "0" | "false" | "no") => Ok(false),
        Some("1" | "true" | "yes") => Ok(true),
        Some(other) => Err(bad(format!("{what} `{}`: use 1 or 0", browse::clip(other)))),
    }
}

async fn file(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let b = book(&s, &id)?;
    let name = b.path.rsplit('/').next().unwrap_or(&b.path).to_owned();
    if flag("utf8", q.get("utf8"))? && b.format == crate::catalog::Format::Txt {
        let lib = s.lib.clone();
        let path = b.path.clone();
        let bytes = crate::library::blocking("transcoding a text book", move || {
            let raw = lib.read_book_file(&path, lib.config().max_txt_bytes)?;
            Ok(crate::txt::decode::to_utf8(&path, &raw)?.0)
        })
        .await?;
        return Ok(download::serve_bytes(
            &headers,
            bytes,
            "text/plain; charset=utf-8",
            &format!("\"{}-utf8\"", b.blake3),
            Some(&name),
        ));
    }
    let opened = s.lib.open_file(&b.path)?;
    let mime = b.media_type();
    download::serve_file(
        &headers,
        opened,
        &b.path,
        &mime,
        &format!("\"{}\"", b.blake3),
        Some(&name),
    )
    .await
}

async fn by_path(
    State(s): State<AppState>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let (file, size) = s.lib.open_file(&path)?;
    let lower = path.to_ascii_lowercase();
    let mime = if lower.ends_with(".pdf") {
        "application/pdf"
    } else if lower.ends_with(".txt") {
        "text/plain"
    } else if lower.ends_with(".epub") {
        crate::epub::MIME
    } else if lower.ends_with(".jpg") || lower.ends_with(".jpeg") {
        "image/jpeg"
    } else if lower.ends_with(".png") {
        "image/png"
    } else {
        "application/octet-stream"
    };
    let etag = match s.lib.book_by_path(&path) {
        Ok(b) => format!("\"{}\"", b.blake3),
        Err(_) => {
            let m = file.metadata().map_err(|e| ReaderError::io(&path, e))?;
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!(
                "\"{}\"",
                blake3::hash(format!("{path}|{size}|{mtime}").as_bytes()).to_hex()
            )
        }
    };
    download::serve_file(&headers, (file, size), &path, mime, &etag, None).await
}

async fn cover(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let b = book(&s, &id)?;
    let w = match q.get("w") {
        Some(w) => number::<u32>("width", w)?,
        None => 400,
    };
    let bytes = s.lib.cover(&b, w).await?;
    Ok(cached_bytes(&headers, "image/jpeg", bytes))
}

/// Parses `format=png|jpeg|jpg`.
pub fn image_format(q: &HashMap<String, String>) -> ApiResult<ImageFormat> {
    match q.get("format").map(|s| s.to_ascii_lowercase()).as_deref() {
        None | Some("png") => Ok(ImageFormat::Png),
        Some("jpeg" | "jpg") => Ok(ImageFormat::Jpeg),
        Some(other) => Err(ApiError(ReaderError::BadRequest(format!(
            "format `{other}`: use png or jpeg"
        )))),
    }
}

async fn page_image(
    State(s): State<AppState>,
    Path((id, n)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let b = book(&s, &id)?;
    let page: u64 = number("page", &n)?;
    let width = match q.get("width") {
        Some(w) => number("width", w)?,
        None => DEFAULT_WIDTH,
    };
    let fmt = image_format(&q)?;
    let bytes = s.lib.pdf_page(&b, page, width, fmt).await?;
    Ok(cached_bytes(&headers, fmt.mime(), bytes))
}

async fn text_page(
    State(s): State<AppState>,
    Path((id, n)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<TxtPage>> {
    let b = book(&s, &id)?;
    let page: u64 = number("page", &n)?;
    let chars = match q.get("chars") {
        Some(c) => number("chars", c)?,
        None => s.lib.config().txt_page_chars,
    };
    Ok(Json(s.lib.txt_page(&b, page, chars).await?))
}

async fn pdf_text(
    State(s): State<AppState>,
    Path((id, n)): Path<(String, String)>,
) -> ApiResult<Json<PdfText>> {
    let b = book(&s, &id)?;
    let page: u64 = number("page", &n)?;
    let text = s.lib.pdf_text(&b, page).await?;
    Ok(Json(PdfText {
        page,
        pages: b.pages,
        text,
    }))
}

async fn epub_toc(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<Toc>> {
    let b = book(&s, &id)?;
    Ok(Json(s.lib.epub_toc(&b).await?))
}

async fn epub_chapter(
    State(s): State<AppState>,
    Path((id, n)): Path<(String, String)>,
) -> ApiResult<Json<Chapter>> {
    let b = book(&s, &id)?;
    let n: u64 = number("chapter", &n)?;
    Ok(Json(s.lib.epub_chapter(&b, n).await?))
}

/// What every file from inside a book is served with: nothing it holds may run or fetch
/// (an SVG opened directly, say), and browsers must not guess another type.
const RESOURCE_CSP: &str =
    "default-src 'none'; img-src 'self'; style-src 'self'; font-src 'self'; sandbox";

async fn epub_resource(
    State(s): State<AppState>,
    Path((id, path)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let b = book(&s, &id)?;
    let (bytes, mime) = s.lib.epub_resource(&b, &path).await?;
    let mut r = cached_bytes(&headers, mime, bytes);
    let h = r.headers_mut();
    h.insert(
        "content-security-policy",
        axum::http::HeaderValue::from_static(RESOURCE_CSP),
    );
    h.insert(
        "x-content-type-options",
        axum::http::HeaderValue::from_static("nosniff"),
    );
    Ok(r)
}

/// The chapter (EPUB) or page a saved position names: a page number, or the
/// `DocFragment[N]` of a KOReader XPointer (`/body/DocFragment[3]/body/p[2]/text().0`:
/// N is the 1-based spine position).
pub fn position_page(progress: &str) -> Option<u64> {
    let p = progress.trim();
    if let Ok(n) = p.parse::<u64>() {
        return Some(n);
    }
    let rest = p.split_once("DocFragment[")?.1;
    rest.split_once(']')?.0.parse().ok()
}

fn caller(c: Caller) -> String {
    c.0.unwrap_or_else(|| ANONYMOUS.to_owned())
}

async fn get_progress(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<ProgressReply>> {
    let b = book(&s, &id)?;
    let user = caller(c);
    let p = s.lib.with_db(|c| accounts::get(c, &user, &b.partial_md5))?;
    Ok(Json(match p {
        None => ProgressReply::None {},
        Some(p) => ProgressReply::Saved(saved(p)),
    }))
}

async fn put_progress(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
    body: Option<Json<PutProgress>>,
) -> ApiResult<Json<ProgressStored>> {
    let b = book(&s, &id)?;
    let user = caller(c);
    let Some(Json(body)) = body else {
        return Err(ApiError(ReaderError::BadRequest(
            "body must be JSON {\"page\": N}".into(),
        )));
    };
    let pages = b.pages.unwrap_or(0);
    if body.page == 0 || body.page > pages {
        return Err(ApiError(ReaderError::PageOutOfRange {
            page: body.page,
            pages,
        }));
    }
    let percentage = body
        .percentage
        .filter(|p| p.is_finite())
        .unwrap_or(body.page as f64 / pages.max(1) as f64)
        .clamp(0.0, 1.0);
    let p = Progress {
        document: b.partial_md5.clone(),
        progress: body.page.to_string(),
        percentage,
        device: body.device.unwrap_or_else(|| "sockit-web".into()),
        device_id: None,
        timestamp: chrono::Utc::now().timestamp(),
    };
    s.lib.with_db(|c| accounts::put(c, &user, &p))?;
    Ok(Json(ProgressStored {
        document: p.document,
        timestamp: p.timestamp,
    }))
}

fn bad_body() -> Response {
    ApiError(ReaderError::BadRequest(
        "body must be JSON {\"username\",\"password\"}".into(),
    ))
    .into_response()
}

/// `{"username"}` with the session cookie of a new login.
fn logged_in(s: &AppState, status: StatusCode, user: &str, token: &str) -> Response {
    let reply = UserReply {
        username: user.to_owned(),
    };
    let mut r = (status, Json(reply)).into_response();
    if let Some(v) = http::session_cookie(token, s.lib.sessions().ttl()) {
        r.headers_mut().insert("set-cookie", v);
    }
    r
}

fn login_failed(f: AuthFailure) -> Response {
    match f {
        AuthFailure::Bad => json_error(
            StatusCode::UNAUTHORIZED,
            "auth_failed",
            "unknown user or wrong password",
        ),
        AuthFailure::Throttled(d) => http::too_many(
            d,
            json_error(
                StatusCode::TOO_MANY_REQUESTS,
                "throttled",
                &format!(
                    "too many failed logins: retry after {} s",
                    http::retry_after_secs(d)
                ),
            ),
        ),
    }
}

async fn login(
    State(s): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    body: Option<Json<Credentials>>,
) -> Response {
    let Some(Json(c)) = body else {
        return bad_body();
    };
    match http::login(&s.lib, &c.username, &c.password, ip).await {
        Ok(token) => logged_in(&s, StatusCode::OK, &c.username, &token),
        Err(f) => login_failed(f),
    }
}

async fn register(
    State(s): State<AppState>,
    Extension(ClientIp(ip)): Extension<ClientIp>,
    body: Option<Json<Credentials>>,
) -> Response {
    let Some(Json(c)) = body else {
        return bad_body();
    };
    match http::register(&s.lib, &c.username, &c.password).await {
        Ok(()) => {}
        Err(RegisterError::Closed) => {
            return json_error(
                StatusCode::FORBIDDEN,
                "denied",
                "registration is disabled on this server",
            )
        }
        Err(RegisterError::Exists) => {
            return json_error(
                StatusCode::CONFLICT,
                "exists",
                "username is already registered",
            )
        }
        Err(RegisterError::Invalid(why)) => {
            return ApiError(ReaderError::BadRequest(why)).into_response()
        }
        Err(RegisterError::Internal) => {
            return json_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "the account could not be stored",
            )
        }
    }
    match http::login(&s.lib, &c.username, &c.password, ip).await {
        Ok(token) => logged_in(&s, StatusCode::CREATED, &c.username, &token),
        Err(f) => login_failed(f),
    }
}

async fn logout(State(s): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(token) = http::session_token(&headers) {
        s.lib.sessions().remove(token);
    }
    let mut r = Json(StatusReply::ok()).into_response();
    r.headers_mut()
        .insert("set-cookie", http::clear_session_cookie());
    r
}

async fn search(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<crate::http::api_types::SearchResults>> {
    use crate::http::api_types::{SearchHit, SearchResults};
    let query = q.get("q").cloned().unwrap_or_default();
    let limit = match q.get("limit") {
        Some(l) => number::<usize>("limit", l)?,
        None => crate::search::DEFAULT_LIMIT,
    };
    if limit == 0 || limit > crate::search::MAX_LIMIT {
        return Err(bad(format!(
            "limit {limit}: use 1 to {}",
            crate::search::MAX_LIMIT
        )));
    }
    let offset = match q.get("offset") {
        Some(o) => number::<usize>("offset", o)?,
        None => 0,
    };
    if offset > crate::search::MAX_OFFSET {
        return Err(bad(format!(
            "offset {offset}: at most {}",
            crate::search::MAX_OFFSET
        )));
    }
    let found = s.lib.search_text(&query, limit, offset).await?;
    let hits = found
        .hits
        .into_iter()
        .filter_map(|h| {
            let b = s.lib.book(h.book_id).ok()?;
            Some(SearchHit {
                book: b.id,
                title: b.title,
                author: b.author,
                format: b.format,
                unit: crate::search::books::TextMatch::unit(b.format).into(),
                location: h.location,
                snippet: h.snippet,
            })
        })
        .collect();
    Ok(Json(SearchResults {
        query,
        total: found.total,
        offset,
        indexing: s.lib.indexing(),
        hits,
    }))
}

async fn me(State(s): State<AppState>, Extension(c): Extension<Caller>) -> ApiResult<Json<Me>> {
    let admin = match &c.0 {
        Some(user) => {
            let (lib, user) = (s.lib.clone(), user.clone());
            crate::library::blocking("checking the role", move || {
                Ok(lib.accounts().is_admin(&user))
            })
            .await?
        }
        None => false,
    };
    Ok(Json(Me {
        username: c.0,
        auth_required: s.lib.auth_required(),
        registration: s.lib.config().allow_registration,
        admin,
        upload_limit: s.lib.config().max_upload_bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::position_page;

    #[test]
    fn positions_name_pages_or_chapters() {
        assert_eq!(position_page(" 12 "), Some(12));
        assert_eq!(
            position_page("/body/DocFragment[3]/body/div/p[2]/text().17"),
            Some(3)
        );
        assert_eq!(position_page("/body/DocFragment[x]/body"), None);
        assert_eq!(position_page("#_doc_fragment_4"), None);
        assert_eq!(position_page(""), None);
    }
}
