//! The NTP client: measures the offset of the local clock from a server's and the
//! round-trip delay (RFC 5905 §8), and can step the local clock.
//!
//! Each request carries random bits in its transmit timestamp instead of the real send
//! time (kept locally), as chrony and ntpd-rs do: a reply counts only when its origin
//! timestamp echoes them, so an off-path attacker cannot forge replies and the request
//! reveals nothing about the local clock. Of several samples, the one with the lowest
//! delay is kept: its offset has the smallest error bound (delay / 2).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use thiserror::Error;
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::packet::{Header, NtpTimestamp, LEAP_UNSYNCHRONIZED, MODE_CLIENT, MODE_SERVER};

/// How [`query`] samples a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryOptions {
    /// Requests to send (at least 1). Default 4.
    pub samples: usize,
    /// Time between requests. Default 2 s, the shortest interval ntpd's default rate
    /// limit (`discard minimum`) lets through without a Kiss-o'-Death.
    pub interval: Duration,
    /// Deadline for the whole query, from the first request. Default 10 s.
    pub timeout: Duration,
    /// NTP version of the requests (1..=4). Default 4.
    pub version: u8,
}

impl Default for QueryOptions {
    fn default() -> Self {
        Self {
            samples: 4,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(10),
            version: 4,
        }
    }
}

/// One measurement against a server: the best (lowest delay) of the replies to a query.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds to add to the local clock to agree with the server's:
    /// ((T2 − T1) + (T3 − T4)) / 2.
    pub offset: f64,
    /// Round-trip delay in seconds, without the server's processing time:
    /// (T4 − T1) − (T3 − T2), at least 0.
    pub delay: f64,
    /// The reply's version.
    pub version: u8,
    /// The server's stratum (1 primary, 2..=15 secondary).
    pub stratum: u8,
    /// The server's reference id as sent.
    pub reference_id: [u8; 4],
    /// The reference id as text ([`reference_text`]).
    pub reference: String,
    /// The server's leap indicator (0 none, 1 insert, 2 delete).
    pub leap: u8,
    /// The poll exponent of the reply.
    pub poll: i8,
    /// The server clock's precision exponent (log2 seconds).
    pub precision: i8,
    /// The server's root delay in seconds.
    pub root_delay: f64,
    /// The server's root dispersion in seconds.
    pub root_dispersion: f64,
    /// The server's time when it sent the reply (T3).
    pub server_time: SystemTime,
    /// The local time the reply arrived (T4).
    pub local_time: SystemTime,
    /// Requests sent.
    pub sent: usize,
    /// Replies that passed every check.
    pub valid: usize,
}

/// Why a query gave no sample.
#[derive(Debug, Error)]
pub enum ClientError {
    /// The options cannot make a query.
    #[error("invalid query options: {0}")]
    Options(&'static str),
    /// A socket operation failed.
    #[error("{op} failed: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// No acceptable reply came before the deadline.
    #[error("no reply from the server within {timeout:?} ({sent} requests sent)")]
    Timeout {
        /// Requests sent.
        sent: usize,
        /// The deadline.
        timeout: Duration,
    },
    /// The server answered with a Kiss-o'-Death: `RATE` (slow down), `DENY` or `RSTR`
    /// (access refused), `NTSN` (NTS cookie not accepted), ...
    #[error("the server sent a Kiss-o'-Death {code:?}{}", kiss_meaning(code))]
    Kiss {
        /// The four-letter kiss code.
        code: String,
    },
    /// The server says its clock is not synchronized (leap indicator 3 or stratum 16+).
    #[error("the server's clock is not synchronized (leap {leap}, stratum {stratum})")]
    Unsynchronized {
        /// The reply's leap indicator.
        leap: u8,
        /// The reply's stratum.
        stratum: u8,
    },
    /// Replies came but none was acceptable.
    #[error("every reply was rejected: {reason}")]
    Rejected {
        /// Why the last one was.
        reason: String,
    },
}

fn kiss_meaning(code: &str) -> &'static str {
    match code {
        "RATE" => ": requests too frequent",
        "DENY" | "RSTR" => ": access denied",
        "NTSN" => ": NTS authentication failed",
        _ => "",
    }
}

/// Builds requests and checks replies: where NTS (or another authentication) plugs into
/// the client. Plain NTP uses [`NoAuth`].
pub trait RequestAuth: Send {
    /// The whole request datagram for `header` (its 48 bytes, then whatever extension
    /// fields the scheme adds). Called once per request.
    fn extend(&mut self, header: &Header) -> Vec<u8>;

    /// Checks a reply whose origin timestamp matched one of the requests. An `Err` means
    /// the reply is ignored (it may be forged) and the client keeps waiting; its text is
    /// reported if no reply is accepted. A Kiss-o'-Death reaches here too: a scheme
    /// accepts only the ones it can authenticate (NTS: `NTSN` with a matching unique id).
    fn verify(&mut self, reply: &[u8]) -> Result<(), String>;
}

/// Plain NTP: a 48-byte request, no check beyond the origin timestamp.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoAuth;

impl RequestAuth for NoAuth {
    fn extend(&mut self, header: &Header) -> Vec<u8> {
        header.to_bytes()
    }

    fn verify(&mut self, _reply: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// Queries the NTP server at `addr` with plain NTP; see [`query_with`].
///
/// # Errors
/// As [`query_with`].
pub async fn query(addr: SocketAddr, opts: &QueryOptions) -> Result<Sample, ClientError> {
    query_with(addr, opts, &mut NoAuth).await
}

/// Sends `opts.samples` requests to `addr`, `opts.interval` apart, built and checked by
/// `auth`, and returns the accepted reply with the lowest delay. Waiting ends at
/// `opts.timeout` after the first request, when every request is answered, or once the
/// last request's interval has passed with at least one reply accepted. A Kiss-o'-Death ends the query (no further
/// requests are sent).
///
/// # Errors
/// [`ClientError::Options`] for zero samples or a version outside 1..=4;
/// [`ClientError::Io`] when the socket cannot be opened or a send fails; with no
/// accepted reply, [`ClientError::Kiss`] if a KoD came, else
/// [`ClientError::Unsynchronized`] if an unsynchronized reply came, else
/// [`ClientError::Rejected`] if any reply came, else [`ClientError::Io`] if receiving
/// failed (e.g. the port is unreachable), else [`ClientError::Timeout`].
pub async fn query_with(
    addr: SocketAddr,
    opts: &QueryOptions,
    auth: &mut dyn RequestAuth,
) -> Result<Sample, ClientError> {
    if opts.samples == 0 {
        return Err(ClientError::Options("samples must be at least 1"));
    }
    if !(1..=4).contains(&opts.version) {
        return Err(ClientError::Options("version must be 1 to 4"));
    }
    let local: SocketAddr = match addr.ip() {
        IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local)
        .await
        .map_err(|source| ClientError::Io { op: "bind", source })?;
    socket
        .connect(addr)
        .await
        .map_err(|source| ClientError::Io {
            op: "connect",
            source,
        })?;

    let start = Instant::now();
    let deadline = start + opts.timeout;
    let mut state = Query::default();
    let mut buf = vec![0u8; 4096];
    let mut sent = 0;
    while sent < opts.samples && !state.stopped && Instant::now() < deadline {
        let request = new_request(opts.version);
        let bytes = auth.extend(&request);
        let t1 = SystemTime::now();
        socket
            .send(&bytes)
            .await
            .map_err(|source| ClientError::Io { op: "send", source })?;
        state.outstanding.push((request.transmit_ts, t1));
        sent += 1;
        let last = sent == opts.samples;
        let next = (start + opts.interval * u32::try_from(sent).unwrap_or(u32::MAX)).min(deadline);
        loop {
            if state.stopped || (last && state.outstanding.is_empty()) {
                break;
            }
            // Before the last request's interval is over the next request is due; after
            // it, a sample in hand is enough and lost replies are not waited for.
            let wait_until = if !last || state.best.is_some() {
                next
            } else {
                deadline
            };
            let received = tokio::time::timeout_at(wait_until, socket.recv(&mut buf)).await;
            let t4 = SystemTime::now();
            match received {
                Err(_elapsed) => break,
                Ok(Err(e)) => state.last_error = Some(e),
                Ok(Ok(n)) => state.consider(&buf[..n], t4, auth),
            }
        }
    }
    state.finish(sent, opts.timeout)
}

/// A client request whose transmit timestamp is a random cookie.
fn new_request(version: u8) -> Header {
    let mut cookie = [0u8; 8];
    // Without randomness, the send time is a worse but still unpredictable-enough cookie.
    let transmit = match getrandom::getrandom(&mut cookie) {
        Ok(()) => NtpTimestamp(u64::from_ne_bytes(cookie)),
        Err(_) => NtpTimestamp::from_system(SystemTime::now()),
    };
    Header {
        version,
        mode: MODE_CLIENT,
        transmit_ts: transmit,
        ..Header::ZERO
    }
}

/// The replies of one query so far.
#[derive(Default)]
struct Query {
    /// Requests not yet answered: the cookie sent and the real send time (T1).
    outstanding: Vec<(NtpTimestamp, SystemTime)>,
    /// The lowest-delay sample accepted.
    best: Option<Sample>,
    valid: usize,
    kiss: Option<String>,
    unsynchronized: Option<(u8, u8)>,
    rejected: Option<String>,
    /// The last receive error (an ICMP port unreachable shows up as one).
    last_error: Option<io::Error>,
    /// A Kiss-o'-Death came: send no more.
    stopped: bool,
}

impl Query {
    fn consider(&mut self, reply: &[u8], t4: SystemTime, auth: &mut dyn RequestAuth) {
        let Ok(header) = Header::parse(reply) else {
            return;
        };
        let Some(index) = self
            .outstanding
            .iter()
            .position(|(cookie, _)| *cookie == header.origin_ts)
        else {
            return; // not an answer to us (or a duplicate)
        };
        if let Err(reason) = auth.verify(reply) {
            self.rejected = Some(reason);
            return;
        }
        let (_, t1) = self.outstanding.swap_remove(index);
        match judge(&header, t1, t4) {
            Verdict::Kiss(code) => {
                self.kiss = Some(code);
                self.stopped = true;
            }
            Verdict::Unsynchronized => self.unsynchronized = Some((header.leap, header.stratum)),
            Verdict::Rejected(reason) => self.rejected = Some(reason),
            Verdict::Sample(sample) => {
                self.valid += 1;
                if self.best.as_ref().is_none_or(|b| sample.delay < b.delay) {
                    self.best = Some(sample);
                }
            }
        }
    }

    fn finish(self, sent: usize, timeout: Duration) -> Result<Sample, ClientError> {
        if let Some(mut best) = self.best {
            best.sent = sent;
            best.valid = self.valid;
            return Ok(best);
        }
        if let Some(code) = self.kiss {
            return Err(ClientError::Kiss { code });
        }
        if let Some((leap, stratum)) = self.unsynchronized {
            return Err(ClientError::Unsynchronized { leap, stratum });
        }
        if let Some(reason) = self.rejected {
            return Err(ClientError::Rejected { reason });
        }
        if let Some(source) = self.last_error {
            return Err(ClientError::Io {
                op: "receive",
                source,
            });
        }
        Err(ClientError::Timeout { sent, timeout })
    }
}

enum Verdict {
    Sample(Sample),
    Kiss(String),
    Unsynchronized,
    Rejected(String),
}

/// Judges a reply (already matched to a request sent at `t1`) that arrived at `t4`.
fn judge(reply: &Header, t1: SystemTime, t4: SystemTime) -> Verdict {
    if reply.mode != MODE_SERVER {
        return Verdict::Rejected(format!("mode {} instead of 4 (server)", reply.mode));
    }
    if let Some(code) = reply.kiss_code() {
        return Verdict::Kiss(kiss_text(code));
    }
    if reply.leap == LEAP_UNSYNCHRONIZED || reply.stratum >= 16 {
        return Verdict::Unsynchronized;
    }
    if reply.receive_ts == NtpTimestamp::ZERO || reply.transmit_ts == NtpTimestamp::ZERO {
        return Verdict::Rejected("zero receive or transmit timestamp".into());
    }
    let (t1n, t4n) = (NtpTimestamp::from_system(t1), NtpTimestamp::from_system(t4));
    let (t2n, t3n) = (reply.receive_ts, reply.transmit_ts);
    let offset = (t2n.seconds_since(t1n) + t3n.seconds_since(t4n)) / 2.0;
    let delay = (t4n.seconds_since(t1n) - t3n.seconds_since(t2n)).max(0.0);
    Verdict::Sample(Sample {
        offset,
        delay,
        version: reply.version,
        stratum: reply.stratum,
        reference_id: reply.reference_id,
        reference: reference_text(reply.stratum, reply.reference_id),
        leap: reply.leap,
        poll: reply.poll,
        precision: reply.precision,
        root_delay: reply.root_delay.to_seconds(),
        root_dispersion: reply.root_dispersion.to_seconds(),
        server_time: t3n.to_system(t4),
        local_time: t4,
        sent: 0,
        valid: 0,
    })
}

/// A kiss code or stratum-1 reference id as text: its ASCII letters, others escaped.
fn kiss_text(code: [u8; 4]) -> String {
    code.iter()
        .take_while(|&&b| b != 0)
        .flat_map(|&b| std::ascii::escape_default(b))
        .map(char::from)
        .collect()
}

/// A reference id as people read it: text at stratum 0 and 1, and at any stratum when it
/// is upper-case letters and digits (the local clock's `LOCL` at stratum 10); otherwise
/// the upstream's IPv4 address.
pub fn reference_text(stratum: u8, reference_id: [u8; 4]) -> String {
    let word = reference_id[0] != 0
        && reference_id
            .iter()
            .take_while(|&&b| b != 0)
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if stratum <= 1 || word {
        kiss_text(reference_id)
    } else {
        Ipv4Addr::from(reference_id).to_string()
    }
}

/// Steps the local clock (`CLOCK_REALTIME`) by `offset` seconds, as a [`Sample`]'s
/// offset says.
///
/// # Errors
/// `InvalidInput` for an offset that is not finite or beyond ±10⁹ s; `PermissionDenied`
/// (with a message saying so) when the process may not set the clock: that needs root or
/// `CAP_SYS_TIME`.
pub fn step_clock(offset: f64) -> io::Result<()> {
    let now = read_realtime()?;
    let Some((sec, nsec)) = shifted(now, offset) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cannot step the clock by {offset} s"),
        ));
    };
    set_realtime(sec, nsec)
}

/// `now_ns` (nanoseconds since 1970) moved by `offset` seconds, as (seconds, nanoseconds).
fn shifted(now_ns: i128, offset: f64) -> Option<(i64, i64)> {
    if !offset.is_finite() || offset.abs() > 1e9 {
        return None;
    }
    let target = now_ns + (offset * 1e9).round() as i128;
    let sec = i64::try_from(target.div_euclid(1_000_000_000)).ok()?;
    Some((sec, target.rem_euclid(1_000_000_000) as i64))
}

fn read_realtime() -> io::Result<i128> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    if unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec))
}

#[allow(clippy::useless_conversion)] // `time_t` and `c_long` are 32 bits on some targets
fn set_realtime(sec: i64, nsec: i64) -> io::Result<()> {
    let ts = libc::timespec {
        tv_sec: sec
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "time out of range"))?,
        tv_nsec: nsec
            .try_into()
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "time out of range"))?,
    };
    // SAFETY: a valid clock id and a pointer to an initialized timespec.
    if unsafe { libc::clock_settime(libc::CLOCK_REALTIME, &ts) } == 0 {
        return Ok(());
    }
    let err = io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EPERM) {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "setting the clock needs root or the CAP_SYS_TIME capability",
        ));
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::NtpShort;
    use std::time::UNIX_EPOCH;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_700_000_000) + Duration::from_millis(ms)
    }

    fn reply(t2: SystemTime, t3: SystemTime) -> Header {
        Header {
            version: 4,
            mode: MODE_SERVER,
            stratum: 2,
            reference_id: [192, 0, 2, 7],
            root_dispersion: NtpShort(1 << 15),
            receive_ts: NtpTimestamp::from_system(t2),
            transmit_ts: NtpTimestamp::from_system(t3),
            ..Header::ZERO
        }
    }

    fn sample(v: Verdict) -> Sample {
        match v {
            Verdict::Sample(s) => s,
            _ => panic!("not a sample"),
        }
    }

    #[test]
    fn offset_and_delay() {
        // Server 500 ms ahead; 20 ms each way; 2 ms in the server.
        let s = sample(judge(&reply(at(520), at(522)), at(0), at(42)));
        assert!((s.offset - 0.5).abs() < 1e-6, "offset {}", s.offset);
        assert!((s.delay - 0.040).abs() < 1e-6, "delay {}", s.delay);
        assert_eq!(s.reference, "192.0.2.7");
        assert_eq!(s.root_dispersion, 0.5);
        assert_eq!(s.server_time, at(522));
    }

    #[test]
    fn server_behind_is_negative() {
        let s = sample(judge(&reply(at(10), at(11)), at(1000), at(1002)));
        assert!((s.offset - -0.9905).abs() < 1e-6, "offset {}", s.offset);
    }

    #[test]
    fn kiss_of_death() {
        let mut r = reply(at(1), at(1));
        r.stratum = 0;
        r.reference_id = *b"RATE";
        assert!(matches!(judge(&r, at(0), at(2)), Verdict::Kiss(c) if c == "RATE"));
        let e = ClientError::Kiss {
            code: "RATE".into(),
        };
        assert_eq!(
            e.to_string(),
            "the server sent a Kiss-o'-Death \"RATE\": requests too frequent"
        );
    }

    #[test]
    fn unsynchronized_replies() {
        let mut r = reply(at(1), at(1));
        r.leap = 3;
        assert!(matches!(judge(&r, at(0), at(2)), Verdict::Unsynchronized));
        let mut r = reply(at(1), at(1));
        r.stratum = 16;
        assert!(matches!(judge(&r, at(0), at(2)), Verdict::Unsynchronized));
    }

    #[test]
    fn wrong_mode_is_rejected() {
        let mut r = reply(at(1), at(1));
        r.mode = 2;
        assert!(matches!(judge(&r, at(0), at(2)), Verdict::Rejected(_)));
    }

    #[test]
    fn wrong_origin_is_ignored() {
        let mut q = Query::default();
        q.outstanding.push((NtpTimestamp(42), at(0)));
        let mut r = reply(at(1), at(1));
        r.origin_ts = NtpTimestamp(43);
        q.consider(&r.to_bytes(), at(2), &mut NoAuth);
        assert!(q.best.is_none() && q.rejected.is_none());
        r.origin_ts = NtpTimestamp(42);
        q.consider(&r.to_bytes(), at(2), &mut NoAuth);
        assert!(q.best.is_some());
        // the same reply again is a duplicate
        q.consider(&r.to_bytes(), at(2), &mut NoAuth);
        assert_eq!(q.valid, 1);
    }

    #[test]
    fn lowest_delay_wins() {
        let mut q = Query::default();
        q.outstanding.push((NtpTimestamp(1), at(0)));
        q.outstanding.push((NtpTimestamp(2), at(100)));
        let mut slow = reply(at(50), at(50));
        slow.origin_ts = NtpTimestamp(1);
        let mut fast = reply(at(105), at(105));
        fast.origin_ts = NtpTimestamp(2);
        q.consider(&slow.to_bytes(), at(100), &mut NoAuth);
        q.consider(&fast.to_bytes(), at(110), &mut NoAuth);
        let best = q.finish(2, Duration::from_secs(1)).unwrap();
        assert!((best.delay - 0.010).abs() < 1e-6);
        assert_eq!((best.sent, best.valid), (2, 2));
    }

    struct Refuse;
    impl RequestAuth for Refuse {
        fn extend(&mut self, header: &Header) -> Vec<u8> {
            header.to_bytes()
        }
        fn verify(&mut self, _reply: &[u8]) -> Result<(), String> {
            Err("no authenticator".into())
        }
    }

    #[test]
    fn failed_verification_keeps_the_request_open() {
        let mut q = Query::default();
        q.outstanding.push((NtpTimestamp(7), at(0)));
        let mut r = reply(at(1), at(1));
        r.origin_ts = NtpTimestamp(7);
        q.consider(&r.to_bytes(), at(2), &mut Refuse);
        assert_eq!(q.outstanding.len(), 1);
        let e = q.finish(1, Duration::from_secs(1)).unwrap_err();
        assert_eq!(e.to_string(), "every reply was rejected: no authenticator");
    }

    #[test]
    fn error_priority() {
        let q = Query {
            kiss: Some("DENY".into()),
            unsynchronized: Some((3, 0)),
            ..Query::default()
        };
        assert!(matches!(
            q.finish(1, Duration::ZERO),
            Err(ClientError::Kiss { .. })
        ));
        assert!(matches!(
            Query::default().finish(4, Duration::ZERO),
            Err(ClientError::Timeout { sent: 4, .. })
        ));
    }

    #[test]
    fn reference_texts() {
        assert_eq!(reference_text(1, *b"GPS\0"), "GPS");
        assert_eq!(reference_text(0, [b'R', 0xff, 0, 0]), "R\\xff");
        assert_eq!(reference_text(3, [10, 0, 0, 1]), "10.0.0.1");
        assert_eq!(reference_text(10, *b"LOCL"), "LOCL");
        assert_eq!(reference_text(2, [127, 127, 1, 0]), "127.127.1.0");
    }

    #[test]
    fn requests_carry_a_random_cookie() {
        let (a, b) = (new_request(4), new_request(4));
        assert_ne!(a.transmit_ts, b.transmit_ts);
        assert_eq!(
            (a.mode, a.version, a.origin_ts),
            (MODE_CLIENT, 4, NtpTimestamp::ZERO)
        );
    }

    #[test]
    fn step_arithmetic() {
        assert_eq!(shifted(10_500_000_000, 1.0), Some((11, 500_000_000)));
        assert_eq!(shifted(10_500_000_000, -0.75), Some((9, 750_000_000)));
        assert_eq!(shifted(0, -0.25), Some((-1, 750_000_000)));
        assert_eq!(shifted(0, f64::NAN), None);
        assert_eq!(shifted(0, 1e12), None);
    }

    #[test]
    fn stepping_by_nan_is_refused() {
        assert_eq!(
            step_clock(f64::INFINITY).unwrap_err().kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
