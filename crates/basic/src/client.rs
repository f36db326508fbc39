//! The clients of the basic services: one UDP request/reply exchange with retries (echo,
//! daytime and time over UDP), and an RFC 868 time reading with the local clock's offset.
//! The CLI parses flags and prints; the protocol work is here.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use tokio::io::AsyncReadExt;
use tokio::net::{TcpStream, UdpSocket};

use crate::time::from_rfc868;

/// How long the time client waits, after the 4 bytes, for the close that tells an RFC 868
/// server from a server of another protocol.
const FOREIGN_CHECK: Duration = Duration::from_millis(500);

/// Why a basic-service client failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address did not resolve, or the socket could not be made.
    #[error("cannot reach {addr}")]
    Connect {
        /// The server address as given.
        addr: String,
        /// The cause.
        source: io::Error,
    },
    /// The server's host answered with ICMP port unreachable.
    #[error("{0} refused the datagram (nothing listens on that UDP port)")]
    Refused(SocketAddr),
    /// No reply to any of the tries: the whole wait is `tries × each`.
    #[error("no reply from {peer} after {tries} tries ({each:?} each); is the server running?")]
    NoReply {
        /// The server.
        peer: SocketAddr,
        /// Datagrams sent.
        tries: u32,
        /// The wait after each.
        each: Duration,
    },
    /// The server sent something that is not an RFC 868 reply.
    #[error("{addr} is not an RFC 868 time server: it sent `{sent}`")]
    NotRfc868 {
        /// The server address.
        addr: String,
        /// What it sent (trimmed, escaped).
        sent: String,
    },
    /// A UDP reply of the wrong length.
    #[error("server sent {0} bytes; RFC 868 replies are 4")]
    BadLength(usize),
    /// Any other socket error.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// How a UDP request is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// How long to wait for each reply.
    pub timeout: Duration,
    /// How many times to resend a request that got no reply.
    pub retries: u32,
}

impl Default for Retry {
    /// One second per try, two resends: a dead server is reported after 3 s.
    fn default() -> Retry {
        Retry {
            timeout: Duration::from_secs(1),
            retries: 2,
        }
    }
}

/// A UDP socket connected to `addr` (`host:port`).
///
/// # Errors
/// [`ClientError::Connect`] when the name does not resolve or the socket cannot be made.
pub async fn udp_connect(addr: &str) -> Result<UdpSocket, ClientError> {
    let connect = |source| ClientError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let target = tokio::net::lookup_host(addr)
        .await
        .map_err(connect)?
        .next()
        .ok_or_else(|| connect(io::Error::other("the name resolves to no address")))?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).await.map_err(connect)?;
    socket.connect(target).await.map_err(connect)?;
    Ok(socket)
}

/// Sends `request` on a connected socket and waits for one reply, resending on timeout.
///
/// # Errors
/// [`ClientError::Refused`], [`ClientError::NoReply`] after every try, or a socket error.
pub async fn udp_exchange(
    socket: &UdpSocket,
    request: &[u8],
    retry: Retry,
) -> Result<Vec<u8>, ClientError> {
    let mut buf = vec![0u8; 65536];
    for _ in 0..=retry.retries {
        socket.send(request).await?;
        match tokio::time::timeout(retry.timeout, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => return Ok(buf[..n].to_vec()),
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ClientError::Refused(socket.peer_addr()?))
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => continue,
        }
    }
    Err(ClientError::NoReply {
        peer: socket.peer_addr()?,
        tries: retry.retries + 1,
        each: retry.timeout,
    })
}

/// One RFC 868 reading.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimeReading {
    /// The 32-bit value the server sent (seconds since 1900, modulo 2^32).
    pub rfc868: u32,
    /// That value as a time, in the era nearest the local clock.
    pub server: SystemTime,
    /// Server minus local clock at the middle of the exchange, in seconds (RFC 868 counts
    /// whole seconds, so ±1 s is noise).
    pub offset_secs: f64,
    /// Request to reply.
    pub rtt: Duration,
}

impl TimeReading {
    fn new(bytes: [u8; 4], sent: SystemTime, received: SystemTime) -> TimeReading {
        let rtt = received.duration_since(sent).unwrap_or_default();
        let local_mid = sent + rtt / 2;
        let rfc868 = u32::from_be_bytes(bytes);
        let server = from_rfc868(rfc868, local_mid);
        TimeReading {
            rfc868,
            server,
            offset_secs: signed_secs(server, local_mid),
            rtt,
        }
    }
}

/// Reads the time over TCP: connect, 4 bytes, then the close that an RFC 868 server sends
/// (more bytes mean another protocol, whose first 4 bytes are no time).
///
/// # Errors
/// Connection errors, a short reply, or [`ClientError::NotRfc868`].
pub async fn time_tcp(addr: &str) -> Result<TimeReading, ClientError> {
    let sent = SystemTime::now();
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|source| ClientError::Connect {
            addr: addr.to_owned(),
            source,
        })?;
    let mut b = [0u8; 4];
    stream
        .read_exact(&mut b)
        .await
        .map_err(|e| io::Error::new(e.kind(), "server closed before sending 4 bytes"))?;
    let received = SystemTime::now();
    let mut more = [0u8; 60];
    if let Ok(Ok(n @ 1..)) = tokio::time::timeout(FOREIGN_CHECK, stream.read(&mut more)).await {
        let sent = [&b[..], &more[..n]].concat();
        return Err(ClientError::NotRfc868 {
            addr: addr.to_owned(),
            sent: String::from_utf8_lossy(&sent)
                .trim_end()
                .escape_debug()
                .to_string(),
        });
    }
    Ok(TimeReading::new(b, sent, received))
}

/// Reads the time over UDP (an empty datagram asks).
///
/// # Errors
/// As [`udp_exchange`], or [`ClientError::BadLength`].
pub async fn time_udp(addr: &str, retry: Retry) -> Result<TimeReading, ClientError> {
    let socket = udp_connect(addr).await?;
    let sent = SystemTime::now();
    let reply = udp_exchange(&socket, b"", retry).await?;
    let received = SystemTime::now();
    let bytes: [u8; 4] = reply
        .as_slice()
        .try_into()
        .map_err(|_| ClientError::BadLength(reply.len()))?;
    Ok(TimeReading::new(bytes, sent, received))
}

fn signed_secs(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(signed_secs(t + Duration::from_secs(2), t), 2.0);
        assert_eq!(signed_secs(t, t + Duration::from_millis(500)), -0.5);
    }

    #[test]
    fn a_reading_takes_the_middle_of_the_exchange() {
        let sent = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        let received = sent + Duration::from_secs(2);
        let value = (1_000_000_001u64 + crate::time::EPOCH_OFFSET) as u32;
        let r = TimeReading::new(value.to_be_bytes(), sent, received);
        assert_eq!(r.rtt, Duration::from_secs(2));
        assert_eq!(r.offset_secs, 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_server_is_reported_after_every_try() {
        let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let socket = udp_connect(&silent.local_addr().unwrap().to_string())
            .await
            .unwrap();
        let started = tokio::time::Instant::now();
        let err = udp_exchange(&socket, b"x", Retry::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ClientError::NoReply { tries: 3, .. }),
            "{err:?}"
        );
        assert_eq!(started.elapsed(), Duration::from_secs(3));
    }
}
