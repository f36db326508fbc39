//! The other IRC servers the chat benchmark measures, each started as a child process on
//! a free loopback port with a generated config in a temporary directory: `ngircd -n` and
//! `inspircd --nofork`. The configs ([`ngircd_config`], [`inspircd_config`]) are pure
//! text; [`start_ngircd`] and [`start_inspircd`] do the I/O.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use super::{io_err, BenchError};

/// Connection attempts (100 ms apart) before a started server counts as not listening.
const LISTEN_TRIES: u32 = 100;

/// A peer IRC server running as a child process with its generated config; killed (and
/// its temporary directory removed) on drop.
#[derive(Debug)]
pub struct PeerServer {
    /// Where it listens.
    pub addr: SocketAddr,
    pub(super) child: Child,
    pub(super) dir: PathBuf,
}

impl Drop for PeerServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The generated ngircd config: unlimited connections (also per IP) and joins, long
/// ping timeouts, no DNS/ident/PAM lookups.
pub fn ngircd_config(port: u16, dir: &Path) -> String {
    format!(
        "[Global]\n\
         Name = bench.ngircd\n\
         Info = sockit chat bench\n\
         Listen = 127.0.0.1\n\
         Ports = {port}\n\
         MotdPhrase = bench\n\
         PidFile = {pid}\n\
         [Limits]\n\
         MaxConnections = 0\n\
         MaxConnectionsIP = 0\n\
         MaxJoins = 0\n\
         MaxNickLength = 9\n\
         PingTimeout = 600\n\
         PongTimeout = 600\n\
         [Options]\n\
         DNS = no\n\
         Ident = no\n\
         PAM = no\n\
         SyslogFacility = local7\n",
        pid = dir.join("ngircd.pid").display()
    )
}

/// The generated InspIRCd (v3) config. What differs from InspIRCd's built-in defaults:
/// one `<connect>` class for 127.0.0.1 with `localmax`/`globalmax`/`limit` 100000 (the
/// defaults allow 3 connections per IP and 5000 per class), no hostname lookups
/// (`resolvehostnames="no"`; ident is a module, not loaded), no warning notices on
/// connection counts (`maxconnwarn="no"`), long pings (`pingfreq="600"`); at most
/// 100000 clients and a 4096 listen backlog (`<performance softlimit somaxconn>`); a
/// resolver pointed at 127.0.0.1 so it never reads the system's; and the IRCv3 modules
/// for the tags the benchmark asks for (`cap`, `ircv3`, `ircv3_servertime`,
/// `ircv3_msgid`, `ircv3_ctctags`: server-time, msgid and message-tags). Its flood
/// control (`fakelag`, `commandrate`, `penaltythreshold`) and queue sizes stay at their
/// defaults, as sockit's and ngircd's flood control does; no throttling module
/// (connflood, connectban) is loaded, and nothing is logged to a file.
pub fn inspircd_config(port: u16, dir: &Path) -> String {
    format!(
        "<server name=\"bench.inspircd\" description=\"sockit chat bench\" network=\"bench\">\n\
         <admin name=\"bench\" nick=\"bench\" email=\"bench@localhost\">\n\
         <bind address=\"127.0.0.1\" port=\"{port}\" type=\"clients\">\n\
         <connect name=\"bench\" allow=\"127.0.0.1\" resolvehostnames=\"no\" useident=\"no\" \
         localmax=\"100000\" globalmax=\"100000\" limit=\"100000\" maxconnwarn=\"no\" \
         pingfreq=\"600\">\n\
         <performance softlimit=\"100000\" somaxconn=\"4096\">\n\
         <dns server=\"127.0.0.1\" timeout=\"1\">\n\
         <files motd=\"{motd}\">\n\
         <pid file=\"{pid}\">\n\
         <module name=\"cap\">\n\
         <module name=\"ircv3\">\n\
         <module name=\"ircv3_servertime\">\n\
         <module name=\"ircv3_msgid\">\n\
         <module name=\"ircv3_ctctags\">\n",
        motd = dir.join("motd").display(),
        pid = dir.join("inspircd.pid").display()
    )
}

/// The free loopback port a server gets (bound and released; the server binds it next).
pub(super) fn free_port() -> Result<u16, BenchError> {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).map_err(io_err("free port"))?;
    Ok(l.local_addr().map_err(io_err("free port"))?.port())
}

/// A fresh temporary directory for `name`'s config (and pid file).
pub(super) fn temp_dir(name: &str, port: u16) -> Result<PathBuf, BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "sockit-chat-bench-{name}-{}-{port}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(io_err(format!("{name} temp dir")))?;
    Ok(dir)
}

/// Waits (≤ 10 s) until `server` accepts connections; an early exit of the child fails
/// at once, with what it wrote to `output` (a file in its directory).
pub(super) async fn wait_listening(
    mut server: PeerServer,
    name: &str,
    output: Option<&Path>,
) -> Result<PeerServer, BenchError> {
    let fail = |reason: String| BenchError::Peer {
        name: name.into(),
        reason,
    };
    let said = || {
        output
            .and_then(|p| std::fs::read_to_string(p).ok())
            .map(|t| format!(": {}", t.trim()))
            .unwrap_or_default()
    };
    for _ in 0..LISTEN_TRIES {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(fail(format!("exited with {status}{}", said())));
        }
        if TcpStream::connect(server.addr).await.is_ok() {
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(fail(format!(
        "not listening on {} after 10 s{}",
        server.addr,
        said()
    )))
}

/// Starts `ngircd -n -f CONF` on a free loopback port and waits (≤ 10 s) until it accepts.
///
/// # Errors
/// The binary cannot run or never listens.
pub async fn start_ngircd(bin: &Path) -> Result<PeerServer, BenchError> {
    let port = free_port()?;
    let dir = temp_dir("ngircd", port)?;
    let conf = dir.join("ngircd.conf");
    std::fs::write(&conf, ngircd_config(port, &dir)).map_err(io_err("write ngircd.conf"))?;
    let child = Command::new(bin)
        .arg("-n")
        .arg("-f")
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Peer {
            name: "ngircd".into(),
            reason: format!("cannot run {}: {e}", bin.display()),
        })?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(PeerServer { addr, child, dir }, "ngircd", None).await
}

/// Starts `inspircd --nofork --config CONF` (and `--runasroot` when running as root,
/// which InspIRCd otherwise refuses) on a free loopback port and waits (≤ 10 s) until it
/// accepts.
///
/// # Errors
/// The binary cannot run, exits (a config it rejects) or never listens.
pub async fn start_inspircd(bin: &Path) -> Result<PeerServer, BenchError> {
    let port = free_port()?;
    let dir = temp_dir("inspircd", port)?;
    let conf = dir.join("inspircd.conf");
    std::fs::write(&conf, inspircd_config(port, &dir)).map_err(io_err("write inspircd.conf"))?;
    std::fs::write(dir.join("motd"), "bench\n").map_err(io_err("write inspircd motd"))?;
    let out_path = dir.join("inspircd.out");
    let out = std::fs::File::create(&out_path).map_err(io_err("inspircd output file"))?;
    let err = out.try_clone().map_err(io_err("inspircd output file"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--nofork").arg("--config").arg(&conf);
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        cmd.arg("--runasroot");
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Peer {
            name: "inspircd".into(),
            reason: format!("cannot run {}: {e}", bin.display()),
        })?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(PeerServer { addr, child, dir }, "inspircd", Some(&out_path)).await
}
