//! The crate's integration tests, one module per area, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod account;
mod bench_files;
mod chat;
mod chat_oper;
mod clients;
mod cluster;
mod common;
mod drain;
mod files_exec;
mod files_metadata;
mod files_sync;
mod interop;
mod lab;
mod limits;
mod ntp;
mod options;
mod read_tui;
mod reader;
mod readme;
mod sasl_external;
mod security;
mod serve;
mod soak;
mod tftp;
mod tls;
mod weechat;
