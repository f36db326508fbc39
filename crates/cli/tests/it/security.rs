//! The security suite run against `sockit serve` as an operator starts it: one guard for
//! every port (trickled requests, the non-loopback policy, state out of every served tree,
//! login back-off). docs/security.md maps each attack to its test.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

/// The address of an endpoint bound to 0.0.0.0, reached over loopback.
fn via_loopback(addr: &str) -> SocketAddr {
    let a: SocketAddr = addr.parse().unwrap();
    SocketAddr::from(([127, 0, 0, 1], a.port()))
}

/// What happened to a client that sent `prefix` one byte at a time.
#[derive(Debug, PartialEq, Eq)]
enum Trickle {
    /// The server closed the connection after this many bytes.
    ClosedAfter(usize),
    /// Every byte went out and the connection is still open.
    StillOpen,
}

/// Sends `prefix` (a request that never completes) one byte every `pace`, watching for
/// the server to close the connection.
fn trickle(addr: SocketAddr, prefix: &[u8], pace: Duration) -> Trickle {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(pace)).unwrap();
    let mut buf = [0u8; 4096];
    for (sent, byte) in prefix.iter().enumerate() {
        if s.write_all(&[*byte]).is_err() {
            return Trickle::ClosedAfter(sent);
        }
        // Reading for `pace` both paces the trickle and notices a close.
        loop {
            match s.read(&mut buf) {
                Ok(0) => return Trickle::ClosedAfter(sent + 1),
                Ok(_) => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(_) => return Trickle::ClosedAfter(sent + 1),
            }
        }
    }
    Trickle::StillOpen
}

/// A request prefix that stays incomplete however long it is trickled.
fn endless(head: &[u8], filler: u8, len: usize) -> Vec<u8> {
    let mut v = head.to_vec();
    v.resize(len, filler);
    v
}

#[test]
fn trickled_requests_cannot_hold_any_request_port() {
    // 40 bytes at 250 ms is 10 s of trickling against a 1 s handshake timeout and a 2 s
    // idle timeout: a server that lets bytes extend its deadlines keeps them all open.
    let s = Serve::start(
        SOCKIT,
        &[
            "--handshake-timeout",
            "1s",
            "--idle-timeout",
            "2s",
            "--chat-flood-penalty",
            "0s",
        ],
    );
    let pace = Duration::from_millis(250);
    let len = 40;
    let mut framed = 200u32.to_le_bytes().to_vec();
    framed.extend_from_slice(br#"{"cmd":"ping","pad":""#);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        ("framed", "tcp", endless(&framed, b'x', len)),
        (
            "reader",
            "http",
            endless(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", b'x', len),
        ),
        ("chat", "tcp", endless(b"NICK ", b'a', len)),
        (
            "chat",
            "ws",
            endless(b"GET / HTTP/1.1\r\nHost: x\r\nX-Pad: ", b'x', len),
        ),
    ];
    let handles: Vec<_> = cases
        .into_iter()
        .map(|(svc, proto, prefix)| {
            let addr: SocketAddr = s.addr(svc, proto).parse().unwrap();
            std::thread::spawn(move || (svc, proto, trickle(addr, &prefix, pace)))
        })
        .collect();
    for h in handles {
        let (svc, proto, outcome) = h.join().unwrap();
        assert!(
            matches!(outcome, Trickle::ClosedAfter(n) if n < len),
            "{svc}.{proto}: {outcome:?} (the trickled request kept the connection open)"
        );
    }
    // The ports still serve a good client.
    let o = run(
        sockit().args(["ping", "-c", "1", "--server", &s.addr("framed", "tcp")]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
}

#[test]
fn trickled_irc_registration_is_dropped_while_a_registered_client_stays() {
    let s = Serve::start(
        SOCKIT,
        &[
            "--only",
            "chat",
            "--handshake-timeout",
            "1s",
            "--chat-flood-penalty",
            "0s",
        ],
    );
    let addr: SocketAddr = s.addr("chat", "tcp").parse().unwrap();
    // A client that registers at once, then stays silent past the handshake timeout.
    let mut good = TcpStream::connect(addr).unwrap();
    good.write_all(b"NICK good\r\nUSER good 0 * :Good\r\n")
        .unwrap();
    let mut reader = std::io::BufReader::new(good.try_clone().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0,
            "closed before 001"
        );
        if line.contains(" 001 ") {
            break;
        }
    }
    let outcome = trickle(
        addr,
        &endless(b"NICK ", b'b', 40),
        Duration::from_millis(250),
    );
    assert!(
        matches!(outcome, Trickle::ClosedAfter(n) if n < 40),
        "{outcome:?}"
    );
    // The registered client was silent for the whole trickle and is still served.
    good.write_all(b"PING :still-here\r\n").unwrap();
    loop {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut reader, &mut line).unwrap() > 0);
        if line.contains("PONG") {
            assert!(line.contains("still-here"), "{line}");
            break;
        }
    }
}

fn keygen(dir: &std::path::Path) -> String {
    let key = dir.join("k.key");
    let o = run(sockit().arg("keygen").arg(&key), b"", LIMIT);
    assert!(o.status.success(), "{o:?}");
    key.to_string_lossy().into_owned()
}

#[test]
fn non_loopback_bind_serves_only_what_authenticates() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let mut s = Serve::start(SOCKIT, &["--bind", "0.0.0.0", "--key", &key]);
    let services: Vec<String> = s.addrs.as_object().unwrap().keys().cloned().collect();
    assert_eq!(services, ["chat", "framed", "reader"], "{}", s.addrs);
    assert!(s.addrs["reader"].get("tcp").is_none(), "{}", s.addrs);

    // IRC: registering without an account is refused.
    let mut irc = TcpStream::connect(via_loopback(&s.addr("chat", "tcp"))).unwrap();
    irc.write_all(b"NICK mallory\r\nUSER m 0 * :M\r\n").unwrap();
    let mut text = String::new();
    irc.set_read_timeout(Some(LIMIT)).unwrap();
    let _ = irc.read_to_string(&mut text);
    assert!(!text.contains(" 001 "), "{text}");
    assert!(text.contains("ERROR"), "{text}");

    // Reader: the API and the files need credentials.
    let http = via_loopback(&s.addr("reader", "http"));
    for path in ["/api/books", "/opds", "/"] {
        let o = run(
            std::process::Command::new(peer::require("curl", "curl")).args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{http}{path}"),
            ]),
            b"",
            LIMIT,
        );
        assert_eq!(stdout(&o), "401", "{path}: {o:?}");
    }

    // Framed: without the key nothing but the handshake; with it, service.
    let framed = via_loopback(&s.addr("framed", "tcp")).to_string();
    let o = run(sockit().args(["ls", "--server", &framed]), b"", LIMIT);
    assert!(!o.status.success(), "{o:?}");
    let o = run(
        sockit().args(["ping", "-c", "1", "--key", &key, "--server", &framed]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");

    s.terminate();
    assert!(s.wait_exit(LIMIT).success());
    let mut out = String::new();
    s.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    for left_out in [
        "greet.tcp",
        "echo.udp",
        "tftp.udp",
        "udp-chat.udp",
        "discovery.udp",
        "reader.tcp",
    ] {
        assert!(out.contains(&format!("not started: {left_out}")), "{out}");
    }
}

#[test]
fn non_loopback_refusals_name_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let root = root.to_str().unwrap();
    let o = run(
        sockit().args([
            "serve", "--bind", "0.0.0.0", "--port", "all=0", "--root", root,
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--public"), "{}", stderr(&o));
    let key = keygen(dir.path());
    let o = run(
        sockit().args([
            "serve", "--bind", "0.0.0.0", "--port", "all=0", "--root", root, "--key", &key,
            "--only", "greet",
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--public greet"), "{}", stderr(&o));
}

#[test]
fn public_services_run_beside_authenticated_ones() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let s = Serve::start(
        SOCKIT,
        &[
            "--bind",
            "0.0.0.0",
            "--key",
            &key,
            "--public",
            "echo,time.udp",
            "--only",
            "echo,time,framed",
        ],
    );
    assert!(s.addrs["echo"]["tcp"].is_string() && s.addrs["echo"]["udp"].is_string());
    assert!(s.addrs["time"]["udp"].is_string());
    assert!(s.addrs["time"].get("tcp").is_none(), "{}", s.addrs);
    let o = run(
        sockit().args([
            "echo",
            "--server",
            &via_loopback(&s.addr("echo", "tcp")).to_string(),
        ]),
        b"hi\n",
        LIMIT,
    );
    assert_eq!(stdout(&o), "hi\n", "{o:?}");
}

#[test]
fn no_client_path_reaches_server_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let o = run(
        sockit()
            .args(["account", "--root"])
            .arg(&root)
            .args(["add", "ada"]),
        b"correct horse battery staple\n",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    let s = Serve::start_in(SOCKIT, &root, &["--tls", "--public", "reader.tcp"]);
    let framed = s.addr("framed", "tcp");
    let out = dir.path().join("got");
    for path in [
        "state/accounts.db",
        "../state/accounts.db",
        "../state/tls/key.pem",
        "../state/reader/catalog.db",
        "/state/accounts.db",
        "reader/catalog.db",
        ".sockit/tls/key.pem",
    ] {
        let o = run(
            sockit()
                .args(["get", "--tls", "--server", &framed, path])
                .arg(&out),
            b"",
            LIMIT,
        );
        assert!(!o.status.success(), "framed get {path} succeeded: {o:?}");
        assert!(!out.exists(), "{path} was downloaded");
    }
    let o = run(
        sockit().args(["ls", "--tls", "--server", &framed]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(!stdout(&o).contains("state"), "{}", stdout(&o));
    let tftp = s.addr("tftp", "udp");
    for path in [
        "../state/accounts.db",
        "/state/accounts.db",
        "..\\state\\accounts.db",
    ] {
        let o = run(
            sockit()
                .args(["tftp", "get", "--server", &tftp, path])
                .arg(&out),
            b"",
            LIMIT,
        );
        // Exit 1 is the server's refusal; 2 would be a usage error that never asked it.
        assert_eq!(o.status.code(), Some(1), "tftp get {path}: {o:?}");
        assert!(
            stderr(&o).contains("server refused"),
            "tftp get {path}: not a TFTP error: {}",
            stderr(&o)
        );
        assert!(!out.exists(), "{path} was downloaded over tftp");
    }
    // The classic reader protocol (made public here) cannot name state either.
    let mut c = TcpStream::connect(s.addr("reader", "tcp")).unwrap();
    c.write_all(b"0 ../state/accounts.db").unwrap();
    let mut buf = [0u8; 256];
    let n = c.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("error"), "{text}");
    assert!(!text.contains(root.to_str().unwrap()), "{text}");
}

#[test]
fn wrong_keys_back_off() {
    let dir = tempfile::tempdir().unwrap();
    let key = keygen(dir.path());
    let wrong = dir.path().join("wrong.key");
    assert!(run(sockit().arg("keygen").arg(&wrong), b"", LIMIT)
        .status
        .success());
    let s = Serve::start(SOCKIT, &["--key", &key, "--only", "framed"]);
    let framed = s.addr("framed", "tcp");
    let mut messages = Vec::new();
    for _ in 0..8 {
        let o = run(
            sockit()
                .args(["ping", "-c", "1", "--server", &framed, "--key"])
                .arg(&wrong),
            b"",
            LIMIT,
        );
        assert!(!o.status.success());
        messages.push(stderr(&o));
    }
    assert!(
        messages[0].contains("authentication failed"),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("retry in")),
        "no back-off after 8 wrong keys: {messages:?}"
    );
}

#[test]
fn first_account_closes_the_classic_reader_port() {
    let s = Serve::start(SOCKIT, &["--only", "reader"]);
    let classic = s.addr("reader", "tcp");
    let ask = |req: &[u8]| {
        let mut c = TcpStream::connect(&classic).unwrap();
        c.write_all(req).unwrap();
        let mut text = Vec::new();
        c.set_read_timeout(Some(LIMIT)).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        text.extend_from_slice(&buf[..n]);
        String::from_utf8_lossy(&text).into_owned()
    };
    // Open library: the classic protocol answers.
    assert!(!ask(b"1 nothing.txt").contains("requires a login"));
    // A KOReader user registers over kosync (open on loopback)...
    let http = s.addr("reader", "http");
    let o = run(
        std::process::Command::new(peer::require("curl", "curl")).args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-H",
            "content-type: application/json",
            "-H",
            "accept: application/vnd.koreader.v1+json",
            "-d",
            r#"{"username":"ada","password":"5ebe2294ecd0e0f08eab7690d2a6ee69"}"#,
            &format!("http://{http}/users/create"),
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(stdout(&o), "201", "{o:?}");
    // ...and from then on the library needs a login, which the classic port cannot do.
    let text = ask(b"0 PDF.db");
    assert!(text.contains("requires a login"), "{text}");
}
