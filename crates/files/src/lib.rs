//! The sockit file service: `ls`, `stat`, `get`, `put`, `rm`, `mkdir`, `symlink` and
//! `setattr` over the framed protocol, confined to a data root with a capability
//! filesystem, resumable, verified end to end with BLAKE3, keeping modes, times and
//! symlinks.
//!
//! - [`RelPath`]: what a client may name (pure parsing, the first fence);
//! - [`FilesRoot`]: the data root as a `cap-std` directory (the second fence), the staging
//!   area, the upload registry and the hash cache, configured by [`FilesConfig`];
//! - blocking reader/writer threads that stream between disk and the network with large
//!   buffers, hashing as the bytes pass;
//! - [`cmd`]: one server command per file, registered with [`cmd::register`];
//! - [`messages`]: the request and reply of every command, shared by both sides;
//! - [`meta`]: permission bits, modification times and the symlink target rule;
//! - [`client`]: the client side (what `sockit ls/get/put/...` call);
//! - zstd compression of transfer bodies, block by block, where it pays (`--compress`);
//! - [`sync`]: `sockit sync`, trees made equal by deltas of content-defined chunks (its
//!   server commands are in [`cmd::sync`]).
//!
//! The wire format is documented in `docs/files.md`.
#![deny(missing_docs)]

pub mod client;
pub mod cmd;
mod compress;
mod disk;
mod error;
mod hash_cache;
pub mod messages;
pub mod meta;
mod path;
mod root;
pub mod sync;

pub use client::{FilesClient, FilesClientError, Progress};
pub use error::FilesError;
pub use path::{PathError, RelPath};
pub use root::{FilesConfig, FilesRoot, SYNC_MAX_CHUNK_LIST};
