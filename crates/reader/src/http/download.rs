//! File downloads: ETag (the file's BLAKE3 from the catalog, or a hash of the path, size
//! and mtime for non-book files), `If-None-Match`, single byte ranges (RFC 9110 §14),
//! streamed from disk, never read whole into memory.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::error::ReaderError;
use crate::http::ApiResult;

/// A requested byte range, resolved against the size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Range {
    /// The whole file (no Range header, or one we ignore such as multiple ranges).
    Full,
    /// Bytes `start..=end`.
    Part {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// Not satisfiable (416).
    Unsatisfiable,
}

/// Parses a `Range` header value for a file of `size` bytes. Total: never panics.
pub fn parse_range(value: Option<&str>, size: u64) -> Range {
    let Some(spec) = value.and_then(|v| v.trim().strip_prefix("bytes=")) else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Range::Full;
    };
    let (a, b) = (a.trim(), b.trim());
    let parsed = match (a.is_empty(), b.is_empty()) {
        (true, true) => return Range::Full,
        (true, false) => b.parse::<u64>().ok().map(|n| {
            if n == 0 {
                None
            } else {
                Some((size.saturating_sub(n), size.saturating_sub(1)))
            }
        }),
        (false, _) => a.parse::<u64>().ok().and_then(|s| {
            let e = if b.is_empty() {
                Some(size.saturating_sub(1))
            } else {
                b.parse::<u64>().ok()
            };
            e.map(|e| {
                if e < s {
                    None
                } else {
                    Some((s, e.min(size.saturating_sub(1))))
                }
            })
        }),
    };
    match parsed {
        None => Range::Full,
        Some(None) => Range::Unsatisfiable,
        Some(Some((s, _))) if size == 0 || s >= size => Range::Unsatisfiable,
        Some(Some((s, e))) => Range::Part { start: s, end: e },
    }
}

/// Whether `If-None-Match` names `etag` (or `*`).
pub fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',').any(|t| {
                let t = t.trim();
                t == "*" || t == etag || t.strip_prefix("W/") == Some(etag)
            })
        })
}

/// The status, first byte and length to answer with; `None` when the range cannot be
/// satisfied (see [`unsatisfiable`]).
fn resolve(headers: &HeaderMap, size: u64, etag: &str) -> Option<(StatusCode, u64, u64)> {
    let mut range = parse_range(headers.get("range").and_then(|v| v.to_str().ok()), size);
    if let Some(if_range) = headers.get("if-range").and_then(|v| v.to_str().ok()) {
        if if_range.trim() != etag {
            range = Range::Full;
        }
    }
    match range {
        Range::Full => Some((StatusCode::OK, 0, size)),
        Range::Part { start, end } => Some((StatusCode::PARTIAL_CONTENT, start, end - start + 1)),
        Range::Unsatisfiable => None,
    }
}

/// `416 Range Not Satisfiable` with `Content-Range: bytes */SIZE`.
fn unsatisfiable(size: u64) -> Response {
    let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("bytes */{size}")) {
        r.headers_mut().insert("content-range", v);
    }
    r
}

/// The answer's headers: type, length, ETag, ranges, and the download name.
fn respond(
    body: Body,
    (status, start, len, size): (StatusCode, u64, u64, u64),
    mime: &str,
    etag: &str,
    download_name: Option<&str>,
) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    let set = |h: &mut HeaderMap, k: &'static str, v: String| {
        if let Ok(v) = HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set(h, "content-type", mime.to_owned());
    set(h, "content-length", len.to_string());
    set(h, "etag", etag.to_owned());
    h.insert("accept-ranges", HeaderValue::from_static("bytes"));
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    if status == StatusCode::PARTIAL_CONTENT {
        set(
            h,
            "content-range",
            format!("bytes {start}-{}/{size}", start + len - 1),
        );
    }
    if let Some(name) = download_name {
        set(h, "content-disposition", content_disposition(name));
    }
    r
}

/// `attachment` with an ASCII fallback name and the UTF-8 name (RFC 6266).
fn content_disposition(name: &str) -> String {
    let ascii: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || ".-_ ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded: String = name
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b".-_".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Serves `file` (opened by [`crate::Library::open_file`], `size` bytes, `name` in the
/// books root) with `mime`, an ETag, ranges and a download name.
///
/// # Errors
/// The file cannot be read.
pub async fn serve_file(
    headers: &HeaderMap,
    (file, size): (std::fs::File, u64),
    name: &str,
    mime: &str,
    etag: &str,
    download_name: Option<&str>,
) -> ApiResult<Response> {
    if etag_matches(headers, etag) {
        return Ok(super::not_modified(etag));
    }
    let Some((status, start, len)) = resolve(headers, size, etag) else {
        return Ok(unsatisfiable(size));
    };
    let mut file = tokio::fs::File::from_std(file);
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))
            .await
            .map_err(|e| ReaderError::io(name, e))?;
    }
    let body = Body::from_stream(tokio_util::io::ReaderStream::new(file.take(len)));
    Ok(respond(
        body,
        (status, start, len, size),
        mime,
        etag,
        download_name,
    ))
}

/// Serves `bytes` made for this answer (a TXT book transcoded to UTF-8) like a file:
/// ETag, ranges, a download name.
pub fn serve_bytes(
    headers: &HeaderMap,
    bytes: Vec<u8>,
    mime: &str,
    etag: &str,
    download_name: Option<&str>,
) -> Response {
    if etag_matches(headers, etag) {
        return super::not_modified(etag);
    }
    let size = bytes.len() as u64;
    let Some((status, start, len)) = resolve(headers, size, etag) else {
        return unsatisfiable(size);
    };
    let part = match usize::try_from(start)
        .ok()
        .zip(usize::try_from(start + len).ok())
    {
        Some((a, b)) if status == StatusCode::PARTIAL_CONTENT => bytes[a..b].to_vec(),
        _ => bytes,
    };
    respond(
        Body::from(part),
        (status, start, len, size),
        mime,
        etag,
        download_name,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range(None, 10), Range::Full);
        assert_eq!(
            parse_range(Some("bytes=0-4"), 10),
            Range::Part { start: 0, end: 4 }
        );
        assert_eq!(
            parse_range(Some("bytes=5-"), 10),
            Range::Part { start: 5, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-3"), 10),
            Range::Part { start: 7, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=-30"), 10),
            Range::Part { start: 0, end: 9 }
        );
        assert_eq!(
            parse_range(Some("bytes=8-100"), 10),
            Range::Part { start: 8, end: 9 }
        );
        assert_eq!(parse_range(Some("bytes=10-"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=5-2"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=-0"), 10), Range::Unsatisfiable);
        assert_eq!(parse_range(Some("bytes=0-1,3-4"), 10), Range::Full);
        assert_eq!(parse_range(Some("bytes=x-y"), 10), Range::Full);
        assert_eq!(parse_range(Some("items=0-1"), 10), Range::Full);
        assert_eq!(parse_range(Some("bytes=0-"), 0), Range::Unsatisfiable);
        assert_eq!(
            parse_range(Some("bytes=99999999999999999999-"), 10),
            Range::Full
        );
    }
}
