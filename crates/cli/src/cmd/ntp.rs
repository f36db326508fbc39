//! `sockit time --ntp [--nts] [--set]`: measures the local clock against an NTP server
//! (several requests, the lowest-delay sample kept) and prints offset, delay, stratum,
//! reference, leap and precision; `--nts` first runs NTS-KE over TLS and authenticates
//! every packet; `--set` steps the clock by the offset (root).

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use sockit_ntp::client::{self, QueryOptions, Sample};
use sockit_ntp::{NTP_PORT, NTS_KE_PORT};

use crate::global::GlobalArgs;

/// The NTP flags of `sockit time`.
#[derive(Debug, Clone, clap::Args)]
pub struct NtpArgs {
    /// Speak NTPv4 (default port 7123, sockit's; 123 elsewhere) instead of RFC 868.
    #[arg(long)]
    pub ntp: bool,
    /// NTPv4 authenticated with NTS: --server is the NTS-KE address (default port 4460),
    /// trusted like other TLS servers (--ca, --fingerprint with --tls, or known hosts).
    #[arg(long)]
    pub nts: bool,
    /// NTP requests to send; the one with the lowest round-trip delay is kept.
    #[arg(long, default_value_t = QueryOptions::default().samples as u64, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub samples: u64,
    /// Time between NTP requests (public servers answer faster polling with a
    /// Kiss-o'-Death RATE).
    #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Total deadline of the NTP measurement, from the first request.
    #[arg(long = "ntp-timeout", default_value = "10s", value_parser = humantime::parse_duration)]
    pub ntp_timeout: Duration,
    /// Step the local clock by the measured offset (needs root or CAP_SYS_TIME).
    #[arg(long)]
    pub set: bool,
}

/// Runs the NTP measurement and prints it.
pub async fn run(args: &NtpArgs, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let opts = QueryOptions {
        samples: args.samples as usize,
        interval: args.interval,
        timeout: args.ntp_timeout,
        ..QueryOptions::default()
    };
    let (server, sample) = if args.nts {
        let ke = g.server_addr(NTS_KE_PORT);
        let (host, port) = split_host_port(&ke)?;
        let trust = g
            .trust(&ke, true)?
            .context("NTS needs a TLS trust choice")?;
        let mut session = sockit_ntp::nts::key_exchange(&host, port, trust)
            .await
            .with_context(|| format!("NTS key exchange with {ke} failed"))?;
        let ntp = resolve(&session.ntp_server, session.ntp_port).await?;
        let sample = client::query_with(ntp, &opts, &mut session)
            .await
            .with_context(|| format!("NTS-authenticated NTP with {ntp} failed"))?;
        (ntp, sample)
    } else {
        let addr = g.server_addr(NTP_PORT);
        let (host, port) = split_host_port(&addr)?;
        let ntp = resolve(&host, port).await?;
        let sample = client::query(ntp, &opts)
            .await
            .with_context(|| format!("NTP with {ntp} failed"))?;
        (ntp, sample)
    };
    let stepped = if args.set {
        client::step_clock(sample.offset).context("cannot step the clock")?;
        true
    } else {
        false
    };
    if g.json {
        println!("{}", to_json(server, &sample, args.nts, stepped));
    } else {
        print_human(server, &sample, args.nts, stepped);
    }
    Ok(ExitCode::SUCCESS)
}

fn split_host_port(addr: &str) -> anyhow::Result<(String, u16)> {
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("`{addr}` has no port"))?;
    let port = port
        .parse()
        .with_context(|| format!("`{port}` is not a port"))?;
    Ok((
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
        port,
    ))
}

async fn resolve(host: &str, port: u16) -> anyhow::Result<SocketAddr> {
    tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))
}

fn leap_text(leap: u8) -> &'static str {
    match leap {
        0 => "none",
        1 => "a second is inserted at the end of the day",
        2 => "a second is deleted at the end of the day",
        _ => "unsynchronized",
    }
}

fn micros(secs: f64) -> f64 {
    (secs * 1e7).round() / 10.0
}

fn to_json(server: SocketAddr, s: &Sample, nts: bool, stepped: bool) -> serde_json::Value {
    let when: DateTime<Utc> = s.server_time.into();
    serde_json::json!({
        "server": server.to_string(),
        "nts": nts,
        "offset_us": micros(s.offset),
        "delay_us": micros(s.delay),
        "stratum": s.stratum,
        "refid": s.reference,
        "leap": s.leap,
        "precision": s.precision,
        "root_delay_us": micros(s.root_delay),
        "root_dispersion_us": micros(s.root_dispersion),
        "version": s.version,
        "server_time": when.to_rfc3339(),
        "sent": s.sent,
        "valid": s.valid,
        "stepped": stepped,
    })
}

fn print_human(server: SocketAddr, s: &Sample, nts: bool, stepped: bool) {
    let how = if nts {
        "NTS-authenticated"
    } else {
        "unauthenticated"
    };
    let when: DateTime<Utc> = s.server_time.into();
    println!("server:          {server} (NTPv{}, {how})", s.version);
    println!(
        "server time:     {}",
        when.format("%Y-%m-%d %H:%M:%S%.6f UTC")
    );
    println!(
        "offset:          {:+.1} µs (server minus local clock)",
        micros(s.offset)
    );
    println!("delay:           {:.1} µs (round trip)", micros(s.delay));
    println!("stratum:         {} (reference {})", s.stratum, s.reference);
    println!("leap:            {}", leap_text(s.leap));
    println!(
        "precision:       2^{} s ({:.0} ns)",
        s.precision,
        2f64.powi(i32::from(s.precision)) * 1e9
    );
    println!(
        "root:            delay {:.1} µs, dispersion {:.1} µs",
        micros(s.root_delay),
        micros(s.root_dispersion)
    );
    println!(
        "samples:         {} sent, {} valid, lowest delay kept",
        s.sent, s.valid
    );
    if stepped {
        println!("clock stepped by {:+.1} µs", micros(s.offset));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_split() {
        assert_eq!(
            split_host_port("[::1]:4460").unwrap(),
            ("::1".to_owned(), 4460)
        );
        assert_eq!(
            split_host_port("time.example:123").unwrap(),
            ("time.example".to_owned(), 123)
        );
        assert!(split_host_port("nohost").is_err());
    }

    #[test]
    fn microseconds_round_to_a_tenth() {
        assert_eq!(micros(0.000_012_345), 12.3);
        assert_eq!(micros(-0.5), -500_000.0);
    }
}
