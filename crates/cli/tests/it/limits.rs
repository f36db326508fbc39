//! Connection limits as docs/protocol.md describes them: `--max-conns` (total) and
//! `--max-conns-per-ip` count per service; a refused greet client reads a
//! `Server busy: ...` line saying which limit it hit; a freed slot is served again.
//! Also `--staging-ttl`: stale staged uploads are removed when `serve` starts.

use crate::common::SOCKIT;
use sockit_testkit::serve::Serve;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant, SystemTime};

/// Failure guard for reads and polls (never an assertion about speed).
const PATIENCE: Duration = Duration::from_secs(30);

/// Connects to `addr` from the loopback address `from` (127.0.0.0/8 is all loopback).
fn connect_from(from: [u8; 4], addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .unwrap();
    let stream = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::from((from, 0))).unwrap();
        socket.connect(addr).await.unwrap()
    });
    let stream = stream.into_std().unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    stream
}

/// What a greet connection says first: the welcome (served) or a busy line (refused,
/// then closed).
fn first_line(stream: &TcpStream) -> String {
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line
}

/// Everything until the server closes.
fn rest(mut stream: &TcpStream) -> String {
    let mut out = String::new();
    let _ = stream.read_to_string(&mut out);
    out
}

/// Ends a greet dialogue the way the protocol does.
fn say_exit(mut stream: TcpStream) {
    stream.write_all(b"exit").unwrap();
    let goodbye = rest(&stream);
    assert!(goodbye.contains("Good bye!"), "{goodbye:?}");
}

/// Connects until a connection is served (the server frees a slot right after the
/// previous client's close); bounded.
fn served_again(addr: &str) -> TcpStream {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let stream = connect_from([127, 0, 0, 1], addr);
        let line = first_line(&stream);
        if line == "Welcome!\n" {
            return stream;
        }
        assert!(line.starts_with("Server busy: "), "{line:?}");
        assert!(Instant::now() < deadline, "the freed slot was never reused");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn greet_over_max_conns_reads_server_busy_and_a_freed_slot_is_served() {
    let s = Serve::start(SOCKIT, &["--only", "greet,echo", "--max-conns", "2"]);
    let greet = s.addr("greet", "tcp");
    // Two clients, from two addresses: the total limit counts both.
    let first = connect_from([127, 0, 0, 1], &greet);
    assert_eq!(first_line(&first), "Welcome!\n");
    let second = connect_from([127, 0, 0, 2], &greet);
    assert_eq!(first_line(&second), "Welcome!\n");

    let third = connect_from([127, 0, 0, 3], &greet);
    assert_eq!(
        first_line(&third),
        "Server busy: server is at its limit of 2 connections; try again later\n"
    );
    assert_eq!(rest(&third), "", "the refused connection is closed");

    // The limit is per service: echo still serves while greet is full.
    let mut echo = connect_from([127, 0, 0, 1], &s.addr("echo", "tcp"));
    echo.write_all(b"still here\n").unwrap();
    let mut back = [0u8; 11];
    echo.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"still here\n");

    say_exit(first);
    let again = served_again(&greet);
    drop((second, again));
}

#[test]
fn greet_over_max_conns_per_ip_names_the_address_and_other_addresses_are_served() {
    let s = Serve::start(SOCKIT, &["--only", "greet", "--max-conns-per-ip", "1"]);
    let greet = s.addr("greet", "tcp");
    let held = connect_from([127, 0, 0, 1], &greet);
    assert_eq!(first_line(&held), "Welcome!\n");
    let refused = connect_from([127, 0, 0, 1], &greet);
    assert_eq!(
        first_line(&refused),
        "Server busy: too many connections from 127.0.0.1 (limit 1 per address); close \
         some and try again\n"
    );
    let other = connect_from([127, 0, 0, 2], &greet);
    assert_eq!(first_line(&other), "Welcome!\n");
    drop((held, other));
}

#[test]
fn staging_ttl_removes_stale_staged_uploads_when_serve_starts() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let staging = root.join("state/staging");
    std::fs::create_dir_all(&staging).unwrap();
    std::fs::create_dir_all(root.join("files")).unwrap();
    let stale = staging.join("0123456789abcdef0123456789abcdef.part");
    let recent = staging.join("fedcba9876543210fedcba9876543210.part");
    for (path, age) in [(&stale, 3 * 3600), (&recent, 1800)] {
        let mut file = std::fs::File::create(path).unwrap();
        file.write_all(b"partial upload").unwrap();
        file.set_modified(SystemTime::now() - Duration::from_secs(age))
            .unwrap();
    }
    let _s = Serve::start_in(SOCKIT, &root, &["--only", "framed", "--staging-ttl", "1h"]);
    // The addr file is written once every service listens, after the cleanup.
    assert!(
        !stale.exists(),
        "a 3-hour-old staged upload outlived --staging-ttl 1h"
    );
    assert!(recent.exists(), "a 30-minute-old staged upload was removed");
}
