//! The TFTP server against absent, forged and hostile peers: slots come back after the
//! give-up time whatever `timeout` was asked, one source cannot take every slot, the
//! first answer to a request stays within 3× of it on the wire, and a silent peer is not
//! sent window after window.

use crate::common;

use common::TestServer;
use sockit_runtime::udp_guard::IPV4_UDP_HEADER;
use sockit_tftp::packets::Packet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;

/// How long a test waits for any one datagram.
const WAIT: Duration = Duration::from_secs(10);

/// An RRQ for `name` in octet mode with `options`.
fn rrq(name: &str, options: &[(&str, &str)]) -> Vec<u8> {
    let mut out = vec![0, 1];
    for part in [name, "octet"] {
        out.extend_from_slice(part.as_bytes());
        out.push(0);
    }
    for (k, v) in options {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

async fn socket_on(ip: &str) -> UdpSocket {
    UdpSocket::bind(format!("{ip}:0")).await.unwrap()
}

async fn recv_from(s: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 65536];
    let (n, from) = tokio::time::timeout(WAIT, s.recv_from(&mut buf))
        .await
        .expect("no answer from the server")
        .unwrap();
    (buf[..n].to_vec(), from)
}

/// What a request from `ip` gets: `Ok(())` once it was served (a one-block file, ACKed),
/// `Err(message)` for an ERROR.
async fn try_fetch(server: SocketAddr, ip: &str) -> Result<(), String> {
    let s = socket_on(ip).await;
    s.send_to(&rrq("tiny", &[]), server).await.unwrap();
    let (reply, from) = recv_from(&s).await;
    match Packet::parse(&reply) {
        Ok(Packet::Data { block: 1, data }) => {
            assert_eq!(data, b"tiny file");
            s.send_to(&[0, 4, 0, 1], from).await.unwrap();
            Ok(())
        }
        Ok(Packet::Error { message, .. }) => Err(message.to_owned()),
        other => panic!("unexpected answer {other:?}"),
    }
}

/// Polls until a request from `ip` is served; at most `tries` times, 100 ms apart.
async fn served_within_tries(server: SocketAddr, ip: &str, tries: u32) -> u32 {
    for attempt in 1..=tries {
        match try_fetch(server, ip).await {
            Ok(()) => return attempt,
            Err(message) => assert!(message.contains("busy"), "{message}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still busy after {tries} tries");
}

#[tokio::test]
async fn silent_requests_with_timeout_255_free_their_slots_after_give_up() {
    let server = TestServer::start(|c| {
        c.give_up = Duration::from_secs(2);
        c.max_transfers = 64;
        c.max_transfers_per_ip = 64;
    })
    .await;
    std::fs::write(server.path("tiny"), b"tiny file").unwrap();
    // 64 requests asking for a 255 s timeout that never ACK: every slot taken. The
    // sockets stay open (a closed port would end the transfers with ICMP errors).
    let mut silent = Vec::new();
    for _ in 0..64 {
        let s = socket_on("127.0.0.1").await;
        s.send_to(&rrq("tiny", &[("timeout", "255")]), server.addr)
            .await
            .unwrap();
        let (oack, _) = recv_from(&s).await;
        assert!(matches!(Packet::parse(&oack), Ok(Packet::Oack { .. })));
        silent.push(s);
    }
    let busy = try_fetch(server.addr, "127.0.0.2").await.unwrap_err();
    assert!(busy.contains("server busy"), "{busy}");
    // After the give-up time (2 s here, not hours) a good client is served.
    served_within_tries(server.addr, "127.0.0.2", 200).await;
    drop(silent);
    server.stop().await;
}

#[tokio::test]
async fn one_source_cannot_take_every_slot() {
    let server = TestServer::start(|c| {
        c.max_transfers_per_ip = 2;
        c.give_up = Duration::from_secs(2);
    })
    .await;
    std::fs::write(server.path("tiny"), b"tiny file").unwrap();
    let mut silent = Vec::new();
    for _ in 0..2 {
        let s = socket_on("127.0.0.1").await;
        s.send_to(&rrq("tiny", &[("tsize", "0")]), server.addr)
            .await
            .unwrap();
        let (oack, _) = recv_from(&s).await;
        assert!(matches!(Packet::parse(&oack), Ok(Packet::Oack { .. })));
        silent.push(s);
    }
    let busy = try_fetch(server.addr, "127.0.0.1").await.unwrap_err();
    assert_eq!(busy, "server busy: too many transfers from your address");
    // Another source is served at once.
    try_fetch(server.addr, "127.0.0.3").await.unwrap();
    // The busy source gets its slots back once its transfers give up.
    served_within_tries(server.addr, "127.0.0.1", 200).await;
    drop(silent);
    server.stop().await;
}

/// Receives everything `s` (on `ip`) gets until the server has given up on it (known
/// when a request from the same source is served again: the cap is one per source).
async fn collect_until_given_up(s: &UdpSocket, server: SocketAddr, ip: &str) -> Vec<Vec<u8>> {
    served_within_tries(server, ip, 300).await;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = s.try_recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

#[tokio::test]
async fn the_first_answer_to_a_request_stays_within_three_times_it() {
    let server = TestServer::start(|c| {
        c.max_transfers_per_ip = 1;
        c.give_up = Duration::from_secs(2);
    })
    .await;
    std::fs::write(server.path("big"), vec![7u8; 4 << 20]).unwrap();
    std::fs::write(server.path("tiny"), b"tiny file").unwrap();
    // What PXE ROMs, U-Boot, curl and sockit send: an RRQ with options. The answer is
    // an OACK, and everything sent before an ACK stays within 3× of the request.
    let request = rrq(
        "big",
        &[
            ("blksize", "65464"),
            ("windowsize", "64"),
            ("tsize", "0"),
            ("timeout", "1"),
        ],
    );
    let s = socket_on("127.0.0.1").await;
    s.send_to(&request, server.addr).await.unwrap();
    let (first, _) = recv_from(&s).await;
    assert!(matches!(Packet::parse(&first), Ok(Packet::Oack { .. })));
    let wire = |n: usize| n + IPV4_UDP_HEADER;
    assert!(wire(first.len()) <= 3 * wire(request.len()));
    let rest = collect_until_given_up(&s, server.addr, "127.0.0.1").await;
    let total: usize = wire(first.len()) + rest.iter().map(|d| wire(d.len())).sum::<usize>();
    assert!(
        total <= 3 * wire(request.len()),
        "{total} bytes sent for a {}-byte request before any ACK",
        wire(request.len())
    );
    assert!(rest
        .iter()
        .all(|d| matches!(Packet::parse(d), Ok(Packet::Oack { .. }))));

    // A plain RFC 1350 request: its answer can only be DATA 1, sent once, never again
    // before an ACK (the one packet RFC 1350 requires; the rate limit bounds how often).
    let s = socket_on("127.0.0.4").await;
    let plain = rrq("big", &[]);
    s.send_to(&plain, server.addr).await.unwrap();
    let (first, _) = recv_from(&s).await;
    assert!(matches!(
        Packet::parse(&first),
        Ok(Packet::Data { block: 1, .. })
    ));
    let rest = collect_until_given_up(&s, server.addr, "127.0.0.4").await;
    assert!(
        rest.is_empty(),
        "DATA 1 re-sent {} times before any ACK",
        rest.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn a_peer_silent_after_ack_0_is_not_sent_window_after_window() {
    let server = TestServer::start(|c| {
        c.max_transfers_per_ip = 1;
        c.retries = 3;
        c.give_up = Duration::from_secs(30);
    })
    .await;
    std::fs::write(server.path("big"), vec![7u8; 4 << 20]).unwrap();
    std::fs::write(server.path("tiny"), b"tiny file").unwrap();
    let s = Arc::new(socket_on("127.0.0.1").await);
    s.send_to(
        &rrq("big", &[("blksize", "8192"), ("windowsize", "16")]),
        server.addr,
    )
    .await
    .unwrap();
    let (oack, tid) = recv_from(&s).await;
    assert!(matches!(Packet::parse(&oack), Ok(Packet::Oack { .. })));
    // Count what arrives, as it arrives (a window is more than a socket buffer).
    let blocks = Arc::new(AtomicU64::new(0));
    let reader = {
        let (s, blocks) = (s.clone(), blocks.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok(n) = s.recv(&mut buf).await {
                if let Ok(Packet::Data { .. }) = Packet::parse(&buf[..n]) {
                    blocks.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    s.send_to(&[0, 4, 0, 0], tid).await.unwrap();
    // Then silence: the server gives up after its retries (200 ms doubling, 3 times).
    served_within_tries(server.addr, "127.0.0.1", 300).await;
    reader.abort();
    let blocks = blocks.load(Ordering::Relaxed);
    // One window, then per timeout the first unacknowledged and the last block: 16 +
    // 3 × 2. Re-sending the whole window would have been 16 × 4 = 64.
    assert!(blocks >= 1, "the first window was sent");
    assert!(
        blocks <= 16 + 3 * 2,
        "{blocks} blocks sent to a silent peer"
    );
    server.stop().await;
}
