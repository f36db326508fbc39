//! `sockit lab backlog`: a listener that never calls accept, and N clients connecting.
//!
//! The kernel completes the three-way handshake on its own and parks finished
//! connections in the listener's *accept queue* until the application accepts them. Its
//! length is what `ss -lnt` shows as Recv-Q; its limit (Send-Q) is the listen backlog,
//! capped by `net.core.somaxconn`. Linux lets the queue reach backlog + 1; after that a
//! new SYN is dropped and counted in TcpExt ListenOverflows and ListenDrops
//! (/proc/net/netstat), and the client sits in SYN_SENT, retransmitting its SYN after
//! 1 s, 3 s, 7 s... — the "connect takes exactly one second" symptom of a full backlog.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use crate::error::{LabError, Result};
use crate::experiments::proc_net::{somaxconn, tcp_ext_counters, tcp_table, TcpState};
use crate::experiments::say;

/// Parameters of the backlog experiment.
#[derive(Debug, Clone)]
pub struct BacklogConfig {
    /// The listen(2) backlog.
    pub backlog: i32,
    /// How many clients connect.
    pub clients: usize,
    /// How long to watch at most.
    pub watch: Duration,
}

impl Default for BacklogConfig {
    fn default() -> Self {
        BacklogConfig {
            backlog: 4,
            clients: 12,
            watch: Duration::from_secs(3),
        }
    }
}

/// What the experiment observed.
#[derive(Debug, Clone, Default)]
pub struct BacklogReport {
    /// The listener's port.
    pub port: u16,
    /// Send-Q as `ss` shows it for a listener: min(backlog, somaxconn).
    pub send_q: u32,
    /// Largest accept-queue length (Recv-Q) seen.
    pub max_recv_q: u32,
    /// Client sockets seen ESTABLISHED (handshake done, waiting in the queue).
    pub clients_established: usize,
    /// Client sockets seen in SYN_SENT (their SYN was dropped).
    pub clients_syn_sent: usize,
    /// Increase of TcpExt ListenOverflows during the run (namespace-wide counter).
    pub overflows: u64,
    /// Increase of TcpExt ListenDrops during the run.
    pub drops: u64,
}

/// Runs the experiment, narrating on `out`.
///
/// # Errors
/// When sockets cannot be created or /proc cannot be read.
pub fn run(cfg: &BacklogConfig, out: &mut dyn Write) -> Result<BacklogReport> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let listener = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io("socket"))?;
    let any: SocketAddr = "127.0.0.1:0".parse().expect("literal");
    listener.bind(&any.into()).map_err(io("bind"))?;
    listener.listen(cfg.backlog).map_err(io("listen"))?;
    let addr = listener
        .local_addr()
        .map_err(io("local_addr"))?
        .as_socket()
        .expect("inet");
    let port = addr.port();
    let send_q = (cfg.backlog.max(0) as u32).min(somaxconn().unwrap_or(4096));
    say(
        out,
        format!(
            "DOES: listen({}) on {addr} and never accept(); {} clients connect (non-blocking).",
            cfg.backlog, cfg.clients
        ),
    );
    let before = tcp_ext_counters()?;
    let mut clients = Vec::new();
    for _ in 0..cfg.clients {
        let c = Socket::new(Domain::IPV4, Type::STREAM, None).map_err(io("socket"))?;
        c.set_nonblocking(true).map_err(io("nonblocking"))?;
        // EINPROGRESS is the expected answer of a non-blocking connect.
        let _ = c.connect(&addr.into());
        clients.push(c);
    }
    let mut report = BacklogReport {
        port,
        send_q,
        ..BacklogReport::default()
    };
    let t0 = Instant::now();
    let mut last = String::new();
    loop {
        let table = tcp_table()?;
        let recv_q = table
            .iter()
            .find(|e| e.local.port() == port && e.state == TcpState::Listen)
            .map_or(0, |e| e.rx_queue);
        let to_us: Vec<_> = table.iter().filter(|e| e.remote.port() == port).collect();
        let est = to_us
            .iter()
            .filter(|e| e.state == TcpState::Established)
            .count();
        let syn = to_us
            .iter()
            .filter(|e| e.state == TcpState::SynSent)
            .count();
        let now = tcp_ext_counters()?;
        let delta = |k: &str| {
            now.get(k)
                .unwrap_or(&0)
                .saturating_sub(*before.get(k).unwrap_or(&0))
        };
        report.max_recv_q = report.max_recv_q.max(recv_q);
        report.clients_established = report.clients_established.max(est);
        report.clients_syn_sent = report.clients_syn_sent.max(syn);
        report.overflows = delta("ListenOverflows");
        report.drops = delta("ListenDrops");
        let line = format!(
            "OBSERVES t={:>4}ms  listener Recv-Q={recv_q} Send-Q={send_q}  clients ESTABLISHED={est} SYN_SENT={syn}  ListenOverflows +{} ListenDrops +{}",
            t0.elapsed().as_millis(),
            report.overflows,
            report.drops
        );
        let shown = line
            .split_once("listener")
            .map(|x| x.1.to_string())
            .unwrap_or_default();
        if shown != last {
            say(out, &line);
            last = shown;
        }
        let full = recv_q as i64 > i64::from(cfg.backlog.max(0));
        let settled = full && report.overflows > 0 && est + syn >= cfg.clients;
        if settled || t0.elapsed() >= cfg.watch {
            break;
        }
        // Sampling the kernel's tables while the handshakes happen (bounded by `watch`).
        std::thread::sleep(Duration::from_millis(10));
    }
    say(
        out,
        format!(
            "EXPLAINS: the kernel finished {} handshakes by itself and queued them for accept() \
         (Recv-Q, limit Send-Q={send_q}; Linux admits backlog+1). Further SYNs were dropped \
         (ListenOverflows/ListenDrops grew; these counters are namespace-wide), so those \
         clients wait in SYN_SENT and retry after 1 s, 3 s, 7 s. A server that accepts too \
         slowly, or a backlog that is too small, looks like random 1-second connect delays.",
            report.max_recv_q
        ),
    );
    drop(clients);
    Ok(report)
}
