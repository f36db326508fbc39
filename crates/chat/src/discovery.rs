//! LAN discovery (udp 7099): `sockit discover` broadcasts a request; every `sockit serve`
//! answers with its name and services table.
//!
//! ```text
//! C → broadcast:7099   SOCKIT-DISCOVER 1
//! S → C                {"sockit":"discover/1","id":"9f…","name":"host","version":"0.1.0",
//!                       "services":{"chat":{"tcp":"0.0.0.0:6667"},…}}
//! ```
//!
//! The client sends the request with SO_BROADCAST to 255.255.255.255, to each
//! interface's IPv4 broadcast address and to 127.0.0.1, collects answers until its
//! timeout, and lists each server once (by its random per-run `id`). Addresses a server
//! reports as unspecified (`0.0.0.0`) are shown with the address the answer came from.
//! Anything that is not exactly a request gets no answer.
//!
//! The request is padded with spaces to [`PROBE_LEN`] bytes (as QUIC pads its first
//! packet to 1200 bytes), because an answer must not be larger than 3× its request
//! (counting 28 bytes of IPv4/UDP headers on each side): the server must not be a
//! reflection amplifier for a forged source. A request too short for the answer gets a
//! short hint instead, `SOCKIT-DISCOVER 1 PAD <n>` (n: the request size needed), and
//! the client asks that server again with that much padding. Each source is also
//! rate-limited; requests over the rate get nothing.

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sockit_runtime::udp::recv_or_shutdown;
use sockit_runtime::udp_guard::{min_request_for, reply_limit, RateLimit, RateLimiter};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The request datagram (before padding).
pub const REQUEST: &[u8] = b"SOCKIT-DISCOVER 1";
/// The size the client pads its request to, with spaces.
pub const PROBE_LEN: usize = 1200;
/// The largest request the client sends when a server asks for more padding.
pub const MAX_PROBE_LEN: usize = 65_507;
/// How a hint to pad the request starts (then a space and the size needed).
pub const PAD_HINT: &str = "SOCKIT-DISCOVER 1 PAD";
/// The protocol marker in every answer.
pub const MARKER: &str = "discover/1";

/// A server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    /// Always [`MARKER`].
    pub sockit: String,
    /// Random per server run: the same server answering on two interfaces is listed once.
    pub id: String,
    /// The server's name (its host name unless configured).
    pub name: String,
    /// The server's version.
    pub version: String,
    /// Service → protocol → address, as in `sockit serve --addr-file`.
    pub services: BTreeMap<String, BTreeMap<String, String>>,
}

impl Announcement {
    /// A new announcement with a fresh random id.
    pub fn new(name: String, services: BTreeMap<String, BTreeMap<String, String>>) -> Self {
        let mut id = [0u8; 8];
        let _ = getrandom::getrandom(&mut id);
        Self {
            sockit: MARKER.into(),
            id: hex::encode(id),
            name,
            version: env!("CARGO_PKG_VERSION").into(),
            services,
        }
    }
}

/// Why an answer was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    /// Not JSON of the right shape.
    #[error("not a discovery answer: {0}")]
    Json(#[from] serde_json::Error),
    /// JSON, but not ours.
    #[error("unknown protocol marker `{0}`")]
    Marker(String),
}

/// Parses an answer datagram.
///
/// # Errors
/// [`AnswerError`] when it is not a discovery answer.
pub fn parse_answer(datagram: &[u8]) -> Result<Announcement, AnswerError> {
    let a: Announcement = serde_json::from_slice(datagram)?;
    if a.sockit != MARKER {
        return Err(AnswerError::Marker(a.sockit));
    }
    Ok(a)
}

/// A request of `len` bytes: [`REQUEST`] followed by spaces.
pub fn probe(len: usize) -> Vec<u8> {
    let mut p = REQUEST.to_vec();
    p.resize(len.clamp(REQUEST.len(), MAX_PROBE_LEN), b' ');
    p
}

/// The size a hint asks the request to be padded to, if `datagram` is a hint.
pub fn parse_hint(datagram: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(datagram).ok()?;
    let n = text.strip_prefix(PAD_HINT)?.strip_prefix(' ')?.trim_end();
    n.parse().ok()
}

/// What the server sends for a datagram of `datagram.len()` bytes (pure): the answer if
/// it is a request and the answer fits 3× of it, a padding hint if it is a request too
/// short for the answer, else nothing.
pub fn reply_to(datagram: &[u8], answer: &[u8]) -> Option<Vec<u8>> {
    if datagram.trim_ascii_end() != REQUEST {
        return None;
    }
    let limit = reply_limit(datagram.len());
    if answer.len() <= limit {
        return Some(answer.to_vec());
    }
    let hint = format!("{PAD_HINT} {}\n", min_request_for(answer.len()));
    (hint.len() <= limit).then(|| hint.into_bytes())
}

/// Answers discovery requests on `socket` until `shutdown`, with the default per-source
/// rate limit.
///
/// # Errors
/// Never once bound: errors are logged and serving goes on.
pub async fn serve_discovery(
    socket: UdpSocket,
    announcement: Announcement,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_discovery_with(socket, announcement, RateLimit::default(), shutdown).await
}

/// [`serve_discovery`] with a given per-source rate limit.
///
/// # Errors
/// Never once bound: errors are logged and serving goes on.
pub async fn serve_discovery_with(
    socket: UdpSocket,
    announcement: Announcement,
    rate: RateLimit,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let answer = serde_json::to_vec(&announcement).map_err(io::Error::other)?;
    let mut limiter = RateLimiter::new(rate);
    let mut buf = vec![0u8; 65536];
    loop {
        let Some((n, from)) = recv_or_shutdown(&socket, &mut buf, &shutdown, "discovery").await
        else {
            return Ok(());
        };
        if !limiter.admit("discovery", from, tokio::time::Instant::now().into_std()) {
            continue;
        }
        let Some(reply) = reply_to(&buf[..n], &answer) else {
            continue;
        };
        debug!(service = "discovery", peer = %from, len = n, reply = reply.len(), "discovery request");
        if let Err(e) = socket.send_to(&reply, from).await {
            debug!(service = "discovery", peer = %from, error = %e, "send failed");
        }
    }
}

/// A server that answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// Where the answer came from.
    pub from: SocketAddr,
    /// What it said.
    pub announcement: Announcement,
}

impl Found {
    /// The services table with unspecified addresses (`0.0.0.0:N`) replaced by the
    /// address the answer came from.
    pub fn services(&self) -> BTreeMap<String, BTreeMap<String, String>> {
        let mut out = self.announcement.services.clone();
        for protos in out.values_mut() {
            for addr in protos.values_mut() {
                if let Ok(mut a) = addr.parse::<SocketAddr>() {
                    if a.ip().is_unspecified() {
                        a.set_ip(self.from.ip());
                        *addr = a.to_string();
                    }
                }
            }
        }
        out
    }
}

/// The broadcast targets for `port`: 255.255.255.255, every interface's IPv4 broadcast
/// address, and 127.0.0.1 (loopback has no broadcast).
pub fn broadcast_targets(port: u16) -> Vec<SocketAddr> {
    let mut ips: Vec<IpAddr> = vec![Ipv4Addr::BROADCAST.into()];
    if let Ok(ifaces) = if_addrs::get_if_addrs() {
        for iface in ifaces {
            if let if_addrs::IfAddr::V4(v4) = iface.addr {
                if let Some(b) = v4.broadcast {
                    ips.push(b.into());
                }
            }
        }
    }
    ips.push(Ipv4Addr::LOCALHOST.into());
    let mut seen = HashSet::new();
    ips.into_iter()
        .filter(|ip| seen.insert(*ip))
        .map(|ip| SocketAddr::new(ip, port))
        .collect()
}

/// Sends the request to each of `targets` and collects answers for `wait`; each server
/// once, in the order they answered.
///
/// # Errors
/// The local socket could not be created. Sending to a target that is unreachable is not
/// an error (that network just has no server).
pub async fn discover(targets: &[SocketAddr], wait: Duration) -> io::Result<Vec<Found>> {
    let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    socket.set_broadcast(true)?;
    let request = probe(PROBE_LEN);
    for t in targets {
        if let Err(e) = socket.send_to(&request, t).await {
            debug!(target = %t, error = %e, "discovery send failed");
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut found = Vec::new();
    let mut ids = HashSet::new();
    // Servers asked again with more padding (once each).
    let mut repadded = HashSet::new();
    let mut buf = vec![0u8; 65536];
    loop {
        let r = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await;
        let (n, from) = match r {
            Err(_) => break,
            Ok(Ok(x)) => x,
            // ICMP errors from targets with nothing listening: keep waiting for others.
            Ok(Err(e)) => {
                debug!(error = %e, "discovery recv failed");
                continue;
            }
        };
        if let Some(len) = parse_hint(&buf[..n]) {
            if len > PROBE_LEN && len <= MAX_PROBE_LEN && repadded.insert(from) {
                debug!(%from, len, "server asks for a larger request");
                if let Err(e) = socket.send_to(&probe(len), from).await {
                    debug!(target = %from, error = %e, "discovery send failed");
                }
            }
            continue;
        }
        match parse_answer(&buf[..n]) {
            Ok(a) => {
                if ids.insert(a.id.clone()) {
                    found.push(Found {
                        from,
                        announcement: a,
                    });
                }
            }
            Err(e) => debug!(%from, error = %e, "ignored datagram"),
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> BTreeMap<String, BTreeMap<String, String>> {
        let mut t = BTreeMap::new();
        t.insert(
            "chat".to_owned(),
            BTreeMap::from([("tcp".to_owned(), "0.0.0.0:6667".to_owned())]),
        );
        t
    }

    #[test]
    fn answer_round_trip_and_marker() {
        let a = Announcement::new("box".into(), table());
        let bytes = serde_json::to_vec(&a).unwrap();
        assert_eq!(parse_answer(&bytes).unwrap(), a);
        assert!(parse_answer(b"{}").is_err());
        assert!(parse_answer(b"\xff\x00").is_err());
        let mut other = a.clone();
        other.sockit = "x".into();
        assert!(matches!(
            parse_answer(&serde_json::to_vec(&other).unwrap()),
            Err(AnswerError::Marker(_))
        ));
    }

    #[test]
    fn unspecified_addresses_take_the_sender_ip() {
        let f = Found {
            from: "192.168.1.7:7099".parse().unwrap(),
            announcement: Announcement::new("box".into(), table()),
        };
        assert_eq!(f.services()["chat"]["tcp"], "192.168.1.7:6667");
    }

    #[test]
    fn answers_fit_three_times_the_request_or_get_a_hint() {
        let answer = serde_json::to_vec(&Announcement::new("box".into(), table())).unwrap();
        let padded = probe(PROBE_LEN);
        assert_eq!(padded.len(), PROBE_LEN);
        assert_eq!(reply_to(&padded, &answer), Some(answer.clone()));
        // The unpadded request of older clients: a hint within 3×, or the answer when
        // it is small enough.
        let short = reply_to(REQUEST, &answer).unwrap();
        assert!(short.len() <= reply_limit(REQUEST.len()));
        let big = vec![b'x'; 3000];
        let hint = reply_to(REQUEST, &big).unwrap();
        let need = parse_hint(&hint).unwrap();
        assert_eq!(need, min_request_for(3000));
        assert_eq!(reply_to(&probe(need), &big), Some(big.clone()));
        assert_eq!(
            parse_hint(&reply_to(&probe(need - 1), &big).unwrap()),
            Some(need)
        );
        assert_eq!(reply_to(b"hello?", &answer), None);
        assert_eq!(reply_to(b"", &answer), None);
        assert_eq!(parse_hint(b"SOCKIT-DISCOVER 1 PAD x"), None);
    }

    #[test]
    fn targets_include_broadcast_and_loopback_once() {
        let t = broadcast_targets(7099);
        assert_eq!(t[0], "255.255.255.255:7099".parse().unwrap());
        assert!(t.contains(&"127.0.0.1:7099".parse().unwrap()));
        let unique: HashSet<_> = t.iter().collect();
        assert_eq!(unique.len(), t.len());
    }

    #[tokio::test]
    async fn answers_on_loopback_and_ignores_other_datagrams() {
        let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = sock.local_addr().unwrap();
        let token = CancellationToken::new();
        let a = Announcement::new("box".into(), table());
        tokio::spawn(serve_discovery(sock, a.clone(), token.clone()));
        let probe = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        probe.send_to(b"hello?", addr).await.unwrap();
        let found = discover(&[addr, addr], Duration::from_millis(300))
            .await
            .unwrap();
        assert_eq!(found.len(), 1, "asked twice, listed once");
        assert_eq!(found[0].announcement, a);
        let mut buf = [0u8; 16];
        let none = tokio::time::timeout(Duration::from_millis(100), probe.recv(&mut buf)).await;
        assert!(none.is_err(), "no answer to a non-request");
        token.cancel();
    }
}
