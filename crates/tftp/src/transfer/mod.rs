//! The data phase of a transfer, shared by server and client.
//!
//! - [`endpoint`]: a UDP socket tied to one peer's transfer ID;
//! - [`source`] / [`sink`]: blocks from a file (netascii-encoded if asked) and back;
//! - [`send`]: the windowed sender (RRQ on the server, put on the client);
//! - [`receive`]: the windowed receiver (WRQ on the server, get on the client).
//!
//! Block numbers are 16 bits on the wire and wrap from 65535 to 0 (what tftp-hpa, atftp,
//! curl and U-Boot do); inside, blocks are counted with a `u64` sequence so any file size
//! works.

pub(crate) mod endpoint;
pub(crate) mod receive;
pub(crate) mod send;
pub(crate) mod sink;
pub(crate) mod source;

use crate::packets::{ErrorCode, ParseError};
use std::io;
use std::time::Duration;

pub(crate) use endpoint::Endpoint;

/// Retransmission policy of one transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Timing {
    /// First retransmission interval (the negotiated `timeout`, or the configured default).
    pub timeout: Duration,
    /// The interval doubles after each retransmission without progress, up to this.
    pub max_timeout: Duration,
    /// Retransmissions without progress before the transfer is abandoned.
    pub retries: u32,
    /// How long a receiver lingers after the final ACK to re-ACK a retransmitted last
    /// block (RFC 1350's "dallying"); zero to return at once.
    pub dally: Duration,
    /// The longest the transfer waits for the peer to make progress, whatever the
    /// intervals and retries would allow (the server's `give_up`, so a `timeout 255`
    /// option cannot hold a slot for hours); [`Duration::MAX`] for no such bound.
    pub give_up: Duration,
    /// How many times the first packet (OACK, or DATA 1 without options) is sent before
    /// the peer's first ACK shows it receives at its address; [`u32::MAX`] for no limit.
    /// The server derives it from the amplification budget (3× the request).
    pub first_sends: u32,
}

impl Timing {
    /// A policy with `timeout` as the first interval, backoff up to 8× and `retries`.
    pub fn new(timeout: Duration, retries: u32) -> Timing {
        Timing {
            timeout,
            max_timeout: timeout.saturating_mul(8),
            retries,
            dally: timeout,
            give_up: Duration::MAX,
            first_sends: u32::MAX,
        }
    }

    /// When to stop waiting for a packet: after the interval of `attempt`, or when
    /// [`Timing::give_up`] has passed since the last progress at `since`, whichever is
    /// first.
    pub fn deadline(
        &self,
        attempt: u32,
        now: tokio::time::Instant,
        since: tokio::time::Instant,
    ) -> tokio::time::Instant {
        let by_interval = now + self.interval(attempt);
        match since.checked_add(self.give_up) {
            Some(give_up) => by_interval.min(give_up),
            None => by_interval,
        }
    }

    /// Whether [`Timing::give_up`] has passed at `now` since the last progress at `since`.
    pub fn gave_up(&self, now: tokio::time::Instant, since: tokio::time::Instant) -> bool {
        now.saturating_duration_since(since) >= self.give_up
    }

    /// The interval after `attempt` consecutive retransmissions (0 = first try).
    pub fn interval(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.min(16);
        self.timeout.saturating_mul(factor).min(self.max_timeout)
    }
}

/// Why a transfer stopped before completing.
#[derive(Debug, thiserror::Error)]
pub enum TransferError {
    /// The peer stopped answering.
    #[error("peer {peer} did not answer after {retries} retransmissions")]
    Timeout {
        /// The peer.
        peer: std::net::SocketAddr,
        /// Retransmissions tried.
        retries: u32,
    },
    /// The peer made no progress for the give-up time.
    #[error("peer {peer} made no progress for {}s; giving up", after.as_secs())]
    GaveUp {
        /// The peer.
        peer: std::net::SocketAddr,
        /// The give-up time.
        after: Duration,
    },
    /// The peer sent an ERROR packet.
    #[error("peer sent error {code}: {message}")]
    Peer {
        /// The code it sent.
        code: ErrorCode,
        /// Its message.
        message: String,
    },
    /// The peer sent a malformed or illegal packet (answered with ERROR 4).
    #[error("protocol error from peer: {0}")]
    Protocol(String),
    /// A malformed packet (answered with ERROR 4).
    #[error("malformed packet from peer: {0}")]
    Malformed(#[from] ParseError),
    /// The socket failed (e.g. the peer's port is closed: ICMP port unreachable).
    #[error("network error: {0}")]
    Network(#[source] io::Error),
    /// Reading or writing the local file failed (the peer got ERROR 3 or 0).
    #[error("file error: {0}")]
    File(#[source] io::Error),
    /// The transfer was cancelled (server shutdown).
    #[error("transfer cancelled")]
    Cancelled,
}

/// What one direction of a transfer moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Stats {
    /// Payload bytes on the wire (netascii-encoded size in netascii mode).
    pub wire_bytes: u64,
    /// Data blocks carried (without retransmissions).
    pub blocks: u64,
    /// Retransmitted packets (data blocks or ACKs/OACKs).
    pub retransmits: u64,
}
