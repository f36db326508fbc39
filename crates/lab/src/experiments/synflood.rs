//! `sockit lab synflood`: a SYN flood between two namespaces, without and with SYN
//! cookies, and the SYN-ACK retransmission schedule.
//!
//! A SYN makes the listener create a *request socket* (state SYN_RECV, listed by
//! `ss -tn state syn-recv`) and answer SYN-ACK; the request waits for the client's ACK,
//! retransmitting the SYN-ACK after 1 s, 2 s, 4 s... up to `net.ipv4.tcp_synack_retries`
//! times. These half-open requests count against the listen backlog. Crafted SYNs from
//! addresses that never answer (here: raw packets with spoofed sources in the
//! namespace's own subnet) fill that queue. With `tcp_syncookies = 0` every further SYN
//! is dropped (TcpExtTCPReqQFullDrop, TcpExtListenDrops) — a legitimate client too,
//! which times out. With `tcp_syncookies = 1` the kernel answers a SYN to a full queue
//! with a SYN-ACK whose sequence number encodes the connection (TcpExtSyncookiesSent)
//! and keeps no state; the legitimate client's ACK returns the cookie, the kernel checks
//! it (TcpExtSyncookiesRecv) and the connection is accepted.
//!
//! The server gets static neighbour entries for the spoofed addresses (pointing at the
//! client's MAC, whose kernel drops packets not addressed to it) so that its SYN-ACKs
//! reach the wire and their retransmission times can be measured; a real flood's SYN-ACKs
//! wait for ARP answers that never come, and the queue fills all the same.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use etherparse::{PacketBuilder, TcpOptionElement};
use serde::Serialize;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::error::{LabError, Result};
use crate::experiments::netns::{counter_delta, set_int_option, NetnsPair, CLIENT_MAC, SERVER_IP};
use crate::experiments::packet_socket::{now_ns, PacketCapture};
use crate::experiments::packets::{decode, Frame, Kind};
use crate::experiments::proc_net::TcpState;
use crate::experiments::say;

/// The counters this experiment reports, under `nstat`'s names.
pub const COUNTERS: &[&str] = &[
    "TcpExtListenDrops",
    "TcpExtListenOverflows",
    "TcpExtTCPReqQFullDrop",
    "TcpExtTCPReqQFullDoCookies",
    "TcpExtSyncookiesSent",
    "TcpExtSyncookiesRecv",
    "TcpExtSyncookiesFailed",
];

/// First source port of the crafted SYNs (each SYN uses the next one).
const FLOOD_PORT: u16 = 20_000;
/// The listener's port without cookies; with cookies it is the next one.
const LISTEN_PORT: u16 = 8000;

/// Parameters of the SYN flood experiment.
#[derive(Debug, Clone)]
pub struct SynfloodConfig {
    /// The listener's listen(2) backlog, which also bounds its half-open requests.
    pub backlog: i32,
    /// Crafted SYNs per phase (at most 10 000).
    pub syns: usize,
    /// SYNs per second (at most 100 000).
    pub rate: u32,
    /// How many spoofed source addresses (198.18.0.100 on, at most 100).
    pub spoofed_hosts: u8,
    /// `net.ipv4.tcp_synack_retries` in the server's namespace (1 to 5).
    pub synack_retries: u8,
    /// `net.ipv4.tcp_max_syn_backlog` in the server's namespace.
    pub max_syn_backlog: u32,
    /// Also wait for the first half-open request to expire after its last retry.
    pub watch_expiry: bool,
}

impl Default for SynfloodConfig {
    fn default() -> Self {
        SynfloodConfig {
            backlog: 8,
            syns: 64,
            rate: 400,
            spoofed_hosts: 16,
            synack_retries: 2,
            max_syn_backlog: 256,
            watch_expiry: true,
        }
    }
}

impl SynfloodConfig {
    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(LabError::Invalid(m.into()));
        if !(1..=1024).contains(&self.backlog) {
            return bad("--backlog must be 1..=1024");
        }
        if !(1..=10_000).contains(&self.syns) {
            return bad("--syns must be 1..=10000");
        }
        if !(1..=100_000).contains(&self.rate) {
            return bad("--rate must be 1..=100000 SYNs per second");
        }
        if !(1..=100).contains(&self.spoofed_hosts) {
            return bad("--spoofed-hosts must be 1..=100");
        }
        if !(1..=5).contains(&self.synack_retries) {
            return bad("--synack-retries must be 1..=5");
        }
        Ok(())
    }

    /// The kernel's SYN-ACK retransmission intervals: 1 s, doubling (TCP_TIMEOUT_INIT).
    pub fn expected_intervals_ms(&self) -> Vec<u64> {
        (0..self.synack_retries).map(|k| 1000u64 << k).collect()
    }
}

/// How the legitimate client's connect went.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ConnectOutcome {
    /// connect(2) succeeded.
    pub connected: bool,
    /// Its error otherwise (with TCP_SYNCNT=1: a timeout after the SYN and one retry).
    pub error: Option<String>,
    /// How long connect took, ms.
    pub elapsed_ms: f64,
    /// The server accepted the connection and read the client's bytes.
    pub exchanged: bool,
}

/// One phase: a flood against a fresh listener with a given `tcp_syncookies`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FloodPhase {
    /// `net.ipv4.tcp_syncookies` during the phase.
    pub syncookies: u8,
    /// The listener's port.
    pub port: u16,
    /// Crafted SYNs sent.
    pub syns_sent: usize,
    /// Most half-open (SYN_RECV) requests seen at once on the listener.
    pub max_syn_recv: usize,
    /// Counter increases during the phase (see [`COUNTERS`]).
    pub counters: BTreeMap<String, u64>,
    /// The legitimate client's connect during the flood.
    pub legit: ConnectOutcome,
}

/// What the experiment observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SynfloodReport {
    /// The namespaces used (deleted by now).
    pub namespaces: Vec<String>,
    /// The listener's backlog.
    pub backlog: i32,
    /// `tcp_synack_retries` in force.
    pub synack_retries: u8,
    /// The phase with `tcp_syncookies = 0`.
    pub without_cookies: FloodPhase,
    /// The phase with `tcp_syncookies = 1`.
    pub with_cookies: FloodPhase,
    /// When the server sent SYN-ACKs to the first spoofed source, ms after the first.
    pub synack_times_ms: Vec<f64>,
    /// The gaps between them, ms.
    pub synack_intervals_ms: Vec<f64>,
    /// The gaps the kernel's schedule predicts, ms (1000, 2000, ...).
    pub expected_intervals_ms: Vec<u64>,
    /// How long the first half-open request lived, ms (with `watch_expiry`).
    pub half_open_lifetime_ms: Option<f64>,
}

fn spoofed(i: usize, hosts: u8) -> Ipv4Addr {
    let last = 100 + (i % usize::from(hosts)) as u8;
    Ipv4Addr::new(198, 18, 0, last)
}

fn flood_source(i: usize, hosts: u8) -> SocketAddrV4 {
    SocketAddrV4::new(spoofed(i, hosts), FLOOD_PORT + i as u16)
}

/// A SYN from `src` to `dst` as a raw IPv4 packet (the kernel fills in the IP checksum).
fn syn_packet(src: SocketAddrV4, dst: SocketAddrV4, seq: u32) -> Result<Vec<u8>> {
    let b = PacketBuilder::ipv4(src.ip().octets(), dst.ip().octets(), 64)
        .tcp(src.port(), dst.port(), seq, 64240)
        .syn()
        .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
        .map_err(|e| LabError::Invalid(format!("TCP options: {e}")))?;
    let mut v = Vec::with_capacity(b.size(0));
    b.write(&mut v, &[])
        .map_err(|e| LabError::Invalid(format!("building a SYN: {e}")))?;
    Ok(v)
}

/// Sends `cfg.syns` crafted SYNs from the client namespace, paced at `cfg.rate`.
fn flood(pair: &NetnsPair, cfg: &SynfloodConfig, dst: SocketAddrV4) -> Result<usize> {
    let raw = pair.client.run(|| {
        Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )
        .map_err(|e| LabError::io("raw socket", e))
    })?;
    let to = SockAddr::from(SocketAddrV4::new(*dst.ip(), 0));
    let gap = Duration::from_secs_f64(1.0 / f64::from(cfg.rate));
    let t0 = Instant::now();
    for i in 0..cfg.syns {
        let seq = (i as u32).wrapping_mul(0x9e37_79b9) ^ 0x5eed;
        let pkt = syn_packet(flood_source(i, cfg.spoofed_hosts), dst, seq)?;
        raw.send_to(&pkt, &to)
            .map_err(|e| LabError::io("sending a crafted SYN", e))?;
        // Pacing the flood at the configured rate.
        if let Some(wait) = (t0 + gap * (i as u32 + 1)).checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(cfg.syns)
}

fn syn_recv_count(pair: &NetnsPair, port: u16) -> Result<usize> {
    Ok(pair
        .server
        .tcp_table()?
        .iter()
        .filter(|e| e.local.port() == port && e.state == TcpState::SynRecv)
        .count())
}

/// Connects from the client namespace with TCP_SYNCNT=1 (one SYN retry, so a dropped
/// SYN gives up after 1 s + 2 s), sends a line and lets the server accept it.
fn legit_connect(pair: &NetnsPair, listener: &Socket, port: u16) -> Result<ConnectOutcome> {
    let s = pair.client.tcp_socket()?;
    set_int_option(&s, libc::IPPROTO_TCP, libc::TCP_SYNCNT, 1)
        .map_err(|e| LabError::io("TCP_SYNCNT", e))?;
    let t0 = Instant::now();
    let r = s.connect(&SocketAddr::from(SocketAddrV4::new(SERVER_IP, port)).into());
    let mut out = ConnectOutcome {
        connected: r.is_ok(),
        error: r.as_ref().err().map(|e| e.to_string()),
        elapsed_ms: t0.elapsed().as_secs_f64() * 1e3,
        exchanged: false,
    };
    if out.connected {
        let mut client: TcpStream = s.into();
        let _ = client.write_all(b"hello\n");
        listener
            .set_nonblocking(true)
            .map_err(|e| LabError::io("nonblocking", e))?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(3) {
            match listener.accept() {
                Ok((conn, _)) => {
                    let mut conn: TcpStream = conn.into();
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(3)));
                    let mut buf = [0u8; 6];
                    out.exchanged = conn.read_exact(&mut buf).is_ok() && &buf == b"hello\n";
                    break;
                }
                // Polling accept on the cookie-born connection (bounded above).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(e) => return Err(LabError::io("accept", e)),
            }
        }
    }
    Ok(out)
}

/// Watches the listener until every crafted SYN is accounted for (a request in the
/// queue, a cookie, or a drop), printing the queue and counters as they change.
fn watch_queue(
    pair: &NetnsPair,
    phase: &mut FloodPhase,
    before: &BTreeMap<String, u64>,
    cfg: &SynfloodConfig,
    t0: Instant,
    out: &mut dyn Write,
) -> Result<()> {
    let backlog = cfg.backlog;
    let mut last_n = None;
    let start = Instant::now();
    let guard =
        Duration::from_secs(5) + Duration::from_secs_f64(cfg.syns as f64 / f64::from(cfg.rate));
    loop {
        let n = syn_recv_count(pair, phase.port)?;
        let now = pair.server.nstat()?;
        phase.counters = counter_delta(before, &now, COUNTERS);
        phase.max_syn_recv = phase.max_syn_recv.max(n);
        let c = |k: &str| phase.counters.get(k).copied().unwrap_or(0);
        let accounted = n as u64 + c("TcpExtListenDrops") + c("TcpExtSyncookiesSent");
        let done = accounted >= cfg.syns as u64 || start.elapsed() > guard;
        // One line per change of the queue, and the final counts.
        if last_n != Some(n) || done {
            say(
                out,
                format!(
                    "OBSERVES t={:>5}ms  SYN_RECV={n} (backlog {backlog})  ListenDrops +{}  TCPReqQFullDrop +{}  TCPReqQFullDoCookies +{}  SyncookiesSent +{}",
                    t0.elapsed().as_millis(),
                    c("TcpExtListenDrops"),
                    c("TcpExtTCPReqQFullDrop"),
                    c("TcpExtTCPReqQFullDoCookies"),
                    c("TcpExtSyncookiesSent"),
                ),
            );
            last_n = Some(n);
        }
        if done {
            return Ok(());
        }
        // Sampling the server's socket table while the SYNs are processed (bounded).
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SYN-ACKs the server sent to `to`, by capture time (ns).
fn synacks_to(frames: &[Frame], to: SocketAddrV4) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f.outgoing)
        .filter_map(|f| match decode(&f.data).ok()?.kind {
            Kind::Tcp(t) if t.flags.is_syn_ack() && t.dst == SocketAddr::V4(to) => Some(f.ts_ns),
            _ => None,
        })
        .collect()
}

/// Floods the listener on `port` from a second thread while [`watch_queue`] narrates.
fn flood_and_watch(
    pair: &NetnsPair,
    cfg: &SynfloodConfig,
    phase: &mut FloodPhase,
    t0: Instant,
    out: &mut dyn Write,
) -> Result<()> {
    let before = pair.server.nstat()?;
    let dst = SocketAddrV4::new(SERVER_IP, phase.port);
    let (sent, watched) = std::thread::scope(|s| {
        let f = s.spawn(|| flood(pair, cfg, dst));
        let watched = watch_queue(pair, phase, &before, cfg, t0, out);
        let sent = f
            .join()
            .unwrap_or_else(|_| Err(LabError::Invalid("the flood thread panicked".into())));
        (sent, watched)
    });
    phase.syns_sent = sent?;
    watched
}

/// Runs the experiment, narrating on `out`.
///
/// # Errors
/// When not root, the namespaces cannot be set up, or a socket operation fails.
pub fn run(cfg: &SynfloodConfig, out: &mut dyn Write) -> Result<SynfloodReport> {
    cfg.check()?;
    let pair = NetnsPair::create("synflood")?;
    let t0 = Instant::now();
    let mut report = SynfloodReport {
        namespaces: pair.names().iter().map(|s| s.to_string()).collect(),
        backlog: cfg.backlog,
        synack_retries: cfg.synack_retries,
        expected_intervals_ms: cfg.expected_intervals_ms(),
        ..Default::default()
    };
    say(
        out,
        format!(
            "DOES: namespaces {} (server {SERVER_IP}) and {} (client 198.18.0.2), joined by a veth pair.",
            pair.server.name(),
            pair.client.name()
        ),
    );
    pair.server
        .set_sysctl("net.ipv4.tcp_synack_retries", cfg.synack_retries)?;
    pair.server
        .set_sysctl("net.ipv4.tcp_max_syn_backlog", cfg.max_syn_backlog)?;
    for i in 0..usize::from(cfg.spoofed_hosts) {
        pair.server.ip(&[
            "neigh",
            "replace",
            &spoofed(i, cfg.spoofed_hosts).to_string(),
            "lladdr",
            &CLIENT_MAC.to_string(),
            "dev",
            &pair.server_if,
            "nud",
            "permanent",
        ])?;
    }
    say(
        out,
        format!(
            "DOES: in the server's namespace tcp_synack_retries={} tcp_max_syn_backlog={}; static neighbours for the {} spoofed hosts {}..{}.",
            cfg.synack_retries,
            cfg.max_syn_backlog,
            cfg.spoofed_hosts,
            spoofed(0, cfg.spoofed_hosts),
            spoofed(usize::from(cfg.spoofed_hosts) - 1, cfg.spoofed_hosts),
        ),
    );
    let capture = PacketCapture::start(&pair.server, &pair.server_if)?;

    // Phase 1: no cookies.
    pair.server.set_sysctl("net.ipv4.tcp_syncookies", 0)?;
    let port = LISTEN_PORT;
    let listener = pair
        .server
        .tcp_listener(SocketAddrV4::new(SERVER_IP, port), cfg.backlog)?;
    say(
        out,
        format!(
            "DOES: tcp_syncookies=0; listen({}) on {SERVER_IP}:{port} (never accepts); {} crafted SYNs at {}/s from the client namespace.",
            cfg.backlog, cfg.syns, cfg.rate
        ),
    );
    let before = pair.server.nstat()?;
    let mut off = FloodPhase {
        syncookies: 0,
        port,
        ..Default::default()
    };
    flood_and_watch(&pair, cfg, &mut off, t0, out)?;
    say(out, "DOES: a legitimate client connects (TCP_SYNCNT=1: gives up after the SYN and one retry, 3 s) while the SYN-ACK retransmissions are timed.");
    let first = flood_source(0, cfg.spoofed_hosts);
    let wanted = usize::from(cfg.synack_retries) + 1;
    let schedule: u64 = (0..=cfg.synack_retries).map(|k| 1u64 << k).sum();
    let (legit, synacks) = std::thread::scope(|s| {
        let l = s.spawn(|| legit_connect(&pair, &listener, port));
        let guard = Duration::from_secs(schedule + 5);
        capture.wait_for(guard, |f| synacks_to(f, first).len() >= wanted);
        let times = synacks_to(&capture.frames(), first);
        let legit = l
            .join()
            .unwrap_or_else(|_| Err(LabError::Invalid("the connect thread panicked".into())));
        (legit, times)
    });
    off.legit = legit?;
    let t_first = synacks.first().copied().unwrap_or(0);
    report.synack_times_ms = synacks
        .iter()
        .map(|t| t.saturating_sub(t_first) as f64 / 1e6)
        .collect();
    report.synack_intervals_ms = synacks
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]) as f64 / 1e6)
        .collect();
    say(
        out,
        format!(
            "OBSERVES SYN-ACKs to {first} at {} ms: intervals {} ms; the schedule is {} ms.",
            fmt_list(&report.synack_times_ms),
            fmt_list(&report.synack_intervals_ms),
            report
                .expected_intervals_ms
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    say(
        out,
        match &off.legit.error {
            None => format!("OBSERVES legitimate connect succeeded after {:.0} ms.", off.legit.elapsed_ms),
            Some(e) => format!(
                "OBSERVES legitimate connect FAILED after {:.0} ms: {e} (its SYNs were dropped: the queue is full).",
                off.legit.elapsed_ms
            ),
        },
    );
    if cfg.watch_expiry {
        let limit = Duration::from_secs(2 * schedule + 5);
        let start = Instant::now();
        let gone = loop {
            let alive = pair.server.tcp_table()?.iter().any(|e| {
                e.state == TcpState::SynRecv && e.remote == first && e.local.port() == port
            });
            if !alive {
                break true;
            }
            if start.elapsed() > limit {
                break false;
            }
            // Polling for the request's expiry (bounded by `limit`).
            std::thread::sleep(Duration::from_millis(20));
        };
        if gone {
            let first_ns = synacks.first().copied().unwrap_or(0);
            let now_ns = now_ns();
            let life = now_ns.saturating_sub(first_ns) as f64 / 1e6;
            report.half_open_lifetime_ms = Some(life);
            let seen = synacks_to(&capture.frames(), first).len();
            say(
                out,
                format!(
                    "OBSERVES the half-open request from {first} expired {life:.0} ms after its first SYN-ACK, after {seen} SYN-ACKs (1 + tcp_synack_retries = {wanted}); SYN_RECV now {}.",
                    syn_recv_count(&pair, port)?
                ),
            );
        }
    }
    off.counters = counter_delta(&before, &pair.server.nstat()?, COUNTERS);
    drop(listener);
    report.without_cookies = off;

    // Phase 2: cookies.
    pair.server.set_sysctl("net.ipv4.tcp_syncookies", 1)?;
    let port = LISTEN_PORT + 1;
    let listener = pair
        .server
        .tcp_listener(SocketAddrV4::new(SERVER_IP, port), cfg.backlog)?;
    say(
        out,
        format!(
            "DOES: tcp_syncookies=1; a fresh listen({}) on {SERVER_IP}:{port}; the same flood, then the legitimate connect.",
            cfg.backlog
        ),
    );
    let before = pair.server.nstat()?;
    let mut on = FloodPhase {
        syncookies: 1,
        port,
        ..Default::default()
    };
    flood_and_watch(&pair, cfg, &mut on, t0, out)?;
    on.legit = legit_connect(&pair, &listener, port)?;
    on.counters = counter_delta(&before, &pair.server.nstat()?, COUNTERS);
    let c = |k: &str| on.counters.get(k).copied().unwrap_or(0);
    say(
        out,
        format!(
            "OBSERVES legitimate connect {} after {:.1} ms{}; SyncookiesSent +{} SyncookiesRecv +{} SyncookiesFailed +{}.",
            if on.legit.connected { "succeeded" } else { "FAILED" },
            on.legit.elapsed_ms,
            if on.legit.exchanged { ", accepted, bytes read" } else { "" },
            c("TcpExtSyncookiesSent"),
            c("TcpExtSyncookiesRecv"),
            c("TcpExtSyncookiesFailed"),
        ),
    );
    report.with_cookies = on;
    drop(listener);
    drop(capture);
    say(
        out,
        format!(
            "EXPLAINS: each SYN left a half-open request (SYN_RECV) that waits for an ACK, \
             retransmitting its SYN-ACK after 1 s, 2 s, 4 s... (tcp_synack_retries={}, then it \
             is dropped). Spoofed SYNs never ACK, so {} of them filled the queue of listen({}). \
             Without cookies every later SYN was dropped (TcpExtTCPReqQFullDrop, \
             TcpExtListenDrops) — the legitimate client's too, so its connect timed out: a \
             flood denies service without any bandwidth. With tcp_syncookies=1 the kernel \
             answers a full queue with a SYN-ACK whose sequence number encodes the connection \
             and forgets it (TcpExtSyncookiesSent); the client's ACK brings the cookie back, \
             the kernel verifies it (TcpExtSyncookiesRecv) and the connection is accepted. \
             Cookies cost TCP options the SYN asked for (window scaling, SACK survive only with \
             timestamps), which is why they are a fallback, not the default path. On a real \
             server, `nstat -az TcpExtTCPReqQFullDrop TcpExtSyncookiesSent` and the kernel's \
             \"Possible SYN flooding on port\" message tell the same story.",
            cfg.synack_retries, report.without_cookies.max_syn_recv, cfg.backlog
        ),
    );
    Ok(report)
}

fn fmt_list(v: &[f64]) -> String {
    v.iter()
        .map(|x| format!("{x:.0}"))
        .collect::<Vec<_>>()
        .join(", ")
}
