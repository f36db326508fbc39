//! The chat benchmark in miniature, against sockit's own server, ngircd and InspIRCd
//! (each with its generated config): every message must reach every other member of its
//! channel, and the servers with IRCv3 tags acknowledge them.

use std::path::PathBuf;
use std::time::Duration;

use sockit_bench::chat::{
    markdown, measure, raise_fd_limit, sockit_config, start_inspircd, start_ngircd, start_sockit,
    Measurement, Scenario,
};

fn tiny(prefix: char) -> Scenario {
    Scenario {
        clients: 20,
        channels: 2,
        rate: 20.0,
        duration: Duration::from_secs(1),
        prefix,
        tags: true,
    }
}

/// What a user of the benchmark checks: messages were sent, each one reached all the other
/// members of its channel (20 clients in 2 channels: 9 others each), latencies are ordered.
#[track_caller]
fn assert_complete(m: &Measurement) {
    assert_eq!(
        m.sent, 20,
        "one message per client in a 1 s window at 20/s: {m:?}"
    );
    assert_eq!(m.expected, m.sent * 9, "{m:?}");
    assert_eq!(
        m.delivered, m.expected,
        "every message must be delivered: {m:?}"
    );
    assert!(m.p50_ms <= m.p99_ms && m.p99_ms <= m.max_ms, "{m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_small_against_sockit() {
    raise_fd_limit();
    let server = start_sockit(sockit_config()).unwrap();
    let m = measure(server.addr, "sockit", &tiny('a')).await.unwrap();
    assert_complete(&m);
    assert_eq!(m.caps, "server-time message-tags", "{m:?}");
}

/// The binary `name` (Debian package `name` too); a missing one fails with the package
/// to install.
fn require(name: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("{name} is not installed: apt-get install {name} (scripts/test.sh installs it)")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ngircd_bench_small() {
    let bin = require("ngircd");
    raise_fd_limit();
    let server = start_ngircd(&bin).await.unwrap();
    let m = measure(server.addr, "ngircd", &tiny('b')).await.unwrap();
    assert_complete(&m);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_inspircd_bench_small() {
    let bin = require("inspircd");
    raise_fd_limit();
    let server = start_inspircd(&bin).await.unwrap();
    let m = measure(server.addr, "inspircd", &tiny('c')).await.unwrap();
    assert_complete(&m);
    // The generated config loads the IRCv3 modules: the tags are on.
    assert_eq!(m.caps, "server-time message-tags", "{m:?}");
}

fn row(server: &str, delivered_per_s: f64, p99_ms: f64) -> Measurement {
    Measurement {
        server: server.into(),
        caps: String::new(),
        clients: 10,
        channels: 1,
        rate: 10.0,
        seconds: 1.0,
        sent: 10,
        expected: 90,
        delivered: 90,
        delivered_per_s,
        p50_ms: p99_ms / 2.0,
        p99_ms,
        max_ms: p99_ms * 2.0,
    }
}

/// The table gives sockit's ratios to both peers and says whether the target is met.
#[test]
fn markdown_has_ratios_to_both_peers_and_the_verdict() {
    let runs = [
        row("ngircd", 90.0, 4.0),
        row("inspircd", 90.0, 2.0),
        row("sockit", 90.0, 3.0),
    ];
    let md = markdown(&runs, &[]);
    assert!(
        md.contains("| sockit | none | 10 | 1 | 10 | 1 | 10 | 90 / 90 | 90 | 1.50 | 3.00 | 6.00 | 1.00× | 0.75× | 1.00× | 1.50× |"),
        "{md}"
    );
    assert!(
        md.contains(
            "delivered/s ≥ the best peer's (90): yes; p99 below every peer's (lowest 2.00 ms): no"
        ),
        "{md}"
    );
}
