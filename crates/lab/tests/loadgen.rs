//! The load generator against real servers: sane numbers against a model, and latency
//! that shows a deliberately slow server's delay.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use sockit_lab::loadgen::{self, LoadConfig};
use sockit_lab::{spawn_model, LabError, Model, ServeConfig};

fn assert_ordered(p: &sockit_lab::loadgen::Percentiles) {
    assert!(p.p50_us > 0.0, "{p:?}");
    assert!(
        p.p50_us <= p.p99_us && p.p99_us <= p.p999_us && p.p999_us <= p.max_us,
        "{p:?}"
    );
}

#[test]
fn closed_loop_against_tokio_model() {
    let server = spawn_model(ServeConfig::new(Model::Tokio)).unwrap();
    let mut cfg = LoadConfig::new(server.addr());
    cfg.conns = 8;
    cfg.size = 512;
    cfg.duration = Duration::from_millis(500);
    let mut seen = None;
    let stats = loadgen::closed::run(&cfg, |n| seen = Some(n)).unwrap();
    assert_eq!(seen, Some(8));
    assert_eq!(stats.connected, 8);
    assert_eq!(stats.errors, 0);
    assert!(stats.requests > 0 && stats.rps > 0.0, "{stats:?}");
    assert_ordered(&stats.latency);
    server.stop().unwrap();
}

#[test]
fn request_budget_bounds_the_run() {
    let server = spawn_model(ServeConfig::new(Model::EpollEt)).unwrap();
    let mut cfg = LoadConfig::new(server.addr());
    cfg.conns = 4;
    cfg.duration = Duration::from_secs(30);
    cfg.max_requests = Some(200);
    let stats = loadgen::closed::run(&cfg, |_| {}).unwrap();
    assert_eq!(stats.requests, 200);
    server.stop().unwrap();
}

#[test]
fn open_loop_keeps_to_the_schedule() {
    let server = spawn_model(ServeConfig::new(Model::Mio)).unwrap();
    let mut cfg = LoadConfig::new(server.addr());
    cfg.conns = 4;
    cfg.duration = Duration::from_millis(500);
    let stats = loadgen::open::run(&cfg, 400.0, |_| {}).unwrap();
    // The schedule allows at most rate × duration requests (+1 per connection).
    assert!(stats.requests > 0 && stats.requests <= 204, "{stats:?}");
    assert_ordered(&stats.latency);
    let naive = stats
        .uncorrected
        .expect("open loop reports the naive view too");
    // Corrected latency can only be larger: it starts at the intended send time.
    assert!(stats.latency.max_us >= naive.max_us, "{stats:?}");
    server.stop().unwrap();
}

#[test]
fn connect_rate_against_thread_model() {
    let server = spawn_model(ServeConfig::new(Model::Thread)).unwrap();
    let mut cfg = LoadConfig::new(server.addr());
    cfg.conns = 4;
    cfg.duration = Duration::from_millis(400);
    cfg.max_requests = Some(2000);
    let stats = loadgen::connect::run(&cfg).unwrap();
    assert!(stats.requests > 0, "{stats:?}");
    assert_eq!(stats.errors, 0);
    assert_ordered(&stats.latency);
    server.stop().unwrap();
}

/// A deliberately slow echo server: every reply is held back 20 ms.
fn slow_server(delay: Duration) -> std::net::SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    let n = match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    // The server's own delay under test, not a wait for readiness.
                    std::thread::sleep(delay);
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[test]
fn slow_server_delay_shows_in_latency() {
    let delay = Duration::from_millis(20);
    let addr = slow_server(delay);
    let mut cfg = LoadConfig::new(addr);
    cfg.conns = 2;
    cfg.size = 16;
    cfg.duration = Duration::from_millis(600);
    let stats = loadgen::closed::run(&cfg, |_| {}).unwrap();
    assert!(stats.requests > 0);
    assert!(stats.latency.p50_us >= 20_000.0, "{stats:?}");
    // Two connections, ≥ 20 ms per round trip: at most 2 × 600/20 requests.
    assert!(stats.requests <= 62, "{stats:?}");
}

#[test]
fn slow_server_open_loop_charges_queueing() {
    // 100 req/s on one connection against a 20 ms server is fine; at 200 req/s the
    // server can only do 50/s, so corrected latency grows far beyond the 20 ms service
    // time while the naive view stays near it.
    let addr = slow_server(Duration::from_millis(20));
    let mut cfg = LoadConfig::new(addr);
    cfg.conns = 1;
    cfg.size = 16;
    cfg.duration = Duration::from_millis(800);
    let stats = loadgen::open::run(&cfg, 200.0, |_| {}).unwrap();
    let naive = stats.uncorrected.unwrap();
    assert!(
        naive.p50_us >= 20_000.0 && naive.p50_us < 200_000.0,
        "{naive:?}"
    );
    assert!(stats.latency.p99_us > 3.0 * naive.p99_us, "{stats:?}");
}

#[test]
fn refuses_non_loopback_targets() {
    let cfg = LoadConfig::new("10.1.2.3:7".parse().unwrap());
    assert!(matches!(
        loadgen::closed::run(&cfg, |_| {}),
        Err(LabError::NotLoopback { .. })
    ));
}
