//! One UDP request/reply exchange with retries, shared by the UDP clients.

use std::time::Duration;

use anyhow::Context as _;
use tokio::net::UdpSocket;

/// Flags of a UDP exchange.
#[derive(Debug, Clone, clap::Args)]
pub struct UdpArgs {
    /// How long to wait for each UDP reply.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// How many times to resend a UDP request that got no reply.
    #[arg(long, default_value_t = 2)]
    pub retries: u32,
}

/// A UDP socket connected to `addr`.
pub async fn connect(addr: &str) -> anyhow::Result<UdpSocket> {
    let target = tokio::net::lookup_host(addr)
        .await
        .with_context(|| format!("cannot resolve {addr}"))?
        .next()
        .with_context(|| format!("{addr} resolves to no address"))?;
    let local = if target.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = UdpSocket::bind(local).await?;
    socket.connect(target).await?;
    Ok(socket)
}

/// Sends `request` and waits for one reply, resending on timeout.
pub async fn exchange(
    socket: &UdpSocket,
    request: &[u8],
    args: &UdpArgs,
) -> anyhow::Result<Vec<u8>> {
    let mut buf = vec![0u8; 65536];
    for _ in 0..=args.retries {
        socket.send(request).await?;
        match tokio::time::timeout(args.timeout, socket.recv(&mut buf)).await {
            Ok(Ok(n)) => return Ok(buf[..n].to_vec()),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                anyhow::bail!(
                    "{} refused the datagram (nothing listens on that UDP port)",
                    socket.peer_addr()?
                )
            }
            Ok(Err(e)) => return Err(e.into()),
            Err(_) => continue,
        }
    }
    anyhow::bail!(
        "no reply from {} after {} tries ({:?} each); is the server running?",
        socket.peer_addr()?,
        args.retries + 1,
        args.timeout
    )
}
