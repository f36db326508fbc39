//! The basic services of sockit, each over real sockets on the shared runtime:
//!
//! | service | protocol | module |
//! |---|---|---|
//! | greet | Welcome / What's your name? / Hello NAME! / exit dialogue (tcp 6000) | [`greet`] |
//! | echo | RFC 862 over TCP and UDP (7007) | [`echo`] |
//! | daytime | RFC 867 over TCP; strftime formats over UDP (7013) | [`daytime`] |
//! | time | RFC 868 32-bit seconds since 1900 over TCP and UDP (7037) | [`time`] |
//!
//! Each module holds the pure protocol logic and the server; [`client`] holds the clients
//! the CLI uses (the UDP exchange with retries, the RFC 868 reading).
#![deny(missing_docs)]

pub mod client;
pub mod daytime;
pub mod echo;
pub mod greet;
pub mod time;

/// Default ports of the basic services.
pub mod ports {
    /// greet (tcp).
    pub const GREET: u16 = 6000;
    /// echo (tcp + udp).
    pub const ECHO: u16 = 7007;
    /// daytime (tcp + udp).
    pub const DAYTIME: u16 = 7013;
    /// time (tcp + udp).
    pub const TIME: u16 = 7037;
}
