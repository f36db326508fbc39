//! The crate's integration tests, one module per area, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod account_reg;
mod chanreg;
mod chathistory;
mod client_lines;
mod cluster;
mod common;
mod conformance;
mod irc;
mod irc_auth;
mod ircv3_cap;
mod labeled;
mod mode_lists;
mod modes;
mod monitor;
mod oper;
mod queries;
mod sasl;
mod sasl_external;
mod udp_guard;
mod websocket;
