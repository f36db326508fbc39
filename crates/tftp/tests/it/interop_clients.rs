//! Standard TFTP clients (tftp-hpa, atftp, curl) against our server, byte-exact.
//! Each test needs the named program (scripts/test.sh installs it).

use crate::common;
use sockit_testkit::data::assert_same;
use sockit_testkit::{data, peer};

use common::{run, TestServer, ROLLOVER_SIZE, SMALL_SIZES};
use std::path::Path;

/// Puts one file per size in the server root; returns (name, contents).
fn seed(server: &TestServer, sizes: &[usize], tag: &str) -> Vec<(String, Vec<u8>)> {
    sizes
        .iter()
        .enumerate()
        .map(|(i, &size)| {
            let name = format!("{tag}-{size}.bin");
            let data = data::bytes(size, i as u64 + tag.len() as u64);
            std::fs::write(server.path(&name), &data).unwrap();
            (name, data)
        })
        .collect()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn check_output(label: &str, output: &std::process::Output) {
    assert!(
        output.status.success(),
        "{label}: exit {:?}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

async fn tftp_hpa(server: &TestServer, command: &str, cwd: &Path) {
    let program = peer::require("tftp", "tftp-hpa");
    let port = server.addr.port().to_string();
    let out = run(
        &program,
        &args(&["-m", "binary", "127.0.0.1", &port, "-c"])
            .into_iter()
            .chain(command.split(' ').map(String::from))
            .collect::<Vec<_>>(),
        cwd,
    )
    .await;
    // tftp-hpa exits 0 even on errors; it prints them.
    check_output(command, &out);
    let printed = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    assert!(!printed.contains("Error"), "{command}: {printed}");
}

#[tokio::test]
async fn interop_tftp_hpa_client_get() {
    let server = TestServer::start(|_| {}).await;
    let mut sizes = SMALL_SIZES.to_vec();
    sizes.push(ROLLOVER_SIZE);
    let files = seed(&server, &sizes, "hpa");
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in &files {
        tftp_hpa(&server, &format!("get {name} {name}"), dir.path()).await;
        assert_same(name, &std::fs::read(dir.path().join(name)).unwrap(), data);
    }
    server.stop().await;
}

#[tokio::test]
async fn interop_tftp_hpa_client_put() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let dir = tempfile::tempdir().unwrap();
    let mut sizes = SMALL_SIZES.to_vec();
    sizes.push(ROLLOVER_SIZE); // rollover on our receiving side
    for &size in &sizes {
        let name = format!("up-{size}.bin");
        let data = data::bytes(size, size as u64);
        std::fs::write(dir.path().join(&name), &data).unwrap();
        tftp_hpa(&server, &format!("put {name} {name}"), dir.path()).await;
        assert_same(&name, &std::fs::read(server.path(&name)).unwrap(), &data);
    }
    server.stop().await;
}

async fn atftp(server: &TestServer, extra: &[&str], cwd: &Path) {
    let program = peer::require("atftp", "atftp");
    let mut all = args(extra);
    all.push("127.0.0.1".into());
    all.push(server.addr.port().to_string());
    let out = run(&program, &all, cwd).await;
    check_output(&format!("atftp {all:?}"), &out);
}

#[tokio::test]
async fn interop_atftp_client_get() {
    let server = TestServer::start(|_| {}).await;
    let files = seed(&server, &SMALL_SIZES, "at");
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in &files {
        // With options: blksize, windowsize and tsize negotiated by OACK.
        atftp(
            &server,
            &[
                "--option",
                "blksize 1428",
                "--option",
                "windowsize 8",
                "--option",
                "tsize 0",
                "-g",
                "-r",
                name,
                "-l",
                name,
            ],
            dir.path(),
        )
        .await;
        assert_same(name, &std::fs::read(dir.path().join(name)).unwrap(), data);
    }
    // Rollover: plain RFC 1350 (512-byte blocks) past block 65535.
    let big = seed(&server, &[ROLLOVER_SIZE], "at-big");
    let (name, data) = &big[0];
    atftp(&server, &["-g", "-r", name, "-l", name], dir.path()).await;
    assert_same(name, &std::fs::read(dir.path().join(name)).unwrap(), data);
    server.stop().await;
}

#[tokio::test]
async fn interop_atftp_client_put() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let dir = tempfile::tempdir().unwrap();
    for &size in &SMALL_SIZES {
        let name = format!("atup-{size}.bin");
        let data = data::bytes(size, 31 + size as u64);
        std::fs::write(dir.path().join(&name), &data).unwrap();
        atftp(
            &server,
            &["--option", "blksize 1024", "-p", "-l", &name, "-r", &name],
            dir.path(),
        )
        .await;
        assert_same(&name, &std::fs::read(server.path(&name)).unwrap(), &data);
    }
    server.stop().await;
}

async fn curl(server: &TestServer, blksize: u16, extra: &[&str], remote: &str, cwd: &Path) {
    let program = peer::require("curl", "curl");
    let mut all = args(&["-sS", "--fail", "--tftp-blksize"]);
    all.push(blksize.to_string());
    all.extend(args(extra));
    all.push(format!("tftp://127.0.0.1:{}/{remote}", server.addr.port()));
    let out = run(&program, &all, cwd).await;
    check_output(&format!("curl {all:?}"), &out);
}

#[tokio::test]
async fn interop_curl_get() {
    let server = TestServer::start(|_| {}).await;
    let files = seed(&server, &SMALL_SIZES, "curl");
    let dir = tempfile::tempdir().unwrap();
    for (name, data) in &files {
        curl(&server, 1468, &["-o", name], name, dir.path()).await;
        assert_same(name, &std::fs::read(dir.path().join(name)).unwrap(), data);
    }
    let big = seed(&server, &[ROLLOVER_SIZE], "curl-big");
    let (name, data) = &big[0];
    curl(&server, 512, &["-o", name], name, dir.path()).await;
    assert_same(name, &std::fs::read(dir.path().join(name)).unwrap(), data);
    server.stop().await;
}

#[tokio::test]
async fn interop_curl_put() {
    let server = TestServer::start(|c| c.write_allowed = true).await;
    let dir = tempfile::tempdir().unwrap();
    for &size in &SMALL_SIZES {
        let name = format!("curlup-{size}.bin");
        let data = data::bytes(size, 77 + size as u64);
        std::fs::write(dir.path().join(&name), &data).unwrap();
        curl(&server, 1468, &["-T", &name], &name, dir.path()).await;
        assert_same(&name, &std::fs::read(server.path(&name)).unwrap(), &data);
    }
    server.stop().await;
}
