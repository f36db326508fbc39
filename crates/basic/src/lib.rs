//! The basic services of sockit, each over real sockets on the shared runtime:
//!
//! | service | protocol | servers |
//! |---|---|---|
//! | greet | Welcome / What's your name? / Hello NAME! / exit dialogue (tcp 6000) | [`GreetService`] |
//! | echo | RFC 862 over TCP and UDP (7007) | [`EchoTcp`], [`EchoUdp`] |
//! | daytime | RFC 867 over TCP; strftime formats over UDP (7013) | [`DaytimeTcp`], [`DaytimeUdp`] |
//! | time | RFC 868 32-bit seconds since 1900 over TCP and UDP (7037) | [`TimeTcp`], [`TimeUdp`] |
//!
//! Each service's module (private) holds its pure protocol logic and its server;
//! [`client`] holds the clients the CLI uses (the UDP exchange with retries, the RFC 868
//! reading), and [`GreetClient`] speaks the greet dialogue.
#![deny(missing_docs)]

pub mod client;
mod daytime;
mod echo;
mod greet;
mod time;

pub use daytime::{DaytimeTcp, DaytimeUdp};
pub use echo::{EchoTcp, EchoUdp};
pub use greet::{GreetClient, GreetService, ServerSays};
pub use time::{from_rfc868, TimeTcp, TimeUdp};

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
