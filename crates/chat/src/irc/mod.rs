//! The IRC server (RFC 1459/2812 as modern.ircdocs.horse documents them, and IRCv3
//! capabilities) and the
//! pure message layer the client shares with it.
//!
//! - [`message`]: parse/serialize one line (total, fuzzed);
//! - [`tags`]: IRCv3 message tags (total parser, escaping, size limits);
//! - [`caps`]: the IRCv3 capabilities (`CAP LS 302`);
//! - [`line`](mod@line): split a byte stream into lines of at most 512 bytes;
//! - [`names`]: rfc1459 casemapping, nick and channel validation;
//! - [`numeric`]: the numeric replies;
//! - [`channel`], [`state`]: channels, clients and the shared state;
//! - [`commands`] (dispatch), [`register`], [`channel_cmds`], [`messaging`], [`query`]:
//!   the commands;
//! - [`oper`]: IRC operators (OPER, KILL, WALLOPS); [`monitor`]: MONITOR;
//! - [`history`]: the message history and read-marker store (SQLite or memory);
//!   [`chathistory`]: CHATHISTORY; [`markread`]: MARKREAD;
//! - [`account_reg`]: REGISTER (account registration);
//! - [`auth`]: the account policy ([`IrcAuth`]) and the pure parts of SASL PLAIN;
//! - [`flood`]: the per-client penalty timer;
//! - [`server`]: connections, queues, pings, the [`TcpService`](sockit_runtime::server::TcpService);
//! - [`tls`]: the same server behind TLS (port 6697), sharing the plain port's network.

pub mod account_reg;
pub mod auth;
pub mod caps;
pub mod channel;
pub mod channel_cmds;
pub mod chathistory;
pub mod commands;
pub mod flood;
pub mod history;
pub mod line;
pub mod markread;
pub mod message;
pub mod messaging;
pub mod monitor;
pub mod names;
pub mod numeric;
pub mod oper;
pub mod query;
pub mod register;
pub mod server;
pub mod state;
pub mod tags;
pub mod tls;

pub use auth::{AuthVerdict, CreateVerdict, IrcAuth};
pub use history::{HistoryConfig, HistoryError};
pub use message::{Message, ParseError};
pub use server::IrcServer;
pub use state::{AdminInfo, OperBlock, ServerConfig};
pub use tls::IrcTlsServer;
