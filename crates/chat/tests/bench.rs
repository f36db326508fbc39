//! The chat benchmark in miniature: sockit's own server, and ngircd when installed.

use std::path::PathBuf;
use std::time::Duration;

use sockit_chat::bench::{
    measure, raise_fd_limit, sockit_config, start_ngircd, start_sockit, Scenario,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_small_against_sockit() {
    raise_fd_limit();
    let server = start_sockit(sockit_config()).unwrap();
    let m = measure(server.addr, "sockit", &tiny('a')).await.unwrap();
    assert!(m.sent > 0, "{m:?}");
    assert!(m.delivered > 0, "{m:?}");
    assert!(m.delivered <= m.expected, "{m:?}");
    assert!(m.p50_ms <= m.p99_ms, "{m:?}");
}

fn ngircd_on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()])
        .map(|d| d.join("ngircd"))
        .find(|p| p.is_file())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interop_ngircd_bench_small() {
    let Some(bin) = ngircd_on_path() else {
        println!("skipped: ngircd is not installed");
        return;
    };
    raise_fd_limit();
    let server = start_ngircd(&bin).await.unwrap();
    let m = measure(server.addr, "ngircd", &tiny('b')).await.unwrap();
    assert!(m.delivered > 0, "{m:?}");
    assert!(m.p50_ms <= m.p99_ms, "{m:?}");
}
