//! IRC authentication (SASL PLAIN, PASS account:password, the server password) and the
//! registration deadline, against the connection handler over in-memory streams with
//! paused time, and over real sockets where the runtime's connection limit is the point.

use crate::common;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use sockit_chat::irc::{AuthVerdict, IrcAuth, IrcServer, IrcTlsServer, Message, ServerConfig};
use sockit_runtime::guarded::{GuardedStream, RequestClock};
use sockit_runtime::server::{bind_tcp, serve_tcp, ConnInfo, Limits};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// An account store with one account, counting the checks it makes.
#[derive(Debug, Default)]
struct FakeAuth {
    required: bool,
    /// When set, every account is backing off for this long.
    throttle: Mutex<Option<Duration>>,
    calls: AtomicUsize,
    seen_ip: Mutex<Option<IpAddr>>,
}

impl FakeAuth {
    fn required() -> Arc<Self> {
        Arc::new(Self {
            required: true,
            ..Self::default()
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl IrcAuth for FakeAuth {
    fn required(&self) -> bool {
        self.required
    }

    fn retry_after(&self, _account: &str, _ip: IpAddr) -> Option<Duration> {
        *self.throttle.lock().unwrap()
    }

    async fn verify(&self, account: &str, password: &str, ip: IpAddr) -> AuthVerdict {
        self.calls.fetch_add(1, Ordering::SeqCst);
        *self.seen_ip.lock().unwrap() = Some(ip);
        // A slow hash: the server must not hold its state lock meanwhile.
        tokio::time::sleep(Duration::from_millis(50)).await;
        if account == "alice" && password == "s3cret" {
            AuthVerdict::Ok
        } else {
            AuthVerdict::Bad
        }
    }
}

fn cfg_with(auth: Option<Arc<FakeAuth>>) -> ServerConfig {
    ServerConfig {
        auth: auth.map(|a| a as Arc<dyn IrcAuth>),
        ..common::config()
    }
}

fn limits(handshake: Duration, idle: Duration) -> Limits {
    Limits {
        handshake_timeout: handshake,
        idle_timeout: idle,
        max_conns_per_ip: 10_000,
        ..Limits::default()
    }
}

fn plain(authzid: &str, account: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("{authzid}\0{account}\0{password}"))
}

/// A client of the handler over an in-memory stream guarded as the runtime guards sockets.
struct Mem {
    rd: BufReader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    wr: tokio::io::WriteHalf<tokio::io::DuplexStream>,
    task: JoinHandle<io::Result<String>>,
}

impl Mem {
    fn open(server: &IrcServer, limits: Limits) -> Mem {
        let (client, server_side) = tokio::io::duplex(64 * 1024);
        let clock = RequestClock::new();
        let stream =
            GuardedStream::with_clock(server_side, limits.stream_timeouts(), clock.clone());
        let info = ConnInfo {
            peer: "127.0.0.1:40000".parse().unwrap(),
            limits,
            shutdown: CancellationToken::new(),
            clock,
        };
        let srv = server.clone();
        let task = tokio::spawn(async move { srv.serve_connection(stream, info).await });
        let (rd, wr) = tokio::io::split(client);
        Mem {
            rd: BufReader::new(rd),
            wr,
            task,
        }
    }

    async fn send(&mut self, line: &str) {
        self.wr
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    async fn try_line(&mut self) -> Option<String> {
        line_of(&mut self.rd).await
    }

    async fn msg(&mut self) -> Message {
        let l = self.try_line().await.expect("connection closed");
        Message::parse(l.as_bytes()).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))
    }

    async fn expect(&mut self, command: &str) -> Message {
        let m = self.msg().await;
        assert_eq!(m.command, command, "expected {command}, got {m}");
        m
    }

    async fn until_cmd(&mut self, command: &str) -> Message {
        for _ in 0..1000 {
            let m = self.msg().await;
            if m.command == command {
                return m;
            }
        }
        panic!("no {command}");
    }

    /// Every line up to EOF.
    async fn until_closed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(l) = self.try_line().await {
            out.push(l);
            assert!(out.len() < 10_000, "connection not closed");
        }
        out
    }

    /// The handler's close reason (after EOF).
    async fn reason(self) -> String {
        self.task.await.unwrap().unwrap()
    }
}

/// The next line without CRLF, `None` at EOF (a hang fails after an hour of virtual time).
async fn line_of<R: AsyncRead + Unpin>(rd: &mut BufReader<R>) -> Option<String> {
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(3600), rd.read_until(b'\n', &mut buf))
        .await
        .expect("timed out waiting for a line")
        .ok()?;
    if n == 0 {
        return None;
    }
    assert!(buf.ends_with(b"\r\n"), "line without CRLF: {buf:?}");
    Some(String::from_utf8_lossy(&buf[..buf.len() - 2]).into_owned())
}

const HS: Duration = Duration::from_secs(10);
const IDLE: Duration = Duration::from_secs(300);

/// CAP LS 302, NICK, USER, CAP REQ :sasl, AUTHENTICATE PLAIN: up to the server's `+`.
async fn start_sasl(c: &mut Mem, nick: &str) {
    c.send("CAP LS 302").await;
    let ls = c.expect("CAP").await;
    assert_eq!(ls.params[..2], ["*", "LS"]);
    assert!(ls.params[2].split(' ').any(|c| c == "sasl=PLAIN"), "{ls}");
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("CAP REQ :sasl").await;
    assert_eq!(c.expect("CAP").await.params, vec![nick, "ACK", "sasl"]);
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.try_line().await.as_deref(), Some("AUTHENTICATE +"));
}

#[tokio::test(start_paused = true)]
async fn sasl_plain_logs_in_then_registers() {
    let auth = FakeAuth::required();
    let server = IrcServer::new(cfg_with(Some(auth.clone())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    start_sasl(&mut c, "al").await;
    c.send(&format!("AUTHENTICATE {}", plain("", "alice", "s3cret")))
        .await;
    let logged = c.expect("900").await;
    assert_eq!(
        logged.params,
        vec![
            "al",
            "al!al@127.0.0.1",
            "alice",
            "You are now logged in as alice"
        ]
    );
    assert_eq!(
        c.expect("903").await.params[1],
        "SASL authentication successful"
    );
    c.send("CAP LIST").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["al", "LIST", "cap-notify sasl"]
    );
    // Registration waits for CAP END.
    c.send("CAP END").await;
    c.expect("001").await;
    c.until_cmd("376").await;
    assert_eq!(auth.calls(), 1);
    assert_eq!(
        *auth.seen_ip.lock().unwrap(),
        Some("127.0.0.1".parse().unwrap())
    );
    c.send("AUTHENTICATE PLAIN").await;
    c.expect("907").await;
}

#[tokio::test(start_paused = true)]
async fn sasl_authzid_equal_to_the_account_and_chunked_payloads() {
    let auth = FakeAuth::required();
    let server = IrcServer::new(cfg_with(Some(auth.clone())));

    // A payload of exactly 400 base64 bytes: one chunk, then `+`.
    let mut c = Mem::open(&server, limits(HS, IDLE));
    start_sasl(&mut c, "al").await;
    // "alice\0alice\0" + pw = 300 raw bytes = 400 base64 bytes.
    let pw = "x".repeat(300 - 12);
    let payload = plain("alice", "alice", &pw);
    assert_eq!(payload.len(), 400);
    c.send(&format!("AUTHENTICATE {payload}")).await;
    c.send("AUTHENTICATE +").await;
    // Decoded and checked (wrong password for alice): one verify call.
    c.expect("904").await;
    assert_eq!(auth.calls(), 1);

    // The right password split over two chunks.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.try_line().await.as_deref(), Some("AUTHENTICATE +"));
    let padded = plain("alice", "alice", "s3cret");
    c.send(&format!("AUTHENTICATE {}", &padded[..10])).await;
    // A chunk under 400 ends the payload: 10 bytes of base64 alone are malformed.
    c.expect("904").await;

    // A chunk over 400 bytes: 905; then abort and mechanism errors.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.try_line().await.as_deref(), Some("AUTHENTICATE +"));
    c.send(&format!("AUTHENTICATE {}", "A".repeat(401))).await;
    c.expect("905").await;
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(c.expect("908").await.params[1], "PLAIN");
    c.expect("904").await;
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.try_line().await.as_deref(), Some("AUTHENTICATE +"));
    c.send("AUTHENTICATE *").await;
    c.expect("906").await;
    // Two failures counted so far (wrong password, malformed): the third closes.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.try_line().await.as_deref(), Some("AUTHENTICATE +"));
    c.send(&format!("AUTHENTICATE {}", plain("", "alice", "nope")))
        .await;
    c.expect("904").await;
    let rest = c.until_closed().await;
    assert!(
        rest.iter()
            .any(|l| l.starts_with("ERROR :Closing Link:") && l.contains("Too many failed logins")),
        "{rest:?}"
    );
    assert!(!rest.iter().any(|l| l.contains(" 001 ")), "{rest:?}");
    assert_eq!(auth.calls(), 2);

    // Impersonation (authzid not the account) is refused without a check.
    let mut c = Mem::open(&server, limits(HS, IDLE));
    start_sasl(&mut c, "mallory").await;
    c.send(&format!("AUTHENTICATE {}", plain("alice", "mallory", "x")))
        .await;
    c.expect("904").await;
    assert_eq!(auth.calls(), 2);

    // Two 400-byte chunks and a short one: 1,000 bytes of base64, well-formed.
    let mut c = Mem::open(&server, limits(HS, IDLE));
    start_sasl(&mut c, "al").await;
    let long = plain("", "alice", &"y".repeat(740));
    assert!(long.len() > 800 && long.len() < 1200, "{}", long.len());
    for chunk in long.as_bytes().chunks(400) {
        c.send(&format!(
            "AUTHENTICATE {}",
            std::str::from_utf8(chunk).unwrap()
        ))
        .await;
    }
    c.expect("904").await;
    assert_eq!(auth.calls(), 3, "the whole payload was decoded and checked");
}

#[tokio::test(start_paused = true)]
async fn sasl_wrong_password_gets_904_and_never_001() {
    let auth = FakeAuth::required();
    let server = IrcServer::new(cfg_with(Some(auth.clone())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    start_sasl(&mut c, "al").await;
    c.send(&format!("AUTHENTICATE {}", plain("", "alice", "wrong")))
        .await;
    assert_eq!(
        c.expect("904").await.params,
        vec!["al", "SASL authentication failed"]
    );
    c.send("CAP END").await;
    let e = c.expect("464").await;
    assert!(
        e.params[1].contains("SASL PLAIN or PASS account:password"),
        "{e}"
    );
    let rest = c.until_closed().await;
    assert_eq!(rest.len(), 1, "{rest:?}");
    assert!(rest[0].starts_with("ERROR :Closing Link: 127.0.0.1 (Authentication required"));
    assert_eq!(auth.calls(), 1);
    assert_eq!(server.client_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn pass_account_password_works_for_clients_without_sasl() {
    let auth = FakeAuth::required();
    let server = IrcServer::new(cfg_with(Some(auth.clone())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("PASS alice:s3cret").await;
    c.send("NICK al").await;
    c.send("USER al 0 * :Al").await;
    assert_eq!(c.expect("900").await.params[2], "alice");
    c.expect("001").await;
    c.until_cmd("376").await;

    // `PASS password` alone: the nick is the account.
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("PASS s3cret").await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice").await;
    c.expect("900").await;
    c.expect("001").await;

    // Wrong: 464 and closed.
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("PASS alice:guess").await;
    c.send("NICK al2").await;
    c.send("USER al2 0 * :Al").await;
    assert_eq!(c.expect("464").await.params[1], "Password incorrect");
    let rest = c.until_closed().await;
    assert!(rest[0].starts_with("ERROR :Closing Link"), "{rest:?}");
    assert_eq!(c.reason().await, "Bad password");
    assert_eq!(auth.calls(), 3);
}

#[tokio::test(start_paused = true)]
async fn required_auth_closes_a_client_that_did_not_authenticate() {
    let auth = FakeAuth::required();
    let server = IrcServer::new(cfg_with(Some(auth.clone())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("NICK anon").await;
    c.send("USER anon 0 * :Anon").await;
    let e = c.expect("464").await;
    assert_eq!(
        e.params[1],
        "Authentication required: use SASL PLAIN or PASS account:password"
    );
    let rest = c.until_closed().await;
    assert_eq!(
        rest,
        vec![
            "ERROR :Closing Link: 127.0.0.1 (Authentication required: use SASL PLAIN or PASS account:password)"
        ]
    );
    assert_eq!(auth.calls(), 0);
    assert_eq!(server.client_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn throttled_logins_get_a_retry_time_and_no_check() {
    let auth = FakeAuth::required();
    *auth.throttle.lock().unwrap() = Some(Duration::from_millis(29_500));
    let server = IrcServer::new(cfg_with(Some(auth.clone())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    start_sasl(&mut c, "al").await;
    c.send(&format!("AUTHENTICATE {}", plain("", "alice", "s3cret")))
        .await;
    let f = c.expect("904").await;
    assert!(f.params[1].contains("try again in 30 seconds"), "{f}");

    let mut p = Mem::open(&server, limits(HS, IDLE));
    p.send("PASS alice:s3cret").await;
    p.send("NICK al2").await;
    p.send("USER al2 0 * :x").await;
    let f = p.expect("464").await;
    assert!(f.params[1].contains("try again in 30 seconds"), "{f}");
    let rest = p.until_closed().await;
    assert!(rest[0].contains("try again in 30 seconds"), "{rest:?}");
    assert_eq!(auth.calls(), 0, "verify is never called while throttled");

    // Once the back-off is over, the same client logs in.
    *auth.throttle.lock().unwrap() = None;
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.try_line().await.as_deref(), Some("AUTHENTICATE +"));
    c.send(&format!("AUTHENTICATE {}", plain("", "alice", "s3cret")))
        .await;
    c.expect("900").await;
    c.expect("903").await;
    c.send("CAP END").await;
    c.expect("001").await;
}

#[tokio::test(start_paused = true)]
async fn server_password_still_admits_and_open_servers_stay_open() {
    // With accounts and a server password, the server password alone passes.
    let auth = FakeAuth::required();
    let server = IrcServer::new(ServerConfig {
        password: Some("sesame".into()),
        ..cfg_with(Some(auth.clone()))
    });
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("PASS sesame").await;
    c.send("NICK guest").await;
    c.send("USER guest 0 * :g").await;
    c.expect("001").await;
    assert_eq!(auth.calls(), 0);

    // Auth available but not required: no credentials needed, SASL still offered, and a
    // stray PASS is ignored as before.
    let optional = Arc::new(FakeAuth::default());
    let server = IrcServer::new(cfg_with(Some(optional.clone())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("CAP LS").await;
    let ls = c.expect("CAP").await;
    assert!(ls.params[2].split(' ').any(|c| c == "sasl"), "{ls}");
    c.send("CAP END").await;
    c.send("PASS whatever").await;
    c.send("NICK free").await;
    c.send("USER free 0 * :f").await;
    c.expect("001").await;
    assert_eq!(optional.calls(), 0);

    // No auth at all: nothing offered, sasl refused, AUTHENTICATE fails.
    let server = IrcServer::new(cfg_with(None));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("CAP LS 302").await;
    let ls = c.expect("CAP").await;
    assert!(!ls.params[2].contains("sasl"), "{ls}");
    c.send("CAP REQ :sasl").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "NAK", "sasl"]);
    c.send("AUTHENTICATE PLAIN").await;
    c.expect("904").await;
    c.send("CAP END").await;
    c.send("NICK n").await;
    c.send("USER n 0 * :n").await;
    c.expect("001").await;
}

#[tokio::test(start_paused = true)]
async fn cap_req_is_all_or_nothing() {
    let server = IrcServer::new(cfg_with(Some(FakeAuth::required())));
    let mut c = Mem::open(&server, limits(HS, IDLE));
    c.send("CAP REQ :multi-prefix draft/no-such-cap sasl").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["*", "NAK", "multi-prefix draft/no-such-cap sasl"]
    );
    c.send("CAP LIST").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "LIST", ""]);
    c.send("CAP REQ :sasl").await;
    c.expect("CAP").await;
    c.send("CAP REQ :-sasl").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "ACK", "-sasl"]);
    c.send("CAP LIST").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "LIST", ""]);
}

/// Writes `pattern` one byte per `every`, over and over, until the connection breaks;
/// returns how many bytes went out.
fn trickle<W: AsyncWrite + Unpin + Send + 'static>(
    mut wr: W,
    pattern: &'static [u8],
    every: Duration,
) -> JoinHandle<usize> {
    tokio::spawn(async move {
        let mut sent = 0;
        for b in pattern.iter().cycle() {
            tokio::time::sleep(every).await;
            if wr.write_all(&[*b]).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    })
}

#[tokio::test(start_paused = true)]
async fn a_trickling_client_is_dropped_at_the_handshake_timeout() {
    let server = IrcServer::new(cfg_with(None));
    let hs = Duration::from_secs(2);
    let c = Mem::open(&server, limits(hs, Duration::from_secs(5)));
    let Mem { mut rd, wr, task } = c;
    let started = Instant::now();
    // Whole lines (`NICK a` again and again), a byte every 100 ms: never registered.
    let trickler = trickle(wr, b"NICK a\r\n", Duration::from_millis(100));
    let mut lines = Vec::new();
    while let Some(l) = line_of(&mut rd).await {
        lines.push(l);
    }
    assert!(
        !trickler.is_finished(),
        "still trickling when the server closed"
    );
    assert!(started.elapsed() >= hs);
    assert_eq!(
        lines,
        vec!["ERROR :Closing Link: 127.0.0.1 (Registration timed out)"]
    );
    assert_eq!(task.await.unwrap().unwrap(), "Registration timed out");
    assert!(trickler.await.unwrap() >= 15, "bytes kept coming");
    assert_eq!(server.client_count(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_registered_client_that_only_answers_pings_stays() {
    // The idle timeout is far below the configured ping interval (90 s): the server pings
    // every half idle timeout, and each PONG is a complete line.
    let server = IrcServer::new(cfg_with(None));
    let mut c = Mem::open(
        &server,
        limits(Duration::from_secs(1), Duration::from_secs(4)),
    );
    c.send("NICK quiet").await;
    c.send("USER quiet 0 * :q").await;
    c.until_cmd("376").await;
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(60) {
        let m = c.msg().await;
        assert_eq!(m.command, "PING", "{m}");
        c.send("PONG :irc.test").await;
        pings += 1;
    }
    assert!(pings >= 15, "{pings} pings in a minute");
    c.send("PING :still-here").await;
    assert_eq!(c.expect("PONG").await.params[1], "still-here");
    assert_eq!(server.client_count(), 1);

    // One that stops answering is dropped (by the ping timeout or the idle timeout).
    let lines = c.until_closed().await;
    assert!(lines.iter().any(|l| l.starts_with("PING")), "{lines:?}");
    assert!(
        lines
            .last()
            .is_some_and(|l| l.starts_with("ERROR :Closing Link")),
        "{lines:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn registration_deadline_holds_during_sasl_and_a_slow_check() {
    let auth = FakeAuth::required();
    let server = IrcServer::new(cfg_with(Some(auth.clone())));
    let mut c = Mem::open(&server, limits(Duration::from_secs(3), IDLE));
    start_sasl(&mut c, "al").await;
    c.send(&format!("AUTHENTICATE {}", plain("", "alice", "s3cret")))
        .await;
    c.expect("900").await;
    c.expect("903").await;
    // Logged in but never sends CAP END: still dropped at the deadline.
    let rest = c.until_closed().await;
    assert_eq!(
        rest,
        vec!["ERROR :Closing Link: 127.0.0.1 (Registration timed out)"]
    );
}

/// Starts the IRC server under the real runtime with `limits`.
async fn start_runtime(limits: Limits) -> (SocketAddr, CancellationToken) {
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = IrcServer::new(cfg_with(None));
    tokio::spawn(serve_tcp(listener, Arc::new(server), limits, token.clone()));
    (addr, token)
}

#[tokio::test]
async fn tricklers_at_the_connection_limit_do_not_lock_out_a_good_client() {
    let max = 40;
    let (addr, _token) = start_runtime(Limits {
        max_conns: max,
        ..limits(Duration::from_millis(500), Duration::from_secs(30))
    })
    .await;
    let mut tricklers = Vec::new();
    for i in 0..max {
        let mut c = common::Raw::connect(addr).await;
        // Served (not refused): a PING round trip before registration.
        c.send(&format!("PING :t{i}")).await;
        assert_eq!(c.expect("PONG").await.params[1], format!("t{i}"));
        let common::Raw { rd, wr } = c;
        tricklers.push((rd, trickle(wr, b"NICK a\r\n", Duration::from_millis(20))));
    }
    // The server is full: a good client is refused for now.
    let mut refused = common::Raw::connect(addr).await;
    let lines = refused.until_closed().await;
    assert!(
        lines.iter().any(|l| l.contains("server is at its limit")),
        "{lines:?}"
    );
    // Every trickler is dropped at the registration deadline although it keeps sending.
    for (mut rd, trickler) in tricklers {
        let mut last = None;
        while let Some(l) = line_of(&mut rd).await {
            last = Some(l);
        }
        assert_eq!(
            last.as_deref(),
            Some("ERROR :Closing Link: 127.0.0.1 (Registration timed out)")
        );
        trickler.abort();
    }
    // Then the good client gets in (the slots free just after the sockets close).
    for attempt in 0.. {
        let mut good = common::Raw::connect(addr).await;
        good.send("NICK good").await;
        good.send("USER good 0 * :Good").await;
        let first = good.try_line().await;
        match first {
            Some(l) if l.contains(" 001 ") => break,
            Some(l) if l.contains("server is at its limit") && attempt < 1000 => {
                tokio::task::yield_now().await;
            }
            other => panic!("good client not registered: {other:?}"),
        }
    }
}

#[tokio::test]
async fn tls_port_drops_a_trickler_at_the_same_deadline() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = sockit_runtime::tls::ServerIdentity::load_or_generate(dir.path()).unwrap();
    let acceptor = sockit_runtime::tls::acceptor(&identity).unwrap();
    let (connector, _) =
        sockit_runtime::tls::connector(sockit_runtime::tls::Trust::Pinned(identity.fingerprint()))
            .unwrap();
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), 64).unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let irc = IrcServer::new(cfg_with(None));
    let tls = IrcTlsServer::new(irc, acceptor);
    tokio::spawn(serve_tcp(
        listener,
        Arc::new(tls),
        limits(Duration::from_millis(800), Duration::from_secs(30)),
        token.clone(),
    ));

    let connect = || async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        connector
            .connect(sockit_runtime::tls::server_name("127.0.0.1").unwrap(), tcp)
            .await
            .unwrap()
    };
    // A trickler over TLS.
    let (rd, wr) = tokio::io::split(connect().await);
    let trickler = trickle(wr, b"NICK a\r\n", Duration::from_millis(20));
    let mut rd = BufReader::new(rd);
    let mut lines = Vec::new();
    while let Some(l) = line_of(&mut rd).await {
        lines.push(l);
    }
    assert!(!trickler.is_finished(), "still trickling when closed");
    assert_eq!(
        lines,
        vec!["ERROR :Closing Link: 127.0.0.1 (Registration timed out)"]
    );
    trickler.abort();

    // A client that registers in time stays past the deadline and chats.
    let (rd, mut wr) = tokio::io::split(connect().await);
    let mut rd = BufReader::new(rd);
    wr.write_all(b"NICK t\r\nUSER t 0 * :t\r\n").await.unwrap();
    loop {
        let l = line_of(&mut rd).await.expect("registered client closed");
        if l.contains(" 376 ") {
            break;
        }
    }
    // Past the handshake deadline: idle time counts from the last line now.
    let after = Instant::now() + Duration::from_millis(1200);
    wr.write_all(b"PING :x\r\n").await.unwrap();
    assert!(line_of(&mut rd).await.unwrap().contains("PONG"));
    tokio::time::sleep_until(after).await;
    wr.write_all(b"PING :later\r\n").await.unwrap();
    let l = line_of(&mut rd).await.unwrap();
    assert!(l.ends_with(":later") || l.ends_with(" later"), "{l}");
}
