//! The crate's integration tests, one module per area, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod nts;
mod nts_records;
mod server;
