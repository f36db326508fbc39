//! IRCv3 SASL 3.2 (PLAIN) over raw sockets: the mechanism list in `CAP LS 302`,
//! 400-byte chunks, the numerics, login after registration with account-notify, and the
//! account in account-tag, extended-join and WHOIS.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use sockit_chat::irc::{AuthVerdict, IrcAuth, ServerConfig};

use crate::common::{config, start, tags, Raw, TestServer};

/// Accounts `alice` (password `s3cret`) and `long` (a 600-byte password), not required.
#[derive(Debug)]
struct Accounts;

fn long_password() -> String {
    "p".repeat(600)
}

#[async_trait]
impl IrcAuth for Accounts {
    fn required(&self) -> bool {
        false
    }

    async fn verify(&self, account: &str, password: &str, _ip: IpAddr) -> AuthVerdict {
        match account {
            "alice" if password == "s3cret" => AuthVerdict::Ok,
            "long" if password == long_password() => AuthVerdict::Ok,
            _ => AuthVerdict::Bad,
        }
    }
}

async fn server() -> TestServer {
    start(ServerConfig {
        auth: Some(Arc::new(Accounts)),
        max_auth_failures: 10,
        ..config()
    })
    .await
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[tokio::test]
async fn cap_ls_302_gives_the_mechanisms_and_older_clients_the_bare_name() {
    let s = server().await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP LS").await;
    let ls = c.expect("CAP").await;
    assert!(ls.params[2].split(' ').any(|c| c == "sasl"), "{ls}");
    c.send("CAP LS 302").await;
    let ls = c.expect("CAP").await;
    assert!(ls.params[2].split(' ').any(|c| c == "sasl=PLAIN"), "{ls}");
    // CAP LIST never carries values.
    c.send("CAP REQ sasl").await;
    c.expect("CAP").await;
    c.send("CAP LIST").await;
    assert_eq!(c.expect("CAP").await.params[2], "cap-notify sasl");
}

#[tokio::test]
async fn chunked_payloads_with_plus_and_the_error_numerics() {
    let s = server().await;
    let mut c = Raw::connect(s.addr).await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect("904").await; // no `sasl` capability yet
    c.send("CAP REQ :sasl").await;
    c.expect("CAP").await;
    c.send("NICK chunky").await;
    c.send("USER chunky 0 * :C").await;

    // Unknown mechanism: 908 with the list, then 904.
    c.send("AUTHENTICATE SCRAM-SHA-256").await;
    assert_eq!(
        c.expect("908").await.params,
        vec!["chunky", "PLAIN", "are available SASL mechanisms"]
    );
    c.expect("904").await;

    // A chunk over 400 bytes: 905.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "AUTHENTICATE +");
    c.send(&format!("AUTHENTICATE {}", "A".repeat(401))).await;
    c.expect("905").await;

    // Abort: 906.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "AUTHENTICATE +");
    c.send("AUTHENTICATE *").await;
    c.expect("906").await;

    // A payload of 808 base64 bytes: 400 + 400 + 8.
    let payload = b64(&format!("\0long\0{}", long_password()));
    assert!(payload.len() > 800 && !payload.len().is_multiple_of(400));
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "AUTHENTICATE +");
    for chunk in payload.as_bytes().chunks(400) {
        c.send(&format!(
            "AUTHENTICATE {}",
            std::str::from_utf8(chunk).unwrap()
        ))
        .await;
    }
    let ok = c.expect("900").await;
    assert_eq!(ok.params[1..3], ["chunky!chunky@127.0.0.1", "long"]);
    c.expect("903").await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect("907").await;
    c.send("CAP END").await;
    c.expect("001").await;
}

#[tokio::test]
async fn a_payload_of_exactly_400_bytes_ends_with_plus() {
    let s = server().await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP REQ :sasl").await;
    c.expect("CAP").await;
    // authzid "alice" padded so the base64 is exactly 400 bytes: 300 raw bytes.
    let raw = "alice\0alice\0s3cret";
    let pad = 300 - raw.len();
    // The authzid must be the account, so pad with a longer (wrong) password instead
    // and expect 904, then log in with a 400-byte payload that is right.
    let wrong = b64(&format!("{raw}{}", "x".repeat(pad)));
    assert_eq!(wrong.len(), 400);
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "AUTHENTICATE +");
    c.send(&format!("AUTHENTICATE {wrong}")).await;
    // Nothing yet: a 400-byte chunk needs more or `+`.
    let quiet = c.sync("more").await;
    assert!(quiet.is_empty(), "{quiet:?}");
    c.send("AUTHENTICATE +").await;
    c.expect("904").await;
    // An empty response (`+` alone) is a malformed PLAIN message.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "AUTHENTICATE +");
    c.send("AUTHENTICATE +").await;
    c.expect("904").await;
    // CAP END mid-exchange aborts it (906) and registers without an account.
    c.send("AUTHENTICATE PLAIN").await;
    assert_eq!(c.line().await, "AUTHENTICATE +");
    c.send("NICK mid").await;
    c.send("USER mid 0 * :M").await;
    c.send("CAP END").await;
    c.expect("906").await;
    c.expect("001").await;
}

#[tokio::test]
async fn login_after_registration_notifies_and_tags_the_account() {
    let s = server().await;
    let mut watcher = Raw::register_with(
        s.addr,
        "watcher",
        "account-notify account-tag extended-join",
    )
    .await;
    watcher.send("JOIN #acct").await;
    watcher.until_cmd("366").await;
    let mut a = Raw::register_with(s.addr, "al", "sasl account-notify").await;
    a.send("JOIN #acct").await;
    a.until_cmd("366").await;
    let j = watcher.until_cmd("JOIN").await;
    assert_eq!(j.params, vec!["#acct", "*", "Real al"], "not logged in yet");

    a.send("AUTHENTICATE PLAIN").await;
    a.until(|m| m.command == "AUTHENTICATE").await;
    a.send(&format!("AUTHENTICATE {}", b64("\0alice\0s3cret")))
        .await;
    a.until_cmd("900").await;
    a.until_cmd("903").await;
    let own = a.until_cmd("ACCOUNT").await;
    assert_eq!(own.params, vec!["alice"], "account-notify includes oneself");
    let seen = watcher.until_cmd("ACCOUNT").await;
    assert_eq!(seen.prefix.as_deref(), Some("al!al@127.0.0.1"));
    assert_eq!(seen.params, vec!["alice"]);

    a.send("PRIVMSG #acct :signed").await;
    let m = watcher.until_cmd("PRIVMSG").await;
    assert_eq!(tags(&m).get("account"), Some("alice"));
    watcher.send("WHOIS al").await;
    let w = watcher.until_cmd("330").await;
    assert_eq!(w.params[1..3], ["al", "alice"]);

    // extended-join carries the account; a second login is refused.
    a.send("PART #acct").await;
    a.send("JOIN #acct").await;
    let j = watcher.until(|m| m.command == "JOIN").await;
    assert_eq!(j.params, vec!["#acct", "alice", "Real al"]);
    a.send("AUTHENTICATE PLAIN").await;
    a.until_cmd("907").await;
}
