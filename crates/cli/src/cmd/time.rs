//! `sockit time [--udp]`: RFC 868 time and the offset from the local clock;
//! `sockit time --ntp [--nts] [--set]`: an NTPv4 measurement (offset, delay, stratum).

use std::process::ExitCode;
use std::time::SystemTime;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sockit_basic::{ports, time};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::cmd::ntp;
use crate::cmd::udp::{self, UdpArgs};
use crate::global::GlobalArgs;

/// How long the client waits, after the 4 bytes, for the close that tells an RFC 868
/// server from a server of another protocol.
const FOREIGN_CHECK: std::time::Duration = std::time::Duration::from_millis(500);

/// Flags of `sockit time`.
#[derive(Debug, clap::Args)]
pub struct Args {
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
    let sent = SystemTime::now();
    let (bytes, received): ([u8; 4], SystemTime) = if args.udp {
        let socket = udp::connect(&addr).await?;
        let reply = udp::exchange(&socket, b"", &args.udp_args).await?;
        let received = SystemTime::now();
        let bytes = reply.as_slice().try_into().map_err(|_| {
            anyhow::anyhow!("server sent {} bytes; RFC 868 replies are 4", reply.len())
        })?;
        (bytes, received)
    } else {
        let mut stream = TcpStream::connect(&addr)
            .await
            .with_context(|| format!("cannot connect to time server {addr}"))?;
        let mut b = [0u8; 4];
        stream
            .read_exact(&mut b)
            .await
            .context("server closed before sending 4 bytes")?;
        let received = SystemTime::now();
        // An RFC 868 server closes after its 4 bytes; more bytes mean another protocol
        // (daytime's text, a greeting) whose first 4 bytes are no time.
        let mut more = [0u8; 60];
        let extra = tokio::time::timeout(FOREIGN_CHECK, stream.read(&mut more)).await;
        if let Ok(Ok(n)) = extra {
            if n > 0 {
                let sent = [&b[..], &more[..n]].concat();
                anyhow::bail!(
                    "{addr} is not an RFC 868 time server: it sent `{}`",
                    String::from_utf8_lossy(&sent).trim_end().escape_debug()
                );
            }
        }
        (b, received)
    };
    let rtt = received.duration_since(sent).unwrap_or_default();
    let local_mid = sent + rtt / 2;
    let server = time::from_rfc868(u32::from_be_bytes(bytes), local_mid);
    let offset = signed_secs(server, local_mid);
    let when: DateTime<Utc> = server.into();
    if g.json {
        let out = serde_json::json!({
            "server": addr,
            "rfc868": u32::from_be_bytes(bytes),
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

fn signed_secs(a: SystemTime, b: SystemTime) -> f64 {
    match a.duration_since(b) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn offsets() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        assert_eq!(signed_secs(t + Duration::from_secs(2), t), 2.0);
        assert_eq!(signed_secs(t, t + Duration::from_millis(500)), -0.5);
    }
}
