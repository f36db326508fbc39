//! sockit's remote exec service: `exec {argv, stdin?, timeout_ms?}` over the framed
//! protocol, off unless the server runs with `--allow-exec` **and** a key, and only for
//! authenticated clients.
//!
//! - [`messages`]: the frames of the exchange, shared by the server and the client;
//! - [`ExecRequest`], [`ExitFrame`]: the checked request and exit status (pure parsing);
//! - the child runs in its own process group, killed whole on every way out;
//! - [`Containment`]: every process a run starts dies with it ([`cgroup`] per run, or the
//!   [`subreaper`] fallback), and holds its `--max-execs` slot until then;
//! - [`register`]: the `exec` command (spawn without a shell, stream output, timeouts,
//!   caps), configured by [`ExecConfig`];
//! - [`client`]: what `sockit exec -- CMD ARGS` calls.
//!
//! The wire format is documented in `docs/exec.md`.
#![deny(missing_docs)]

pub mod cgroup;
pub mod client;
mod contain;
mod group;
pub mod messages;
mod request;
mod server;
pub mod subreaper;

pub use client::{run_remote, ExecClientError};
pub use contain::{resolve as resolve_containment, Containment};
pub use request::{ContainmentPath, ExecRequest, ExitFrame, RemoteExit, RequestError};
pub use server::{register, ExecConfig};
