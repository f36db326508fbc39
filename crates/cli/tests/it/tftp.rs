//! `sockit tftp get|put` against `sockit serve`'s TFTP service, as a user runs them.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn bytes(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn tftp_put_then_get_roundtrip_with_options_reported() {
    let s = Serve::start(SOCKIT, &["--only", "tftp", "--tftp-write"]);
    let tftp = s.addr("tftp", "udp");
    let data = bytes(300_000);
    let local = s.dir.path().join("upload.bin");
    std::fs::write(&local, &data).unwrap();
    let o = run(
        sockit().args(["tftp", "put", &tftp]).arg(&local),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).contains("tsize 300000"), "{}", stdout(&o));
    // The default TFTP root is the data root's tftp/ directory.
    let stored = s.dir.path().join("root/tftp/upload.bin");
    assert_eq!(std::fs::read(&stored).unwrap(), data);

    let back = s.dir.path().join("back.bin");
    let o = run(
        sockit()
            .args(["tftp", "get", &tftp, "upload.bin"])
            .arg(&back)
            .args(["--blksize", "512", "--windowsize", "4"]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(
        stdout(&o).contains("blksize 512, windowsize 4, tsize 300000"),
        "{}",
        stdout(&o)
    );
    assert_eq!(std::fs::read(&back).unwrap(), data);

    // The server also comes from --server, as for every client (before or after `get`).
    let again = s.dir.path().join("again.bin");
    let o = run(
        sockit()
            .args(["--server", &tftp, "tftp", "get", "upload.bin"])
            .arg(&again),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::read(&again).unwrap(), data);
    let o = run(
        sockit().args(["tftp", "get", "--server", &tftp, "upload.bin", "a", "b"]),
        b"",
        LIMIT,
    );
    assert_eq!(
        o.status.code(),
        Some(2),
        "a host word as well as --server: {o:?}"
    );
}

#[test]
fn tftp_errors_exit_1_with_the_reason() {
    let s = Serve::start(SOCKIT, &["--only", "tftp"]);
    let tftp = s.addr("tftp", "udp");
    let o = run(
        sockit()
            .args(["tftp", "get", &tftp, "missing.bin"])
            .arg(s.dir.path().join("missing.bin")),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("file not found"), "{}", stderr(&o));
    assert!(!s.dir.path().join("missing.bin").exists());

    let local = s.dir.path().join("x.bin");
    std::fs::write(&local, b"x").unwrap();
    let o = run(
        sockit().args(["tftp", "put", &tftp]).arg(&local),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(stderr(&o).contains("read-only"), "{}", stderr(&o));
}

#[test]
fn tftp_bad_blksize_is_a_usage_error() {
    let o = run(
        sockit().args(["tftp", "get", "127.0.0.1", "f", "--blksize", "4"]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
}
