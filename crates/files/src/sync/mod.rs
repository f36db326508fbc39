//! `sockit sync SRC DEST`: make a destination tree equal to a source tree, one side local
//! and the other on a server, sending only what changed (rsync's `-a --delete` habits).
//!
//! - [`chunks`]: content-defined chunks with BLAKE3 hashes (a file's signature);
//! - [`delta`]: plans, encodes, parses and applies deltas (copies of base ranges and
//!   literal bytes);
//! - [`plan`]: compares the two trees and orders the actions (pure);
//! - [`exclude`]: `--exclude` globs;
//! - walking the trees (`walk`) and running the actions (`run`) on either side.
//!
//! The server side is [`crate::cmd::sync`]; the wire format is in `docs/files.md` ("sync").

pub mod chunks;
pub mod delta;
pub mod exclude;
mod output;
pub mod plan;
mod read_at;
mod run;
pub(crate) mod stream;
mod walk;

use std::path::PathBuf;

pub use run::{SyncOptions, SyncReport};

use crate::client::FilesClientError;

/// One end of a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// A local directory.
    Local(PathBuf),
    /// A directory on the server (a path in its data root; `""` is the root).
    Remote(String),
}

/// Why a sync failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A transfer, a server refusal or a local file operation failed.
    #[error(transparent)]
    Client(#[from] FilesClientError),
    /// The request cannot be carried out as given (both sides local, a bad pattern, ...).
    #[error("{0}")]
    Usage(String),
}
