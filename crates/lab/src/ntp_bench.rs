//! The NTP benchmark behind `sockit lab bench ntp`: chronyd vs `sockit serve --only ntp`.
//!
//! [`run`] starts each server in turn as its own process on a free loopback UDP port —
//! `chronyd -d -x -f CONF` with a generated config ([`chronyd_server_config`]), then
//! `sockit serve --only ntp --udp-rate 0` — waits until it answers a request (bounded,
//! by probing, never a sleep), and drives the same closed-loop load at it ([`load`]):
//! C client sockets, each sending a 48-byte NTPv4 client request ([`request`]) and
//! waiting up to 1 s for the reply whose origin timestamp matches ([`match_reply`]),
//! for a fixed duration or request count. It records answered requests per second,
//! response-time percentiles, losses and the CPU time the server used during the load.
//! Then, with the server idle, `chronyd -Q` measures the server's clock offset
//! ([`chronyd_client_config`], [`parse_chrony_offset`]).
//!
//! Rate limiting is off for both servers: the whole load comes from one source address.
//! chronyd does not rate limit unless its config has `ratelimit`; sockit's per-source UDP
//! limit is turned off with `--udp-rate 0`.
//!
//! Results go to `OUT/ntp.json` and `OUT/ntp.md`.

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::loadgen::percentiles::{new_histogram, record, Percentiles};
use crate::procstat;

/// Length of an NTP packet without extension fields or MAC.
pub const PACKET_LEN: usize = 48;
/// How long a client waits for its reply before counting the request as lost.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// The accuracy target: sockit's |offset| within this many µs of chrony-against-chronyd.
pub const OFFSET_TARGET_US: f64 = 50.0;
/// Longest load window per server.
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
/// Most concurrent client sockets.
pub const MAX_CLIENTS: usize = 1024;
/// How long a server may take to answer its first request.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one readiness probe waits for its reply.
const PROBE_TIMEOUT: Duration = Duration::from_millis(100);
/// How long `sockit serve` may take to write its addr file.
const ADDR_FILE_TIMEOUT: Duration = Duration::from_secs(30);
/// `chronyd -Q -t` seconds; the process is killed if it outlives this by 10 s.
const CHRONY_QUERY_SECS: u64 = 30;

/// Errors of the NTP benchmark.
#[derive(Debug, thiserror::Error)]
pub enum NtpBenchError {
    /// chronyd is not installed (or not where it was looked for).
    #[error("{bin} not found: install the Debian package chrony")]
    ChronydMissing {
        /// The name or path that was looked up.
        bin: PathBuf,
    },
    /// A socket, file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A server process exited before or during its run.
    #[error("{server} exited with {status}; its log ends:\n{log}")]
    Exited {
        /// Which server.
        server: String,
        /// How it exited.
        status: ExitStatus,
        /// The last lines of its output.
        log: String,
    },
    /// A server did not answer (or announce its address) in time.
    #[error("{server} {what} within {secs} s; its log ends:\n{log}")]
    NotReady {
        /// Which server.
        server: String,
        /// What did not happen, e.g. "answered no request".
        what: String,
        /// How long we waited.
        secs: u64,
        /// The last lines of its output.
        log: String,
    },
    /// `sockit serve` wrote an addr file without an ntp/udp address.
    #[error("the addr file has no ntp/udp address: {text}")]
    AddrFile {
        /// The file's contents.
        text: String,
    },
    /// The load generator only targets loopback addresses.
    #[error("refusing to load {addr}: the benchmark only sends to 127.0.0.0/8")]
    NotLoopback {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// A bad setting (zero clients, a duration over an hour, ...).
    #[error("invalid configuration: {0}")]
    Config(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> NtpBenchError {
    let what = what.into();
    move |source| NtpBenchError::Io { what, source }
}

/// The benchmark's result type.
pub type Result<T, E = NtpBenchError> = std::result::Result<T, E>;

// ---------------------------------------------------------------------------------------
// The wire: one client request, one reply check.

/// An NTPv4 client request (RFC 5905 §7.3): LI 0, VN 4, mode 3, every field zero except
/// the transmit timestamp, which carries `id`. A server copies it into the reply's
/// origin timestamp, so `id` identifies the reply; it need not be a time.
pub fn request(id: u64) -> [u8; PACKET_LEN] {
    let mut p = [0u8; PACKET_LEN];
    p[0] = (4 << 3) | 3;
    p[40..48].copy_from_slice(&id.to_be_bytes());
    p
}

/// What a datagram is, relative to the request that carried `id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reply {
    /// A server reply to that request.
    Time,
    /// A kiss-o'-death (stratum 0) reply to that request, with its ASCII code (`RATE`,
    /// `DENY`, ...).
    KissOfDeath([u8; 4]),
}

/// Checks whether `datagram` answers the request that carried `id`: at least 48 bytes,
/// mode 4 (server), version 1–4, origin timestamp equal to `id`. `None` for anything
/// else (a late reply to an earlier request, garbage).
pub fn match_reply(datagram: &[u8], id: u64) -> Option<Reply> {
    let head = datagram.get(..PACKET_LEN)?;
    let (version, mode) = ((head[0] >> 3) & 7, head[0] & 7);
    if mode != 4 || !(1..=4).contains(&version) || head[24..32] != id.to_be_bytes() {
        return None;
    }
    if head[1] == 0 {
        let mut code = [0u8; 4];
        code.copy_from_slice(&head[12..16]);
        return Some(Reply::KissOfDeath(code));
    }
    Some(Reply::Time)
}

/// Unique request ids: a bijective mix (splitmix64's finalizer) of a per-run seed plus a
/// counter, so no two requests of a run share an id and ids do not look sequential.
#[derive(Debug)]
pub struct RequestIds {
    seed: u64,
    next: AtomicU64,
}

impl RequestIds {
    /// Ids starting from `seed`.
    pub fn new(seed: u64) -> Self {
        RequestIds {
            seed,
            next: AtomicU64::new(0),
        }
    }

    /// Ids seeded from the clock and the process id.
    pub fn from_clock() -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Self::new(nanos ^ (u64::from(std::process::id()) << 32))
    }

    /// The next id (never 0, which would read as "no timestamp").
    pub fn next_id(&self) -> u64 {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        match mix(self.seed.wrapping_add(n)) {
            0 => u64::MAX,
            id => id,
        }
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

// ---------------------------------------------------------------------------------------
// chrony: configs and output.

/// chronyd's config as the server under test: `port`, on 127.0.0.1 only, serving its own
/// clock at stratum 10, no command port, pidfile in `dir`, and no `ratelimit` (so no
/// rate limiting).
pub fn chronyd_server_config(port: u16, dir: &Path) -> String {
    format!(
        "port {port}\n\
         bindaddress 127.0.0.1\n\
         allow 127.0.0.1\n\
         local stratum 10\n\
         cmdport 0\n\
         pidfile {}\n",
        dir.join("server.pid").display()
    )
}

/// chronyd's config as the measuring client (`chronyd -Q`): one server polled every
/// 1/16 s from the start.
pub fn chronyd_client_config(server: SocketAddr, dir: &Path) -> String {
    format!(
        "server {} port {} iburst minpoll -4 maxpoll -4\n\
         cmdport 0\n\
         pidfile {}\n",
        server.ip(),
        server.port(),
        dir.join("query.pid").display()
    )
}

/// The offset in seconds from `chronyd -Q` output ("System clock wrong by -0.000004
/// seconds (ignored)"); `None` if no such line (no source was usable).
pub fn parse_chrony_offset(output: &str) -> Option<f64> {
    const MARK: &str = "System clock wrong by ";
    output.lines().find_map(|line| {
        let rest = &line[line.find(MARK)? + MARK.len()..];
        let mut words = rest.split_whitespace();
        let value: f64 = words.next()?.parse().ok()?;
        (words.next() == Some("seconds") && value.is_finite()).then_some(value)
    })
}

/// `bin` itself if it is a path, else the first match on PATH or in the sbin directories
/// (often not on a user's PATH); `None` if there is none.
pub fn find_chronyd(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return bin.is_file().then(|| bin.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into(), "/sbin".into()])
        .map(|d| d.join(bin))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

// ---------------------------------------------------------------------------------------
// The load.

/// The closed-loop load against one server.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    /// Concurrent client sockets, each with one request outstanding.
    pub clients: usize,
    /// How long the clients send.
    pub duration: Duration,
    /// Stop earlier once this many requests were sent.
    pub requests: Option<u64>,
    /// How long a client waits for a reply; a request not answered by then is lost.
    pub timeout: Duration,
}

/// What the load measured.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct LoadResult {
    /// Requests sent.
    pub sent: u64,
    /// Requests answered in time.
    pub answered: u64,
    /// Requests not answered in time (timeouts, kiss-o'-death replies, socket errors).
    pub lost: u64,
    /// Of the lost: kiss-o'-death replies (a rate limit would show here).
    pub kiss_of_death: u64,
    /// Of the lost: socket errors (e.g. ICMP port unreachable).
    pub errors: u64,
    /// Datagrams that answered no outstanding request (late replies).
    pub stale: u64,
    /// From the first send to the last client finishing.
    pub seconds: f64,
    /// Answered requests per second.
    pub requests_per_s: f64,
    /// Response time of the answered requests.
    pub latency: Percentiles,
}

#[derive(Default)]
struct ClientCounts {
    sent: u64,
    answered: u64,
    lost: u64,
    kiss_of_death: u64,
    errors: u64,
    stale: u64,
}

/// Drives `plan` at `addr` from `plan.clients` threads, each with its own connected UDP
/// socket, and merges what they measured.
///
/// # Errors
/// `addr` is not loopback, the plan is empty, or a client socket cannot be set up.
pub fn load(addr: SocketAddr, plan: &LoadPlan, ids: &RequestIds) -> Result<LoadResult> {
    if !addr.ip().is_loopback() {
        return Err(NtpBenchError::NotLoopback { addr });
    }
    if plan.clients == 0 || plan.timeout.is_zero() {
        return Err(NtpBenchError::Config(
            "a load needs at least one client and a timeout".into(),
        ));
    }
    let budget = AtomicU64::new(plan.requests.unwrap_or(u64::MAX));
    let started = Instant::now();
    let deadline = started + plan.duration;
    let outcomes: Vec<Result<(ClientCounts, Histogram<u64>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..plan.clients)
            .map(|_| s.spawn(|| client(addr, plan.timeout, deadline, &budget, ids)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(NtpBenchError::Config("a load client panicked".into())))
            })
            .collect()
    });
    let seconds = started.elapsed().as_secs_f64();
    let mut total = ClientCounts::default();
    let mut hist = new_histogram();
    for outcome in outcomes {
        let (c, h) = outcome?;
        total.sent += c.sent;
        total.answered += c.answered;
        total.lost += c.lost;
        total.kiss_of_death += c.kiss_of_death;
        total.errors += c.errors;
        total.stale += c.stale;
        hist.add(&h)
            .map_err(|e| NtpBenchError::Config(format!("merging histograms: {e:?}")))?;
    }
    Ok(LoadResult {
        sent: total.sent,
        answered: total.answered,
        lost: total.lost,
        kiss_of_death: total.kiss_of_death,
        errors: total.errors,
        stale: total.stale,
        seconds,
        requests_per_s: total.answered as f64 / seconds.max(f64::MIN_POSITIVE),
        latency: Percentiles::from_histogram(&hist),
    })
}

/// Takes one request from the budget; false when it is spent.
fn take_one(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

/// One closed-loop client: request, wait for its reply (or the timeout), repeat until the
/// deadline or the shared budget is spent.
fn client(
    addr: SocketAddr,
    timeout: Duration,
    deadline: Instant,
    budget: &AtomicU64,
    ids: &RequestIds,
) -> Result<(ClientCounts, Histogram<u64>)> {
    let sock = UdpSocket::bind(("127.0.0.1", 0)).map_err(io_err("bind a client socket"))?;
    sock.connect(addr)
        .map_err(io_err("connect a client socket"))?;
    sock.set_read_timeout(Some(timeout))
        .map_err(io_err("set the client timeout"))?;
    let mut counts = ClientCounts::default();
    let mut hist = new_histogram();
    let mut buf = [0u8; 1024];
    while Instant::now() < deadline && take_one(budget) {
        let id = ids.next_id();
        let sent_at = Instant::now();
        counts.sent += 1;
        if sock.send(&request(id)).is_err() {
            counts.errors += 1;
            counts.lost += 1;
            continue;
        }
        let give_up = sent_at + timeout;
        // Only after a stale datagram does the wait need shortening (one syscall saved
        // per request otherwise).
        let mut shortened = false;
        loop {
            match sock.recv(&mut buf) {
                Ok(n) => match match_reply(&buf[..n], id) {
                    Some(Reply::Time) => {
                        record(&mut hist, sent_at.elapsed().as_nanos() as u64);
                        counts.answered += 1;
                        break;
                    }
                    Some(Reply::KissOfDeath(_)) => {
                        counts.kiss_of_death += 1;
                        counts.lost += 1;
                        break;
                    }
                    None => {
                        counts.stale += 1;
                        let left = give_up.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            counts.lost += 1;
                            break;
                        }
                        shortened = true;
                        sock.set_read_timeout(Some(left))
                            .map_err(io_err("set the client timeout"))?;
                    }
                },
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    counts.lost += 1;
                    break;
                }
                Err(_) => {
                    counts.errors += 1;
                    counts.lost += 1;
                    break;
                }
            }
        }
        if shortened {
            sock.set_read_timeout(Some(timeout))
                .map_err(io_err("set the client timeout"))?;
        }
    }
    Ok((counts, hist))
}

// ---------------------------------------------------------------------------------------
// The servers.

/// A server child process with its scratch directory; killed and cleaned up on drop.
struct ServerProcess {
    name: &'static str,
    child: Child,
    dir: PathBuf,
    log: PathBuf,
}

impl ServerProcess {
    fn spawn(name: &'static str, mut cmd: Command, dir: PathBuf) -> Result<Self> {
        let log = dir.join("server.log");
        let out =
            std::fs::File::create(&log).map_err(io_err(format!("create {}", log.display())))?;
        let err = out
            .try_clone()
            .map_err(io_err(format!("open {}", log.display())))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(io_err(format!("start {name} ({:?})", cmd.get_program())))?;
        Ok(ServerProcess {
            name,
            child,
            dir,
            log,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        tail(&std::fs::read_to_string(&self.log).unwrap_or_default(), 12)
    }

    /// An error if the process has exited.
    fn check_alive(&mut self) -> Result<()> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(NtpBenchError::Exited {
                server: self.name.into(),
                status,
                log: self.log_tail(),
            }),
            _ => Ok(()),
        }
    }

    fn not_ready(&self, what: &str, limit: Duration) -> NtpBenchError {
        NtpBenchError::NotReady {
            server: self.name.into(),
            what: what.into(),
            secs: limit.as_secs(),
            log: self.log_tail(),
        }
    }

    /// Sends requests (each waiting up to 100 ms) until one is answered, for at most
    /// [`READY_TIMEOUT`]. The probe socket is unconnected so that an ICMP "port
    /// unreachable" before the server binds does not end a probe early.
    fn wait_answering(&mut self, addr: SocketAddr, ids: &RequestIds) -> Result<()> {
        let sock = UdpSocket::bind(("127.0.0.1", 0)).map_err(io_err("bind the probe socket"))?;
        sock.set_read_timeout(Some(PROBE_TIMEOUT))
            .map_err(io_err("set the probe timeout"))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut buf = [0u8; 1024];
        while Instant::now() < deadline {
            self.check_alive()?;
            let id = ids.next_id();
            sock.send_to(&request(id), addr)
                .map_err(io_err(format!("probe {addr}")))?;
            let probe_end = Instant::now() + PROBE_TIMEOUT;
            while Instant::now() < probe_end {
                match sock.recv_from(&mut buf) {
                    Ok((n, from)) if from == addr && match_reply(&buf[..n], id).is_some() => {
                        return Ok(())
                    }
                    Ok(_) => {}
                    Err(_) => break,
                }
            }
        }
        Err(self.not_ready("answered no request", READY_TIMEOUT))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fresh scratch directory under the system temp dir.
fn scratch_dir(name: &str) -> Result<PathBuf> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir().join(format!(
        "sockit-ntp-bench-{}-{name}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
    Ok(dir)
}

fn free_udp_port() -> Result<u16> {
    let s = UdpSocket::bind(("127.0.0.1", 0)).map_err(io_err("find a free UDP port"))?;
    Ok(s.local_addr()
        .map_err(io_err("find a free UDP port"))?
        .port())
}

/// Starts chronyd as a server on a free loopback port and waits until it answers.
fn start_chronyd(chronyd: &Path, ids: &RequestIds) -> Result<(ServerProcess, SocketAddr)> {
    let dir = scratch_dir("chronyd")?;
    let port = free_udp_port()?;
    let conf = dir.join("chrony.conf");
    std::fs::write(&conf, chronyd_server_config(port, &dir))
        .map_err(io_err(format!("write {}", conf.display())))?;
    let mut cmd = Command::new(chronyd);
    cmd.args(["-d", "-x"]);
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    cmd.arg("-f").arg(&conf);
    let mut server = ServerProcess::spawn("chronyd", cmd, dir)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    server.wait_answering(addr, ids)?;
    Ok((server, addr))
}

/// Starts `sockit serve --only ntp` with rate limiting off, reads its address from the
/// addr file and waits until it answers.
fn start_sockit(sockit: &Path, ids: &RequestIds) -> Result<(ServerProcess, SocketAddr)> {
    let dir = scratch_dir("sockit")?;
    let addr_file = dir.join("addrs.json");
    let mut cmd = Command::new(sockit);
    cmd.args(["-q", "serve", "--only", "ntp", "--bind", "127.0.0.1"])
        .args(["--port", "all=0", "--udp-rate", "0", "--addr-file"])
        .arg(&addr_file)
        .arg("--root")
        .arg(dir.join("root"));
    let mut server = ServerProcess::spawn("sockit", cmd, dir)?;
    let deadline = Instant::now() + ADDR_FILE_TIMEOUT;
    let text = loop {
        // The server renames the file into place once every port listens.
        if let Ok(text) = std::fs::read_to_string(&addr_file) {
            break text;
        }
        server.check_alive()?;
        if Instant::now() > deadline {
            return Err(server.not_ready("wrote no addr file", ADDR_FILE_TIMEOUT));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let addr = parse_addr_file(&text).ok_or(NtpBenchError::AddrFile { text })?;
    server.wait_answering(addr, ids)?;
    Ok((server, addr))
}

/// The ntp/udp address from `sockit serve`'s addr file.
pub fn parse_addr_file(text: &str) -> Option<SocketAddr> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v["ntp"]["udp"].as_str()?.parse().ok()
}

/// Runs `chronyd -Q` against `server` once in a scratch directory; the offset in µs, or
/// what chrony said.
fn chrony_offset_us(chronyd: &Path, server: SocketAddr) -> Result<Result<f64, String>> {
    let dir = scratch_dir("query")?;
    let result = chrony_query(chronyd, server, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn chrony_query(chronyd: &Path, server: SocketAddr, dir: &Path) -> Result<Result<f64, String>> {
    let conf = dir.join("query.conf");
    let out_path = dir.join("query.log");
    std::fs::write(&conf, chronyd_client_config(server, dir))
        .map_err(io_err(format!("write {}", conf.display())))?;
    let out = std::fs::File::create(&out_path).map_err(io_err("create the chrony log"))?;
    let err = out.try_clone().map_err(io_err("open the chrony log"))?;
    let mut cmd = Command::new(chronyd);
    cmd.arg("-Q");
    if is_root() {
        cmd.args(["-u", "root"]);
    }
    let mut child = cmd
        .arg("-f")
        .arg(&conf)
        .args(["-t", &CHRONY_QUERY_SECS.to_string()])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(io_err(format!("run {} -Q", chronyd.display())))?;
    let deadline = Instant::now() + Duration::from_secs(CHRONY_QUERY_SECS + 10);
    let status = loop {
        match child.try_wait().map_err(io_err("wait for chronyd -Q"))? {
            Some(status) => break Some(status),
            None if Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            // Waiting for a process to finish, not for a server to come up.
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    };
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    Ok(match (parse_chrony_offset(&output), status) {
        (Some(s), _) => Ok(s * 1e6),
        (None, None) => Err(format!("chronyd -Q did not finish: {}", tail(&output, 3))),
        (None, Some(st)) => Err(format!("chronyd -Q ({st}): {}", tail(&output, 3))),
    })
}

// ---------------------------------------------------------------------------------------
// The run and its report.

/// What to run.
#[derive(Debug, Clone)]
pub struct NtpBenchConfig {
    /// The `sockit` binary (its `serve --only ntp` is the server under test).
    pub sockit: PathBuf,
    /// The chronyd binary; a bare name is also looked up in the sbin directories.
    pub chronyd: PathBuf,
    /// Concurrent client sockets (at most [`MAX_CLIENTS`]).
    pub clients: usize,
    /// Load window per server (at most [`MAX_DURATION`]).
    pub duration: Duration,
    /// Stop each server's load once this many requests were sent.
    pub requests: Option<u64>,
    /// `chronyd -Q` runs per server; the report takes the median offset.
    pub offset_runs: usize,
    /// Where `ntp.json` and `ntp.md` are written; `None` writes nothing.
    pub out_dir: Option<PathBuf>,
}

impl NtpBenchConfig {
    /// The defaults (16 clients, 5 s per server, 3 offset runs, `bench-results/`) for
    /// the given `sockit` binary.
    pub fn new(sockit: PathBuf) -> Self {
        NtpBenchConfig {
            sockit,
            chronyd: PathBuf::from("chronyd"),
            clients: 16,
            duration: Duration::from_secs(5),
            requests: None,
            offset_runs: 3,
            out_dir: Some(PathBuf::from("bench-results")),
        }
    }
}

/// One server's results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ServerRun {
    /// `chronyd` or `sockit`.
    pub server: String,
    /// Where it listened.
    pub addr: String,
    /// The load's measurements.
    pub load: LoadResult,
    /// User CPU time the server used during the load, in seconds.
    pub cpu_user_s: f64,
    /// Kernel CPU time the server used during the load, in seconds.
    pub cpu_system_s: f64,
    /// Offsets chrony measured against the server, µs, one per `chronyd -Q` run.
    pub offsets_us: Vec<f64>,
    /// The median of [`offsets_us`](Self::offsets_us); `None` if no run gave one.
    pub offset_us: Option<f64>,
    /// What chrony said when a run gave no offset.
    pub offset_errors: Vec<String>,
}

impl ServerRun {
    /// User plus kernel CPU seconds.
    pub fn cpu_s(&self) -> f64 {
        self.cpu_user_s + self.cpu_system_s
    }
}

/// A target the benchmark prints (it does not fail on a miss).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Target {
    /// The target in words.
    pub name: String,
    /// Whether the run met it; `None` if it could not be judged.
    pub met: Option<bool>,
    /// The numbers behind the verdict.
    pub detail: String,
}

/// The whole benchmark's result.
#[derive(Debug, Clone, Serialize)]
pub struct NtpBenchReport {
    /// Concurrent client sockets.
    pub clients: usize,
    /// Load window per server, seconds.
    pub duration_s: f64,
    /// Request cap per server, if any.
    pub requests: Option<u64>,
    /// Reply timeout, ms.
    pub timeout_ms: u64,
    /// chronyd first, then sockit.
    pub runs: Vec<ServerRun>,
    /// The targets and whether they were met.
    pub targets: Vec<Target>,
    /// How the numbers were taken.
    pub notes: Vec<String>,
    /// The markdown report.
    pub markdown: String,
}

/// Runs the benchmark: chronyd, then sockit, each started, loaded, measured by chrony and
/// stopped; writes `ntp.json` and `ntp.md` when [`NtpBenchConfig::out_dir`] is set.
///
/// # Errors
/// chronyd is missing, a server does not start or dies, a socket cannot be set up, the
/// results cannot be written. Lost requests and failed offset runs are reported, not
/// errors.
pub fn run(config: &NtpBenchConfig) -> Result<NtpBenchReport> {
    if !(1..=MAX_CLIENTS).contains(&config.clients) {
        return Err(NtpBenchError::Config(format!(
            "clients must be 1..={MAX_CLIENTS}"
        )));
    }
    if config.duration.is_zero() || config.duration > MAX_DURATION {
        return Err(NtpBenchError::Config(
            "the duration must be more than 0 and at most an hour".into(),
        ));
    }
    if config.requests == Some(0) || !(1..=20).contains(&config.offset_runs) {
        return Err(NtpBenchError::Config(
            "requests must be at least 1 and offset runs 1..=20".into(),
        ));
    }
    let chronyd = find_chronyd(&config.chronyd).ok_or_else(|| NtpBenchError::ChronydMissing {
        bin: config.chronyd.clone(),
    })?;
    let plan = LoadPlan {
        clients: config.clients,
        duration: config.duration,
        requests: config.requests,
        timeout: REQUEST_TIMEOUT,
    };
    let ids = RequestIds::from_clock();
    let mut runs = Vec::new();
    for name in ["chronyd", "sockit"] {
        let (mut server, addr) = match name {
            "chronyd" => start_chronyd(&chronyd, &ids)?,
            _ => start_sockit(&config.sockit, &ids)?,
        };
        tracing::info!(server = name, %addr, clients = plan.clients, "ntp load");
        let (user0, sys0) = procstat::cpu_times(server.pid());
        let result = load(addr, &plan, &ids)?;
        let (user1, sys1) = procstat::cpu_times(server.pid());
        server.check_alive()?;
        tracing::info!(server = name, "chronyd -Q offset");
        let mut offsets_us = Vec::new();
        let mut offset_errors = Vec::new();
        for _ in 0..config.offset_runs {
            match chrony_offset_us(&chronyd, addr)? {
                Ok(us) => offsets_us.push(us),
                Err(e) => offset_errors.push(e),
            }
        }
        server.check_alive()?;
        drop(server);
        runs.push(ServerRun {
            server: name.into(),
            addr: addr.to_string(),
            load: result,
            cpu_user_s: user1.saturating_sub(user0).as_secs_f64(),
            cpu_system_s: sys1.saturating_sub(sys0).as_secs_f64(),
            offset_us: median(&offsets_us),
            offsets_us,
            offset_errors,
        });
    }
    let notes = notes(config);
    let targets = targets(&runs);
    let markdown = markdown(config.clients, config.duration, &runs, &targets, &notes);
    let report = NtpBenchReport {
        clients: config.clients,
        duration_s: config.duration.as_secs_f64(),
        requests: config.requests,
        timeout_ms: REQUEST_TIMEOUT.as_millis() as u64,
        runs,
        targets,
        notes,
        markdown,
    };
    if let Some(dir) = &config.out_dir {
        write_results(dir, &report)?;
    }
    Ok(report)
}

fn write_results(dir: &Path, report: &NtpBenchReport) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(io_err(format!("create {}", dir.display())))?;
    let json = serde_json::to_string_pretty(report)
        .map_err(|e| NtpBenchError::Config(format!("json: {e}")))?;
    for (name, text) in [("ntp.json", json.as_str()), ("ntp.md", &report.markdown)] {
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(io_err(format!("write {}", path.display())))?;
    }
    Ok(())
}

/// The median of `v` (mean of the middle two for an even count); `None` if empty.
pub fn median(v: &[f64]) -> Option<f64> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(s[n / 2]),
        _ => Some((s[n / 2 - 1] + s[n / 2]) / 2.0),
    }
}

fn notes(config: &NtpBenchConfig) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    vec![
        "Rate limiting is off on both servers (the whole load comes from one source \
         address): chronyd's config has no `ratelimit` directive, and chrony does not rate \
         limit without one; sockit runs with `--udp-rate 0`."
            .into(),
        format!(
            "Each server is its own process on 127.0.0.1, started fresh: `chronyd -d -x` \
             (local stratum 10, no command port), `sockit serve --only ntp --udp-rate 0`. \
             Nothing is pinned; the {} load threads share the machine's {cores} cores \
             with the server.",
            config.clients
        ),
        "Load: closed loop, one 48-byte NTPv4 client request outstanding per client \
         socket; a reply counts when its origin timestamp matches the request's transmit \
         timestamp; no reply within 1 s is a loss. CPU s: user + system time of the \
         server process during the load."
            .into(),
        format!(
            "Offset: with the server idle after its load, `chronyd -Q` ({} runs, median) \
             with `server 127.0.0.1 port P iburst minpoll -4 maxpoll -4`; both servers \
             serve the same system clock, so chrony-against-chronyd is the baseline.",
            config.offset_runs
        ),
    ]
}

fn find<'a>(runs: &'a [ServerRun], name: &str) -> Option<&'a ServerRun> {
    runs.iter().find(|r| r.server == name)
}

/// `a / b` as "1.23×", or "–" when `b` is 0.
fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() {
        format!("{:.2}×", a / b)
    } else {
        "–".into()
    }
}

/// The printed targets: sockit ≥ chronyd throughput, |offset| within 50 µs of
/// chrony-against-chronyd.
pub fn targets(runs: &[ServerRun]) -> Vec<Target> {
    let (sockit, chronyd) = (find(runs, "sockit"), find(runs, "chronyd"));
    let throughput = match (sockit, chronyd) {
        (Some(s), Some(c)) => Target {
            name: "sockit ≥ chronyd requests/s".into(),
            met: Some(s.load.requests_per_s >= c.load.requests_per_s),
            detail: format!(
                "{:.0} vs {:.0} requests/s ({})",
                s.load.requests_per_s,
                c.load.requests_per_s,
                ratio(s.load.requests_per_s, c.load.requests_per_s)
            ),
        },
        _ => Target {
            name: "sockit ≥ chronyd requests/s".into(),
            met: None,
            detail: "a server did not run".into(),
        },
    };
    let name = format!("|offset| within {OFFSET_TARGET_US} µs of chrony-against-chronyd");
    let offset = match (
        sockit.and_then(|r| r.offset_us),
        chronyd.and_then(|r| r.offset_us),
    ) {
        (Some(s), Some(c)) => {
            let delta = s.abs() - c.abs();
            Target {
                name,
                met: Some(delta.abs() <= OFFSET_TARGET_US),
                detail: format!(
                    "|sockit| {:.1} µs, |chronyd| {:.1} µs, difference {delta:+.1} µs",
                    s.abs(),
                    c.abs()
                ),
            }
        }
        _ => Target {
            name,
            met: None,
            detail: "chrony measured no offset against a server (see the details)".into(),
        },
    };
    vec![throughput, offset]
}

/// The markdown report: the table, a ratio row sockit/chronyd, targets, details, notes.
pub fn markdown(
    clients: usize,
    duration: Duration,
    runs: &[ServerRun],
    targets: &[Target],
    notes: &[String],
) -> String {
    let mut s = format!(
        "# NTP benchmark: sockit vs chronyd (loopback)\n\n\
         {clients} closed-loop clients, {} s per server, rate limiting off on both servers.\n\n\
         | server | requests/s | p50 µs | p99 µs | loss | CPU s | chrony offset µs |\n\
         |---|---|---|---|---|---|---|\n",
        duration.as_secs_f64()
    );
    let offset_cell = |r: &ServerRun| match r.offset_us {
        Some(us) => format!("{:.1}", us.abs()),
        None => "none".into(),
    };
    for r in runs {
        let loss_pct = 100.0 * r.load.lost as f64 / (r.load.sent.max(1)) as f64;
        s.push_str(&format!(
            "| {} | {:.0} | {:.1} | {:.1} | {} ({loss_pct:.3}%) | {:.2} | {} |\n",
            r.server,
            r.load.requests_per_s,
            r.load.latency.p50_us,
            r.load.latency.p99_us,
            r.load.lost,
            r.cpu_s(),
            offset_cell(r)
        ));
    }
    if let (Some(k), Some(c)) = (find(runs, "sockit"), find(runs, "chronyd")) {
        let offset = match (k.offset_us, c.offset_us) {
            (Some(a), Some(b)) => format!("{:+.1} (difference)", a.abs() - b.abs()),
            _ => "–".into(),
        };
        s.push_str(&format!(
            "| sockit/chronyd | {} | {} | {} | {} | {} | {offset} |\n",
            ratio(k.load.requests_per_s, c.load.requests_per_s),
            ratio(k.load.latency.p50_us, c.load.latency.p50_us),
            ratio(k.load.latency.p99_us, c.load.latency.p99_us),
            ratio(k.load.lost as f64, c.load.lost as f64),
            ratio(k.cpu_s(), c.cpu_s()),
        ));
    }
    s.push_str("\nTargets (printed, not enforced):\n\n");
    for t in targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT met",
            None => "not judged",
        };
        s.push_str(&format!("- {}: **{verdict}** — {}\n", t.name, t.detail));
    }
    s.push_str("\nDetails:\n\n");
    for r in runs {
        let l = &r.load;
        let per_req = 1e6 * r.cpu_s() / (l.answered.max(1)) as f64;
        let offsets: Vec<String> = r.offsets_us.iter().map(|o| format!("{o:+.1}")).collect();
        s.push_str(&format!(
            "- {} ({}): {} sent, {} answered, {} lost ({} kiss-o'-death, {} socket errors), \
             {} stale replies in {:.2} s; p999 {:.1} µs, max {:.1} µs; CPU {:.2} s user + \
             {:.2} s system = {per_req:.1} µs per answered request; chrony offsets µs: [{}]",
            r.server,
            r.addr,
            l.sent,
            l.answered,
            l.lost,
            l.kiss_of_death,
            l.errors,
            l.stale,
            l.seconds,
            l.latency.p999_us,
            l.latency.max_us,
            r.cpu_user_s,
            r.cpu_system_s,
            offsets.join(", ")
        ));
        for e in &r.offset_errors {
            s.push_str(&format!("; no offset: {}", e.replace('\n', " ")));
        }
        s.push('\n');
    }
    s.push('\n');
    for n in notes {
        s.push_str(&format!("- {n}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server reply to `id` as chronyd sends it: LI 0, VN 4, mode 4, stratum 10.
    fn reply(id: u64) -> [u8; PACKET_LEN] {
        let mut p = [0u8; PACKET_LEN];
        p[0] = 0x24;
        p[1] = 10;
        p[24..32].copy_from_slice(&id.to_be_bytes());
        p
    }

    #[test]
    fn request_layout() {
        let p = request(0x0102_0304_0506_0708);
        assert_eq!(p.len(), 48);
        assert_eq!(p[0], 0x23, "LI 0, VN 4, mode 3");
        assert!(p[1..40].iter().all(|&b| b == 0));
        assert_eq!(&p[40..48], b"\x01\x02\x03\x04\x05\x06\x07\x08");
    }

    #[test]
    fn reply_to_our_request_matches() {
        assert_eq!(match_reply(&reply(42), 42), Some(Reply::Time));
    }

    #[test]
    fn reply_with_extension_bytes_matches() {
        let mut long = reply(7).to_vec();
        long.extend_from_slice(&[0u8; 20]);
        assert_eq!(match_reply(&long, 7), Some(Reply::Time));
    }

    #[test]
    fn reply_to_another_request_is_stale() {
        assert_eq!(match_reply(&reply(42), 43), None);
    }

    #[test]
    fn short_or_empty_datagram() {
        assert_eq!(match_reply(&reply(1)[..47], 1), None);
        assert_eq!(match_reply(b"", 1), None);
    }

    #[test]
    fn own_request_echoed_is_not_a_reply() {
        // Mode 3 with the id in the origin field: not from a server.
        let mut p = request(9);
        p[24..32].copy_from_slice(&9u64.to_be_bytes());
        assert_eq!(match_reply(&p, 9), None);
    }

    #[test]
    fn version_zero_or_five_rejected() {
        let mut p = reply(5);
        p[0] = 0x04;
        assert_eq!(match_reply(&p, 5), None);
        p[0] = (5 << 3) | 4;
        assert_eq!(match_reply(&p, 5), None);
    }

    #[test]
    fn kiss_of_death() {
        let mut p = reply(3);
        p[1] = 0;
        p[12..16].copy_from_slice(b"RATE");
        assert_eq!(match_reply(&p, 3), Some(Reply::KissOfDeath(*b"RATE")));
    }

    #[test]
    fn ids_unique_and_nonzero() {
        let ids = RequestIds::new(u64::MAX - 500);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..10_000 {
            let id = ids.next_id();
            assert_ne!(id, 0);
            assert!(seen.insert(id), "duplicate id {id}");
        }
    }

    #[test]
    fn chrony_offset_negative() {
        let out = "2026-12-02T00:13:56Z chronyd version 4.3 starting\n\
                   2026-12-02T00:13:56Z System clock wrong by -0.000004 seconds (ignored)\n\
                   2026-12-02T00:13:56Z chronyd exiting\n";
        assert_eq!(parse_chrony_offset(out), Some(-0.000004));
    }

    #[test]
    fn chrony_offset_positive_without_suffix() {
        assert_eq!(
            parse_chrony_offset("System clock wrong by 1.250000 seconds\n"),
            Some(1.25)
        );
    }

    #[test]
    fn chrony_no_source() {
        let out = "2026-12-02T00:14:30Z No suitable source for synchronisation\n\
                   2026-12-02T00:14:30Z chronyd exiting\n";
        assert_eq!(parse_chrony_offset(out), None);
    }

    #[test]
    fn chrony_garbage() {
        for out in [
            "",
            "System clock wrong by",
            "System clock wrong by x seconds",
            "System clock wrong by NaN seconds",
            "System clock wrong by inf seconds",
            "System clock wrong by 0.1 minutes",
            "\u{0}\u{ff}System clock wrong by \u{1F600} seconds",
        ] {
            assert_eq!(parse_chrony_offset(out), None, "{out:?}");
        }
    }

    #[test]
    fn server_config_has_no_ratelimit() {
        let c = chronyd_server_config(12345, Path::new("/tmp/d"));
        assert!(c.contains("port 12345\n"));
        assert!(c.contains("bindaddress 127.0.0.1\n"));
        assert!(c.contains("allow 127.0.0.1\n"));
        assert!(c.contains("local stratum 10\n"));
        assert!(c.contains("cmdport 0\n"));
        assert!(c.contains("pidfile /tmp/d/server.pid\n"));
        assert!(!c.contains("ratelimit"));
    }

    #[test]
    fn client_config_polls_fast() {
        let c = chronyd_client_config("127.0.0.1:4000".parse().unwrap(), Path::new("/tmp/d"));
        assert!(c.starts_with("server 127.0.0.1 port 4000 iburst minpoll -4 maxpoll -4\n"));
        assert!(c.contains("cmdport 0\n"));
    }

    #[test]
    fn addr_file() {
        assert_eq!(
            parse_addr_file(r#"{"ntp":{"udp":"127.0.0.1:7123"}}"#),
            Some("127.0.0.1:7123".parse().unwrap())
        );
        assert_eq!(parse_addr_file(r#"{"echo":{"udp":"127.0.0.1:7"}}"#), None);
        assert_eq!(parse_addr_file("{"), None);
    }

    #[test]
    fn median_odd_even_empty() {
        assert_eq!(median(&[3.0, -1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn budget_stops_at_zero() {
        let b = AtomicU64::new(2);
        assert!(take_one(&b));
        assert!(take_one(&b));
        assert!(!take_one(&b));
    }

    #[test]
    fn refuses_non_loopback() {
        let plan = LoadPlan {
            clients: 1,
            duration: Duration::from_millis(1),
            requests: Some(1),
            timeout: REQUEST_TIMEOUT,
        };
        let r = load("192.0.2.1:123".parse().unwrap(), &plan, &RequestIds::new(0));
        assert!(matches!(r, Err(NtpBenchError::NotLoopback { .. })));
    }

    fn run_of(server: &str, rps: f64, offset: Option<f64>) -> ServerRun {
        ServerRun {
            server: server.into(),
            addr: "127.0.0.1:1".into(),
            load: LoadResult {
                sent: 100,
                answered: 99,
                lost: 1,
                requests_per_s: rps,
                ..LoadResult::default()
            },
            cpu_user_s: 1.0,
            cpu_system_s: 1.0,
            offsets_us: offset.into_iter().collect(),
            offset_us: offset,
            offset_errors: Vec::new(),
        }
    }

    #[test]
    fn targets_met_and_missed() {
        let runs = [
            run_of("chronyd", 1000.0, Some(-4.0)),
            run_of("sockit", 1500.0, Some(70.0)),
        ];
        let t = targets(&runs);
        assert_eq!(t[0].met, Some(true));
        assert_eq!(t[1].met, Some(false), "{}", t[1].detail);
        assert!(t[1].detail.contains("+66.0"), "{}", t[1].detail);
    }

    #[test]
    fn target_without_offset_not_judged() {
        let runs = [
            run_of("chronyd", 1000.0, Some(1.0)),
            run_of("sockit", 900.0, None),
        ];
        let t = targets(&runs);
        assert_eq!(t[0].met, Some(false));
        assert_eq!(t[1].met, None);
    }

    #[test]
    fn table_has_rows_and_ratio() {
        let runs = [
            run_of("chronyd", 1000.0, Some(-4.0)),
            run_of("sockit", 2000.0, Some(5.0)),
        ];
        let md = markdown(16, Duration::from_secs(5), &runs, &targets(&runs), &[]);
        assert!(md.contains(
            "| server | requests/s | p50 µs | p99 µs | loss | CPU s | chrony offset µs |"
        ));
        assert!(
            md.contains("| chronyd | 1000 | 0.0 | 0.0 | 1 (1.000%) | 2.00 | 4.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| sockit/chronyd | 2.00× | – | – | 1.00× | 1.00× | +1.0 (difference) |"),
            "{md}"
        );
        assert!(md.contains("**met**"));
    }
}
