//! `sockit daytime [--udp] [--format F]`.

use std::process::ExitCode;

use anyhow::Context as _;
use sockit_basic::ports;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::cmd::udp::UdpArgs;
use crate::global::GlobalArgs;
use sockit_basic::client;

/// Flags of `sockit daytime`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    /// Use UDP (the server formats the time with --format).
    #[arg(long)]
    pub udp: bool,
    /// strftime format for the UDP server (default: the server's `%Y-%m-%d %X`).
    #[arg(long, requires = "udp")]
    pub format: Option<String>,
    #[command(flatten)]
    pub udp_args: UdpArgs,
}

/// Prints the server's daytime.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let addr = g.server_addr(ports::DAYTIME);
    if args.udp {
        let socket = client::udp_connect(&addr).await?;
        let format = args.format.unwrap_or_default();
        let reply = client::udp_exchange(&socket, format.as_bytes(), args.udp_args.retry()).await?;
        let text = String::from_utf8_lossy(&reply);
        if let Some(err) = text.strip_prefix("error: ") {
            anyhow::bail!("server refused the format: {err}");
        }
        println!("{text}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut stream = TcpStream::connect(&addr)
        .await
        .with_context(|| format!("cannot connect to daytime server {addr}"))?;
    let mut buf = Vec::new();
    (&mut stream).take(4096).read_to_end(&mut buf).await?;
    println!("{}", String::from_utf8_lossy(&buf).trim_end());
    Ok(ExitCode::SUCCESS)
}
