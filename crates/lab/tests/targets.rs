//! `--target` and `--target-cmd`: the bench measures a server the user wrote (here a
//! course-style Python echo server) with the same cells as the models, and the report
//! shows its row; with `--target-cmd` the lab starts the command for every cell and
//! stops it afterwards.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockit_lab::bench::target::listening_inodes;
use sockit_lab::bench::{command_launcher, run_bench, BenchConfig, Target, TargetKind};
use sockit_lab::models::python::python_program;
use sockit_lab::results::BenchResults;

/// A learner's threaded echo server: `--port P` (0: any), prints `listening on IP:PORT`,
/// writes its pid to `--pid-dir/PORT.pid` if asked.
const COURSE_SERVER: &str = r#"
import argparse, os
from socket import socket, AF_INET, SOCK_STREAM, SOL_SOCKET, SO_REUSEADDR
from threading import Thread

def deal_with_client(new_socket):
    try:
        while True:
            data = new_socket.recv(1024)
            if not data:
                break
            new_socket.sendall(data)
    except OSError:
        pass
    finally:
        new_socket.close()

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=0)
parser.add_argument("--pid-dir")
args = parser.parse_args()
s = socket(AF_INET, SOCK_STREAM)
s.setsockopt(SOL_SOCKET, SO_REUSEADDR, 1)
s.bind(("127.0.0.1", args.port))
s.listen(128)
port = s.getsockname()[1]
if args.pid_dir:
    with open(os.path.join(args.pid_dir, "%d.pid" % port), "w") as f:
        f.write(str(os.getpid()))
print("listening on 127.0.0.1:%d" % port, flush=True)
while True:
    c, _ = s.accept()
    t = Thread(target=deal_with_client, args=(c,))
    t.daemon = True
    t.start()
"#;

fn write_script(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("course_server.py");
    std::fs::write(&p, COURSE_SERVER).unwrap();
    p
}

/// Kills the server the test started when the test ends, however it ends.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_course_server(script: &Path) -> (Server, SocketAddr) {
    let mut child = Command::new(python_program())
        .arg(script)
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; the Debian package is python3",
                python_program()
            )
        });
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("course server said {line:?}"));
    (Server(child), addr)
}

fn config(out: &Path, targets: Vec<Target>) -> BenchConfig {
    BenchConfig {
        models: Vec::new(),
        targets,
        conns: vec![1, 8],
        // Long enough that a freshly started Python server accepts every connection
        // on a loaded machine (the cell counts only connections that echoed).
        duration: Duration::from_secs(1),
        out_dir: out.to_path_buf(),
        ..BenchConfig::default()
    }
}

/// No model runs in these tests; the launcher is never called.
fn no_launcher() -> Box<sockit_lab::bench::Launcher> {
    command_launcher("/nonexistent".into(), Vec::new())
}

fn assert_measured(results: &BenchResults, name: &str) {
    for n in [1, 8] {
        let c = results
            .cells
            .iter()
            .find(|c| c.model == name && c.mode == "closed" && c.conns == n)
            .unwrap_or_else(|| panic!("no {name} row at {n} conns: {results:?}"));
        assert_eq!(c.skipped, None, "{c:?}");
        assert_eq!(c.connected, n, "{c:?}");
        assert!(c.requests > 0, "{c:?}");
        assert_eq!(c.errors, 0, "{c:?}");
        // The server is this user's process: the lab found it through /proc.
        assert!(c.mem_idle_kib > 0 && c.peak_rss_kib > 0, "{c:?}");
    }
}

#[test]
fn target_row_for_a_python_server_the_test_started() {
    let dir = tempfile::tempdir().unwrap();
    let (_server, addr) = start_course_server(&write_script(dir.path()));
    let target = Target {
        name: "my-course-server".into(),
        kind: TargetKind::Addr(addr),
    };
    let out = dir.path().join("results");
    let (path, results) = run_bench(&config(&out, vec![target]), &*no_launcher()).unwrap();
    assert_eq!(results.cells.len(), 2);
    let loaded = BenchResults::load(&path).unwrap();
    let rows = |r: &BenchResults| -> Vec<(String, usize, u64)> {
        r.cells
            .iter()
            .map(|c| (c.model.clone(), c.conns, c.requests))
            .collect()
    };
    assert_eq!(
        rows(&loaded),
        rows(&results),
        "the file holds the run's rows"
    );
    assert_measured(&loaded, "my-course-server");
    let md = std::fs::read_to_string(sockit_lab::report::report(&path).unwrap().markdown).unwrap();
    assert!(md.contains("### your servers (--target)"), "{md}");
    assert!(md.contains("| my-course-server | closed | 8 |"), "{md}");
}

#[test]
fn target_cmd_starts_and_stops_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_script(dir.path());
    let pids = dir.path().join("pids");
    std::fs::create_dir(&pids).unwrap();
    let cmd = format!(
        "{} {} --port {{port}} --pid-dir {}",
        python_program(),
        script.display(),
        pids.display()
    );
    let target = Target {
        name: "started-by-lab".into(),
        kind: TargetKind::Command(cmd),
    };
    let out = dir.path().join("results");
    let (_, results) = run_bench(&config(&out, vec![target]), &*no_launcher()).unwrap();
    assert_measured(&results, "started-by-lab");
    // One fresh server per cell, each on its own port, each stopped afterwards.
    let started: Vec<(u16, u32)> = std::fs::read_dir(&pids)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let port = e
                .path()
                .file_stem()
                .unwrap()
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            let pid = std::fs::read_to_string(e.path())
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            (port, pid)
        })
        .collect();
    assert_eq!(started.len(), 2, "{started:?}");
    for (port, pid) in started {
        assert!(
            listening_inodes(port).is_empty(),
            "port {port} still listening after the bench"
        );
        // Gone, or a zombie waiting for its reaper: either way it no longer runs.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| s.rsplit_once(") ").map(|(_, r)| r.chars().next()))
            .flatten();
        assert!(
            matches!(state, None | Some('Z')),
            "server pid {pid} still runs (state {state:?})"
        );
    }
}

#[test]
fn a_target_nobody_serves_is_skipped_with_the_reason() {
    // Bind, note the port, close: nothing listens there now.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        name: "nobody".into(),
        kind: TargetKind::Addr(addr),
    };
    let (_, results) = run_bench(&config(dir.path(), vec![target]), &*no_launcher()).unwrap();
    assert_eq!(results.cells.len(), 2);
    for c in &results.cells {
        let reason = c.skipped.as_deref().unwrap_or_default();
        assert!(reason.contains("nothing accepts there"), "{c:?}");
    }
}

#[test]
fn a_target_named_like_a_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let target = Target {
        name: "epoll-et".into(),
        kind: TargetKind::Command("true {port}".into()),
    };
    let e = run_bench(&config(dir.path(), vec![target]), &*no_launcher()).unwrap_err();
    assert!(e.to_string().contains("is a model's name"), "{e}");
}
