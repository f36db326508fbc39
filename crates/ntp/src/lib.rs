//! NTPv4 (RFC 5905) for sockit: the packet format, a server that answers client requests
//! from the host clock, a client that measures offset and delay, and Network Time Security
//! (RFC 8915): NTS-KE over TLS 1.3 and authenticated NTP packets.
//!
//! - [`packet`]: the NTP header, timestamps and extension fields (pure parsing);
//! - [`server`]: [`server::NtpServer`], which answers from the host clock and its
//!   [`ClockState`];
//! - [`client`]: what `sockit ntp` calls (offset and delay, optionally with NTS);
//! - [`nts`]: the key exchange, cookies and authenticated packets of NTS.

#![deny(missing_docs)]

pub mod client;
mod clock;
pub mod nts;
pub mod packet;
pub mod server;

pub use clock::ClockState;

/// The NTP service's default UDP port in `sockit serve` (123 needs root: `--port ntp=123`).
pub const NTP_PORT: u16 = 7123;

/// The NTS-KE port (RFC 8915's registered port), served over TLS with `--tls`.
pub const NTS_KE_PORT: u16 = 4460;
