//! The guard every UDP service of sockit shares, so none can be turned into a weapon.
//!
//! UDP has no handshake: a datagram's source address can be forged, and whatever a
//! server answers goes to that address. A service that answers more bytes than it
//! receives is then a reflection amplifier. Three tools keep that in check:
//!
//! - [`RateLimiter`]: a token bucket per source (an IPv4 address, or an IPv6 /64), with
//!   a bounded table: a flood of forged sources cannot grow memory, it only recycles the
//!   least recently seen entries. Datagrams over the rate are dropped silently (the
//!   caller logs at debug; [`RateLimiter::admit`] emits at most one warning line per
//!   [`WARN_EVERY`]).
//! - The amplification budget ([`reply_limit`]): until a source has proved its address,
//!   no reply is larger than [`AMPLIFICATION_FACTOR`] (3, QUIC's rule, RFC 9000 §8) times
//!   what it sent. Bytes are counted on the wire: the UDP payload plus
//!   [`IPV4_UDP_HEADER`] (28 bytes of IPv4 and UDP headers) on both sides. An empty
//!   datagram is therefore 28 bytes and may be answered with up to 56 bytes of payload:
//!   an empty RFC 868 time request still gets its 4-byte answer (`rdate -u` relies on
//!   it). IPv6 headers are larger (48 bytes), so counting 28 is conservative there.
//! - [`ReturnPathCookies`]: stateless return-path proof. The server sends a short
//!   cookie, an HMAC-SHA256 of the peer's `ip:port` and a time window under a
//!   per-process random key; a peer that sends it back has shown it receives what is
//!   sent to its address. Nothing is stored per peer until then.
//!
//! Everything here is pure logic with the time passed in (an [`Instant`]), so the tests
//! drive it with any clock.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// Bytes of IPv4 (20) and UDP (8) headers counted on each datagram, in both directions.
pub const IPV4_UDP_HEADER: usize = 28;

/// How many times the bytes a source sent a reply may be, before the source has proved
/// its address.
pub const AMPLIFICATION_FACTOR: usize = 3;

/// The largest reply payload allowed, before proof, to a source that sent a datagram of
/// `request_len` payload bytes: `3 × (request_len + 28) − 28`.
///
/// ```
/// use sockit_runtime::udp_guard::reply_limit;
/// assert_eq!(reply_limit(0), 56); // an empty datagram: 28 bytes on the wire
/// assert_eq!(reply_limit(17), 107);
/// ```
pub fn reply_limit(request_len: usize) -> usize {
    request_len
        .saturating_add(IPV4_UDP_HEADER)
        .saturating_mul(AMPLIFICATION_FACTOR)
        - IPV4_UDP_HEADER
}

/// Whether a reply of `reply_len` payload bytes to a request of `request_len` payload
/// bytes stays within the amplification budget.
pub fn within_budget(request_len: usize, reply_len: usize) -> bool {
    reply_len <= reply_limit(request_len)
}

/// The smallest request payload for which a reply of `reply_len` bytes is within the
/// budget (what a client must pad its request to).
///
/// ```
/// use sockit_runtime::udp_guard::{min_request_for, reply_limit};
/// let n = min_request_for(1000);
/// assert!(reply_limit(n) >= 1000 && reply_limit(n - 1) < 1000);
/// ```
pub fn min_request_for(reply_len: usize) -> usize {
    (reply_len + IPV4_UDP_HEADER)
        .div_ceil(AMPLIFICATION_FACTOR)
        .saturating_sub(IPV4_UDP_HEADER)
}

/// The per-source rate limit of one UDP service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Datagrams per second a source may send, sustained; 0 turns the limit off.
    pub per_second: u32,
    /// Datagrams a source may send at once after being quiet (the bucket's size).
    pub burst: u32,
    /// Most sources tracked at once; beyond, the least recently seen are forgotten.
    pub max_sources: usize,
}

impl Default for RateLimit {
    /// 100 datagrams/s per source with bursts of 200, 16,384 sources tracked (about
    /// 1 MiB of table at most).
    fn default() -> Self {
        Self {
            per_second: 100,
            burst: 200,
            max_sources: 16_384,
        }
    }
}

impl RateLimit {
    /// No limit at all (every datagram passes).
    pub const OFF: RateLimit = RateLimit {
        per_second: 0,
        burst: 0,
        max_sources: 0,
    };
}

/// At most one warning line about dropped datagrams per this interval.
pub const WARN_EVERY: Duration = Duration::from_secs(10);

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Within the rate: handle it.
    Pass,
    /// Over the rate: drop it silently.
    Drop {
        /// `Some(n)` when a warning is due: `n` datagrams were dropped since the last one
        /// (this one included).
        warn: Option<u64>,
    },
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Per-source token buckets in a bounded table.
///
/// The table has two generations: lookups move an entry from the old generation to the
/// current one; when the current one holds half of `max_sources`, the old one is
/// dropped and the current one becomes old. Memory stays within `max_sources` entries
/// and the sources forgotten are those not seen for the longest (an approximate LRU, in
/// constant time per datagram). A forgotten source starts again with a full bucket.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    current: HashMap<IpAddr, Bucket>,
    previous: HashMap<IpAddr, Bucket>,
    dropped: u64,
    last_warn: Option<Instant>,
}

/// The key a source is limited by: an IPv4 address (also when IPv4-mapped), or the /64
/// an IPv6 address is in (one host usually holds a whole /64).
pub fn source_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(bits))
            }
        },
    }
}

impl RateLimiter {
    /// An empty table.
    pub fn new(limit: RateLimit) -> Self {
        Self {
            limit,
            current: HashMap::new(),
            previous: HashMap::new(),
            dropped: 0,
            last_warn: None,
        }
    }

    /// The limit applied.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }

    /// Sources tracked now (at most `max_sources`).
    pub fn tracked(&self) -> usize {
        self.current.len() + self.previous.len()
    }

    /// Counts one datagram from `ip` at `now`.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Verdict {
        if self.limit.per_second == 0 {
            return Verdict::Pass;
        }
        let key = source_key(ip);
        let burst = f64::from(self.limit.burst.max(1));
        let rate = f64::from(self.limit.per_second);
        if !self.current.contains_key(&key) {
            let found = self.previous.remove(&key);
            let half = (self.limit.max_sources / 2).max(1);
            if self.current.len() >= half {
                self.previous = std::mem::take(&mut self.current);
            }
            let fresh = Bucket {
                tokens: burst,
                last: now,
            };
            self.current.insert(key, found.unwrap_or(fresh));
        }
        let Some(bucket) = self.current.get_mut(&key) else {
            return Verdict::Pass;
        };
        let elapsed = now.saturating_duration_since(bucket.last).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        if now > bucket.last {
            bucket.last = now;
        }
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Verdict::Pass;
        }
        self.dropped += 1;
        let due = match self.last_warn {
            None => true,
            Some(t) => now.saturating_duration_since(t) >= WARN_EVERY,
        };
        if !due {
            return Verdict::Drop { warn: None };
        }
        self.last_warn = Some(now);
        let n = std::mem::take(&mut self.dropped);
        Verdict::Drop { warn: Some(n) }
    }

    /// [`RateLimiter::check`] with the logging every service does: a dropped datagram is
    /// logged at debug, and a warning line at most every [`WARN_EVERY`]. Returns whether
    /// the datagram may be handled.
    pub fn admit(&mut self, service: &'static str, peer: SocketAddr, now: Instant) -> bool {
        match self.check(peer.ip(), now) {
            Verdict::Pass => true,
            Verdict::Drop { warn } => {
                tracing::debug!(service, %peer, "datagram over the per-source rate limit dropped");
                if let Some(n) = warn {
                    tracing::warn!(
                        service,
                        %peer,
                        dropped = n,
                        per_second = self.limit.per_second,
                        burst = self.limit.burst,
                        "dropping datagrams over the per-source rate limit"
                    );
                }
                false
            }
        }
    }
}

/// Bytes of a return-path cookie.
pub const COOKIE_LEN: usize = 12;

/// The length of one cookie time window; a cookie is accepted in its window and the next
/// (so it lives between one and two windows).
pub const COOKIE_WINDOW: Duration = Duration::from_secs(60);

/// Stateless return-path cookies: an HMAC-SHA256 (cut to [`COOKIE_LEN`] bytes) of a
/// peer's address and a time window, under a random key of this process.
#[derive(Clone)]
pub struct ReturnPathCookies {
    key: [u8; 32],
    epoch: Instant,
}

impl std::fmt::Debug for ReturnPathCookies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReturnPathCookies")
            .field("key", &"<secret>")
            .finish()
    }
}

impl ReturnPathCookies {
    /// A fresh random key; windows are counted from `epoch`.
    pub fn new(epoch: Instant) -> Self {
        let mut key = [0u8; 32];
        if getrandom::getrandom(&mut key).is_err() {
            // No OS randomness: fall back to what differs per process and moment. The
            // cookies stay unpredictable enough to prove a return path, not to be secret.
            let seed = format!(
                "{:?}{}{epoch:?}",
                std::time::SystemTime::now(),
                std::process::id()
            );
            let mut m = <Hmac<Sha256> as Mac>::new_from_slice(b"sockit-cookie-seed")
                .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
            m.update(seed.as_bytes());
            key.copy_from_slice(&m.finalize().into_bytes());
        }
        Self::with_key(key, epoch)
    }

    /// Cookies under a given key (tests).
    pub fn with_key(key: [u8; 32], epoch: Instant) -> Self {
        Self { key, epoch }
    }

    fn window(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs() / COOKIE_WINDOW.as_secs()
    }

    fn mac(&self, peer: SocketAddr, window: u64) -> [u8; COOKIE_LEN] {
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
        m.update(b"sockit return-path cookie\0");
        match peer.ip() {
            IpAddr::V4(v4) => m.update(&v4.octets()),
            IpAddr::V6(v6) => m.update(&v6.octets()),
        }
        m.update(&peer.port().to_be_bytes());
        m.update(&window.to_be_bytes());
        let full = m.finalize().into_bytes();
        let mut out = [0u8; COOKIE_LEN];
        out.copy_from_slice(&full[..COOKIE_LEN]);
        out
    }

    /// The cookie for `peer` at `now`.
    pub fn issue(&self, peer: SocketAddr, now: Instant) -> [u8; COOKIE_LEN] {
        self.mac(peer, self.window(now))
    }

    /// Whether `cookie` was issued to `peer` in this window or the previous one
    /// (compared in constant time).
    pub fn verify(&self, peer: SocketAddr, now: Instant, cookie: &[u8]) -> bool {
        if cookie.len() != COOKIE_LEN {
            return false;
        }
        let w = self.window(now);
        let current: bool = self.mac(peer, w).ct_eq(cookie).into();
        let previous: bool = w > 0 && bool::from(self.mac(peer, w - 1).ct_eq(cookie));
        current | previous
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn budget_counts_headers_both_ways() {
        assert_eq!(reply_limit(0), 56);
        assert!(
            within_budget(0, 4),
            "an empty RFC 868 request gets its 4 bytes"
        );
        assert!(within_budget(1200, 3 * 1228 - 28));
        assert!(!within_budget(1200, 3 * 1228 - 27));
        for reply in [0, 1, 55, 56, 57, 1000, 65_000] {
            let n = min_request_for(reply);
            assert!(within_budget(n, reply), "{reply}");
            if n > 0 {
                assert!(!within_budget(n - 1, reply), "{reply}");
            }
        }
        assert_eq!(reply_limit(usize::MAX), usize::MAX - IPV4_UDP_HEADER);
    }

    #[test]
    fn bucket_passes_burst_then_rate() {
        let limit = RateLimit {
            per_second: 10,
            burst: 5,
            max_sources: 100,
        };
        let mut r = RateLimiter::new(limit);
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(r.check(ip(1), t0), Verdict::Pass);
        }
        assert_eq!(r.check(ip(1), t0), Verdict::Drop { warn: Some(1) });
        assert_eq!(r.check(ip(1), t0), Verdict::Drop { warn: None });
        // Another source has its own bucket.
        assert_eq!(r.check(ip(2), t0), Verdict::Pass);
        // 100 ms later one token is back.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(r.check(ip(1), t1), Verdict::Pass);
        assert!(matches!(r.check(ip(1), t1), Verdict::Drop { .. }));
        // After a long silence the bucket is full again, not fuller.
        let t2 = t0 + Duration::from_secs(3600);
        let passed = (0..20)
            .filter(|_| r.check(ip(1), t2) == Verdict::Pass)
            .count();
        assert_eq!(passed, 5);
    }

    #[test]
    fn a_flood_from_one_source_is_cut_to_the_rate() {
        let mut r = RateLimiter::new(RateLimit {
            per_second: 100,
            burst: 200,
            max_sources: 1000,
        });
        let t0 = Instant::now();
        // 10,000 datagrams over one second: the burst plus one second of rate.
        let passed = (0..10_000u32)
            .filter(|i| {
                let now = t0 + Duration::from_micros(u64::from(*i) * 100);
                r.check(ip(9), now) == Verdict::Pass
            })
            .count();
        assert!((299..=301).contains(&passed), "{passed}");
    }

    #[test]
    fn warnings_are_rate_limited_and_count_drops() {
        let mut r = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 1,
            max_sources: 10,
        });
        let t0 = Instant::now();
        assert_eq!(r.check(ip(1), t0), Verdict::Pass);
        assert_eq!(r.check(ip(1), t0), Verdict::Drop { warn: Some(1) });
        let mut warnings = Vec::new();
        for i in 1..=2500u64 {
            // 2,500 datagrams over 25 s, 1 passes per second.
            if let Verdict::Drop { warn: Some(n) } =
                r.check(ip(1), t0 + Duration::from_millis(i * 10))
            {
                warnings.push(n);
            }
        }
        let warned = warnings.len();
        assert!(warnings.iter().all(|n| *n > 900), "{warnings:?}");
        assert_eq!(warned, 2, "one warning per 10 s");
    }

    #[test]
    fn a_spoofed_flood_cannot_grow_the_table() {
        let mut r = RateLimiter::new(RateLimit {
            per_second: 10,
            burst: 10,
            max_sources: 1000,
        });
        let t0 = Instant::now();
        for i in 0..100_000u32 {
            let a = IpAddr::from(i.wrapping_mul(2_654_435_761).to_be_bytes());
            r.check(a, t0);
            assert!(r.tracked() <= 1000);
        }
        // A source seen recently survives a flood smaller than half the table.
        let mut r = RateLimiter::new(RateLimit {
            per_second: 1,
            burst: 1,
            max_sources: 1000,
        });
        assert_eq!(r.check(ip(7), t0), Verdict::Pass);
        for i in 0..400u32 {
            r.check(IpAddr::from((0x0a00_0000 + i).to_be_bytes()), t0);
        }
        assert!(matches!(r.check(ip(7), t0), Verdict::Drop { .. }));
    }

    #[test]
    fn off_passes_everything_and_tracks_nothing() {
        let mut r = RateLimiter::new(RateLimit::OFF);
        let t0 = Instant::now();
        assert!((0..10_000).all(|_| r.check(ip(1), t0) == Verdict::Pass));
        assert_eq!(r.tracked(), 0);
    }

    #[test]
    fn ipv6_sources_are_limited_per_64() {
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(source_key(a), source_key(b));
        assert_ne!(source_key(a), source_key(c));
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(source_key(mapped), ip(1));
    }

    #[test]
    fn cookies_bind_address_and_time() {
        let t0 = Instant::now();
        let c = ReturnPathCookies::with_key([7; 32], t0);
        let a: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:4001".parse().unwrap();
        let cookie = c.issue(a, t0);
        assert!(c.verify(a, t0, &cookie));
        assert!(!c.verify(b, t0, &cookie), "another port");
        assert!(!c.verify(a, t0, &cookie[..COOKIE_LEN - 1]));
        assert!(c.verify(a, t0 + COOKIE_WINDOW, &cookie), "next window");
        assert!(!c.verify(a, t0 + COOKIE_WINDOW * 2, &cookie), "expired");
        let other = ReturnPathCookies::with_key([8; 32], t0);
        assert!(!other.verify(a, t0, &cookie), "another key");
        let fresh = ReturnPathCookies::new(t0);
        assert_ne!(fresh.issue(a, t0), cookie);
        assert!(format!("{fresh:?}").contains("<secret>"));
    }
}
