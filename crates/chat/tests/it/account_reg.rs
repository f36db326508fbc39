//! IRCv3 `draft/account-registration` over raw sockets: `REGISTER` before and after
//! connection registration, the login that follows, and the standard-reply errors.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use sockit_chat::irc::{AuthVerdict, CreateVerdict, IrcAuth, Message, ServerConfig};

use crate::common::{config, start, Raw, TestServer};

/// Accounts in memory; `taken` exists from the start; registration on or off.
#[derive(Debug)]
struct Open {
    accounts: Mutex<HashMap<String, String>>,
    registration: bool,
    required: bool,
}

#[async_trait]
impl IrcAuth for Open {
    fn required(&self) -> bool {
        self.required
    }

    async fn verify(&self, account: &str, password: &str, _ip: IpAddr) -> AuthVerdict {
        match self.accounts.lock().unwrap().get(account) {
            Some(p) if p == password => AuthVerdict::Ok,
            _ => AuthVerdict::Bad,
        }
    }

    fn registration(&self) -> bool {
        self.registration
    }

    async fn create(&self, account: &str, password: &str, _ip: IpAddr) -> CreateVerdict {
        if password.len() < 4 {
            return CreateVerdict::BadPassword("shorter than 4 characters".into());
        }
        let mut a = self.accounts.lock().unwrap();
        if a.contains_key(account) {
            return CreateVerdict::Exists;
        }
        a.insert(account.into(), password.into());
        CreateVerdict::Created
    }
}

async fn server(registration: bool, required: bool) -> TestServer {
    let accounts = Mutex::new(HashMap::from([("taken".to_owned(), "pw".to_owned())]));
    start(ServerConfig {
        auth: Some(Arc::new(Open {
            accounts,
            registration,
            required,
        })),
        ..config()
    })
    .await
}

fn fail(m: &Message) -> Vec<String> {
    assert_eq!(m.command, "FAIL", "{m}");
    m.params[..m.params.len() - 1].to_vec()
}

#[tokio::test]
async fn register_before_connect_logs_in_and_the_account_works() {
    let s = server(true, true).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP LS 302").await;
    let ls = c.expect("CAP").await;
    assert!(
        ls.params[2]
            .split(' ')
            .any(|c| c == "draft/account-registration=before-connect,custom-account-name"),
        "{ls}"
    );
    c.send("REGISTER * * longpass").await;
    assert_eq!(fail(&c.msg().await), ["REGISTER", "NEED_NICK", "*"]);
    c.send("NICK newbie").await;
    c.send("USER newbie 0 * :N").await;
    c.send("REGISTER * newbie@example.org longpass").await;
    let ok = c.expect("REGISTER").await;
    assert_eq!(ok.params[..2], ["SUCCESS", "newbie"]);
    let logged = c.expect("900").await;
    assert_eq!(logged.params[2], "newbie");
    c.send("REGISTER other * longpass").await;
    assert_eq!(
        fail(&c.msg().await),
        ["REGISTER", "ALREADY_AUTHENTICATED", "newbie"]
    );
    c.send("CAP END").await;
    c.expect("001").await;

    // The new account logs in like any other.
    let mut again = Raw::connect(s.addr).await;
    again.send("PASS newbie:longpass").await;
    again.send("NICK again").await;
    again.send("USER again 0 * :A").await;
    again.until_cmd("900").await;
    again.expect("001").await;
}

#[tokio::test]
async fn register_after_connect_and_the_errors() {
    let s = server(true, false).await;
    let mut watcher = Raw::register_with(s.addr, "watcher", "account-notify").await;
    let mut c = Raw::register_with(s.addr, "late", "account-notify").await;
    for r in [&mut watcher, &mut c] {
        r.send("JOIN #r").await;
        r.until_cmd("366").await;
    }
    watcher.sync("w").await;
    let cases = [
        (
            "REGISTER taken * longpass",
            vec!["REGISTER", "ACCOUNT_EXISTS", "taken"],
        ),
        (
            "REGISTER a:b * longpass",
            vec!["REGISTER", "BAD_ACCOUNT_NAME", "a:b"],
        ),
        (
            "REGISTER #chan * longpass",
            vec!["REGISTER", "BAD_ACCOUNT_NAME", "#chan"],
        ),
        (
            "REGISTER shorty * pw",
            vec!["REGISTER", "UNACCEPTABLE_PASSWORD", "shorty"],
        ),
        (
            "REGISTER shorty * *",
            vec!["REGISTER", "UNACCEPTABLE_PASSWORD", "shorty"],
        ),
        ("VERIFY late 12345", vec!["VERIFY", "INVALID_CODE", "late"]),
    ];
    for (cmd, want) in cases {
        c.send(cmd).await;
        assert_eq!(fail(&c.msg().await), want, "{cmd}");
    }
    c.send("REGISTER late *").await;
    assert_eq!(c.expect("461").await.param(1), Some("REGISTER"));

    c.send("REGISTER Late-Account * longpass").await;
    let ok = c.expect("REGISTER").await;
    assert_eq!(ok.params[..2], ["SUCCESS", "Late-Account"]);
    c.expect("900").await;
    let acct = c.expect("ACCOUNT").await;
    assert_eq!(acct.params, ["Late-Account"]);
    let seen = watcher.expect("ACCOUNT").await;
    assert!(
        seen.prefix.as_deref().unwrap().starts_with("late!"),
        "{seen}"
    );
    c.send("WHOIS late").await;
    assert_eq!(c.until_cmd("330").await.params[2], "Late-Account");
}

#[tokio::test]
async fn not_offered_without_registration() {
    let s = server(false, false).await;
    let mut c = Raw::register_with(s.addr, "n", "sasl").await;
    c.send("CAP LS 302").await;
    let ls = c.expect("CAP").await;
    assert!(!ls.params[2].contains("account-registration"), "{ls}");
    c.send("REGISTER n * longpass").await;
    assert_eq!(
        fail(&c.msg().await),
        ["REGISTER", "TEMPORARILY_UNAVAILABLE", "*"]
    );
}
