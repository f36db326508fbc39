//! `sockit serve` and the clients as a user runs them: the table, auth with keys,
//! refusals with clear messages, graceful shutdown, garbage input.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

use common::{run, sockit, stderr, stdout, Serve};

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn table_lists_every_service() {
    let mut s = Serve::start(&[]);
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
    let s = Serve::start(&[]);
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

    let s = Serve::start(&["--only", "framed", "--key", k]);
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
    let mut s = Serve::start(&["--drain-timeout", "3s"]);
    // An idle greet client, a busy echo client and an idle framed client.
    let mut greet = TcpStream::connect(s.addr("greet", "tcp")).unwrap();
    let mut echo = TcpStream::connect(s.addr("echo", "tcp")).unwrap();
    let framed = TcpStream::connect(s.addr("framed", "tcp")).unwrap();
    echo.write_all(&[7u8; 100_000]).unwrap();
    let mut buf = [0u8; 9];
    greet.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"Welcome!\n");
    let started = std::time::Instant::now();
    s.terminate();
    let status = s.wait_exit(Duration::from_secs(8));
    assert!(status.success(), "exit status {status}");
    assert!(started.elapsed() < Duration::from_secs(8));
    // The idle greet client was told why it is being closed.
    greet.set_read_timeout(Some(LIMIT)).unwrap();
    let mut rest = String::new();
    let _ = greet.read_to_string(&mut rest);
    assert!(rest.contains("shutting down"), "{rest:?}");
    drop(framed);
}

/// Deterministic pseudo-random bytes (xorshift).
fn garbage(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.max(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn random_bytes_at_every_service_leave_it_serving() {
    let s = Serve::start(&["--handshake-timeout", "2s", "--idle-timeout", "2s"]);
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    for (svc, protos) in s.addrs.as_object().unwrap() {
        for (proto, addr) in protos.as_object().unwrap() {
            let addr = addr.as_str().unwrap();
            for seed in 1..=15u64 {
                let junk = garbage(
                    seed * 31 + svc.len() as u64,
                    (seed as usize * 4099) % 60000 + 1,
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
    // Every service still answers a good client.
    let o = run(
        sockit().args(["ping", "--server", &s.addr("framed", "tcp")]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    let o = run(
        sockit().args(["greet", "--name", "x", "--server", &s.addr("greet", "tcp")]),
        b"",
        LIMIT,
    );
    assert!(stdout(&o).contains("Hello x!"));
    let o = run(
        sockit().args(["echo", "--server", &s.addr("echo", "tcp")]),
        b"ok\n",
        LIMIT,
    );
    assert_eq!(stdout(&o), "ok\n");
    let o = run(
        sockit().args(["echo", "--udp", "--server", &s.addr("echo", "udp")]),
        b"ok\n",
        LIMIT,
    );
    assert_eq!(stdout(&o), "ok\n");
    for proto in ["tcp", "udp"] {
        let mut cmd = sockit();
        cmd.args(["time", "--server", &s.addr("time", proto)])
            .stdout(Stdio::piped());
        if proto == "udp" {
            cmd.arg("--udp");
        }
        assert!(run(&mut cmd, b"", LIMIT).status.success());
        let mut cmd = sockit();
        cmd.args(["daytime", "--server", &s.addr("daytime", proto)]);
        if proto == "udp" {
            cmd.arg("--udp");
        }
        assert!(run(&mut cmd, b"", LIMIT).status.success());
    }
}
