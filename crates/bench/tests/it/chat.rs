//! The chat benchmark in miniature, against sockit's own server and against ngircd: every
//! message must reach every other member of its channel.

use std::path::PathBuf;
use std::time::Duration;

use sockit_bench::chat::{
    measure, raise_fd_limit, sockit_config, start_ngircd, start_sockit, Measurement, Scenario,
};

fn tiny(prefix: char) -> Scenario {
    Scenario {
        clients: 20,
        channels: 2,
        rate: 20.0,
        duration: Duration::from_secs(1),
        prefix,
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
}

/// The ngircd binary; a missing one fails with the package to install.
fn require_ngircd() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("ngircd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("ngircd is not installed: apt-get install ngircd (scripts/test.sh installs it)")
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ngircd_bench_small() {
    let bin = require_ngircd();
    raise_fd_limit();
    let server = start_ngircd(&bin).await.unwrap();
    let m = measure(server.addr, "ngircd", &tiny('b')).await.unwrap();
    assert_complete(&m);
}
