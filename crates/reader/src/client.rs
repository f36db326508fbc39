//! A small HTTP/1.1 client for the reader's JSON API (what `sockit read` and the tests
//! use): one request per connection (`Connection: close`), bodies by `Content-Length`,
//! chunked, or to EOF, with a size cap and a timeout; HTTPS with sockit's trust rules
//! (CA file, pinned fingerprint, or trust on first use). The JSON API's calls are typed
//! with the server's own [`crate::http::api_types`].

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockit_runtime::dial::dial;
use sockit_runtime::tls::{Fingerprint, Trust};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::http::api_types::{
    BookEdit, BookJson, BookList, BooksQuery, Chapter, ContinueList, ErrorBody, KoErrorBody,
    NewShelf, PdfText, ProgressReply, ProgressStored, PutProgress, SearchResults, Shelf, ShelfList,
    StatusReply, Toc, TxtPage,
};

/// Largest response accepted, in bytes.
pub const MAX_RESPONSE: usize = 256 << 20;

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting, sending or receiving failed.
    #[error("{addr}: {err}")]
    Io {
        /// The server.
        addr: String,
        /// The error.
        #[source]
        err: std::io::Error,
    },
    /// Connecting (TCP, TLS, trust) failed.
    #[error(transparent)]
    Connect(#[from] sockit_runtime::dial::DialError),
    /// The server did not answer in time.
    #[error("{0}: no answer in time")]
    Timeout(String),
    /// The response is not HTTP as we know it.
    #[error("malformed response: {0}")]
    Malformed(String),
    /// The server answered with an error status.
    #[error("HTTP {status}: {message}")]
    Status {
        /// The status code.
        status: u16,
        /// The server's message.
        message: String,
    },
}

/// A response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// The first header named `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A host recorded in the known-hosts file on first use.
type Recorded = Arc<Mutex<Option<(String, Fingerprint)>>>;

/// A client for one server (`HOST:PORT`, or `http://HOST:PORT`; HTTPS with [`Client::with_tls`]).
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    headers: Vec<(String, String)>,
    timeout: Duration,
    tls: Option<Trust>,
    recorded: Recorded,
}

/// Splits `https://HOST:PORT/` or `http://HOST:PORT` into whether it is HTTPS and the
/// address; anything else is taken as a bare address.
pub fn split_url(server: &str) -> (bool, &str) {
    let server = server.trim_end_matches('/');
    match server.strip_prefix("https://") {
        Some(rest) => (true, rest),
        None => (false, server.strip_prefix("http://").unwrap_or(server)),
    }
}

impl Client {
    /// A client for `server` (plain HTTP; see [`Client::with_tls`]).
    pub fn new(server: &str) -> Self {
        Self {
            addr: split_url(server).1.to_owned(),
            headers: Vec::new(),
            timeout: Duration::from_secs(60),
            tls: None,
            recorded: Recorded::default(),
        }
    }

    /// Speaks HTTPS, trusting the server as `trust` says.
    pub fn with_tls(mut self, trust: Trust) -> Self {
        self.tls = Some(trust);
        self
    }

    /// The host this client recorded in its known-hosts file on first use, once.
    pub fn take_recorded(&self) -> Option<(String, Fingerprint)> {
        self.recorded.lock().ok().and_then(|mut r| r.take())
    }

    /// Adds a header sent with every request.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sends one request.
    ///
    /// # Errors
    /// I/O, timeout or a malformed response (any status is returned as is).
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        match tokio::time::timeout(
            self.timeout,
            self.request_inner(method, path, headers, body),
        )
        .await
        {
            Ok(r) => r,
            Err(_) => Err(ClientError::Timeout(self.addr.clone())),
        }
    }

    async fn request_inner(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Result<Response, ClientError> {
        let io = |err| ClientError::Io {
            addr: self.addr.clone(),
            err,
        };
        let dialed = dial(&self.addr, self.tls.as_ref()).await?;
        if let Some(rec) = dialed.recorded {
            if let Ok(mut slot) = self.recorded.lock() {
                *slot = Some(rec);
            }
        }
        let mut s = dialed.stream;
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        );
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(headers.iter().copied())
        {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).await.map_err(io)?;
        s.write_all(body).await.map_err(io)?;
        let mut raw = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            let n = s.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&chunk[..n]);
            if raw.len() > MAX_RESPONSE {
                return Err(ClientError::Malformed("response too large".into()));
            }
        }
        parse_response(&raw, method == "HEAD")
    }

    /// GET `path` and decode JSON; an error status becomes [`ClientError::Status`].
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let r = self.request("GET", path, &[], b"").await?;
        ok_json(r)
    }

    /// GET `path` as bytes; an error status becomes [`ClientError::Status`].
    ///
    /// # Errors
    /// Transport errors and error statuses.
    pub async fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let r = self.request("GET", path, &[], b"").await?;
        if r.status >= 400 {
            return Err(status_error(&r));
        }
        Ok(r.body)
    }

    /// Sends `body` as JSON with `method` and decodes the JSON answer.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn send_json<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        method: &str,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ClientError::Malformed(e.to_string()))?;
        let r = self
            .request(
                method,
                path,
                &[("Content-Type", "application/json")],
                &bytes,
            )
            .await?;
        ok_json(r)
    }
}

/// The typed calls of the JSON API (`GET /api/books`, ...).
impl Client {
    /// `GET /api/books[?q=QUERY]`.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn books(&self, query: Option<&str>) -> Result<BookList, ClientError> {
        match query {
            Some(q) => {
                self.get_json(&format!("/api/books?q={}", encode_query(q)))
                    .await
            }
            None => self.get_json("/api/books").await,
        }
    }

    /// `GET /api/books?…`: one page of a sorted, filtered listing.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn list_books(&self, query: &BooksQuery) -> Result<BookList, ClientError> {
        self.get_json(&books_path(query)).await
    }

    /// `GET /api/continue`: the caller's books in progress.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn continue_reading(&self) -> Result<ContinueList, ClientError> {
        self.get_json("/api/continue").await
    }

    /// `GET /api/shelves`: the caller's shelves.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn shelves(&self) -> Result<ShelfList, ClientError> {
        self.get_json("/api/shelves").await
    }

    /// `POST /api/shelves`: a new shelf.
    ///
    /// # Errors
    /// Transport errors, error statuses (409 for a name in use), bad JSON.
    pub async fn create_shelf(&self, name: &str) -> Result<Shelf, ClientError> {
        let body = NewShelf {
            name: name.to_owned(),
        };
        self.send_json("POST", "/api/shelves", &body).await
    }

    /// `PUT /api/shelves/ID/books/BOOK` (`on`) or `DELETE` (off).
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn shelve(&self, shelf: i64, book: i64, on: bool) -> Result<Shelf, ClientError> {
        let method = if on { "PUT" } else { "DELETE" };
        let r = self
            .request(
                method,
                &format!("/api/shelves/{shelf}/books/{book}"),
                &[],
                b"",
            )
            .await?;
        ok_json(r)
    }

    /// `DELETE /api/shelves/ID`.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn delete_shelf(&self, shelf: i64) -> Result<StatusReply, ClientError> {
        let r = self
            .request("DELETE", &format!("/api/shelves/{shelf}"), &[], b"")
            .await?;
        ok_json(r)
    }

    /// `PATCH /api/books/ID`: edits a book's metadata (in the catalog).
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn edit_book(&self, id: i64, edit: &BookEdit) -> Result<BookJson, ClientError> {
        self.send_json("PATCH", &format!("/api/books/{id}"), edit)
            .await
    }

    /// `GET /api/books/ID`.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn book(&self, id: i64) -> Result<BookJson, ClientError> {
        self.get_json(&format!("/api/books/{id}")).await
    }

    /// `GET /api/books/ID/text/N`: page `page` of a TXT book.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn text_page(&self, id: i64, page: u64) -> Result<TxtPage, ClientError> {
        self.get_json(&format!("/api/books/{id}/text/{page}")).await
    }

    /// `GET /api/books/ID/text/N?chars=C`: page `page` of a TXT book cut into pages of
    /// `chars` characters (1..=[`crate::MAX_PAGE_CHARS`]); the pages of any size, joined,
    /// are the whole decoded text.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn text_page_sized(
        &self,
        id: i64,
        page: u64,
        chars: usize,
    ) -> Result<TxtPage, ClientError> {
        self.get_json(&format!("/api/books/{id}/text/{page}?chars={chars}"))
            .await
    }

    /// `GET /api/books/ID/toc`: an EPUB's table of contents.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn toc(&self, id: i64) -> Result<Toc, ClientError> {
        self.get_json(&format!("/api/books/{id}/toc")).await
    }

    /// `GET /api/books/ID/chapter/N`: chapter `chapter` of an EPUB, sanitized.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn chapter(&self, id: i64, chapter: u64) -> Result<Chapter, ClientError> {
        self.get_json(&format!("/api/books/{id}/chapter/{chapter}"))
            .await
    }

    /// `GET /api/search?q=&limit=&offset=`: full-text hits, best first.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn search(
        &self,
        query: &str,
        limit: usize,
        offset: usize,
    ) -> Result<SearchResults, ClientError> {
        self.get_json(&format!(
            "/api/search?q={}&limit={limit}&offset={offset}",
            encode_query(query)
        ))
        .await
    }

    /// `GET /api/books/ID/pdftext/N`: the text of page `page` of a PDF.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn pdf_text(&self, id: i64, page: u64) -> Result<PdfText, ClientError> {
        self.get_json(&format!("/api/books/{id}/pdftext/{page}"))
            .await
    }

    /// `GET /api/books/ID/progress`: the caller's saved position.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn progress(&self, id: i64) -> Result<ProgressReply, ClientError> {
        self.get_json(&format!("/api/books/{id}/progress")).await
    }

    /// `PUT /api/books/ID/progress`: saves the caller's position.
    ///
    /// # Errors
    /// Transport errors, error statuses, bad JSON.
    pub async fn put_progress(
        &self,
        id: i64,
        progress: &PutProgress,
    ) -> Result<ProgressStored, ClientError> {
        self.send_json("PUT", &format!("/api/books/{id}/progress"), progress)
            .await
    }
}

/// The path of `GET /api/books` with `query` (absent fields left out).
pub fn books_path(query: &BooksQuery) -> String {
    let mut path = String::from("/api/books");
    if let Ok(serde_json::Value::Object(map)) = serde_json::to_value(query) {
        for (i, (k, v)) in map.iter().enumerate() {
            let v = match v {
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            path.push(if i == 0 { '?' } else { '&' });
            path.push_str(&format!("{k}={}", encode_query(&v)));
        }
    }
    path
}

/// Percent-encodes a query value (everything but `A-Z a-z 0-9 - _ . ~`).
pub fn encode_query(s: &str) -> String {
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

fn status_error(r: &Response) -> ClientError {
    let message = serde_json::from_slice::<ErrorBody>(&r.body)
        .map(|e| e.message)
        .or_else(|_| serde_json::from_slice::<KoErrorBody>(&r.body).map(|e| e.message))
        .unwrap_or_else(|_| String::from_utf8_lossy(&r.body).chars().take(200).collect());
    ClientError::Status {
        status: r.status,
        message,
    }
}

fn ok_json<T: DeserializeOwned>(r: Response) -> Result<T, ClientError> {
    if r.status >= 400 {
        return Err(status_error(&r));
    }
    serde_json::from_slice(&r.body).map_err(|e| ClientError::Malformed(format!("bad JSON: {e}")))
}

/// Parses a whole HTTP/1.1 response. Total: never panics.
///
/// # Errors
/// [`ClientError::Malformed`].
pub fn parse_response(raw: &[u8], head: bool) -> Result<Response, ClientError> {
    let bad = |m: &str| ClientError::Malformed(m.to_owned());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head_text = std::str::from_utf8(&raw[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let mut lines = head_text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let rest = &raw[end + 4..];
    let get = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.as_str())
    };
    let body = if head || status == 204 || status == 304 {
        Vec::new()
    } else if get("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        dechunk(rest).ok_or_else(|| bad("bad chunked body"))?
    } else if let Some(len) = get("content-length").and_then(|v| v.parse::<usize>().ok()) {
        rest.get(..len)
            .ok_or_else(|| bad("body shorter than Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for _ in 0..10_000_000 {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_length_and_chunked() {
        let r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiXX", false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
        let r = parse_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1\r\nc\r\n0\r\n\r\n",
            false,
        )
        .unwrap();
        assert_eq!(r.body, b"abc");
        assert!(parse_response(b"garbage", false).is_err());
        assert!(parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nhi", false).is_err());
    }
}
