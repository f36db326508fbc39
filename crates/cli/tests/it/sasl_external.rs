//! IRC SASL EXTERNAL as a user sets it up: `sockit account add`, `sockit account cert add`
//! with the fingerprint openssl prints for the client certificate, `sockit serve --tls`,
//! then irssi (in tmux) connecting to the TLS port with that certificate and logging in
//! by it, which WHOIS from another client shows.

use crate::common::irc::RawIrc;
use crate::common::tmux::Tmux;
use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    net::host_port,
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

/// How long any one expected event may take.
const WAIT: Duration = Duration::from_secs(20);

fn account(root: &Path, args: &[&str], stdin: &[u8]) -> Output {
    let mut c = sockit();
    c.arg("account").arg("--root").arg(root).args(args);
    run(&mut c, stdin, WAIT)
}

/// The SHA-256 fingerprint of a PEM certificate as openssl prints it (`AB:CD:…`).
fn openssl_fingerprint(cert: &Path) -> String {
    let o = run(
        Command::new(peer::require("openssl", "openssl"))
            .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
            .arg(cert),
        b"",
        WAIT,
    );
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    let (_, fp) = out
        .trim()
        .split_once('=')
        .unwrap_or_else(|| panic!("openssl printed {out:?}"));
    fp.to_owned()
}

/// A self-signed client certificate and key, PEM files in `dir` (rcgen, as `sockit
/// serve` makes its own).
fn client_cert(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    sockit_runtime::tls::ServerIdentity::load_or_generate(dir).unwrap();
    (dir.join("cert.pem"), dir.join("key.pem"))
}

#[test]
fn account_cert_add_list_remove() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (cert, _) = client_cert(&dir.path().join("client"));
    let fp = openssl_fingerprint(&cert);
    let hex = fp.replace(':', "").to_ascii_lowercase();

    let o = account(&root, &["cert", "add", "alice", &fp], b"");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("no account alice"), "{}", stderr(&o));
    assert!(account(&root, &["add", "alice"], b"pw\n").status.success());
    assert!(account(&root, &["add", "bob"], b"pw\n").status.success());

    let o = account(&root, &["cert", "add", "alice", &fp], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("added certificate {hex} to account alice")
    );
    let o = account(&root, &["cert", "list", "alice"], b"");
    assert_eq!(stdout(&o), format!("{hex}\n"));
    // One certificate, one account.
    let o = account(
        &root,
        &["cert", "add", "bob", &hex.to_ascii_uppercase()],
        b"",
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already logs in to account alice"),
        "{}",
        stderr(&o)
    );
    let o = account(&root, &["cert", "add", "bob", "not-a-fingerprint"], b"");
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("invalid certificate fingerprint"),
        "{}",
        stderr(&o)
    );

    let o = account(&root, &["cert", "remove", "alice", &hex], b"");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        format!("removed certificate {hex} from account alice")
    );
    let o = account(&root, &["cert", "remove", "alice", &hex], b"");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has no certificate"), "{}", stderr(&o));
    let o = account(&root, &["cert", "list", "alice"], b"");
    assert!(o.status.success() && stdout(&o).is_empty(), "{o:?}");
}

#[test]
fn irssi_logs_in_with_sasl_external_by_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let (cert, key) = client_cert(&dir.path().join("client"));
    for args in [&["add", "alice"][..], &["add", "watcher"]] {
        let o = account(&root, args, b"pw-for-tests\n");
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let o = account(
        &root,
        &["cert", "add", "alice", &openssl_fingerprint(&cert)],
        b"",
    );
    assert!(o.status.success(), "{}", stderr(&o));

    let s = Serve::start_in(SOCKIT, &root, &["--only", "chat", "--tls"]);
    let (host, port) = host_port(&s.addr("chat", "tls"));
    // Accounts exist, so every client must log in: the watcher with a password.
    let mut watcher = RawIrc::register(
        &s.addr("chat", "tcp"),
        "watcher",
        Some("watcher:pw-for-tests"),
        WAIT,
    );

    let home = s.path("irssi");
    std::fs::create_dir_all(&home).unwrap();
    let tmux = Tmux::start_wide(
        "irssi-external",
        &format!("irssi --home={} --nick=certuser", home.display()),
    );
    tmux.wait_for("(status)");
    tmux.keys("/network add -sasl_mechanism EXTERNAL sockitnet");
    tmux.keys(&format!(
        "/server add -network sockitnet -tls -tls_cert {} -tls_pkey {} -notls_verify {host} {port}",
        cert.display(),
        key.display()
    ));
    tmux.keys("/connect sockitnet");
    tmux.wait_for("You are now logged in as alice");
    tmux.wait_for("Welcome to the sockit IRC Network");

    watcher.send("WHOIS certuser");
    let account = watcher.until(|l| l.contains(" 330 ") || l.contains(" 318 "));
    assert!(
        account.ends_with(" 330 watcher certuser alice :is logged in as"),
        "{account}"
    );
    tmux.keys("/quit done");
}
