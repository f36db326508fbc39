//! Channel registration (ChanServ) over raw sockets: who may register, AMODE and OP
//! giving status from ChanServ, INFO, UNREGISTER, the reserved nick, and a registered
//! channel's topic, modes and lists surviving a restart on the same SQLite file.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use sockit_chat::irc::{AuthVerdict, ChannelStoreConfig, IrcAuth, Message, ServerConfig};

use crate::common::{config, start, Raw, TestServer};

const CHANSERV: &str = "ChanServ!ChanServ@services.";

/// Every account exists, with the password `pw`; logging in is optional.
#[derive(Debug)]
struct AnyAccount;

#[async_trait]
impl IrcAuth for AnyAccount {
    fn required(&self) -> bool {
        false
    }

    async fn verify(&self, _account: &str, password: &str, _ip: IpAddr) -> AuthVerdict {
        if password == "pw" {
            AuthVerdict::Ok
        } else {
            AuthVerdict::Bad
        }
    }
}

fn chanreg_config(file: Option<&Path>) -> ServerConfig {
    ServerConfig {
        auth: Some(Arc::new(AnyAccount)),
        channels: file.map(|p| ChannelStoreConfig { path: p.into() }),
        ..config()
    }
}

async fn server() -> TestServer {
    start(chanreg_config(None)).await
}

/// Registers as `nick`, logged in to `account` (SASL PLAIN, password `pw`) if given.
async fn user(s: &TestServer, nick: &str, account: Option<&str>) -> Raw {
    let Some(account) = account else {
        return Raw::register(s.addr, nick).await;
    };
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP REQ :sasl").await;
    c.expect("CAP").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :Real {nick}")).await;
    c.send("AUTHENTICATE PLAIN").await;
    c.until_cmd("AUTHENTICATE").await;
    let payload = format!("\0{account}\0pw");
    let b64 = base64::engine::general_purpose::STANDARD.encode(payload);
    c.send(&format!("AUTHENTICATE {b64}")).await;
    c.until_cmd("903").await;
    c.send("CAP END").await;
    c.until(|m| m.command == "376" || m.command == "422").await;
    c
}

async fn join(c: &mut Raw, chan: &str) -> Vec<Message> {
    c.send(&format!("JOIN {chan}")).await;
    let mut got = Vec::new();
    for _ in 0..100 {
        let m = c.msg().await;
        let end = m.command == "366";
        got.push(m);
        if end {
            return got;
        }
    }
    panic!("no 366 after JOIN {chan}: {got:?}");
}

/// The NOTICEs from ChanServ that `line` gets (everything up to a PING round trip).
async fn cs(c: &mut Raw, line: &str) -> Vec<String> {
    c.send(line).await;
    let got = c.sync("cs").await;
    got.iter()
        .filter(|m| m.command == "NOTICE" && m.prefix.as_deref() == Some(CHANSERV))
        .map(|m| m.params[1].clone())
        .collect()
}

/// The `MODE` lines from ChanServ in `ms`, as `#chan +o nick`.
fn chanserv_modes(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .filter(|m| m.command == "MODE" && m.prefix.as_deref() == Some(CHANSERV))
        .map(|m| m.params.join(" "))
        .collect()
}

/// The NAMES entries of `chan` in `ms`.
fn names(ms: &[Message]) -> Vec<String> {
    ms.iter()
        .filter(|m| m.command == "353")
        .flat_map(|m| {
            m.params[3]
                .split(' ')
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn register_needs_a_login_and_channel_operator_status() {
    let s = server().await;
    let mut anon = user(&s, "anon", None).await;
    join(&mut anon, "#room").await;
    assert_eq!(
        cs(&mut anon, "CS REGISTER #room").await,
        ["You're not logged into an account"]
    );
    let mut alice = user(&s, "alice", Some("alice")).await;
    join(&mut alice, "#room").await;
    assert_eq!(
        cs(&mut alice, "PRIVMSG ChanServ :REGISTER #room").await,
        ["You must be an operator in #room to register it"]
    );
    assert_eq!(
        cs(&mut alice, "CS REGISTER #nowhere").await,
        ["Channel #nowhere does not exist"]
    );
    join(&mut alice, "#Own").await;
    assert_eq!(
        cs(&mut alice, "PRIVMSG chanserv :register #own").await,
        ["Channel #Own successfully registered"]
    );
    assert_eq!(
        cs(&mut alice, "CHANSERV REGISTER #own").await,
        ["Channel #Own is already registered"]
    );
    let info = cs(&mut anon, "CS INFO #own").await;
    assert_eq!(info[..2], ["Channel #Own is registered", "Founder: alice"]);
    assert!(info[2].starts_with("Registered at: 20"), "{info:?}");
    assert_eq!(info[3], "AMODEs: none");
    assert_eq!(
        cs(&mut anon, "CS INFO #room").await,
        ["Channel #room is not registered"]
    );
    // A NOTICE to ChanServ is not answered; bad syntax gets the usage.
    assert!(cs(&mut alice, "NOTICE ChanServ :INFO #own")
        .await
        .is_empty());
    assert_eq!(
        cs(&mut alice, "CS REGISTER").await,
        ["Syntax: REGISTER #channel"]
    );
    assert_eq!(
        cs(&mut alice, "CS FLY #own").await,
        ["Unknown command FLY. To see the available commands, run /CS HELP"]
    );
}

#[tokio::test]
async fn amode_and_the_founder_get_status_from_chanserv_on_join() {
    let s = server().await;
    let mut alice = user(&s, "alice", Some("alice")).await;
    join(&mut alice, "#r").await;
    assert_eq!(
        cs(&mut alice, "CS REGISTER #r").await,
        ["Channel #r successfully registered"]
    );
    assert_eq!(
        cs(&mut alice, "CS AMODE #r +o bobacct").await,
        ["Account bobacct now receives +o in #r"]
    );
    assert_eq!(
        cs(&mut alice, "CS AMODE #r +v carol").await,
        ["Account carol now receives +v in #r"]
    );
    let mut bob = user(&s, "bob", Some("bobacct")).await;
    let joined = join(&mut bob, "#r").await;
    assert_eq!(chanserv_modes(&joined), ["#r +o bob"]);
    assert!(names(&joined).contains(&"@bob".to_owned()), "{joined:?}");
    let seen = alice.sync("a").await;
    assert_eq!(chanserv_modes(&seen), ["#r +o bob"]);
    let mut carol = user(&s, "carol", Some("carol")).await;
    let joined = join(&mut carol, "#r").await;
    assert_eq!(chanserv_modes(&joined), ["#r +v carol"]);
    // Someone else gets nothing.
    let mut dave = user(&s, "dave", Some("dave")).await;
    assert!(chanserv_modes(&join(&mut dave, "#r").await).is_empty());
    // The list, for operators and AMODE accounts only.
    assert_eq!(
        cs(&mut bob, "CS AMODE #r").await,
        [
            "Channel #r has 2 persistent modes set",
            "Account bobacct receives mode +o",
            "Account carol receives mode +v",
        ]
    );
    assert_eq!(
        cs(&mut dave, "CS AMODE #r").await,
        ["Insufficient privileges: you must be an operator in #r"]
    );
    // A +o account may change +v, not +o.
    assert_eq!(
        cs(&mut bob, "CS AMODE #r +o dave").await,
        ["Insufficient privileges to change +o in #r"]
    );
    assert_eq!(
        cs(&mut bob, "CS AMODE #r +v dave").await,
        ["Account dave now receives +v in #r"]
    );
    // dave is on the channel: he gets +v at once.
    let seen = dave.sync("d").await;
    assert_eq!(chanserv_modes(&seen), ["#r +v dave"]);
    assert_eq!(
        cs(&mut alice, "CS AMODE #r -o carol").await,
        ["Account carol does not receive +o in #r"]
    );
    assert_eq!(
        cs(&mut alice, "CS AMODE #r -v carol").await,
        ["Account carol no longer receives +v in #r"]
    );
    let info = cs(&mut dave, "CS INFO #r").await;
    assert_eq!(info[3..], ["AMODE: bobacct +o", "AMODE: dave +v"]);
    // The founder, back in, is an operator again; OP gives +o on request.
    alice.send("PART #r").await;
    assert_eq!(
        chanserv_modes(&join(&mut alice, "#r").await),
        ["#r +o alice"]
    );
    alice.send("MODE #r -o alice").await;
    alice.sync("deop").await;
    assert_eq!(
        cs(&mut alice, "CS OP #r").await,
        ["Successfully granted operator status to alice in #r"]
    );
    assert_eq!(
        cs(&mut bob, "CS OP #r carol").await,
        ["Successfully granted operator status to carol in #r"]
    );
    let seen = carol.sync("c").await;
    assert_eq!(
        chanserv_modes(&seen),
        ["#r +v dave", "#r +o alice", "#r +o alice", "#r +o carol"]
    );
    assert_eq!(
        cs(&mut dave, "CS OP #r").await,
        ["Insufficient privileges: you are not the founder or an +o AMODE of #r"]
    );
    assert_eq!(
        cs(&mut alice, "CS OP #r nobody").await,
        ["nobody is not on #r"]
    );
}

#[tokio::test]
async fn topic_modes_and_lists_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat-channels.sqlite");
    let first = start(chanreg_config(Some(&file))).await;
    let mut alice = user(&first, "alice", Some("alice")).await;
    join(&mut alice, "#keep").await;
    cs(&mut alice, "CS REGISTER #keep").await;
    cs(&mut alice, "CS AMODE #keep +o bob").await;
    alice.send("TOPIC #keep :kept across restarts").await;
    alice.send("MODE #keep +mk-n sesame").await;
    alice.send("MODE #keep +bel bad!*@* good!*@* 10").await;
    alice.send("MODE #keep +I inv!*@*").await;
    alice.send("PART #keep").await;
    alice.sync("done").await;
    // Empty, the registered channel stays.
    let mut anon = user(&first, "anon", None).await;
    anon.send("LIST #keep").await;
    let list = anon.until_cmd("322").await;
    assert_eq!(list.params[1..], ["#keep", "0", "kept across restarts"]);
    first.server.flush_channels().await;

    let second = start(chanreg_config(Some(&file))).await;
    let mut anon = user(&second, "anon", None).await;
    anon.send("MODE #keep").await;
    let modes = anon.until_cmd("324").await;
    assert_eq!(modes.params[1..], ["#keep", "+klmt", "*", "10"]);
    anon.send("MODE #keep b").await;
    let ban = anon.until_cmd("367").await;
    assert_eq!(ban.params[1..3], ["#keep", "bad!*@*"]);
    assert!(ban.params[3].starts_with("alice!"), "{ban}");
    anon.send("MODE #keep e").await;
    assert_eq!(anon.until_cmd("348").await.params[2], "good!*@*");
    anon.send("MODE #keep I").await;
    assert_eq!(anon.until_cmd("346").await.params[2], "inv!*@*");
    anon.send("TOPIC #keep").await;
    assert_eq!(
        anon.until_cmd("332").await.params[2],
        "kept across restarts"
    );
    assert_eq!(anon.until_cmd("333").await.params[2], "alice");
    // The key still holds; the founder and +o accounts join past it and get +o.
    anon.send("JOIN #keep").await;
    assert_eq!(anon.until_cmd("475").await.params[1], "#keep");
    let mut alice = user(&second, "alice", Some("alice")).await;
    let joined = join(&mut alice, "#keep").await;
    assert_eq!(chanserv_modes(&joined), ["#keep +o alice"]);
    let mut bob = user(&second, "bobby", Some("bob")).await;
    assert_eq!(
        chanserv_modes(&join(&mut bob, "#keep").await),
        ["#keep +o bobby"]
    );
    let info = cs(&mut anon, "CS INFO #keep").await;
    assert_eq!(info[1], "Founder: alice");
    assert_eq!(info[3], "AMODE: bob +o");
    anon.send("JOIN #keep sesame").await;
    let names: Vec<String> = names(&anon.sync("j").await);
    assert_eq!(names, ["anon", "@alice", "@bobby"]);
}

#[tokio::test]
async fn unregister_is_for_the_founder_and_forgets_the_channel() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("chat-channels.sqlite");
    let first = start(chanreg_config(Some(&file))).await;
    let mut alice = user(&first, "alice", Some("alice")).await;
    join(&mut alice, "#gone").await;
    cs(&mut alice, "CS REGISTER #gone").await;
    let mut bob = user(&first, "bob", Some("bob")).await;
    assert_eq!(
        cs(&mut bob, "CS UNREGISTER #gone").await,
        ["Insufficient privileges: only the founder may unregister #gone"]
    );
    let mut anon = user(&first, "anon", None).await;
    assert_eq!(
        cs(&mut anon, "CS UNREGISTER #gone").await,
        ["You're not logged into an account"]
    );
    assert_eq!(
        cs(&mut alice, "CS UNREGISTER #gone").await,
        ["Channel #gone is now unregistered"]
    );
    assert_eq!(
        cs(&mut alice, "CS INFO #gone").await,
        ["Channel #gone is not registered"]
    );
    // No longer kept while empty, nor across a restart.
    alice.send("PART #gone").await;
    alice.send("LIST").await;
    let listed = alice.sync("l").await;
    assert!(!listed.iter().any(|m| m.command == "322"), "{listed:?}");
    first.server.flush_channels().await;
    let second = start(chanreg_config(Some(&file))).await;
    let mut anon = user(&second, "anon", None).await;
    assert_eq!(
        cs(&mut anon, "CS INFO #gone").await,
        ["Channel #gone is not registered"]
    );
}

#[tokio::test]
async fn the_chanserv_nick_is_reserved_and_help_answers() {
    let s = server().await;
    let mut c = Raw::connect(s.addr).await;
    c.send("NICK chanserv").await;
    let m = c.expect("433").await;
    assert_eq!(m.params[1..], ["chanserv", "Nickname is already in use"]);
    let mut alice = user(&s, "alice", None).await;
    alice.send("NICK ChanServ").await;
    assert_eq!(alice.until_cmd("433").await.params[1], "ChanServ");
    let help = cs(&mut alice, "CS HELP").await;
    assert!(
        help.iter().any(|l| l.contains("REGISTER #channel")),
        "{help:?}"
    );
    assert_eq!(cs(&mut alice, "CHANSERV").await, help, "no command: help");

    // With registration off there is no service: the nick is free, CS unknown.
    let off = start(ServerConfig {
        channel_registration: false,
        ..chanreg_config(None)
    })
    .await;
    let mut c = user(&off, "ChanServ", None).await;
    c.send("CS HELP").await;
    assert_eq!(c.until_cmd("421").await.params[1], "CS");
}
