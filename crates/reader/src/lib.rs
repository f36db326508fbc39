//! sockit's network book reader: the course's "network reader" made real.
//!
//! A [`library::Library`] keeps a SQLite [`catalog`] of the PDF, EPUB and TXT books under a
//! books root (refreshed on start and by polling), decodes TXT in any common encoding
//! ([`txt::decode`]) and pages it on character boundaries ([`txt::pages`]), renders PDF
//! pages with hayro in blocking workers ([`pdf`]) and caches them on disk, and serves EPUB
//! chapters sanitized with their images and styles ([`epub`]). Front ends:
//! the course's classic protocol on tcp 8998 ([`classic`]) and HTTP on 8080 ([`http`]):
//! web UI, JSON API, OPDS 1.2 + PSE and kosync progress sync. [`client`] is the HTTP
//! client behind `sockit read`.
#![deny(missing_docs)]

pub mod accounts;
pub mod atomic;
pub mod browse;
pub mod catalog;
pub mod classic;
pub mod client;
pub mod config;
pub mod course_db;
pub mod cover;
pub mod demo;
pub mod disk_cache;
pub mod epub;
pub mod error;
pub mod hashes;
pub mod http;
pub mod library;
pub mod pdf;
pub mod scan;
pub mod txt;

pub use config::ReaderConfig;
pub use error::ReaderError;
pub use library::Library;
