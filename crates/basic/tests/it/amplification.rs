//! The UDP services cannot be turned into reflection amplifiers: every reply is at most
//! 3× its request on the wire (28 bytes of IPv4/UDP headers counted on both sides), and
//! a flood from one source is cut to the per-source rate.

use std::sync::Arc;
use std::time::Instant;

use sockit_basic::{DaytimeUdp, EchoUdp, TimeUdp};
use sockit_runtime::server::{bind_udp, UdpService};
use sockit_runtime::udp::serve_udp_with;
use sockit_runtime::udp_guard::{RateLimit, IPV4_UDP_HEADER};
use sockit_testkit::net::{udp_ask as ask, Running, LOOPBACK_ANY};
use tokio::net::UdpSocket;

fn udp(service: impl UdpService, rate: RateLimit) -> Running {
    let socket = bind_udp(LOOPBACK_ANY).unwrap();
    let addr = socket.local_addr().unwrap();
    Running::spawn(addr, |token| {
        serve_udp_with(socket, Arc::new(service), rate, token)
    })
}

/// The amplification factor of one exchange, on the wire.
fn factor(request: usize, reply: usize) -> f64 {
    (reply + IPV4_UDP_HEADER) as f64 / (request + IPV4_UDP_HEADER) as f64
}

#[tokio::test]
async fn echo_daytime_and_time_answer_at_most_three_times_the_request() {
    let echo = udp(EchoUdp, RateLimit::default());
    for request in [&b""[..], b"x", &[7u8; 1400], &[0u8; 60_000]] {
        let reply = ask(echo.addr, request).await;
        assert_eq!(reply, request);
        assert!(factor(request.len(), reply.len()) <= 3.0);
    }

    let time = udp(TimeUdp, RateLimit::default());
    // rdate -u sends an empty datagram and needs its 4 bytes.
    let reply = ask(time.addr, b"").await;
    assert_eq!(reply.len(), 4);
    assert!(factor(0, 4) <= 3.0);

    let daytime = udp(DaytimeUdp, RateLimit::default());
    let long = "%c".repeat(128);
    let mixed = "%A %B %c %x %X %Z %z %G-W%V ".repeat(8);
    let formats: [&[u8]; 7] = [
        b"",
        b"%Y",
        b"%c",
        b"%c%c%c%c%c%c%c%c",
        b"%A%A%A%A%A%A%A%A%A%A%A%A",
        long.as_bytes(),
        mixed.as_bytes(),
    ];
    let mut refused = 0;
    for format in formats {
        let reply = ask(daytime.addr, format).await;
        let f = factor(format.len(), reply.len());
        assert!(
            f <= 3.0,
            "format {:?}: {} bytes answered with {} ({f:.1}x)",
            String::from_utf8_lossy(format),
            format.len(),
            reply.len()
        );
        if reply.starts_with(b"error: reply") {
            refused += 1;
        }
    }
    assert!(refused >= 2, "the long formats are refused");
    assert_eq!(ask(daytime.addr, b"%Y").await.len(), 4);
}

#[tokio::test]
async fn a_long_daytime_format_is_answered_once_padded_as_told() {
    let daytime = udp(DaytimeUdp, RateLimit::default());
    let format = "%c".repeat(128);
    let refusal = String::from_utf8(ask(daytime.addr, format.as_bytes()).await).unwrap();
    let pad_to: usize = refusal
        .split("pad to ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no padding size in {refusal:?}"));
    let mut padded = format.into_bytes();
    padded.resize(pad_to, b'\n');
    let reply = ask(daytime.addr, &padded).await;
    assert_eq!(
        reply.len(),
        128 * 24,
        "{:?}",
        String::from_utf8_lossy(&reply)
    );
    assert!(factor(padded.len(), reply.len()) <= 3.0);
}

#[tokio::test]
async fn a_flood_from_one_source_is_cut_to_the_rate() {
    let rate = RateLimit {
        per_second: 1,
        burst: 5,
        max_sources: 64,
    };
    let echo = udp(EchoUdp, rate);
    // The flood comes from 127.0.0.2; a marker from 127.0.0.1 (another source, its own
    // bucket) tells when the server has handled everything sent before it.
    let flooder = UdpSocket::bind("127.0.0.2:0").await.unwrap();
    flooder.connect(echo.addr).await.unwrap();
    let started = Instant::now();
    for i in 0..200u32 {
        flooder.send(&i.to_be_bytes()).await.unwrap();
    }
    assert_eq!(ask(echo.addr, b"marker").await, b"marker");
    let elapsed = started.elapsed().as_secs() + 1;
    let mut answered = 0u64;
    let mut buf = [0u8; 64];
    while flooder.try_recv(&mut buf).is_ok() {
        answered += 1;
    }
    assert!(answered >= 1, "the burst is answered");
    assert!(
        answered <= 5 + elapsed,
        "{answered} of 200 datagrams answered with a burst of 5 and 1/s over {elapsed}s"
    );
}
