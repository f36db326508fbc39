//! The IRC client behind `sockit chat`: a connection that registers and answers PINGs,
//! user-input parsing (`/join`, `/msg`, ...), event formatting, and two front ends: a
//! ratatui terminal UI and a plain line mode for scripts.

pub mod connection;
pub mod format;
pub mod input;
pub mod plain;
pub mod tui;
pub mod view;

pub use connection::{ClientConfig, Connection, Event};
