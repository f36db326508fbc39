//! IRCv3 `draft/chathistory` and `draft/read-marker` over raw sockets: every
//! subcommand, the batch with the original `time` and `msgid`, who may read what, the
//! standard-reply errors, labeled responses, and history and markers kept in SQLite
//! across a restart.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_trait::async_trait;
use sockit_chat::irc::{AuthVerdict, HistoryConfig, IrcAuth, Message, ServerConfig};

use crate::common::{config, start, tags, Raw};

const CAPS: &str = "batch draft/chathistory message-tags server-time";

/// Reads one `chathistory` (or other) batch: returns its type and parameters and the
/// messages inside, checking each carries the batch id.
async fn read_batch(c: &mut Raw) -> (Vec<String>, Vec<Message>) {
    let open = c.expect("BATCH").await;
    let id = open.params[0].strip_prefix('+').expect("+id").to_owned();
    let mut inside = Vec::new();
    for _ in 0..1000 {
        let m = c.msg().await;
        if m.command == "BATCH" {
            assert_eq!(m.params, vec![format!("-{id}")]);
            return (open.params[1..].to_vec(), inside);
        }
        assert_eq!(tags(&m).get("batch"), Some(id.as_str()), "{m}");
        inside.push(m);
    }
    panic!("batch {id} not closed");
}

fn texts(ms: &[Message]) -> Vec<&str> {
    ms.iter().map(|m| m.params[1].as_str()).collect()
}

/// `bob` says `m1`…`m5` on `#h`; returns what `alice` got live.
async fn five_messages(alice: &mut Raw, bob: &mut Raw) -> Vec<Message> {
    alice.send("JOIN #h").await;
    alice.until_cmd("366").await;
    bob.send("JOIN #h").await;
    bob.until_cmd("366").await;
    let mut live = Vec::new();
    for i in 1..=5 {
        bob.send(&format!("@+draft/reply=x PRIVMSG #h :m{i}")).await;
        live.push(alice.until_cmd("PRIVMSG").await);
    }
    // A STATUSMSG and a TAGMSG are not kept.
    bob.send("PRIVMSG @#h :ops only").await;
    bob.send("TAGMSG #h").await;
    bob.sync("s").await;
    // alice (the channel's operator) got both live.
    let rest = alice.sync("a").await;
    assert_eq!(rest.len(), 2, "{rest:?}");
    live
}

#[tokio::test]
async fn offered_with_isupport_tokens() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP LS 302").await;
    let ls = c.expect("CAP").await;
    let caps: Vec<&str> = ls.params[2].split(' ').collect();
    assert!(caps.contains(&"draft/chathistory"), "{ls}");
    assert!(caps.contains(&"draft/read-marker"), "{ls}");
    c.send("NICK t").await;
    c.send("USER t 0 * :T").await;
    c.send("CAP END").await;
    let mut tokens = Vec::new();
    loop {
        let m = c.msg().await;
        if m.command == "005" {
            tokens.extend(m.params[1..m.params.len() - 1].iter().cloned());
        }
        if m.command == "376" {
            break;
        }
    }
    assert!(tokens.contains(&"CHATHISTORY=100".to_owned()), "{tokens:?}");
    assert!(
        tokens.contains(&"MSGREFTYPES=timestamp,msgid".to_owned()),
        "{tokens:?}"
    );
}

#[tokio::test]
async fn every_subcommand_on_a_channel_with_original_tags() {
    let s = start(config()).await;
    let mut alice = Raw::register_with(s.addr, "alice", CAPS).await;
    let mut bob = Raw::register_with(s.addr, "bob", "message-tags").await;
    let live = five_messages(&mut alice, &mut bob).await;
    let id = |i: usize| tags(&live[i - 1]).get("msgid").unwrap().to_owned();
    let time = |i: usize| tags(&live[i - 1]).get("time").unwrap().to_owned();

    alice.send("CHATHISTORY LATEST #h * 10").await;
    let (head, got) = read_batch(&mut alice).await;
    assert_eq!(head, ["chathistory", "#h"]);
    assert_eq!(texts(&got), ["m1", "m2", "m3", "m4", "m5"]);
    for (g, l) in got.iter().zip(&live) {
        assert_eq!(g.prefix, l.prefix);
        assert_eq!(g.params, l.params);
        let (gt, lt) = (tags(g), tags(l));
        assert_eq!(gt.get("msgid"), lt.get("msgid"));
        assert_eq!(gt.get("time"), lt.get("time"), "the original time");
        assert_eq!(gt.get("+draft/reply"), Some("x"), "client tags kept");
    }

    // Timestamps are exclusive; messages may share a millisecond.
    let before_t2: Vec<&str> = (1..=5)
        .filter(|i| time(*i) < time(2))
        .map(|i| ["m1", "m2", "m3", "m4", "m5"][i - 1])
        .collect();
    let after_t4: Vec<&str> = (1..=5)
        .filter(|i| time(*i) > time(4))
        .map(|i| ["m1", "m2", "m3", "m4", "m5"][i - 1])
        .collect();
    let cases: Vec<(String, Vec<&str>)> = vec![
        ("LATEST #h * 2".into(), vec!["m4", "m5"]),
        (format!("LATEST #h msgid={} 10", id(3)), vec!["m4", "m5"]),
        (format!("BEFORE #h msgid={} 2", id(4)), vec!["m2", "m3"]),
        (format!("BEFORE #h timestamp={} 10", time(2)), before_t2),
        (format!("AFTER #h msgid={} 2", id(1)), vec!["m2", "m3"]),
        (format!("AFTER #h timestamp={} 10", time(4)), after_t4),
        (
            format!("AROUND #h msgid={} 3", id(3)),
            vec!["m2", "m3", "m4"],
        ),
        (
            format!("BETWEEN #h msgid={} msgid={} 10", id(1), id(5)),
            vec!["m2", "m3", "m4"],
        ),
        (
            format!("BETWEEN #h msgid={} msgid={} 2", id(5), id(1)),
            vec!["m3", "m4"],
        ),
        ("LATEST #H * 1".into(), vec!["m5"]),
        ("AFTER #h msgid=unknown 10".into(), vec![]),
    ];
    for (cmd, want) in cases {
        alice.send(&format!("CHATHISTORY {cmd}")).await;
        let (_, got) = read_batch(&mut alice).await;
        assert_eq!(texts(&got), want, "{cmd}");
    }
    // The limit is lowered to CHATHISTORY=100.
    alice.send("CHATHISTORY LATEST #h * 100000").await;
    assert_eq!(read_batch(&mut alice).await.1.len(), 5);
}

#[tokio::test]
async fn errors_are_standard_replies() {
    let s = start(config()).await;
    let mut alice = Raw::register_with(s.addr, "alice", CAPS).await;
    let mut bob = Raw::register(s.addr, "bob").await;
    bob.send("JOIN #secret").await;
    bob.until_cmd("366").await;
    bob.send("PRIVMSG #secret :hidden").await;
    bob.sync("s").await;
    let fail = |m: &Message| m.params[..m.params.len() - 1].to_vec();
    let cases = [
        ("CHATHISTORY", vec!["CHATHISTORY", "NEED_MORE_PARAMS"]),
        (
            "CHATHISTORY LATEST #h",
            vec!["CHATHISTORY", "NEED_MORE_PARAMS", "LATEST"],
        ),
        (
            "CHATHISTORY BETWEEN #h * 5",
            vec!["CHATHISTORY", "NEED_MORE_PARAMS", "BETWEEN"],
        ),
        (
            "CHATHISTORY SEARCH #h * 5",
            vec!["CHATHISTORY", "UNKNOWN_COMMAND", "SEARCH"],
        ),
        (
            "CHATHISTORY LATEST #secret * 5",
            vec!["CHATHISTORY", "INVALID_TARGET", "LATEST", "#secret"],
        ),
        (
            "CHATHISTORY LATEST #nowhere * 5",
            vec!["CHATHISTORY", "INVALID_TARGET", "LATEST", "#nowhere"],
        ),
        (
            "CHATHISTORY LATEST bad,nick * 5",
            vec!["CHATHISTORY", "INVALID_TARGET", "LATEST", "bad,nick"],
        ),
        (
            "CHATHISTORY LATEST #secret * 0",
            vec!["CHATHISTORY", "INVALID_PARAMS", "LATEST"],
        ),
        (
            "CHATHISTORY BEFORE #secret * 5",
            vec!["CHATHISTORY", "INVALID_PARAMS", "BEFORE"],
        ),
        (
            "CHATHISTORY AFTER #secret timestamp=yesterday 5",
            vec!["CHATHISTORY", "INVALID_PARAMS", "AFTER"],
        ),
        (
            "CHATHISTORY TARGETS msgid=a timestamp=2020-01-01T00:00:00.000Z 5",
            vec!["CHATHISTORY", "INVALID_PARAMS", "TARGETS"],
        ),
    ];
    for (cmd, want) in cases {
        alice.send(cmd).await;
        let m = alice.expect("FAIL").await;
        assert_eq!(fail(&m), want, "{cmd}");
    }
    // A member reads the channel's history, from before it joined too (as Ergo does).
    alice.send("JOIN #secret").await;
    alice.until_cmd("366").await;
    alice.send("CHATHISTORY LATEST #secret * 5").await;
    assert_eq!(texts(&read_batch(&mut alice).await.1), ["hidden"]);
}

#[tokio::test]
async fn private_history_is_the_conversation_and_targets_list_both() {
    let s = start(config()).await;
    let mut alice = Raw::register_with(s.addr, "alice", CAPS).await;
    let mut bob = Raw::register_with(s.addr, "bob", CAPS).await;
    let mut carol = Raw::register_with(s.addr, "carol", CAPS).await;
    alice.send("JOIN #t").await;
    alice.until_cmd("366").await;
    alice.send("PRIVMSG #t :channel line").await;
    alice.send("PRIVMSG bob :hi bob").await;
    bob.until_cmd("PRIVMSG").await;
    bob.send("NOTICE alice :hi alice").await;
    alice.until_cmd("NOTICE").await;
    carol.send("PRIVMSG alice :from carol").await;
    alice.until_cmd("PRIVMSG").await;

    alice.send("CHATHISTORY LATEST BOB * 10").await;
    let (head, got) = read_batch(&mut alice).await;
    assert_eq!(head, ["chathistory", "BOB"]);
    assert_eq!(texts(&got), ["hi bob", "hi alice"]);
    assert_eq!(got[1].command, "NOTICE");
    assert!(got[0].prefix.as_deref().unwrap().starts_with("alice!"));

    bob.send("CHATHISTORY LATEST alice * 10").await;
    assert_eq!(texts(&read_batch(&mut bob).await.1), ["hi bob", "hi alice"]);
    // carol sees only her own conversation with alice; none with bob.
    carol.send("CHATHISTORY LATEST alice * 10").await;
    assert_eq!(texts(&read_batch(&mut carol).await.1), ["from carol"]);
    carol.send("CHATHISTORY LATEST bob * 10").await;
    assert!(read_batch(&mut carol).await.1.is_empty());

    alice
        .send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10")
        .await;
    let (head, got) = read_batch(&mut alice).await;
    assert_eq!(head, ["draft/chathistory-targets"]);
    let names: Vec<&str> = got
        .iter()
        .map(|m| {
            assert_eq!(m.command, "CHATHISTORY");
            assert_eq!(m.params[0], "TARGETS");
            assert!(m.params[2].ends_with('Z'), "{m}");
            m.params[1].as_str()
        })
        .collect();
    assert_eq!(names, ["#t", "bob", "carol"], "oldest latest message first");
    alice
        .send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 1")
        .await;
    assert_eq!(read_batch(&mut alice).await.1.len(), 1);
}

#[tokio::test]
async fn labeled_and_without_batch() {
    let s = start(config()).await;
    let mut alice = Raw::register_with(
        s.addr,
        "alice",
        "batch draft/chathistory labeled-response message-tags",
    )
    .await;
    let mut plain = Raw::register(s.addr, "plain").await;
    alice.send("JOIN #l").await;
    alice.until_cmd("366").await;
    plain.send("JOIN #l").await;
    plain.until_cmd("366").await;
    alice.send("PRIVMSG #l :one").await;
    alice.send("PRIVMSG #l :two").await;
    plain
        .until(|m| m.params.get(1).map(String::as_str) == Some("two"))
        .await;
    alice.sync("a").await;

    // The label goes on the chathistory batch itself.
    alice.send("@label=h1 CHATHISTORY LATEST #l * 5").await;
    let open = alice.expect("BATCH").await;
    assert_eq!(tags(&open).get("label"), Some("h1"));
    assert_eq!(open.params[1], "chathistory");
    let id = open.params[0].trim_start_matches('+').to_owned();
    for want in ["one", "two"] {
        let m = alice.expect("PRIVMSG").await;
        assert_eq!(m.params[1], want);
        assert_eq!(tags(&m).get("batch"), Some(id.as_str()));
    }
    assert_eq!(alice.expect("BATCH").await.params, [format!("-{id}")]);
    alice.send("@label=h2 CHATHISTORY LATEST #nope * 5").await;
    let fail = alice.expect("FAIL").await;
    assert_eq!(tags(&fail).get("label"), Some("h2"));

    // A client without batch gets the messages alone, without tags.
    plain.send("CHATHISTORY LATEST #l * 5").await;
    for want in ["one", "two"] {
        let m = plain.expect("PRIVMSG").await;
        assert_eq!(m.params[1], want);
        assert!(m.tags.is_none(), "{m}");
    }
    plain.sync("p").await;
}

/// Accounts `alice` and `bob` (password `pw`), logins required.
#[derive(Debug)]
struct TwoAccounts;

#[async_trait]
impl IrcAuth for TwoAccounts {
    fn required(&self) -> bool {
        true
    }

    async fn verify(&self, account: &str, password: &str, _ip: IpAddr) -> AuthVerdict {
        if matches!(account, "alice" | "bob") && password == "pw" {
            AuthVerdict::Ok
        } else {
            AuthVerdict::Bad
        }
    }
}

/// Logs in to `account` with PASS, registers as `nick` with `caps`.
async fn login(addr: SocketAddr, account: &str, nick: &str, caps: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send(&format!("PASS {account}:pw")).await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect("CAP").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :R")).await;
    c.send("CAP END").await;
    c.until_cmd("376").await;
    c
}

fn history_config(dir: &std::path::Path) -> ServerConfig {
    ServerConfig {
        auth: Some(Arc::new(TwoAccounts)),
        history: Some(HistoryConfig {
            path: dir.join("chat-history.sqlite"),
            max_days: 30,
            max_messages: 1000,
        }),
        ..config()
    }
}

#[tokio::test]
async fn markread_get_set_forward_only_and_shared_by_sessions() {
    let s = start(config()).await;
    let caps = "draft/read-marker";
    let mut c = Raw::register_with(s.addr, "reader", caps).await;
    c.send("MARKREAD #r").await;
    assert_eq!(c.expect("MARKREAD").await.params, ["#r", "*"]);
    c.send("MARKREAD #r timestamp=2024-01-02T03:04:05.678Z")
        .await;
    assert_eq!(
        c.expect("MARKREAD").await.params,
        ["#r", "timestamp=2024-01-02T03:04:05.678Z"]
    );
    c.send("MARKREAD #r timestamp=2023-01-01T00:00:00.000Z")
        .await;
    assert_eq!(
        c.expect("MARKREAD").await.params,
        ["#r", "timestamp=2024-01-02T03:04:05.678Z"],
        "markers only move forward"
    );
    // JOIN: after the topic, before the end of NAMES.
    c.send("JOIN #R").await;
    let mut seen = Vec::new();
    loop {
        let m = c.msg().await;
        let done = m.command == "366";
        seen.push(m);
        if done {
            break;
        }
    }
    let mr = seen
        .iter()
        .find(|m| m.command == "MARKREAD")
        .expect("MARKREAD on join");
    assert_eq!(mr.params, ["#R", "timestamp=2024-01-02T03:04:05.678Z"]);
    let fail = |m: Message| m.params[..m.params.len() - 1].to_vec();
    c.send("MARKREAD").await;
    assert_eq!(
        fail(c.expect("FAIL").await),
        ["MARKREAD", "NEED_MORE_PARAMS"]
    );
    c.send("MARKREAD #r soon").await;
    assert_eq!(
        fail(c.expect("FAIL").await),
        ["MARKREAD", "INVALID_PARAMS", "soon"]
    );
    c.send("MARKREAD bad,target").await;
    assert_eq!(
        fail(c.expect("FAIL").await),
        ["MARKREAD", "INVALID_PARAMS", "bad,target"]
    );

    // A connection not logged in keeps its markers to itself.
    let mut other = Raw::register_with(s.addr, "other", caps).await;
    other.send("MARKREAD #r").await;
    assert_eq!(other.expect("MARKREAD").await.params, ["#r", "*"]);

    // An account's sessions share markers and hear of each other's updates.
    let dir = tempfile::tempdir().unwrap();
    let s = start(history_config(dir.path())).await;
    let mut one = login(s.addr, "alice", "one", caps).await;
    let mut two = login(s.addr, "alice", "two", caps).await;
    one.send("MARKREAD bob timestamp=2024-05-05T05:05:05.555Z")
        .await;
    let want = ["bob", "timestamp=2024-05-05T05:05:05.555Z"];
    assert_eq!(one.expect("MARKREAD").await.params, want);
    assert_eq!(two.expect("MARKREAD").await.params, want);
    two.send("MARKREAD BOB").await;
    assert_eq!(
        two.expect("MARKREAD").await.params,
        ["BOB", "timestamp=2024-05-05T05:05:05.555Z"]
    );
}

#[tokio::test]
async fn history_and_markers_survive_a_restart_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = start(history_config(dir.path())).await;
        let mut alice = login(s.addr, "alice", "alice", CAPS).await;
        let mut bob = login(s.addr, "bob", "bob", CAPS).await;
        alice.send("JOIN #keep").await;
        alice.until_cmd("366").await;
        alice.send("PRIVMSG #keep :kept").await;
        alice.send("PRIVMSG bob :private").await;
        bob.until_cmd("PRIVMSG").await;
        alice
            .send("MARKREAD #keep timestamp=2024-05-05T05:05:05.555Z")
            .await;
        alice.expect("MARKREAD").await;
        s.server.history().flush().await;
    }
    let s = start(history_config(dir.path())).await;
    // A new connection of bob's account, under another nick, reads its conversation.
    let mut bob = login(
        s.addr,
        "bob",
        "robert",
        &format!("{CAPS} draft/read-marker"),
    )
    .await;
    bob.send("CHATHISTORY LATEST alice * 10").await;
    assert_eq!(texts(&read_batch(&mut bob).await.1), ["private"]);
    let mut alice = login(
        s.addr,
        "alice",
        "alice",
        &format!("{CAPS} draft/read-marker"),
    )
    .await;
    alice.send("JOIN #keep").await;
    let mr = alice.until_cmd("MARKREAD").await;
    assert_eq!(mr.params, ["#keep", "timestamp=2024-05-05T05:05:05.555Z"]);
    alice.until_cmd("366").await;
    alice.send("CHATHISTORY LATEST #keep * 10").await;
    let (_, got) = read_batch(&mut alice).await;
    assert_eq!(texts(&got), ["kept"]);
    assert!(tags(&got[0]).get("msgid").is_some());
    assert_eq!(s.server.history().dropped(), 0);
}
