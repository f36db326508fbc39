//! The HTTP side of the reader (tcp 8080, and HTTPS on 8443 with `--tls`, see [`tls`]): the web UI, its JSON API, file downloads with
//! ETag and range requests, OPDS 1.2 with page streaming, and kosync progress sync.

pub mod api;
pub mod download;
pub mod kosync;
pub mod opds;
pub mod tls;
pub mod web;

use std::sync::Arc;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts;
use crate::error::ReaderError;
use crate::library::Library;

/// The default HTTP port.
pub const PORT: u16 = 8080;

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The library.
    pub lib: Arc<Library>,
}

/// The whole HTTP application.
pub fn router(lib: Arc<Library>) -> Router {
    let state = AppState { lib };
    Router::new()
        .merge(web::routes())
        .merge(api::routes())
        .merge(kosync::routes())
        .merge(opds::routes())
        .with_state(state)
}

/// Serves the HTTP application on `listener` until `shutdown`, then lets open requests
/// finish.
///
/// # Errors
/// The accept loop failed.
pub async fn serve(
    listener: TcpListener,
    lib: Arc<Library>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(lib))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// Serves the application over HTTPS (see [`tls`]) until `shutdown`, then lets open
/// requests finish.
///
/// # Errors
/// The listener's address cannot be read, or serving failed.
pub async fn serve_tls(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    limits: tls::TlsLimits,
    lib: Arc<Library>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let listener = tls::TlsListener::new(listener, acceptor, limits, shutdown.clone())?;
    axum::serve(listener, router(lib))
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await
}

/// An error answered as `{"status":"error","code":..,"message":..}`.
#[derive(Debug)]
pub struct ApiError(pub ReaderError);

impl From<ReaderError> for ApiError {
    fn from(e: ReaderError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        if status.is_server_error() {
            tracing::warn!(error = %self.0, "request failed");
        }
        let body = serde_json::json!({
            "status": "error",
            "code": self.0.code(),
            "message": self.0.to_string(),
        });
        (status, axum::Json(body)).into_response()
    }
}

/// The handlers' result type.
pub type ApiResult<T> = std::result::Result<T, ApiError>;

/// A request carried credentials that do not match an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadCredentials;

/// The authenticated user of a request: kosync headers (`x-auth-user`/`x-auth-key`) or
/// HTTP Basic (password, or its MD5 as KOReader stores it). `Ok(None)` when the request
/// carries no credentials; `Err` when it carries wrong ones.
pub fn request_user(
    lib: &Library,
    headers: &HeaderMap,
) -> std::result::Result<Option<String>, BadCredentials> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .filter(|s| !s.is_empty())
    };
    if let (Some(user), Some(key)) = (header("x-auth-user"), header("x-auth-key")) {
        return match lib.with_db(|c| accounts::check(c, user, key)) {
            Ok(true) => Ok(Some(user.to_owned())),
            _ => Err(BadCredentials),
        };
    }
    if let Some((user, password)) = header("authorization").and_then(basic_credentials) {
        let md5 = crate::hashes::md5_hex(password.as_bytes());
        let ok = lib
            .with_db(|c| {
                Ok(accounts::check(c, &user, &md5)? || accounts::check(c, &user, &password)?)
            })
            .unwrap_or(false);
        return if ok {
            Ok(Some(user))
        } else {
            Err(BadCredentials)
        };
    }
    Ok(None)
}

/// Decodes `Basic base64(user:password)`.
pub fn basic_credentials(value: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let b64 = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (u, p) = text.split_once(':')?;
    Some((u.to_owned(), p.to_owned()))
}

/// A response with bytes, a content type and an ETag (the content's BLAKE3), answering
/// `If-None-Match` with 304.
pub fn cached_bytes(headers: &HeaderMap, mime: &'static str, bytes: Vec<u8>) -> Response {
    let etag = format!("\"{}\"", blake3::hash(&bytes).to_hex());
    if download::etag_matches(headers, &etag) {
        return not_modified(&etag);
    }
    let mut r = (StatusCode::OK, bytes).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}

/// `304 Not Modified` with the ETag.
pub fn not_modified(etag: &str) -> Response {
    let mut r = StatusCode::NOT_MODIFIED.into_response();
    if let Ok(v) = HeaderValue::from_str(etag) {
        r.headers_mut().insert("etag", v);
    }
    r
}
