//! `sockit discover`: broadcast a discovery request and list the sockit servers that answer.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use sockit_chat::discovery;

use crate::global::GlobalArgs;

/// Flags of `sockit discover`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The discovery port servers listen on.
    #[arg(long, default_value_t = sockit_chat::ports::DISCOVERY)]
    pub port: u16,
    /// How long to collect answers.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
    /// Ask only this address (repeatable; HOST or HOST:PORT) instead of broadcasting to
    /// 255.255.255.255, every interface's broadcast address and loopback.
    #[arg(long, value_name = "ADDR")]
    pub target: Vec<String>,
}

/// Lists the servers that answered (none is not an error).
pub async fn run(args: Args, g: &GlobalArgs) -> anyhow::Result<ExitCode> {
    let targets: Vec<SocketAddr> = if args.target.is_empty() {
        discovery::broadcast_targets(args.port)
    } else {
        let mut out = Vec::new();
        for t in &args.target {
            let addr = crate::global::resolve_server(Some(t), args.port);
            let resolved = tokio::net::lookup_host(&addr)
                .await
                .with_context(|| format!("cannot resolve --target {t}"))?;
            out.extend(resolved.filter(SocketAddr::is_ipv4));
        }
        out
    };
    let found = discovery::discover(&targets, args.timeout)
        .await
        .context("cannot send discovery requests")?;
    if g.json {
        let list: Vec<serde_json::Value> = found
            .iter()
            .map(|f| {
                serde_json::json!({
                    "name": f.announcement.name,
                    "id": f.announcement.id,
                    "version": f.announcement.version,
                    "from": f.from.to_string(),
                    "services": f.services(),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(list));
        return Ok(ExitCode::SUCCESS);
    }
    if found.is_empty() {
        eprintln!(
            "no sockit server answered within {:?} (asked {} address{})",
            args.timeout,
            targets.len(),
            if targets.len() == 1 { "" } else { "es" }
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<20} {:<22} {:<10} {:<6} ADDRESS",
        "NAME", "FROM", "SERVICE", "PROTO"
    );
    for f in &found {
        for (service, protos) in f.services() {
            for (proto, addr) in protos {
                println!(
                    "{:<20} {:<22} {:<10} {:<6} {}",
                    f.announcement.name, f.from, service, proto, addr
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
