//! The UDP side of the runtime: the receive loop every request/response UDP service runs in.
//!
//! Every datagram first passes the per-source rate limit ([`RateLimiter`]); one over it is
//! dropped, or, for a service with an over-rate answer (NTP's Kiss-o'-Death), answered
//! with that at most [`OVER_RATE_ANSWERS_PER_SECOND`] times a second per source. A
//! request/response service has no way to learn that a source owns its address, so every
//! reply stays within the amplification budget ([`reply_limit`]: 3× the request, counting
//! 28 bytes of IPv4/UDP headers on each side). A service sees the budget in
//! [`UdpService::respond_at`]; a reply over it is not sent.
//!
//! A service that timestamps requests ([`UdpService::wants_kernel_timestamps`], NTP) gets
//! the kernel's receive time of each datagram (`SO_TIMESTAMPNS`) in its [`Arrival`].

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::udp_guard::{reply_limit, RateLimit, RateLimiter, Verdict};
use crate::udp_recv::{enable_kernel_timestamps, recv_blocking, recv_timestamped};

/// Most over-rate answers (see [`UdpService::over_rate`]) sent to one source per second.
pub const OVER_RATE_ANSWERS_PER_SECOND: u32 = 1;

/// When a datagram arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// The receive time: the kernel's, when the service asked for kernel timestamps and
    /// the kernel gave one, else the time the receive loop read the datagram.
    pub at: SystemTime,
    /// Whether `at` is the kernel's timestamp.
    pub from_kernel: bool,
}

impl Arrival {
    /// An arrival read now, without a kernel timestamp.
    pub fn now() -> Self {
        Self {
            at: SystemTime::now(),
            from_kernel: false,
        }
    }
}

/// A request/response UDP service: each datagram gets at most one reply.
pub trait UdpService: Send + Sync + 'static {
    /// The service name used in logs.
    fn name(&self) -> &'static str;

    /// The reply to one datagram, or `None` for no reply.
    fn respond(&self, datagram: &[u8], peer: SocketAddr) -> Option<Vec<u8>>;

    /// The reply to one datagram when at most `limit` payload bytes may be sent (the
    /// amplification budget, see [`reply_limit`]). The default is [`UdpService::respond`],
    /// with no reply when that is longer; a service whose replies can grow overrides it
    /// to answer within the limit instead.
    fn respond_within(&self, datagram: &[u8], peer: SocketAddr, limit: usize) -> Option<Vec<u8>> {
        self.respond(datagram, peer).filter(|r| r.len() <= limit)
    }

    /// The reply to one datagram that arrived at `arrival` (within `limit` bytes, as
    /// [`UdpService::respond_within`], which is the default). Services that timestamp
    /// requests override this one.
    fn respond_at(
        &self,
        datagram: &[u8],
        peer: SocketAddr,
        limit: usize,
        arrival: Arrival,
    ) -> Option<Vec<u8>> {
        let _ = arrival;
        self.respond_within(datagram, peer, limit)
    }

    /// Whether the receive loop should ask the kernel for receive timestamps
    /// (`SO_TIMESTAMPNS`) and pass them in [`Arrival`]. Default: no.
    fn wants_kernel_timestamps(&self) -> bool {
        false
    }

    /// The answer to a datagram over the source's rate limit, or `None` (the default) to
    /// drop it. NTP answers a Kiss-o'-Death `RATE` so that well-behaved clients back off.
    /// Sent at most [`OVER_RATE_ANSWERS_PER_SECOND`] times a second per source, and only
    /// within `limit` bytes.
    fn over_rate(&self, datagram: &[u8], peer: SocketAddr, limit: usize) -> Option<Vec<u8>> {
        let _ = (datagram, peer, limit);
        None
    }
}

/// Serves datagrams on `socket` with `service` and the default per-source rate limit
/// ([`RateLimit::default`]) until `shutdown` is cancelled.
///
/// # Errors
/// Never fails once bound: receive and send errors (e.g. ICMP unreachable reported on the
/// socket) are logged and serving goes on.
pub async fn serve_udp(
    socket: UdpSocket,
    service: Arc<dyn UdpService>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_udp_with(socket, service, RateLimit::default(), shutdown).await
}

/// [`serve_udp`] with a given per-source rate limit ([`RateLimit::OFF`] for none).
///
/// # Errors
/// Never fails once bound, as [`serve_udp`].
pub async fn serve_udp_with(
    socket: UdpSocket,
    service: Arc<dyn UdpService>,
    rate: RateLimit,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut guard = DatagramGuard::new(rate);
    let kernel_timestamps =
        service.wants_kernel_timestamps() && kernel_timestamps_on(&socket, &*service);
    let mut buf = vec![0u8; 65536];
    loop {
        let received = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = recv_timestamped(&socket, &mut buf, kernel_timestamps) => r,
        };
        let (n, peer, arrival) = match received {
            Ok(x) => x,
            Err(e) => {
                tracing::debug!(service = service.name(), error = %e, "recv failed");
                continue;
            }
        };
        let now = tokio::time::Instant::now().into_std();
        let Some(reply) = guard.reply(&*service, &buf[..n], peer, arrival, now) else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply, peer).await {
            tracing::debug!(service = service.name(), %peer, error = %e, "send failed");
        }
    }
}

/// Receives the next datagram on `socket`, or `None` once `shutdown` is cancelled. A
/// receive error (an ICMP error reported on the socket) is logged at debug level for
/// `service` and the wait goes on: one bad datagram never stops a UDP server. Every UDP
/// loop that is not a [`UdpService`] (the chat room, discovery, TFTP) receives with this.
pub async fn recv_or_shutdown(
    socket: &UdpSocket,
    buf: &mut [u8],
    shutdown: &CancellationToken,
    service: &str,
) -> Option<(usize, SocketAddr)> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            r = socket.recv_from(buf) => match r {
                Ok(x) => return Some(x),
                Err(e) => tracing::debug!(service, error = %e, "recv failed"),
            },
        }
    }
}

/// How often a loop on its own thread ([`serve_udp_blocking`]) looks at `shutdown`.
pub const SHUTDOWN_POLL: std::time::Duration = std::time::Duration::from_millis(100);

/// [`serve_udp_with`] as a blocking loop, for a thread of its own: each datagram is
/// received, answered and sent by that one thread, with no wake-up crossing threads.
/// NTP runs this way (a reply's timestamps are better, and it answers about twice as
/// many requests per core). The same guard applies; `shutdown` is looked at every
/// [`SHUTDOWN_POLL`].
///
/// # Errors
/// The socket cannot be made blocking with a receive timeout; after that it never fails,
/// as [`serve_udp`].
pub fn serve_udp_blocking(
    socket: std::net::UdpSocket,
    service: Arc<dyn UdpService>,
    rate: RateLimit,
    shutdown: CancellationToken,
) -> io::Result<()> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(SHUTDOWN_POLL))?;
    let mut guard = DatagramGuard::new(rate);
    let kernel_timestamps =
        service.wants_kernel_timestamps() && kernel_timestamps_on(&socket, &*service);
    let mut buf = vec![0u8; 65536];
    while !shutdown.is_cancelled() {
        let (n, peer, arrival) = match recv_blocking(&socket, &mut buf, kernel_timestamps) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(e) => {
                tracing::debug!(service = service.name(), error = %e, "recv failed");
                continue;
            }
        };
        let Some(reply) = guard.reply(&*service, &buf[..n], peer, arrival, Instant::now()) else {
            continue;
        };
        if let Err(e) = socket.send_to(&reply, peer) {
            tracing::debug!(service = service.name(), %peer, error = %e, "send failed");
        }
    }
    Ok(())
}

fn kernel_timestamps_on(socket: &impl std::os::fd::AsFd, service: &dyn UdpService) -> bool {
    match enable_kernel_timestamps(socket) {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(service = service.name(), error = %e, "no kernel receive timestamps; using the time the datagram is read");
            false
        }
    }
}

/// What every receive loop applies to a datagram before and after the service sees it:
/// the per-source rate limit (with its over-rate answers) and the amplification budget.
struct DatagramGuard {
    limiter: RateLimiter,
    over_rate_answers: RateLimiter,
}

impl DatagramGuard {
    fn new(rate: RateLimit) -> Self {
        Self {
            limiter: RateLimiter::new(rate),
            over_rate_answers: RateLimiter::new(RateLimit {
                per_second: OVER_RATE_ANSWERS_PER_SECOND,
                burst: OVER_RATE_ANSWERS_PER_SECOND,
                max_sources: rate.max_sources,
            }),
        }
    }

    /// The reply to send for `datagram`, if any, within the budget.
    fn reply(
        &mut self,
        service: &dyn UdpService,
        datagram: &[u8],
        peer: SocketAddr,
        arrival: Arrival,
        now: Instant,
    ) -> Option<Vec<u8>> {
        let limit = reply_limit(datagram.len());
        let reply = if self.limiter.admit(service.name(), peer, now) {
            service.respond_at(datagram, peer, limit, arrival)
        } else if matches!(self.over_rate_answers.check(peer.ip(), now), Verdict::Pass) {
            service.over_rate(datagram, peer, limit)
        } else {
            None
        }?;
        if reply.len() > limit {
            tracing::debug!(service = service.name(), %peer, len = reply.len(), limit, "reply over the amplification budget not sent");
            return None;
        }
        Some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Default)]
    struct Counting {
        answered: AtomicUsize,
        over_rate: AtomicUsize,
    }

    impl UdpService for Counting {
        fn name(&self) -> &'static str {
            "counting"
        }

        fn respond(&self, datagram: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
            self.answered.fetch_add(1, Ordering::SeqCst);
            Some(datagram.to_vec())
        }

        fn over_rate(&self, _datagram: &[u8], _peer: SocketAddr, limit: usize) -> Option<Vec<u8>> {
            self.over_rate.fetch_add(1, Ordering::SeqCst);
            Some(vec![b'!'; 4.min(limit)])
        }
    }

    // Paused time: the server loop sets no timers, so the clock stands still and the
    // token buckets refill by nothing between datagrams.
    #[tokio::test(start_paused = true)]
    async fn over_rate_answer_at_most_once_per_second_per_source() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = server.local_addr().unwrap();
        let service = Arc::new(Counting::default());
        let shutdown = CancellationToken::new();
        let rate = RateLimit {
            per_second: 1,
            burst: 1,
            max_sources: 16,
        };
        let task = tokio::spawn(serve_udp_with(
            server,
            service.clone(),
            rate,
            shutdown.clone(),
        ));
        let flooder = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for _ in 0..5 {
            flooder.send_to(b"tick", addr).await.unwrap();
        }
        let mut buf = [0u8; 16];
        let (n, _) = flooder.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"tick");
        let (n, _) = flooder.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"!!!!");
        // Another source (its own bucket) is answered; once its reply is back, the loop
        // has handled every datagram the flooder sent before.
        let other = UdpSocket::bind("127.0.0.2:0").await.unwrap();
        other.send_to(b"mark", addr).await.unwrap();
        let (n, _) = other.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"mark");
        assert_eq!(service.answered.load(Ordering::SeqCst), 2);
        assert_eq!(service.over_rate.load(Ordering::SeqCst), 1);
        shutdown.cancel();
        task.await.unwrap().unwrap();
    }
}
