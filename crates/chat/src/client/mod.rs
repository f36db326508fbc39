//! The IRC client behind `sockit chat`: a connection that negotiates IRCv3 capabilities,
//! logs in with SASL, registers, answers PINGs, fetches history and reconnects,
//! user-input parsing (`/join`, `/msg`, ...), event formatting, and the plain line mode
//! for scripts. The full-screen terminal UI is a front end of the CLI.

pub mod connection;
pub mod format;
pub mod input;
mod negotiate;
pub mod plain;

pub use connection::{server_time, Backoff, ClientConfig, Connection, Event, Options};

#[cfg(test)]
mod tests;
