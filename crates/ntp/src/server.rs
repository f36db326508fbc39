//! The NTP server (RFC 5905 server mode): answers client requests from the host clock,
//! behaving as chrony does where the RFC leaves a choice.
//!
//! - Only mode 3 (client) requests of version 3 and 4 are answered, with mode 4 and the
//!   same version. Modes 6 and 7 (control and private: `ntpq`, the monlist amplifier)
//!   and every other mode get no answer; nor do datagrams under 48 bytes or with
//!   malformed extension fields.
//! - A reply is never larger than its request. A request with extension fields the
//!   server does not use gets a plain 48-byte reply (unknown fields are ignored).
//! - The host clock's kernel state ([`ClockState`]) decides what the server claims:
//!   synchronized by some daemon → [`ServerConfig::synced_stratum`]; otherwise chrony's
//!   `local stratum 10`: [`ServerConfig::local_stratum`], reference id `LOCL`, leap 0.
//! - Over the per-source rate limit, [`NtpServer::over_rate`] answers a Kiss-o'-Death
//!   `RATE` (at most once a second per source, the runtime's rule).
//! - With NTS ([`NtpServer::with_nts`]), an NTPv4 request with extension fields is
//!   handed to [`crate::nts::NtsServer`], which authenticates it and seals the reply.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use sockit_runtime::udp::{Arrival, UdpService};

use crate::clock::{self, ClockState};
use crate::nts::{NtsRequest, NtsServer};
use crate::packet::{
    parse_extension_fields, Header, NtpShort, NtpTimestamp, LEAP_NONE, LEAP_UNSYNCHRONIZED,
    MODE_CLIENT, MODE_SERVER,
};

/// Reference id of the local clock: the server is not synchronized and serves its own
/// clock at [`ServerConfig::local_stratum`].
pub const REFID_LOCAL: [u8; 4] = *b"LOCL";
/// Kiss code: the client sends too fast.
pub const KISS_RATE: [u8; 4] = *b"RATE";
/// Kiss code: NTS could not authenticate the request (RFC 8915 §5.7).
pub const KISS_NTS_NAK: [u8; 4] = *b"NTSN";

/// The largest poll exponent a reply carries (RFC 5905's MAXPOLL, 36 hours).
pub const MAX_POLL: i8 = 17;

/// How long a read of the kernel clock state is reused before it is read again.
pub const CLOCK_STATE_MAX_AGE: Duration = Duration::from_secs(1);

/// RFC 5905's PHI: the frequency tolerance by which dispersion grows, 15 ppm.
const PHI: f64 = 15e-6;

/// What the server claims about its clock.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    /// Stratum served while the host clock is not synchronized, with reference id
    /// [`REFID_LOCAL`] and leap 0, as chrony's `local stratum 10`: the clock is served as
    /// it is, and the high stratum tells clients to prefer any better source. Clamped
    /// to 1..=15. Default 10.
    pub local_stratum: u8,
    /// Stratum served while the kernel says a daemon keeps the host clock synchronized.
    /// The kernel does not say the daemon's stratum, so this is a claim to configure:
    /// one more than the upstream's. Clamped to 1..=15. Default 2.
    pub synced_stratum: u8,
    /// Reference id served while synchronized. At stratum 2 and above a reference id is
    /// the upstream server's IPv4 address, used by clients to detect loops; the kernel
    /// does not name the upstream, so the default is 127.127.1.0, an address no NTP
    /// server has (ntpd's local-clock pseudo address), which never matches a client.
    pub synced_reference_id: [u8; 4],
    /// Root distance (root delay / 2 + root dispersion) above which a synchronized clock
    /// is served as the local clock instead, as chrony's `local distance`. Default 1 s.
    pub local_distance: Duration,
    /// The smallest poll exponent a reply carries: the client's poll is echoed, raised to
    /// at least this (chrony raises it to its rate-limit interval, ntpd to its minimum
    /// poll), and lowered to at most [`MAX_POLL`]. Default 3 (8 s).
    pub min_poll: i8,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            local_stratum: 10,
            synced_stratum: 2,
            synced_reference_id: [127, 127, 1, 0],
            local_distance: Duration::from_secs(1),
            min_poll: 3,
        }
    }
}

/// The clock fields of a reply, decided from the host clock's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    /// Leap indicator.
    pub leap: u8,
    /// Stratum.
    pub stratum: u8,
    /// Reference id.
    pub reference_id: [u8; 4],
    /// Reference timestamp.
    pub reference_ts: NtpTimestamp,
    /// Root delay.
    pub root_delay: NtpShort,
    /// Root dispersion.
    pub root_dispersion: NtpShort,
}

impl Reference {
    /// What `config` serves for a clock in `state`, read at `read_at`, at `now`.
    ///
    /// Synchronized (and within [`ServerConfig::local_distance`]): the kernel's leap, the
    /// synced stratum and reference id, reference time `read_at`, root delay 0 and root
    /// dispersion the kernel's maximum error (which the daemon set to half its root delay
    /// plus its root dispersion) grown by 15 ppm since it was read. Otherwise the local clock,
    /// as chrony: leap 0, the local stratum, `LOCL`, reference time a second ago, root
    /// delay and dispersion 0.
    pub fn decide(
        config: &ServerConfig,
        state: &ClockState,
        read_at: SystemTime,
        now: SystemTime,
    ) -> Reference {
        if state.synchronized && state.max_error <= config.local_distance {
            let read_at = read_at.min(now);
            let age = now.duration_since(read_at).unwrap_or_default();
            Reference {
                leap: state.leap,
                stratum: config.synced_stratum.clamp(1, 15),
                reference_id: config.synced_reference_id,
                reference_ts: NtpTimestamp::from_system(read_at),
                root_delay: NtpShort(0),
                root_dispersion: NtpShort::from_seconds(
                    state.max_error.as_secs_f64() + age.as_secs_f64() * PHI,
                ),
            }
        } else {
            Reference {
                leap: LEAP_NONE,
                stratum: config.local_stratum.clamp(1, 15),
                reference_id: REFID_LOCAL,
                reference_ts: NtpTimestamp::from_system(
                    now.checked_sub(Duration::from_secs(1)).unwrap_or(now),
                ),
                root_delay: NtpShort(0),
                root_dispersion: NtpShort(0),
            }
        }
    }
}

/// Where the server's clock state comes from.
enum ClockSource {
    /// The kernel, read at most every [`CLOCK_STATE_MAX_AGE`]: the read's monotonic and
    /// wall time, and what it returned.
    Kernel(Mutex<Option<(Instant, SystemTime, ClockState)>>),
    /// A fixed state (tests, fuzzing, or a clock known by other means).
    Fixed(ClockState),
}

/// The NTP server: a [`UdpService`] for [`sockit_runtime::udp::serve_udp_with`].
pub struct NtpServer {
    config: ServerConfig,
    precision: i8,
    clock: ClockSource,
    nts: Option<Arc<NtsServer>>,
}

impl NtpServer {
    /// A server of the host clock, without NTS.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            precision: clock::precision(),
            clock: ClockSource::Kernel(Mutex::new(None)),
            nts: None,
        }
    }

    /// Also answers NTS-protected requests (RFC 8915) with `nts`.
    pub fn with_nts(mut self, nts: Arc<NtsServer>) -> Self {
        self.nts = Some(nts);
        self
    }

    /// Serves as if the host clock were always in `state` instead of reading the kernel.
    pub fn with_clock_state(mut self, state: ClockState) -> Self {
        self.clock = ClockSource::Fixed(state);
        self
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The precision exponent the replies carry.
    pub fn precision(&self) -> i8 {
        self.precision
    }

    /// The clock fields a reply sent `now` carries.
    pub fn reference(&self, now: SystemTime) -> Reference {
        let (read_at, state) = match &self.clock {
            ClockSource::Fixed(state) => (now, *state),
            ClockSource::Kernel(cache) => {
                let mut cache = cache.lock().unwrap_or_else(|p| p.into_inner());
                match *cache {
                    Some((read, wall, state)) if read.elapsed() < CLOCK_STATE_MAX_AGE => {
                        (wall, state)
                    }
                    _ => {
                        let state = ClockState::read();
                        let wall = SystemTime::now();
                        *cache = Some((Instant::now(), wall, state));
                        (wall, state)
                    }
                }
            }
        };
        Reference::decide(&self.config, &state, read_at, now)
    }

    /// The reply header to `request` (a mode 3 request), received at `received`; the
    /// transmit timestamp is left for the caller to set as late as it can.
    pub fn response_header(&self, request: &Header, received: SystemTime) -> Header {
        let reference = self.reference(received);
        Header {
            leap: reference.leap,
            version: request.version,
            mode: MODE_SERVER,
            stratum: reference.stratum,
            poll: request
                .poll
                .max(self.config.min_poll.min(MAX_POLL))
                .min(MAX_POLL),
            precision: self.precision,
            root_delay: reference.root_delay,
            root_dispersion: reference.root_dispersion,
            reference_id: reference.reference_id,
            reference_ts: reference.reference_ts,
            origin_ts: request.transmit_ts,
            receive_ts: NtpTimestamp::from_system(received),
            transmit_ts: NtpTimestamp::ZERO,
        }
    }

    /// The reply to `datagram`, received at `received`, in at most `limit` bytes (and
    /// never more than the request), or `None` for no reply.
    pub fn answer(&self, datagram: &[u8], limit: usize, received: SystemTime) -> Option<Vec<u8>> {
        let request = answerable(datagram)?;
        let fields = parse_extension_fields(datagram).ok()?;
        let limit = limit.min(datagram.len());
        let mut header = self.response_header(&request, received);
        let reply = match (&self.nts, request.version == 4 && !fields.is_empty()) {
            (Some(nts), true) => match nts.check_request(datagram, &fields) {
                NtsRequest::NotNts => None,
                NtsRequest::Valid(valid) => {
                    header.transmit_ts = NtpTimestamp::from_system(SystemTime::now());
                    Some(nts.seal_response(&header, &valid))
                }
                NtsRequest::Nak { unique_id } => Some(NtsServer::nak_response(
                    &kiss_header(&request, KISS_NTS_NAK),
                    &unique_id,
                )),
                NtsRequest::Drop => return None,
            },
            _ => None,
        };
        let reply = reply.unwrap_or_else(|| {
            header.transmit_ts = NtpTimestamp::from_system(SystemTime::now());
            header.to_bytes()
        });
        if reply.len() > limit {
            tracing::debug!(
                len = reply.len(),
                limit,
                "NTP reply larger than its request not sent"
            );
            return None;
        }
        Some(reply)
    }
}

/// The header of `datagram` when it is a request this server answers: mode 3, version 3
/// or 4, at least 48 bytes.
fn answerable(datagram: &[u8]) -> Option<Header> {
    let request = Header::parse(datagram).ok()?;
    (request.mode == MODE_CLIENT && (3..=4).contains(&request.version)).then_some(request)
}

/// A Kiss-o'-Death answering `request` with `code` (RFC 5905 §7.4): leap 3, stratum 0,
/// the code as reference id, the request's version and poll. As ntpd does, the client's
/// transmit timestamp is echoed in origin, receive and transmit, so the client can match
/// it while it carries no time at all.
pub fn kiss_header(request: &Header, code: [u8; 4]) -> Header {
    Header {
        leap: LEAP_UNSYNCHRONIZED,
        version: request.version,
        mode: MODE_SERVER,
        stratum: 0,
        poll: request.poll,
        precision: 0,
        root_delay: NtpShort(0),
        root_dispersion: NtpShort(0),
        reference_id: code,
        reference_ts: NtpTimestamp::ZERO,
        origin_ts: request.transmit_ts,
        receive_ts: request.transmit_ts,
        transmit_ts: request.transmit_ts,
    }
}

impl UdpService for NtpServer {
    fn name(&self) -> &'static str {
        "ntp"
    }

    fn respond(&self, datagram: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
        self.answer(datagram, datagram.len(), SystemTime::now())
    }

    fn respond_within(&self, datagram: &[u8], _peer: SocketAddr, limit: usize) -> Option<Vec<u8>> {
        self.answer(datagram, limit, SystemTime::now())
    }

    fn respond_at(
        &self,
        datagram: &[u8],
        _peer: SocketAddr,
        limit: usize,
        arrival: Arrival,
    ) -> Option<Vec<u8>> {
        self.answer(datagram, limit, arrival.at)
    }

    fn wants_kernel_timestamps(&self) -> bool {
        true
    }

    fn over_rate(&self, datagram: &[u8], _peer: SocketAddr, limit: usize) -> Option<Vec<u8>> {
        let request = answerable(datagram)?;
        let reply = kiss_header(&request, KISS_RATE).to_bytes();
        (reply.len() <= limit.min(datagram.len())).then_some(reply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{
        write_extension_field, HEADER_LEN, LEAP_INSERT, MODE_CONTROL, MODE_PRIVATE,
    };
    use std::time::UNIX_EPOCH;

    const SYNCED: ClockState = ClockState {
        leap: LEAP_INSERT,
        synchronized: true,
        max_error: Duration::from_millis(20),
        est_error: Duration::from_millis(1),
    };

    fn peer() -> SocketAddr {
        "192.0.2.1:123".parse().unwrap()
    }

    fn request(version: u8, mode: u8) -> Vec<u8> {
        let mut h = Header::ZERO;
        h.version = version;
        h.mode = mode;
        h.poll = 6;
        h.transmit_ts = NtpTimestamp(0x1122_3344_5566_7788);
        h.to_bytes()
    }

    fn server(state: ClockState) -> NtpServer {
        NtpServer::new(ServerConfig::default()).with_clock_state(state)
    }

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn answers_a_v4_client() {
        let s = server(ClockState::UNSYNCHRONIZED);
        let received = SystemTime::now();
        let reply = s.answer(&request(4, MODE_CLIENT), 1000, received).unwrap();
        assert_eq!(reply.len(), HEADER_LEN);
        let h = Header::parse(&reply).unwrap();
        assert_eq!((h.version, h.mode), (4, MODE_SERVER));
        assert_eq!(h.origin_ts, NtpTimestamp(0x1122_3344_5566_7788));
        assert_eq!(h.receive_ts, NtpTimestamp::from_system(received));
        assert!(h.transmit_ts >= h.receive_ts);
        assert_eq!(h.poll, 6);
        assert_eq!(h.precision, s.precision());
    }

    #[test]
    fn v3_is_answered_v3() {
        let reply = server(SYNCED)
            .answer(&request(3, MODE_CLIENT), 1000, SystemTime::now())
            .unwrap();
        assert_eq!(Header::parse(&reply).unwrap().version, 3);
    }

    #[test]
    fn other_versions_and_modes_are_not_answered() {
        let s = server(SYNCED);
        for (v, m) in [
            (2, 3),
            (5, 3),
            (4, 1),
            (4, 2),
            (4, 4),
            (4, 5),
            (4, MODE_CONTROL),
            (4, MODE_PRIVATE),
            (4, 0),
        ] {
            assert_eq!(
                s.answer(&request(v, m), 1000, SystemTime::now()),
                None,
                "v{v} mode {m}"
            );
        }
    }

    #[test]
    fn short_datagrams_are_not_answered() {
        let s = server(SYNCED);
        let r = request(4, MODE_CLIENT);
        assert_eq!(s.answer(&r[..47], 1000, SystemTime::now()), None);
        assert_eq!(s.over_rate(&r[..47], peer(), 1000), None);
    }

    #[test]
    fn unsynchronized_serves_the_local_clock() {
        let now = at(1_700_000_000);
        let h = Header::parse(
            &server(ClockState::UNSYNCHRONIZED)
                .answer(&request(4, 3), 1000, now)
                .unwrap(),
        )
        .unwrap();
        assert_eq!((h.leap, h.stratum, &h.reference_id), (0, 10, b"LOCL"));
        assert_eq!(h.reference_ts, NtpTimestamp::from_system(at(1_699_999_999)));
        assert_eq!(
            (h.root_delay, h.root_dispersion),
            (NtpShort(0), NtpShort(0))
        );
    }

    #[test]
    fn synchronized_serves_the_kernel_state() {
        let h = Header::parse(
            &server(SYNCED)
                .answer(&request(4, 3), 1000, SystemTime::now())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            (h.leap, h.stratum, h.reference_id),
            (LEAP_INSERT, 2, [127, 127, 1, 0])
        );
        assert_eq!(
            h.root_dispersion,
            NtpShort::from_duration(Duration::from_millis(20))
        );
    }

    #[test]
    fn dispersion_grows_with_the_age_of_the_state() {
        let config = ServerConfig::default();
        let r = Reference::decide(&config, &SYNCED, at(1000), at(1100));
        assert_eq!(
            r.root_dispersion,
            NtpShort::from_seconds(0.020 + 100.0 * 15e-6)
        );
        assert_eq!(r.reference_ts, NtpTimestamp::from_system(at(1000)));
    }

    #[test]
    fn a_large_error_falls_back_to_local() {
        let mut state = SYNCED;
        state.max_error = Duration::from_secs(2);
        let r = Reference::decide(&ServerConfig::default(), &state, at(1000), at(1000));
        assert_eq!((r.stratum, r.reference_id, r.leap), (10, REFID_LOCAL, 0));
    }

    #[test]
    fn strata_are_clamped() {
        let config = ServerConfig {
            local_stratum: 0,
            synced_stratum: 200,
            ..ServerConfig::default()
        };
        assert_eq!(
            Reference::decide(&config, &ClockState::UNSYNCHRONIZED, at(1), at(1)).stratum,
            1
        );
        assert_eq!(
            Reference::decide(&config, &SYNCED, at(1), at(1)).stratum,
            15
        );
    }

    #[test]
    fn poll_is_echoed_within_bounds() {
        let s = server(SYNCED);
        for (asked, got) in [(6, 6), (0, 3), (-6, 3), (17, 17), (30, 17)] {
            let mut h = Header::parse(&request(4, 3)).unwrap();
            h.poll = asked;
            assert_eq!(
                s.response_header(&h, SystemTime::now()).poll,
                got,
                "asked {asked}"
            );
        }
    }

    #[test]
    fn unknown_fields_get_a_plain_reply() {
        let mut r = request(4, MODE_CLIENT);
        write_extension_field(&mut r, 0x7777, &[1; 40]);
        let reply = server(SYNCED).answer(&r, 1000, SystemTime::now()).unwrap();
        assert_eq!(reply.len(), HEADER_LEN);
    }

    #[test]
    fn a_legacy_mac_gets_a_plain_reply() {
        let mut r = request(3, MODE_CLIENT);
        r.extend_from_slice(&[0xaa; 20]);
        assert_eq!(
            server(SYNCED)
                .answer(&r, 1000, SystemTime::now())
                .unwrap()
                .len(),
            HEADER_LEN
        );
    }

    #[test]
    fn malformed_fields_are_dropped() {
        let mut r = request(4, MODE_CLIENT);
        r.extend_from_slice(&[0, 1, 0, 99, 0, 0, 0, 0]);
        assert_eq!(server(SYNCED).answer(&r, 1000, SystemTime::now()), None);
    }

    #[test]
    fn kiss_of_death_rate() {
        let reply = server(SYNCED)
            .over_rate(&request(3, MODE_CLIENT), peer(), 1000)
            .unwrap();
        assert_eq!(reply.len(), HEADER_LEN);
        let h = Header::parse(&reply).unwrap();
        assert_eq!(
            (h.leap, h.version, h.mode, h.stratum),
            (3, 3, MODE_SERVER, 0)
        );
        assert_eq!(h.kiss_code(), Some(KISS_RATE));
        assert_eq!(h.origin_ts, NtpTimestamp(0x1122_3344_5566_7788));
    }

    #[test]
    fn no_kiss_for_what_would_not_be_answered() {
        let s = server(SYNCED);
        assert_eq!(s.over_rate(&request(4, MODE_PRIVATE), peer(), 1000), None);
        assert_eq!(s.over_rate(&request(4, MODE_SERVER), peer(), 1000), None);
    }

    #[test]
    fn the_kernel_clock_serves() {
        let s = NtpServer::new(ServerConfig::default());
        let reply = s.respond(&request(4, MODE_CLIENT), peer()).unwrap();
        let h = Header::parse(&reply).unwrap();
        assert!(h.stratum == 2 || h.stratum == 10, "stratum {}", h.stratum);
        assert!(s.wants_kernel_timestamps());
        assert_eq!(s.name(), "ntp");
    }
}
