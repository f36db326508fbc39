//! Upload and delete over HTTP (the library side is [`crate::upload`]).
//!
//! ```text
//! POST   /api/books?name=FILE   the file as the raw body (what `fetch(url, {body: file})`
//!                               and `curl --data-binary @FILE` send) → 201 the book,
//!                               Location /api/books/ID
//! DELETE /api/books/ID          administrators only → {"status":"ok"}
//! ```
//! Uploading needs a signed-in account (401 `unauthorized` otherwise: on a library open
//! to anonymous readers too); deleting needs an administrator (403 `forbidden` for
//! others). A body over `max_upload_bytes` is refused with 413 `too_large`: at once when
//! its `Content-Length` is more than 4 MiB over, else once it is read (at most 4 MiB past
//! the limit, so a client still sending reads the answer rather than a reset); the
//! staging file is removed. A duplicate is 409 `duplicate` with the existing book's id in `book`.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use http_body_util::BodyExt as _;
use tokio::io::AsyncWriteExt as _;

use crate::error::ReaderError;
use crate::http::api_types::{BookJson, StatusReply};
use crate::http::{api, ApiError, ApiResult, AppState, Caller};
use crate::library::blocking;

/// Bytes over the limit still read (and dropped) before answering 413: a client that is
/// still sending then reads the answer instead of a reset connection.
const DRAIN_BYTES: u64 = 4 << 20;

/// `limit` bytes in words (`200 MiB`, `64 KiB`).
fn size_words(limit: u64) -> String {
    if limit >= 1 << 20 && limit.is_multiple_of(1 << 20) {
        format!("{} MiB", limit >> 20)
    } else if limit >= 1 << 10 && limit.is_multiple_of(1 << 10) {
        format!("{} KiB", limit >> 10)
    } else {
        format!("{limit} bytes")
    }
}

fn too_large(limit: u64) -> ApiError {
    ApiError(ReaderError::TooLarge(format!(
        "the upload is over this server's limit of {} (--reader-upload-mib)",
        size_words(limit)
    )))
}

fn io(what: &str, e: std::io::Error) -> ApiError {
    tracing::warn!(error = %e, "upload: {what} failed");
    ApiError(ReaderError::Worker(format!("{what} (upload)")))
}

/// `POST /api/books?name=FILE`.
pub(crate) async fn upload(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<Response> {
    let Some(user) = c.0 else {
        return Err(ApiError(ReaderError::LoginRequired(
            "sign in to upload books".into(),
        )));
    };
    let limit = s.lib.config().max_upload_bytes;
    if limit == 0 {
        return Err(ApiError(ReaderError::Forbidden(
            "this server takes no uploads".into(),
        )));
    }
    let name = q
        .get("name")
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError(ReaderError::BadRequest(
                "name the file: POST /api/books?name=FILE.epub".into(),
            ))
        })?;
    let declared = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_BYTES)) {
        return Err(too_large(limit));
    }
    let staged = tempfile::Builder::new()
        .prefix(".upload-")
        .tempfile_in(s.lib.upload_dir())
        .map_err(|e| io("creating the staging file", e))?;
    let file = staged
        .as_file()
        .try_clone()
        .map_err(|e| io("opening the staging file", e))?;
    let mut out = tokio::fs::File::from_std(file);
    let mut hasher = blake3::Hasher::new();
    let mut size = 0u64;
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            ApiError(ReaderError::BadRequest(format!(
                "the upload broke off: {e}"
            )))
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        size += data.len() as u64;
        if size > limit {
            // Read (and drop) a little more, so a client still sending gets the answer
            // rather than a reset connection.
            if size > limit.saturating_add(DRAIN_BYTES) {
                return Err(too_large(limit));
            }
            continue;
        }
        hasher.update(&data);
        out.write_all(&data)
            .await
            .map_err(|e| io("writing the staging file", e))?;
    }
    if size > limit {
        return Err(too_large(limit));
    }
    out.flush()
        .await
        .map_err(|e| io("writing the staging file", e))?;
    out.sync_all()
        .await
        .map_err(|e| io("syncing the staging file", e))?;
    drop(out);
    let hash = hasher.finalize().to_hex().to_string();
    let lib = s.lib.clone();
    let book = blocking("adding an upload", move || {
        let book = lib.add_upload(staged.path(), &name, &hash);
        // The staging file goes either way (a kept book is linked elsewhere).
        drop(staged);
        book
    })
    .await?;
    tracing::info!(user = %user, book = %book.path, bytes = size, "upload kept");
    let id = book.id;
    let mut r = (StatusCode::CREATED, Json(BookJson::from(book))).into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("/api/books/{id}")) {
        r.headers_mut().insert("location", v);
    }
    Ok(r)
}

/// `DELETE /api/books/ID`.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Extension(c): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<StatusReply>> {
    let Some(user) = c.0 else {
        return Err(ApiError(ReaderError::LoginRequired(
            "sign in as an administrator to delete books".into(),
        )));
    };
    let id: i64 = api::number("book id", &id)?;
    let lib = s.lib.clone();
    let who = user.clone();
    let admin = blocking("checking the role", move || {
        Ok(lib.accounts().is_admin(&who))
    })
    .await?;
    if !admin {
        return Err(ApiError(ReaderError::Forbidden(format!(
            "only administrators delete books, and {user} is not one \
             (the server's owner makes one with `sockit account admin {user}`)"
        ))));
    }
    let lib = s.lib.clone();
    let book = blocking("deleting a book", move || lib.delete_book(id)).await?;
    tracing::info!(user = %user, book = %book.path, id, "book deleted");
    Ok(Json(StatusReply::ok()))
}

#[cfg(test)]
mod tests {
    use super::size_words;

    #[test]
    fn limits_in_words() {
        assert_eq!(size_words(200 << 20), "200 MiB");
        assert_eq!(size_words(64 << 10), "64 KiB");
        assert_eq!(size_words(1000), "1000 bytes");
    }
}
