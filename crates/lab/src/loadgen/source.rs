//! Client sockets spread over 127.0.0.x source addresses.
//!
//! A TCP connection is identified by (src ip, src port, dst ip, dst port). Against one
//! server address, a single source IP gives ~28k ephemeral ports, and every closed
//! connection parks its port in TIME_WAIT for 60 s. Binding clients round-robin to
//! 127.0.0.1..127.0.0.N multiplies the space by N. `IP_BIND_ADDRESS_NO_PORT` delays the
//! port choice to `connect`, so the kernel can pick a port per 4-tuple.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;

use tokio::net::{TcpSocket, TcpStream};

/// The source address for client number `i` when spreading over `n` addresses.
pub fn source_ip(i: usize, n: u8) -> Ipv4Addr {
    let k = (i % n.max(1) as usize) as u8;
    Ipv4Addr::new(127, 0, 0, 1 + k)
}

/// Connects to `target` from source address number `i` of `n`, with TCP_NODELAY (so a
/// small echo is not held back by Nagle's algorithm waiting for the previous ACK).
///
/// # Errors
/// As connect(2).
pub async fn connect_from(target: SocketAddr, i: usize, n: u8) -> std::io::Result<TcpStream> {
    let stream = if target.is_ipv4() && n > 1 {
        let sock = TcpSocket::new_v4()?;
        let one: libc::c_int = 1;
        // SAFETY: setsockopt with a valid int option value on our own socket. Failing
        // (old kernels) only means ports are chosen at bind time.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        sock.bind(SocketAddr::V4(SocketAddrV4::new(source_ip(i, n), 0)))?;
        sock.connect(target).await?
    } else {
        TcpStream::connect(target).await?
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_robin_over_loopback() {
        assert_eq!(source_ip(0, 4), Ipv4Addr::new(127, 0, 0, 1));
        assert_eq!(source_ip(5, 4), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(source_ip(7, 1), Ipv4Addr::new(127, 0, 0, 1));
    }
}
