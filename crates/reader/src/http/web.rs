//! The web UI: one HTML page with its script and style sheet, embedded in the binary (no
//! build step). A cover grid with search, a book page, a PDF viewer (page jump, zoom,
//! arrow keys) and a TXT reader (PgUp/PgDn, dark/light), positions saved per user.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::http::AppState;

const INDEX: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

/// The UI routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { asset(&h, "text/html; charset=utf-8", INDEX) }),
        )
        .route(
            "/assets/app.js",
            get(|h: HeaderMap| async move { asset(&h, "text/javascript; charset=utf-8", APP_JS) }),
        )
        .route(
            "/assets/app.css",
            get(|h: HeaderMap| async move { asset(&h, "text/css; charset=utf-8", APP_CSS) }),
        )
}

fn asset(headers: &HeaderMap, mime: &'static str, body: &'static str) -> Response {
    let etag = format!("\"{}\"", &blake3::hash(body.as_bytes()).to_hex()[..32]);
    if super::download::etag_matches(headers, &etag) {
        return super::not_modified(&etag);
    }
    let mut r = (StatusCode::OK, body).into_response();
    let h = r.headers_mut();
    h.insert("content-type", HeaderValue::from_static(mime));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert("etag", v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    r
}
