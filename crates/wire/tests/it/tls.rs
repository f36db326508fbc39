//! The framed protocol over TLS: round trips, trust on first use, pinning, CA, channel
//! binding against a relaying man in the middle, and clear errors for mixed-up ports.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};
use sockit_runtime::dial::DialError;
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_runtime::tls::{self, Fingerprint, ServerIdentity, Trust, TrustError};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::framed::{
    Command, CommandError, CommandTable, FramedConfig, FramedService, ServerConnection, Session,
};
use sockit_wire::{Client, ClientError, ConnectOptions, ErrorCode, Header, Key};
use tokio::io::AsyncReadExt;

/// Reads the body and answers with its size and SHA-256.
struct Sink;

#[async_trait]
impl Command for Sink {
    async fn run(
        &self,
        _r: Header,
        conn: &mut ServerConnection,
        _s: &Session,
    ) -> Result<(), CommandError> {
        let mut h = Sha256::new();
        let mut n = 0u64;
        while let Some(chunk) = conn.read_body_chunk().await? {
            n += chunk.len() as u64;
            h.update(&chunk);
        }
        conn.send(
            &Header::ok()
                .with("got", n)
                .with("sha256", hex::encode(h.finalize())),
        )
        .await?;
        Ok(())
    }
}

/// Sends `n` bytes of a deterministic pattern.
struct Source;

fn pattern(offset: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| ((offset + i) * 31 % 251) as u8)
        .collect()
}

#[async_trait]
impl Command for Source {
    async fn run(
        &self,
        r: Header,
        conn: &mut ServerConnection,
        _s: &Session,
    ) -> Result<(), CommandError> {
        let n = r
            .get_u64("n")
            .ok_or_else(|| CommandError::reply(ErrorCode::BadRequest, "n"))?;
        conn.feed_header(&Header::ok().with("size", n)).await?;
        let mut sent = 0u64;
        while sent < n {
            let len = (n - sent).min(1 << 20) as usize;
            conn.feed_body(Bytes::from(pattern(sent, len))).await?;
            sent += len as u64;
        }
        conn.flush().await?;
        Ok(())
    }
}

fn start(identity: Option<&ServerIdentity>, key: Option<Key>) -> Running {
    let listener = bind_tcp(LOOPBACK_ANY, 128).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut table = CommandTable::new();
    table.register("sink", Arc::new(Sink));
    table.register("source", Arc::new(Source));
    let config = FramedConfig {
        key,
        tls: identity.map(|i| tls::acceptor(i).unwrap()),
        auth_failure_delay: Duration::from_millis(10),
        ..FramedConfig::default()
    };
    let limits = Limits {
        drain_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    Running::spawn(addr, |token| {
        serve_tcp(
            listener,
            Arc::new(FramedService::new(table, config)),
            limits,
            token,
        )
    })
}

fn identity(dir: &Path) -> ServerIdentity {
    ServerIdentity::load_or_generate(dir).unwrap().0
}

fn opts(trust: Trust, key: Option<Key>) -> ConnectOptions {
    ConnectOptions {
        key,
        timeout: Duration::from_secs(30),
        tls: Some(trust),
    }
}

fn key() -> Key {
    Key::from_bytes([42; 32])
}

#[tokio::test]
async fn commands_and_100_mib_round_trip_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path());
    let s = start(Some(&id), Some(key()));
    let mut c = Client::connect_with(
        &s.addr.to_string(),
        &opts(Trust::Pinned(id.fingerprint()), Some(key())),
    )
    .await
    .unwrap();
    assert!(c.request(&Header::request("ping")).await.unwrap().is_ok());
    let err = c.request(&Header::request("nope")).await.unwrap_err();
    assert!(matches!(
        err,
        ClientError::Remote {
            code: ErrorCode::UnknownCommand,
            ..
        }
    ));

    const N: u64 = 100 << 20;
    // Upload 100 MiB.
    let conn = c.connection();
    conn.feed_header(&Header::request("sink").with("size", N))
        .await
        .unwrap();
    let mut expected = Sha256::new();
    let mut sent = 0u64;
    while sent < N {
        let chunk = pattern(sent, (N - sent).min(1 << 20) as usize);
        expected.update(&chunk);
        sent += chunk.len() as u64;
        conn.feed_body(Bytes::from(chunk)).await.unwrap();
    }
    conn.flush().await.unwrap();
    let r = c.read_response().await.unwrap();
    let expected = hex::encode(expected.finalize());
    assert_eq!(r.get_u64("got"), Some(N));
    assert_eq!(r.get_str("sha256"), Some(expected.as_str()));
    // Download 100 MiB.
    let r = c
        .request(&Header::request("source").with("n", N))
        .await
        .unwrap();
    assert_eq!(r.body_len().unwrap(), N);
    let mut got = Sha256::new();
    let mut n = 0u64;
    while let Some(chunk) = c.connection().read_body_chunk().await.unwrap() {
        n += chunk.len() as u64;
        got.update(&chunk);
    }
    assert_eq!(n, N);
    assert_eq!(hex::encode(got.finalize()), expected);
    c.bye().await.unwrap();
}

#[tokio::test]
async fn trust_on_first_use_then_refuse_a_changed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known_hosts");
    let first_id = identity(&dir.path().join("a"));
    let s = start(Some(&first_id), None);
    let addr = s.addr.to_string();
    let tofu = || Trust::KnownHosts {
        file: known.clone(),
        host: addr.clone(),
    };
    let c = Client::connect_with(&addr, &opts(tofu(), None))
        .await
        .unwrap();
    assert_eq!(
        c.recorded_host(),
        Some(&(addr.clone(), first_id.fingerprint()))
    );
    let text = std::fs::read_to_string(&known).unwrap();
    assert!(
        text.contains(&format!("{addr} {}", first_id.fingerprint())),
        "{text}"
    );
    // Second connection: known, nothing new recorded.
    let c = Client::connect_with(&addr, &opts(tofu(), None))
        .await
        .unwrap();
    assert_eq!(c.recorded_host(), None);
    drop(c);
    // The "server restarts" with another certificate on the same address.
    // Stopped and its listener closed.
    s.stop().await.unwrap();
    let other_id = identity(&dir.path().join("b"));
    let listener = bind_tcp(addr.parse().unwrap(), 16).unwrap();
    let config = FramedConfig {
        tls: Some(tls::acceptor(&other_id).unwrap()),
        ..FramedConfig::default()
    };
    let restarted = Running::spawn(listener.local_addr().unwrap(), |token| {
        serve_tcp(
            listener,
            Arc::new(FramedService::new(CommandTable::new(), config)),
            Limits::default(),
            token,
        )
    });
    let err = Client::connect_with(&addr, &opts(tofu(), None))
        .await
        .unwrap_err();
    match &err {
        ClientError::Dial(DialError::Trust(TrustError::Changed { expected, got, .. })) => {
            assert_eq!(*expected, first_id.fingerprint());
            assert_eq!(*got, other_id.fingerprint());
        }
        other => panic!("expected a changed-certificate refusal, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("HAS CHANGED") && msg.contains(&other_id.fingerprint().to_string()),
        "{msg}"
    );
    // Pinning the new fingerprint explicitly connects.
    let c = Client::connect_with(&addr, &opts(Trust::Pinned(other_id.fingerprint()), None)).await;
    assert!(c.is_ok(), "{c:?}");
    // A wrong pin fails.
    let err = Client::connect_with(&addr, &opts(Trust::Pinned(Fingerprint::of(b"x")), None))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Dial(DialError::Trust(TrustError::PinMismatch { .. }))
        ),
        "{err:?}"
    );
    drop(restarted);
}

#[tokio::test]
async fn ca_trust() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(&dir.path().join("s"));
    let s = start(Some(&id), None);
    // The self-signed certificate is its own CA: trusting it as a CA file works...
    let ca = dir.path().join("s/cert.pem");
    let c = Client::connect_with(
        &s.addr.to_string(),
        &opts(Trust::ca_file(&ca).unwrap(), None),
    )
    .await;
    assert!(c.is_ok(), "{c:?}");
    // ...and a different CA fails.
    let other = identity(&dir.path().join("other"));
    drop(other);
    let wrong = Trust::ca_file(&dir.path().join("other/cert.pem")).unwrap();
    let err = Client::connect_with(&s.addr.to_string(), &opts(wrong, None))
        .await
        .unwrap_err();
    assert!(
        matches!(err, ClientError::Dial(DialError::Trust(TrustError::Ca(_)))),
        "{err:?}"
    );
}

/// A man in the middle that terminates TLS with its own certificate, connects to the
/// real server over TLS, and relays the bytes of the HMAC handshake both ways.
#[tokio::test]
async fn relayed_handshake_fails_thanks_to_channel_binding() {
    let dir = tempfile::tempdir().unwrap();
    let server_id = identity(&dir.path().join("server"));
    let mitm_id = identity(&dir.path().join("mitm"));
    let s = start(Some(&server_id), Some(key()));
    let server_addr = s.addr;
    let mitm = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mitm_addr = mitm.local_addr().unwrap();
    let acceptor = tls::acceptor(&mitm_id).unwrap();
    let server_fp = server_id.fingerprint();
    tokio::spawn(async move {
        let (victim, _) = mitm.accept().await.unwrap();
        let mut victim = acceptor.accept(victim).await.unwrap();
        let (connector, _) = tls::connector(Trust::Pinned(server_fp)).unwrap();
        let upstream = tokio::net::TcpStream::connect(server_addr).await.unwrap();
        let mut upstream = connector
            .connect(tls::server_name("127.0.0.1").unwrap(), upstream)
            .await
            .unwrap();
        let _ = tokio::io::copy_bidirectional(&mut victim, &mut upstream).await;
    });
    // The victim trusts the relay's certificate (say it accepted it on first use).
    let err = Client::connect_with(
        &mitm_addr.to_string(),
        &opts(Trust::Pinned(mitm_id.fingerprint()), Some(key())),
    )
    .await
    .unwrap_err();
    match err {
        ClientError::Handshake(sockit_wire::handshake::HandshakeError::Rejected(m)) => {
            assert!(m.contains("auth_failed"), "{m}")
        }
        other => panic!("the relayed handshake must fail, got {other:?}"),
    }
    // The real server, reached directly, still works.
    let c = Client::connect_with(
        &server_addr.to_string(),
        &opts(Trust::Pinned(server_fp), Some(key())),
    )
    .await;
    assert!(c.is_ok(), "{c:?}");
}

#[tokio::test]
async fn plain_client_on_tls_port_and_tls_client_on_plain_port() {
    let dir = tempfile::tempdir().unwrap();
    let id = identity(dir.path());
    let tls_server = start(Some(&id), None);
    let plain_server = start(None, None);
    // A sockit plain client waits for hello; the TLS port tells it what is wrong.
    let err = Client::connect(&tls_server.addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("this port speaks TLS"), "{err}");
    // A legacy client that sends first gets the same clear error.
    let mut raw = tokio::net::TcpStream::connect(tls_server.addr)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(
        &mut raw,
        &sockit_wire::codec::encode_header(&Header::request("ping")).unwrap(),
    )
    .await
    .unwrap();
    let mut all = Vec::new();
    raw.read_to_end(&mut all).await.unwrap();
    assert!(String::from_utf8_lossy(&all).contains("this port speaks TLS"));
    // A TLS client on the plain port.
    let err = Client::connect_with(
        &plain_server.addr.to_string(),
        &opts(Trust::Pinned(id.fingerprint()), None),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, ClientError::Dial(DialError::NotTls(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("does not speak TLS"));
    // Both servers keep serving.
    let c = Client::connect_with(
        &tls_server.addr.to_string(),
        &opts(Trust::Pinned(id.fingerprint()), None),
    )
    .await;
    assert!(c.is_ok(), "{c:?}");
    let c = Client::connect(
        &plain_server.addr.to_string(),
        None,
        Duration::from_secs(10),
    )
    .await;
    assert!(c.is_ok(), "{c:?}");
}
