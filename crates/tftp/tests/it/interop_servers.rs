//! Our client against the standard servers, started by the test on a free port in the
//! foreground, rooted in a temporary directory (never a system service, never port 69).

use crate::common;
use sockit_testkit::data;
use sockit_testkit::data::assert_same;

use common::{read_when_complete, ExternalServer, ROLLOVER_SIZE, SMALL_SIZES};
use sockit_tftp::client::{get, put, ClientOptions};
use std::time::Duration;

fn opts(blksize: u16) -> ClientOptions {
    ClientOptions {
        blksize: Some(blksize),
        timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    }
}

/// Gets every size with our defaults (blksize 1468, windowsize 16 asked) and the big
/// file at blksize 512 so block numbers roll over.
async fn get_all(server: &ExternalServer, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(usize, u16)> = SMALL_SIZES.iter().map(|&s| (s, 1468)).collect();
    cases.push((ROLLOVER_SIZE, 512));
    for (i, (size, blksize)) in cases.into_iter().enumerate() {
        let name = format!("{tag}-{size}.bin");
        let data = data::bytes(size, i as u64);
        std::fs::write(server.path(&name), &data).unwrap();
        let local = dir.path().join(&name);
        let summary = get(server.addr, &name, &local, &opts(blksize), &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("get {name}: {e}"));
        assert_same(&name, &std::fs::read(&local).unwrap(), &data);
        assert!(summary.negotiated.oack, "{name}: options negotiated");
        assert_eq!(summary.negotiated.blksize, blksize, "{name}");
    }
}

/// Puts the small sizes, and the big one at blksize 512 when `rollover` is set.
async fn put_all(server: &ExternalServer, tag: &str, rollover: bool) {
    let dir = tempfile::tempdir().unwrap();
    let mut cases: Vec<(usize, u16)> = SMALL_SIZES.iter().map(|&s| (s, 1468)).collect();
    if rollover {
        cases.push((ROLLOVER_SIZE, 512));
    }
    for (i, (size, blksize)) in cases.into_iter().enumerate() {
        let name = format!("{tag}-{size}.bin");
        let data = data::bytes(size, 50 + i as u64);
        let local = dir.path().join(&name);
        std::fs::write(&local, &data).unwrap();
        put(server.addr, &local, &name, &opts(blksize), &mut |_| {})
            .await
            .unwrap_or_else(|e| panic!("put {name}: {e}"));
        let got = read_when_complete(&server.path(&name), &data).await;
        assert_same(&name, &got, &data);
    }
}

#[tokio::test]
async fn interop_tftpd_hpa_server_get() {
    let server = ExternalServer::tftpd_hpa().await;
    get_all(&server, "hpa").await;
}

#[tokio::test]
async fn interop_tftpd_hpa_server_put() {
    let server = ExternalServer::tftpd_hpa().await;
    put_all(&server, "hpaup", true).await;
}

#[tokio::test]
async fn interop_atftpd_server_get() {
    let server = ExternalServer::atftpd().await;
    get_all(&server, "at").await;
}

#[tokio::test]
async fn interop_atftpd_server_put() {
    let server = ExternalServer::atftpd().await;
    put_all(&server, "atup", false).await;
}

#[tokio::test]
async fn interop_tftpd_hpa_server_plain_rfc1350() {
    // No options at all: 512-byte lock-step, as the oldest servers speak.
    let server = ExternalServer::tftpd_hpa().await;
    let data = data::bytes(3000, 99);
    std::fs::write(server.path("plain"), &data).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let o = ClientOptions {
        blksize: None,
        windowsize: None,
        tsize: false,
        ..opts(512)
    };
    let summary = get(
        server.addr,
        "plain",
        &dir.path().join("plain"),
        &o,
        &mut |_| {},
    )
    .await
    .unwrap();
    assert!(!summary.negotiated.oack);
    assert_same(
        "plain",
        &std::fs::read(dir.path().join("plain")).unwrap(),
        &data,
    );
}
