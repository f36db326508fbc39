//! `sockit serve --chat-oper`: an operator block names an account of the accounts store;
//! `OPER NAME PASSWORD` with that account's password makes the client an operator (381),
//! a wrong password does not (464), and a block naming no account stops the server at
//! start-up with what to do.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::common::{sockit, SOCKIT};
use sockit_testkit::process::{run, stderr};
use sockit_testkit::serve::Serve;

const LIMIT: Duration = Duration::from_secs(30);

fn add_account(root: &std::path::Path, name: &str, password: &str) {
    let mut c = sockit();
    c.args(["account", "--root"]).arg(root).args(["add", name]);
    let o = run(&mut c, format!("{password}\n").as_bytes(), LIMIT);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Reads lines until one contains ` {numeric} ` and returns it.
fn until(r: &mut BufReader<TcpStream>, numeric: &str) -> String {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains(&format!(" {numeric} ")) {
            return line;
        }
        seen.push(line);
    }
    panic!("no {numeric}; got {seen:?}");
}

#[test]
fn oper_with_the_accounts_password_and_not_without() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    add_account(&root, "alice", "s3cret pw");
    let s = Serve::start_in(
        SOCKIT,
        &root,
        &["--only", "chat", "--chat-oper", "root=alice"],
    );
    let stream = TcpStream::connect(s.addr("chat", "tcp")).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"PASS :alice:s3cret pw\r\nNICK al\r\nUSER al 0 * :Alice\r\n")
        .unwrap();
    until(&mut r, "001");
    w.write_all(b"OPER root wrong\r\n").unwrap();
    until(&mut r, "464");
    w.write_all(b"OPER root :s3cret pw\r\n").unwrap();
    let ok = until(&mut r, "381");
    assert!(ok.contains("operator"), "{ok}");
}

#[test]
fn an_oper_block_without_its_account_stops_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = sockit();
    c.args(["serve", "--port", "all=0", "--only", "chat", "--root"])
        .arg(dir.path())
        .args(["--chat-oper", "root=nobody"]);
    let o = run(&mut c, b"", LIMIT);
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(
        stderr(&o)
            .contains("there is no account `nobody` (create it with `sockit account add nobody`)"),
        "{}",
        stderr(&o)
    );
}

/// Reads lines until one starts with `prefix` after the source (e.g. `REGISTER SUCCESS`).
fn until_command(r: &mut BufReader<TcpStream>, what: &str) -> String {
    let mut seen = Vec::new();
    for _ in 0..200 {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            break;
        }
        if line.contains(what) {
            return line;
        }
        seen.push(line);
    }
    panic!("no {what:?}; got {seen:?}");
}

#[test]
fn chat_registration_creates_a_server_account_and_history_lives_in_state() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let s = Serve::start_in(SOCKIT, &root, &["--only", "chat", "--chat-registration"]);
    assert!(
        root.join("state/chat-history.sqlite").exists(),
        "the history store is in the state directory"
    );
    let stream = TcpStream::connect(s.addr("chat", "tcp")).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    w.write_all(b"CAP LS 302\r\nNICK newbie\r\nUSER newbie 0 * :N\r\n")
        .unwrap();
    until_command(&mut r, "draft/account-registration");
    w.write_all(b"REGISTER * * :a long password\r\n").unwrap();
    let ok = until_command(&mut r, "REGISTER SUCCESS newbie");
    assert!(ok.contains("newbie"), "{ok}");
    // The account is the server's: `sockit account list` shows it.
    let mut c = sockit();
    c.args(["account", "--root"]).arg(&root).arg("list");
    let o = run(&mut c, b"", LIMIT);
    assert!(
        sockit_testkit::process::stdout(&o).contains("newbie"),
        "{o:?}"
    );
}
