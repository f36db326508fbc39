//! The receiving side of the data phase (RFC 1350 lock-step, RFC 7440 windows).
//!
//! The receiver writes blocks strictly in order and ACKs:
//! - after every `windowsize` in-order blocks (counted from its previous ACK);
//! - once when it sees a block beyond the next expected one (a gap: the sender then
//!   restarts from the block after the ACK), not again until it makes progress;
//! - when the block just before the expected one arrives again (the sender missed our
//!   ACK and retransmitted);
//! - when nothing arrives within the interval (backing off, up to the retry limit, or
//!   until [`Timing::give_up`] passes without progress; before block 1, the initial
//!   reply is re-sent only up to [`Timing::first_sends`] times in all).
//!
//! The final block (shorter than `blksize`) is not ACKed here: the caller first makes
//! the file durable, then calls [`ack_final`], so an ACKed upload is never lost.

use super::sink::BlockSink;
use super::{Endpoint, Stats, Timing, TransferError};
use crate::options::Negotiated;
use crate::packets::{ack_bytes, ErrorCode, Packet};
use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The outcome of a completed receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// What was received.
    pub stats: Stats,
    /// Wire number of the final block, to ACK with [`ack_final`].
    pub final_block: u16,
}

/// Receives DATA blocks into `sink` until the final one.
///
/// `initial_reply` is what the peer must see again if nothing arrives before block 1
/// (the OACK or ACK 0 the server sent, or the ACK 0 the client sent after an OACK).
/// `first` is a DATA datagram already received (the client's first reply).
/// `progress` is called with the payload bytes received so far.
///
/// # Errors
/// [`TransferError`] when the file cannot be written (the peer gets ERROR 3), the peer
/// sends an ERROR or garbage, or stops sending.
pub(crate) async fn receive_blocks<W: AsyncWrite + Unpin>(
    ep: &Endpoint,
    negotiated: &Negotiated,
    sink: &mut BlockSink<W>,
    timing: &Timing,
    initial_reply: Bytes,
    first: Option<&[u8]>,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<Received, TransferError> {
    let blksize = usize::from(negotiated.blksize);
    let windowsize = u64::from(negotiated.windowsize.max(1));
    let mut stats = Stats::default();
    let mut buf = vec![0u8; blksize + 4 + 1];
    let mut pending_first = first.map(<[u8]>::to_vec);
    // Next in-order sequence number expected.
    let mut expected: u64 = 1;
    // In-order blocks received since our last ACK.
    let mut since_ack: u64 = 0;
    // A gap was reported and nothing arrived in order since.
    let mut gap_reported = false;
    let mut attempt: u32 = 0;
    // When the peer last made progress.
    let mut since = Instant::now();
    let mut deadline = timing.deadline(0, since, since);
    let last_reply = |expected: u64| {
        if expected == 1 {
            initial_reply.clone()
        } else {
            ack_bytes((expected - 1) as u16)
        }
    };
    loop {
        let len = if let Some(first) = pending_first.take() {
            let len = first.len().min(buf.len());
            buf[..len].copy_from_slice(&first[..len]);
            len
        } else {
            match ep.recv(&mut buf, deadline).await? {
                Some(len) => len,
                None => {
                    if timing.gave_up(Instant::now(), since) {
                        return Err(TransferError::GaveUp {
                            peer: ep.peer(),
                            after: timing.give_up,
                        });
                    }
                    attempt += 1;
                    if attempt > timing.retries {
                        return Err(TransferError::Timeout {
                            peer: ep.peer(),
                            retries: timing.retries,
                        });
                    }
                    // Before block 1 the peer has not shown it owns its address: the
                    // initial reply goes out again only `first_sends` times in all.
                    if expected > 1 || attempt < timing.first_sends {
                        stats.retransmits += 1;
                        ep.send(&last_reply(expected))
                            .await
                            .map_err(TransferError::Network)?;
                    }
                    since_ack = 0;
                    deadline = timing.deadline(attempt, Instant::now(), since);
                    continue;
                }
            }
        };
        let (block, data) = match Packet::parse(&buf[..len]) {
            Ok(Packet::Data { block, data }) => (block, data),
            Ok(Packet::Error { code, message }) => {
                return Err(TransferError::Peer {
                    code,
                    message: message.to_owned(),
                })
            }
            Ok(Packet::Oack { .. }) if expected == 1 => {
                // Our ACK 0 was lost and the server repeats its OACK.
                ep.send(&initial_reply)
                    .await
                    .map_err(TransferError::Network)?;
                continue;
            }
            Ok(Packet::Oack { .. }) => continue,
            Ok(other) => {
                ep.send_error(ErrorCode::IllegalOperation, "expected DATA")
                    .await;
                return Err(TransferError::Protocol(format!(
                    "expected DATA, got {:?}",
                    other.opcode()
                )));
            }
            Err(err) => {
                ep.send_error(ErrorCode::IllegalOperation, &err.to_string())
                    .await;
                return Err(TransferError::Malformed(err));
            }
        };
        if data.len() > blksize {
            ep.send_error(ErrorCode::IllegalOperation, "block larger than blksize")
                .await;
            return Err(TransferError::Protocol(format!(
                "block {block} has {} bytes, blksize is {blksize}",
                data.len()
            )));
        }
        let ahead = block.wrapping_sub(expected as u16);
        if ahead == 0 {
            if let Err(err) = sink.write(data).await {
                ep.send_error(ErrorCode::DiskFull, "write error").await;
                return Err(TransferError::File(err));
            }
            stats.blocks += 1;
            stats.wire_bytes += data.len() as u64;
            progress(stats.wire_bytes);
            expected += 1;
            since_ack += 1;
            gap_reported = false;
            attempt = 0;
            since = Instant::now();
            deadline = timing.deadline(0, since, since);
            if data.len() < blksize {
                return Ok(Received {
                    stats,
                    final_block: block,
                });
            }
            if since_ack >= windowsize {
                ep.send(&ack_bytes(block))
                    .await
                    .map_err(TransferError::Network)?;
                since_ack = 0;
            }
        } else if ahead < 0x8000 {
            // A later block: one before it was lost. Report once per gap.
            if !gap_reported {
                gap_reported = true;
                since_ack = 0;
                ep.send(&last_reply(expected))
                    .await
                    .map_err(TransferError::Network)?;
            }
        } else if ahead == u16::MAX && expected > 1 {
            // The block we last took came again: the sender missed our ACK.
            since_ack = 0;
            ep.send(&last_reply(expected))
                .await
                .map_err(TransferError::Network)?;
        }
        // Older duplicates are ignored.
    }
}

/// ACKs the final block, then lingers re-ACKing a retransmitted final block (the sender
/// missed the ACK), as RFC 1350 recommends. The linger lasts `timing.dally` and starts
/// over at each retransmission, so it outlasts a sender still backing off.
///
/// Lingering ends early when `stop` is cancelled (server shutdown).
///
/// # Errors
/// [`TransferError::Network`] if the ACK cannot be sent.
pub(crate) async fn ack_final(
    ep: &Endpoint,
    final_block: u16,
    timing: &Timing,
    stop: &CancellationToken,
) -> Result<(), TransferError> {
    ep.send(&ack_bytes(final_block))
        .await
        .map_err(TransferError::Network)?;
    linger(ep, final_block, timing, stop).await;
    Ok(())
}

/// The lingering half of [`ack_final`], for callers that send the final ACK themselves
/// (the server logs the transfer in between).
pub(crate) async fn linger(
    ep: &Endpoint,
    final_block: u16,
    timing: &Timing,
    stop: &CancellationToken,
) {
    if timing.dally.is_zero() {
        return;
    }
    let ack = ack_bytes(final_block);
    tokio::select! {
        () = dally(ep, &ack, final_block, timing) => {}
        () = stop.cancelled() => {}
    }
}

async fn dally(ep: &Endpoint, ack: &[u8], final_block: u16, timing: &Timing) {
    let mut deadline = Instant::now() + timing.dally;
    let mut buf = vec![0u8; 65536];
    // Errors while dallying do not matter: the data is already safe.
    while let Ok(Some(len)) = ep.recv(&mut buf, deadline).await {
        match Packet::parse(&buf[..len]) {
            Ok(Packet::Data { block, .. }) if block == final_block => {
                let _ = ep.send(ack).await;
                deadline = Instant::now() + timing.dally;
            }
            Ok(Packet::Error { .. }) => break,
            _ => {}
        }
    }
}
