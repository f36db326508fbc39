//! The shared runtime's limits hold on the reader's ports: connection limits (total and
//! per address) answered with `503`, the handshake and idle timeouts, and slowloris
//! (clients trickling a request one byte at a time are dropped at the handshake timeout
//! however steadily they trickle, and good clients are served). Also: errors never show
//! the server's paths.
//!
//! Every test runs on a paused clock (`start_paused`): deadlines are virtual, so the tests
//! are exact and fast, and assert only what was served and what was closed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sockit_reader::classic::ClassicService;
use sockit_reader::http::tls::HttpsService;
use sockit_reader::http::HttpService;
use sockit_reader::{Library, ReaderConfig};
use sockit_runtime::server::{self as runtime, Limits, TcpService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const ALICE: &str = "Alice was beginning to get very tired of sitting by her sister on the \
                     bank, and of having nothing to do.\n";
const GET: &[u8] = b"GET /healthcheck HTTP/1.1\r\nHost: reader\r\n\r\n";
/// How long a test waits for the server to close a connection before failing (virtual).
const GIVE_UP: Duration = Duration::from_secs(120);

struct Fixture {
    dir: tempfile::TempDir,
    lib: Arc<Library>,
    shutdown: CancellationToken,
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let cfg = ReaderConfig::for_root(dir.path());
    std::fs::create_dir_all(&cfg.books_dir).unwrap();
    std::fs::write(cfg.books_dir.join("alice.txt"), ALICE.repeat(40)).unwrap();
    let lib = Library::open(cfg).unwrap();
    Fixture {
        dir,
        lib,
        shutdown: CancellationToken::new(),
    }
}

fn limits(max_conns: usize, per_ip: usize, handshake: u64, idle: u64) -> Limits {
    Limits {
        max_conns,
        max_conns_per_ip: per_ip,
        handshake_timeout: Duration::from_secs(handshake),
        idle_timeout: Duration::from_secs(idle),
        write_timeout: Duration::from_secs(5),
        backlog: 128,
        drain_timeout: Duration::from_secs(1),
    }
}

/// Serves `service` on a fresh loopback port.
fn start(f: &Fixture, service: Arc<dyn TcpService>, limits: Limits) -> SocketAddr {
    let listener = runtime::bind_tcp("127.0.0.1:0".parse().unwrap(), 128).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(runtime::serve_tcp(
        listener,
        service,
        limits,
        f.shutdown.clone(),
    ));
    addr
}

fn http(f: &Fixture, limits: Limits) -> SocketAddr {
    start(f, Arc::new(HttpService::new(f.lib.clone())), limits)
}

fn classic(f: &Fixture, limits: Limits) -> SocketAddr {
    start(f, Arc::new(ClassicService::new(f.lib.clone())), limits)
}

/// One HTTP response as a client sees it.
#[derive(Debug)]
struct Reply {
    status: u16,
    head: String,
    body: String,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Reads one response (Content-Length framed); `None` if the connection closed first.
async fn response<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Reply> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let end = loop {
        if let Some(end) = find(&buf, b"\r\n\r\n") {
            break end;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let len = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.trim().parse::<usize>().ok())
        .unwrap_or(0);
    while buf.len() < end + 4 + len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[end + 4..end + 4 + len]).into_owned();
    Some(Reply { status, head, body })
}

/// Sends one request on an open connection and reads its response.
async fn ask<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    s: &mut S,
    request: &[u8],
) -> Option<Reply> {
    s.write_all(request).await.ok()?;
    response(s).await
}

/// A new connection that sent `GET /healthcheck` and got `200`.
async fn served(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let r = ask(&mut s, GET).await.expect("connection closed");
    assert_eq!(r.status, 200, "{r:?}");
    s
}

/// Waits until the server closes `s` (EOF or reset), discarding what it sends; fails the
/// test if it stays open for [`GIVE_UP`].
async fn closed_by_server(s: &mut TcpStream, what: &str) {
    let mut buf = [0u8; 4096];
    let drained = tokio::time::timeout(GIVE_UP, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(drained.is_ok(), "{what}: still open after {GIVE_UP:?}");
}

/// How a trickling client's connection ended.
#[derive(Debug)]
struct Trickled {
    /// The server closed it (rather than the client giving up).
    closed: bool,
    /// Bytes the client managed to send.
    sent: usize,
    /// When it was closed, from connect.
    after: Duration,
}

/// Connects `n` clients (all in the server's accept queue, in order, when this returns).
async fn connect_all(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut out = Vec::new();
    for _ in 0..n {
        let s = TcpStream::connect(addr).await.unwrap();
        s.set_nodelay(true).unwrap();
        out.push(s);
    }
    out
}

/// Sends `prefix` then `pad` bytes on `s` one at a time every `every`, never finishing a
/// request, reading whatever the server answers, until the server closes the connection
/// or `max_bytes` are sent. `since` is when the client connected.
async fn trickle(
    mut s: TcpStream,
    since: Instant,
    prefix: &'static [u8],
    pad: u8,
    every: Duration,
    max_bytes: usize,
) -> Trickled {
    let mut sent = 0usize;
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => {
                    return Trickled { closed: true, sent, after: since.elapsed() };
                }
                Ok(_) => {}
            },
            () = tokio::time::sleep(every) => {
                if sent == max_bytes {
                    return Trickled { closed: false, sent, after: since.elapsed() };
                }
                let byte = prefix.get(sent).copied().unwrap_or(pad);
                if s.write_all(&[byte]).await.is_err() {
                    return Trickled { closed: true, sent, after: since.elapsed() };
                }
                sent += 1;
            }
        }
    }
}

/// Starts a trickler on each connection.
fn trickle_all(
    conns: Vec<TcpStream>,
    since: Instant,
    prefix: &'static [u8],
    pad: u8,
) -> Vec<tokio::task::JoinHandle<Trickled>> {
    conns
        .into_iter()
        .map(|s| tokio::spawn(trickle(s, since, prefix, pad, EVERY, MAX_TRICKLE)))
        .collect()
}

async fn results(tasks: Vec<tokio::task::JoinHandle<Trickled>>) -> Vec<Trickled> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A trickler sends a byte this often (well under the handshake timeout) ...
const EVERY: Duration = Duration::from_millis(200);
/// ... up to this many (a minute of trickling).
const MAX_TRICKLE: usize = 300;

fn assert_all_dropped_at_handshake(results: &[Trickled], handshake: Duration, max: usize) {
    for (i, t) in results.iter().enumerate() {
        assert!(t.closed, "trickler {i} still open after {max} bytes: {t:?}");
        assert!(t.sent < max, "trickler {i}: {t:?}");
        assert!(t.after >= handshake, "trickler {i} closed early: {t:?}");
    }
}

const HEAD_PREFIX: &[u8] = b"GET /healthcheck HTTP/1.1\r\nHost: reader\r\nX-Pad: ";

#[tokio::test(start_paused = true)]
async fn max_conns_refuses_the_next_client_with_503() {
    let f = fixture();
    let addr = http(&f, limits(3, 100, 10, 60));
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(served(addr).await);
    }
    let mut extra = TcpStream::connect(addr).await.unwrap();
    let r = ask(&mut extra, GET).await.expect("no 503 answer");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.head.contains("Retry-After: "), "{}", r.head);
    assert!(r.body.contains("limit of 3 connections"), "{}", r.body);
    closed_by_server(&mut extra, "refused connection").await;

    // The three admitted keep-alive connections still work.
    for s in &mut open {
        assert_eq!(ask(s, GET).await.unwrap().status, 200);
    }
    // A client that leaves frees its slot.
    let mut gone = open.pop().unwrap();
    let bye = b"GET /healthcheck HTTP/1.1\r\nHost: reader\r\nConnection: close\r\n\r\n";
    assert_eq!(ask(&mut gone, bye).await.unwrap().status, 200);
    closed_by_server(&mut gone, "Connection: close").await;
    drop(gone);
    let mut admitted = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        match ask(&mut s, GET).await {
            Some(r) if r.status == 200 => {
                admitted = true;
                break;
            }
            // The server may not have noticed the close yet: let it run.
            _ => tokio::task::yield_now().await,
        }
    }
    assert!(admitted, "the freed slot was never given to a new client");
}

#[tokio::test(start_paused = true)]
async fn max_conns_per_ip_refuses_the_address_not_the_others() {
    let f = fixture();
    let addr = http(&f, limits(100, 2, 10, 60));
    let _a = served(addr).await;
    let _b = served(addr).await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    let r = ask(&mut third, GET).await.expect("no 503 answer");
    assert_eq!(r.status, 503, "{r:?}");
    assert!(
        r.body.contains("too many connections from 127.0.0.1"),
        "{}",
        r.body
    );
    // Another loopback address is not held back by 127.0.0.1's connections.
    let sock = TcpSocket::new_v4().unwrap();
    sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
    let mut other = sock.connect(addr).await.unwrap();
    assert_eq!(ask(&mut other, GET).await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let f = fixture();
    let (handshake, idle) = (1, 3);
    let addr = http(&f, limits(100, 100, handshake, idle));
    let mut s = served(addr).await;
    // Idle for longer than the handshake timeout but less than the idle timeout: the
    // keep-alive connection still serves.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = Instant::now();
    assert_eq!(
        ask(&mut s, GET).await.expect("closed too early").status,
        200
    );
    closed_by_server(&mut s, "idle keep-alive connection").await;
    assert!(asked.elapsed() >= Duration::from_secs(idle));
}

// Real time, not the paused clock: with a paused clock the runtime may jump to the 120 s
// hang guard before the kernel has delivered the server's FIN to the client (under load
// the loopback delivery is deferred), and the test failed although the server had closed.
#[tokio::test]
async fn handshake_timeout_closes_silent_and_unfinished_clients() {
    let f = fixture();
    let addr = http(&f, limits(100, 100, 1, 30));
    let connected = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut partial = TcpStream::connect(addr).await.unwrap();
    partial.write_all(HEAD_PREFIX).await.unwrap();
    closed_by_server(&mut silent, "silent client").await;
    closed_by_server(&mut partial, "client with half a request head").await;
    assert!(connected.elapsed() >= Duration::from_secs(1));
}

#[tokio::test(start_paused = true)]
async fn http_slowloris_is_dropped_and_good_clients_are_served() {
    let f = fixture();
    let handshake = Duration::from_secs(1);
    // Room for the 20 tricklers and one good client.
    let addr = http(&f, limits(21, 100, 1, 30));
    let since = Instant::now();
    let tricklers = trickle_all(connect_all(addr, 20).await, since, HEAD_PREFIX, b'a');
    // While they trickle, a good client is served, request after request.
    let mut good = served(addr).await;
    assert_eq!(ask(&mut good, GET).await.unwrap().status, 200);
    assert_all_dropped_at_handshake(&results(tricklers).await, handshake, MAX_TRICKLE);
    assert_eq!(ask(&mut good, GET).await.unwrap().status, 200);
}

#[tokio::test(start_paused = true)]
async fn http_slowloris_cannot_lock_out_a_good_client() {
    let f = fixture();
    let handshake = Duration::from_secs(1);
    let addr = http(&f, limits(20, 100, 1, 30));
    let since = Instant::now();
    // The tricklers take every slot ...
    let conns = connect_all(addr, 20).await;
    // ... so a good client behind them in the accept queue is refused for now ...
    let mut refused = TcpStream::connect(addr).await.unwrap();
    assert_eq!(ask(&mut refused, GET).await.unwrap().status, 503);
    let tricklers = trickle_all(conns, since, HEAD_PREFIX, b'a');
    assert_all_dropped_at_handshake(&results(tricklers).await, handshake, MAX_TRICKLE);
    // ... but once the handshake timeout has dropped them, it is served.
    let mut served_now = false;
    for _ in 0..50 {
        let mut s = TcpStream::connect(addr).await.unwrap();
        if ask(&mut s, GET).await.is_some_and(|r| r.status == 200) {
            served_now = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served_now, "the good client stayed locked out");
}

#[tokio::test(start_paused = true)]
async fn classic_slowloris_is_dropped_and_good_clients_are_served() {
    let f = fixture();
    let handshake = Duration::from_secs(1);
    let addr = classic(&f, limits(21, 100, 1, 30));
    let since = Instant::now();
    let tricklers = trickle_all(connect_all(addr, 20).await, since, b"1 alice.txt", b' ');
    let mut good = TcpStream::connect(addr).await.unwrap();
    good.write_all(b"1 alice.txt").await.unwrap();
    let mut buf = [0u8; 64];
    let n = good.read(&mut buf).await.unwrap();
    let pages = String::from_utf8_lossy(&buf[..n]).trim().parse::<u64>();
    assert_eq!(pages.ok(), f.lib.book_by_path("alice.txt").unwrap().pages);
    assert_all_dropped_at_handshake(&results(tricklers).await, handshake, MAX_TRICKLE);
    // The good client's connection outlives them.
    good.write_all(b"2 1").await.unwrap();
    let n = good.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("Alice was"));
}

#[tokio::test(start_paused = true)]
async fn classic_client_cannot_hold_the_port_with_fragments_after_a_good_request() {
    let f = fixture();
    let addr = classic(&f, limits(100, 100, 1, 30));
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"1 alice.txt").await.unwrap();
    let mut buf = [0u8; 256];
    assert!(s.read(&mut buf).await.unwrap() > 0);
    // One byte at a time, each answered with an error: closed long before the idle
    // timeout would end it.
    let mut closed = false;
    for _ in 0..100 {
        if s.write_all(b"x").await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) if String::from_utf8_lossy(&buf[..n]).contains("too many bad requests") => {
                closed_by_server(&mut s, "fragment feeder").await;
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(closed, "100 fragments kept the classic connection open");
}

/// The server-side paths a client must never see.
fn server_paths(f: &Fixture) -> Vec<String> {
    let mut paths = vec![f.dir.path().display().to_string()];
    if let Ok(c) = f.dir.path().canonicalize() {
        paths.push(c.display().to_string());
    }
    paths
}

fn assert_no_server_path(f: &Fixture, text: &str, what: &str) {
    for p in server_paths(f) {
        assert!(
            !text.contains(&p),
            "{what} shows the server path {p}: {text}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_300_character_book_name_gets_an_error_without_server_paths() {
    let f = fixture();
    let limits = limits(100, 100, 10, 30);
    let (h, c) = (http(&f, limits), classic(&f, limits));
    let long = "a".repeat(300);

    let mut s = TcpStream::connect(h).await.unwrap();
    let req = format!("GET /books/{long} HTTP/1.1\r\nHost: reader\r\n\r\n");
    let r = ask(&mut s, req.as_bytes()).await.expect("no answer");
    assert_eq!(r.status, 404, "{r:?}");
    assert_no_server_path(&f, &r.body, "HTTP /books/");
    assert!(!r.body.contains("/books/"), "{}", r.body);

    let mut s = TcpStream::connect(c).await.unwrap();
    for verb in ["0", "1"] {
        s.write_all(format!("{verb} {long}").as_bytes())
            .await
            .unwrap();
        let mut buf = vec![0u8; 8192];
        let n = s.read(&mut buf).await.unwrap();
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("error: "), "{verb}: {text}");
        assert_no_server_path(&f, &text, &format!("classic `{verb}`"));
        assert!(!text.contains("/books/"), "{verb}: {text}");
    }
}

fn https(f: &Fixture, limits: Limits) -> (SocketAddr, sockit_runtime::tls::Fingerprint) {
    let (identity, _) =
        sockit_runtime::tls::ServerIdentity::load_or_generate(&f.dir.path().join("tls")).unwrap();
    let acceptor = sockit_runtime::tls::acceptor(&identity).unwrap();
    let service = Arc::new(HttpsService::new(f.lib.clone(), acceptor));
    (start(f, service, limits), identity.fingerprint())
}

#[tokio::test(start_paused = true)]
async fn https_serves_over_tls_under_the_runtime_limits() {
    let f = fixture();
    let (addr, fp) = https(&f, limits(2, 100, 1, 30));
    let (connector, _) =
        sockit_runtime::tls::connector(sockit_runtime::tls::Trust::Pinned(fp)).unwrap();
    let name = sockit_runtime::tls::server_name("127.0.0.1").unwrap();

    let tcp = TcpStream::connect(addr).await.unwrap();
    let mut tls = connector.connect(name.clone(), tcp).await.unwrap();
    assert_eq!(ask(&mut tls, GET).await.expect("no answer").status, 200);

    // Plain HTTP on the HTTPS port: 400 in plain text.
    let mut plain = TcpStream::connect(addr).await.unwrap();
    let r = ask(&mut plain, GET).await.expect("no answer");
    assert_eq!(r.status, 400, "{r:?}");
    drop(plain);

    // A silent client is closed at the handshake timeout.
    let mut silent = TcpStream::connect(addr).await.unwrap();
    closed_by_server(&mut silent, "silent HTTPS client").await;

    // Over the limit (the TLS connection and a second one open): the third is closed
    // without a handshake.
    let _second = TcpStream::connect(addr).await.unwrap();
    let third = TcpStream::connect(addr).await.unwrap();
    let refused = connector.connect(name, third).await;
    assert!(refused.is_err(), "a third TLS connection was accepted");
    assert_eq!(ask(&mut tls, GET).await.expect("closed").status, 200);
}
