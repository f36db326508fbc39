//! The real `sockit` binary as `sockit serve`, started on free ports (`--port all=0`) and
//! known ready by its addr file. Tests pass the binary's path, which cargo gives the
//! crate that builds it: `env!("CARGO_BIN_EXE_sockit")`.

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use crate::addr_file;
use crate::process::{self, OutputLines};

/// A command running the binary at `bin`, without the environment a user's shell may
/// set for it (`SOCKIT_SERVER`, `SOCKIT_KEY`, `RUST_LOG`), so a test sees the defaults.
pub fn command(bin: &str) -> Command {
    let mut c = Command::new(bin);
    c.env_remove("SOCKIT_SERVER")
        .env_remove("SOCKIT_KEY")
        .env_remove("RUST_LOG");
    c
}

/// A running `sockit serve`, killed (and reaped) on drop. Its stdout and stderr are piped.
pub struct Serve {
    /// The server process.
    pub child: Child,
    /// The test's directory: the addr file, and the data root `root/` unless given.
    pub dir: tempfile::TempDir,
    /// The addr file's JSON: `addrs["echo"]["tcp"]` is `"127.0.0.1:PORT"`.
    pub addrs: serde_json::Value,
}

impl Serve {
    /// Starts `BIN serve --port all=0 --root DIR/root --addr-file …` with `extra` args
    /// and waits for its addr file.
    pub fn start(bin: &str, extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let root = dir.path().join("root");
        Self::start_with(bin, dir, &root, extra)
    }

    /// [`Serve::start`] with the data root `root`.
    pub fn start_in(bin: &str, root: &Path, extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Self::start_with(bin, dir, root, extra)
    }

    fn start_with(bin: &str, dir: tempfile::TempDir, root: &Path, extra: &[&str]) -> Serve {
        let addr_file = dir.path().join("addrs.json");
        let mut child = command(bin)
            .args(["serve", "--port", "all=0", "--root"])
            .arg(root)
            .arg("--addr-file")
            .arg(&addr_file)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin} serve: {e}"));
        let addrs = addr_file::wait(&addr_file, &mut child);
        Serve { child, dir, addrs }
    }

    /// The address of `service`'s `proto` endpoint (`addr("echo", "tcp")`).
    pub fn addr(&self, service: &str, proto: &str) -> String {
        addr_file::endpoint(&self.addrs, service, proto)
    }

    /// A path inside the test's directory.
    pub fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    /// Sends SIGTERM (a graceful shutdown).
    pub fn terminate(&self) {
        self.signal(libc::SIGTERM);
    }

    /// Sends `sig` (e.g. `libc::SIGINT`).
    pub fn signal(&self, sig: i32) {
        process::signal(&self.child, sig);
    }

    /// Waits for the process to exit, failing after `limit` (a hang guard).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        process::wait_child(&mut self.child, limit).expect("server did not exit in time")
    }

    /// Takes the server's stderr, read line by line on a thread.
    pub fn stderr_lines(&mut self) -> OutputLines {
        OutputLines::of(
            self.child
                .stderr
                .take()
                .expect("stderr is piped and not taken"),
        )
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
