//! The peers sockit's file service is measured against, started and driven by the
//! benchmark: an `rsync --daemon` on a free loopback port, `tar | socat` pipes, and the
//! loopback interface's byte counter (what went over the wire, headers included).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{io, BenchError, Reaper};

/// Longest a peer may take to start listening.
const START_LIMIT: Duration = Duration::from_secs(30);

/// A free port on 127.0.0.1 (bound, read and released).
pub(crate) fn free_port() -> Result<u16, BenchError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(io("find a free port"))
}

/// Waits until something accepts connections on `127.0.0.1:port`.
fn wait_listening(port: u16, child: &mut Reaper, what: &str) -> Result<(), BenchError> {
    let deadline = Instant::now() + START_LIMIT;
    loop {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            return Err(BenchError::Step(format!("{what} exited early: {status}")));
        }
        if Instant::now() > deadline {
            return Err(BenchError::Step(format!(
                "{what} did not listen on 127.0.0.1:{port} within {START_LIMIT:?}"
            )));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An `rsync --daemon` serving one writable module `m` from a directory.
pub(crate) struct RsyncDaemon {
    port: u16,
    _child: Reaper,
}

impl RsyncDaemon {
    /// Starts the daemon on a free loopback port with module `m` at `module_dir`; its
    /// configuration goes into `work`.
    pub(crate) fn start(work: &Path, module_dir: &Path) -> Result<RsyncDaemon, BenchError> {
        std::fs::create_dir_all(module_dir).map_err(io("create the rsync module"))?;
        // SAFETY: getuid/getgid cannot fail and touch no memory.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let conf = work.join("rsyncd.conf");
        std::fs::write(
            &conf,
            format!(
                "use chroot = no\nuid = {uid}\ngid = {gid}\npid file = {}\n\
                 [m]\npath = {}\nread only = false\n",
                work.join("rsyncd.pid").display(),
                module_dir.display()
            ),
        )
        .map_err(io("write rsyncd.conf"))?;
        let port = free_port()?;
        let mut child = Reaper(
            Command::new("rsync")
                .args(["--daemon", "--no-detach", "--address", "127.0.0.1"])
                .arg(format!("--port={port}"))
                .arg(format!("--config={}", conf.display()))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .map_err(io("run rsync --daemon (install it: apt-get install rsync)"))?,
        );
        wait_listening(port, &mut child, "rsync --daemon")?;
        Ok(RsyncDaemon {
            port,
            _child: child,
        })
    }

    /// `rsync://127.0.0.1:PORT/m/PATH`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("rsync://127.0.0.1:{}/m/{path}", self.port)
    }
}

/// Runs a command to completion; its wall time in seconds.
pub(crate) fn timed(cmd: &mut Command, what: &str) -> Result<f64, BenchError> {
    let t = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(io(format!("run {what}")))?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(BenchError::Step(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(secs)
}

/// `tar -C src -cf - . | socat` into `socat | tar -C dst -xf -` on loopback; seconds.
pub(crate) fn tar_socat(src: &Path, dst: &Path) -> Result<f64, BenchError> {
    std::fs::create_dir_all(dst).map_err(io("create the tar destination"))?;
    let port = free_port()?;
    let mut recv = Reaper(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "socat -u TCP-LISTEN:{port},reuseaddr,bind=127.0.0.1 - | tar -C '{}' -xf -",
                dst.display()
            ))
            .stdout(Stdio::null())
            .spawn()
            .map_err(io("run socat | tar (install socat and tar)"))?,
    );
    let t = Instant::now();
    let send = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "tar -C '{}' -cf - . | socat -u - TCP:127.0.0.1:{port},retry=500,interval=0.01",
            src.display()
        ))
        .status()
        .map_err(io("run tar | socat"))?;
    let got = recv.0.wait().map_err(io("wait for socat | tar"))?;
    let secs = t.elapsed().as_secs_f64();
    if !send.success() || !got.success() {
        return Err(BenchError::Step(format!(
            "tar | socat failed (sender {send}, receiver {got})"
        )));
    }
    Ok(secs)
}

/// Bytes received on the loopback interface so far (`/proc/net/dev`); every byte sent
/// over loopback is received once, TCP/IP headers and acknowledgements included.
pub(crate) fn loopback_bytes() -> Result<u64, BenchError> {
    let dev = std::fs::read_to_string("/proc/net/dev").map_err(io("read /proc/net/dev"))?;
    dev.lines()
        .find_map(|l| l.trim_start().strip_prefix("lo:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| BenchError::Step("no lo line in /proc/net/dev".into()))
}

/// Whether two trees hold the same regular files with the same bytes (names, sizes and
/// contents; `diff -r` without printing).
pub(crate) fn same_tree(a: &Path, b: &Path) -> Result<bool, BenchError> {
    let status = Command::new("diff")
        .args(["-r", "-q"])
        .arg(a)
        .arg(b)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(io("run diff"))?;
    Ok(status.success())
}

/// Fails the run when the copy `b` differs from the source `a`.
pub(crate) fn check_same(a: &Path, b: &Path, what: &str) -> Result<(), BenchError> {
    if same_tree(a, b)? {
        Ok(())
    } else {
        Err(BenchError::Step(format!(
            "{what}: the copy differs from the source"
        )))
    }
}
