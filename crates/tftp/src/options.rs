//! Typed TFTP options and their negotiation (RFC 2347, 2348, 2349, 7440).
//!
//! A request carries `name`/`value` pairs ([`RawOption`]). The server reads the ones it
//! knows into [`RequestedOptions`] (unknown names and malformed values are ignored, as
//! RFC 2347 says), decides the values with [`negotiate`] and answers with an OACK that
//! lists only what it accepted. The client checks that OACK with [`accept_oack`].

use crate::packets::RawOption;
use std::time::Duration;

pub use crate::packets::Mode;

/// Smallest block size RFC 2348 allows.
pub const MIN_BLKSIZE: u16 = 8;
/// Largest block size RFC 2348 allows (65535 − 20 IP − 8 UDP − 4 TFTP − 39 spare, per RFC).
pub const MAX_BLKSIZE: u16 = 65464;
/// The block size without the option (RFC 1350).
pub const DEFAULT_BLKSIZE: u16 = 512;
/// Smallest and largest `timeout` option values in seconds (RFC 2349).
pub const TIMEOUT_RANGE: std::ops::RangeInclusive<u8> = 1..=255;

/// The options of a request this crate understands; `None` = not requested (or ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RequestedOptions {
    /// `blksize` (RFC 2348), 8–65464 bytes of data per block. Larger requests are kept as
    /// sent so the server can answer with its own maximum; smaller ones are ignored.
    pub blksize: Option<u16>,
    /// `timeout` (RFC 2349), 1–255 seconds between retransmissions.
    pub timeout: Option<u8>,
    /// `tsize` (RFC 2349): 0 in a RRQ (asking the size), the file size in a WRQ.
    pub tsize: Option<u64>,
    /// `windowsize` (RFC 7440), 1–65535 blocks sent before waiting for an ACK.
    pub windowsize: Option<u16>,
}

impl RequestedOptions {
    /// Reads the known options; unknown names and out-of-range or non-numeric values are
    /// ignored (the option is then simply not acknowledged, RFC 2347).
    pub fn from_raw(raw: &[RawOption<'_>]) -> RequestedOptions {
        let mut options = RequestedOptions::default();
        for option in raw {
            let name = option.name;
            let value = option.value.trim();
            if name.eq_ignore_ascii_case("blksize") {
                // Values above the maximum are clamped by negotiate(); below 8 are invalid.
                options.blksize = match value.parse::<u64>() {
                    Ok(n) if n >= u64::from(MIN_BLKSIZE) => {
                        Some(u16::try_from(n).unwrap_or(u16::MAX))
                    }
                    _ => None,
                };
            } else if name.eq_ignore_ascii_case("timeout") {
                options.timeout = value
                    .parse::<u8>()
                    .ok()
                    .filter(|t| TIMEOUT_RANGE.contains(t));
            } else if name.eq_ignore_ascii_case("tsize") {
                options.tsize = value.parse::<u64>().ok();
            } else if name.eq_ignore_ascii_case("windowsize") {
                options.windowsize = value.parse::<u16>().ok().filter(|&w| w >= 1);
            }
        }
        options
    }

    /// The options as `name`/`value` strings, in the order tftp-hpa sends them.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = Vec::new();
        if let Some(v) = self.tsize {
            pairs.push(("tsize", v.to_string()));
        }
        if let Some(v) = self.blksize {
            pairs.push(("blksize", v.to_string()));
        }
        if let Some(v) = self.timeout {
            pairs.push(("timeout", v.to_string()));
        }
        if let Some(v) = self.windowsize {
            pairs.push(("windowsize", v.to_string()));
        }
        pairs
    }

    /// True when no option is requested (a plain RFC 1350 request).
    pub fn is_empty(&self) -> bool {
        *self == RequestedOptions::default()
    }
}

/// What a transfer runs with once negotiation is over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// Bytes of data per block.
    pub blksize: u16,
    /// Blocks per window (1 = RFC 1350 lock-step).
    pub windowsize: u16,
    /// Initial retransmission interval.
    pub timeout: Duration,
    /// The transfer size announced by the peer, if any.
    pub tsize: Option<u64>,
    /// True when an OACK was exchanged (options in force), false for plain RFC 1350.
    pub oack: bool,
}

impl Negotiated {
    /// RFC 1350 defaults with the given retransmission interval.
    pub fn plain(timeout: Duration) -> Negotiated {
        Negotiated {
            blksize: DEFAULT_BLKSIZE,
            windowsize: 1,
            timeout,
            tsize: None,
            oack: false,
        }
    }
}

/// The server's limits applied while negotiating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest block size granted (requests above are answered with this value).
    pub max_blksize: u16,
    /// Largest window granted.
    pub max_windowsize: u16,
    /// Cap on `blksize × windowsize`, the bytes a sender keeps for retransmission.
    pub max_window_bytes: usize,
    /// Retransmission interval when the client sends no `timeout` option.
    pub default_timeout: Duration,
}

/// Whether the request reads or writes, with what the server knows about the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// RRQ; `size` is the file size when `tsize` can be answered (octet mode).
    Read {
        /// The file size to report in `tsize`, if known.
        size: Option<u64>,
    },
    /// WRQ.
    Write,
}

/// Decides the values for a request and the OACK pairs to send (empty = send no OACK).
pub fn negotiate(
    requested: &RequestedOptions,
    limits: &Limits,
    direction: Direction,
) -> (Negotiated, Vec<(&'static str, String)>) {
    let mut negotiated = Negotiated::plain(limits.default_timeout);
    let mut oack = Vec::new();
    if let Some(blksize) = requested.blksize {
        let granted = blksize.min(limits.max_blksize).min(MAX_BLKSIZE);
        negotiated.blksize = granted;
        oack.push(("blksize", granted.to_string()));
    }
    if let Some(timeout) = requested.timeout {
        negotiated.timeout = Duration::from_secs(u64::from(timeout));
        oack.push(("timeout", timeout.to_string()));
    }
    match (requested.tsize, direction) {
        (Some(_), Direction::Read { size: Some(size) }) => {
            negotiated.tsize = Some(size);
            oack.push(("tsize", size.to_string()));
        }
        (Some(size), Direction::Write) => {
            negotiated.tsize = Some(size);
            oack.push(("tsize", size.to_string()));
        }
        _ => {}
    }
    if let Some(windowsize) = requested.windowsize {
        let by_memory = (limits.max_window_bytes / usize::from(negotiated.blksize)).max(1);
        let by_memory = u16::try_from(by_memory).unwrap_or(u16::MAX);
        let granted = windowsize.min(limits.max_windowsize).min(by_memory).max(1);
        negotiated.windowsize = granted;
        oack.push(("windowsize", granted.to_string()));
    }
    negotiated.oack = !oack.is_empty();
    (negotiated, oack)
}

/// Why a client refuses a server's OACK (it then sends ERROR 8).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OackError {
    /// A value is not a number or is outside what was requested / what the RFC allows.
    #[error("option {name} has an unacceptable value {value:?}")]
    BadValue {
        /// Option name.
        name: String,
        /// Value sent by the server.
        value: String,
    },
}

/// Checks a server's OACK against what the client requested and returns the values in
/// force. Unknown options are ignored; known ones must be within the RFC ranges and not
/// above what was requested.
///
/// # Errors
/// [`OackError::BadValue`] when a value is unacceptable.
pub fn accept_oack(
    requested: &RequestedOptions,
    oack: &[RawOption<'_>],
    timeout: Duration,
) -> Result<Negotiated, OackError> {
    let mut negotiated = Negotiated::plain(timeout);
    negotiated.oack = true;
    for option in oack {
        let bad = || OackError::BadValue {
            name: option.name.to_owned(),
            value: option.value.to_owned(),
        };
        let name = option.name;
        let value = option.value.trim();
        if name.eq_ignore_ascii_case("blksize") {
            let v: u16 = value.parse().map_err(|_| bad())?;
            let max = requested.blksize.unwrap_or(MAX_BLKSIZE).min(MAX_BLKSIZE);
            if !(MIN_BLKSIZE..=max).contains(&v) {
                return Err(bad());
            }
            negotiated.blksize = v;
        } else if name.eq_ignore_ascii_case("windowsize") {
            let v: u16 = value.parse().map_err(|_| bad())?;
            if v == 0 || v > requested.windowsize.unwrap_or(1) {
                return Err(bad());
            }
            negotiated.windowsize = v;
        } else if name.eq_ignore_ascii_case("timeout") {
            let v: u8 = value.parse().map_err(|_| bad())?;
            if !TIMEOUT_RANGE.contains(&v) {
                return Err(bad());
            }
            negotiated.timeout = Duration::from_secs(u64::from(v));
        } else if name.eq_ignore_ascii_case("tsize") {
            negotiated.tsize = Some(value.parse().map_err(|_| bad())?);
        }
    }
    Ok(negotiated)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw<'a>(pairs: &[(&'a str, &'a str)]) -> Vec<RawOption<'a>> {
        pairs
            .iter()
            .map(|&(name, value)| RawOption { name, value })
            .collect()
    }

    fn limits() -> Limits {
        Limits {
            max_blksize: MAX_BLKSIZE,
            max_windowsize: 64,
            max_window_bytes: 1 << 20,
            default_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn known_options_case_insensitive() {
        let o = RequestedOptions::from_raw(&raw(&[
            ("BLKSIZE", "1468"),
            ("Timeout", "3"),
            ("tsize", "0"),
            ("windowSize", "16"),
        ]));
        assert_eq!(
            o,
            RequestedOptions {
                blksize: Some(1468),
                timeout: Some(3),
                tsize: Some(0),
                windowsize: Some(16)
            }
        );
    }

    #[test]
    fn unknown_options_ignored() {
        let o = RequestedOptions::from_raw(&raw(&[("multicast", ""), ("rollover", "0")]));
        assert!(o.is_empty());
    }

    #[test]
    fn blksize_below_minimum_ignored() {
        let o = RequestedOptions::from_raw(&raw(&[("blksize", "7")]));
        assert_eq!(o.blksize, None);
    }

    #[test]
    fn blksize_above_maximum_clamped() {
        let o = RequestedOptions::from_raw(&raw(&[("blksize", "100000")]));
        let (n, oack) = negotiate(&o, &limits(), Direction::Write);
        assert_eq!(n.blksize, MAX_BLKSIZE);
        assert_eq!(oack, vec![("blksize", "65464".to_string())]);
    }

    #[test]
    fn timeout_zero_ignored() {
        let o = RequestedOptions::from_raw(&raw(&[("timeout", "0")]));
        assert_eq!(o.timeout, None);
    }

    #[test]
    fn windowsize_zero_ignored() {
        let o = RequestedOptions::from_raw(&raw(&[("windowsize", "0")]));
        assert_eq!(o.windowsize, None);
    }

    #[test]
    fn windowsize_capped_by_memory() {
        let o = RequestedOptions::from_raw(&raw(&[("blksize", "65464"), ("windowsize", "64")]));
        let (n, _) = negotiate(&o, &limits(), Direction::Read { size: None });
        assert_eq!(n.windowsize, 16);
    }

    #[test]
    fn tsize_answered_with_file_size_on_read() {
        let o = RequestedOptions::from_raw(&raw(&[("tsize", "0")]));
        let (n, oack) = negotiate(&o, &limits(), Direction::Read { size: Some(1234) });
        assert_eq!(n.tsize, Some(1234));
        assert_eq!(oack, vec![("tsize", "1234".to_string())]);
    }

    #[test]
    fn tsize_omitted_when_size_unknown() {
        let o = RequestedOptions::from_raw(&raw(&[("tsize", "0")]));
        let (n, oack) = negotiate(&o, &limits(), Direction::Read { size: None });
        assert!(!n.oack);
        assert!(oack.is_empty());
    }

    #[test]
    fn no_options_no_oack() {
        let (n, oack) = negotiate(
            &RequestedOptions::default(),
            &limits(),
            Direction::Read { size: Some(1) },
        );
        assert_eq!(n, Negotiated::plain(Duration::from_secs(1)));
        assert!(oack.is_empty());
    }

    #[test]
    fn oack_larger_blksize_refused() {
        let req = RequestedOptions {
            blksize: Some(1024),
            ..Default::default()
        };
        assert!(accept_oack(&req, &raw(&[("blksize", "2048")]), Duration::from_secs(1)).is_err());
    }

    #[test]
    fn oack_smaller_values_accepted() {
        let req = RequestedOptions {
            blksize: Some(1468),
            windowsize: Some(16),
            tsize: Some(0),
            ..Default::default()
        };
        let n = accept_oack(
            &req,
            &raw(&[("blksize", "512"), ("windowsize", "4"), ("tsize", "99")]),
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!((n.blksize, n.windowsize, n.tsize), (512, 4, Some(99)));
    }

    #[test]
    fn oack_unrequested_windowsize_refused() {
        let req = RequestedOptions::default();
        assert!(accept_oack(&req, &raw(&[("windowsize", "8")]), Duration::from_secs(1)).is_err());
    }
}
