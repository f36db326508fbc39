//! The load generator against real servers: sane numbers against a model, and latency
//! that shows a deliberately slow server's delay (checked as the lower bounds the delay
//! guarantees; how much slower is a benchmark's question, not a test's), plus the
//! coordinated-omission correction on an injected clock.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::Duration;

use sockit_lab::loadgen::recorder::OpenLoopRecorder;
use sockit_lab::loadgen::{self, LoadConfig, Percentiles};
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

/// The service time of [`slow_server`] in the open-loop tests, and their schedule: one
/// connection at 200 req/s (a request due every 5 ms) against a server that can do 50/s.
const SERVICE: Duration = Duration::from_millis(20);
const RATE: f64 = 200.0;
const RUN: Duration = Duration::from_millis(800);

/// Allows for the histogram's 3 significant digits.
fn at_least(got_us: f64, want: Duration) -> bool {
    got_us >= want.as_secs_f64() * 1e6 * 0.998
}

#[test]
fn slow_server_open_loop_charges_queueing() {
    // Over a real socket only what the server's delay guarantees is checked: every answer
    // takes ≥ 20 ms, so request k (0-based) is sent no earlier than 20k ms while it was
    // due at 5k ms; its corrected latency is then ≥ 15k + 20 ms, its naive one ≥ 20 ms.
    let addr = slow_server(SERVICE);
    let mut cfg = LoadConfig::new(addr);
    cfg.conns = 1;
    cfg.size = 16;
    cfg.duration = RUN;
    let stats = loadgen::open::run(&cfg, RATE, |_| {}).unwrap();
    let naive = stats.uncorrected.unwrap();
    let n = stats.requests;
    assert!(n > 0, "{stats:?}");
    assert!(
        n <= 41,
        "one connection, ≥ 20 ms a request, 800 ms: {stats:?}"
    );
    assert_eq!(stats.errors, 0, "{stats:?}");
    assert!(at_least(naive.p50_us, SERVICE), "{naive:?}");
    let last = SERVICE + Duration::from_millis(15) * (n as u32 - 1);
    assert!(at_least(stats.latency.max_us, last), "{stats:?}");
    for (c, u) in [
        (stats.latency.p50_us, naive.p50_us),
        (stats.latency.p99_us, naive.p99_us),
        (stats.latency.max_us, naive.max_us),
    ] {
        assert!(c >= u, "corrected below naive: {stats:?}");
    }
}

#[test]
fn open_loop_recorder_on_an_injected_clock_charges_queueing_to_every_late_request() {
    // The same run with the clock replaced by arithmetic: 40 requests due every 5 ms, each
    // sent when the previous answer is back (or when due) and answered 20 ms later.
    let interval = Duration::from_secs_f64(1.0 / RATE);
    let mut rec = OpenLoopRecorder::new(interval);
    let mut now = Duration::ZERO;
    for _ in 0..40 {
        let sent = now.max(rec.next_due());
        let done = sent + SERVICE;
        rec.record(sent, done);
        now = done;
    }
    let corrected = Percentiles::from_histogram(&rec.corrected);
    let naive = Percentiles::from_histogram(&rec.uncorrected);
    let us = |ms: u64| ms as f64 * 1000.0;
    let close = |got: f64, want_ms: u64| (got - us(want_ms)).abs() <= us(want_ms) * 0.002;
    // A naive tool sees a steady 20 ms server.
    assert!(
        close(naive.p50_us, 20) && close(naive.max_us, 20),
        "{naive:?}"
    );
    // Request k waits 15k ms in the queue: 20 ms for the first, 605 ms for the 40th.
    assert_eq!(corrected.count, 40);
    assert!(close(corrected.max_us, 605), "{corrected:?}");
    assert!(close(corrected.p50_us, 305), "{corrected:?}");
    assert_eq!(rec.corrected.count_between(0, 20_020_000), 1);
}

#[test]
fn refuses_non_loopback_targets() {
    let cfg = LoadConfig::new("10.1.2.3:7".parse().unwrap());
    assert!(matches!(
        loadgen::closed::run(&cfg, |_| {}),
        Err(LabError::NotLoopback { .. })
    ));
}
