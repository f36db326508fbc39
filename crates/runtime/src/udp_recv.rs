//! Receiving a datagram together with the kernel's receive timestamp (`SO_TIMESTAMPNS`,
//! Linux), for services whose answers carry the time a request arrived (NTP).
//!
//! Elsewhere, or when the kernel gives no timestamp, the arrival is the time the datagram
//! was read.

use std::io;
use std::net::SocketAddr;

use std::os::fd::AsFd;

use tokio::net::UdpSocket;

use crate::udp::Arrival;

/// Asks the kernel to timestamp every datagram `socket` receives.
#[cfg(target_os = "linux")]
pub(crate) fn enable_kernel_timestamps(socket: &impl AsFd) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: a valid socket descriptor, an int option and its exact size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_fd().as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Kernel timestamps exist only on Linux here.
#[cfg(not(target_os = "linux"))]
pub(crate) fn enable_kernel_timestamps(_socket: &impl AsFd) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "kernel receive timestamps need Linux",
    ))
}

/// Receives one datagram into `buf`: its length, source and arrival. With `kernel` (after
/// [`enable_kernel_timestamps`] succeeded) the arrival is the kernel's timestamp.
pub(crate) async fn recv_timestamped(
    socket: &UdpSocket,
    buf: &mut [u8],
    kernel: bool,
) -> io::Result<(usize, SocketAddr, Arrival)> {
    #[cfg(target_os = "linux")]
    if kernel {
        return loop {
            socket.readable().await?;
            match socket.try_io(tokio::io::Interest::READABLE, || {
                recvmsg_timestamped(socket, buf, libc::MSG_DONTWAIT)
            }) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                r => break r,
            }
        };
    }
    let _ = kernel;
    let (n, peer) = socket.recv_from(buf).await?;
    Ok((n, peer, Arrival::now()))
}

/// [`recv_timestamped`] on a blocking socket (a loop on a thread of its own); a receive
/// timeout on the socket surfaces as `WouldBlock`.
pub(crate) fn recv_blocking(
    socket: &std::net::UdpSocket,
    buf: &mut [u8],
    kernel: bool,
) -> io::Result<(usize, SocketAddr, Arrival)> {
    #[cfg(target_os = "linux")]
    if kernel {
        return recvmsg_timestamped(socket, buf, 0);
    }
    let _ = kernel;
    let (n, peer) = socket.recv_from(buf)?;
    Ok((n, peer, Arrival::now()))
}

/// One `recvmsg` (with `flags`) that reads the `SCM_TIMESTAMPNS` control message.
#[cfg(target_os = "linux")]
fn recvmsg_timestamped(
    socket: &impl AsFd,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, SocketAddr, Arrival)> {
    use std::os::fd::AsRawFd;
    use std::time::{Duration, UNIX_EPOCH};

    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one timespec control message, u64-aligned as cmsghdr requires.
    let mut control = [0u64; 8];
    // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_storage).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: msg points at live buffers of the sizes given.
    let n = unsafe { libc::recvmsg(socket.as_fd().as_raw_fd(), &mut msg, flags) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut arrival = Arrival::now();
    // SAFETY: the kernel filled msg_control with msg_controllen bytes of well-formed
    // control messages; CMSG_* walk exactly those.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(&msg);
        while !cmsg.is_null() {
            if (*cmsg).cmsg_level == libc::SOL_SOCKET && (*cmsg).cmsg_type == libc::SCM_TIMESTAMPNS
            {
                let ts: libc::timespec =
                    std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<libc::timespec>());
                if ts.tv_sec >= 0 {
                    arrival = Arrival {
                        at: UNIX_EPOCH + Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32),
                        from_kernel: true,
                    };
                }
            }
            cmsg = libc::CMSG_NXTHDR(&msg, cmsg);
        }
    }
    let peer = sockaddr_to_std(&addr).ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidData, "datagram from a non-IP address")
    })?;
    Ok((n as usize, peer, arrival))
}

#[cfg(target_os = "linux")]
fn sockaddr_to_std(addr: &libc::sockaddr_storage) -> Option<SocketAddr> {
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    match libc::c_int::from(addr.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says this storage holds a sockaddr_in.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(a.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says this storage holds a sockaddr_in6.
            let a =
                unsafe { &*(addr as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[tokio::test]
    async fn kernel_timestamp_and_source_are_read() {
        let server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        enable_kernel_timestamps(&server).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let before = SystemTime::now();
        client
            .send_to(b"when", server.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, peer, arrival) = recv_timestamped(&server, &mut buf, true).await.unwrap();
        assert_eq!(&buf[..n], b"when");
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(arrival.from_kernel, "the kernel gave no SO_TIMESTAMPNS");
        // The kernel stamped it after it was sent and before it was read.
        assert!(arrival.at + Duration::from_millis(1) >= before);
        assert!(arrival.at <= SystemTime::now());
    }

    #[test]
    fn blocking_receive_reads_the_kernel_timestamp() {
        let server = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        enable_kernel_timestamps(&server).unwrap();
        let client = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        client
            .send_to(b"block", server.local_addr().unwrap())
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, peer, arrival) = recv_blocking(&server, &mut buf, true).unwrap();
        assert_eq!(&buf[..n], b"block");
        assert_eq!(peer, client.local_addr().unwrap());
        assert!(arrival.from_kernel);
    }

    #[tokio::test]
    async fn ipv6_source_is_read() {
        let Ok(server) = UdpSocket::bind("[::1]:0").await else {
            panic!("no IPv6 loopback (::1): the UDP runtime tests need it");
        };
        enable_kernel_timestamps(&server).unwrap();
        let client = UdpSocket::bind("[::1]:0").await.unwrap();
        client
            .send_to(b"six", server.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (n, peer, _) = recv_timestamped(&server, &mut buf, true).await.unwrap();
        assert_eq!(&buf[..n], b"six");
        assert_eq!(peer, client.local_addr().unwrap());
    }
}
