//! docs/protocol.md: "A wrong mac: the server waits 500 ms, sends `auth_failed`, and
//! closes." Checked on paused tokio time over an in-memory stream, so the measurement is
//! the server's own timer, not the machine's speed: the reply to a wrong mac does not
//! come before 500 ms of (paused) time have passed; the reply to a right one does not
//! wait.

use std::net::SocketAddr;

use sockit_runtime::guarded::RequestClock;
use sockit_wire::auth::{fresh_nonce, parse_nonce, Nonce};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use sockit_wire::{Connection, ErrorCode, Header, Incoming, Key};
use tokio::io::DuplexStream;
use tokio::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// The delay the protocol documents.
const DOCUMENTED_DELAY: Duration = Duration::from_millis(500);

fn server_key() -> Key {
    Key::from_bytes([0x5a; 32])
}

/// Starts the framed service with its default settings and `server_key()` on one end of
/// an in-memory stream; returns the client's end, after reading the hello's nonce.
async fn connect() -> (Connection<DuplexStream>, Nonce) {
    let (client, server) = tokio::io::duplex(64 * 1024);
    let service = FramedService::new(
        CommandTable::new(),
        FramedConfig {
            key: Some(server_key()),
            ..FramedConfig::default()
        },
    );
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    tokio::spawn(async move {
        let _ = service
            .serve_connection(
                Box::new(server),
                peer,
                CancellationToken::new(),
                Duration::from_secs(10),
                None,
                RequestClock::new(),
            )
            .await;
    });
    let mut conn = Connection::new(client);
    let hello = next_header(&mut conn).await;
    assert_eq!(hello.get_str("cmd"), Some("hello"), "{hello:?}");
    let nonce = parse_nonce(hello.get_str("nonce").unwrap()).unwrap();
    (conn, nonce)
}

async fn next_header(conn: &mut Connection<DuplexStream>) -> Header {
    match conn.read_header().await.unwrap() {
        Some(Incoming::Header(h)) => h,
        other => panic!("expected a header, got {other:?}"),
    }
}

/// Sends `auth` with the mac `key` computes; returns the reply and the paused time it
/// took to come.
async fn auth_with(
    conn: &mut Connection<DuplexStream>,
    server_nonce: &Nonce,
    key: &Key,
) -> (Header, Duration) {
    let client_nonce = fresh_nonce().unwrap();
    let mac = key.client_mac(server_nonce, &client_nonce, &[]);
    let req = Header::request("auth")
        .with("nonce", hex::encode(client_nonce))
        .with("mac", hex::encode(mac));
    let sent = Instant::now();
    conn.send(&req).await.unwrap();
    let reply = next_header(conn).await;
    (reply, sent.elapsed())
}

#[tokio::test(start_paused = true)]
async fn wrong_mac_is_answered_after_500_ms_then_closed() {
    let (mut conn, nonce) = connect().await;
    let (reply, waited) = auth_with(&mut conn, &nonce, &Key::from_bytes([0x11; 32])).await;
    assert_eq!(
        reply.as_error().map(|(code, _)| code),
        Some(ErrorCode::AuthFailed),
        "{reply:?}"
    );
    assert!(
        waited >= DOCUMENTED_DELAY,
        "auth_failed came after {waited:?} of paused time, before the documented 500 ms"
    );
    // Then the server closes the connection.
    assert!(
        conn.read_header().await.unwrap().is_none(),
        "the connection is closed"
    );
}

#[tokio::test(start_paused = true)]
async fn right_mac_is_answered_without_the_delay() {
    let (mut conn, nonce) = connect().await;
    let (reply, waited) = auth_with(&mut conn, &nonce, &server_key()).await;
    assert!(reply.is_ok(), "{reply:?}");
    assert!(reply.get_str("mac").is_some(), "{reply:?}");
    assert!(
        waited < DOCUMENTED_DELAY,
        "a right mac waited {waited:?} of paused time"
    );
    // The connection stays usable.
    conn.send(&Header::request("ping")).await.unwrap();
    assert_eq!(next_header(&mut conn).await.get_str("cmd"), Some("pong"));
}
