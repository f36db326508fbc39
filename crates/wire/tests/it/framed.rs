//! The framed service over real sockets: hello, handshake, dispatch, limits, timeouts.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::codec::encode_header;
use sockit_wire::framed::{
    Command, CommandError, CommandTable, FramedConfig, FramedService, ServerConnection, Session,
};
use sockit_wire::handshake::HandshakeError;
use sockit_wire::{Client, ClientError, Connection, ErrorCode, Header, Incoming, Key};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A command that echoes its body back (exercises body streaming through dispatch).
struct EchoBody;

#[async_trait]
impl Command for EchoBody {
    async fn run(
        &self,
        _req: Header,
        conn: &mut ServerConnection,
        _s: &Session,
    ) -> Result<(), CommandError> {
        let body = conn.read_body_to_vec(1 << 20).await?;
        conn.send_with_body(&Header::ok().with("size", body.len()), Bytes::from(body))
            .await?;
        Ok(())
    }
}

/// A command that always fails with a reply error, without reading its body.
struct Refuse;

#[async_trait]
impl Command for Refuse {
    async fn run(
        &self,
        _req: Header,
        _conn: &mut ServerConnection,
        _s: &Session,
    ) -> Result<(), CommandError> {
        Err(CommandError::reply(ErrorCode::Denied, "no"))
    }
}

fn start(key: Option<Key>, limits: Limits) -> Running {
    let listener = bind_tcp(LOOPBACK_ANY, 128).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut table = CommandTable::new();
    table.register("echo-body", Arc::new(EchoBody));
    table.register("refuse", Arc::new(Refuse));
    let service = FramedService::new(
        table,
        FramedConfig {
            key,
            auth_failure_delay: Duration::from_millis(10),
            ..FramedConfig::default()
        },
    );
    Running::spawn(addr, |token| {
        serve_tcp(listener, Arc::new(service), limits, token)
    })
}

fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

const T: Duration = Duration::from_secs(5);

#[tokio::test]
async fn ping_without_auth() {
    let s = start(None, Limits::default());
    let mut c = Client::connect(&s.addr.to_string(), None, T).await.unwrap();
    assert!(c.hello().services.contains(&"ping".to_string()));
    assert!(c.hello().services.contains(&"echo-body".to_string()));
    let r = c.request(&Header::request("ping")).await.unwrap();
    assert!(r.is_ok());
    c.bye().await.unwrap();
}

#[tokio::test]
async fn right_key_passes_both_ways() {
    let s = start(Some(key(1)), Limits::default());
    let mut c = Client::connect(&s.addr.to_string(), Some(&key(1)), T)
        .await
        .unwrap();
    assert!(c.request(&Header::request("ping")).await.unwrap().is_ok());
}

#[tokio::test]
async fn wrong_key_is_rejected() {
    let s = start(Some(key(1)), Limits::default());
    let err = Client::connect(&s.addr.to_string(), Some(&key(2)), T)
        .await
        .unwrap_err();
    match err {
        ClientError::Handshake(HandshakeError::Rejected(m)) => {
            assert!(m.contains("auth_failed"), "{m}")
        }
        other => panic!("expected rejection, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_key_is_reported() {
    let s = start(Some(key(1)), Limits::default());
    let err = Client::connect(&s.addr.to_string(), None, T)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Handshake(HandshakeError::KeyRequired)
    ));
    assert!(err.to_string().contains("--key"));
}

#[tokio::test]
async fn request_before_auth_gets_auth_required() {
    let s = start(Some(key(1)), Limits::default());
    let mut conn = Connection::new(TcpStream::connect(s.addr).await.unwrap());
    let hello = read(&mut conn).await;
    assert_eq!(hello.get_str("auth"), Some("hmac-sha256"));
    conn.send(&Header::request("ping")).await.unwrap();
    let r = read(&mut conn).await;
    assert_eq!(r.as_error().unwrap().0, ErrorCode::AuthRequired);
    // A body sent before auth is skipped and the connection stays usable.
    conn.send_with_body(
        &Header::request("echo-body").with("size", 3),
        Bytes::from_static(b"abc"),
    )
    .await
    .unwrap();
    assert_eq!(
        read(&mut conn).await.as_error().unwrap().0,
        ErrorCode::AuthRequired
    );
    conn.send(&Header::request("ping")).await.unwrap();
    assert_eq!(
        read(&mut conn).await.as_error().unwrap().0,
        ErrorCode::AuthRequired
    );
}

#[tokio::test]
async fn replayed_mac_is_rejected() {
    let s = start(Some(key(1)), Limits::default());
    // Record a valid auth exchange on one connection...
    let mut first = Connection::new(TcpStream::connect(s.addr).await.unwrap());
    let hello = read(&mut first).await;
    let ns = sockit_wire::auth::parse_nonce(hello.get_str("nonce").unwrap()).unwrap();
    let nc = [5u8; 32];
    let auth = Header::request("auth")
        .with("nonce", hex::encode(nc))
        .with("mac", hex::encode(key(1).client_mac(&ns, &nc, &[])));
    first.send(&auth).await.unwrap();
    assert!(read(&mut first).await.is_ok());
    // ...and replay it on a second: the server's fresh nonce makes it fail.
    let mut second = Connection::new(TcpStream::connect(s.addr).await.unwrap());
    let hello2 = read(&mut second).await;
    assert_ne!(hello2.get_str("nonce"), hello.get_str("nonce"));
    second.send(&auth).await.unwrap();
    assert_eq!(
        read(&mut second).await.as_error().unwrap().0,
        ErrorCode::AuthFailed
    );
    assert!(
        second.read_header().await.unwrap().is_none(),
        "server closes after auth_failed"
    );
}

#[tokio::test]
async fn impostor_server_without_key_is_detected() {
    // A fake server that says hmac-sha256 but does not hold the key: it answers `ok` with
    // a made-up mac.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut conn = Connection::new(stream);
        let hello =
            sockit_wire::handshake::hello(sockit_wire::header::AuthMode::HmacSha256, &[7; 32], &[]);
        conn.send(&hello).await.unwrap();
        // The client asks for the hello too; answer that, then take its auth.
        let _hello_request = conn.read_header().await.unwrap();
        conn.send(&hello.clone().with("status", "ok"))
            .await
            .unwrap();
        let _auth = conn.read_header().await.unwrap();
        conn.send(&Header::ok().with("mac", hex::encode([0u8; 32])))
            .await
            .unwrap();
        let _ = conn.read_header().await;
    });
    let err = Client::connect(&addr.to_string(), Some(&key(1)), T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Handshake(HandshakeError::ServerProofFailed)
        ),
        "{err:?}"
    );

    // A server with a different key is detected the same way by the client's check of
    // the server proof, even before it rejects us.
    let s = start(None, Limits::default());
    let err = Client::connect(&s.addr.to_string(), Some(&key(1)), T)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Handshake(HandshakeError::ServerUnauthenticated)
    ));
}

#[tokio::test]
async fn unknown_command_keeps_connection() {
    let s = start(None, Limits::default());
    let mut c = Client::connect(&s.addr.to_string(), None, T).await.unwrap();
    let err = c.request(&Header::request("frobnicate")).await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Remote {
            code: ErrorCode::UnknownCommand,
            ..
        }
    ));
    // A refused command with an unread body: the body is skipped and the next request works.
    let err = c
        .request_with_body(
            &Header::request("refuse").with("size", 4),
            Bytes::from_static(b"data"),
        )
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        ClientError::Remote {
            code: ErrorCode::Denied,
            ..
        }
    ));
    let r = c
        .request_with_body(
            &Header::request("echo-body").with("size", 5),
            Bytes::from_static(b"hello"),
        )
        .await
        .unwrap();
    assert_eq!(r.body_len().unwrap(), 5);
    let body = c.connection().read_body_to_vec(100).await.unwrap();
    assert_eq!(body, b"hello");
    assert!(c.request(&Header::request("ping")).await.unwrap().is_ok());
}

#[tokio::test]
async fn bad_headers_get_errors() {
    let s = start(None, Limits::default());
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    // Non-object JSON, then a header without cmd, then a valid ping: all in one write.
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&5u32.to_le_bytes());
    bytes.extend_from_slice(b"[1,2]");
    bytes.extend_from_slice(&encode_header(&Header::new().with("x", 1)).unwrap());
    bytes.extend_from_slice(&encode_header(&Header::request("ping")).unwrap());
    raw.write_all(&bytes).await.unwrap();
    let mut conn = Connection::new(raw);
    // (No unsolicited hello on a key-less plain port.)
    assert_eq!(
        read(&mut conn).await.as_error().unwrap().0,
        ErrorCode::BadRequest
    );
    assert_eq!(
        read(&mut conn).await.as_error().unwrap().0,
        ErrorCode::BadRequest
    );
    assert!(read(&mut conn).await.is_ok());
    // An oversized length is a framing error: error frame, then close.
    conn.stream_mut()
        .write_all(&(1u32 << 20).to_le_bytes())
        .await
        .unwrap();
    let (code, msg) = read(&mut conn).await.as_error().unwrap();
    assert_eq!(code, ErrorCode::BadRequest);
    assert!(msg.contains("over the limit"), "{msg}");
    assert!(conn.read_header().await.unwrap().is_none());
}

#[tokio::test]
async fn legacy_client_sends_without_reading_hello() {
    let s = start(None, Limits::default());
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    raw.write_all(&encode_header(&Header::request("ping")).unwrap())
        .await
        .unwrap();
    let mut conn = Connection::new(raw);
    // No unsolicited hello on a key-less plain port: the first frame answers the ping.
    assert!(read(&mut conn).await.is_ok());
}

#[tokio::test]
async fn silent_client_is_closed_after_handshake_timeout() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = start(None, limits);
    let mut raw = TcpStream::connect(s.addr).await.unwrap();
    let started = tokio::time::Instant::now();
    let mut all = Vec::new();
    // The server sends hello, then (after the timeout) a timeout error, then closes.
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut all))
        .await
        .expect("server must close a silent connection")
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(250));
    let text = String::from_utf8_lossy(&all);
    assert!(text.contains("\"code\":\"timeout\""), "{text}");
}

#[tokio::test]
async fn unauthenticated_client_is_closed_after_handshake_timeout() {
    let limits = Limits {
        handshake_timeout: Duration::from_millis(300),
        ..Limits::default()
    };
    let s = start(Some(key(1)), limits);
    let mut conn = Connection::new(TcpStream::connect(s.addr).await.unwrap());
    let _hello = read(&mut conn).await;
    // Keep sending pings (so the connection is not idle) but never authenticate: each is
    // refused, until the server says `timeout` and closes. Nothing else may end it.
    let mut refused = 0;
    let message = loop {
        assert!(refused < 1_000_000, "server kept an unauthenticated client");
        conn.send(&Header::request("ping"))
            .await
            .expect("the server closed without a timeout frame");
        match read(&mut conn).await.as_error() {
            Some((ErrorCode::AuthRequired, _)) => refused += 1,
            Some((ErrorCode::Timeout, message)) => break message,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(message.contains("authentication"), "{message}");
    assert!(refused > 0, "the first pings are answered");
    // Then a clean end of stream, not a reset.
    assert!(conn.read_header().await.unwrap().is_none());
}

#[tokio::test]
async fn per_ip_limit_refuses_with_message() {
    let limits = Limits {
        max_conns_per_ip: 2,
        ..Limits::default()
    };
    let s = start(None, limits);
    let a = Client::connect(&s.addr.to_string(), None, T).await.unwrap();
    let b = Client::connect(&s.addr.to_string(), None, T).await.unwrap();
    let mut conn = Connection::new(TcpStream::connect(s.addr).await.unwrap());
    let (code, message) = read(&mut conn).await.as_error().unwrap();
    assert_eq!(code, ErrorCode::Busy);
    assert!(
        message.contains("too many connections from 127.0.0.1"),
        "{message}"
    );
    drop((a, b));
    // Slots are released when connections close: a new client gets in again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match Client::connect(&s.addr.to_string(), None, T).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "slot never released: {e}"
                );
                tokio::task::yield_now().await;
            }
        }
    }
}

async fn read<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    conn: &mut Connection<S>,
) -> Header {
    match tokio::time::timeout(T, conn.read_header()).await {
        Ok(Ok(Some(Incoming::Header(h)))) => h,
        other => panic!("expected a header, got {other:?}"),
    }
}
