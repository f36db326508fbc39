//! The crate's integration tests, one module per benchmark, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod chat;
mod reader;
