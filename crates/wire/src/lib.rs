//! The framed wire protocol of sockit (tcp 7788), built on the shared serving runtime
//! (`sockit-runtime`).
//!
//! Layers, bottom up:
//! - [`header`]: the JSON header of a frame and the typed requests/responses built on it;
//! - [`codec`]: the tokio-util [`FrameCodec`](codec::FrameCodec) (u32 LE length, JSON header,
//!   streamed body);
//! - [`connection`]: a [`Connection`](connection::Connection) that reads and writes frames;
//! - [`auth`] and [`handshake`]: the hello + mutual HMAC-SHA256 handshake;
//! - [`framed`]: the framed service on tcp 7788 with its command dispatch table;
//! - [`client`]: connecting to a framed server.
#![deny(missing_docs)]

pub mod auth;
pub mod client;
pub mod codec;
pub mod connection;
pub mod framed;
pub mod handshake;
pub mod header;

pub use auth::Key;
pub use client::{Client, ClientError, ConnectOptions};
pub use codec::{Frame, FrameCodec, FrameError, MAX_HEADER_LEN};
pub use connection::{Connection, Incoming};
pub use header::{ErrorCode, Header};

/// The framed service's default TCP port.
pub const FRAMED_PORT: u16 = 7788;

/// The protocol version announced in `hello`.
pub const PROTO_VERSION: u64 = 1;

/// The server identification announced in `hello`, e.g. `sockit/0.1.0`.
pub fn server_ident() -> String {
    format!("sockit/{}", env!("CARGO_PKG_VERSION"))
}
