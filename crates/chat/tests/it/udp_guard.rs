//! The UDP chat room and discovery over real sockets: neither can be turned into a
//! reflection amplifier. Before a source has proved its address, nothing sent to it is
//! larger than 3× what it sent (28 bytes of IPv4/UDP headers counted on both sides), and
//! under the guard the room relays nothing to a source that never answered its cookie.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use sockit_chat::discovery::{self, Announcement, PROBE_LEN, REQUEST};
use sockit_chat::udp_room::{self, parse_cookie, RoomConfig, JOINED};
use sockit_runtime::udp_guard::IPV4_UDP_HEADER;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

/// How long a test waits for any one datagram or line.
const WAIT: Duration = Duration::from_secs(10);

struct Running {
    addr: SocketAddr,
    token: CancellationToken,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

async fn room(guard: bool) -> Running {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let token = CancellationToken::new();
    let config = RoomConfig {
        guard,
        ..RoomConfig::default()
    };
    tokio::spawn(udp_room::serve_room(socket, config, token.clone()));
    Running { addr, token }
}

async fn peer(server: SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(server).await.unwrap();
    s
}

async fn recv(s: &UdpSocket) -> Vec<u8> {
    let mut buf = vec![0u8; 65536];
    let n = tokio::time::timeout(WAIT, s.recv(&mut buf))
        .await
        .expect("no datagram")
        .unwrap();
    buf[..n].to_vec()
}

/// Everything already waiting on `s`.
fn drain(s: &UdpSocket) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = s.try_recv(&mut buf) {
        out.push(buf[..n].to_vec());
    }
    out
}

fn factor(request: usize, reply: usize) -> f64 {
    (reply + IPV4_UDP_HEADER) as f64 / (request + IPV4_UDP_HEADER) as f64
}

/// Joins a guarded room the way the sockit client does: empty datagram, cookie back.
async fn join(s: &UdpSocket) {
    s.send(b"").await.unwrap();
    let challenge = recv(s).await;
    assert!(factor(0, challenge.len()) <= 3.0, "{challenge:?}");
    let cookie = parse_cookie(&challenge).expect("a cookie challenge");
    s.send(format!("COOKIE {}", hex::encode(cookie)).as_bytes())
        .await
        .unwrap();
    assert_eq!(recv(s).await, JOINED);
}

#[tokio::test]
async fn guarded_room_relays_nothing_to_sources_that_never_answered() {
    let server = room(true).await;
    let alice = peer(server.addr).await;
    let bob = peer(server.addr).await;
    join(&alice).await;
    join(&bob).await;
    // 50 sources that join the course's way (one empty datagram) and never answer, as
    // forged sources cannot.
    let mut strangers = Vec::new();
    for _ in 0..50 {
        let s = peer(server.addr).await;
        s.send(b"").await.unwrap();
        strangers.push(s);
    }
    let big = "x".repeat(4096);
    alice.send(big.as_bytes()).await.unwrap();
    alice.send(b"marker").await.unwrap();
    // Bob gets both: the server has sent everything for the big message by then.
    assert!(String::from_utf8(recv(&bob).await)
        .unwrap()
        .ends_with(&format!("{big}\n")));
    assert!(String::from_utf8(recv(&bob).await)
        .unwrap()
        .ends_with(": marker\n"));
    let mut sent_to_strangers = 0;
    for s in &strangers {
        let got = drain(s);
        assert_eq!(got.len(), 1, "only the challenge: {got:?}");
        assert!(parse_cookie(&got[0]).is_some());
        assert!(factor(0, got[0].len()) <= 3.0);
        sent_to_strangers += got[0].len() + IPV4_UDP_HEADER;
    }
    let received_from_strangers = strangers.len() * IPV4_UDP_HEADER;
    assert!(
        sent_to_strangers <= 3 * received_from_strangers,
        "{sent_to_strangers} bytes sent for {received_from_strangers} received"
    );

    // A stranger's message is not relayed either; it only gets a new challenge.
    strangers[0].send(b"spoofed words").await.unwrap();
    assert!(parse_cookie(&recv(&strangers[0]).await).is_some());
    alice.send(b"marker 2").await.unwrap();
    assert!(String::from_utf8(recv(&bob).await)
        .unwrap()
        .ends_with(": marker 2\n"));
    assert!(
        drain(&bob).is_empty(),
        "the stranger's words were not relayed"
    );

    // Once a source answers its cookie, it takes part.
    let late = &strangers[1];
    join(late).await;
    alice.send(b"welcome").await.unwrap();
    assert!(String::from_utf8(recv(late).await)
        .unwrap()
        .ends_with(": welcome\n"));
    late.send(b"thanks").await.unwrap();
    assert!(String::from_utf8(recv(&alice).await)
        .unwrap()
        .ends_with(": thanks\n"));
}

#[tokio::test]
async fn without_the_guard_the_course_client_works_unchanged() {
    let server = room(false).await;
    let a = peer(server.addr).await;
    let b = peer(server.addr).await;
    a.send(b"").await.unwrap();
    b.send(b"").await.unwrap();
    a.send(b"hello\n").await.unwrap();
    let line = String::from_utf8(recv(&b).await).unwrap();
    let a_addr = a.local_addr().unwrap();
    assert!(line.starts_with('['), "{line}");
    assert!(line.ends_with(&format!("] {a_addr}: hello\n")), "{line}");
    assert!(drain(&a).is_empty(), "no challenge, no echo to the sender");
}

/// A sockit client on `server`; returns its input writer and its output lines.
fn sockit_client(
    socket: UdpSocket,
    stop: CancellationToken,
) -> (
    tokio::io::DuplexStream,
    tokio::io::Lines<BufReader<tokio::io::DuplexStream>>,
) {
    let (input, input_rx) = tokio::io::duplex(4096);
    let (output_tx, output) = tokio::io::duplex(1 << 20);
    tokio::spawn(async move {
        udp_room::run_client(&socket, input_rx, output_tx, stop)
            .await
            .unwrap();
    });
    (input, BufReader::new(output).lines())
}

async fn next_line(lines: &mut tokio::io::Lines<BufReader<tokio::io::DuplexStream>>) -> String {
    tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("no line")
        .unwrap()
        .expect("client output closed")
}

#[tokio::test]
async fn the_sockit_client_answers_the_cookie_by_itself() {
    let server = room(true).await;
    let stop = CancellationToken::new();
    let (_b_in, mut b_out) = sockit_client(peer(server.addr).await, stop.clone());
    assert_eq!(next_line(&mut b_out).await, "* joined");
    // Alice types before her client has joined: the line is sent again once it has.
    let (mut a_in, mut a_out) = sockit_client(peer(server.addr).await, stop.clone());
    a_in.write_all(b"early bird\n").await.unwrap();
    assert_eq!(next_line(&mut a_out).await, "* joined");
    assert!(next_line(&mut b_out).await.ends_with(": early bird"));
    a_in.write_all(b"second\n").await.unwrap();
    assert!(next_line(&mut b_out).await.ends_with(": second"));
    stop.cancel();
}

fn big_table(services: usize) -> BTreeMap<String, BTreeMap<String, String>> {
    (0..services)
        .map(|i| {
            (
                format!("service-{i:03}"),
                BTreeMap::from([
                    ("tcp".to_owned(), format!("0.0.0.0:{}", 10_000 + i)),
                    ("udp".to_owned(), format!("0.0.0.0:{}", 20_000 + i)),
                ]),
            )
        })
        .collect()
}

async fn discovery_server(announcement: Announcement) -> Running {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let token = CancellationToken::new();
    tokio::spawn(discovery::serve_discovery(
        socket,
        announcement,
        token.clone(),
    ));
    Running { addr, token }
}

#[tokio::test]
async fn discovery_answers_within_three_times_the_probe() {
    let me = Announcement::new("box".into(), big_table(12));
    let answer_len = serde_json::to_vec(&me).unwrap().len();
    assert!(
        factor(REQUEST.len(), answer_len) > 3.0,
        "the table must be big enough to matter"
    );
    let server = discovery_server(me.clone()).await;
    let s = peer(server.addr).await;
    // The unpadded request of older clients: a short hint, not the table.
    s.send(REQUEST).await.unwrap();
    let hint = recv(&s).await;
    assert!(factor(REQUEST.len(), hint.len()) <= 3.0, "{hint:?}");
    assert!(discovery::parse_hint(&hint).is_some());
    // The padded probe gets the answer, within 3×.
    let probe = discovery::probe(PROBE_LEN);
    s.send(&probe).await.unwrap();
    let answer = recv(&s).await;
    assert!(factor(probe.len(), answer.len()) <= 3.0);
    assert_eq!(discovery::parse_answer(&answer).unwrap(), me);
    // `sockit discover` finds it.
    let found = discovery::discover(&[server.addr], Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].announcement, me);
}

#[tokio::test]
async fn discover_pads_again_for_a_table_larger_than_its_probe() {
    let me = Announcement::new("big".into(), big_table(120));
    let answer_len = serde_json::to_vec(&me).unwrap().len();
    assert!(factor(PROBE_LEN, answer_len) > 3.0, "{answer_len} bytes");
    let server = discovery_server(me.clone()).await;
    let found = discovery::discover(&[server.addr], Duration::from_millis(500))
        .await
        .unwrap();
    assert_eq!(
        found.len(),
        1,
        "the client re-asked with the padding the hint named"
    );
    assert_eq!(found[0].announcement, me);
}
