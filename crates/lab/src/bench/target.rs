//! Servers the user runs, measured like the built-in models: `--target HOST:PORT` (a
//! server already running) or `--target-cmd 'CMD {port}'` (the lab starts the command
//! for every cell on a free port, pinned to the server cores like a model, and stops it
//! afterwards). Either way the lab finds the listening process through /proc (the
//! socket's inode in `/proc/net/tcp`, then the process holding it) to read its CPU time
//! and memory.

use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::affinity;
use crate::error::{LabError, Result};
use crate::model::Model;

use super::{Running, ServerProcess};

/// What `--target-cmd` replaces with the port the server must listen on.
pub const PORT_PLACEHOLDER: &str = "{port}";

/// How long a `--target-cmd` server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A server outside the lab, measured as one more row of the matrix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its row name in results and reports (must not be a model's name).
    pub name: String,
    /// How to reach it.
    pub kind: TargetKind,
}

/// Where a [`Target`] comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// Already running at this loopback address; the lab neither starts nor stops it.
    Addr(SocketAddr),
    /// A shell command the lab runs (`sh -c`) per cell, with [`PORT_PLACEHOLDER`]
    /// replaced by a free port; it must listen on 127.0.0.1 (or all addresses) there.
    Command(String),
}

impl Target {
    /// Checks the name and the address or command.
    ///
    /// # Errors
    /// [`LabError::Invalid`] for an empty name or a model's name (a results row would be
    /// ambiguous), a command without `{port}`; [`LabError::NotLoopback`] for an address
    /// outside 127.0.0.0/8.
    pub fn validate(&self) -> Result<()> {
        if self.name.trim().is_empty() || self.name.contains('|') {
            return Err(LabError::Invalid(format!(
                "target name {:?} must be non-empty and contain no `|`",
                self.name
            )));
        }
        if self.name.parse::<Model>().is_ok() {
            return Err(LabError::Invalid(format!(
                "target name {:?} is a model's name; choose another with --target-name",
                self.name
            )));
        }
        match &self.kind {
            TargetKind::Addr(a) if !a.ip().is_loopback() => Err(LabError::NotLoopback { addr: *a }),
            TargetKind::Command(c) if !c.contains(PORT_PLACEHOLDER) => {
                Err(LabError::Invalid(format!(
                    "--target-cmd {c:?} has no {PORT_PLACEHOLDER}: the lab picks the port \
                     and the command must listen on it"
                )))
            }
            _ => Ok(()),
        }
    }
}

/// Resolves `HOST:PORT` to a loopback address (the load generator targets nothing else).
///
/// # Errors
/// [`LabError::Invalid`] when it does not resolve, [`LabError::NotLoopback`] when it
/// resolves only outside 127.0.0.0/8 and ::1.
pub fn parse_addr(s: &str) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = s
        .to_socket_addrs()
        .map_err(|e| LabError::Invalid(format!("--target {s:?}: {e} (expected HOST:PORT)")))?
        .collect();
    match addrs.iter().find(|a| a.ip().is_loopback()) {
        Some(a) => Ok(*a),
        None => match addrs.first() {
            Some(a) => Err(LabError::NotLoopback { addr: *a }),
            None => Err(LabError::Invalid(format!(
                "--target {s:?} resolves to nothing"
            ))),
        },
    }
}

/// Makes the target ready for one cell: checks an address accepts connections, or
/// starts the command and waits until it listens.
pub(super) fn start(t: &Target, work: &Path, server_cores: &[usize]) -> Result<Running> {
    match &t.kind {
        TargetKind::Addr(addr) => {
            TcpStream::connect_timeout(addr, Duration::from_secs(2)).map_err(|e| {
                LabError::io(
                    format!("target {} at {addr}: nothing accepts there", t.name),
                    e,
                )
            })?;
            let pid = pid_owning(&listening_inodes(addr.port()));
            Ok(Running {
                addr: *addr,
                pid,
                _process: None,
            })
        }
        TargetKind::Command(template) => start_command(t, template, work, server_cores),
    }
}

/// Attempts at starting a `--target-cmd`, each on a fresh port: a port found free can be
/// taken by another process before the command binds it.
const START_ATTEMPTS: usize = 3;

fn start_command(
    t: &Target,
    template: &str,
    work: &Path,
    server_cores: &[usize],
) -> Result<Running> {
    let mut last = None;
    for _ in 0..START_ATTEMPTS {
        match start_command_on(t, template, work, server_cores, free_port()?) {
            Ok(running) => return Ok(running),
            // Waiting longer would not help; only an early exit may be a port race.
            Err(e @ LabError::ServerStartTimeout { .. }) => return Err(e),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| unreachable!("START_ATTEMPTS is at least 1")))
}

fn start_command_on(
    t: &Target,
    template: &str,
    work: &Path,
    server_cores: &[usize],
    port: u16,
) -> Result<Running> {
    let mut cmd = shell_command(template, port);
    let err_path = work.join(format!("target-{port}.stderr"));
    let err_file = std::fs::File::create(&err_path).map_err(|source| LabError::File {
        path: err_path.clone(),
        source,
    })?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(err_file)
        .process_group(0);
    let cores = server_cores.to_vec();
    // SAFETY: the closure only calls sched_setaffinity (async-signal-safe) between fork
    // and exec and allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            if !cores.is_empty() {
                affinity::pin_current_thread(&cores)?;
            }
            Ok(())
        });
    }
    let child = cmd
        .spawn()
        .map_err(|e| LabError::io(format!("start target {}: sh -c {template:?}", t.name), e))?;
    let mut process = ServerProcess {
        child,
        polite: true,
    };
    let t0 = Instant::now();
    loop {
        if !listening_inodes(port).is_empty() {
            return Ok(Running {
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                pid: Some(process.pid()),
                _process: Some(process),
            });
        }
        if let Ok(Some(status)) = process.child.try_wait() {
            let msg = std::fs::read_to_string(&err_path).unwrap_or_default();
            return Err(LabError::io(
                format!(
                    "target {} exited ({status}) before listening on {port}",
                    t.name
                ),
                std::io::Error::other(msg.trim().to_string()),
            ));
        }
        if t0.elapsed() > START_TIMEOUT {
            return Err(LabError::ServerStartTimeout {
                model: t.name.clone(),
                secs: START_TIMEOUT.as_secs(),
            });
        }
        // Polling /proc/net/tcp for the listener (bounded above); the command is the
        // user's and cannot be asked to write an address file.
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A port nothing listens on right now (bind port 0, read it, close). Another process
/// could take it before the command binds; the command then fails and says so.
fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|source| LabError::Bind {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        source,
    })?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| LabError::io("free port", e))
}

/// `sh -c CMD` with the port filled in. A simple command (no shell operators, no
/// variable assignment) is `exec`ed so the server itself is the lab's child: it gets
/// the stop signal first-hand and is reaped by the lab, not orphaned.
pub fn shell_command(template: &str, port: u16) -> Command {
    let line = template.replace(PORT_PLACEHOLDER, &port.to_string());
    let simple = !line.contains([';', '&', '|', '<', '>', '(', ')', '`', '$', '\n'])
        && !line
            .split_whitespace()
            .next()
            .is_some_and(|w| w.contains('='));
    let mut c = Command::new("sh");
    c.arg("-c")
        .arg(if simple { format!("exec {line}") } else { line });
    c
}

/// Inodes of the sockets listening on TCP `port` (any local address), from
/// /proc/net/tcp and /proc/net/tcp6.
pub fn listening_inodes(port: u16) -> Vec<u64> {
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .flat_map(|text| parse_listeners(&text, port))
        .collect()
}

/// The listening sockets on `port` in the text of /proc/net/tcp{,6}: lines of
/// `sl local_address rem_address st ... uid timeout inode`, addresses as `HEX:PORT` in
/// hexadecimal, state 0A = LISTEN. Lines that do not parse are skipped.
fn parse_listeners(text: &str, port: u16) -> Vec<u64> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let (_, p) = local.rsplit_once(':')?;
            let p = u16::from_str_radix(p, 16).ok()?;
            let listening = *f.get(3)? == "0A";
            let inode: u64 = f.get(9)?.parse().ok()?;
            (p == port && listening && inode != 0).then_some(inode)
        })
        .collect()
}

/// The process holding one of `inodes` as an open descriptor (`socket:[INODE]` in
/// /proc/PID/fd), if this user may see it. The lowest such pid is the one that created
/// the socket before forking, when several share it.
pub fn pid_owning(inodes: &[u64]) -> Option<u32> {
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    let mut pids: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    pids.sort_unstable();
    pids.into_iter().find(|pid| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .map(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .ok()
                        .and_then(|l| l.to_str().map(|s| wanted.iter().any(|w| w == s)))
                        .unwrap_or(false)
                })
            })
            .unwrap_or(false)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROC_NET_TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 20 4 30 10 -1
   2: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 99 1
   3: garbage
   4: 0100007F:ZZZZ 00000000:0000 0A 0 0 0 0 0 7
";

    #[test]
    fn listeners_by_port() {
        assert_eq!(parse_listeners(PROC_NET_TCP, 8080), vec![4242]);
        assert_eq!(parse_listeners(PROC_NET_TCP, 22), vec![99]);
        assert!(parse_listeners(PROC_NET_TCP, 9).is_empty());
        assert!(parse_listeners("", 8080).is_empty());
        assert!(parse_listeners("\u{0}\n\u{ffff} : : :\n", 8080).is_empty());
    }

    #[test]
    fn this_process_owns_its_listener() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let inodes = listening_inodes(port);
        assert_eq!(inodes.len(), 1, "{inodes:?}");
        assert_eq!(pid_owning(&inodes), Some(std::process::id()));
    }

    #[test]
    fn simple_commands_are_execed() {
        let c = shell_command("python3 server.py --port {port}", 4000);
        let args: Vec<_> = c
            .get_args()
            .map(|a| a.to_string_lossy().to_string())
            .collect();
        assert_eq!(args, ["-c", "exec python3 server.py --port 4000"]);
        for compound in ["cd x && ./s {port}", "A=1 ./s {port}", "./s {port} > log"] {
            let c = shell_command(compound, 1);
            let last = c.get_args().last().unwrap().to_string_lossy().to_string();
            assert!(!last.starts_with("exec "), "{last}");
        }
    }

    #[test]
    fn validation() {
        let t = |name: &str, kind: TargetKind| Target {
            name: name.into(),
            kind,
        };
        let lo = TargetKind::Addr("127.0.0.1:9".parse().unwrap());
        assert!(t("mine", lo.clone()).validate().is_ok());
        assert!(t("epoll-et", lo.clone()).validate().is_err());
        assert!(t("", lo).validate().is_err());
        assert!(matches!(
            t("x", TargetKind::Addr("10.0.0.1:9".parse().unwrap())).validate(),
            Err(LabError::NotLoopback { .. })
        ));
        assert!(t("x", TargetKind::Command("./server".into()))
            .validate()
            .is_err());
        assert!(t("x", TargetKind::Command("./server {port}".into()))
            .validate()
            .is_ok());
    }

    #[test]
    fn addresses_must_be_loopback() {
        assert_eq!(
            parse_addr("127.0.0.1:7788").unwrap(),
            "127.0.0.1:7788".parse::<SocketAddr>().unwrap()
        );
        assert!(parse_addr("localhost:7788").unwrap().ip().is_loopback());
        assert!(matches!(
            parse_addr("192.0.2.1:80"),
            Err(LabError::NotLoopback { .. })
        ));
        assert!(parse_addr("no port").is_err());
    }
}
