//! Loopback sockets for tests: free ports, a UDP request and its reply, an in-process
//! server task stopped on drop, and address strings.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// `127.0.0.1:0`: loopback, any free port.
pub const LOOPBACK_ANY: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 0);

/// A UDP port of 127.0.0.1 that was free a moment ago (for a peer that must be told its
/// port; a server of ours binds port 0 instead).
pub fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind(LOOPBACK_ANY).expect("bind a loopback UDP socket");
    socket.local_addr().expect("its address").port()
}

/// A TCP port of 127.0.0.1 that was free a moment ago (see [`free_udp_port`]).
pub fn free_tcp_port() -> u16 {
    let listener = std::net::TcpListener::bind(LOOPBACK_ANY).expect("bind a loopback listener");
    listener.local_addr().expect("its address").port()
}

/// Sends `datagram` to `addr` from a fresh loopback socket connected to it and returns the
/// reply. UDP may drop even on loopback under load, so the request is sent up to 5 times,
/// each waiting up to 1 s for a reply, before the test fails.
pub async fn udp_ask(addr: SocketAddr, datagram: &[u8]) -> Vec<u8> {
    let s = UdpSocket::bind(LOOPBACK_ANY)
        .await
        .expect("bind a loopback UDP socket");
    s.connect(addr).await.expect("connect the UDP socket");
    let mut buf = vec![0u8; 65536];
    for _ in 0..5 {
        s.send(datagram).await.expect("send the request");
        if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(1), s.recv(&mut buf)).await {
            buf.truncate(n);
            return buf;
        }
    }
    panic!("no UDP reply from {addr}");
}

/// Host and port of an address string (`"[::1]:80"` gives `("::1", "80")`).
pub fn host_port(addr: &str) -> (String, String) {
    let (h, p) = addr
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("no port in {addr:?}"));
    (
        h.trim_start_matches('[').trim_end_matches(']').to_owned(),
        p.to_owned(),
    )
}

/// A server task serving `addr` on the current tokio runtime, stopped (its token
/// cancelled) when this is dropped, or by [`Running::stop`]. `T` is what the task returns:
/// by default `io::Result<()>`, as the runtime's `serve_tcp` and `serve_udp` do.
pub struct Running<T: Send + 'static = std::io::Result<()>> {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// Cancelled to stop the server.
    pub token: CancellationToken,
    task: Option<tokio::task::JoinHandle<T>>,
}

impl<T: Send + 'static> Running<T> {
    /// Spawns `serve(token)`, the server already bound to `addr` (bind before spawning,
    /// so the test can connect at once: no waiting for readiness).
    pub fn spawn<F>(addr: SocketAddr, serve: impl FnOnce(CancellationToken) -> F) -> Running<T>
    where
        F: Future<Output = T> + Send + 'static,
    {
        let token = CancellationToken::new();
        let task = tokio::spawn(serve(token.clone()));
        Running {
            addr,
            token,
            task: Some(task),
        }
    }

    /// Cancels the server and waits for its task to end, returning what it returned.
    pub async fn stop(mut self) -> T {
        self.token.cancel();
        let task = self.task.take().expect("the task is taken only here");
        task.await.expect("the server task panicked")
    }
}

impl<T: Send + 'static> Drop for Running<T> {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn udp_ask_gets_the_reply_and_running_stops() {
        let socket = UdpSocket::bind(LOOPBACK_ANY).await.unwrap();
        let addr = socket.local_addr().unwrap();
        let server = Running::spawn(addr, |token| async move {
            let mut buf = [0u8; 64];
            let mut answered = 0;
            loop {
                tokio::select! {
                    _ = token.cancelled() => return answered,
                    r = socket.recv_from(&mut buf) => {
                        let (n, from) = r.unwrap();
                        buf[..n].reverse();
                        socket.send_to(&buf[..n], from).await.unwrap();
                        answered += 1;
                    }
                }
            }
        });
        assert_eq!(udp_ask(server.addr, b"abc").await, b"cba");
        assert_eq!(server.stop().await, 1);
    }

    #[test]
    fn free_ports_are_bindable_and_addresses_split() {
        assert_ne!(free_udp_port(), 0);
        assert_ne!(free_tcp_port(), 0);
        assert_eq!(host_port("[::1]:80"), ("::1".to_owned(), "80".to_owned()));
        assert_eq!(
            host_port("127.0.0.1:7"),
            ("127.0.0.1".to_owned(), "7".to_owned())
        );
    }
}
