//! The IRC server (RFC 1459/2812 as modern.ircdocs.horse documents them, and IRCv3
//! capabilities) and the pure message layer the client shares with it.
//!
//! Public modules, the message layer:
//! - [`message`]: parse/serialize one line (total, fuzzed);
//! - [`tags`]: IRCv3 message tags (total parser, escaping, size limits);
//! - [`line`](mod@line): split a byte stream into lines of at most 512 bytes;
//! - [`names`]: rfc1459 casemapping, nick and channel validation.
//!
//! The server, built from private modules: the IRCv3 capabilities (`CAP LS 302`), the
//! numeric replies, channels, clients and the shared state, the command dispatch and the
//! commands (registration, channels, messaging, queries, IRC operators, MONITOR,
//! CHATHISTORY, MARKREAD, REGISTER), the message history and read-marker store
//! ([`History`], SQLite or memory, configured by [`HistoryConfig`]), the account policy
//! ([`IrcAuth`]) with the pure parts of SASL PLAIN, ChanServ's channel registration and
//! its store ([`ChannelStore`], configured by [`ChannelStoreConfig`]), and the per-client
//! penalty timer
//! ([`FloodConfig`]). [`IrcServer`] serves connections (queues, pings, the
//! [`TcpService`](sockit_runtime::server::TcpService)) configured by [`ServerConfig`];
//! [`IrcTlsServer`] is the same server behind TLS (port 6697), and [`IrcWsServer`] the same
//! server over WebSocket (ports 8097 `ws://` and 8098 `wss://`), sharing the plain port's
//! network. [`cluster`] makes several such servers one network over NATS
//! ([`IrcServer::join_cluster`], configured by [`ClusterConfig`]).

mod account_reg;
mod auth;
mod caps;
mod channel;
mod channel_cmds;
mod channel_store;
mod chanserv;
mod chathistory;
pub mod cluster;
mod commands;
mod flood;
mod help;
mod history;
pub mod line;
mod markread;
pub mod message;
mod messaging;
mod monitor;
pub mod names;
mod numeric;
mod oper;
mod query;
mod register;
mod server;
mod state;
pub mod tags;
mod tls;
mod websocket;

pub use auth::{AuthVerdict, CertVerdict, CreateVerdict, IrcAuth, PeerIdentity};
pub use channel_store::{ChannelStore, ChannelStoreConfig, ChannelStoreError};
pub use cluster::{ClusterConfig, DEFAULT_NODE_TIMEOUT as CLUSTER_NODE_TIMEOUT};
pub use flood::FloodConfig;
pub use history::{
    History, HistoryConfig, HistoryError, DEFAULT_MAX_DAYS as HISTORY_MAX_DAYS,
    DEFAULT_MAX_MESSAGES as HISTORY_MAX_MESSAGES,
};
pub use message::{Message, ParseError};
pub use server::IrcServer;
pub use state::{AdminInfo, OperBlock, ServerConfig};
pub use tls::IrcTlsServer;
pub use websocket::{IrcWsServer, OriginPolicy, BINARY_PROTOCOL, MAX_MESSAGE, TEXT_PROTOCOL};
