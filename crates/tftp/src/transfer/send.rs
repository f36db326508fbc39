//! The sending side of the data phase (RFC 1350 lock-step, RFC 7440 windows).
//!
//! The sender keeps the current window of encoded DATA packets in memory, sends them
//! all, then waits for an ACK:
//! - an ACK for a block inside the window moves the window to the block after it and
//!   the whole new window is sent (blocks after the ACKed one are re-sent: the receiver
//!   ACKs early when it sees a gap, RFC 7440 §4);
//! - an ACK for the block just before the window (a duplicate) is ignored: this is what
//!   prevents the Sorcerer's Apprentice Syndrome, duplicates never multiply traffic;
//! - no ACK within the interval re-sends the first unacknowledged block and the last
//!   block of the window (not the whole window: a silent peer must not be sent many
//!   megabytes; the receiver ACKs on seeing the first, the gap, or the duplicate last),
//!   doubling the interval up to the limit, and gives up after the retry limit or when
//!   [`Timing::give_up`] has passed without progress;
//! - before the peer's first ACK, the first packet is sent at most
//!   [`Timing::first_sends`] times (the peer has not yet shown it owns its address).

use super::source::BlockSource;
use super::{Endpoint, Stats, Timing, TransferError};
use crate::options::Negotiated;
use crate::packets::{ErrorCode, Packet};
use bytes::Bytes;
use std::collections::VecDeque;
use tokio::io::AsyncRead;
use tokio::time::Instant;

/// Largest datagram a sender expects to receive (ACKs and ERRORs are small; this leaves
/// room for a peer's verbose ERROR message).
const RECV_BUF: usize = 2048;

/// What the sender should do with a received datagram.
enum Reply {
    /// ACK of this wire block number.
    Ack(u16),
    /// Something to ignore (a duplicate OACK, an unexpected but harmless packet).
    Ignore,
}

/// Classifies a datagram received by a sender; ERROR and malformed packets end the
/// transfer (malformed ones after answering ERROR 4).
async fn classify(ep: &Endpoint, datagram: &[u8]) -> Result<Reply, TransferError> {
    match Packet::parse(datagram) {
        Ok(Packet::Ack { block }) => Ok(Reply::Ack(block)),
        Ok(Packet::Error { code, message }) => Err(TransferError::Peer {
            code,
            message: message.to_owned(),
        }),
        Ok(Packet::Oack { .. }) => Ok(Reply::Ignore),
        Ok(other) => {
            ep.send_error(ErrorCode::IllegalOperation, "expected an ACK")
                .await;
            Err(TransferError::Protocol(format!(
                "expected an ACK, got {:?}",
                other.opcode()
            )))
        }
        Err(err) => {
            ep.send_error(ErrorCode::IllegalOperation, &err.to_string())
                .await;
            Err(TransferError::Malformed(err))
        }
    }
}

/// Sends `first` (an OACK) and waits for ACK 0, re-sending on timeout.
///
/// # Errors
/// [`TransferError`] when the peer answers with an ERROR (e.g. 8, it refused the
/// options), sends garbage, or stops answering.
pub(crate) async fn await_ack0(
    ep: &Endpoint,
    first: &[u8],
    timing: &Timing,
) -> Result<u64, TransferError> {
    let mut buf = vec![0u8; RECV_BUF];
    let mut retransmits = 0;
    let since = Instant::now();
    for attempt in 0..=timing.retries {
        if attempt < timing.first_sends {
            if attempt > 0 {
                retransmits += 1;
            }
            ep.send(first).await.map_err(TransferError::Network)?;
        }
        let deadline = timing.deadline(attempt, Instant::now(), since);
        while let Some(len) = ep.recv(&mut buf, deadline).await? {
            if let Reply::Ack(0) = classify(ep, &buf[..len]).await? {
                return Ok(retransmits);
            }
        }
        if timing.gave_up(Instant::now(), since) {
            return Err(TransferError::GaveUp {
                peer: ep.peer(),
                after: timing.give_up,
            });
        }
    }
    Err(TransferError::Timeout {
        peer: ep.peer(),
        retries: timing.retries,
    })
}

/// Sends the whole of `source` as DATA blocks 1, 2, … (wrapping after 65535 to 0).
/// `progress` is called with the payload bytes acknowledged so far.
///
/// # Errors
/// [`TransferError`] when the file cannot be read (the peer gets ERROR 0), the peer
/// sends an ERROR or garbage, or stops answering.
pub(crate) async fn send_blocks<R: AsyncRead + Unpin>(
    ep: &Endpoint,
    negotiated: &Negotiated,
    source: &mut BlockSource<R>,
    timing: &Timing,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Stats, TransferError> {
    let blksize = usize::from(negotiated.blksize);
    let windowsize = usize::from(negotiated.windowsize.max(1));
    let mut stats = Stats::default();
    let mut buf = vec![0u8; RECV_BUF];
    // window[i] is the DATA packet of sequence number base + i.
    let mut window: VecDeque<Bytes> = VecDeque::with_capacity(windowsize);
    let mut base: u64 = 1;
    // Sequence number of the final (short) block once it has been read.
    let mut last: Option<u64> = None;
    let mut acked_bytes: u64 = 0;
    let mut attempt: u32 = 0;
    // When the peer last made progress, and whether it has ACKed anything yet.
    let mut since = Instant::now();
    let mut proven = false;
    loop {
        while window.len() < windowsize && last.is_none() {
            let seq = base + window.len() as u64;
            let packet = match source.next_packet(seq as u16).await {
                Ok(packet) => packet,
                Err(err) => {
                    ep.send_error(ErrorCode::NotDefined, "read error").await;
                    return Err(TransferError::File(err));
                }
            };
            if packet.len() - 4 < blksize {
                last = Some(seq);
            }
            window.push_back(packet);
        }
        if attempt == 0 {
            for packet in &window {
                ep.send(packet).await.map_err(TransferError::Network)?;
            }
        } else if proven || attempt < timing.first_sends {
            // A timeout: the first unacknowledged block and the last of the window only.
            let resend = match (window.front(), window.back()) {
                (Some(first), Some(last)) if window.len() > 1 => vec![first, last],
                (Some(first), _) => vec![first],
                _ => Vec::new(),
            };
            stats.retransmits += resend.len() as u64;
            for packet in resend {
                ep.send(packet).await.map_err(TransferError::Network)?;
            }
        }
        let deadline = timing.deadline(attempt, Instant::now(), since);
        let acked = loop {
            let Some(len) = ep.recv(&mut buf, deadline).await? else {
                break None;
            };
            let Reply::Ack(block) = classify(ep, &buf[..len]).await? else {
                continue;
            };
            // The ACK names base-1+k for some k in 0..=window.len(); wire numbers wrap.
            let k = u64::from(block.wrapping_sub((base - 1) as u16));
            if k == 0 || k > window.len() as u64 {
                // Duplicate or stale ACK: ignored (no Sorcerer's Apprentice).
                continue;
            }
            break Some(k);
        };
        match acked {
            None if timing.gave_up(Instant::now(), since) => {
                return Err(TransferError::GaveUp {
                    peer: ep.peer(),
                    after: timing.give_up,
                });
            }
            None => {
                attempt += 1;
                if attempt > timing.retries {
                    return Err(TransferError::Timeout {
                        peer: ep.peer(),
                        retries: timing.retries,
                    });
                }
            }
            Some(k) => {
                for packet in window.drain(..k as usize) {
                    acked_bytes += (packet.len() - 4) as u64;
                }
                stats.blocks += k;
                base += k;
                attempt = 0;
                since = Instant::now();
                proven = true;
                progress(acked_bytes);
                if last.is_some_and(|last| base > last) {
                    stats.wire_bytes = acked_bytes;
                    return Ok(stats);
                }
            }
        }
    }
}
