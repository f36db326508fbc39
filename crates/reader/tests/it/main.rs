//! The crate's integration tests, one module per area, built as one test binary
//! (one link instead of one per file; docs/testing.md).

mod auth;
mod bad_input;
mod classic_python;
mod common;
mod confinement;
mod covers;
mod encoding;
mod epub;
mod kosync;
mod library;
mod limits;
mod opds;
mod search;
mod upload;
mod webui_playwright;
