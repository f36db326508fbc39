//! sockit's network book reader: the course's "network reader" made real.
//!
//! A [`Library`] keeps a SQLite [`catalog`] of the PDF, EPUB and TXT books under a books
//! root (refreshed on start and by polling), decodes TXT in any common encoding and pages
//! it on character boundaries ([`Paged`]), renders PDF pages with hayro in blocking
//! workers and caches them on disk, and serves EPUB chapters sanitized with their images
//! and styles. Reading positions and sessions live in [`accounts`]; sorted, filtered and
//! paginated queries, shelves and metadata edits in [`browse`].
//! Front ends: the course's classic protocol on tcp 8998 ([`classic`]) and HTTP on 8080
//! ([`http`]): web UI, JSON API, OPDS 1.2 + PSE and kosync progress sync. [`client`] is
//! the HTTP client behind `sockit read`; [`demo`] makes sample books. [`search`] is the
//! full-text index (tantivy, CJK bigrams) a background thread keeps in line with the
//! catalog.
#![deny(missing_docs)]

pub mod accounts;
mod atomic;
pub mod browse;
pub mod catalog;
pub mod classic;
pub mod client;
mod config;
mod course_db;
mod cover;
pub mod demo;
mod disk_cache;
mod epub;
mod error;
mod generated_cover;
mod hashes;
pub mod http;
mod library;
mod pdf;
mod scan;
pub mod search;
mod txt;
pub mod upload;

pub use atomic::write as write_atomic;
pub use config::ReaderConfig;
pub use error::ReaderError;
pub use hashes::md5_hex;
pub use library::{Library, MAX_PAGE_CHARS};
pub use txt::pages::Paged;
