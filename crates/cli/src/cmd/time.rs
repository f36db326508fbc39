//! `sockit time [--udp]`: RFC 868 time and the offset from the local clock;
//! `sockit time --ntp [--nts] [--set]`: an NTPv4 measurement (offset, delay, stratum).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use sockit_basic::{client, ports};

use crate::cmd::ntp;
use crate::cmd::udp::UdpArgs;
use crate::global::GlobalArgs;

/// Flags of `sockit time`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub server: crate::global::ServerArg,
    #[command(flatten)]
    pub tls: crate::global::TlsArgs,
    /// Use UDP (RFC 868).
    #[arg(long, conflicts_with_all = ["ntp", "nts"])]
    pub udp: bool,
    #[command(flatten)]
    pub udp_args: UdpArgs,
    #[command(flatten)]
    pub ntp: ntp::NtpArgs,
}

/// Prints the server's time and the local clock's offset.
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    if args.ntp.ntp || args.ntp.nts {
        return ntp::run(&args.ntp, g).await;
    }
    let addr = g.server_addr(ports::TIME);
    let reading = if args.udp {
        client::time_udp(&addr, args.udp_args.retry()).await?
    } else {
        client::time_tcp(&addr).await?
    };
    let offset = reading.offset_secs;
    let rtt = reading.rtt;
    let when: DateTime<Utc> = reading.server.into();
    if g.json {
        let out = serde_json::json!({
            "server": addr,
            "rfc868": reading.rfc868,
            "server_time": when.to_rfc3339(),
            "offset_secs": offset,
            "rtt_ms": rtt.as_secs_f64() * 1000.0,
        });
        println!("{out}");
    } else {
        println!("server time: {}", when.format("%Y-%m-%d %H:%M:%S UTC"));
        println!(
            "offset:      {offset:+.3} s (server minus local clock; RFC 868 counts whole seconds, so ±1 s is noise)"
        );
    }
    Ok(ExitCode::SUCCESS)
}
