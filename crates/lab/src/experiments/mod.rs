//! TCP-internals experiments on loopback. Each prints what it does, what it observes
//! and a short explanation, and returns what it observed so tests can assert on it.

pub mod arp;
pub mod backlog;
pub mod capture;
pub mod netns;
pub mod overflow;
pub mod packet_socket;
pub mod packets;
pub mod pcap;
pub mod proc_net;
pub mod reuseaddr;
pub mod states;
pub mod synflood;
pub mod timeline;

use std::io::Write;

/// Writes one line to the experiment's output, ignoring a closed pipe.
pub(crate) fn say(out: &mut dyn Write, line: impl AsRef<str>) {
    let _ = writeln!(out, "{}", line.as_ref());
}
