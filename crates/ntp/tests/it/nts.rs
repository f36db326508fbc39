//! Network Time Security end to end: NTS-KE over TLS 1.3 on loopback, then NTS-protected
//! NTP through the NTP server, and what the server does with altered, replayed, foreign
//! and expired requests.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sockit_ntp::client::{query_with, QueryOptions, RequestAuth};
use sockit_ntp::nts::fields::{COOKIE_PLACEHOLDER, NTS_COOKIE, UNIQUE_IDENTIFIER};
use sockit_ntp::nts::records::{
    encode_message, read_message, Record, AEAD_AES_SIV_CMAC_256, ERROR_BAD_REQUEST,
    ERROR_UNRECOGNIZED_CRITICAL, RESPONSE_LIMITS,
};
use sockit_ntp::nts::{
    key_exchange, MasterKeys, NtsError, NtsKeService, NtsRequest, NtsServer, NtsSession,
    SessionKeys, ALPN_NTSKE, COOKIE_LEN,
};
use sockit_ntp::packet::{
    parse_extension_fields, write_extension_field, Header, NtpTimestamp, MODE_CLIENT, MODE_SERVER,
};
use sockit_ntp::server::{NtpServer, ServerConfig};
use sockit_ntp::ClockState;
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_runtime::tls::{
    acceptor_with_alpn, connector_with_alpn, server_name, Fingerprint, ServerIdentity, TlsError,
    Trust, TrustError,
};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpStream, UdpSocket};

const NTP_PORT: u16 = 7123;

/// An NTS-KE server on 127.0.0.1 with a freshly generated certificate.
struct KeServer {
    port: u16,
    fingerprint: Fingerprint,
    running: Running,
    _dir: tempfile::TempDir,
}

impl KeServer {
    async fn start(nts: Arc<NtsServer>, ntp_server: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (identity, _) = ServerIdentity::load_or_generate(dir.path()).unwrap();
        let acceptor = acceptor_with_alpn(&identity, &[ALPN_NTSKE], true).unwrap();
        let service = NtsKeService::new(acceptor, nts, NTP_PORT, ntp_server).unwrap();
        let listener = bind_tcp(LOOPBACK_ANY, 16).unwrap();
        let addr = listener.local_addr().unwrap();
        let running = Running::spawn(addr, |token| {
            serve_tcp(listener, Arc::new(service), Limits::default(), token)
        });
        Self {
            port: addr.port(),
            fingerprint: identity.fingerprint(),
            running,
            _dir: dir,
        }
    }

    fn trust(&self) -> Trust {
        Trust::Pinned(self.fingerprint)
    }

    async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

fn nts_server() -> Arc<NtsServer> {
    Arc::new(NtsServer::new(
        MasterKeys::generate(SystemTime::now()).unwrap(),
    ))
}

fn ntp_server(nts: Arc<NtsServer>) -> NtpServer {
    NtpServer::new(ServerConfig::default())
        .with_clock_state(ClockState {
            leap: 0,
            synchronized: true,
            max_error: Duration::from_millis(20),
            est_error: Duration::from_millis(1),
        })
        .with_nts(nts)
}

fn request_header(n: u64) -> Header {
    Header {
        version: 4,
        mode: MODE_CLIENT,
        transmit_ts: NtpTimestamp(0x1234_5678_0000_0000 + n),
        ..Header::ZERO
    }
}

/// What the server makes of `datagram`.
fn check(nts: &NtsServer, datagram: &[u8]) -> NtsRequest {
    let fields = parse_extension_fields(datagram).unwrap();
    nts.check_request(datagram, &fields)
}

fn is_valid(r: &NtsRequest) -> bool {
    matches!(r, NtsRequest::Valid(_))
}

/// A session with `n` cookies of `nts`, as a key exchange would leave it.
fn session_of(nts: &NtsServer, n: usize) -> NtsSession {
    let keys = SessionKeys {
        aead: AEAD_AES_SIV_CMAC_256,
        c2s: [0x11; 32],
        s2c: [0x22; 32],
    };
    let cookies = nts.issue_cookies(&keys, n).unwrap();
    NtsSession::new(keys, cookies, "127.0.0.1".into(), NTP_PORT)
}

/// A UDP NTP server on 127.0.0.1 answering through `ntp` (at most `max` datagrams).
async fn serve_ntp(ntp: NtpServer, max: usize) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        for _ in 0..max {
            let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                break;
            };
            if let Some(reply) = ntp.answer(&buf[..n], n, SystemTime::now()) {
                let _ = socket.send_to(&reply, peer).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn key_exchange_then_authenticated_ntp_over_udp() {
    let nts = nts_server();
    let ke = KeServer::start(nts.clone(), None).await;
    let mut session = key_exchange("127.0.0.1", ke.port, ke.trust())
        .await
        .unwrap();
    assert_eq!(session.cookies(), 8);
    assert_eq!(session.ntp_server, "127.0.0.1");
    assert_eq!(session.ntp_port, NTP_PORT);
    assert_eq!(session.keys().aead, AEAD_AES_SIV_CMAC_256);

    let addr = serve_ntp(ntp_server(nts), 16).await;
    let opts = QueryOptions {
        samples: 3,
        interval: Duration::from_millis(20),
        ..QueryOptions::default()
    };
    let sample = query_with(addr, &opts, &mut session).await.unwrap();
    assert_eq!(sample.valid, 3);
    assert_eq!(sample.stratum, 2);
    assert!(
        sample.offset.abs() < 1.0,
        "loopback offset {}",
        sample.offset
    );
    assert_eq!(session.cookies(), 8, "every reply refilled the stock");
    assert!(!session.received_nak());
    ke.stop().await;
}

#[tokio::test]
async fn key_exchange_sends_configured_ntp_server() {
    let ke = KeServer::start(nts_server(), Some("time.example.net".into())).await;
    let session = key_exchange("127.0.0.1", ke.port, ke.trust())
        .await
        .unwrap();
    assert_eq!(session.ntp_server, "time.example.net");
    assert_eq!(session.ntp_port, NTP_PORT);
    ke.stop().await;
}

#[tokio::test]
async fn key_exchange_refuses_wrong_certificate() {
    let ke = KeServer::start(nts_server(), None).await;
    let wrong = Trust::Pinned(Fingerprint([7; 32]));
    let err = key_exchange("127.0.0.1", ke.port, wrong).await.unwrap_err();
    assert!(
        matches!(
            err,
            NtsError::Tls(TlsError::Trust(TrustError::PinMismatch { .. }))
        ),
        "{err}"
    );
    ke.stop().await;
}

#[test]
fn invalid_ntp_server_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (identity, _) = ServerIdentity::load_or_generate(dir.path()).unwrap();
    for name in ["", "has space", &"x".repeat(256)] {
        let acceptor = acceptor_with_alpn(&identity, &[ALPN_NTSKE], true).unwrap();
        let err = NtsKeService::new(acceptor, nts_server(), 123, Some(name.into())).unwrap_err();
        assert!(matches!(err, NtsError::InvalidServerName(_)), "{name:?}");
    }
}

/// Sends raw bytes as an NTS-KE request and returns the response's records, or `None`
/// when the server closed without a response.
async fn raw_ke(ke: &KeServer, alpn: &[&[u8]], request: &[u8]) -> Option<Vec<Record>> {
    let (connector, _) = connector_with_alpn(ke.trust(), alpn, true).unwrap();
    let tcp = TcpStream::connect(("127.0.0.1", ke.port)).await.unwrap();
    let mut tls = connector
        .connect(server_name("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    tls.write_all(request).await.unwrap();
    tls.flush().await.unwrap();
    read_message(&mut tls, RESPONSE_LIMITS).await.ok()
}

#[tokio::test]
async fn ke_errors() {
    let ke = KeServer::start(nts_server(), None).await;
    let critical = encode_message(&[
        Record::NextProtocol(vec![0]),
        Record::AeadAlgorithm(vec![15]),
        Record::Unknown {
            critical: true,
            record_type: 0x1234,
            body: vec![],
        },
    ])
    .unwrap();
    assert_eq!(
        raw_ke(&ke, &[ALPN_NTSKE], &critical).await,
        Some(vec![Record::Error(ERROR_UNRECOGNIZED_CRITICAL)])
    );
    let no_aead = encode_message(&[Record::NextProtocol(vec![0])]).unwrap();
    assert_eq!(
        raw_ke(&ke, &[ALPN_NTSKE], &no_aead).await,
        Some(vec![Record::Error(ERROR_BAD_REQUEST)])
    );
    // A malformed record (an odd-length protocol list).
    assert_eq!(
        raw_ke(&ke, &[ALPN_NTSKE], b"\x80\x01\x00\x01\x00\x80\x00\x00\x00").await,
        Some(vec![Record::Error(ERROR_BAD_REQUEST)])
    );
    let other_aead = encode_message(&[
        Record::NextProtocol(vec![0]),
        Record::AeadAlgorithm(vec![30]),
    ])
    .unwrap();
    assert_eq!(
        raw_ke(&ke, &[ALPN_NTSKE], &other_aead).await,
        Some(vec![
            Record::NextProtocol(vec![0]),
            Record::AeadAlgorithm(vec![])
        ])
    );
    let other_protocol = encode_message(&[Record::NextProtocol(vec![9])]).unwrap();
    assert_eq!(
        raw_ke(&ke, &[ALPN_NTSKE], &other_protocol).await,
        Some(vec![Record::NextProtocol(vec![])])
    );
    // Over 1 KiB of records before End of Message.
    let mut flood = Vec::new();
    for _ in 0..100 {
        Record::Unknown {
            critical: false,
            record_type: 0x1234,
            body: vec![0; 16],
        }
        .encode(&mut flood)
        .unwrap();
    }
    assert_eq!(
        raw_ke(&ke, &[ALPN_NTSKE], &flood).await,
        Some(vec![Record::Error(ERROR_BAD_REQUEST)])
    );
    ke.stop().await;
}

#[tokio::test]
async fn ke_without_alpn_gets_no_answer() {
    let ke = KeServer::start(nts_server(), None).await;
    let request = encode_message(&[
        Record::NextProtocol(vec![0]),
        Record::AeadAlgorithm(vec![15]),
    ])
    .unwrap();
    assert_eq!(raw_ke(&ke, &[], &request).await, None);
    ke.stop().await;
}

#[tokio::test]
async fn ke_refuses_tls12() {
    let ke = KeServer::start(nts_server(), None).await;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = sockit_runtime::tls::trust::Verifier::new(ke.trust(), provider.clone()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN_NTSKE.to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(("127.0.0.1", ke.port)).await.unwrap();
    let result = connector
        .connect(server_name("127.0.0.1").unwrap(), tcp)
        .await;
    let Err(err) = result else {
        panic!("a TLS 1.2 handshake must fail");
    };
    assert!(err.to_string().to_lowercase().contains("version"), "{err}");
    ke.stop().await;
}

#[test]
fn ntp_reply_through_the_ntp_server_authenticates() {
    let nts = nts_server();
    let ntp = ntp_server(nts.clone());
    let mut session = session_of(&nts, 8);
    let request = request_header(1);
    let datagram = session.extend(&request);
    let reply = ntp
        .answer(&datagram, datagram.len(), SystemTime::now())
        .unwrap();
    assert!(reply.len() <= datagram.len());
    let header = Header::parse(&reply).unwrap();
    assert_eq!(header.mode, MODE_SERVER);
    assert_eq!(header.origin_ts, request.transmit_ts);
    session.verify(&reply).unwrap();
    assert_eq!(session.cookies(), 8);

    // The same reply again (a duplicate or a replay) is not accepted twice.
    assert!(session.verify(&reply).is_err());
}

#[test]
fn altered_reply_is_rejected_by_the_client() {
    let nts = nts_server();
    let ntp = ntp_server(nts.clone());
    let mut session = session_of(&nts, 8);
    let datagram = session.extend(&request_header(2));
    let mut reply = ntp
        .answer(&datagram, datagram.len(), SystemTime::now())
        .unwrap();
    reply[40] ^= 1; // the transmit timestamp: the time the client would use
    assert!(session.verify(&reply).is_err());
    assert_eq!(session.cookies(), 7, "no cookie from a reply that failed");
}

#[test]
fn tampered_request_is_dropped() {
    let nts = nts_server();
    let mut session = session_of(&nts, 8);
    let datagram = session.extend(&request_header(3));
    for at in [0usize, 1, 24, 47] {
        let mut tampered = datagram.clone();
        tampered[at] ^= 0x10;
        assert!(
            matches!(check(&nts, &tampered), NtsRequest::Drop),
            "byte {at}"
        );
    }
    // And through the NTP server: no reply at all.
    let ntp = ntp_server(nts.clone());
    let mut tampered = datagram.clone();
    tampered[47] ^= 1;
    assert_eq!(
        ntp.answer(&tampered, tampered.len(), SystemTime::now()),
        None
    );
    // The tampering did not burn the cookie: the genuine request still passes.
    assert!(is_valid(&check(&nts, &datagram)));
}

#[test]
fn damaged_cookie_is_nakked_and_the_client_recognises_the_nak() {
    let nts = nts_server();
    let ntp = ntp_server(nts.clone());
    let mut session = session_of(&nts, 8);
    let datagram = session.extend(&request_header(4));
    let fields = parse_extension_fields(&datagram).unwrap();
    let cookie = fields.iter().find(|f| f.field_type == NTS_COOKIE).unwrap();
    let mut damaged = datagram.clone();
    damaged[cookie.offset + 4 + 30] ^= 1;
    let reply = ntp
        .answer(&damaged, damaged.len(), SystemTime::now())
        .unwrap();
    let header = Header::parse(&reply).unwrap();
    assert_eq!(header.kiss_code(), Some(*b"NTSN"));
    session.verify(&reply).unwrap();
    assert!(session.received_nak());
    assert!(!session.usable());
}

#[test]
fn replayed_cookie_is_nakked() {
    let nts = nts_server();
    let mut session = session_of(&nts, 8);
    let datagram = session.extend(&request_header(5));
    assert!(is_valid(&check(&nts, &datagram)));
    let unique_id = parse_extension_fields(&datagram)
        .unwrap()
        .iter()
        .find(|f| f.field_type == UNIQUE_IDENTIFIER)
        .unwrap()
        .value
        .to_vec();
    match check(&nts, &datagram) {
        NtsRequest::Nak { unique_id: echoed } => assert_eq!(echoed, unique_id),
        other => panic!("replay gave {other:?}"),
    }
}

#[test]
fn cookie_of_another_server_is_nakked() {
    let ours = nts_server();
    let theirs = nts_server();
    let mut session = session_of(&theirs, 8);
    let datagram = session.extend(&request_header(6));
    assert!(matches!(check(&ours, &datagram), NtsRequest::Nak { .. }));
    assert!(is_valid(&check(&theirs, &datagram)));
}

#[test]
fn plain_ntp_is_not_nts() {
    let nts = nts_server();
    let plain = request_header(7).to_bytes();
    assert!(matches!(check(&nts, &plain), NtsRequest::NotNts));
    // An unrelated extension field is not NTS either.
    let mut other = request_header(8).to_bytes();
    write_extension_field(&mut other, 0x2005, &[0; 28]);
    assert!(matches!(check(&nts, &other), NtsRequest::NotNts));
}

#[test]
fn nts_request_without_authenticator_is_dropped() {
    let nts = nts_server();
    let mut session = session_of(&nts, 8);
    let datagram = session.extend(&request_header(9));
    let fields = parse_extension_fields(&datagram).unwrap();
    let auth = fields.last().unwrap();
    let cut = &datagram[..auth.offset];
    assert!(matches!(check(&nts, cut), NtsRequest::Drop));
}

#[test]
fn reply_never_longer_than_request() {
    let nts = nts_server();
    let ntp = ntp_server(nts.clone());
    // With 1..=8 cookies in stock, the client asks for 8..=1 (placeholders 7..=0).
    for stock in 1..=8usize {
        let mut session = session_of(&nts, stock);
        let datagram = session.extend(&request_header(10 + stock as u64));
        let placeholders = parse_extension_fields(&datagram)
            .unwrap()
            .iter()
            .filter(|f| f.field_type == COOKIE_PLACEHOLDER)
            .count();
        assert_eq!(placeholders, 8 - stock);
        let NtsRequest::Valid(valid) = check(&nts, &datagram) else {
            panic!("stock {stock}: not valid");
        };
        assert_eq!(valid.cookies(), 1 + placeholders);
        let reply = nts.seal_response(
            &ntp.response_header(&request_header(0), SystemTime::now()),
            &valid,
        );
        assert!(
            reply.len() <= datagram.len(),
            "stock {stock}: reply {} > request {}",
            reply.len(),
            datagram.len()
        );
        session.verify(&reply).unwrap();
        assert_eq!(session.cookies(), 8, "stock {stock}");
    }
}

#[test]
fn placeholders_of_the_wrong_size_earn_no_cookie() {
    let nts = nts_server();
    let keys = SessionKeys {
        aead: AEAD_AES_SIV_CMAC_256,
        c2s: [1; 32],
        s2c: [2; 32],
    };
    let cookie = nts.issue_cookies(&keys, 1).unwrap().remove(0);
    // A hand-built request: two placeholders shorter than the cookie, then the rest.
    let mut packet = request_header(20).to_bytes();
    write_extension_field(&mut packet, UNIQUE_IDENTIFIER, &[9; 32]);
    write_extension_field(&mut packet, NTS_COOKIE, &cookie);
    write_extension_field(&mut packet, COOKIE_PLACEHOLDER, &[0; COOKIE_LEN - 4]);
    write_extension_field(&mut packet, COOKIE_PLACEHOLDER, &[0; COOKIE_LEN - 4]);
    sockit_ntp::nts::fields::write_authenticator(&mut packet, &keys.c2s, &[5; 16], &[]);
    let NtsRequest::Valid(valid) = check(&nts, &packet) else {
        panic!("not valid");
    };
    assert_eq!(valid.cookies(), 1);
}

/// A clock the test moves.
fn manual_clock(start: SystemTime) -> (Arc<AtomicU64>, sockit_ntp::nts::Clock) {
    let secs = Arc::new(AtomicU64::new(
        start.duration_since(UNIX_EPOCH).unwrap().as_secs(),
    ));
    let read = secs.clone();
    let clock = Arc::new(move || UNIX_EPOCH + Duration::from_secs(read.load(Ordering::SeqCst)));
    (secs, clock)
}

#[test]
fn key_rotation_keeps_cookies_for_two_more_days() {
    let start = UNIX_EPOCH + Duration::from_secs(1_750_000_000);
    let (now, clock) = manual_clock(start);
    let nts = NtsServer::with_clock(MasterKeys::generate(start).unwrap(), clock);
    let mut session = session_of(&nts, 8);
    let at_hour = |h: u64| now.store(1_750_000_000 + h * 3600, Ordering::SeqCst);

    // Each check spends one of the original cookies (all under the first key).
    for (n, hour) in [1u64, 25, 49, 71].into_iter().enumerate() {
        at_hour(hour);
        let datagram = session.extend(&request_header(30 + n as u64));
        assert!(is_valid(&check(&nts, &datagram)), "hour {hour}");
    }
    assert_eq!(nts.key_ids().len(), 3, "current and the previous two");

    at_hour(72);
    let datagram = session.extend(&request_header(40));
    assert!(
        matches!(check(&nts, &datagram), NtsRequest::Nak { .. }),
        "a cookie three days old is refused"
    );

    // A cookie issued under a newer key still works.
    let mut renewed = session_of(&nts, 1);
    let datagram = renewed.extend(&request_header(41));
    assert!(is_valid(&check(&nts, &datagram)));
}

#[test]
fn cookies_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state/nts-keys");
    let now = SystemTime::now();
    let before = NtsServer::new(MasterKeys::load_or_create(&state, now).unwrap());
    let mut session = session_of(&before, 8);
    drop(before);
    let after = NtsServer::new(MasterKeys::load_or_create(&state, now).unwrap());
    let datagram = session.extend(&request_header(50));
    assert!(is_valid(&check(&after, &datagram)));
}
