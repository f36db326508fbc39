//! TFTP for sockit: a fast, root-confined server and a client that interoperate with
//! tftp-hpa, atftp, curl, PXE ROMs and U-Boot.
//!
//! Protocols: RFC 1350 (TFTP, octet and netascii), RFC 2347 (option extension, OACK),
//! RFC 2348 (blksize), RFC 2349 (timeout, tsize) and RFC 7440 (windowsize).
//!
//! Layers, bottom up:
//! - [`packets`]: pure parse/serialize of the six packet kinds (no I/O, never panics);
//! - [`options`]: the typed options and their negotiation rules;
//! - a streaming netascii encoder/decoder;
//! - the windowed sender and receiver shared by server and client (retransmission with
//!   backoff, block-number rollover, no Sorcerer's Apprentice), failing with
//!   [`TransferError`];
//! - file access confined to the server root (the shared `sockit_runtime::confine`, with
//!   a leading `/` read as the root);
//! - the server: [`serve`], configured by [`ServerConfig`];
//! - [`client`]: [`client::get`] and [`client::put`].
//!
//! The wire format and the decisions taken where the RFCs are silent are written down in
//! `docs/tftp.md`.
#![deny(missing_docs)]

pub mod client;
mod netascii;
pub mod options;
pub mod packets;
mod root;
mod server;
mod transfer;

pub use client::{ClientError, ClientOptions, Progress, TransferSummary};
pub use options::{Mode, Negotiated};
pub use packets::{ErrorCode, Opcode, Packet, ParseError};
pub use server::{serve, ServerConfig, ServerError};
pub use transfer::TransferError;

/// The default TFTP port of sockit (`sockit serve`); the IANA port is 69.
pub const DEFAULT_PORT: u16 = 6969;
