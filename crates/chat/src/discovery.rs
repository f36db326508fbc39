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

use std::collections::{BTreeMap, HashSet};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::debug;

/// The request datagram.
pub const REQUEST: &[u8] = b"SOCKIT-DISCOVER 1";
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

/// Answers discovery requests on `socket` until `shutdown`.
///
/// # Errors
/// Never once bound: errors are logged and serving goes on.
pub async fn serve_discovery(
    socket: UdpSocket,
    announcement: Announcement,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let answer = serde_json::to_vec(&announcement).map_err(io::Error::other)?;
    let mut buf = vec![0u8; 2048];
    loop {
        let (n, from) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(service = "discovery", error = %e, "recv failed");
                    continue;
                }
            },
        };
        if buf[..n].trim_ascii_end() != REQUEST {
            continue;
        }
        debug!(service = "discovery", peer = %from, "discovery request");
        if let Err(e) = socket.send_to(&answer, from).await {
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
    for t in targets {
        if let Err(e) = socket.send_to(REQUEST, t).await {
            debug!(target = %t, error = %e, "discovery send failed");
        }
    }
    let deadline = tokio::time::Instant::now() + wait;
    let mut found = Vec::new();
    let mut ids = HashSet::new();
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
