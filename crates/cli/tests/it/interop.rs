//! The standard peers against `sockit serve`: nc, socat, rdate, and a python3 client
//! written the way the course scripts write one.

use crate::common::SOCKIT;
use sockit_testkit::{
    net::host_port,
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(20);

#[test]
fn interop_nc_greet_lines() {
    let s = Serve::start(SOCKIT, &["--only", "greet"]);
    let (h, p) = host_port(&s.addr("greet", "tcp"));
    let out = run(
        Command::new(peer::require("nc", "netcat-openbsd")).args(["-N", &h, &p]),
        b"alice\nexit\n",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        stdout(&out),
        "Welcome!\nWhat's your name?Hello alice!\nWhat's your name?Good bye!\n"
    );
}

#[test]
fn interop_socat_echo_tcp() {
    let s = Serve::start(SOCKIT, &["--only", "echo"]);
    let addr = s.addr("echo", "tcp");
    let input: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let out = run(
        Command::new(peer::require("socat", "socat")).args(["-", &format!("TCP:{addr}")]),
        &input,
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(
        out.stdout == input,
        "echo returned {} bytes, sent {}",
        out.stdout.len(),
        input.len()
    );
}

#[test]
fn interop_socat_echo_udp() {
    let s = Serve::start(SOCKIT, &["--only", "echo"]);
    let addr = s.addr("echo", "udp");
    let out = run(
        Command::new(peer::require("socat", "socat")).args([
            "-t",
            "2",
            "-",
            &format!("UDP:{addr}"),
        ]),
        b"hello over udp\n",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "hello over udp\n");
}

fn rdate_year(args: &[&str]) {
    let out = run(
        Command::new(peer::require("rdate", "rdate")).args(args),
        b"",
        LIMIT,
    );
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "rdate failed: {text}");
    let year = chrono::Utc::now().format("%Y").to_string();
    assert!(
        text.contains(&year),
        "rdate printed no current date: {text}"
    );
}

#[test]
fn interop_rdate_tcp() {
    let s = Serve::start(SOCKIT, &["--only", "time"]);
    let (h, p) = host_port(&s.addr("time", "tcp"));
    rdate_year(&["-p", "-o", &p, &h]);
}

#[test]
fn interop_rdate_udp() {
    let s = Serve::start(SOCKIT, &["--only", "time"]);
    let (h, p) = host_port(&s.addr("time", "udp"));
    rdate_year(&["-p", "-u", "-o", &p, &h]);
}

const PY_COURSE_CLIENT: &str = r#"
import json, socket, struct, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
s.connect((host, port))
# The course way: length with struct.pack('i'), JSON header, no waiting for a greeting.
for cmd in ("hello", "ping"):
    header = json.dumps({"cmd": cmd}).encode("utf-8")
    s.send(struct.pack("i", len(header)))
    s.send(header)
def recv_exact(n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("connection closed")
        data += chunk
    return data
for _ in range(2):
    n = struct.unpack("i", recv_exact(4))[0]
    print(json.dumps(json.loads(recv_exact(n).decode("utf-8")), sort_keys=True))
s.close()
"#;

#[test]
fn interop_python_course_client_ping() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let (h, p) = host_port(&s.addr("framed", "tcp"));
    let out = run(
        Command::new(peer::require("python3", "python3")).args(["-c", PY_COURSE_CLIENT, &h, &p]),
        b"",
        LIMIT,
    );
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["cmd"], "hello");
    assert_eq!(lines[0]["auth"], "none");
    assert_eq!(lines[1]["status"], "ok");
}

#[test]
fn interop_nc_daytime_tcp_and_udp() {
    let s = Serve::start(SOCKIT, &["--only", "daytime"]);
    let (h, p) = host_port(&s.addr("daytime", "tcp"));
    let out = run(
        Command::new(peer::require("nc", "netcat-openbsd")).args([&h, &p]),
        b"",
        LIMIT,
    );
    let year = chrono::Local::now().format("%Y").to_string();
    assert!(stdout(&out).trim_end().ends_with(&year), "{out:?}");
    let (h, p) = host_port(&s.addr("daytime", "udp"));
    let out = run(
        Command::new(peer::require("socat", "socat")).args([
            "-t",
            "2",
            "-",
            &format!("UDP:{h}:{p}"),
        ]),
        b"%Y",
        LIMIT,
    );
    assert_eq!(stdout(&out), year);
}
