//! The IRC server (the subset of RFC 1459/2812 that irssi, weechat and `nc` need) and the
//! pure message layer the client shares with it.
//!
//! - [`message`]: parse/serialize one line (total, fuzzed);
//! - [`line`]: split a byte stream into lines of at most 512 bytes;
//! - [`names`]: rfc1459 casemapping, nick and channel validation;
//! - [`numeric`]: the numeric replies;
//! - [`channel`], [`state`]: channels, clients and the shared state;
//! - [`commands`] (dispatch), [`register`], [`channel_cmds`], [`messaging`], [`query`]:
//!   the commands;
//! - [`auth`]: the account policy ([`IrcAuth`]) and the pure parts of SASL PLAIN;
//! - [`flood`]: the per-client penalty timer;
//! - [`server`]: connections, queues, pings, the [`TcpService`](sockit_wire::runtime::TcpService);
//! - [`tls`]: the same server behind TLS (port 6697), sharing the plain port's network.

pub mod auth;
pub mod channel;
pub mod channel_cmds;
pub mod commands;
pub mod flood;
pub mod line;
pub mod message;
pub mod messaging;
pub mod names;
pub mod numeric;
pub mod query;
pub mod register;
pub mod server;
pub mod state;
pub mod tls;

pub use auth::{AuthVerdict, IrcAuth};
pub use message::{Message, ParseError};
pub use server::IrcServer;
pub use state::ServerConfig;
pub use tls::IrcTlsServer;
