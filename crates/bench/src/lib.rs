//! sockit's service benchmarks, behind `sockit lab bench <service>`: each service measured
//! over loopback against its standard peer, in the same run, with the results written as
//! JSON and markdown.
//!
//! | module | `sockit lab bench` | compared with |
//! |---|---|---|
//! | [`files`] | `files` | a raw `socat` pipe; TLS against plain text |
//! | [`tftp`] | `tftp` | tftp-hpa and tftpd-hpa |
//! | [`chat`] | `chat` | ngircd, InspIRCd |
//! | [`reader`] | `reader` | (its own cold and cached paths) |
//!
//! The benchmarks use only the public API of the service crates, so they ship in no
//! service library. The NTP benchmark needs no service code and lives in
//! `sockit_lab::ntp_bench`.
#![deny(missing_docs)]

pub mod chat;
pub mod files;
pub mod reader;
pub mod tftp;
