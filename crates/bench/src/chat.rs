//! The chat benchmark behind `sockit lab bench chat`.
//!
//! Many IRC clients over loopback, in one big channel and in many small ones, send
//! `PRIVMSG` at a fixed total rate; every receiver records the delivery latency (the send
//! timestamp travels in the message text) in an HDR histogram and counts what arrives.
//! The same load runs, in the same process run, against `ngircd` and InspIRCd (each
//! started on a free port with a generated config in a temporary directory, see
//! [`ircds`]) and against sockit's own server:
//! `sockit serve --only chat` as a child process when [`BenchConfig::sockit`] names the
//! binary (what `sockit lab bench chat` does, so both servers are measured the same way),
//! else started in-process on a free port (the library tests).
//!
//! Each client: connects, negotiates IRCv3 tags (`CAP LS 302`, then `CAP REQ` for those
//! of `server-time` and `message-tags` the server offers, so a server that has them sends
//! `time` and `msgid` on every relayed line; [`BenchConfig::tags`]), registers
//! (`NICK`/`USER`), waits for 001, joins its channel,
//! waits for the end of `NAMES` (366); when every client has joined the send window opens
//! for `duration`, then receivers drain for a bounded grace period. Every loop is bounded
//! in time and count.
//!
//! With [`BenchConfig::nodes`] beyond 1, sockit also runs as a cluster of that many
//! nodes over one `nats-server` (see `chat/cluster.rs`): the same scenarios, the clients spread
//! over the nodes, and the servers' CPU time per delivery against one node in the same
//! run. On a machine with few cores the nodes share them: that is the cost of the
//! cluster, not a measure of how it scales.
//!
//! Results go to `OUT/chat.json` and `OUT/chat.md`.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch, Semaphore};
use tokio_util::sync::CancellationToken;

use sockit_chat::irc::FloodConfig;
use sockit_chat::irc::{IrcServer, Message, ServerConfig};

mod cluster;
mod ircds;

pub use cluster::{
    cpu_seconds, find_nats, start_cluster, start_nats, stat_ticks, wait_members, SockitCluster,
};
use ircds::free_port;
pub use ircds::{inspircd_config, ngircd_config, start_inspircd, start_ngircd, PeerServer};

/// Longest line a bench client accepts.
const MAX_LINE: usize = 4096;
/// How long setup (connect, register, join) may take for all clients of one scenario.
const SETUP_TIMEOUT: Duration = Duration::from_secs(90);
/// How long receivers keep reading after the send window closes.
const DRAIN: Duration = Duration::from_secs(2);
/// The IRCv3 capabilities a client asks for when the server offers them (with
/// [`BenchConfig::tags`]): every relayed line then carries `time` and `msgid` tags.
pub const TAG_CAPS: [&str; 2] = ["server-time", "message-tags"];
/// Clients connecting/registering at once.
const SETUP_CONCURRENCY: usize = 64;
/// Flood control used for sockit's server in the benchmark (its defaults: one command
/// costs 1 s, a 10 s burst), the same order as ngircd's built-in throttling.
pub const SOCKIT_FLOOD: FloodConfig = FloodConfig {
    penalty: Duration::from_secs(1),
    burst: Duration::from_secs(10),
};

/// Errors of the benchmark.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A socket, file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        source: std::io::Error,
    },
    /// A peer server (ngircd, InspIRCd) could not be started or never listened.
    #[error("{name}: {reason}")]
    Peer {
        /// `ngircd` or `inspircd`.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// A client saw something it cannot continue after.
    #[error("client {nick}: {reason}")]
    Client {
        /// The client's nick.
        nick: String,
        /// What happened.
        reason: String,
    },
    /// Not every client joined within the setup timeout.
    #[error("setup timed out: {joined} of {clients} clients joined")]
    SetupTimeout {
        /// Clients that joined.
        joined: usize,
        /// Clients started.
        clients: usize,
    },
    /// The configuration is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BenchError {
    let what = what.into();
    move |source| BenchError::Io { what, source }
}

/// What to run.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchConfig {
    /// Clients per scenario.
    pub clients: usize,
    /// One scenario per entry: the clients spread over this many channels.
    pub channels: Vec<usize>,
    /// Total PRIVMSG rate over all clients, messages per second.
    pub rate: f64,
    /// Length of the send window.
    pub duration: Duration,
    /// The ngircd binary; `None` skips ngircd (the report says so).
    pub ngircd: Option<PathBuf>,
    /// The InspIRCd binary; `None` skips InspIRCd (the report says so).
    pub inspircd: Option<PathBuf>,
    /// Whether clients negotiate IRCv3 tags ([`TAG_CAPS`]) where the server offers them.
    pub tags: bool,
    /// The `sockit` binary: sockit's server then runs as its own process
    /// (`sockit serve --only chat`), on the same footing as ngircd. `None` runs it
    /// in-process, in the load generator's runtime (the library tests do this).
    pub sockit: Option<PathBuf>,
    /// Where `chat.json` and `chat.md` are written; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
    /// sockit's server as a cluster of each of these many nodes (1: the single server);
    /// more than one needs `nats-server` ([`find_nats`]).
    pub nodes: Vec<usize>,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            clients: 1000,
            channels: vec![1, 100],
            rate: 100.0,
            duration: Duration::from_secs(10),
            ngircd: Some(PathBuf::from("ngircd")),
            inspircd: Some(PathBuf::from("inspircd")),
            tags: true,
            sockit: None,
            out_dir: Some(PathBuf::from("bench-results")),
            nodes: vec![1],
        }
    }
}

/// One load scenario against one server address.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Clients.
    pub clients: usize,
    /// Channels (client `i` joins channel `i % channels`).
    pub channels: usize,
    /// Total messages per second.
    pub rate: f64,
    /// Send window.
    pub duration: Duration,
    /// Nick prefix (one letter keeps nicks within ngircd's default 9).
    pub prefix: char,
    /// Negotiate IRCv3 tags ([`TAG_CAPS`]) where the server offers them.
    pub tags: bool,
}

/// What one scenario measured.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// `sockit`, `ngircd` or `inspircd`.
    pub server: String,
    /// The capabilities the server acknowledged (space-separated; empty: none).
    pub caps: String,
    /// Clients.
    pub clients: usize,
    /// Channels.
    pub channels: usize,
    /// Target total send rate, messages/s.
    pub rate: f64,
    /// Send window, seconds.
    pub seconds: f64,
    /// PRIVMSGs sent.
    pub sent: u64,
    /// Deliveries expected (each message × the other members of its channel).
    pub expected: u64,
    /// Deliveries received within the window plus the drain period.
    pub delivered: u64,
    /// Delivered messages per second of send window.
    pub delivered_per_s: f64,
    /// Median delivery latency, milliseconds.
    pub p50_ms: f64,
    /// 99th percentile delivery latency, milliseconds.
    pub p99_ms: f64,
    /// Largest delivery latency, milliseconds.
    pub max_ms: f64,
}

/// sockit on `nodes` nodes in one scenario, with the servers' CPU time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterRow {
    /// Nodes (1: the single server, without NATS).
    pub nodes: usize,
    /// The scenario's measurement.
    pub run: Measurement,
    /// CPU time (user + system, seconds) of every server process, NATS included, from
    /// the send window's start to the end of the drain; `None` in-process.
    pub cpu_s: Option<f64>,
}

impl ClusterRow {
    /// Server CPU microseconds per delivered message.
    pub fn cpu_us_per_delivery(&self) -> Option<f64> {
        let d = self.run.delivered.max(1) as f64;
        self.cpu_s.map(|c| c * 1e6 / d)
    }
}

/// The whole result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BenchReport {
    /// Every scenario × server: ngircd, InspIRCd, then sockit for each scenario.
    pub runs: Vec<Measurement>,
    /// sockit per node count and scenario (when [`BenchConfig::nodes`] has more than
    /// the single server).
    pub cluster: Vec<ClusterRow>,
    /// Notes (flood settings, skipped peers).
    pub notes: Vec<String>,
    /// The markdown (also written to `chat.md`).
    pub markdown: String,
}

/// Raises the soft open-file limit to the hard limit (every client is a descriptor, and
/// the in-process server holds the other end; child servers inherit the limit) and
/// returns the soft limit now in force (0 when it cannot be read).
pub fn raise_fd_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) != 0 {
                let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
            }
        }
    }
    lim.rlim_cur
}

/// Descriptors a scenario of `clients` needs in the benchmark process: one per client,
/// one more per client when the server runs in-process, and some headroom.
pub fn fds_needed(clients: usize, in_process: bool) -> u64 {
    (clients as u64) * (1 + u64::from(in_process)) + 64
}

/// sockit's IRC server running in-process; stopped on drop.
#[derive(Debug)]
pub struct SockitServer {
    /// Where it listens.
    pub addr: SocketAddr,
    /// The server (to make it a node of a cluster).
    pub server: IrcServer,
    token: CancellationToken,
}

impl Drop for SockitServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// The server configuration the benchmark uses for sockit.
pub fn sockit_config() -> ServerConfig {
    ServerConfig {
        name: "bench.sockit".into(),
        motd: None,
        flood: SOCKIT_FLOOD,
        ping_interval: Duration::from_secs(600),
        ping_timeout: Duration::from_secs(600),
        ..ServerConfig::default()
    }
}

/// Starts sockit's IRC server on 127.0.0.1 at a free port.
///
/// # Errors
/// Binding fails.
pub fn start_sockit(cfg: ServerConfig) -> Result<SockitServer, BenchError> {
    let any: SocketAddr = ([127, 0, 0, 1], 0).into();
    let listener = bind_tcp(any, 4096).map_err(io_err("bind sockit"))?;
    let addr = listener.local_addr().map_err(io_err("local_addr"))?;
    let token = CancellationToken::new();
    let server = IrcServer::new(cfg);
    tokio::spawn(serve_tcp(
        listener,
        Arc::new(server.clone()),
        Limits {
            max_conns: 100_000,
            max_conns_per_ip: 100_000,
            idle_timeout: Duration::from_secs(600),
            backlog: 4096,
            ..Limits::default()
        },
        token.clone(),
    ));
    Ok(SockitServer {
        addr,
        server,
        token,
    })
}

/// `sockit serve --only chat` as a child process; killed on drop.
#[derive(Debug)]
pub struct SockitProcess {
    /// Where it listens.
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

impl Drop for SockitProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The `sockit serve` arguments of the benchmark: only the chat service on a free
/// loopback port, the same settings as [`sockit_config`] (flood control at its defaults,
/// long ping timeouts, no MOTD file) and connection limits raised the way ngircd's
/// config raises its own (`MaxConnections`/`MaxConnectionsIP` unlimited).
pub fn sockit_serve_args(dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = [
        "-q",
        "serve",
        "--only",
        "chat",
        "--bind",
        "127.0.0.1",
        "--port",
        "chat=0",
        "--max-conns",
        "100000",
        "--max-conns-per-ip",
        "100000",
        "--idle-timeout",
        "600s",
        "--backlog",
        "4096",
        "--chat-name",
        "bench.sockit",
        "--chat-ping-interval",
        "600s",
        "--chat-ping-timeout",
        "600s",
    ]
    .iter()
    .map(OsString::from)
    .collect();
    args.push("--chat-flood-penalty".into());
    args.push(format!("{}ms", SOCKIT_FLOOD.penalty.as_millis()).into());
    args.push("--chat-flood-burst".into());
    args.push(format!("{}ms", SOCKIT_FLOOD.burst.as_millis()).into());
    args.push("--root".into());
    args.push(dir.join("root").into());
    args.push("--addr-file".into());
    args.push(dir.join("addr.json").into());
    args
}

/// Starts `BIN serve --only chat` (see [`sockit_serve_args`]) and waits (≤ 10 s) for
/// its addr file.
///
/// # Errors
/// The binary cannot run, exits, or never writes its addr file.
pub async fn start_sockit_process(bin: &Path) -> Result<SockitProcess, BenchError> {
    start_sockit_process_with(bin, "bench.sockit", &[]).await
}

/// [`start_sockit_process`] as `name` (its `--chat-name` and temporary directory) with
/// `extra` arguments (a cluster node's; a `--chat-name` there replaces the benchmark's).
///
/// # Errors
/// The binary cannot run, exits, or never writes its addr file.
pub async fn start_sockit_process_with(
    bin: &Path,
    name: &str,
    extra: &[OsString],
) -> Result<SockitProcess, BenchError> {
    let dir = std::env::temp_dir().join(format!(
        "sockit-chat-bench-{name}-{}-{}",
        std::process::id(),
        free_port()?
    ));
    std::fs::create_dir_all(&dir).map_err(io_err("sockit temp dir"))?;
    let child = Command::new(bin)
        .args(cluster::renamed_args(sockit_serve_args(&dir), extra))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| BenchError::Config(format!("cannot run {}: {e}", bin.display())))?;
    let mut server = SockitProcess {
        addr: ([127, 0, 0, 1], 0).into(),
        child,
        dir,
    };
    let addr_file = server.dir.join("addr.json");
    for _ in 0..200 {
        if let Ok(Some(status)) = server.child.try_wait() {
            return Err(BenchError::Config(format!(
                "{} serve exited with {status}",
                bin.display()
            )));
        }
        // The file is renamed into place whole, so a readable file is complete.
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            let addr = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["chat"]["tcp"].as_str().and_then(|a| a.parse().ok()))
                .ok_or_else(|| BenchError::Config(format!("bad addr file: {text}")))?;
            server.addr = addr;
            return Ok(server);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Err(BenchError::Config(format!(
        "{} serve wrote no addr file in 10 s",
        bin.display()
    )))
}

/// What one client counted.
struct ClientResult {
    sent: u64,
    delivered: u64,
    hist: Histogram<u64>,
    /// The capabilities the server acknowledged to this client.
    caps: String,
}

/// A latency histogram: 1 µs .. 10 min, 2 significant digits.
fn new_hist() -> Result<Histogram<u64>, BenchError> {
    Histogram::new_with_bounds(1, 600_000_000, 2)
        .map_err(|e| BenchError::Config(format!("histogram: {e}")))
}

/// Per-client shared plan.
struct Plan {
    /// The servers (one, or a cluster's nodes): client `i` uses `addrs[i % len]`.
    addrs: Vec<SocketAddr>,
    base: Instant,
    interval: Duration,
    rate: f64,
    duration: Duration,
    tags: bool,
    setup: Arc<Semaphore>,
}

/// Measures one scenario against the server at `addr` (`server` labels the result).
///
/// # Errors
/// A client fails or setup does not finish within its timeout.
pub async fn measure(
    addr: SocketAddr,
    server: &str,
    sc: &Scenario,
) -> Result<Measurement, BenchError> {
    Ok(measure_spread(&[addr], server, sc, &[]).await?.0)
}

/// Measures one scenario with the clients spread over the servers at `addrs` (client
/// `i` on `addrs[i % len]`; a cluster's nodes), and the CPU time the processes `pids`
/// spent from the send window's start to the end of the drain (`None` without pids).
/// With more than one address, the send window opens once every node knows every
/// channel member ([`wait_members`]).
///
/// # Errors
/// A client fails or setup does not finish within its timeout.
pub async fn measure_spread(
    addrs: &[SocketAddr],
    server: &str,
    sc: &Scenario,
    pids: &[u32],
) -> Result<(Measurement, Option<f64>), BenchError> {
    if addrs.is_empty() {
        return Err(BenchError::Config("no server to measure".into()));
    }
    if sc.clients < 2 || sc.channels == 0 || sc.channels > sc.clients / 2 || sc.rate <= 0.0 {
        return Err(BenchError::Config(format!(
            "{} clients in {} channels at {}/s: need ≥ 2 clients per channel and a positive rate",
            sc.clients, sc.channels, sc.rate
        )));
    }
    let interval = Duration::from_secs_f64(sc.clients as f64 / sc.rate);
    let plan = Arc::new(Plan {
        addrs: addrs.to_vec(),
        base: Instant::now(),
        interval,
        rate: sc.rate,
        duration: sc.duration,
        tags: sc.tags,
        setup: Arc::new(Semaphore::new(SETUP_CONCURRENCY)),
    });
    let (joined_tx, mut joined_rx) = mpsc::channel::<()>(sc.clients);
    let (start_tx, start_rx) = watch::channel::<Option<Instant>>(None);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..sc.clients {
        let nick = format!("{}{i:04}", sc.prefix);
        let chan = format!("#c{}", i % sc.channels);
        tasks.spawn(client(
            plan.clone(),
            i,
            nick,
            chan,
            joined_tx.clone(),
            start_rx.clone(),
        ));
    }
    drop(joined_tx);
    // Wait for every JOIN (bounded); a failed client ends the scenario.
    let setup_end = tokio::time::Instant::now() + SETUP_TIMEOUT;
    let mut joined = 0;
    while joined < sc.clients {
        tokio::select! {
            r = joined_rx.recv() => match r {
                Some(()) => joined += 1,
                None => break,
            },
            Some(done) = tasks.join_next() => {
                tasks.abort_all();
                return Err(match done {
                    Ok(Err(e)) => e,
                    _ => BenchError::Config("a client ended during setup".into()),
                });
            }
            _ = tokio::time::sleep_until(setup_end) => {
                tasks.abort_all();
                return Err(BenchError::SetupTimeout { joined, clients: sc.clients });
            }
        }
    }
    if addrs.len() > 1 {
        if let Err(e) = wait_members(addrs, sc.clients).await {
            tasks.abort_all();
            return Err(e);
        }
    }
    let cpu_before = cpu_seconds(pids);
    let start = Instant::now() + Duration::from_millis(500);
    let _ = start_tx.send(Some(start));
    let mut total = ClientResult {
        sent: 0,
        delivered: 0,
        hist: new_hist()?,
        caps: String::new(),
    };
    let mut sent_per_channel = vec![0u64; sc.channels];
    let end = tokio::time::Instant::now() + sc.duration + DRAIN + Duration::from_secs(10);
    loop {
        let next = tokio::select! {
            n = tasks.join_next() => n,
            _ = tokio::time::sleep_until(end) => { tasks.abort_all(); break; }
        };
        let Some(res) = next else { break };
        match res {
            Ok(Ok((i, r))) => {
                total.sent += r.sent;
                total.delivered += r.delivered;
                let _ = total.hist.add(&r.hist);
                sent_per_channel[i % sc.channels] += r.sent;
                if i == 0 {
                    total.caps = r.caps;
                }
            }
            Ok(Err(e)) => {
                tasks.abort_all();
                return Err(e);
            }
            Err(e) => return Err(BenchError::Config(format!("client task: {e}"))),
        }
    }
    let cpu = cpu_seconds(pids)
        .zip(cpu_before)
        .map(|(after, before)| after - before);
    let members = |c: usize| (sc.clients - c).div_ceil(sc.channels) as u64;
    let expected = sent_per_channel
        .iter()
        .enumerate()
        .map(|(c, s)| s * members(c).saturating_sub(1))
        .sum();
    let ms = |q: f64| total.hist.value_at_quantile(q) as f64 / 1000.0;
    let m = Measurement {
        server: server.into(),
        caps: total.caps,
        clients: sc.clients,
        channels: sc.channels,
        rate: sc.rate,
        seconds: sc.duration.as_secs_f64(),
        sent: total.sent,
        expected,
        delivered: total.delivered,
        delivered_per_s: total.delivered as f64 / sc.duration.as_secs_f64(),
        p50_ms: ms(0.5),
        p99_ms: ms(0.99),
        max_ms: total.hist.max() as f64 / 1000.0,
    };
    Ok((m, cpu))
}

/// One bench client: register, join, wait for the start, send on schedule, count arrivals.
async fn client(
    plan: Arc<Plan>,
    i: usize,
    nick: String,
    chan: String,
    joined_tx: mpsc::Sender<()>,
    mut start_rx: watch::Receiver<Option<Instant>>,
) -> Result<(usize, ClientResult), BenchError> {
    let fail = |reason: String| BenchError::Client {
        nick: nick.clone(),
        reason,
    };
    let permit = plan.setup.clone().acquire_owned().await.ok();
    let addr = plan.addrs[i % plan.addrs.len()];
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    let (rd, mut wr) = stream.into_split();
    let mut rd = BufReader::new(rd);
    let cap_ls = if plan.tags { "CAP LS 302\r\n" } else { "" };
    wr.write_all(format!("{cap_ls}NICK {nick}\r\nUSER b 0 * :bench\r\n").as_bytes())
        .await
        .map_err(|e| fail(format!("write: {e}")))?;
    let mut offered = String::new();
    let mut permit = permit;
    let mut res = ClientResult {
        sent: 0,
        delivered: 0,
        hist: new_hist()?,
        caps: String::new(),
    };
    let mut buf = Vec::with_capacity(512);
    let hard_end = tokio::time::Instant::now()
        + SETUP_TIMEOUT
        + plan.duration
        + DRAIN
        + Duration::from_secs(5);
    let mut start: Option<Instant> = None;
    let mut next_send: Option<Instant> = None;
    let mut seq: u64 = 0;
    // The sends of this client: offset i/rate, then every `interval`, inside the window.
    let offset = Duration::from_secs_f64(i as f64 / plan.rate);
    // Three timers, each registered once and moved with `reset` (not a new timer per
    // received line: at 1,000 clients the load generator reads ~100k lines/s).
    let hard = tokio::time::sleep_until(hard_end);
    let drain = tokio::time::sleep_until(hard_end);
    let send = tokio::time::sleep_until(hard_end);
    tokio::pin!(hard, drain, send);
    loop {
        tokio::select! {
            biased;
            _ = &mut hard => return Err(fail("did not finish in time".into())),
            _ = &mut drain, if start.is_some() => break,
            r = start_rx.changed(), if start.is_none() => {
                if r.is_err() {
                    return Err(fail("coordinator gone".into()));
                }
                if let Some(s) = *start_rx.borrow_and_update() {
                    start = Some(s);
                    next_send = Some(s + offset);
                    drain.as_mut().reset(tokio::time::Instant::from_std(s + plan.duration + DRAIN));
                    send.as_mut().reset(tokio::time::Instant::from_std(s + offset));
                }
            }
            _ = &mut send, if next_send.is_some() => {
                let (Some(s), Some(at)) = (start, next_send) else { continue };
                let ts = Instant::now().duration_since(plan.base).as_micros();
                wr.write_all(format!("PRIVMSG {chan} :bench {seq} {ts}\r\n").as_bytes())
                    .await
                    .map_err(|e| fail(format!("write: {e}")))?;
                seq += 1;
                res.sent += 1;
                let next = at + plan.interval;
                next_send = (next < s + plan.duration && res.sent < 10_000_000).then_some(next);
                if let Some(n) = next_send {
                    send.as_mut().reset(tokio::time::Instant::from_std(n));
                }
            }
            r = async {
                let room = MAX_LINE.saturating_sub(buf.len()) as u64;
                (&mut rd).take(room).read_until(b'\n', &mut buf).await
            } => {
                let n = r.map_err(|e| fail(format!("read: {e}")))?;
                if n == 0 {
                    return Err(fail("server closed the connection".into()));
                }
                if buf.last() != Some(&b'\n') {
                    if buf.len() >= MAX_LINE {
                        return Err(fail("line too long".into()));
                    }
                    continue;
                }
                let now = Instant::now();
                let Ok(msg) = Message::parse(&buf) else { buf.clear(); continue };
                buf.clear();
                match msg.command.as_str() {
                    "PRIVMSG" => {
                        let ts = msg.param(1).and_then(|t| t.split(' ').nth(2)).and_then(|t| t.parse::<u64>().ok());
                        if let Some(ts) = ts {
                            let sent = plan.base + Duration::from_micros(ts);
                            let lat = now.saturating_duration_since(sent).as_micros() as u64;
                            let _ = res.hist.record(lat.max(1));
                            res.delivered += 1;
                        }
                    }
                    "PING" => {
                        let token = msg.param(0).unwrap_or("bench");
                        wr.write_all(format!("PONG :{token}\r\n").as_bytes())
                            .await
                            .map_err(|e| fail(format!("write: {e}")))?;
                    }
                    "CAP" => {
                        if let Some(reply) = cap_reply(&msg, &mut offered, &mut res.caps) {
                            wr.write_all(reply.as_bytes())
                                .await
                                .map_err(|e| fail(format!("write: {e}")))?;
                        }
                    }
                    // A server without CAP registers on NICK/USER alone.
                    "421" if msg.param(1) == Some("CAP") => {}
                    "001" => {
                        wr.write_all(format!("JOIN {chan}\r\n").as_bytes())
                            .await
                            .map_err(|e| fail(format!("write: {e}")))?;
                    }
                    "366" if permit.take().is_some() => {
                        let _ = joined_tx.try_send(());
                    }
                    "ERROR" => return Err(fail(format!("ERROR {}", msg.param(0).unwrap_or("")))),
                    c if c.len() == 3 && c != "422" && (c.starts_with('4') || c.starts_with('5')) => {
                        return Err(fail(format!("numeric {c}: {}", msg.params.join(" "))));
                    }
                    _ => {}
                }
            }
        }
    }
    let _ = wr.write_all(b"QUIT :done\r\n").await;
    Ok((i, res))
}

/// What a client answers to a `CAP` line during registration: after the last `LS` line
/// (continuations, `CAP * LS * :…`, are collected into `offered`) a `CAP REQ` for those of
/// [`TAG_CAPS`] offered, or `CAP END` if none; after `ACK` (recorded in `acked`) or
/// `NAK`, `CAP END`. Other subcommands need no answer.
pub fn cap_reply(msg: &Message, offered: &mut String, acked: &mut String) -> Option<String> {
    match msg.param(1)? {
        "LS" => {
            let (more, list) = match (msg.param(2), msg.param(3)) {
                (Some("*"), Some(list)) => (true, list),
                (Some(list), _) => (false, list),
                (None, _) => (false, ""),
            };
            offered.push(' ');
            offered.push_str(list);
            if more {
                return None;
            }
            let names: Vec<&str> = offered
                .split_whitespace()
                .map(|c| c.split('=').next().unwrap_or(c))
                .collect();
            let want: Vec<&str> = TAG_CAPS
                .iter()
                .copied()
                .filter(|c| names.contains(c))
                .collect();
            Some(match want.is_empty() {
                true => "CAP END\r\n".into(),
                false => format!("CAP REQ :{}\r\n", want.join(" ")),
            })
        }
        "ACK" => {
            *acked = msg.param(2).unwrap_or("").trim().to_owned();
            Some("CAP END\r\n".into())
        }
        "NAK" => Some("CAP END\r\n".into()),
        _ => None,
    }
}

/// Runs every scenario of `config` against ngircd and InspIRCd (when configured) and
/// sockit, writes `chat.json` and `chat.md`, and returns the report.
///
/// # Errors
/// A server cannot start, a scenario fails, or the results cannot be written.
pub async fn run(config: &BenchConfig) -> Result<BenchReport, BenchError> {
    let nofile = raise_fd_limit();
    let needed = fds_needed(config.clients, config.sockit.is_none());
    if nofile < needed {
        return Err(BenchError::Config(format!(
            "the open-file limit is {nofile} but {} clients need about {needed} descriptors; \
             raise the hard limit (ulimit -Hn, or LimitNOFILE) or use fewer --clients",
            config.clients
        )));
    }
    let nodes = node_counts(config)?;
    let nats = match nodes.iter().any(|n| *n > 1) {
        true => Some(find_nats().ok_or_else(|| {
            BenchError::Config(
                "--nodes above 1 needs nats-server: apt-get install nats-server".into(),
            )
        })?),
        false => None,
    };
    let mut notes = notes(config);
    let mut runs = Vec::new();
    let mut cluster_rows = Vec::new();
    let prefixes = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
    for (k, &channels) in config.channels.iter().enumerate().take(prefixes.len()) {
        let sc = Scenario {
            clients: config.clients,
            channels,
            rate: config.rate,
            duration: config.duration,
            prefix: prefixes[k],
            tags: config.tags,
        };
        let peers = [("ngircd", &config.ngircd), ("inspircd", &config.inspircd)];
        for (name, bin) in peers {
            let Some(bin) = bin else {
                if k == 0 {
                    notes.push(format!("{name} skipped (not configured)."));
                }
                continue;
            };
            let server = match name {
                "ngircd" => start_ngircd(bin).await?,
                _ => start_inspircd(bin).await?,
            };
            runs.push(measure(server.addr, name, &sc).await?);
            drop(server);
        }
        for &n in &nodes {
            let (m, cpu) = match (n, &config.sockit, &nats) {
                (1, Some(bin), _) => {
                    let sk = start_sockit_process(bin).await?;
                    let pids: Vec<u32> = sk.child.id().into_iter().collect();
                    measure_spread(&[sk.addr], "sockit", &sc, &pids).await?
                }
                (1, None, _) => {
                    let sk = start_sockit(sockit_config())?;
                    measure_spread(&[sk.addr], "sockit", &sc, &[]).await?
                }
                (n, bin, Some(nats)) => {
                    let c = start_cluster(bin.as_deref(), nats, n).await?;
                    let label = format!("sockit ({n} nodes)");
                    measure_spread(&c.addrs, &label, &sc, &c.pids).await?
                }
                (_, _, None) => return Err(BenchError::Config("no nats-server".into())),
            };
            runs.push(m.clone());
            cluster_rows.push(ClusterRow {
                nodes: n,
                run: m,
                cpu_s: cpu,
            });
        }
    }
    if nodes == [1] {
        cluster_rows.clear();
    }
    let mut markdown = markdown(&runs, &notes);
    if !cluster_rows.is_empty() {
        markdown.push_str(&cluster_markdown(&cluster_rows));
    }
    let report = BenchReport {
        runs,
        cluster: cluster_rows,
        notes,
        markdown,
    };
    if let Some(dir) = &config.out_dir {
        std::fs::create_dir_all(dir).map_err(io_err("create out dir"))?;
        let json = serde_json::to_string_pretty(&report)
            .map_err(|e| BenchError::Config(format!("json: {e}")))?;
        std::fs::write(dir.join("chat.json"), json).map_err(io_err("write chat.json"))?;
        std::fs::write(dir.join("chat.md"), &report.markdown).map_err(io_err("write chat.md"))?;
    }
    Ok(report)
}

/// The node counts to run, in order, each once (1 first when given); none is 0.
fn node_counts(config: &BenchConfig) -> Result<Vec<usize>, BenchError> {
    let mut nodes: Vec<usize> = Vec::new();
    for &n in &config.nodes {
        if n == 0 || n > 16 {
            return Err(BenchError::Config(format!(
                "--nodes {n}: want 1 to 16 nodes"
            )));
        }
        if !nodes.contains(&n) {
            nodes.push(n);
        }
    }
    if nodes.is_empty() {
        nodes.push(1);
    }
    nodes.sort_unstable();
    Ok(nodes)
}

/// The cluster section of the report: per scenario, each node count's delivered/s,
/// p50/p99 and the servers' CPU per delivery, against the single server of the same run.
pub fn cluster_markdown(rows: &[ClusterRow]) -> String {
    let mut s = String::from(
        "\n## sockit on 1 node and as a cluster (same run)\n\n\
         | channels | nodes | delivered / expected | delivered/s | p50 ms | p99 ms | server CPU s | CPU µs / delivery | Δp50 vs 1 node ms | CPU / delivery vs 1 node | extra CPU µs / message sent vs 1 node |\n\
         |---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let fmt = |v: Option<f64>, digits: usize| match v {
        Some(v) => format!("{v:.digits$}"),
        None => "–".into(),
    };
    for r in rows {
        let base = rows
            .iter()
            .find(|b| b.nodes == 1 && b.run.channels == r.run.channels);
        let dp50 = base.map(|b| r.run.p50_ms - b.run.p50_ms);
        let cpu_ratio = base
            .and_then(|b| b.cpu_us_per_delivery())
            .zip(r.cpu_us_per_delivery())
            .map(|(b, c)| ratio(c, b));
        // What the cluster adds to one message, over all its nodes and NATS.
        let extra = base
            .and_then(|b| b.cpu_s.map(|c| c / b.run.sent.max(1) as f64))
            .zip(r.cpu_s.map(|c| c / r.run.sent.max(1) as f64))
            .map(|(b, c)| (c - b) * 1e6);
        s.push_str(&format!(
            "| {} | {} | {} / {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} | {} |\n",
            r.run.channels,
            r.nodes,
            r.run.delivered,
            r.run.expected,
            r.run.delivered_per_s,
            r.run.p50_ms,
            r.run.p99_ms,
            fmt(r.cpu_s, 2),
            fmt(r.cpu_us_per_delivery(), 1),
            match dp50 {
                Some(d) if r.nodes > 1 => format!("{d:+.2}"),
                _ => "–".into(),
            },
            match cpu_ratio {
                Some(x) if r.nodes > 1 => x,
                _ => "–".into(),
            },
            match extra {
                Some(x) if r.nodes > 1 => format!("{x:+.0}"),
                _ => "–".into(),
            },
        ));
    }
    s.push_str(
        "\nThe cluster's nodes, its nats-server and the load clients share this machine's \
         cores: the CPU columns are what a delivery costs (every message crosses NATS \
         and is applied on every node), not how a cluster scales on more machines.\n",
    );
    s
}

/// The report's notes on how each server was set up.
fn notes(config: &BenchConfig) -> Vec<String> {
    let mut notes = vec![
        format!(
            "Flood control stays at each server's defaults: sockit's penalty {} s per \
             command, burst {} s; ngircd's built-in throttling (about one command per second \
             after a short burst; it cannot be turned off in its config); InspIRCd's fakelag. \
             Per-client send rate here: {:.3}/s.",
            SOCKIT_FLOOD.penalty.as_secs_f64(),
            SOCKIT_FLOOD.burst.as_secs_f64(),
            config.rate / config.clients.max(1) as f64
        ),
        match config.tags {
            true => format!(
                "IRCv3 tags on: every client sends CAP LS 302 and requests those of {} the \
                 server offers (the caps column: what it acknowledged).",
                TAG_CAPS.join(", ")
            ),
            false => "IRCv3 tags off: clients register without CAP.".into(),
        },
        "ngircd config: MaxConnections 0, MaxConnectionsIP 0, MaxJoins 0 (unlimited), \
         DNS/Ident/PAM off."
            .into(),
        "InspIRCd config: one connect class with localmax/globalmax/limit 100000, \
         resolvehostnames no, useident no, maxconnwarn no, pingfreq 600; performance \
         softlimit 100000, somaxconn 4096; modules cap, ircv3, ircv3_servertime, \
         ircv3_msgid, ircv3_ctctags; no file log."
            .into(),
        format!(
            "sockit: {}.",
            match &config.sockit {
                Some(_) =>
                    "its own process (`sockit serve --only chat`, connection limits \
                     raised with --max-conns/--max-conns-per-ip, flood control at its \
                     defaults), like ngircd and InspIRCd",
                None => "in-process, in the same tokio runtime as the load clients",
            }
        ),
    ];
    if config.nodes.iter().any(|n| *n > 1) {
        notes.push(
            "sockit (N nodes): N `sockit serve --only chat` nodes (in-process servers \
             with --in-process), each `--chat-cluster` on one `nats-server -js` \
             (loopback, store in a temporary directory, `--chat-node-timeout 60s`); \
             client i connects to node i mod N, so every channel has members on every \
             node; the send window opens once every node's LIST counts every member. \
             Server CPU: user + system time of the sockit processes and nats-server \
             (/proc) from the window's start to the end of the drain."
                .into(),
        );
    }
    notes
}

/// `a / b` as `N.NN×` (`b` kept above zero).
fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}×", a / b.max(f64::MIN_POSITIVE))
}

/// The results table; sockit rows carry ratios to the ngircd and InspIRCd rows of the
/// same scenario (delivered/s: higher is better; p99: lower is better), and a line per
/// scenario says whether sockit met the target: delivered/s at least the best peer's and
/// p99 below every peer's.
pub fn markdown(runs: &[Measurement], notes: &[String]) -> String {
    let mut s = String::from(
        "# Chat benchmark: sockit vs ngircd and InspIRCd (loopback)\n\n\
         | server | caps | clients | channels | rate msg/s | s | sent | delivered / expected | delivered/s | p50 ms | p99 ms | max ms | delivered/s vs ngircd | p99 vs ngircd | delivered/s vs inspircd | p99 vs inspircd |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    let peer = |m: &Measurement, name: &str| {
        runs.iter()
            .find(|p| p.server == name && p.channels == m.channels && p.clients == m.clients)
    };
    let mut verdicts = Vec::new();
    for m in runs {
        let mut ratios = Vec::new();
        for name in ["ngircd", "inspircd"] {
            match (m.server.as_str(), peer(m, name)) {
                ("sockit", Some(p)) => {
                    ratios.push(ratio(m.delivered_per_s, p.delivered_per_s));
                    ratios.push(ratio(m.p99_ms, p.p99_ms));
                }
                _ => ratios.extend(["–".to_string(), "–".to_string()]),
            }
        }
        let caps = match m.caps.is_empty() {
            true => "none",
            false => m.caps.as_str(),
        };
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} / {} | {:.0} | {:.2} | {:.2} | {:.2} | {} |\n",
            m.server,
            caps,
            m.clients,
            m.channels,
            m.rate,
            m.seconds,
            m.sent,
            m.delivered,
            m.expected,
            m.delivered_per_s,
            m.p50_ms,
            m.p99_ms,
            m.max_ms,
            ratios.join(" | ")
        ));
        if m.server == "sockit" {
            let peers: Vec<&Measurement> = ["ngircd", "inspircd"]
                .iter()
                .filter_map(|n| peer(m, n))
                .collect();
            if !peers.is_empty() {
                let best = peers.iter().map(|p| p.delivered_per_s).fold(0.0, f64::max);
                let lowest_p99 = peers.iter().map(|p| p.p99_ms).fold(f64::INFINITY, f64::min);
                let yes = |b: bool| if b { "yes" } else { "no" };
                verdicts.push(format!(
                    "- {} clients in {} channel{}: delivered/s ≥ the best peer's ({:.0}): {}; \
                     p99 below every peer's (lowest {:.2} ms): {}\n",
                    m.clients,
                    m.channels,
                    if m.channels == 1 { "" } else { "s" },
                    best,
                    yes(m.delivered_per_s >= best),
                    lowest_p99,
                    yes(m.p99_ms < lowest_p99)
                ));
            }
        }
    }
    if !verdicts.is_empty() {
        s.push_str("\nTarget (sockit's delivered/s at least the best peer's, p99 below all):\n\n");
        for v in verdicts {
            s.push_str(&v);
        }
    }
    s.push('\n');
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}
