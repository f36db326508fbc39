//! The IRC client behind `sockit chat`: a connection that registers and answers PINGs,
//! user-input parsing (`/join`, `/msg`, ...), event formatting, and the plain line mode
//! for scripts. The full-screen terminal UI is a front end of the CLI.

pub mod connection;
pub mod format;
pub mod input;
pub mod plain;

pub use connection::{ClientConfig, Connection, Event};
