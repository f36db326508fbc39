//! Shared test fixtures: our server in-process, external peers as child processes.
#![allow(dead_code)]

use sockit_testkit::{net, peer};
use sockit_tftp::{serve, ServerConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::process::{Child, Command};
use tokio_util::sync::CancellationToken;

/// The sizes the issue asks every interop pairing to move byte-exact.
pub const SMALL_SIZES: [usize; 5] = [0, 511, 512, 513, 1 << 20];
/// Past the 65535-block rollover at blksize 512 (65535 × 512 = 32 MiB − 512).
pub const ROLLOVER_SIZE: usize = 33 << 20;

/// Our server running in-process on 127.0.0.1:0 with a temporary root.
pub struct TestServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    pub shutdown: CancellationToken,
    pub task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    /// Starts a server; `tweak` adjusts the config (root is set afterwards).
    pub async fn start(tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        TestServer::start_on("127.0.0.1:0".parse().unwrap(), tweak).await
    }

    /// Starts a server bound to `bind`.
    pub async fn start_on(bind: SocketAddr, tweak: impl FnOnce(&mut ServerConfig)) -> TestServer {
        let root = tempfile::tempdir().unwrap();
        let mut config = ServerConfig {
            default_timeout: Duration::from_millis(200),
            ..ServerConfig::default()
        };
        tweak(&mut config);
        config.root = root.path().to_owned();
        let socket = UdpSocket::bind(bind).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let token = shutdown.clone();
        let task = tokio::spawn(async move {
            serve(socket, config, token).await.unwrap();
        });
        TestServer {
            addr,
            root,
            shutdown,
            task,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("server drains")
            .unwrap();
    }
}

/// An external TFTP server child, killed on drop.
pub struct ExternalServer {
    pub addr: SocketAddr,
    pub root: tempfile::TempDir,
    child: Child,
}

impl Drop for ExternalServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

impl ExternalServer {
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.path().join(name)
    }

    /// tftpd-hpa in the foreground, chrooted to a temporary root, writes allowed.
    pub async fn tftpd_hpa() -> ExternalServer {
        let program = peer::require("in.tftpd", "tftpd-hpa");
        let root = world_writable_tempdir();
        let user = current_user();
        let port = net::free_udp_port();
        let child = Command::new(program)
            .args(["-L", "-s", "-c", "-p", "-u", &user, "-a"])
            .arg(format!("127.0.0.1:{port}"))
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start in.tftpd");
        ExternalServer::ready(child, root, port).await
    }

    /// atftpd in the foreground (`--daemon --no-fork`), rooted in a temporary directory.
    pub async fn atftpd() -> ExternalServer {
        let program = peer::require("atftpd", "atftpd");
        let root = world_writable_tempdir();
        let user = current_user();
        let port = net::free_udp_port();
        let child = Command::new(program)
            .args([
                "--daemon",
                "--no-fork",
                "--logfile",
                "/dev/null",
                "--user",
                &user,
            ])
            .args(["--group", &current_group()])
            .args(["--port", &port.to_string(), "--bind-address", "127.0.0.1"])
            .arg(root.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start atftpd");
        ExternalServer::ready(child, root, port).await
    }

    /// Waits until the server answers a request (no sleeping: a bounded series of
    /// requests, each waiting up to 100 ms for an answer).
    async fn ready(mut child: Child, root: tempfile::TempDir, port: u16) -> ExternalServer {
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        for _ in 0..100 {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("TFTP server exited early: {status}");
            }
            if sockit_tftp::client::probe(addr, Duration::from_millis(100))
                .await
                .unwrap()
            {
                return ExternalServer { addr, root, child };
            }
        }
        panic!("TFTP server on {addr} never answered");
    }
}

fn world_writable_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

fn id(flag: &str) -> String {
    let out = std::process::Command::new("id").arg(flag).output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

pub fn current_user() -> String {
    id("-un")
}

pub fn current_group() -> String {
    id("-gn")
}

/// Runs an external client to completion (bounded by a timeout) and returns its output.
pub async fn run(program: &Path, args: &[String], cwd: &Path) -> std::process::Output {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    tokio::time::timeout(Duration::from_secs(120), command.output())
        .await
        .unwrap_or_else(|_| panic!("{} {args:?} timed out", program.display()))
        .expect("run client")
}

/// Reads `path` until it holds `want` (bounded: 5 s). atftpd sends the final ACK of an
/// upload before it closes the file, so the last bytes land a moment after our client
/// has finished; this polls the file, it does not wait for a server to start.
pub async fn read_when_complete(path: &Path, want: &[u8]) -> Vec<u8> {
    let mut got = Vec::new();
    for _ in 0..500 {
        got = std::fs::read(path).unwrap_or_default();
        if got == want {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    got
}

/// The next datagram on `socket` and its source, or a failure after 30 s (a hang guard,
/// not a timing assertion).
pub async fn recv_datagram(socket: &tokio::net::UdpSocket) -> (Vec<u8>, std::net::SocketAddr) {
    let mut buf = vec![0u8; 70000];
    let (len, from) = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        socket.recv_from(&mut buf),
    )
    .await
    .expect("a datagram arrives")
    .unwrap();
    buf.truncate(len);
    (buf, from)
}
