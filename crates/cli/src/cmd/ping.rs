//! `sockit ping`: connect to the framed port, authenticate, ping.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use sockit_wire::FRAMED_PORT;

use crate::global::GlobalArgs;

/// Flags of `sockit ping`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub conn: crate::global::FramedArgs,
    /// How many pings to send over the connection.
    #[arg(short = 'c', long, default_value_t = 1)]
    pub count: u32,
    /// Connect/handshake timeout.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Pings the server.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let addr = g.server_addr(FRAMED_PORT);
    let start = Instant::now();
    let mut client = g.framed_client(args.timeout).await?;
    let connect = start.elapsed();
    let hello = client.hello().clone();
    let mut rtts = Vec::new();
    for _ in 0..args.count.max(1) {
        let t = Instant::now();
        client.ping().await?;
        rtts.push(t.elapsed());
    }
    let _ = client.bye().await;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    if g.json {
        let out = serde_json::json!({
            "server": addr,
            "ident": hello.server,
            "auth": hello.auth.as_str(),
            "tls": g.conn.tls,
            "connect_ms": ms(connect),
            "rtt_ms": rtts.iter().map(|d| ms(*d)).collect::<Vec<_>>(),
        });
        println!("{out}");
    } else {
        println!(
            "connected to {addr} ({}, auth {}{}) in {:.2} ms",
            hello.server,
            hello.auth.as_str(),
            if g.conn.tls { ", tls" } else { "" },
            ms(connect)
        );
        for (i, d) in rtts.iter().enumerate() {
            println!("pong {}: time={:.3} ms", i + 1, ms(*d));
        }
    }
    Ok(ExitCode::SUCCESS)
}
