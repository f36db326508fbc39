//! `sockit serve` and the clients as a user runs them: the table, auth with keys,
//! refusals with clear messages, graceful shutdown, garbage input.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    data, peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn table_lists_every_service() {
    let mut s = Serve::start(SOCKIT, &[]);
    for (svc, protos) in [
        ("greet", &["tcp"][..]),
        ("echo", &["tcp", "udp"]),
        ("daytime", &["tcp", "udp"]),
        ("time", &["tcp", "udp"]),
        ("framed", &["tcp"]),
        ("tftp", &["udp"]),
    ] {
        for p in protos {
            assert!(
                s.addrs[svc][*p].is_string(),
                "{svc}/{p} missing in {}",
                s.addrs
            );
        }
    }
    s.terminate();
    assert!(s.wait_exit(LIMIT).success());
    let mut out = String::new();
    s.child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(out.contains("SERVICE"), "{out}");
    assert!(
        out.contains(&format!("framed     tcp    {}", s.addr("framed", "tcp"))),
        "{out}"
    );
}

#[test]
fn clients_talk_to_every_service() {
    let s = Serve::start(SOCKIT, &[]);
    let with = |svc: &str, proto: &str| s.addr(svc, proto);
    let o = run(
        sockit().args(["ping", "--server", &with("framed", "tcp")]),
        b"",
        LIMIT,
    );
    assert!(o.status.success() && stdout(&o).contains("pong 1"), "{o:?}");
    let o = run(
        sockit().args(["greet", "--name", "Ada", "--server", &with("greet", "tcp")]),
        b"",
        LIMIT,
    );
    assert_eq!(
        stdout(&o),
        "Welcome!\nWhat's your name? Ada\nHello Ada!\nWhat's your name? exit\nGood bye!\n"
    );
    let o = run(
        sockit().args(["echo", "--server", &with("echo", "tcp")]),
        b"one\ntwo\n",
        LIMIT,
    );
    assert_eq!(stdout(&o), "one\ntwo\n");
    let o = run(
        sockit().args(["echo", "--udp", "--server", &with("echo", "udp")]),
        b"u1\nu2\n",
        LIMIT,
    );
    assert_eq!(stdout(&o), "u1\nu2\n");
    let o = run(
        sockit().args([
            "daytime",
            "--udp",
            "--format",
            "%Y",
            "--server",
            &with("daytime", "udp"),
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(
        stdout(&o).trim(),
        chrono::Local::now().format("%Y").to_string()
    );
    let o = run(
        sockit().args([
            "daytime",
            "--udp",
            "--format",
            "%Q",
            "--server",
            &with("daytime", "udp"),
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("invalid strftime format"), "{o:?}");
    for proto in ["tcp", "udp"] {
        let mut cmd = sockit();
        cmd.args(["time", "--json", "--server", &with("time", proto)]);
        if proto == "udp" {
            cmd.arg("--udp");
        }
        let o = run(&mut cmd, b"", LIMIT);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert!(v["offset_secs"].as_f64().unwrap().abs() < 5.0, "{v}");
    }
}

#[test]
fn keys_authenticate_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("server.key");
    let other = dir.path().join("other.key");
    let k = key.to_str().unwrap();
    let o = run(sockit().args(["keygen", k]), b"", LIMIT);
    assert!(o.status.success(), "{o:?}");
    let o = run(sockit().args(["keygen", k]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(1), "keygen must not overwrite");
    run(
        sockit().args(["keygen", other.to_str().unwrap()]),
        b"",
        LIMIT,
    );

    let s = Serve::start(SOCKIT, &["--only", "framed", "--key", k]);
    let addr = s.addr("framed", "tcp");
    let o = run(
        sockit().args(["ping", "--server", &addr, "--key", k]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("auth hmac-sha256"));
    let o = run(sockit().args(["ping", "--server", &addr]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--key"), "{}", stderr(&o));
    let o = run(
        sockit().args(["ping", "--server", &addr, "--key", other.to_str().unwrap()]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("rejected the key"), "{}", stderr(&o));
}

#[test]
fn non_loopback_without_key_refuses_to_start() {
    let o = run(
        sockit().args([
            "serve", "--bind", "0.0.0.0", "--only", "greet", "--port", "all=0",
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(err.contains("--public greet"), "{err}");
    let o = run(
        sockit().args([
            "serve", "--bind", "0.0.0.0", "--only", "framed", "--port", "all=0",
        ]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("--key FILE") && err.contains("sockit keygen"),
        "{err}"
    );
}

#[test]
fn port_in_use_names_service_and_flag() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        sockit()
            .args([
                "serve",
                "--only",
                "greet",
                "--port",
                &format!("greet={port}"),
                "--root",
            ])
            .arg(dir.path()),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("greet") && err.contains("address in use") && err.contains("--port greet=N"),
        "{err}"
    );
}

#[test]
fn bad_usage_exits_2() {
    let o = run(sockit().args(["serve", "--only", "nosuch"]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown service `nosuch`"));
    let o = run(sockit().args(["daytime", "--format", "%Y"]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(2), "--format needs --udp");
}

#[test]
fn sigterm_with_open_connections_exits_0_within_deadline() {
    let mut s = Serve::start(SOCKIT, &["--drain-timeout", "3s"]);
    // An idle greet client, a busy echo client and an idle framed client.
    let mut greet = TcpStream::connect(s.addr("greet", "tcp")).unwrap();
    let mut echo = TcpStream::connect(s.addr("echo", "tcp")).unwrap();
    let framed = TcpStream::connect(s.addr("framed", "tcp")).unwrap();
    echo.write_all(&[7u8; 100_000]).unwrap();
    let mut buf = [0u8; 9];
    greet.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"Welcome!\n");
    s.terminate();
    // The idle framed client and the echo client never close on their own: the server
    // exits only because the drain deadline ends them (LIMIT is only a hang guard).
    let status = s.wait_exit(LIMIT);
    assert!(status.success(), "exit status {status}");
    // The idle greet client was told why it is being closed.
    greet.set_read_timeout(Some(LIMIT)).unwrap();
    let mut rest = String::new();
    let _ = greet.read_to_string(&mut rest);
    assert!(rest.contains("shutting down"), "{rest:?}");
    drop(framed);
}

#[test]
fn random_bytes_at_every_service_leave_it_serving() {
    let mut s = Serve::start(
        SOCKIT,
        &["--handshake-timeout", "2s", "--idle-timeout", "2s"],
    );
    // The server logs every bad request; a full, unread stderr pipe would block it.
    let mut log = s.child.stderr.take().unwrap();
    let log = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = log.read_to_string(&mut text);
        text
    });
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (svc, protos) in s.addrs.as_object().unwrap() {
        for (proto, addr) in protos.as_object().unwrap() {
            let addr = addr.as_str().unwrap();
            for seed in 1..=15u64 {
                let junk = data::bytes(
                    (seed as usize * 4099) % 60000 + 1,
                    seed * 31 + svc.len() as u64,
                );
                if proto == "udp" {
                    udp.send_to(&junk, addr).unwrap();
                } else {
                    let mut c = TcpStream::connect(addr).unwrap();
                    c.set_read_timeout(Some(LIMIT)).unwrap();
                    let _ = c.write_all(&junk);
                    let _ = c.shutdown(std::net::Shutdown::Write);
                    let mut sink = Vec::new();
                    let _ = c.read_to_end(&mut sink);
                }
            }
        }
    }
    // Every endpoint still answers a good client, with a correct answer.
    for (svc, protos) in s.addrs.as_object().unwrap() {
        for (proto, addr) in protos.as_object().unwrap() {
            still_serves(&s, svc, proto, addr.as_str().unwrap());
        }
    }
    s.terminate();
    assert!(s.wait_exit(LIMIT).success());
    let log = log.join().unwrap();
    assert!(!log.contains("panicked"), "{log}");
}

/// Seconds since the Unix epoch now.
fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A raw request to `what` on a fresh UDP socket; the first reply from any port of the
/// server's host (a TFTP transfer answers from a port of its own), bounded wait.
fn udp_ask(what: &str, addr: &str, request: &[u8]) -> Vec<u8> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    sock.send_to(request, addr).unwrap();
    let mut buf = vec![0u8; 65536];
    let (n, _) = sock
        .recv_from(&mut buf)
        .unwrap_or_else(|e| panic!("{what} at {addr}: no reply: {e}"));
    buf.truncate(n);
    buf
}

/// Checks that `svc`'s `proto` endpoint at `addr` gives a right answer to a good client.
fn still_serves(s: &Serve, svc: &str, proto: &str, addr: &str) {
    match (svc, proto) {
        ("framed", "tcp") => {
            let o = run(sockit().args(["ping", "--server", addr]), b"", LIMIT);
            assert!(o.status.success() && stdout(&o).contains("pong 1"), "{o:?}");
        }
        ("greet", "tcp") => {
            let o = run(
                sockit().args(["greet", "--name", "x", "--server", addr]),
                b"",
                LIMIT,
            );
            assert!(stdout(&o).contains("Hello x!"), "{o:?}");
        }
        ("echo", _) => {
            let mut cmd = sockit();
            cmd.args(["echo", "--server", addr]);
            if proto == "udp" {
                cmd.arg("--udp");
            }
            assert_eq!(
                stdout(&run(&mut cmd, b"ok\n", LIMIT)),
                "ok\n",
                "echo/{proto}"
            );
        }
        ("time", _) => {
            let mut cmd = sockit();
            cmd.args(["time", "--json", "--server", addr]);
            if proto == "udp" {
                cmd.arg("--udp");
            }
            let o = run(&mut cmd, b"", LIMIT);
            assert!(o.status.success(), "time/{proto}: {o:?}");
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert!(v["offset_secs"].as_f64().unwrap().abs() < 5.0, "{v}");
        }
        ("daytime", "tcp") => {
            let o = run(sockit().args(["daytime", "--server", addr]), b"", LIMIT);
            assert!(o.status.success(), "{o:?}");
            let text = stdout(&o);
            let when = chrono::NaiveDateTime::parse_from_str(text.trim(), "%a %b %e %H:%M:%S %Y")
                .unwrap_or_else(|e| panic!("daytime/tcp {text:?}: {e}"));
            let local = chrono::Local::now().naive_local();
            assert!((local - when).num_seconds().abs() < 5, "{text:?}");
        }
        ("daytime", "udp") => {
            let o = run(
                sockit().args(["daytime", "--udp", "--format", "%s", "--server", addr]),
                b"",
                LIMIT,
            );
            let secs: i64 = stdout(&o)
                .trim()
                .parse()
                .unwrap_or_else(|e| panic!("{o:?}: {e}"));
            assert!((unix_now() - secs).abs() < 5, "{o:?}");
        }
        ("ntp", "udp") => {
            // An SNTP client request (RFC 4330: LI 0, version 4, mode 3) with a transmit
            // timestamp the reply must echo as its originate timestamp.
            let mut request = [0u8; 48];
            request[0] = 0x23;
            request[40..48].copy_from_slice(&0x0123_4567_89ab_cdefu64.to_be_bytes());
            let reply = udp_ask("ntp", addr, &request);
            assert!(reply.len() >= 48, "ntp reply of {} bytes", reply.len());
            assert_eq!(reply[0] & 0x07, 4, "mode: server");
            assert_eq!(
                reply[24..32],
                request[40..48],
                "originate echoes our transmit"
            );
            let secs = u32::from_be_bytes(reply[40..44].try_into().unwrap());
            let unix = i64::from(secs) - 2_208_988_800;
            assert!((unix_now() - unix).abs() < 5, "transmit time {unix}");
        }
        ("tftp", "udp") => {
            let file = s.dir.path().join("root/tftp/after-garbage.txt");
            std::fs::write(&file, b"still here\n").unwrap();
            let reply = udp_ask("tftp", addr, b"\x00\x01after-garbage.txt\x00octet\x00");
            assert_eq!(
                reply,
                b"\x00\x03\x00\x01still here\n",
                "DATA block 1 of the file: {:?}",
                String::from_utf8_lossy(&reply)
            );
        }
        ("chat", "tcp") => {
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.write_all(b"NICK after\r\nUSER after 0 * :after\r\n")
                .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&got).contains(" 001 after ") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0 && got.len() < 1 << 16, "no welcome: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
        }
        ("chat", "ws") => {
            // The upgrade still completes with the IRCv3 subprotocol.
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.write_all(
                b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                  Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
                  Sec-WebSocket-Protocol: text.ircv3.net\r\n\r\n",
            )
            .unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = c.read(&mut buf).unwrap();
                assert!(n > 0 && got.len() < 1 << 16, "no upgrade: {got:?}");
                got.extend_from_slice(&buf[..n]);
            }
            let head = String::from_utf8_lossy(&got);
            assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("sec-websocket-protocol: text.ircv3.net"),
                "{head}"
            );
        }
        ("udp-chat", "udp") => {
            let join = || {
                let u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
                u.set_read_timeout(Some(LIMIT)).unwrap();
                u.connect(addr).unwrap();
                u
            };
            let (a, b) = (join(), join());
            a.send(b"").unwrap();
            b.send(b"after garbage").unwrap();
            let mut buf = [0u8; 2048];
            let n = a.recv(&mut buf).expect("relay to the other participant");
            let line = String::from_utf8_lossy(&buf[..n]);
            let port = b.local_addr().unwrap().port();
            assert!(
                line.trim_end()
                    .ends_with(&format!("127.0.0.1:{port}: after garbage")),
                "{line:?}"
            );
        }
        ("discovery", "udp") => {
            let o = run(
                sockit().args(["--json", "discover", "--timeout", "500ms", "--target", addr]),
                b"",
                LIMIT,
            );
            let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
            assert_eq!(v.as_array().map(Vec::len), Some(1), "{v}");
        }
        ("reader", "tcp") => {
            // The course protocol: `0 PDF.db` downloads the catalog, behind a 4-byte length
            // and a JSON header.
            let mut c = TcpStream::connect(addr).unwrap();
            c.set_read_timeout(Some(LIMIT)).unwrap();
            c.write_all(b"0 PDF.db").unwrap();
            let mut len = [0u8; 4];
            c.read_exact(&mut len).unwrap();
            let mut head = vec![0u8; i32::from_le_bytes(len).clamp(0, 4096) as usize];
            c.read_exact(&mut head).unwrap();
            let head: serde_json::Value = serde_json::from_slice(&head).unwrap();
            assert_eq!(head["filename"], "PDF.db", "{head}");
            assert!(head["filesize"].as_u64().unwrap() > 0, "{head}");
        }
        ("reader", "http") => {
            let o = run(
                std::process::Command::new(peer::require("curl", "curl")).args([
                    "-sS",
                    "--fail",
                    &format!("http://{addr}/api/books"),
                ]),
                b"",
                LIMIT,
            );
            assert!(o.status.success(), "{o:?}");
            let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
            assert!(v["books"].as_array().is_some_and(|b| !b.is_empty()), "{v}");
        }
        _ => panic!("no check of {svc}/{proto} after garbage: add one to still_serves"),
    }
}
