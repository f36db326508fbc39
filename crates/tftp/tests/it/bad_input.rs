//! Hostile and broken input: malformed packets, path traversal, writes to a read-only
//! server. The server must answer with the right ERROR, keep serving, and never read or
//! write outside its root.

use crate::common;
use sockit_testkit::data;

use common::TestServer;
use sockit_tftp::client::{get, ClientOptions};
use sockit_tftp::packets::{ErrorCode, Packet};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::UdpSocket;

/// Sends one datagram and returns the first answer (owned) and where it came from.
async fn exchange(socket: &UdpSocket, to: SocketAddr, datagram: &[u8]) -> (Vec<u8>, SocketAddr) {
    socket.send_to(datagram, to).await.unwrap();
    recv(socket).await
}

async fn recv(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = vec![0u8; 70000];
    let (len, from) = tokio::time::timeout(Duration::from_secs(5), socket.recv_from(&mut buf))
        .await
        .expect("the server answers")
        .unwrap();
    buf.truncate(len);
    (buf, from)
}

fn error_code(datagram: &[u8]) -> ErrorCode {
    match Packet::parse(datagram) {
        Ok(Packet::Error { code, .. }) => code,
        other => panic!("expected an ERROR packet, got {other:?}"),
    }
}

async fn assert_still_serving(server: &TestServer) {
    std::fs::write(server.path("alive"), b"still here").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ClientOptions {
        timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    };
    get(
        server.addr,
        "alive",
        &dir.path().join("alive"),
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(dir.path().join("alive")).unwrap(),
        b"still here"
    );
}

#[tokio::test]
async fn malformed_requests_get_error_4_and_server_keeps_serving() {
    let server = TestServer::start(|_| {}).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let malformed: &[&[u8]] = &[
        b"",
        b"\x00",
        b"\x00\x09whatever",
        b"\xff\xff",
        b"\x00\x01no-terminator",
        b"\x00\x01file\x00",
        b"\x00\x01file\x00mail\x00",
        b"\x00\x01file\x00bogusmode\x00",
        b"\x00\x01file\x00octet\x00blksize\x00",
        b"\x00\x01\xff\xfe\x00octet\x00",
        b"\x00\x03\x00\x01stray data",
        b"\x00\x04\x00\x01",
        b"\x00\x06blksize\x00512\x00",
    ];
    for datagram in malformed {
        let (answer, _) = exchange(&socket, server.addr, datagram).await;
        assert_eq!(
            error_code(&answer),
            ErrorCode::IllegalOperation,
            "answer to {datagram:?}"
        );
    }
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn malformed_packet_inside_a_transfer_gets_error_4() {
    let server = TestServer::start(|_| {}).await;
    std::fs::write(server.path("f"), data::bytes(5000, 1)).unwrap();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (first, tid) = exchange(&socket, server.addr, b"\x00\x01f\x00octet\x00").await;
    assert!(matches!(
        Packet::parse(&first),
        Ok(Packet::Data { block: 1, .. })
    ));
    assert_ne!(tid, server.addr, "the transfer runs on its own port");
    let (answer, from) = exchange(&socket, tid, b"\x00\x04\x00").await;
    assert_eq!(from, tid);
    assert_eq!(error_code(&answer), ErrorCode::IllegalOperation);
    assert_still_serving(&server).await;
    server.stop().await;
}

#[tokio::test]
async fn error_packets_are_never_answered() {
    let server = TestServer::start(|_| {}).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(b"\x00\x05\x00\x00oops\x00", server.addr)
        .await
        .unwrap();
    // The next answer we get must be to the request that follows, not to the ERROR.
    let (answer, _) = exchange(&socket, server.addr, b"\x00\x01missing\x00octet\x00").await;
    assert_eq!(error_code(&answer), ErrorCode::FileNotFound);
    server.stop().await;
}

/// A root inside a parent directory that holds a secret; the root has a symlink to the
/// secret and a symlinked directory pointing at the parent.
struct Jail {
    parent: tempfile::TempDir,
    server: TestServer,
}

impl Jail {
    async fn new(write: bool) -> Jail {
        let parent = tempfile::tempdir().unwrap();
        std::fs::write(parent.path().join("secret"), b"TOP SECRET").unwrap();
        let server = TestServer::start(|c| {
            c.write_allowed = write;
            c.overwrite_allowed = write;
        })
        .await;
        std::os::unix::fs::symlink(parent.path().join("secret"), server.path("link")).unwrap();
        std::os::unix::fs::symlink(parent.path(), server.path("outdir")).unwrap();
        std::fs::create_dir(server.path("sub")).unwrap();
        Jail { parent, server }
    }

    fn parent_listing(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.parent.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

fn request(opcode: u8, name: &str) -> Vec<u8> {
    let mut datagram = vec![0, opcode];
    datagram.extend_from_slice(name.as_bytes());
    datagram.extend_from_slice(b"\x00octet\x00");
    datagram
}

fn traversal_names(jail: &Jail) -> Vec<String> {
    let secret = jail.parent.path().join("secret");
    let root = jail.server.root.path();
    let relative_up = format!(
        "../{}/secret",
        jail.parent.path().file_name().unwrap().to_string_lossy()
    );
    vec![
        "../secret".into(),
        "..\\secret".into(),
        "sub/../../secret".into(),
        "sub\\..\\..\\secret".into(),
        format!("{}/../secret", root.display()),
        relative_up,
        "link".into(),
        "outdir/secret".into(),
        "C:\\secret".into(),
        format!("{}", secret.display()).replacen('/', "/../", 1),
    ]
}

#[tokio::test]
async fn traversal_reads_get_error_2_and_nothing_leaks() {
    let jail = Jail::new(false).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for name in traversal_names(&jail) {
        let (answer, _) = exchange(&socket, jail.server.addr, &request(1, &name)).await;
        assert_eq!(
            error_code(&answer),
            ErrorCode::AccessViolation,
            "RRQ {name:?}"
        );
        assert!(
            !answer.windows(10).any(|w| w == b"TOP SECRET"),
            "secret leaked for {name:?}"
        );
    }
    // An absolute name means the root (tftp-hpa --secure): not the real /etc/passwd.
    let (answer, _) = exchange(&socket, jail.server.addr, &request(1, "/etc/passwd")).await;
    assert_eq!(error_code(&answer), ErrorCode::FileNotFound);
    jail.server.stop().await;
}

#[tokio::test]
async fn traversal_writes_get_error_2_and_nothing_is_written_outside() {
    let jail = Jail::new(true).await;
    let before = jail.parent_listing();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let mut names = traversal_names(&jail);
    names.push("outdir/evil".into());
    names.push("../evil".into());
    for name in names {
        let (answer, _) = exchange(&socket, jail.server.addr, &request(2, &name)).await;
        assert_eq!(
            error_code(&answer),
            ErrorCode::AccessViolation,
            "WRQ {name:?}"
        );
    }
    assert_eq!(
        jail.parent_listing(),
        before,
        "nothing created outside the root"
    );
    assert_eq!(
        std::fs::read(jail.parent.path().join("secret")).unwrap(),
        b"TOP SECRET"
    );
    jail.server.stop().await;
}

#[tokio::test]
async fn wrq_on_read_only_server_gets_error_2() {
    let server = TestServer::start(|_| {}).await;
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let (answer, _) = exchange(&socket, server.addr, &request(2, "upload.bin")).await;
    assert_eq!(error_code(&answer), ErrorCode::AccessViolation);
    assert!(!server.path("upload.bin").exists());
    assert_eq!(std::fs::read_dir(server.root.path()).unwrap().count(), 0);
    server.stop().await;
}
