//! The crate's integration tests, one module per area, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod bad_input;
mod common;
mod connect_timeout;
mod duplicate_acks;
mod guard;
mod interop_clients;
mod interop_servers;
mod loss;
mod rollover_put;
mod server_client;
mod transfer_id;
