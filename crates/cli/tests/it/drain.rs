//! Shutdown as README.md and docs/protocol.md describe it: on SIGTERM (or Ctrl-C) the
//! listeners close, busy connections get up to `--drain-timeout` to finish, then the
//! process exits 0; a second Ctrl-C exits at once (code 130). A running exec is killed
//! with the server.
//!
//! A "busy transfer" is a framed `get` of a large file read by the test at its own pace,
//! so the test decides whether it finishes before the deadline or stalls past it.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    data,
    process::{run, wait_child, OutputLines},
    serve::Serve,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::{Duration, Instant};

/// Failure guard for waits (never an assertion about speed).
const PATIENCE: Duration = Duration::from_secs(60);
/// Large enough that loopback socket buffers cannot absorb it: a client that stops
/// reading keeps the server's `get` busy.
const BIG: usize = 64 << 20;
const SHUTTING_DOWN: &str = "shutting down: no new connections";
const DEADLINE_PASSED: &str = "drain deadline passed";

/// Starts `sockit serve --only framed` with `extra` flags and a file `big.bin` to get.
fn serve_with_big_file(extra: &[&str]) -> (Serve, OutputLines, Vec<u8>) {
    let mut args = vec!["--only", "framed"];
    args.extend_from_slice(extra);
    let mut s = Serve::start(SOCKIT, &args);
    let data = data::bytes(BIG, 1);
    std::fs::write(s.dir.path().join("root/files/big.bin"), &data).unwrap();
    let lines = s.stderr_lines();
    (s, lines, data)
}

/// Sends a framed `get` (a course-style client: no hello, a 4-byte little-endian
/// header length and a JSON header) and reads the reply header; returns the stream
/// positioned at the body and the body's size.
fn start_get(addr: &str, path: &str) -> (TcpStream, usize) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(PATIENCE)).unwrap();
    let header = serde_json::json!({"cmd": "get", "path": path, "offset": 0}).to_string();
    stream
        .write_all(&(header.len() as u32).to_le_bytes())
        .unwrap();
    stream.write_all(header.as_bytes()).unwrap();
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).unwrap();
    let mut reply = vec![0u8; u32::from_le_bytes(len) as usize];
    stream.read_exact(&mut reply).unwrap();
    let reply: serde_json::Value = serde_json::from_slice(&reply).unwrap();
    assert_eq!(reply["status"], "ok", "{reply}");
    (stream, reply["size"].as_u64().unwrap() as usize)
}

/// Reads up to `want` bytes; fewer when the server closes the connection first.
fn read_up_to(stream: &mut TcpStream, want: usize) -> Vec<u8> {
    let mut out = vec![0u8; want];
    let mut got = 0;
    while got < want {
        match stream.read(&mut out[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read: {e}"),
        }
    }
    out.truncate(got);
    out
}

#[test]
fn sigterm_lets_a_busy_transfer_finish_within_the_drain_deadline() {
    let (mut s, mut log, data) = serve_with_big_file(&["--drain-timeout", "10m"]);
    let framed = s.addr("framed", "tcp");
    let (mut stream, size) = start_get(&framed, "big.bin");
    assert_eq!(size, BIG);
    let mut got = read_up_to(&mut stream, 1 << 20);
    assert_eq!(got.len(), 1 << 20);

    s.terminate();
    log.wait_for(SHUTTING_DOWN, PATIENCE);
    // The listener closes: new connections are refused (bounded poll, the listener is
    // dropped right after the shutdown starts).
    let deadline = Instant::now() + PATIENCE;
    while TcpStream::connect(&framed).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener stays open while draining"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The transfer in progress goes on to its end.
    got.extend(read_up_to(&mut stream, size - got.len()));
    assert_eq!(got.len(), size, "the transfer was cut");
    assert!(got == data, "the transferred bytes differ from the file");
    // Then the server closes the connection and exits 0 on its own, without waiting
    // for the deadline.
    assert!(read_up_to(&mut stream, 1).is_empty());
    let status = s.wait_exit(PATIENCE);
    assert!(status.success(), "exit status {status}");
    let rest = log.rest();
    assert!(!rest.contains(DEADLINE_PASSED), "{rest}");
}

#[test]
fn sigterm_cuts_a_stalled_transfer_at_the_drain_deadline_and_exits_0() {
    let (mut s, mut log, _data) = serve_with_big_file(&["--drain-timeout", "1s"]);
    let (mut stream, size) = start_get(&s.addr("framed", "tcp"), "big.bin");
    let mut got = read_up_to(&mut stream, 1 << 20).len();
    // The client stops reading: the transfer cannot finish.
    let signalled = Instant::now();
    s.terminate();
    log.wait_for(SHUTTING_DOWN, PATIENCE);
    log.wait_for(DEADLINE_PASSED, PATIENCE);
    let status = s.wait_exit(PATIENCE);
    assert!(status.success(), "exit status {status}");
    assert!(
        signalled.elapsed() >= Duration::from_secs(1),
        "the server exited {:?} after SIGTERM, before its 1 s drain deadline",
        signalled.elapsed()
    );
    // The connection was closed with the body incomplete.
    got += read_up_to(&mut stream, size).len();
    assert!(
        got < size,
        "the whole file arrived although the drain was cut"
    );
}

#[test]
fn second_ctrl_c_exits_at_once_without_draining() {
    let (mut s, mut log, _data) = serve_with_big_file(&["--drain-timeout", "10m"]);
    // A stalled transfer that would hold the drain for its whole 10 minutes.
    let (mut stream, _) = start_get(&s.addr("framed", "tcp"), "big.bin");
    read_up_to(&mut stream, 1 << 20);
    s.signal(libc::SIGINT);
    log.wait_for(SHUTTING_DOWN, PATIENCE);
    s.signal(libc::SIGINT);
    let status = s.wait_exit(PATIENCE);
    assert_eq!(status.code(), Some(130), "exit status {status}");
    let rest = log.rest();
    assert!(
        rest.contains("second signal, exiting without draining"),
        "{rest}"
    );
    assert!(!rest.contains(DEADLINE_PASSED), "{rest}");
}

/// Leaves a background process in its own session and prints `NAME PID` lines.
const EXEC_SCRIPT: &str = "mkfifo ready; \
     setsid sh -c 'echo grandchild $$ > ready; exec sleep 445' & \
     cat ready; echo leader $$; sleep 300";

fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => false,
        Ok(stat) => {
            // The state follows the command name in parentheses; Z is a zombie (dead).
            let state = stat[stat.rfind(')').unwrap() + 1..]
                .split_whitespace()
                .next();
            state != Some("Z")
        }
    }
}

#[test]
fn exec_run_and_its_background_process_die_when_the_server_stops() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let kg = run(sockit().arg("keygen").arg(&key), b"", PATIENCE);
    assert!(kg.status.success(), "{kg:?}");
    let key = key.to_str().unwrap().to_owned();
    let mut s = Serve::start(
        SOCKIT,
        &[
            "--only",
            "framed",
            "--allow-exec",
            "--key",
            &key,
            "--drain-timeout",
            "1s",
        ],
    );
    let mut log = s.stderr_lines();
    let mut client = sockit()
        .args(["--server", &s.addr("framed", "tcp"), "--key", &key])
        .args(["exec", "-n", "--", "sh", "-c", EXEC_SCRIPT])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = OutputLines::of(client.stdout.take().unwrap());
    let pid_of = |line: String| -> i32 { line.split_once(' ').unwrap().1.parse().unwrap() };
    let grandchild = pid_of(out.wait_for("grandchild ", PATIENCE));
    let leader = pid_of(out.wait_for("leader ", PATIENCE));
    assert!(alive(grandchild) && alive(leader));

    s.terminate();
    log.wait_for(SHUTTING_DOWN, PATIENCE);
    let status = s.wait_exit(PATIENCE);
    assert!(status.success(), "exit status {status}");
    // Bounded poll: the kill is sent as the server stops; the processes are then reaped
    // by whoever inherits them.
    let deadline = Instant::now() + PATIENCE;
    while alive(grandchild) || alive(leader) {
        assert!(
            Instant::now() < deadline,
            "still running after the server stopped: leader {leader} {}, grandchild \
             {grandchild} {}",
            alive(leader),
            alive(grandchild)
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // The client is told: it exits non-zero.
    let code = wait_child(&mut client, PATIENCE).expect("the exec client exits");
    assert!(!code.success(), "exec client exit {code}");
}
