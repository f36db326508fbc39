//! The reader benchmark behind `sockit lab bench reader`.
//!
//! Generates a PDF of `pages` pages and a TXT of about as many pages in a temporary
//! books root, starts the HTTP server in-process on `127.0.0.1:0` and measures over
//! loopback with a minimal HTTP/1.1 keep-alive client:
//!
//! * PDF page render, **cold**: the first request of every page after the render cache
//!   directory was emptied (hayro render + PNG encode + cache write);
//! * PDF page, **cached**: the second request of every page (read from the disk cache);
//! * TXT page: every page of the TXT book over `/api/books/ID/text/N` (after one warm-up
//!   request that decodes and pages the file);
//! * `readers` concurrent readers, each on its own connection, paging sequentially
//!   through one of the two books (even readers the PDF, odd the TXT; each starting at a
//!   different page) for `duration`: pages/s and latency.
//!
//! * a generated library of `library_books` books (TXT, EPUB, PDF): catalog scan and
//!   full-text indexing time, the library's first and last page, full-text search and
//!   EPUB chapter render p50/p99 ([`library`]).
//!
//! Every loop is bounded (pages, a deadline, a per-request timeout, a request cap).
//! Results go to `OUT/reader.json` and `OUT/reader.md` when an output directory is set.

pub mod library;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use sockit_reader::Library;
use sockit_reader::ReaderConfig;

/// Longest a single request may take before the run fails.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest response body accepted.
const MAX_BODY: usize = 64 << 20;
/// Largest header block accepted.
const MAX_HEADER_LINES: usize = 100;
/// Requests per concurrent reader, at most (a bound besides the deadline).
const MAX_REQUESTS_PER_READER: u64 = 1_000_000;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BenchConfig {
    /// Pages of the generated PDF (the issue asks for 300); the TXT has about as many.
    pub pages: u32,
    /// Concurrent readers (the issue asks for 200).
    pub readers: usize,
    /// How long the concurrent readers page.
    pub duration: Duration,
    /// Rendered page width in pixels.
    pub width: u32,
    /// Books of the generated library of the library phase (0: no library phase).
    pub library_books: usize,
    /// Requests per measurement of the library phase.
    pub library_requests: usize,
    /// Where `reader.json` and `reader.md` are written (`None`: not written).
    pub out_dir: Option<PathBuf>,
}

impl Default for BenchConfig {
    fn default() -> BenchConfig {
        BenchConfig {
            pages: 300,
            readers: 200,
            duration: Duration::from_secs(10),
            width: sockit_reader::http::DEFAULT_WIDTH,
            library_books: 10_000,
            library_requests: 300,
            out_dir: Some(PathBuf::from("bench-results")),
        }
    }
}

/// Latency summary of one measurement, in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Requests measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Slowest.
    pub max_ms: f64,
    /// Mean.
    pub mean_ms: f64,
}

impl Latency {
    pub(crate) fn from_hist(h: &Histogram<u64>) -> Latency {
        let ms = |us: u64| us as f64 / 1000.0;
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

/// The concurrent-readers phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Concurrent {
    /// Readers (connections).
    pub readers: usize,
    /// Wall time of the phase, seconds.
    pub seconds: f64,
    /// Pages served (2xx responses).
    pub pages: u64,
    /// Pages per second over all readers.
    pub pages_per_s: f64,
    /// Per-page latency.
    pub latency: Latency,
}

/// The whole result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Pages of the PDF.
    pub pdf_pages: u64,
    /// Size of the PDF in bytes.
    pub pdf_bytes: u64,
    /// Pages of the TXT (at the server's default page size).
    pub txt_pages: u64,
    /// Characters per TXT page.
    pub txt_page_chars: usize,
    /// Rendered width in pixels.
    pub width: u32,
    /// Render workers of the server.
    pub render_workers: usize,
    /// PDF pages, first request after clearing the render cache.
    pub pdf_cold: Latency,
    /// PDF pages, second request (disk cache).
    pub pdf_cached: Latency,
    /// The TXT warm-up request (decode + paging of the whole file), milliseconds.
    pub txt_first_ms: f64,
    /// TXT pages.
    pub txt: Latency,
    /// Concurrent readers.
    pub concurrent: Concurrent,
    /// The library phase (when it ran).
    pub library: Option<library::LibraryReport>,
    /// The markdown table (also written to `reader.md`).
    #[serde(skip)]
    pub markdown: String,
}

/// Why the benchmark failed.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The library could not be set up.
    #[error("library: {0}")]
    Library(#[from] sockit_reader::ReaderError),
    /// Local I/O (temp dir, results).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// A request failed or answered badly.
    #[error("GET {path}: {message}")]
    Request {
        /// The request path.
        path: String,
        /// What went wrong.
        message: String,
    },
}

pub(crate) fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// One keep-alive HTTP/1.1 connection that only sends GETs.
pub(crate) struct Conn {
    addr: SocketAddr,
    stream: Option<BufReader<TcpStream>>,
}

impl Conn {
    pub(crate) fn new(addr: SocketAddr) -> Conn {
        Conn { addr, stream: None }
    }

    /// GETs `path` and returns the body of a 2xx answer; the time includes connecting
    /// only when the connection had to be (re)opened.
    pub(crate) async fn get(&mut self, path: &str) -> Result<Vec<u8>, BenchError> {
        let fail = |message: String| BenchError::Request {
            path: path.to_owned(),
            message,
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, self.exchange(path)).await {
            Ok(Ok((status, body))) if (200..300).contains(&status) => Ok(body),
            Ok(Ok((status, body))) => Err(fail(format!(
                "status {status}: {}",
                String::from_utf8_lossy(&body[..body.len().min(200)])
            ))),
            Ok(Err(e)) => {
                self.stream = None;
                Err(fail(e.to_string()))
            }
            Err(_) => {
                self.stream = None;
                Err(fail(format!("no answer in {REQUEST_TIMEOUT:?}")))
            }
        }
    }

    async fn exchange(&mut self, path: &str) -> std::io::Result<(u16, Vec<u8>)> {
        use std::io::{Error, ErrorKind};
        let bad = |m: String| Error::new(ErrorKind::InvalidData, m);
        if self.stream.is_none() {
            let s = TcpStream::connect(self.addr).await?;
            s.set_nodelay(true)?;
            self.stream = Some(BufReader::new(s));
        }
        let Some(stream) = self.stream.as_mut() else {
            return Err(Error::other("no connection"));
        };
        let req = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", self.addr);
        stream.get_mut().write_all(req.as_bytes()).await?;

        let mut line = String::new();
        if stream.read_line(&mut line).await? == 0 {
            return Err(Error::new(ErrorKind::UnexpectedEof, "closed before status"));
        }
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(format!("bad status line {line:?}")))?;
        let mut length: Option<usize> = None;
        let mut close = false;
        for _ in 0..MAX_HEADER_LINES {
            line.clear();
            if stream.read_line(&mut line).await? == 0 {
                return Err(Error::new(ErrorKind::UnexpectedEof, "closed in headers"));
            }
            let l = line.trim_end();
            if l.is_empty() {
                let n = length.ok_or_else(|| bad("no Content-Length".into()))?;
                if n > MAX_BODY {
                    return Err(bad(format!("body of {n} bytes")));
                }
                let mut body = vec![0; n];
                stream.read_exact(&mut body).await?;
                if close {
                    self.stream = None;
                }
                return Ok((status, body));
            }
            let Some((name, value)) = l.split_once(':') else {
                return Err(bad(format!("bad header {l:?}")));
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("Content-Length {value:?}")))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(bad(format!("Transfer-Encoding {value} not supported")));
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        Err(bad("too many header lines".into()))
    }
}

pub(crate) fn hist() -> Histogram<u64> {
    // 1 µs .. 10 min, 3 significant digits.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

pub(crate) fn record(h: &mut Histogram<u64>, d: Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1);
    h.saturating_record(us);
}

/// The library's HTTP server on `127.0.0.1:0`, in this process.
pub(crate) struct InProcess {
    /// Where it listens.
    pub(crate) addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    /// Binds and starts serving `lib`.
    pub(crate) async fn start(lib: &Arc<Library>) -> Result<InProcess, BenchError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(io_err("binding 127.0.0.1:0"))?;
        let addr = listener.local_addr().map_err(io_err("local address"))?;
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(sockit_reader::http::serve(
            listener,
            Arc::clone(lib),
            shutdown.clone(),
        ));
        Ok(InProcess {
            addr,
            shutdown,
            task,
        })
    }

    /// Stops it and waits (at most 10 s) for it to finish.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.task).await;
    }
}

/// Runs the benchmark; writes `reader.json` and `reader.md` into `config.out_dir` if set.
///
/// # Errors
/// Setting up the library or any request failed, or the results could not be written.
pub async fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    let pages = config.pages.max(1);
    let dir = tempfile::tempdir().map_err(io_err("temporary directory"))?;
    let mut cfg = ReaderConfig::for_root(dir.path());
    cfg.rescan_interval = Duration::from_secs(3600);
    std::fs::create_dir_all(&cfg.books_dir).map_err(io_err("books directory"))?;
    let body = [
        "A generated page for the reader benchmark.",
        "Lines of text so the rasterizer has glyphs to draw.",
        "The quick brown fox jumps over the lazy dog.",
    ];
    let pdf = sockit_reader::demo::make_pdf("Bench", "sockit", pages, &body);
    let pdf_bytes = pdf.len() as u64;
    std::fs::write(cfg.books_dir.join("bench.pdf"), &pdf).map_err(io_err("writing the PDF"))?;
    // About 330 characters a paragraph, 1500 characters a page.
    let txt = sockit_reader::demo::sample_english(pages as usize * 5);
    std::fs::write(cfg.books_dir.join("bench.txt"), txt).map_err(io_err("writing the TXT"))?;
    let cache_dir = cfg.state_dir.join("cache");
    let txt_page_chars = cfg.txt_page_chars;
    let render_workers = cfg.render_workers;

    let lib = tokio::task::spawn_blocking(move || Library::open(cfg))
        .await
        .map_err(|e| BenchError::Io {
            what: "opening the library".into(),
            source: std::io::Error::other(e.to_string()),
        })??;
    let find = |name: &str| lib.book_by_path(name);
    let (pdf_book, txt_book) = (find("bench.pdf")?, find("bench.txt")?);
    let pdf_pages = pdf_book.pages.unwrap_or(0);
    let txt_pages = txt_book.pages.unwrap_or(0);
    if pdf_pages == 0 || txt_pages == 0 {
        return Err(BenchError::Request {
            path: "catalog".into(),
            message: format!("the generated books have {pdf_pages} and {txt_pages} pages"),
        });
    }

    let server = InProcess::start(&lib).await?;
    let addr = server.addr;
    let result = measure(
        addr,
        config,
        &cache_dir,
        (pdf_book.id, pdf_pages),
        (txt_book.id, txt_pages),
    )
    .await;
    server.stop().await;
    let (pdf_cold, pdf_cached, txt_first_ms, txt, concurrent) = result?;
    drop(lib);
    drop(dir);
    let library = match config.library_books {
        0 => None,
        n => Some(library::run(n, config.library_requests).await?),
    };

    let mut report = BenchReport {
        pdf_pages,
        pdf_bytes,
        txt_pages,
        txt_page_chars,
        width: config.width,
        render_workers,
        pdf_cold,
        pdf_cached,
        txt_first_ms,
        txt,
        concurrent,
        library,
        markdown: String::new(),
    };
    report.markdown = markdown(&report);
    if let Some(out) = &config.out_dir {
        write_results(out, &report)?;
    }
    Ok(report)
}

type Measured = (Latency, Latency, f64, Latency, Concurrent);

async fn measure(
    addr: SocketAddr,
    config: &BenchConfig,
    cache_dir: &Path,
    (pdf_id, pdf_pages): (i64, u64),
    (txt_id, txt_pages): (i64, u64),
) -> Result<Measured, BenchError> {
    let width = config.width;
    let mut conn = Conn::new(addr);
    // Open the connection outside the measurements.
    conn.get(&format!("/api/books/{pdf_id}")).await?;

    // Cold: empty the render cache, then the first request of every page.
    clear_dir(cache_dir)?;
    let (mut cold, mut cached) = (hist(), hist());
    for n in 1..=pdf_pages {
        let path = format!("/api/books/{pdf_id}/page/{n}?width={width}");
        let t = Instant::now();
        conn.get(&path).await?;
        record(&mut cold, t.elapsed());
    }
    for n in 1..=pdf_pages {
        let path = format!("/api/books/{pdf_id}/page/{n}?width={width}");
        let t = Instant::now();
        conn.get(&path).await?;
        record(&mut cached, t.elapsed());
    }

    let t = Instant::now();
    conn.get(&format!("/api/books/{txt_id}/text/1")).await?;
    let txt_first_ms = t.elapsed().as_secs_f64() * 1000.0;
    let mut txt = hist();
    for n in 1..=txt_pages {
        let t = Instant::now();
        conn.get(&format!("/api/books/{txt_id}/text/{n}")).await?;
        record(&mut txt, t.elapsed());
    }

    let concurrent = readers(addr, config, (pdf_id, pdf_pages), (txt_id, txt_pages)).await?;
    Ok((
        Latency::from_hist(&cold),
        Latency::from_hist(&cached),
        txt_first_ms,
        Latency::from_hist(&txt),
        concurrent,
    ))
}

/// `config.readers` readers paging for `config.duration`.
async fn readers(
    addr: SocketAddr,
    config: &BenchConfig,
    pdf: (i64, u64),
    txt: (i64, u64),
) -> Result<Concurrent, BenchError> {
    let n = config.readers.max(1);
    let width = config.width;
    // Every reader connects first; the clock starts when all are connected.
    let start = Arc::new(tokio::sync::Barrier::new(n + 1));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let start = Arc::clone(&start);
        let duration = config.duration;
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::new(addr);
            let (id, pages, is_pdf) = if i % 2 == 0 {
                (pdf.0, pdf.1, true)
            } else {
                (txt.0, txt.1, false)
            };
            let opened = conn.get(&format!("/api/books/{id}")).await;
            start.wait().await;
            opened?;
            let deadline = Instant::now() + duration;
            let mut h = hist();
            let mut page = (i as u64 / 2) % pages + 1;
            for _ in 0..MAX_REQUESTS_PER_READER {
                if Instant::now() >= deadline {
                    break;
                }
                let path = if is_pdf {
                    format!("/api/books/{id}/page/{page}?width={width}")
                } else {
                    format!("/api/books/{id}/text/{page}")
                };
                let t = Instant::now();
                conn.get(&path).await?;
                record(&mut h, t.elapsed());
                page = page % pages + 1;
            }
            Ok::<_, BenchError>(h)
        }));
    }
    start.wait().await;
    let t0 = Instant::now();
    let mut all = hist();
    let mut first_err = None;
    for task in tasks {
        match task.await {
            Ok(Ok(h)) => {
                let _ = all.add(&h);
            }
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(BenchError::Io {
                    what: "a reader task".into(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        }
    }
    let seconds = t0.elapsed().as_secs_f64();
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(Concurrent {
        readers: n,
        seconds,
        pages: all.len(),
        pages_per_s: all.len() as f64 / seconds.max(1e-9),
        latency: Latency::from_hist(&all),
    })
}

fn clear_dir(dir: &Path) -> Result<(), BenchError> {
    let rd = std::fs::read_dir(dir).map_err(io_err(format!("reading {}", dir.display())))?;
    for e in rd.take(10_000_000) {
        let p = e.map_err(io_err("listing the cache"))?.path();
        if p.is_file() {
            std::fs::remove_file(&p).map_err(io_err(format!("removing {}", p.display())))?;
        }
    }
    Ok(())
}

/// The report as a markdown section.
pub fn markdown(r: &BenchReport) -> String {
    let row = |what: &str, l: &Latency| {
        format!(
            "| {what} | {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
            l.count, l.p50_ms, l.p99_ms, l.max_ms, l.mean_ms
        )
    };
    let c = &r.concurrent;
    let mut s = format!(
        "## Reader benchmark\n\n\
         In-process HTTP server on 127.0.0.1, one keep-alive HTTP/1.1 connection per client. \
         PDF: {} pages ({} bytes, generated), rendered {} px wide as PNG, {} render workers. \
         TXT: {} pages of {} characters.\n\n\
         | measurement | requests | p50 ms | p99 ms | max ms | mean ms |\n\
         |---|---:|---:|---:|---:|---:|\n",
        r.pdf_pages, r.pdf_bytes, r.width, r.render_workers, r.txt_pages, r.txt_page_chars
    );
    s.push_str(&row(
        "PDF page, cold (render after clearing the cache)",
        &r.pdf_cold,
    ));
    s.push_str(&row("PDF page, cached (second request)", &r.pdf_cached));
    s.push_str(&row("TXT page", &r.txt));
    s.push_str(&row(
        &format!("{} concurrent readers (half PDF, half TXT)", c.readers),
        &c.latency,
    ));
    s.push_str(&format!(
        "\nTXT warm-up (decode and page the file): {:.2} ms. \
         Concurrent readers: {} pages in {:.2} s = **{:.0} pages/s**.\n",
        r.txt_first_ms, c.pages, c.seconds, c.pages_per_s
    ));
    if let Some(l) = &r.library {
        s.push('\n');
        s.push_str(&library::markdown(l));
    }
    s
}

fn write_results(out: &Path, r: &BenchReport) -> Result<(), BenchError> {
    std::fs::create_dir_all(out).map_err(io_err(format!("creating {}", out.display())))?;
    let json = serde_json::to_string_pretty(r).unwrap_or_default();
    for (name, text) in [("reader.json", json), ("reader.md", r.markdown.clone())] {
        sockit_reader::write_atomic(&out.join(name), text.as_bytes())?;
    }
    Ok(())
}
