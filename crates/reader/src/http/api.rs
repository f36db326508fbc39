//! The JSON API behind the web UI and `sockit read`.
//!
//! ```text
//! GET  /api/books?q=TEXT                 {"total", "generation", "books":[book...]}
//! GET  /api/books/ID                     book
//! GET  /api/books/ID/file                the file (ETag, Range)
//! GET  /api/books/ID/cover?w=PX          JPEG cover (w default 400)
//! GET  /api/books/ID/page/N?width=PX&format=png|jpeg   PDF page N (1-based) as an image
//! GET  /api/books/ID/text/N?chars=C      TXT page N: {"page","pages","page_chars","text"}
//! GET  /api/books/ID/pdftext/N           PDF page N's text: {"page","pages","text"}
//! GET  /api/books/ID/progress            the caller's position: {} or {"page","percentage","progress","timestamp"}
//! PUT  /api/books/ID/progress            {"page", "percentage"?, "device"?}
//! POST /api/login, /api/register         {"username","password"} → {"username"} + session cookie
//! POST /api/logout                       ends the session
//! GET  /api/me                           {"username" (or null), "auth_required", "registration"}
//! GET  /books/PATH                       a file of the books root by name (course layout)
//! ```
//! The caller is the account of the session cookie, of `x-auth-user`/`x-auth-key` or of
//! HTTP Basic (see [`crate::http::guard`]); on a library open to anonymous readers,
//! positions without credentials are kept for an anonymous reader.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::accounts::{self, Progress};
use crate::catalog::Book;
use crate::error::ReaderError;
use crate::http::{
    self, cached_bytes, download, json_error, ApiError, ApiResult, AppState, AuthFailure, Caller,
    ClientIp, RegisterError,
};
use crate::library::ImageFormat;

/// Default rendered page width for the web UI.
pub const DEFAULT_WIDTH: u32 = 1000;
/// The progress owner for requests without credentials.
const ANONYMOUS: &str = "";

/// The API routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/books", get(list))
        .route("/api/books/{id}", get(one))
        .route("/api/books/{id}/file", get(file))
        .route("/api/books/{id}/cover", get(cover))
        .route("/api/books/{id}/page/{n}", get(page_image))
        .route("/api/books/{id}/text/{n}", get(text_page))
        .route("/api/books/{id}/pdftext/{n}", get(pdf_text))
        .route(
            "/api/books/{id}/progress",
            get(get_progress).put(put_progress),
        )
        .route("/api/login", post(login))
        .route("/api/register", post(register))
        .route("/api/logout", post(logout))
        .route("/api/me", get(me))
        .route("/books/{*path}", get(by_path))
}

/// A book as the API shows it: the catalog row plus its links.
#[derive(Debug, Serialize)]
pub struct BookJson {
    #[serde(flatten)]
    book: Book,
    cover_url: String,
    thumb_url: String,
    file_url: String,
}

impl From<Book> for BookJson {
    fn from(book: Book) -> Self {
        let id = book.id;
        Self {
            book,
            cover_url: format!("/api/books/{id}/cover"),
            thumb_url: format!("/api/books/{id}/cover?w=200"),
            file_url: format!("/api/books/{id}/file"),
        }
    }
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

async fn list(
    State(s): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> ApiResult<Json<serde_json::Value>> {
    let books = s.lib.books(q.get("q").map(String::as_str))?;
    let books: Vec<BookJson> = books.into_iter().map(BookJson::from).collect();
    Ok(Json(
        json!({"total": books.len(), "generation": s.lib.generation(), "books": books}),
    ))
}

async fn one(State(s): State<AppState>, Path(id): Path<String>) -> ApiResult<Json<BookJson>> {
    Ok(Json(book(&s, &id)?.into()))
}

async fn file(
    State(s): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    let b = book(&s, &id)?;
    let path = s.lib.file(&b.path)?;
    let name = b.path.rsplit('/').next().unwrap_or(&b.path).to_owned();
    download::serve_file(
        &headers,
        &path,
        b.format.mime(),
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
    let abs = s.lib.file(&path)?;
    let lower = path.to_ascii_lowercase();
    let mime = if lower.ends_with(".pdf") {
        "application/pdf"
    } else if lower.ends_with(".txt") {
        "text/plain"
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
            let m = std::fs::metadata(&abs).map_err(|e| ReaderError::io(&abs, e))?;
            let mtime = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!(
                "\"{}\"",
                blake3::hash(format!("{path}|{}|{mtime}", m.len()).as_bytes()).to_hex()
            )
        }
    };
    download::serve_file(&headers, &abs, mime, &etag, None).await
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
) -> ApiResult<Json<crate::library::TxtPage>> {
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
) -> ApiResult<Json<serde_json::Value>> {
    let b = book(&s, &id)?;
    let page: u64 = number("page", &n)?;
    let text = s.lib.pdf_text(&b, page).await?;
    Ok(Json(json!({"page": page, "pages": b.pages, "text": text})))
}

fn caller(c: Caller) -> String {
    c.0.unwrap_or_else(|| ANONYMOUS.to_owned())
}

async fn get_progress(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
) -> ApiResult<Json<serde_json::Value>> {
    let b = book(&s, &id)?;
    let user = caller(c);
    let p = s.lib.with_db(|c| accounts::get(c, &user, &b.partial_md5))?;
    Ok(Json(match p {
        None => json!({}),
        Some(p) => json!({
            "page": p.progress.trim().parse::<u64>().ok(),
            "progress": p.progress,
            "percentage": p.percentage,
            "device": p.device,
            "timestamp": p.timestamp,
        }),
    }))
}

/// Body of `PUT /api/books/ID/progress`.
#[derive(Debug, Deserialize)]
pub struct PutProgress {
    page: u64,
    percentage: Option<f64>,
    device: Option<String>,
}

async fn put_progress(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Extension(c): Extension<Caller>,
    body: Option<Json<PutProgress>>,
) -> ApiResult<Json<serde_json::Value>> {
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
    Ok(Json(
        json!({"document": p.document, "timestamp": p.timestamp}),
    ))
}

/// Body of login and register.
#[derive(Debug, Deserialize)]
pub struct Credentials {
    username: String,
    password: String,
}

fn bad_body() -> Response {
    ApiError(ReaderError::BadRequest(
        "body must be JSON {\"username\",\"password\"}".into(),
    ))
    .into_response()
}

/// `{"username"}` with the session cookie of a new login.
fn logged_in(s: &AppState, status: StatusCode, user: &str, token: &str) -> Response {
    let mut r = (status, Json(json!({"username": user}))).into_response();
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
    let mut r = Json(json!({"status": "ok"})).into_response();
    r.headers_mut()
        .insert("set-cookie", http::clear_session_cookie());
    r
}

async fn me(State(s): State<AppState>, Extension(c): Extension<Caller>) -> Json<serde_json::Value> {
    Json(json!({
        "username": c.0,
        "auth_required": s.lib.auth_required(),
        "registration": s.lib.config().allow_registration,
    }))
}
