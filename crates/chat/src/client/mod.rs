//! The IRC client behind `sockit chat`: a connection that negotiates IRCv3 capabilities,
//! logs in with SASL, registers, answers PINGs, fetches history (a channel's on join, a
//! query's on request, the list of recent conversations on connect: [`history`]) and
//! reconnects; away state ([`presence`]), readable command replies ([`replies`]),
//! user-input parsing (`/join`, `/msg`, ...), event formatting, and the plain line mode
//! for scripts. The full-screen terminal UI is a front end of the CLI.

pub mod connection;
pub mod format;
pub mod history;
pub mod input;
mod negotiate;
pub mod plain;
pub mod presence;
pub mod replies;

pub use connection::{server_time, Backoff, ClientConfig, Connection, Event, Options};

#[cfg(test)]
mod tests;
