//! NTPv4 (RFC 5905) for sockit: the packet format, a server that answers client requests
//! from the host clock, a client that measures offset and delay, and Network Time Security
//! (RFC 8915): NTS-KE over TLS 1.3 and authenticated NTP packets.

#![deny(missing_docs)]

pub mod client;
pub mod clock;
pub mod nts;
pub mod packet;
pub mod server;

/// The NTP service's default UDP port in `sockit serve` (123 needs root: `--port ntp=123`).
pub const NTP_PORT: u16 = 7123;

/// The NTS-KE port (RFC 8915's registered port), served over TLS with `--tls`.
pub const NTS_KE_PORT: u16 = 4460;
