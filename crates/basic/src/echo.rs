//! echo (RFC 862): every byte received is sent back, over TCP and UDP.

use std::io;
use std::net::SocketAddr;

use async_trait::async_trait;
use sockit_runtime::server::{ConnInfo, ServiceStream, TcpService, UdpService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// TCP echo.
#[derive(Debug, Default, Clone)]
pub struct EchoTcp;

#[async_trait]
impl TcpService for EchoTcp {
    fn name(&self) -> &'static str {
        "echo"
    }

    async fn handle(&self, mut stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut total: u64 = 0;
        loop {
            let n = tokio::select! {
                _ = info.shutdown.cancelled() => return Ok(format!("server shutting down after {total} bytes")),
                r = stream.read(&mut buf) => r?,
            };
            if n == 0 {
                stream.shutdown().await?;
                return Ok(format!("client closed after {total} bytes"));
            }
            // RFC 862 is a byte stream and course clients send each message in one
            // unterminated send(), so every read is a whole request.
            info.clock.request_complete();
            stream.write_all(&buf[..n]).await?;
            total += n as u64;
        }
    }
}

/// UDP echo: each datagram is sent back unchanged to its sender.
#[derive(Debug, Default, Clone)]
pub struct EchoUdp;

impl UdpService for EchoUdp {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn respond(&self, datagram: &[u8], _peer: SocketAddr) -> Option<Vec<u8>> {
        Some(datagram.to_vec())
    }
}
