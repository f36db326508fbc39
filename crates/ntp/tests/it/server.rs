//! The NTP server under the UDP runtime, queried over loopback by the client and by hand:
//! what a client reads from a reply, what gets no reply at all, and the Kiss-o'-Death a
//! flood gets.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use sockit_ntp::client::{query, ClientError, QueryOptions};
use sockit_ntp::packet::{
    write_extension_field, Header, NtpTimestamp, HEADER_LEN, LEAP_INSERT, MODE_BROADCAST,
    MODE_CLIENT, MODE_CONTROL, MODE_PRIVATE, MODE_SERVER,
};
use sockit_ntp::server::{kiss_header, NtpServer, ServerConfig};
use sockit_ntp::ClockState;
use sockit_runtime::udp::serve_udp_with;
use sockit_runtime::udp_guard::RateLimit;
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use tokio::net::UdpSocket;

/// How long a test waits for a reply that must come (a hang guard, not a speed bound).
const WAIT: Duration = Duration::from_secs(10);

const SYNCED: ClockState = ClockState {
    leap: LEAP_INSERT,
    synchronized: true,
    max_error: Duration::from_millis(20),
    est_error: Duration::from_millis(1),
};

async fn start(server: NtpServer, rate: RateLimit) -> Running {
    let socket = UdpSocket::bind(LOOPBACK_ANY).await.unwrap();
    let addr = socket.local_addr().unwrap();
    Running::spawn(addr, |token| {
        serve_udp_with(socket, Arc::new(server), rate, token)
    })
}

fn unsynced_server() -> NtpServer {
    NtpServer::new(ServerConfig::default()).with_clock_state(ClockState::UNSYNCHRONIZED)
}

fn request(version: u8, mode: u8, cookie: u64) -> Vec<u8> {
    Header {
        version,
        mode,
        poll: 6,
        transmit_ts: NtpTimestamp(cookie),
        ..Header::ZERO
    }
    .to_bytes()
}

async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

async fn recv(socket: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 2048];
    let n = tokio::time::timeout(WAIT, socket.recv(&mut buf))
        .await
        .expect("no reply from the server")
        .unwrap();
    buf.truncate(n);
    buf
}

fn quick(samples: usize) -> QueryOptions {
    QueryOptions {
        samples,
        interval: Duration::from_millis(20),
        timeout: Duration::from_secs(30),
        version: 4,
    }
}

#[tokio::test]
async fn the_client_measures_a_small_offset_from_the_local_clock() {
    let server = start(unsynced_server(), RateLimit::OFF).await;
    let sample = query(server.addr, &quick(3)).await.unwrap();
    assert!(sample.offset.abs() < 1.0, "offset {}", sample.offset);
    assert!(sample.delay >= 0.0);
    // Above stratum 1 a reference id reads as an IPv4 address; the bytes are "LOCL".
    assert_eq!(
        (sample.stratum, &sample.reference_id, sample.leap),
        (10, b"LOCL", 0)
    );
    assert_eq!((sample.version, sample.sent, sample.valid), (4, 3, 3));
    assert!((-30..=0).contains(&sample.precision));
}

#[tokio::test]
async fn a_synchronized_host_serves_its_kernel_state() {
    let server = start(
        NtpServer::new(ServerConfig::default()).with_clock_state(SYNCED),
        RateLimit::OFF,
    )
    .await;
    let sample = query(server.addr, &quick(1)).await.unwrap();
    assert_eq!(
        (sample.stratum, sample.reference.as_str(), sample.leap),
        (2, "127.127.1.0", LEAP_INSERT)
    );
    assert!(
        (sample.root_dispersion - 0.020).abs() < 0.001,
        "root dispersion {}",
        sample.root_dispersion
    );
    assert_eq!(sample.root_delay, 0.0);
}

#[tokio::test]
async fn the_reply_is_48_bytes_and_echoes_the_transmit_timestamp() {
    let server = start(unsynced_server(), RateLimit::OFF).await;
    let socket = client().await;
    socket.connect(server.addr).await.unwrap();
    let t1 = NtpTimestamp::from_system(SystemTime::now());
    socket
        .send(&request(4, MODE_CLIENT, 0xdead_beef_0123_4567))
        .await
        .unwrap();
    let reply = recv(&socket).await;
    let t4 = NtpTimestamp::from_system(SystemTime::now());
    assert_eq!(reply.len(), HEADER_LEN);
    let h = Header::parse(&reply).unwrap();
    assert_eq!((h.version, h.mode, h.poll), (4, MODE_SERVER, 6));
    assert_eq!(h.origin_ts, NtpTimestamp(0xdead_beef_0123_4567));
    // One clock, so the four timestamps are in order.
    assert!(t1 <= h.receive_ts && h.receive_ts <= h.transmit_ts && h.transmit_ts <= t4);
}

#[tokio::test]
async fn a_v3_request_is_answered_v3() {
    let server = start(unsynced_server(), RateLimit::OFF).await;
    let socket = client().await;
    socket
        .send_to(&request(3, MODE_CLIENT, 7), server.addr)
        .await
        .unwrap();
    let h = Header::parse(&recv(&socket).await).unwrap();
    assert_eq!(
        (h.version, h.mode, h.origin_ts),
        (3, MODE_SERVER, NtpTimestamp(7))
    );
}

#[tokio::test]
async fn control_private_other_modes_and_short_datagrams_get_no_reply() {
    let server = start(unsynced_server(), RateLimit::OFF).await;
    let socket = client().await;
    socket.connect(server.addr).await.unwrap();
    let mut short = request(4, MODE_CLIENT, 1);
    short.truncate(47);
    let unanswered = [
        request(2, MODE_CONTROL, 2),
        request(4, MODE_CONTROL, 3),
        request(2, MODE_PRIVATE, 4),
        request(4, MODE_SERVER, 5),
        request(4, MODE_BROADCAST, 6),
        request(2, MODE_CLIENT, 7),
        short,
        Vec::new(),
    ];
    for datagram in &unanswered {
        socket.send(datagram).await.unwrap();
    }
    socket.send(&request(4, MODE_CLIENT, 99)).await.unwrap();
    // The server handles datagrams in order: had any of the others been answered, that
    // answer would come first.
    let h = Header::parse(&recv(&socket).await).unwrap();
    assert_eq!(h.origin_ts, NtpTimestamp(99));
}

#[tokio::test]
async fn unknown_extension_fields_get_a_plain_48_byte_reply() {
    let server = start(unsynced_server(), RateLimit::OFF).await;
    let socket = client().await;
    let mut datagram = request(4, MODE_CLIENT, 11);
    write_extension_field(&mut datagram, 0x7001, &[0x55; 60]);
    socket.send_to(&datagram, server.addr).await.unwrap();
    let reply = recv(&socket).await;
    assert_eq!(reply.len(), HEADER_LEN);
    assert_eq!(Header::parse(&reply).unwrap().origin_ts, NtpTimestamp(11));
}

/// Sends `n` requests from `flooder` and, once the server has answered a request from
/// another source sent after them (so it has handled the flood), counts the replies and
/// Kiss-o'-Death `RATE`s the flooder got.
async fn flood(
    server: SocketAddr,
    flooder: &std::net::UdpSocket,
    witness: &UdpSocket,
    n: u64,
) -> (usize, usize) {
    for i in 0..n {
        flooder
            .send_to(&request(4, MODE_CLIENT, 1000 + i), server)
            .unwrap();
    }
    witness
        .send_to(&request(4, MODE_CLIENT, 1), server)
        .await
        .unwrap();
    let mut buf = [0u8; 2048];
    let n = witness.recv(&mut buf).await.unwrap();
    assert_eq!(
        Header::parse(&buf[..n]).unwrap().stratum,
        10,
        "the witness is within its rate"
    );
    let (mut replies, mut kisses) = (0, 0);
    loop {
        match flooder.recv(&mut buf) {
            Ok(n) => {
                assert!(n <= HEADER_LEN, "a reply larger than its request");
                let h = Header::parse(&buf[..n]).unwrap();
                assert!((1000..1000 + 100).contains(&h.origin_ts.0), "origin echoed");
                match h.kiss_code() {
                    Some(code) => {
                        assert_eq!(
                            (&code, h.leap, h.mode, h.version),
                            (b"RATE", 3, MODE_SERVER, 4)
                        );
                        kisses += 1;
                    }
                    None => replies += 1,
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return (replies, kisses),
            Err(e) => panic!("receive failed: {e}"),
        }
    }
}

// Paused time and no timer anywhere: the clock the rate limiter reads moves only by
// `advance`. The flooder is a plain non-blocking socket so that draining it reads the
// kernel queue directly.
#[tokio::test(start_paused = true)]
async fn a_flood_gets_one_kiss_of_death_per_second() {
    let rate = RateLimit {
        per_second: 1,
        burst: 2,
        max_sources: 64,
    };
    let server = start(unsynced_server(), rate).await;
    let flooder = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    flooder.set_nonblocking(true).unwrap();
    let witness = UdpSocket::bind("127.0.0.2:0").await.unwrap();

    assert_eq!(
        flood(server.addr, &flooder, &witness, 50).await,
        (2, 1),
        "burst of 2, then one KoD"
    );
    assert_eq!(
        flood(server.addr, &flooder, &witness, 50).await,
        (0, 0),
        "same second: nothing"
    );
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(
        flood(server.addr, &flooder, &witness, 50).await,
        (1, 1),
        "a second later: one each"
    );
}

/// A fake server answering every request with a forged reply (wrong origin) and then a
/// Kiss-o'-Death `code`.
async fn kissing_server(code: [u8; 4]) -> Running<()> {
    let socket = UdpSocket::bind(LOOPBACK_ANY).await.unwrap();
    let addr = socket.local_addr().unwrap();
    Running::spawn(addr, |token| async move {
        let mut buf = [0u8; 2048];
        loop {
            let (n, peer) = tokio::select! {
                _ = token.cancelled() => return,
                r = socket.recv_from(&mut buf) => r.unwrap(),
            };
            let request = Header::parse(&buf[..n]).unwrap();
            let mut forged = kiss_header(&request, [192, 0, 2, 1]);
            forged.stratum = 1;
            forged.leap = 0;
            forged.origin_ts = NtpTimestamp(request.transmit_ts.0 ^ 1);
            socket.send_to(&forged.to_bytes(), peer).await.unwrap();
            socket
                .send_to(&kiss_header(&request, code).to_bytes(), peer)
                .await
                .unwrap();
        }
    })
}

#[tokio::test]
async fn the_client_names_the_kiss_code_and_ignores_forged_replies() {
    let server = kissing_server(*b"DENY").await;
    let err = query(server.addr, &quick(4)).await.unwrap_err();
    drop(server);
    assert!(
        matches!(&err, ClientError::Kiss { code } if code == "DENY"),
        "{err:?}"
    );
    assert!(err.to_string().contains("DENY"), "{err}");
}

#[tokio::test]
async fn a_silent_server_is_a_timeout() {
    let silent = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let opts = QueryOptions {
        samples: 2,
        interval: Duration::from_millis(20),
        timeout: Duration::from_millis(200),
        version: 4,
    };
    let err = query(silent.local_addr().unwrap(), &opts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Timeout { sent: 2, .. }),
        "{err:?}"
    );
}
