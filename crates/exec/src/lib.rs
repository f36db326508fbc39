//! sockit's remote exec service: `exec {argv, stdin?, timeout_ms?}` over the framed
//! protocol, off unless the server runs with `--allow-exec` **and** a key, and only for
//! authenticated clients.
//!
//! - [`request`]: the request and the frames of the exchange (pure parsing);
//! - [`group`]: the child's process group, killed whole on every way out;
//! - [`contain`]: every process a run starts dies with it ([`cgroup`] per run, or the
//!   [`subreaper`] fallback), and holds its `--max-execs` slot until then;
//! - [`server`]: the `exec` command (spawn without a shell, stream output, timeouts, caps);
//! - [`client`]: what `sockit exec -- CMD ARGS` calls.
//!
//! The wire format is documented in `docs/exec.md`.
#![warn(missing_docs)]

pub mod cgroup;
pub mod client;
pub mod contain;
pub mod group;
pub mod request;
pub mod server;
pub mod subreaper;

pub use client::{run_remote, ExecClientError};
pub use contain::{resolve as resolve_containment, Containment};
pub use request::{ContainmentPath, ExecRequest, ExitFrame, RemoteExit};
pub use server::{register, ExecConfig};
