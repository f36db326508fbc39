//! sockit's remote exec service: `exec {argv, stdin?, timeout_ms?}` over the framed
//! protocol, off unless the server runs with `--allow-exec` **and** a key, and only for
//! authenticated clients.
//!
//! - [`request`]: the request and the frames of the exchange (pure parsing);
//! - [`group`]: the child's process group, killed whole on every way out;
//! - [`server`]: the `exec` command (spawn without a shell, stream output, timeouts, caps);
//! - [`client`]: what `sockit exec -- CMD ARGS` calls.
//!
//! The wire format is documented in `docs/exec.md`.
#![warn(missing_docs)]

pub mod client;
pub mod group;
pub mod request;
pub mod server;

pub use client::{run_remote, ExecClientError, RemoteExit};
pub use request::ExecRequest;
pub use server::{register, ExecConfig};
