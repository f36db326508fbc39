//! `sockit lab overflow`: a full accept queue with `net.ipv4.tcp_abort_on_overflow` 0 and
//! 1 — what the clients see and what the server counts.
//!
//! A connection leaves the SYN queue for the accept queue when the client's final ACK of
//! the handshake arrives. If the accept queue is full at that moment (the application
//! does not call accept(2) fast enough), the kernel either drops the ACK
//! (`tcp_abort_on_overflow = 0`, the default: the request stays, the SYN-ACK is
//! retransmitted and the handshake completes once there is room) or answers with a reset
//! (`= 1`). Both count TcpExtListenOverflows and TcpExtListenDrops; the reset also counts
//! TcpExtEmbryonicRsts and TcpOutRsts.
//!
//! The client's side has finished its handshake either way, so connect(2) has succeeded:
//! with 0 the client sees silence (its request is not answered — a timeout), with 1 it
//! sees ECONNRESET.
//!
//! A SYN that finds the accept queue already full is dropped before any of this, so the
//! queue must fill *between* a client's SYN and its ACK. With listen backlog B (both
//! queues admit B + 1): B early clients connect and wait in the accept queue; then B + 1
//! late clients connect with TCP_DEFER_ACCEPT, which makes Linux hold a connecting
//! socket's final ACK for up to 200 ms (as a distant client's ACK would take). Their SYNs
//! all find room; of their ACKs, one fills the accept queue and B overflow it. SYN
//! cookies are off in the server's namespace so that every handshake has a request the
//! kernel can keep (a cookie handshake has no state to keep when its ACK overflows).

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use serde::Serialize;
use socket2::Socket;

use crate::error::{LabError, Result};
use crate::experiments::netns::{counter_delta, set_int_option, NetnsPair, SERVER_IP};
use crate::experiments::packet_socket::PacketCapture;
use crate::experiments::packets::{decode, Frame, Kind, TcpFlags};
use crate::experiments::proc_net::TcpState;
use crate::experiments::say;

/// The counters this experiment reports, under `nstat`'s names.
pub const COUNTERS: &[&str] = &[
    "TcpExtListenOverflows",
    "TcpExtListenDrops",
    "TcpExtEmbryonicRsts",
    "TcpOutRsts",
    "TcpRetransSegs",
];

/// The first phase's port; the second uses the next one.
const PORT: u16 = 9000;

/// Parameters of the overflow experiment.
#[derive(Debug, Clone)]
pub struct OverflowConfig {
    /// The listener's backlog B (1 to 16): B early and B + 1 late clients connect, B of
    /// the late ones overflow the accept queue.
    pub backlog: i32,
    /// How long each client waits for the server after connecting, before it counts as
    /// a timeout.
    pub read_wait: Duration,
}

impl Default for OverflowConfig {
    fn default() -> Self {
        OverflowConfig {
            backlog: 2,
            read_wait: Duration::from_millis(500),
        }
    }
}

impl OverflowConfig {
    /// Clients in all: B early and B + 1 late.
    pub fn clients(&self) -> usize {
        2 * self.backlog.max(0) as usize + 1
    }

    /// Late clients whose ACK finds the accept queue full: B.
    pub fn overflowing(&self) -> usize {
        self.backlog.max(0) as usize
    }
}

/// What one client saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientSees {
    /// connect succeeded, then a reset (ECONNRESET).
    Reset,
    /// connect succeeded, then nothing within `read_wait`.
    Timeout,
    /// The server's greeting arrived.
    Data,
    /// connect itself failed.
    Refused,
}

/// One phase: `tcp_abort_on_overflow` = 0 or 1.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OverflowPhase {
    /// The sysctl's value.
    pub abort_on_overflow: u8,
    /// The listener's port.
    pub port: u16,
    /// What each client saw before the server accepted anything.
    pub clients: Vec<Option<ClientSees>>,
    /// Longest accept queue seen (Recv-Q of the listener).
    pub accept_queue: u32,
    /// Requests waiting in SYN_RECV after their ACK was dropped.
    pub syn_recv: usize,
    /// Client sockets in ESTABLISHED while the server had not accepted them.
    pub clients_established: usize,
    /// Resets from the server seen on the client's interface.
    pub rst_on_wire: usize,
    /// SYN-ACKs the server sent more than once (retransmissions).
    pub synack_retransmits: usize,
    /// Clients that had timed out and got the server's greeting once it accepted.
    pub recovered: usize,
    /// Counter increases during the phase (see [`COUNTERS`]).
    pub counters: BTreeMap<String, u64>,
}

/// What the experiment observed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct OverflowReport {
    /// The namespaces used (deleted by now).
    pub namespaces: Vec<String>,
    /// The listener's backlog.
    pub backlog: i32,
    /// `tcp_abort_on_overflow = 0`.
    pub keep: OverflowPhase,
    /// `tcp_abort_on_overflow = 1`.
    pub abort: OverflowPhase,
}

/// Classifies a connected client socket without blocking: `None` while nothing happened.
fn sees(s: &Socket) -> Option<ClientSees> {
    if let Ok(Some(e)) = s.take_error() {
        return Some(if e.kind() == ErrorKind::ConnectionReset {
            ClientSees::Reset
        } else {
            ClientSees::Refused
        });
    }
    let mut buf = [0u8; 16];
    match (&*s).read(&mut buf) {
        Ok(n) if n > 0 => Some(ClientSees::Data),
        Ok(_) => Some(ClientSees::Reset),
        Err(e) if e.kind() == ErrorKind::WouldBlock => None,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Some(ClientSees::Reset),
        Err(_) => Some(ClientSees::Refused),
    }
}

/// Waits up to `window` for each client to see something; the rest time out.
fn classify(clients: &[Socket], window: Duration) -> Vec<Option<ClientSees>> {
    let mut seen: Vec<Option<ClientSees>> = vec![None; clients.len()];
    let deadline = Instant::now() + window;
    loop {
        for (i, c) in clients.iter().enumerate() {
            if seen[i].is_none() {
                seen[i] = sees(c);
            }
        }
        let pending: Vec<usize> = (0..clients.len()).filter(|&i| seen[i].is_none()).collect();
        let left = deadline.saturating_duration_since(Instant::now());
        if pending.is_empty() || left.is_zero() {
            break;
        }
        let mut fds: Vec<libc::pollfd> = pending
            .iter()
            .map(|&i| libc::pollfd {
                fd: clients[i].as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: `fds` is a live array of the length passed.
        unsafe {
            libc::poll(
                fds.as_mut_ptr(),
                fds.len() as libc::nfds_t,
                left.as_millis().max(1) as i32,
            );
        }
    }
    seen.into_iter()
        .map(|s| Some(s.unwrap_or(ClientSees::Timeout)))
        .collect()
}

fn from_server(frames: &[Frame], port: u16, flag: fn(TcpFlags) -> bool) -> Vec<SocketAddr> {
    frames
        .iter()
        .filter(|f| !f.outgoing)
        .filter_map(|f| match decode(&f.data).ok()?.kind {
            Kind::Tcp(t) if t.src.port() == port && flag(t.flags) => Some(t.dst),
            _ => None,
        })
        .collect()
}

fn run_phase(
    pair: &NetnsPair,
    cfg: &OverflowConfig,
    capture: &PacketCapture,
    abort: u8,
    out: &mut dyn Write,
) -> Result<OverflowPhase> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let port = PORT + u16::from(abort);
    pair.server
        .set_sysctl("net.ipv4.tcp_abort_on_overflow", abort)?;
    let listener = pair
        .server
        .tcp_listener(SocketAddrV4::new(SERVER_IP, port), cfg.backlog)?;
    let mut phase = OverflowPhase {
        abort_on_overflow: abort,
        port,
        ..Default::default()
    };
    let b = cfg.backlog.max(0) as usize;
    say(
        out,
        format!(
            "DOES: tcp_abort_on_overflow={abort}; listen({b}) on {SERVER_IP}:{port}, no accept(); {b} early clients connect, then {} late ones at once (TCP_DEFER_ACCEPT holds their final ACKs up to 200 ms).",
            b + 1
        ),
    );
    let before = pair.server.nstat()?;
    let dst: SocketAddr = SocketAddrV4::new(SERVER_IP, port).into();
    let accept_queue = || -> Result<u32> {
        Ok(pair
            .server
            .tcp_table()?
            .iter()
            .find(|e| e.local.port() == port && e.state == TcpState::Listen)
            .map_or(0, |e| e.rx_queue))
    };
    let mut clients = Vec::new();
    for _ in 0..b {
        let c = pair.client.tcp_socket()?;
        c.connect(&dst.into()).map_err(io("early connect"))?;
        c.set_nonblocking(true).map_err(io("nonblocking"))?;
        clients.push(c);
    }
    let start = Instant::now();
    while (accept_queue()? as usize) < b && start.elapsed() < Duration::from_secs(3) {
        // Polling until the early connections are queued (bounded).
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut late = Vec::new();
    for _ in 0..=b {
        let c = pair.client.tcp_socket()?;
        set_int_option(&c, libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT, 1)
            .map_err(io("TCP_DEFER_ACCEPT"))?;
        c.set_nonblocking(true).map_err(io("nonblocking"))?;
        late.push(c);
    }
    // All SYNs go out well within the 200 ms the final ACKs are held.
    for c in &late {
        // EINPROGRESS is the expected answer of a non-blocking connect.
        let _ = c.connect(&dst.into());
    }
    clients.extend(late);
    let admitted = b + 1;
    let start = Instant::now();
    loop {
        let q = accept_queue()?;
        phase.accept_queue = phase.accept_queue.max(q);
        let over = counter_delta(&before, &pair.server.nstat()?, COUNTERS)["TcpExtListenOverflows"];
        if (over >= cfg.overflowing() as u64 && q as usize >= admitted)
            || start.elapsed() > Duration::from_secs(3)
        {
            break;
        }
        // Polling the server's counters until the held ACKs have arrived (bounded).
        std::thread::sleep(Duration::from_millis(10));
    }
    phase.clients = classify(&clients, cfg.read_wait);
    phase.syn_recv = pair
        .server
        .tcp_table()?
        .iter()
        .filter(|e| e.local.port() == port && e.state == TcpState::SynRecv)
        .count();
    phase.clients_established = pair
        .client
        .tcp_table()?
        .iter()
        .filter(|e| e.remote.port() == port && e.state == TcpState::Established)
        .count();
    let count = |s: ClientSees| phase.clients.iter().filter(|c| **c == Some(s)).count();
    say(
        out,
        format!(
            "OBSERVES accept queue {}/{admitted}; server SYN_RECV={}{}; client sockets ESTABLISHED={}; clients see: {} reset, {} timeout ({} ms of silence; the {admitted} in the accept queue wait for accept() either way).",
            phase.accept_queue,
            phase.syn_recv,
            if abort == 0 { " (their ACK dropped, request kept)" } else { " (requests reset)" },
            phase.clients_established,
            count(ClientSees::Reset),
            count(ClientSees::Timeout),
            cfg.read_wait.as_millis()
        ),
    );
    if abort == 0 {
        say(
            out,
            "DOES: the server now accepts every connection and greets it.",
        );
        listener.set_nonblocking(true).map_err(io("nonblocking"))?;
        let mut accepted = Vec::new();
        let start = Instant::now();
        while accepted.len() < cfg.clients() && start.elapsed() < Duration::from_secs(8) {
            match listener.accept() {
                Ok((c, _)) => {
                    let _ = (&c).write_all(b"hi\n");
                    accepted.push(c);
                }
                // Polling accept until the SYN-ACK retransmissions complete (bounded).
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(e) => return Err(LabError::io("accept", e)),
            }
        }
        let later = classify(&clients, Duration::from_secs(3));
        phase.recovered = phase
            .clients
            .iter()
            .zip(&later)
            .filter(|(a, b)| **a == Some(ClientSees::Timeout) && **b == Some(ClientSees::Data))
            .count();
        say(
            out,
            format!(
                "OBSERVES accepted {} of {} after {} ms; {} of the clients that had timed out got the greeting (the server's SYN-ACK retransmission fetched a new ACK once there was room).",
                accepted.len(),
                cfg.clients(),
                start.elapsed().as_millis(),
                phase.recovered
            ),
        );
    }
    phase.counters = counter_delta(&before, &pair.server.nstat()?, COUNTERS);
    let frames = capture.frames();
    phase.rst_on_wire = from_server(&frames, port, |f| f.has(TcpFlags::RST)).len();
    let synacks = from_server(&frames, port, TcpFlags::is_syn_ack);
    let mut distinct = synacks.clone();
    distinct.sort_unstable();
    distinct.dedup();
    phase.synack_retransmits = synacks.len() - distinct.len();
    let c = |k: &str| phase.counters.get(k).copied().unwrap_or(0);
    say(
        out,
        format!(
            "OBSERVES on the wire: {} RST, {} retransmitted SYN-ACK; server counts ListenOverflows +{} ListenDrops +{} EmbryonicRsts +{} OutRsts +{}.",
            phase.rst_on_wire,
            phase.synack_retransmits,
            c("TcpExtListenOverflows"),
            c("TcpExtListenDrops"),
            c("TcpExtEmbryonicRsts"),
            c("TcpOutRsts"),
        ),
    );
    Ok(phase)
}

/// Runs the experiment, narrating on `out`.
///
/// # Errors
/// When not root, the namespaces cannot be set up, or a socket operation fails.
pub fn run(cfg: &OverflowConfig, out: &mut dyn Write) -> Result<OverflowReport> {
    if !(1..=16).contains(&cfg.backlog) {
        return Err(LabError::Invalid("--backlog must be 1..=16".into()));
    }
    let pair = NetnsPair::create("overflow")?;
    pair.server.set_sysctl("net.ipv4.tcp_syncookies", 0)?;
    say(
        out,
        format!(
            "DOES: namespaces {} (server {SERVER_IP}) and {} (client 198.18.0.2), joined by a veth pair; tcp_syncookies=0 in the server's; capturing on the client's side.",
            pair.server.name(),
            pair.client.name()
        ),
    );
    let capture = PacketCapture::start(&pair.client, &pair.client_if)?;
    let keep = run_phase(&pair, cfg, &capture, 0, out)?;
    let abort = run_phase(&pair, cfg, &capture, 1, out)?;
    drop(capture);
    say(
        out,
        "EXPLAINS: the handshake completes in the kernel; a connection waits in the accept \
         queue (backlog + 1 on Linux) until accept(2). An ACK that finds the queue full is \
         dropped by default (tcp_abort_on_overflow=0): the client believes it is connected \
         and hears nothing, the server keeps the request in SYN_RECV and retransmits its \
         SYN-ACK (1 s, 2 s, ...); the client's answering ACK completes the connection as soon \
         as accept() makes room — a burst is absorbed, at the price of a stall. With \
         tcp_abort_on_overflow=1 the server answers that ACK with RST: the client fails fast \
         (ECONNRESET) instead of stalling, and the server counts TcpExtEmbryonicRsts. Both \
         count TcpExtListenOverflows; `nstat -az TcpExtListenOverflows` and `ss -lnt` \
         (Recv-Q at Send-Q+1) show a server that accepts too slowly. Keep 0 unless clients \
         can retry elsewhere, and fix the slow accept loop or raise the backlog instead.",
    );
    Ok(OverflowReport {
        namespaces: pair.names().iter().map(|s| s.to_string()).collect(),
        backlog: cfg.backlog,
        keep,
        abort,
    })
}
