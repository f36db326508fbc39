//! Network namespaces for the packet experiments: two namespaces joined by a veth pair,
//! each with its own address, sysctls and counters, so nothing the experiments flood,
//! spoof or tune ever touches the host's network stack.
//!
//! ```text
//!   netns <prefix>-s                          netns <prefix>-c
//!   +------------------------+                +------------------------+
//!   | 198.18.0.1/24          |  veth pair     | 198.18.0.2/24          |
//!   | 02:00:00:00:00:01  [s] |================| [c]  02:00:00:00:00:02 |
//!   +------------------------+                +------------------------+
//! ```
//!
//! The addresses come from 198.18.0.0/15, the range RFC 2544 reserves for benchmarking
//! and that is never routed; every run has its own namespaces, so parallel runs can share
//! it. Namespaces are created with `ip netns add` under unique names and deleted by the
//! [`Netns`] guard's `Drop` (the veth pair lives inside them and disappears with them),
//! even when an experiment fails or panics.
//!
//! Code runs inside a namespace on a thread that has called setns(2) ([`Netns::run`]):
//! a socket stays in the namespace it was created in, so the experiment creates its
//! sockets there and then uses them from any thread. The kernel's per-namespace views
//! (`/proc/thread-self/net/*`, `/proc/sys/net/*`) are read on such a thread too.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{LabError, Result};
use crate::experiments::packets::Mac;
use crate::experiments::proc_net::{parse_netstat, parse_tcp, TcpEntry};

/// Every namespace this module creates is named `<NAME_PREFIX><pid>-<n>-<tag>-<side>`.
pub const NAME_PREFIX: &str = "sockit-lab-";

/// The server's address inside its namespace.
pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 1);
/// The client's address inside its namespace.
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 18, 0, 2);
/// The prefix length of the shared subnet.
pub const PREFIX_LEN: u8 = 24;
/// The server's veth MAC (locally administered, so it cannot clash with real hardware).
pub const SERVER_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x01]);
/// The client's veth MAC.
pub const CLIENT_MAC: Mac = Mac([0x02, 0, 0, 0, 0, 0x02]);

/// Per-process counter making namespace names unique within a run.
static NEXT: AtomicU32 = AtomicU32::new(0);
/// Serializes `ip netns add`: the first one sets up the /run/netns mount, and two at once
/// can race there.
static CREATE: Mutex<()> = Mutex::new(());

/// Whether the process runs as root (namespaces, raw and packet sockets need it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with a message naming the experiment unless the process runs as root.
///
/// # Errors
/// [`LabError::Invalid`] when not root.
pub fn require_root(experiment: &str) -> Result<()> {
    if is_root() {
        Ok(())
    } else {
        Err(LabError::Invalid(format!(
            "`sockit lab {experiment}` needs root: it creates network namespaces, a veth pair \
             and raw/packet sockets (run it with sudo)"
        )))
    }
}

fn ip_command(args: &[&str]) -> Result<String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LabError::io("cannot run `ip` (install iproute2)", e))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError::Invalid(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// The names `ip netns list` shows.
///
/// # Errors
/// When `ip` cannot be run.
pub fn listed() -> Result<Vec<String>> {
    let text = ip_command(&["netns", "list"])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect())
}

/// Deletes namespaces this module created in processes that no longer exist (a run that
/// was killed before its guards could drop).
fn remove_orphans() {
    let Ok(names) = listed() else { return };
    for name in names {
        let Some(rest) = name.strip_prefix(NAME_PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip_command(&["netns", "del", &name]);
        }
    }
}

/// A network namespace, deleted when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    fn add(name: String) -> Result<Netns> {
        let _serial = CREATE.lock().unwrap_or_else(|p| p.into_inner());
        ip_command(&["netns", "add", &name])?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        // IPv6 would add router solicitations and DAD probes to every capture.
        ns.run(|| {
            for key in ["all", "default"] {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{key}/disable_ipv6"), "1");
            }
            Ok(())
        })?;
        Ok(ns)
    }

    /// The namespace's name (`ip netns exec NAME ...` reaches it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `f` on a thread inside the namespace and returns its result. Sockets it
    /// creates belong to the namespace for their whole life.
    ///
    /// # Errors
    /// When the namespace cannot be entered, or what `f` returns.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = File::open(&path).map_err(|source| LabError::File {
                    path: path.clone().into(),
                    source,
                })?;
                // SAFETY: setns on a valid namespace fd only changes this thread's
                // network namespace; the thread ends when `f` returns.
                if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return Err(LabError::io(
                        format!("setns into {}", self.name),
                        std::io::Error::last_os_error(),
                    ));
                }
                f()
            })
            .join()
            .unwrap_or_else(|_| Err(LabError::Invalid("a namespace thread panicked".into())))
        })
    }

    /// Runs `ip ARGS...` inside the namespace and returns its standard output.
    ///
    /// # Errors
    /// When `ip` fails (its message is in the error).
    pub fn ip(&self, args: &[&str]) -> Result<String> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip_command(&all)
    }

    /// A command that runs `program` inside the namespace (`ip netns exec`).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Writes a sysctl of this namespace, e.g. `net.ipv4.tcp_syncookies`.
    ///
    /// # Errors
    /// When the key does not exist or the value is refused.
    pub fn set_sysctl(&self, key: &str, value: impl ToString) -> Result<()> {
        let path = sysctl_path(key);
        let value = value.to_string();
        self.run(move || {
            std::fs::write(&path, &value).map_err(|source| LabError::File {
                path: path.into(),
                source,
            })
        })
    }

    /// Reads a sysctl of this namespace.
    ///
    /// # Errors
    /// When the key does not exist.
    pub fn sysctl(&self, key: &str) -> Result<String> {
        let path = sysctl_path(key);
        self.run(move || {
            std::fs::read_to_string(&path)
                .map(|s| s.trim().to_owned())
                .map_err(|source| LabError::File {
                    path: path.into(),
                    source,
                })
        })
    }

    /// A TCP socket created inside the namespace.
    ///
    /// # Errors
    /// As socket(2).
    pub fn tcp_socket(&self) -> Result<Socket> {
        self.run(|| {
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))
                .map_err(|e| LabError::io("socket", e))
        })
    }

    /// A TCP listener inside the namespace on `addr` with listen(2)'s `backlog`.
    ///
    /// # Errors
    /// When bind or listen fails.
    pub fn tcp_listener(&self, addr: SocketAddrV4, backlog: i32) -> Result<Socket> {
        let s = self.tcp_socket()?;
        s.set_reuse_address(true)
            .map_err(|e| LabError::io("SO_REUSEADDR", e))?;
        s.bind(&SocketAddr::V4(addr).into())
            .map_err(|source| LabError::Bind {
                addr: addr.into(),
                source,
            })?;
        s.listen(backlog).map_err(|e| LabError::io("listen", e))?;
        Ok(s)
    }

    /// This namespace's IPv4 TCP sockets, request sockets (SYN_RECV) included: what
    /// `ip netns exec NAME ss -tan` shows.
    ///
    /// # Errors
    /// When /proc cannot be read.
    pub fn tcp_table(&self) -> Result<Vec<TcpEntry>> {
        self.run(|| Ok(parse_tcp(&read_proc("/proc/thread-self/net/tcp")?)))
    }

    /// This namespace's TCP counters under the names `nstat` prints (`TcpExtListenDrops`,
    /// `TcpOutRsts`, ...). A fresh namespace starts them all at zero.
    ///
    /// # Errors
    /// When /proc cannot be read.
    pub fn nstat(&self) -> Result<BTreeMap<String, u64>> {
        self.run(|| {
            let mut out = BTreeMap::new();
            let sources = [
                ("/proc/thread-self/net/netstat", "TcpExt:"),
                ("/proc/thread-self/net/snmp", "Tcp:"),
            ];
            for (path, prefix) in sources {
                let text = read_proc(path)?;
                let stem = prefix.trim_end_matches(':');
                for (k, v) in parse_netstat(&text, prefix) {
                    out.insert(format!("{stem}{k}"), v);
                }
            }
            Ok(out)
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip_command(&["netns", "del", &self.name]);
    }
}

fn sysctl_path(key: &str) -> String {
    format!("/proc/sys/{}", key.replace('.', "/"))
}

fn read_proc(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| LabError::File {
        path: path.into(),
        source,
    })
}

/// Sets an integer socket option (`IPPROTO_TCP`, `TCP_SYNCNT`, ...).
pub(crate) fn set_int_option(
    s: &Socket,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: `value` is a live c_int of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(s),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// The difference `after - before` of the counters named in `keys` (a missing counter
/// counts as zero).
pub fn counter_delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    keys: &[&str],
) -> BTreeMap<String, u64> {
    keys.iter()
        .map(|k| {
            let a = after.get(*k).copied().unwrap_or(0);
            let b = before.get(*k).copied().unwrap_or(0);
            ((*k).to_owned(), a.saturating_sub(b))
        })
        .collect()
}

/// A server and a client namespace joined by a veth pair (see the module docs).
/// Dropping it deletes both namespaces and with them the veth pair.
#[derive(Debug)]
pub struct NetnsPair {
    /// The server's namespace.
    pub server: Netns,
    /// The client's namespace.
    pub client: Netns,
    /// The server's end of the veth pair (inside `server`).
    pub server_if: String,
    /// The client's end of the veth pair (inside `client`).
    pub client_if: String,
}

impl NetnsPair {
    /// Creates the two namespaces, the veth pair between them and their addresses;
    /// `tag` names the experiment in the namespace names.
    ///
    /// # Errors
    /// When not root, or `ip` fails (iproute2 missing, no namespace support).
    pub fn create(tag: &str) -> Result<NetnsPair> {
        require_root(tag)?;
        remove_orphans();
        let pid = std::process::id();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let stem = format!("{NAME_PREFIX}{pid}-{n}-{tag}");
        let server = Netns::add(format!("{stem}-s"))?;
        let client = Netns::add(format!("{stem}-c"))?;
        // Interface names are per namespace, but unique ones keep `ip link` output from
        // two runs apart; IFNAMSIZ allows 15 characters.
        let id = format!("{:x}", (pid << 8) ^ n);
        let id = &id[id.len().saturating_sub(10)..];
        let (server_if, client_if) = (format!("sk{id}s"), format!("sk{id}c"));
        server.ip(&[
            "link",
            "add",
            &server_if,
            "address",
            &SERVER_MAC.to_string(),
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
            "address",
            &CLIENT_MAC.to_string(),
            "netns",
            client.name(),
        ])?;
        for (ns, ifname, ip) in [
            (&server, &server_if, SERVER_IP),
            (&client, &client_if, CLIENT_IP),
        ] {
            ns.ip(&["addr", "add", &format!("{ip}/{PREFIX_LEN}"), "dev", ifname])?;
            ns.ip(&["link", "set", ifname, "up"])?;
        }
        Ok(NetnsPair {
            server,
            client,
            server_if,
            client_if,
        })
    }

    /// Both namespaces' names, server first.
    pub fn names(&self) -> [&str; 2] {
        [self.server.name(), self.client.name()]
    }
}
