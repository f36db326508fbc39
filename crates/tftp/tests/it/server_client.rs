//! Our client against our server over real loopback sockets.

use crate::common;
use sockit_testkit::data;
use sockit_testkit::data::assert_same;

use common::{TestServer, ROLLOVER_SIZE, SMALL_SIZES};
use sockit_tftp::client::{get, put, ClientError, ClientOptions, Progress};
use sockit_tftp::packets::{ack_bytes, ErrorCode, Packet};
use sockit_tftp::Mode;
use std::time::Duration;
use tokio::net::UdpSocket;

fn fast() -> ClientOptions {
    ClientOptions {
        timeout: Duration::from_millis(200),
        ..ClientOptions::default()
    }
}

#[tokio::test]
async fn get_sizes_with_default_options() {
    let server = TestServer::start(|_| {}).await;
    let out = tempfile::tempdir().unwrap();
    for (i, &size) in SMALL_SIZES.iter().enumerate() {
        let data = data::bytes(size, i as u64);
        std::fs::write(server.path(&format!("f{size}")), &data).unwrap();
        let local = out.path().join(format!("f{size}"));
        let summary = get(
            server.addr,
            &format!("f{size}"),
            &local,
            &fast(),
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_same(
            &format!("get {size}"),
            &std::fs::read(&local).unwrap(),
            &data,
        );
        assert_eq!(summary.bytes, size as u64);
        assert_eq!(summary.negotiated.blksize, 1468);
        assert_eq!(summary.negotiated.windowsize, 16);
        // An empty file's tsize is left out of the OACK (curl rejects `tsize 0`).
        let want_tsize = (size > 0).then_some(size as u64);
        assert_eq!(summary.negotiated.tsize, want_tsize);
    }
    // Nothing but the downloads is left in the destination directory.
    assert_eq!(
        std::fs::read_dir(out.path()).unwrap().count(),
        SMALL_SIZES.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn put_sizes_with_default_options() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let src = tempfile::tempdir().unwrap();
    for (i, &size) in SMALL_SIZES.iter().enumerate() {
        let data = data::bytes(size, 100 + i as u64);
        let local = src.path().join(format!("u{size}"));
        std::fs::write(&local, &data).unwrap();
        let summary = put(
            server.addr,
            &local,
            &format!("u{size}"),
            &fast(),
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!(summary.negotiated.tsize, Some(size as u64));
        assert_same(
            &format!("put {size}"),
            &std::fs::read(server.path(&format!("u{size}"))).unwrap(),
            &data,
        );
    }
    // No staging file is left behind.
    assert_eq!(
        std::fs::read_dir(server.root.path()).unwrap().count(),
        SMALL_SIZES.len()
    );
    server.stop().await;
}

#[tokio::test]
async fn rollover_get_and_put_at_blksize_512() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let data = data::bytes(ROLLOVER_SIZE + 100, 7);
    std::fs::write(server.path("big"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ClientOptions {
        blksize: Some(512),
        ..fast()
    };
    let local = dir.path().join("big");
    get(server.addr, "big", &local, &opts, &mut |_| {})
        .await
        .unwrap();
    assert_same("get past rollover", &std::fs::read(&local).unwrap(), &data);
    put(server.addr, &local, "big-up", &opts, &mut |_| {})
        .await
        .unwrap();
    assert_same(
        "put past rollover",
        &std::fs::read(server.path("big-up")).unwrap(),
        &data,
    );
    server.stop().await;
}

#[tokio::test]
async fn lockstep_without_options() {
    let server = TestServer::start(|_| {}).await;
    let data = data::bytes(5000, 3);
    std::fs::write(server.path("f"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let opts = ClientOptions {
        blksize: None,
        windowsize: None,
        tsize: false,
        ..fast()
    };
    let summary = get(server.addr, "f", &dir.path().join("f"), &opts, &mut |_| {})
        .await
        .unwrap();
    assert!(!summary.negotiated.oack);
    assert_eq!(summary.negotiated.blksize, 512);
    assert_same(
        "plain",
        &std::fs::read(dir.path().join("f")).unwrap(),
        &data,
    );
    server.stop().await;
}

#[tokio::test]
async fn netascii_roundtrip() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let text = b"line one\nline two\r\nbare\rcr\n".repeat(100);
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("t.txt");
    std::fs::write(&local, &text).unwrap();
    let opts = ClientOptions {
        mode: Mode::Netascii,
        blksize: Some(64),
        ..fast()
    };
    put(server.addr, &local, "t.txt", &opts, &mut |_| {})
        .await
        .unwrap();
    assert_same(
        "netascii put",
        &std::fs::read(server.path("t.txt")).unwrap(),
        &text,
    );
    let back = dir.path().join("back.txt");
    let summary = get(server.addr, "t.txt", &back, &opts, &mut |_| {})
        .await
        .unwrap();
    assert_same("netascii get", &std::fs::read(&back).unwrap(), &text);
    let newlines = text.iter().filter(|&&b| b == b'\n' || b == b'\r').count();
    assert_eq!(summary.wire_bytes, (text.len() + newlines) as u64);
    server.stop().await;
}

#[tokio::test]
async fn ipv6_get() {
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        panic!("IPv6 loopback unavailable on this machine");
    };
    drop(probe);
    let server = TestServer::start_on("[::1]:0".parse().unwrap(), |_| {}).await;
    let data = data::bytes(70_000, 9);
    std::fs::write(server.path("v6"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    get(
        server.addr,
        "v6",
        &dir.path().join("v6"),
        &fast(),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_same(
        "ipv6",
        &std::fs::read(dir.path().join("v6")).unwrap(),
        &data,
    );
    server.stop().await;
}

#[tokio::test]
async fn backslash_separator_and_leading_slash() {
    let server = TestServer::start(|_| {}).await;
    std::fs::create_dir_all(server.path("boot/grub")).unwrap();
    std::fs::write(server.path("boot/grub/x.cfg"), b"cfg").unwrap();
    let dir = tempfile::tempdir().unwrap();
    for name in ["boot\\grub\\x.cfg", "/boot/grub/x.cfg"] {
        let local = dir.path().join("x");
        get(server.addr, name, &local, &fast(), &mut |_| {})
            .await
            .unwrap();
        assert_eq!(std::fs::read(&local).unwrap(), b"cfg", "{name}");
    }
    server.stop().await;
}

#[tokio::test]
async fn no_overwrite_unless_enabled() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    std::fs::write(server.path("keep"), b"original").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("new");
    std::fs::write(&local, b"replacement").unwrap();
    let err = put(server.addr, &local, "keep", &fast(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::FileExists,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read(server.path("keep")).unwrap(), b"original");
    server.stop().await;

    let server = TestServer::start(|c| {
        c.write_allowed = true;
        c.overwrite_allowed = true;
    })
    .await;
    std::fs::write(server.path("keep"), b"original").unwrap();
    put(server.addr, &local, "keep", &fast(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(std::fs::read(server.path("keep")).unwrap(), b"replacement");
    server.stop().await;
}

#[tokio::test]
async fn missing_file_is_error_1_and_no_local_file() {
    let server = TestServer::start(|_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let err = get(
        server.addr,
        "nope",
        &dir.path().join("nope"),
        &fast(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            err,
            ClientError::Refused {
                code: ErrorCode::FileNotFound,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    server.stop().await;
}

#[tokio::test]
async fn progress_reaches_tsize() {
    let server = TestServer::start(|_| {}).await;
    let data = data::bytes(300_000, 5);
    std::fs::write(server.path("p"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut seen: Vec<Progress> = Vec::new();
    get(server.addr, "p", &dir.path().join("p"), &fast(), &mut |p| {
        seen.push(p)
    })
    .await
    .unwrap();
    assert!(seen.windows(2).all(|w| w[0].bytes <= w[1].bytes));
    let last = seen.last().unwrap();
    assert_eq!(last.bytes, data.len() as u64);
    assert_eq!(last.total, Some(data.len() as u64));
}

#[tokio::test]
async fn concurrency_cap_refuses_extra_transfer() {
    let server = TestServer::start(|c| {
        c.max_transfers = 1;
        c.retries = 1;
    })
    .await;
    std::fs::write(server.path("f"), data::bytes(100_000, 1)).unwrap();
    // A raw client that starts a transfer and never ACKs: it holds the only slot.
    let hog = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    hog.send_to(b"\x00\x01f\x00octet\x00", server.addr)
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let (_, _) = hog.recv_from(&mut buf).await.unwrap(); // DATA 1 arrives: slot taken
    let dir = tempfile::tempdir().unwrap();
    let err = get(
        server.addr,
        "f",
        &dir.path().join("f"),
        &fast(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    match err {
        ClientError::Refused { code, message } => {
            assert_eq!(code, ErrorCode::NotDefined);
            assert!(message.contains("busy"), "{message}");
        }
        other => panic!("expected busy, got {other:?}"),
    }
    server.stop().await;
}

/// A fake RFC 1350-only server: refuses options with ERROR 8 if `refuse` is set,
/// otherwise ignores them; serves one small file in lock-step.
async fn fake_plain_server(refuse: bool) -> (std::net::SocketAddr, tokio::task::JoinHandle<usize>) {
    let listen = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = listen.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        let mut requests = 0;
        loop {
            let (len, peer) = listen.recv_from(&mut buf).await.unwrap();
            requests += 1;
            let Ok(Packet::Rrq(req)) = Packet::parse(&buf[..len]) else {
                continue;
            };
            let transfer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            if refuse && !req.options.is_empty() {
                let err = sockit_tftp::packets::error_bytes(ErrorCode::OptionNegotiation, "no");
                transfer.send_to(&err, peer).await.unwrap();
                continue;
            }
            let mut data = vec![0, 3, 0, 1];
            data.extend_from_slice(b"plain data");
            transfer.send_to(&data, peer).await.unwrap();
            let (len, _) = transfer.recv_from(&mut buf).await.unwrap();
            assert_eq!(&buf[..len], &ack_bytes(1)[..]);
            return requests;
        }
    });
    (addr, task)
}

#[tokio::test]
async fn falls_back_when_server_answers_without_oack() {
    let (addr, task) = fake_plain_server(false).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = get(addr, "x", &dir.path().join("x"), &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(!summary.negotiated.oack);
    assert!(!summary.fell_back);
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"plain data");
    assert_eq!(task.await.unwrap(), 1);
}

#[tokio::test]
async fn falls_back_when_server_refuses_options() {
    let (addr, task) = fake_plain_server(true).await;
    let dir = tempfile::tempdir().unwrap();
    let summary = get(addr, "x", &dir.path().join("x"), &fast(), &mut |_| {})
        .await
        .unwrap();
    assert!(summary.fell_back);
    assert_eq!(std::fs::read(dir.path().join("x")).unwrap(), b"plain data");
    assert_eq!(task.await.unwrap(), 2);
}
