//! A UDP socket talking to one peer transfer ID (address and port).

use super::TransferError;
use crate::packets::{error_bytes, ErrorCode, Opcode};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::SocketAddr;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Socket buffer size requested for transfer sockets, so a full window of large blocks
/// fits (the kernel caps it at `net.core.rmem_max` / `wmem_max`).
pub(crate) const SOCKET_BUFFER: usize = 4 << 20;

/// Binds a UDP socket with large buffers (IPv4 or IPv6 as `addr` says; an IPv6 socket
/// keeps the system's dual-stack default so v4-mapped peers work).
///
/// # Errors
/// The bind error.
pub(crate) fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: a smaller buffer only means more retransmissions on big windows.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// A socket and the peer's transfer ID. Datagrams from any other source are answered
/// with ERROR 5 (unknown transfer ID) and otherwise ignored, as RFC 1350 says; an ERROR
/// packet from another source is ignored without an answer.
#[derive(Debug)]
pub(crate) struct Endpoint {
    socket: UdpSocket,
    peer: SocketAddr,
    /// Cancelled when the server shuts down (after its drain deadline).
    cancel: CancellationToken,
}

impl Endpoint {
    /// Ties `socket` to `peer`.
    pub fn new(socket: UdpSocket, peer: SocketAddr) -> Endpoint {
        Endpoint {
            socket,
            peer,
            cancel: CancellationToken::new(),
        }
    }

    /// Makes [`Endpoint::recv`] fail with [`TransferError::Cancelled`] once `cancel` fires.
    pub fn with_cancel(mut self, cancel: CancellationToken) -> Endpoint {
        self.cancel = cancel;
        self
    }

    /// The peer's transfer ID.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Sends one datagram to the peer.
    ///
    /// # Errors
    /// The socket's error.
    pub async fn send(&self, datagram: &[u8]) -> io::Result<()> {
        self.socket.send_to(datagram, self.peer).await.map(|_| ())
    }

    /// Sends an ERROR packet to the peer, ignoring failures (the transfer is over anyway).
    pub async fn send_error(&self, code: ErrorCode, message: &str) {
        let _ = self.send(&error_bytes(code, message)).await;
    }

    /// Receives the next datagram from the peer into `buf`, or `None` at `deadline`.
    ///
    /// # Errors
    /// [`TransferError::Network`] on a socket error, [`TransferError::Cancelled`] on
    /// cancellation.
    pub async fn recv(
        &self,
        buf: &mut [u8],
        deadline: Instant,
    ) -> Result<Option<usize>, TransferError> {
        loop {
            let received = tokio::select! {
                biased;
                received = tokio::time::timeout_at(deadline, self.socket.recv_from(buf)) => received,
                () = self.cancel.cancelled() => return Err(TransferError::Cancelled),
            };
            let (len, from) = match received {
                Err(_elapsed) => return Ok(None),
                Ok(result) => result.map_err(TransferError::Network)?,
            };
            if from == self.peer {
                return Ok(Some(len));
            }
            // ERROR packets are never answered, not even a stranger's: two transfer
            // ports that took each other for strangers would otherwise ping-pong ERRORs.
            if is_error_packet(&buf[..len]) {
                continue;
            }
            let unknown = error_bytes(ErrorCode::UnknownTid, "unknown transfer ID");
            let _ = self.socket.send_to(&unknown, from).await;
        }
    }
}

/// Whether `datagram` carries the ERROR opcode (5), whatever follows.
fn is_error_packet(datagram: &[u8]) -> bool {
    datagram.get(..2) == Some(&(Opcode::Error as u16).to_be_bytes()[..])
}

#[cfg(test)]
mod tests {
    use super::is_error_packet;

    #[test]
    fn error_opcode() {
        assert!(is_error_packet(b"\x00\x05\x00\x00oops\x00"));
        assert!(is_error_packet(b"\x00\x05"));
    }

    #[test]
    fn other_opcodes_and_runts() {
        assert!(!is_error_packet(b"\x00\x04\x00\x01"));
        assert!(!is_error_packet(b"\x00"));
        assert!(!is_error_packet(b""));
    }
}
