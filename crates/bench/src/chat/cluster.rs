//! sockit's IRC server as a cluster of N nodes for the chat benchmark
//! (`sockit lab bench chat --nodes 1,2,3`): one `nats-server -js` on a free loopback
//! port with its store in a temporary directory, then N `sockit serve --only chat`
//! processes (or N in-process servers), each `--chat-cluster` on it under its own
//! `--chat-name`. The load's clients are spread over the nodes (client `i` on node
//! `i % N`), so every channel has members on every node and each message crosses NATS.
//!
//! Before the send window opens, [`wait_members`] checks on every node that the whole
//! network's channel membership is known there (the sum of `LIST` counts), so no
//! delivery is missed because a node had not heard of a member yet. [`cpu_seconds`]
//! reads the servers' CPU time (user + system, `/proc/PID/stat`), NATS included, so the
//! report can give the cost of one delivery on one node and on a cluster.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sockit_chat::irc::{ClusterConfig, Message};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

use super::ircds::{free_port, temp_dir, wait_listening, PeerServer};
use super::{sockit_config, SockitServer};
use super::{start_sockit, start_sockit_process_with, BenchError, SockitProcess};

/// The node timeout of the benchmark's clusters (`--chat-node-timeout`): long, so a
/// loaded machine never splits the network in the middle of a run.
const NODE_TIMEOUT: Duration = Duration::from_secs(60);

/// Polls of [`wait_members`] per node (100 ms apart) before the run fails.
const MEMBER_POLLS: usize = 600;

/// The `nats-server` binary: on `PATH` or in the sbin directories.
pub fn find_nats() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
}

/// Starts `nats-server -js` on a free loopback port, its store in a temporary
/// directory, and waits (≤ 10 s) until it accepts connections.
///
/// # Errors
/// The binary cannot run or never listens.
pub async fn start_nats(bin: &Path) -> Result<PeerServer, BenchError> {
    let port = free_port()?;
    let dir = temp_dir("nats", port)?;
    let child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(dir.join("store"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Peer {
            name: "nats-server".into(),
            reason: format!("cannot run {}: {e}", bin.display()),
        })?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_listening(PeerServer { addr, child, dir }, "nats-server", None).await
}

/// A running cluster: its NATS server and its nodes; everything stops on drop.
#[derive(Debug)]
pub struct SockitCluster {
    /// Each node's IRC address.
    pub addrs: Vec<SocketAddr>,
    /// The server processes (the nodes and NATS) whose CPU time counts; empty for
    /// in-process nodes, whose CPU is the benchmark's own.
    pub pids: Vec<u32>,
    _nats: PeerServer,
    _processes: Vec<SockitProcess>,
    _servers: Vec<SockitServer>,
    links: Vec<CancellationToken>,
}

impl Drop for SockitCluster {
    fn drop(&mut self) {
        for l in &self.links {
            l.cancel();
        }
    }
}

/// The extra `sockit serve` arguments of node `name` of the cluster on `url`.
fn node_args(name: &str, url: &str) -> Vec<OsString> {
    [
        "--chat-cluster",
        url,
        "--chat-node-timeout",
        &format!("{}s", NODE_TIMEOUT.as_secs()),
    ]
    .iter()
    .map(OsString::from)
    .chain([OsString::from("--chat-name"), OsString::from(name)])
    .collect()
}

/// Starts NATS and `n` nodes: `sockit serve` processes of `bin`, or (`None`) servers in
/// this process.
///
/// # Errors
/// NATS or a node cannot start.
pub async fn start_cluster(
    bin: Option<&Path>,
    nats_bin: &Path,
    n: usize,
) -> Result<SockitCluster, BenchError> {
    let nats = start_nats(nats_bin).await?;
    let url = format!("nats://{}", nats.addr);
    let mut cluster = SockitCluster {
        addrs: Vec::new(),
        pids: nats.child.id().into_iter().collect(),
        _nats: nats,
        _processes: Vec::new(),
        _servers: Vec::new(),
        links: Vec::new(),
    };
    for k in 0..n {
        let name = format!("bench-{k}");
        match bin {
            Some(bin) => {
                let p = start_sockit_process_with(bin, &name, &node_args(&name, &url)).await?;
                cluster.addrs.push(p.addr);
                cluster.pids.extend(p.child.id());
                cluster._processes.push(p);
            }
            None => {
                let s = start_sockit(sockit_config_named(&name))?;
                let link = CancellationToken::new();
                let cfg = ClusterConfig {
                    servers: vec![url.clone()],
                    node_timeout: NODE_TIMEOUT,
                };
                s.server.join_cluster(cfg, link.clone());
                tokio::time::timeout(Duration::from_secs(60), s.server.cluster_ready())
                    .await
                    .map_err(|_| BenchError::Config(format!("{name} never reached NATS")))?;
                cluster.addrs.push(s.addr);
                cluster.links.push(link);
                cluster._servers.push(s);
            }
        }
    }
    // In-process nodes: the CPU is the benchmark's own; none is counted.
    if bin.is_none() {
        cluster.pids.clear();
    }
    Ok(cluster)
}

/// [`sockit_config`] with another server name.
fn sockit_config_named(name: &str) -> sockit_chat::irc::ServerConfig {
    sockit_chat::irc::ServerConfig {
        name: name.into(),
        ..sockit_config()
    }
}

/// Waits until every node at `addrs` knows `members` channel members in all (the sum
/// of its `LIST` counts), polling each (bounded).
///
/// # Errors
/// A node cannot be reached, or never knows them all.
pub async fn wait_members(addrs: &[SocketAddr], members: usize) -> Result<(), BenchError> {
    for (k, addr) in addrs.iter().enumerate() {
        let fail = |reason: String| BenchError::Client {
            nick: format!("zprobe{k}"),
            reason,
        };
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|e| fail(format!("connect: {e}")))?;
        let (rd, mut wr) = stream.into_split();
        let mut rd = BufReader::new(rd);
        let send = |line: String| line.into_bytes();
        wr.write_all(&send(format!("NICK zprobe{k}\r\nUSER z 0 * :probe\r\n")))
            .await
            .map_err(|e| fail(format!("write: {e}")))?;
        let mut known = 0;
        let mut registered = false;
        let mut polls = 0;
        let mut line = Vec::new();
        loop {
            line.clear();
            let n = tokio::time::timeout(Duration::from_secs(30), rd.read_until(b'\n', &mut line))
                .await
                .map_err(|_| fail("no answer in 30 s".into()))?
                .map_err(|e| fail(format!("read: {e}")))?;
            if n == 0 {
                return Err(fail("closed".into()));
            }
            let Ok(m) = Message::parse(&line) else {
                continue;
            };
            match m.command.as_str() {
                "001" => registered = true,
                "PING" => {
                    let token = m.param(0).unwrap_or("probe").to_owned();
                    wr.write_all(&send(format!("PONG :{token}\r\n")))
                        .await
                        .map_err(|e| fail(format!("write: {e}")))?;
                }
                "322" => {
                    known += m
                        .param(2)
                        .and_then(|c| c.parse::<usize>().ok())
                        .unwrap_or(0)
                }
                "323" => {
                    if known >= members {
                        let _ = wr.write_all(b"QUIT\r\n").await;
                        break;
                    }
                    polls += 1;
                    if polls >= MEMBER_POLLS {
                        return Err(fail(format!("knows {known} of {members} members")));
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    known = 0;
                    wr.write_all(b"LIST\r\n")
                        .await
                        .map_err(|e| fail(format!("write: {e}")))?;
                }
                "376" | "422" if registered => {
                    wr.write_all(b"LIST\r\n")
                        .await
                        .map_err(|e| fail(format!("write: {e}")))?;
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// The CPU time (user + system, seconds) the processes `pids` used so far; `None` when
/// one cannot be read (not Linux, or gone).
pub fn cpu_seconds(pids: &[u32]) -> Option<f64> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if tick <= 0 || pids.is_empty() {
        return None;
    }
    let mut ticks = 0u64;
    for pid in pids {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        ticks += stat_ticks(&stat)?;
    }
    Some(ticks as f64 / tick as f64)
}

/// utime + stime (clock ticks) from a `/proc/PID/stat` line: fields 14 and 15, counted
/// after the command name in parentheses (which may hold spaces).
pub fn stat_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// The `sockit serve` arguments `args` with `extra` after them; a `--chat-name` in
/// `extra` replaces the one in `args` (clap takes a name once).
pub(super) fn renamed_args(args: Vec<OsString>, extra: &[OsString]) -> Vec<OsString> {
    let name_given = extra.iter().any(|a| a == "--chat-name");
    let mut out = Vec::with_capacity(args.len() + extra.len());
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
            continue;
        }
        if name_given && a == "--chat-name" {
            skip = true;
            continue;
        }
        out.push(a);
    }
    out.extend(extra.iter().cloned());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_plus_system_ticks() {
        let line = "1234 (sockit serve) S 1 1234 1234 0 -1 4194560 100 0 0 0 37 5 0 0 20 0 8 0";
        assert_eq!(stat_ticks(line), Some(42));
        assert_eq!(stat_ticks("garbage"), None);
        assert_eq!(stat_ticks("1 (x) S 1"), None);
    }

    fn row(nodes: usize, p50_ms: f64, cpu_s: f64) -> super::super::ClusterRow {
        super::super::ClusterRow {
            nodes,
            run: super::super::Measurement {
                server: "sockit".into(),
                caps: String::new(),
                clients: 10,
                channels: 1,
                rate: 10.0,
                seconds: 1.0,
                sent: 10,
                expected: 90,
                delivered: 90,
                delivered_per_s: 90.0,
                p50_ms,
                p99_ms: p50_ms * 2.0,
                max_ms: p50_ms * 3.0,
            },
            cpu_s: Some(cpu_s),
        }
    }

    /// The cluster table compares each node count with one node of the same run.
    #[test]
    fn the_cluster_table_gives_the_cost_against_one_node() {
        let md = super::super::cluster_markdown(&[row(1, 1.0, 0.009), row(3, 1.5, 0.027)]);
        assert!(
            md.contains("| 1 | 1 | 90 / 90 | 90 | 1.00 | 2.00 | 0.01 | 100.0 | – | – | – |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| 1 | 3 | 90 / 90 | 90 | 1.50 | 3.00 | 0.03 | 300.0 | +0.50 | 3.00× | +1800 |"
            ),
            "{md}"
        );
        assert!(md.contains("not how a cluster scales"), "{md}");
    }

    #[test]
    fn a_node_gets_its_own_name() {
        let args: Vec<OsString> = ["serve", "--chat-name", "bench.sockit", "--root", "r"]
            .iter()
            .map(OsString::from)
            .collect();
        let out = renamed_args(args, &node_args("bench-1", "nats://127.0.0.1:1"));
        let out: Vec<String> = out
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            out,
            [
                "serve",
                "--root",
                "r",
                "--chat-cluster",
                "nats://127.0.0.1:1",
                "--chat-node-timeout",
                "60s",
                "--chat-name",
                "bench-1"
            ]
        );
    }
}
