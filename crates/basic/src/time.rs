//! time (RFC 868): the server sends the time as a 32-bit big-endian count of seconds since
//! 1900-01-01 00:00 UTC. Over TCP it sends on connect and closes; over UDP any datagram
//! (rdate sends an empty one) gets the 4 bytes back.
//!
//! The count wraps in 2036; both directions here work modulo 2^32 and the reader picks the
//! era nearest its own clock.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use sockit_runtime::server::{ConnInfo, ServiceStream, TcpService, UdpService};
use tokio::io::AsyncWriteExt;

/// Seconds from 1900-01-01 to 1970-01-01.
pub(crate) const EPOCH_OFFSET: u64 = 2_208_988_800;

/// The RFC 868 value for `t` (modulo 2^32).
pub(crate) fn to_rfc868(t: SystemTime) -> u32 {
    let unix = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    };
    (unix + EPOCH_OFFSET as i64).rem_euclid(1 << 32) as u32
}

/// The time for an RFC 868 value, in the 2^32-second era nearest to `reference`.
pub fn from_rfc868(value: u32, reference: SystemTime) -> SystemTime {
    let ref_1900 = reference
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
        + EPOCH_OFFSET as i64;
    let era = 1i64 << 32;
    let base = ref_1900 - ref_1900.rem_euclid(era);
    let candidates = [
        base - era + value as i64,
        base + value as i64,
        base + era + value as i64,
    ];
    let best = candidates
        .into_iter()
        .min_by_key(|c| (c - ref_1900).abs())
        .unwrap_or(base + value as i64);
    let unix = best - EPOCH_OFFSET as i64;
    if unix >= 0 {
        UNIX_EPOCH + Duration::from_secs(unix as u64)
    } else {
        UNIX_EPOCH - Duration::from_secs(unix.unsigned_abs())
    }
}

/// TCP time.
#[derive(Debug, Default, Clone)]
pub struct TimeTcp;

#[async_trait]
impl TcpService for TimeTcp {
    fn name(&self) -> &'static str {
        "time"
    }

    async fn handle(&self, mut stream: ServiceStream, _info: ConnInfo) -> io::Result<String> {
        stream
            .write_all(&to_rfc868(SystemTime::now()).to_be_bytes())
            .await?;
        stream.shutdown().await?;
        Ok("sent time".into())
    }
}

/// UDP time.
#[derive(Debug, Default, Clone)]
pub struct TimeUdp;

impl UdpService for TimeUdp {
    fn name(&self) -> &'static str {
        "time"
    }

    fn respond(&self, _datagram: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
        Some(to_rfc868(SystemTime::now()).to_be_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_epoch() {
        assert_eq!(to_rfc868(UNIX_EPOCH), 2_208_988_800);
    }

    #[test]
    fn known_date() {
        // 2000-01-01T00:00:00Z = 946684800 unix = 3155673600 since 1900 (RFC 868 table style).
        let t = UNIX_EPOCH + Duration::from_secs(946_684_800);
        assert_eq!(to_rfc868(t), 3_155_673_600);
        assert_eq!(from_rfc868(3_155_673_600, t), t);
    }

    #[test]
    fn wraps_in_2036_and_reads_back() {
        // 2036-02-07T06:28:16Z is 2^32 seconds after 1900.
        let wrap = UNIX_EPOCH + Duration::from_secs((1u64 << 32) - EPOCH_OFFSET);
        assert_eq!(to_rfc868(wrap), 0);
        let later = wrap + Duration::from_secs(10);
        assert_eq!(to_rfc868(later), 10);
        assert_eq!(from_rfc868(10, later), later);
        assert_eq!(from_rfc868(u32::MAX, later), wrap - Duration::from_secs(1));
    }
}
