//! The crate's integration tests, one module per area, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod batch_limits;
mod busy_resume;
mod common;
mod compress;
mod full_disk;
mod messages;
mod metadata;
mod special_files;
mod staging_ttl;
mod sync;
mod sync_fallback;
mod transfers;
mod traversal;
mod tree_pipeline;
