//! daytime (RFC 867) over TCP, and the course's strftime time server over UDP.
//!
//! - TCP: on connect the server sends the local time as one line
//!   (`Wed Nov 25 16:07:11 2026\r\n`, the format inetd uses) and closes.
//! - UDP: a datagram holds a strftime format (UTF-8, at most [`MAX_FORMAT_LEN`] bytes,
//!   trailing CR/LF ignored); the reply is the local time in that format, without a
//!   newline. An empty datagram means [`DEFAULT_UDP_FORMAT`]. An invalid or oversized
//!   format gets a reply starting with `error: `; it never crashes the server.
//! - UDP replies stay within the amplification budget (3× the request, counting 28 bytes
//!   of IPv4/UDP headers on each side; see `sockit_runtime::udp_guard`): a format whose
//!   reply would be longer is refused, not truncated, with
//!   `error: reply is N bytes, over 3x the request; pad to M bytes with newlines`. The
//!   client pads by appending newlines (they are ignored) until the request is M bytes.

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;

use async_trait::async_trait;
use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Local, TimeZone};
use sockit_runtime::server::{ConnInfo, ServiceStream, TcpService, UdpService};
use sockit_runtime::udp_guard::min_request_for;
use tokio::io::AsyncWriteExt;

/// The TCP reply format (inetd's).
pub(crate) const TCP_FORMAT: &str = "%a %b %e %H:%M:%S %Y";
/// The UDP format used for an empty datagram.
pub(crate) const DEFAULT_UDP_FORMAT: &str = "%Y-%m-%d %X";
/// The longest format accepted over UDP (trailing CR/LF padding not counted).
pub(crate) const MAX_FORMAT_LEN: usize = 256;

/// Why a format was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormatError {
    /// Over [`MAX_FORMAT_LEN`] bytes.
    #[error("format is {0} bytes; the limit is {MAX_FORMAT_LEN}")]
    TooLong(usize),
    /// Not UTF-8.
    #[error("format is not valid UTF-8")]
    NotUtf8,
    /// Contains an unknown or incomplete `%` specifier.
    #[error("invalid strftime format {0:?}")]
    Invalid(String),
}

/// Formats `time` with a strftime `format` (pure; never panics).
///
/// # Errors
/// An invalid format.
pub(crate) fn format_time<Tz: TimeZone>(
    time: &DateTime<Tz>,
    format: &str,
) -> Result<String, FormatError>
where
    Tz::Offset: std::fmt::Display,
{
    let items: Vec<Item<'_>> = StrftimeItems::new(format).collect();
    if items.iter().any(|i| matches!(i, Item::Error)) {
        return Err(FormatError::Invalid(format.to_owned()));
    }
    let mut out = String::new();
    write!(out, "{}", time.format_with_items(items.iter()))
        .map_err(|_| FormatError::Invalid(format.to_owned()))?;
    Ok(out)
}

/// The UDP reply for a datagram at `time` (pure).
pub(crate) fn udp_reply<Tz: TimeZone>(datagram: &[u8], time: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let result = parse_format(datagram).and_then(|f| format_time(time, f));
    match result {
        Ok(text) => text,
        Err(e) => format!("error: {e}"),
    }
}

/// The UDP reply for a datagram at `time` when at most `limit` bytes may be sent (pure):
/// [`udp_reply`], or a short refusal that says how far to pad the request.
pub(crate) fn udp_reply_within<Tz: TimeZone>(
    datagram: &[u8],
    time: &DateTime<Tz>,
    limit: usize,
) -> String
where
    Tz::Offset: std::fmt::Display,
{
    let reply = udp_reply(datagram, time);
    if reply.len() <= limit {
        return reply;
    }
    let pad_to = min_request_for(reply.len());
    let refusal = format!(
        "error: reply is {} bytes, over 3x the request; pad to {pad_to} bytes with newlines",
        reply.len()
    );
    if refusal.len() <= limit {
        refusal
    } else {
        // Always within the budget: an empty request may get 56 bytes.
        "error: reply over 3x the request".to_owned()
    }
}

fn parse_format(datagram: &[u8]) -> Result<&str, FormatError> {
    let end = datagram
        .iter()
        .rposition(|b| *b != b'\r' && *b != b'\n')
        .map_or(0, |i| i + 1);
    let datagram = &datagram[..end];
    if datagram.len() > MAX_FORMAT_LEN {
        return Err(FormatError::TooLong(datagram.len()));
    }
    let text = std::str::from_utf8(datagram).map_err(|_| FormatError::NotUtf8)?;
    Ok(if text.is_empty() {
        DEFAULT_UDP_FORMAT
    } else {
        text
    })
}

/// The TCP daytime line for `time`.
pub(crate) fn tcp_line<Tz: TimeZone>(time: &DateTime<Tz>) -> String
where
    Tz::Offset: std::fmt::Display,
{
    format!("{}\r\n", time.format(TCP_FORMAT))
}

/// TCP daytime.
#[derive(Debug, Default, Clone)]
pub struct DaytimeTcp;

#[async_trait]
impl TcpService for DaytimeTcp {
    fn name(&self) -> &'static str {
        "daytime"
    }

    async fn handle(&self, mut stream: ServiceStream, _info: ConnInfo) -> io::Result<String> {
        stream.write_all(tcp_line(&Local::now()).as_bytes()).await?;
        stream.shutdown().await?;
        Ok("sent daytime".into())
    }
}

/// UDP daytime with strftime formats.
#[derive(Debug, Default, Clone)]
pub struct DaytimeUdp;

impl UdpService for DaytimeUdp {
    fn name(&self) -> &'static str {
        "daytime"
    }

    fn respond(&self, datagram: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
        Some(udp_reply(datagram, &Local::now()).into_bytes())
    }

    fn respond_within(&self, datagram: &[u8], _peer: SocketAddr, limit: usize) -> Option<Vec<u8>> {
        Some(udp_reply_within(datagram, &Local::now(), limit).into_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use proptest::prelude::*;

    fn t() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 5, 16, 7, 11).unwrap()
    }

    #[test]
    fn empty_is_default() {
        assert_eq!(udp_reply(b"", &t()), "2026-11-05 16:07:11");
        assert_eq!(udp_reply(b"\n", &t()), "2026-11-05 16:07:11");
    }

    #[test]
    fn custom_format() {
        assert_eq!(udp_reply(b"%H:%M", &t()), "16:07");
        assert_eq!(udp_reply(b"%d/%m/%Y\r\n", &t()), "05/11/2026");
    }

    #[test]
    fn invalid_format() {
        assert!(udp_reply(b"%Q", &t()).starts_with("error: invalid strftime format"));
        assert!(udp_reply(b"%", &t()).starts_with("error:"));
        assert!(udp_reply(b"\xff\xfe", &t()).starts_with("error: format is not valid UTF-8"));
    }

    #[test]
    fn oversized_format() {
        let long = vec![b'a'; MAX_FORMAT_LEN + 1];
        assert_eq!(
            udp_reply(&long, &t()),
            "error: format is 257 bytes; the limit is 256"
        );
        let ok = vec![b'a'; MAX_FORMAT_LEN];
        assert_eq!(udp_reply(&ok, &t()), "a".repeat(MAX_FORMAT_LEN));
    }

    #[test]
    fn long_replies_are_refused_within_the_budget() {
        use sockit_runtime::udp_guard::{reply_limit, within_budget};
        let format = b"%c %c %c %c %c %c";
        let full = udp_reply(format, &t());
        assert!(full.len() > reply_limit(format.len()));
        let refused = udp_reply_within(format, &t(), reply_limit(format.len()));
        assert!(
            refused.starts_with("error: reply is 149 bytes"),
            "{refused}"
        );
        assert!(within_budget(format.len(), refused.len()));
        // Padded with newlines to the size the refusal names, the format is answered.
        let pad_to: usize = refused
            .split("pad to ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap();
        let mut padded = format.to_vec();
        padded.resize(pad_to, b'\n');
        assert_eq!(
            udp_reply_within(&padded, &t(), reply_limit(padded.len())),
            full
        );
        // The smallest budget still gets a refusal that fits.
        let tiny = udp_reply_within(b"%c%c%c%c", &t(), reply_limit(8));
        assert!(
            tiny.starts_with("error:") && within_budget(8, tiny.len()),
            "{tiny}"
        );
        // Short replies are untouched.
        assert_eq!(
            udp_reply_within(b"", &t(), reply_limit(0)),
            "2026-11-05 16:07:11"
        );
    }

    #[test]
    fn padding_newlines_do_not_count_against_the_format_limit() {
        let mut padded = b"%Y".to_vec();
        padded.resize(2000, b'\n');
        assert_eq!(udp_reply(&padded, &t()), "2026");
    }

    proptest! {
        #[test]
        fn every_reply_is_within_the_budget(d in prop::collection::vec(any::<u8>(), 0..300)) {
            let limit = sockit_runtime::udp_guard::reply_limit(d.len());
            prop_assert!(udp_reply_within(&d, &t(), limit).len() <= limit);
        }
    }

    #[test]
    fn tcp_line_is_inetd_style() {
        assert_eq!(tcp_line(&t()), "Thu Nov  5 16:07:11 2026\r\n");
    }

    proptest! {
        #[test]
        fn any_datagram_gets_a_reply(d in prop::collection::vec(any::<u8>(), 0..300)) {
            let _ = udp_reply(&d, &t());
        }

        #[test]
        fn any_percent_soup_is_safe(s in "[%a-zA-Z0-9:.+#_-]{0,40}") {
            let _ = udp_reply(s.as_bytes(), &t());
        }
    }
}
