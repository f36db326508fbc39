//! sockit's chat systems:
//!
//! | system | transport | module |
//! |---|---|---|
//! | IRC server (the subset irssi, weechat and nc use) | tcp 6667 | [`irc`] |
//! | IRC client: terminal UI and `--plain` line mode | tcp | [`client`] |
//! | UDP chat room: logs `[ctime] ip:port: msg`, relays to the room | udp 7788 | [`udp_room`] |
//! | LAN discovery: answers broadcasts with the server's services | udp 7099 | [`discovery`] |
//!
//! Wire formats and decisions are documented in `docs/chat.md`.
#![deny(missing_docs)]

pub mod client;
pub mod discovery;
pub mod irc;
pub mod udp_room;

/// Default ports of the chat services.
pub mod ports {
    /// IRC (tcp).
    pub const IRC: u16 = 6667;
    /// IRC over TLS (tcp; `sockit serve --tls`), the port ircds and clients use for TLS.
    pub const IRC_TLS: u16 = 6697;
    /// IRC over WebSocket (`ws://`, the IRCv3 WebSocket subprotocols), for browser clients.
    pub const IRC_WS: u16 = 8097;
    /// IRC over WebSocket inside TLS (`wss://`; `sockit serve --tls`).
    pub const IRC_WSS: u16 = 8098;
    /// The UDP chat room.
    pub const UDP_CHAT: u16 = 7788;
    /// LAN discovery (udp).
    pub const DISCOVERY: u16 = 7099;
}

/// The machine's host name (the default IRC server name and discovery name), or
/// `sockit` when it cannot be read.
pub fn default_server_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && !s.contains(' '))
        .unwrap_or_else(|| "sockit".into())
}
