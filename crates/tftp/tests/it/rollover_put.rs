//! Uploads past block 65535 at blksize 512 (33 MiB), so block numbers roll over to 0,
//! in the directions the other interop files do not cover: our client to atftpd, and
//! the atftp and curl clients to our server. Each test needs the named program
//! (scripts/test.sh installs it).

use crate::common;
use sockit_testkit::data::assert_same;
use sockit_testkit::{data, peer};

use common::{read_when_complete, run, ExternalServer, TestServer, ROLLOVER_SIZE};
use sockit_tftp::client::{put, ClientOptions};
use std::path::Path;
use std::time::Duration;

/// Blocks a rollover file needs at blksize 512; more than a 16-bit block number holds.
fn blocks_at_512(size: usize) -> usize {
    size / 512 + 1
}

#[track_caller]
fn check_output(label: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{label}: exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn write_local(dir: &Path, name: &str, seed: u64) -> Vec<u8> {
    assert!(
        blocks_at_512(ROLLOVER_SIZE) > 65535,
        "the file must pass block 65535"
    );
    let data = data::bytes(ROLLOVER_SIZE, seed);
    std::fs::write(dir.join(name), &data).unwrap();
    data
}

#[tokio::test]
async fn interop_atftpd_server_put_past_block_65535() {
    let server = ExternalServer::atftpd().await;
    let dir = tempfile::tempdir().unwrap();
    let name = "atftpd-rollover.bin";
    let data = write_local(dir.path(), name, 651);
    let opts = ClientOptions {
        blksize: Some(512),
        timeout: Duration::from_millis(500),
        ..ClientOptions::default()
    };
    let summary = put(
        server.addr,
        &dir.path().join(name),
        name,
        &opts,
        &mut |_| {},
    )
    .await
    .unwrap_or_else(|e| panic!("put {name} to atftpd: {e}"));
    assert_eq!(summary.negotiated.blksize, 512);
    assert_eq!(summary.bytes, ROLLOVER_SIZE as u64);
    let got = read_when_complete(&server.path(name), &data).await;
    assert_same(name, &got, &data);
}

#[tokio::test]
async fn interop_atftp_client_put_past_block_65535() {
    let program = peer::require("atftp", "atftp");
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let dir = tempfile::tempdir().unwrap();
    let name = "atftp-rollover.bin";
    let data = write_local(dir.path(), name, 652);
    // No options: plain RFC 1350, 512-byte blocks in lock-step.
    let args: Vec<String> = ["-p", "-l", name, "-r", name, "127.0.0.1"]
        .iter()
        .map(|s| s.to_string())
        .chain([server.addr.port().to_string()])
        .collect();
    let out = run(&program, &args, dir.path()).await;
    check_output(&format!("atftp {args:?}"), &out);
    assert_same(name, &std::fs::read(server.path(name)).unwrap(), &data);
    server.stop().await;
}

#[tokio::test]
async fn interop_curl_put_past_block_65535() {
    let program = peer::require("curl", "curl");
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let dir = tempfile::tempdir().unwrap();
    let name = "curl-rollover.bin";
    let data = write_local(dir.path(), name, 653);
    let args: Vec<String> = [
        "-sS",
        "--fail",
        "--tftp-blksize",
        "512",
        "-T",
        name,
        &format!("tftp://127.0.0.1:{}/{name}", server.addr.port()),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let out = run(&program, &args, dir.path()).await;
    check_output(&format!("curl {args:?}"), &out);
    assert_same(name, &std::fs::read(server.path(name)).unwrap(), &data);
    server.stop().await;
}
