//! Binding listeners the way a benchmark needs them, and reporting their address.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use crate::error::{LabError, Result};

/// The listen(2) backlog the lab asks for by default. The kernel caps it at
/// `net.core.somaxconn` (4096 on current kernels), so benchmarks with thousands of
/// simultaneous connects do not fall into SYN retransmits.
pub const DEFAULT_BACKLOG: i32 = 4096;

/// Binds a TCP listener with SO_REUSEADDR and the given backlog (blocking mode).
///
/// # Errors
/// [`LabError::Bind`] when the address is taken or not local.
pub fn bind_listener(addr: SocketAddr, backlog: i32) -> Result<TcpListener> {
    let bind = || -> std::io::Result<TcpListener> {
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        sock.bind(&addr.into())?;
        sock.listen(backlog)?;
        Ok(sock.into())
    };
    bind().map_err(|source| LabError::Bind { addr, source })
}

/// The address a client should connect to for a listener bound to `addr`
/// (an unspecified address becomes loopback).
pub fn connectable(addr: SocketAddr) -> SocketAddr {
    let mut a = addr;
    if a.ip().is_unspecified() {
        match a {
            SocketAddr::V4(ref mut v4) => v4.set_ip(std::net::Ipv4Addr::LOCALHOST),
            SocketAddr::V6(ref mut v6) => v6.set_ip(std::net::Ipv6Addr::LOCALHOST),
        }
    }
    a
}

/// Unblocks a thread sitting in `accept(2)` on `addr` by connecting to it once.
/// If the accept queue is full the connect fails, but then accept is about to return anyway.
pub fn wake_accept(addr: SocketAddr) {
    let _ = TcpStream::connect_timeout(&connectable(addr), Duration::from_secs(1));
}

/// Writes `{"lab":{"tcp":"IP:PORT"}}` to `path` atomically (staging file, fsync, rename), so a
/// reader polling for the file never sees half of it. The shape follows `sockit serve`'s
/// addr file (service → protocol → address).
///
/// # Errors
/// [`LabError::File`] when the directory is not writable.
pub fn write_addr_file(path: &Path, addr: SocketAddr) -> Result<()> {
    let body = format!("{{\"lab\":{{\"tcp\":\"{addr}\"}}}}\n");
    sockit_runtime::fs::write_atomic(path, body.as_bytes(), sockit_runtime::fs::Mode::Public)
        .map_err(|source| LabError::File {
            path: path.to_path_buf(),
            source,
        })
}

/// Parses a file written by [`write_addr_file`]; `None` if absent or incomplete.
pub fn read_addr_file(path: &Path) -> Option<SocketAddr> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v.get("lab")?.get("tcp")?.as_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addr_file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("addr.json");
        assert_eq!(read_addr_file(&p), None);
        let a: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        write_addr_file(&p, a).unwrap();
        assert_eq!(read_addr_file(&p), Some(a));
    }

    #[test]
    fn unspecified_becomes_loopback() {
        let a: SocketAddr = "0.0.0.0:9".parse().unwrap();
        assert_eq!(connectable(a).to_string(), "127.0.0.1:9");
    }
}
