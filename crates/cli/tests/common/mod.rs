//! Running the real `sockit` binary in tests: start `serve` on free ports and wait for its
//! addr file (never a sleep for readiness).
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub fn sockit() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sockit"));
    c.env_remove("SOCKIT_SERVER")
        .env_remove("SOCKIT_KEY")
        .env_remove("RUST_LOG");
    c
}

/// A running `sockit serve`.
pub struct Serve {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub addrs: serde_json::Value,
}

impl Serve {
    /// Starts `sockit serve --port all=0` with extra args and waits for its addr file.
    pub fn start(extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        Self::start_with(dir, &root, extra)
    }

    /// Starts `sockit serve --port all=0 --root ROOT` with extra args.
    pub fn start_in(root: &Path, extra: &[&str]) -> Serve {
        Self::start_with(tempfile::tempdir().unwrap(), root, extra)
    }

    fn start_with(dir: tempfile::TempDir, root: &Path, extra: &[&str]) -> Serve {
        let addr_file = dir.path().join("addrs.json");
        let mut cmd = sockit();
        cmd.args(["serve", "--port", "all=0", "--root"])
            .arg(root)
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let addrs = wait_for_addr_file(&addr_file, &mut child);
        Serve { child, dir, addrs }
    }

    /// The address of `service`'s `proto` endpoint.
    pub fn addr(&self, service: &str, proto: &str) -> String {
        self.addrs[service][proto]
            .as_str()
            .unwrap_or_else(|| panic!("no {service}/{proto} in {}", self.addrs))
            .to_owned()
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
    }

    /// Waits for the process to exit within `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        wait_child(&mut self.child, limit).expect("server did not exit in time")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until the server wrote its addr file (atomically), or fails if it exited.
pub fn wait_for_addr_file(path: &Path, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text).unwrap();
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("sockit serve exited with {status}: {err}");
        }
        assert!(Instant::now() < deadline, "no addr file after 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for a child to exit, up to `limit`.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return Some(s);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs a command with `input` on stdin, killing it after `limit`.
pub fn run(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: signal 0 only checks the pid exists.
            if unsafe { libc::kill(pid as i32, 0) } != 0 {
                return;
            }
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid as i32, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().unwrap();
    let _ = feeder.join();
    let _ = watchdog.join();
    out
}

/// stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Host and port of an address string.
pub fn host_port(addr: &str) -> (String, String) {
    let (h, p) = addr.rsplit_once(':').unwrap();
    (
        h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        p.to_owned(),
    )
}

/// A path inside the test's temp dir.
pub fn tmp_path(s: &Serve, name: &str) -> PathBuf {
    s.dir.path().join(name)
}

impl Serve {
    /// Sends `sig` (e.g. `libc::SIGINT`) to the server.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Takes the server's stderr, read line by line on a thread (so the server never
    /// blocks on a full pipe).
    pub fn stderr_lines(&mut self) -> OutputLines {
        OutputLines::of(
            self.child
                .stderr
                .take()
                .expect("stderr is piped and not taken"),
        )
    }
}

/// Lines of a child's output stream as they arrive.
pub struct OutputLines {
    rx: std::sync::mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl OutputLines {
    /// Reads `stream` on a thread until its end.
    pub fn of(stream: impl std::io::Read + Send + 'static) -> OutputLines {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        OutputLines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` (up to `limit`, then fails with what came).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every line, once the stream has ended (the process exited).
    pub fn rest(&mut self) -> String {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}
