//! `sockit echo [--udp]`: stdin → echo server → stdout.

use std::process::ExitCode;

use anyhow::Context as _;
use sockit_basic::ports;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::cmd::udp::UdpArgs;
use crate::global::GlobalArgs;
use sockit_basic::client;

/// Flags of `sockit echo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    /// Use UDP: each line of stdin is one datagram.
    #[arg(long)]
    pub udp: bool,
    #[command(flatten)]
    pub udp_args: UdpArgs,
}

/// Copies stdin through the echo server to stdout.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let addr = g.server_addr(ports::ECHO);
    if args.udp {
        let socket = client::udp_connect(&addr).await?;
        let mut lines = BufReader::new(tokio::io::stdin());
        let mut out = tokio::io::stdout();
        let mut line = Vec::new();
        loop {
            line.clear();
            if lines.read_until(b'\n', &mut line).await? == 0 {
                break;
            }
            let reply = client::udp_exchange(&socket, &line, args.udp_args.retry()).await?;
            out.write_all(&reply).await?;
            out.flush().await?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let stream = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("cannot connect to echo server {addr}"))?;
    let (mut rd, mut wr) = stream.into_split();
    let upload = async move {
        tokio::io::copy(&mut tokio::io::stdin(), &mut wr).await?;
        // Tell the server we are done; it closes after echoing the rest.
        wr.shutdown().await
    };
    let download = async move {
        let mut out = tokio::io::stdout();
        tokio::io::copy(&mut rd, &mut out).await?;
        out.flush().await
    };
    let (up, down) = tokio::join!(upload, download);
    up.context("sending stdin")?;
    down.context("receiving echo")?;
    Ok(ExitCode::SUCCESS)
}
