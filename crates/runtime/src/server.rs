//! The server runtime shared by every TCP (and the simple UDP) service: listeners,
//! connection limits (total and per IP), timeouts, logging and graceful shutdown.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

pub use crate::udp::{serve_udp, UdpService};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::guarded::{GuardedStream, RequestClock, StreamTimeouts};

/// Per-service limits (every one has a CLI flag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most connections open at once.
    pub max_conns: usize,
    /// Most connections open at once from one IP address.
    pub max_conns_per_ip: usize,
    /// Idle timeout while the server waits for the client.
    pub idle_timeout: Duration,
    /// Time a new connection has for its first byte (and the framed handshake).
    pub handshake_timeout: Duration,
    /// Time a write may stall.
    pub write_timeout: Duration,
    /// Listen backlog.
    pub backlog: u32,
    /// How long shutdown waits for open connections before closing them.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_conns: 4096,
            max_conns_per_ip: 256,
            idle_timeout: Duration::from_secs(300),
            handshake_timeout: Duration::from_secs(10),
            write_timeout: Duration::from_secs(30),
            backlog: 1024,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

impl Limits {
    /// The stream timeouts derived from these limits.
    pub fn stream_timeouts(&self) -> StreamTimeouts {
        StreamTimeouts {
            first_byte: self.handshake_timeout,
            idle: self.idle_timeout,
            write: self.write_timeout,
        }
    }
}

/// Binds a TCP listener with SO_REUSEADDR and the given backlog.
///
/// # Errors
/// The address cannot be bound (in use, not local, permission).
pub fn bind_tcp(addr: SocketAddr, backlog: u32) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
    TcpListener::from_std(socket.into())
}

/// Binds a UDP socket with SO_REUSEADDR.
///
/// # Errors
/// The address cannot be bound.
pub fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Why the runtime refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The service is at its total connection limit.
    ServerFull {
        /// The limit.
        limit: usize,
    },
    /// The client's IP is at its connection limit.
    TooManyFromIp {
        /// The client's IP.
        ip: IpAddr,
        /// The limit.
        limit: usize,
    },
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ServerFull { limit } => write!(
                f,
                "server is at its limit of {limit} connections; try again later"
            ),
            Self::TooManyFromIp { ip, limit } => write!(
                f,
                "too many connections from {ip} (limit {limit} per address); close some and try again"
            ),
        }
    }
}

/// What a connection handler gets besides its stream.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The client's address.
    pub peer: SocketAddr,
    /// The service's limits.
    pub limits: Limits,
    /// Cancelled when the server shuts down; handlers stop waiting for new requests then.
    pub shutdown: CancellationToken,
    /// The stream's request clock: the handler reports each whole request on it, or the
    /// connection is dropped at the handshake timeout (see [`crate::guarded`]).
    pub clock: RequestClock,
}

/// The stream type handed to TCP services.
pub type ServiceStream = GuardedStream<TcpStream>;

/// A TCP service run by [`serve_tcp`].
#[async_trait]
pub trait TcpService: Send + Sync + 'static {
    /// The service name used in logs (`greet`, `framed`, ...).
    fn name(&self) -> &'static str;

    /// Serves one connection; returns why it ended (for the close log line).
    ///
    /// # Errors
    /// An I/O error that ended the connection.
    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String>;

    /// Tells a refused client why, in the protocol's own terms where it has a way to.
    /// The default closes silently.
    async fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        let _ = (stream, refusal);
    }
}

/// Counts open connections in total and per IP.
#[derive(Debug, Default)]
struct ConnCounter {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
}

/// Releases its slot in the counter when dropped.
struct Slot {
    counter: Arc<ConnCounter>,
    ip: IpAddr,
}

impl ConnCounter {
    fn try_acquire(self: &Arc<Self>, ip: IpAddr, limits: &Limits) -> Result<Slot, Refusal> {
        let mut map = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = map.values().sum();
        if total >= limits.max_conns {
            return Err(Refusal::ServerFull {
                limit: limits.max_conns,
            });
        }
        let n = map.entry(ip).or_insert(0);
        if *n >= limits.max_conns_per_ip {
            return Err(Refusal::TooManyFromIp {
                ip,
                limit: limits.max_conns_per_ip,
            });
        }
        *n += 1;
        Ok(Slot {
            counter: self.clone(),
            ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut map = self
            .counter
            .per_ip
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// Accepts connections on `listener` and serves each with `service` until `shutdown`
/// is cancelled; then stops accepting and waits up to `limits.drain_timeout` for open
/// connections before returning (remaining ones are cancelled with the runtime).
///
/// # Errors
/// Never fails after the listener is bound; accept errors (e.g. out of descriptors) are
/// logged and retried.
pub async fn serve_tcp(
    listener: TcpListener,
    service: Arc<dyn TcpService>,
    limits: Limits,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let tracker = TaskTracker::new();
    let counter = Arc::new(ConnCounter::default());
    let name = service.name();
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            r = listener.accept() => r,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // EMFILE/ENFILE/ECONNABORTED: keep serving the connections we have.
                warn!(service = name, error = %e, "accept failed");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => continue,
                }
            }
        };
        let _ = stream.set_nodelay(true);
        match counter.try_acquire(peer.ip(), &limits) {
            Err(refusal) => {
                warn!(service = name, %peer, reason = %refusal, "connection refused");
                let service = service.clone();
                tracker.spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        service.refuse(stream, refusal),
                    )
                    .await;
                });
            }
            Ok(slot) => {
                let service = service.clone();
                let clock = RequestClock::new();
                let info = ConnInfo {
                    peer,
                    limits,
                    shutdown: shutdown.child_token(),
                    clock: clock.clone(),
                };
                tracker.spawn(async move {
                    let _slot = slot;
                    let started = Instant::now();
                    info!(service = name, %peer, "connection open");
                    let guarded =
                        GuardedStream::with_clock(stream, limits.stream_timeouts(), clock);
                    let reason = match service.handle(guarded, info).await {
                        Ok(reason) => reason,
                        Err(e) => format!("error: {e}"),
                    };
                    info!(service = name, %peer, %reason, secs = started.elapsed().as_secs_f64(), "connection closed");
                });
            }
        }
    }
    drop(listener);
    tracker.close();
    let open = tracker.len();
    if open > 0 {
        info!(service = name, open, "draining connections");
    }
    if tokio::time::timeout(limits.drain_timeout, tracker.wait())
        .await
        .is_err()
    {
        warn!(
            service = name,
            open = tracker.len(),
            "drain deadline passed; closing remaining connections"
        );
    }
    Ok(())
}
