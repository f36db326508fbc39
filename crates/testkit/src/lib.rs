//! Test support shared by the workspace's integration tests (a dev-dependency only).
//!
//! - [`serve`]: the `sockit` binary as `sockit serve` on free ports, killed on drop.
//! - [`addr_file`]: waiting for the addr file a server writes once it listens.
//! - [`process`]: running a command with a time limit, reading its output as it comes.
//! - [`data`]: deterministic pseudo-random bytes, so a failure reproduces.
//! - [`peer`]: the external programs interop tests drive, and `SOCKIT_TEST_SKIP`.
//! - [`net`]: loopback sockets: free ports, UDP request/reply, in-process servers.
//! - [`messages`]: round trips of the framed protocol's typed messages.
//!
//! The rules these helpers follow are those of `docs/testing.md`: no sleep to wait for a
//! server, no silent skip, waits bounded and failing with what did not happen.
#![deny(missing_docs)]

pub mod addr_file;
pub mod data;
pub mod messages;
pub mod net;
pub mod peer;
pub mod process;
pub mod serve;
