//! The serving runtime every sockit service shares, whatever protocol it speaks: listeners
//! with connection limits and deadlines, guarded streams, the login throttle, TLS
//! (certificates, trust, known hosts), the guarded UDP loop, and dialing a server.
//!
//! Modules:
//! - [`server`]: TCP listeners, [`Limits`](server::Limits), graceful shutdown;
//! - [`guarded`]: streams whose deadlines trickling bytes cannot extend;
//! - [`throttle`]: failed-login back-off per address and account;
//! - [`tls`]: acceptors, connectors, certificates, trust and channel binding;
//! - [`udp`], [`udp_guard`]: the UDP service loop and its amplification guard;
//! - [`stream`], [`close`], [`dial`]: boxed streams, closing without a reset, connecting;
//! - [`fs`]: atomic file writes;
//! - [`confine`]: file access confined to a served directory (client names, `cap-std`
//!   handles, staged uploads).
//!
//! Protocols live in their own crates: the framed protocol in `sockit-wire`, IRC in
//! `sockit-chat`, HTTP in `sockit-reader`, NTP in `sockit-ntp`.
#![deny(missing_docs)]

pub mod close;
pub mod confine;
pub mod dial;
pub mod fs;
pub mod guarded;
pub mod server;
pub mod stream;
pub mod throttle;
pub mod tls;
pub mod udp;
pub mod udp_guard;
mod udp_recv;
