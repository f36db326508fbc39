//! The UDP side of the runtime: the receive loop every request/response UDP service runs in.
//!
//! Every datagram first passes the per-source rate limit ([`RateLimiter`]); one over it is
//! dropped silently. A request/response service has no way to learn that a source owns
//! its address, so every reply stays within the amplification budget
//! ([`reply_limit`]: 3× the request, counting 28 bytes of IPv4/UDP headers on each side).
//! A service sees the budget in [`UdpService::respond_within`]; a reply over it is not
//! sent.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::udp_guard::{reply_limit, RateLimit, RateLimiter};

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
    let mut limiter = RateLimiter::new(rate);
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, peer) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::debug!(service = service.name(), error = %e, "recv failed");
                    continue;
                }
            },
        };
        let now = tokio::time::Instant::now().into_std();
        if !limiter.admit(service.name(), peer, now) {
            continue;
        }
        let limit = reply_limit(n);
        let Some(reply) = service.respond_within(&buf[..n], peer, limit) else {
            continue;
        };
        if reply.len() > limit {
            tracing::debug!(service = service.name(), %peer, len = reply.len(), limit, "reply over the amplification budget not sent");
            continue;
        }
        if let Err(e) = socket.send_to(&reply, peer).await {
            tracing::debug!(service = service.name(), %peer, error = %e, "send failed");
        }
    }
}
