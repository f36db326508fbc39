//! The course's reader protocol on tcp 8998, byte-compatible with its client.
//!
//! ```text
//! C: 0 NAME        download: S sends struct.pack('i', n) (4 bytes, little-endian), then n
//!                  bytes of JSON {"filename": NAME, "filesize": SIZE} (Python's json.dumps
//!                  spacing and \u escapes), then SIZE bytes. `0 PDF.db` sends the catalog
//!                  as a SQLite file with table book_info(path, page, flag, md5).
//! C: 1 NAME.txt    open a TXT book: S answers its page count as decimal text
//! C: 2 N           page N (1-based) as UTF-8 text; `2 0` is the next page
//! C: 3             close the book: S answers 已关闭文件 ("file closed")
//! ```
//! A request is one `send()` (the course client sends each in one piece) or a line. Any
//! failure is answered with `error: MESSAGE` as text and the connection goes on, up to
//! [`MAX_BAD_REQUESTS`] unparsable requests in a row.
//!
//! Every request that parses is reported on the connection's [`RequestClock`]: a client
//! whose first request does not parse within the handshake timeout (one trickling
//! `1 NAME` a byte at a time sends only fragments) is dropped, and idle time counts from
//! the last request.

use std::io;
use std::sync::Arc;

use async_trait::async_trait;
use sockit_runtime::guarded::RequestClock;
use sockit_runtime::server::{ConnInfo, Refusal, ServiceStream, TcpService};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

use crate::catalog::{Book, Format};
use crate::error::{ReaderError, Result};
use crate::library::Library;

/// The course server's port.
pub const PORT: u16 = 8998;
/// What `3` answers (the course server's message, "file closed").
pub const CLOSED: &str = "已关闭文件";
/// The name that downloads the catalog.
pub const CATALOG_NAME: &str = "PDF.db";
/// Longest request read at once.
const MAX_REQUEST: usize = 4096;
/// Unparsable requests in a row after which the connection is closed (a client feeding
/// fragments or garbage cannot keep it open on the error answers).
pub const MAX_BAD_REQUESTS: u32 = 16;

/// One parsed request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// `0 NAME`.
    Download(String),
    /// `1 NAME`.
    Open(String),
    /// `2 N` with N ≥ 1.
    Page(u64),
    /// `2 0`.
    Next,
    /// `3`.
    Close,
    /// Anything else, with why.
    Invalid(String),
}

/// Parses one request (CR/LF already trimmed). Total: never panics.
pub fn parse(raw: &[u8]) -> Request {
    let Ok(text) = std::str::from_utf8(raw) else {
        return Request::Invalid("request is not UTF-8".into());
    };
    let (kind, arg) = match text.split_at_checked(1) {
        Some((k, rest)) => (k, rest.strip_prefix(' ')),
        None => return Request::Invalid("empty request".into()),
    };
    match (kind, arg) {
        ("0", Some(name)) if !name.is_empty() => Request::Download(name.to_owned()),
        ("1", Some(name)) if !name.is_empty() => Request::Open(name.to_owned()),
        ("2", Some(n)) => match n.trim().parse::<u64>() {
            Ok(0) => Request::Next,
            Ok(n) => Request::Page(n),
            Err(_) => Request::Invalid(format!("page number `{}` is not a number ≥ 0", n.trim())),
        },
        ("3", _) if text.trim() == "3" => Request::Close,
        ("0" | "1", _) => Request::Invalid(format!("`{kind}` needs a file name: `{kind} NAME`")),
        _ => Request::Invalid(format!(
            "unknown request `{}`: use 0 NAME, 1 NAME.txt, 2 N or 3",
            text.chars().take(40).collect::<String>()
        )),
    }
}

/// Splits one read into requests: lines if there is a newline, else the whole read.
pub fn split_requests(read: &[u8]) -> Vec<&[u8]> {
    read.split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect()
}

/// `{"filename": NAME, "filesize": SIZE}` exactly as Python's `json.dumps` writes it.
pub fn py_header(name: &str, size: u64) -> String {
    format!(
        "{{\"filename\": {}, \"filesize\": {size}}}",
        py_json_str(name)
    )
}

fn py_json_str(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || (c as u32) > 0x7e => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The classic reader service.
#[derive(Debug, Clone)]
pub struct ClassicService {
    lib: Arc<Library>,
    /// Served even while the library requires logins (the operator named it public).
    public: bool,
}

/// What a client of the classic port reads while the library requires logins.
pub const LOGIN_REQUIRED: &str =
    "error: this library requires a login, which the classic protocol cannot do; use the web UI, OPDS or `sockit read`";

impl ClassicService {
    /// A service over `lib` that closes with [`LOGIN_REQUIRED`] while the library requires
    /// logins (accounts created while the server runs included).
    pub fn new(lib: Arc<Library>) -> Self {
        Self { lib, public: false }
    }

    /// A service over `lib` that serves everyone, logins or not (`--public reader.tcp`).
    pub fn public(lib: Arc<Library>) -> Self {
        Self { lib, public: true }
    }
}

/// The book a connection has open, and where it is.
#[derive(Debug)]
struct Session {
    open: Option<(Book, u64)>,
}

/// Serves the classic protocol on any stream until EOF or shutdown, reporting each
/// request that parses on `clock`.
///
/// # Errors
/// I/O errors on the stream.
pub async fn serve<S: AsyncRead + AsyncWrite + Unpin>(
    lib: &Arc<Library>,
    stream: &mut S,
    clock: &RequestClock,
    shutdown: &tokio_util::sync::CancellationToken,
) -> io::Result<String> {
    let mut buf = vec![0u8; MAX_REQUEST];
    let mut session = Session { open: None };
    let mut bad_in_a_row = 0u32;
    loop {
        let n = tokio::select! {
            _ = shutdown.cancelled() => return Ok("server shutting down".into()),
            r = stream.read(&mut buf) => r?,
        };
        if n == 0 {
            return Ok("client closed".into());
        }
        for raw in split_requests(&buf[..n]) {
            let req = parse(raw);
            debug!(request = ?req, "classic request");
            if matches!(req, Request::Invalid(_)) {
                bad_in_a_row += 1;
                if bad_in_a_row > MAX_BAD_REQUESTS {
                    let bye = "error: too many bad requests in a row; closing the connection";
                    stream.write_all(bye.as_bytes()).await?;
                    return Ok("too many bad requests".into());
                }
            } else {
                bad_in_a_row = 0;
                clock.request_complete();
            }
            if let Err(e) = answer(lib, stream, &mut session, req).await {
                match e {
                    Answer::Io(e) => return Err(e),
                    Answer::Reader(e) => stream.write_all(format!("error: {e}").as_bytes()).await?,
                }
            }
        }
    }
}

enum Answer {
    Io(io::Error),
    Reader(ReaderError),
}

impl From<ReaderError> for Answer {
    fn from(e: ReaderError) -> Self {
        Self::Reader(e)
    }
}

impl From<io::Error> for Answer {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

async fn answer<S: AsyncWrite + Unpin>(
    lib: &Arc<Library>,
    stream: &mut S,
    session: &mut Session,
    req: Request,
) -> std::result::Result<(), Answer> {
    let page_chars = lib.config().txt_page_chars;
    match req {
        Request::Download(name) => download(lib, stream, &name).await,
        Request::Open(name) => {
            let book = lib.book_by_path(&name)?;
            match book.format {
                Format::Txt => {}
                Format::Pdf => {
                    return Err(ReaderError::Unsupported(format!(
                        "{name} is a PDF: download it with `0 {name}`"
                    ))
                    .into())
                }
                Format::Epub => {
                    return Err(ReaderError::Unsupported(format!(
                        "{name} is an EPUB, which the classic protocol cannot page: download it with `0 {name}` or read it in the web UI"
                    ))
                    .into())
                }
            }
            let paged = lib.txt(&book, page_chars).await?;
            session.open = Some((book, 0));
            stream.write_all(paged.len().to_string().as_bytes()).await?;
            Ok(())
        }
        Request::Page(_) | Request::Next => {
            let Some((book, cursor)) = &mut session.open else {
                return Err(ReaderError::BadRequest(
                    "no book is open: send `1 NAME.txt` first".into(),
                )
                .into());
            };
            let page = match req {
                Request::Page(n) => n,
                _ => cursor.saturating_add(1),
            };
            let p = lib.txt_page(book, page, page_chars).await?;
            *cursor = page;
            stream.write_all(p.text.as_bytes()).await?;
            Ok(())
        }
        Request::Close => {
            if session.open.take().is_none() {
                return Err(ReaderError::BadRequest("no book is open".into()).into());
            }
            stream.write_all(CLOSED.as_bytes()).await?;
            Ok(())
        }
        Request::Invalid(why) => Err(ReaderError::BadRequest(why).into()),
    }
}

async fn download<S: AsyncWrite + Unpin>(
    lib: &Arc<Library>,
    stream: &mut S,
    name: &str,
) -> std::result::Result<(), Answer> {
    let (file, size) = if name == CATALOG_NAME {
        let path = lib.course_db().await?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ReaderError::io(&path, e))?;
        let size = file
            .metadata()
            .await
            .map_err(|e| ReaderError::io(&path, e))?
            .len();
        (file, size)
    } else {
        let (file, size) = lib.open_file(name)?;
        (tokio::fs::File::from_std(file), size)
    };
    let header = py_header(name, size);
    let len = i32::try_from(header.len())
        .map_err(|_| ReaderError::BadRequest("file name too long".into()))?;
    // The course client reads the length with its own recv() before the header.
    stream.write_all(&len.to_le_bytes()).await?;
    stream.flush().await?;
    stream.write_all(header.as_bytes()).await?;
    let sent = tokio::io::copy(&mut file.take(size), stream).await?;
    if sent < size {
        // The file shrank while being sent: the stream cannot be resynchronized.
        return Err(Answer::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{name} shrank while being sent"),
        )));
    }
    Ok(())
}

/// Checks one classic request name would be served (used by the traversal tests).
///
/// # Errors
/// `Traversal` or `NotFound`.
pub fn check_name(lib: &Library, name: &str) -> Result<()> {
    if name == CATALOG_NAME {
        return Ok(());
    }
    lib.open_file(name).map(|_| ())
}

#[async_trait]
impl TcpService for ClassicService {
    fn name(&self) -> &'static str {
        "reader"
    }

    async fn handle(&self, mut stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        if !self.public && self.lib.auth_required() {
            stream.write_all(LOGIN_REQUIRED.as_bytes()).await?;
            stream.shutdown().await?;
            return Ok("refused: the library requires a login".into());
        }
        serve(&self.lib, &mut stream, &info.clock, &info.shutdown).await
    }

    async fn refuse(&self, mut stream: TcpStream, refusal: Refusal) {
        let _ = stream
            .write_all(format!("error: {refusal}").as_bytes())
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(parse(b"0 PDF.db"), Request::Download("PDF.db".into()));
        assert_eq!(parse(b"1 alice.txt"), Request::Open("alice.txt".into()));
        assert_eq!(parse(b"1 a b.txt"), Request::Open("a b.txt".into()));
        assert_eq!(parse(b"2 0"), Request::Next);
        assert_eq!(parse(b"2 846"), Request::Page(846));
        assert_eq!(parse(b"3"), Request::Close);
    }

    #[test]
    fn bad_requests() {
        for raw in [
            &b""[..],
            b"2",
            b"2 -1",
            b"2 x",
            b"2 99999999999999999999999",
            b"9 x",
            b"0",
            b"0 ",
            b"\xff\xfe",
            b"3x",
            b"1",
        ] {
            assert!(matches!(parse(raw), Request::Invalid(_)), "{raw:?}");
        }
    }

    #[test]
    fn python_json_header() {
        assert_eq!(
            py_header("PDF.db", 12288),
            r#"{"filename": "PDF.db", "filesize": 12288}"#
        );
        assert_eq!(
            py_header("挽歌.pdf", 1),
            r#"{"filename": "\u633d\u6b4c.pdf", "filesize": 1}"#
        );
        assert_eq!(
            py_header("a\"\\\n😀", 0),
            r#"{"filename": "a\"\\\n\ud83d\ude00", "filesize": 0}"#
        );
    }

    #[test]
    fn splitting() {
        assert_eq!(split_requests(b"2 0"), vec![&b"2 0"[..]]);
        assert_eq!(split_requests(b"2 1\r\n2 0\n"), vec![&b"2 1"[..], b"2 0"]);
    }
}
