//! The `sockit` binary under test. The helpers for running it (`Serve`, `run`, the addr
//! file, peers) are in the `sockit-testkit` crate; they take the binary's path, which
//! cargo gives only this crate's tests.

pub mod irc;
pub mod tmux;

use std::process::Command;

/// The path of the `sockit` binary built for these tests.
pub const SOCKIT: &str = env!("CARGO_BIN_EXE_sockit");

/// A command running the binary under test, without the user's `SOCKIT_*` and `RUST_LOG`
/// environment.
pub fn sockit() -> Command {
    sockit_testkit::serve::command(SOCKIT)
}
