//! IRCv3 capability negotiation (CAP 302) and the capabilities it enables, over raw
//! sockets: message-tags and TAGMSG, server-time, msgid, echo-message, multi-prefix,
//! userhost-in-names, away-notify, extended-join, setname, and the tag size limits.

use crate::common::{config, start, tags, Raw};

/// Every capability the server offers without an account policy, in `CAP LS` order.
const OFFERED: &str = "account-notify account-tag away-notify batch cap-notify chghost \
     draft/chathistory draft/read-marker echo-message extended-join invite-notify labeled-response message-tags multi-prefix \
     server-time setname userhost-in-names";

#[tokio::test]
async fn cap_ls_302_and_plain_ls_list_every_capability() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP LS").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "LS", OFFERED]);
    c.send("CAP LIST").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "LIST", ""]);
    // 302 turns on cap-notify implicitly, and it cannot be turned off.
    c.send("cap ls 302").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "LS", OFFERED]);
    c.send("CAP LIST").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["*", "LIST", "cap-notify"]
    );
    c.send("CAP REQ :-cap-notify").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["*", "NAK", "-cap-notify"]
    );
    c.send("CAP").await;
    assert_eq!(c.expect("461").await.param(1), Some("CAP"));
    c.send("CAP FOO").await;
    assert_eq!(
        c.expect("410").await.params,
        vec!["*", "FOO", "Invalid CAP command"]
    );
}

#[tokio::test]
async fn cap_req_is_atomic_and_dash_removes() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP LS 302").await;
    c.expect("CAP").await;
    c.send("CAP REQ :multi-prefix bogus echo-message").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["*", "NAK", "multi-prefix bogus echo-message"]
    );
    c.send("CAP LIST").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["*", "LIST", "cap-notify"]
    );
    c.send("CAP REQ :multi-prefix ECHO-MESSAGE server-time")
        .await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["*", "ACK", "multi-prefix ECHO-MESSAGE server-time"]
    );
    c.send("CAP REQ :-echo-message -server-time away-notify")
        .await;
    c.expect("CAP").await;
    c.send("CAP LIST").await;
    let list = c.expect("CAP").await;
    assert_eq!(list.params[2], "away-notify cap-notify multi-prefix");
    // An empty request is refused.
    c.send("CAP REQ :").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "NAK", ""]);
}

#[tokio::test]
async fn cap_req_alone_holds_registration_until_cap_end() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP REQ :server-time").await;
    c.expect("CAP").await;
    c.send("NICK held").await;
    c.send("USER held 0 * :Held").await;
    let before = c.sync("t").await;
    assert!(before.is_empty(), "held until CAP END: {before:?}");
    c.send("CAP END").await;
    let welcome = c.expect("001").await;
    assert!(tags(&welcome).get("time").is_some(), "{welcome:?}");
}

#[tokio::test]
async fn caps_change_after_registration_without_holding() {
    let s = start(config()).await;
    let mut c = Raw::register(s.addr, "late").await;
    c.send("CAP LS 302").await;
    assert_eq!(c.expect("CAP").await.params[..2], ["late", "LS"]);
    c.send("CAP REQ server-time").await;
    assert_eq!(
        c.expect("CAP").await.params,
        vec!["late", "ACK", "server-time"]
    );
    c.send("CAP END").await;
    c.send("PING x").await;
    let pong = c.expect("PONG").await;
    assert!(tags(&pong).get("time").is_some());
}

#[tokio::test]
async fn server_time_is_iso8601_utc_with_milliseconds() {
    let s = start(config()).await;
    let mut a = Raw::register_with(s.addr, "timed", "server-time").await;
    let mut b = Raw::register(s.addr, "plain").await;
    a.send("JOIN #t").await;
    let join = a.expect("JOIN").await;
    let time = tags(&join).get("time").expect("time tag").to_owned();
    assert_eq!(time.len(), 24, "{time}");
    assert!(time.ends_with('Z'), "{time}");
    let parsed = chrono::NaiveDateTime::parse_from_str(&time, "%Y-%m-%dT%H:%M:%S%.3fZ");
    assert!(parsed.is_ok(), "{time}");
    let age = chrono::Utc::now().naive_utc() - parsed.unwrap();
    assert!(
        age.num_seconds().abs() < 3600,
        "the server's clock, in UTC: {time}"
    );
    b.send("JOIN #t").await;
    let plain_join = b.expect("JOIN").await;
    assert_eq!(plain_join.tags, None, "no tags without a capability");
    let seen = a.until_cmd("JOIN").await;
    assert_eq!(seen.prefix.as_deref(), Some("plain!plain@127.0.0.1"));
    assert!(tags(&seen).get("time").is_some());
}

#[tokio::test]
async fn client_tags_msgid_and_tagmsg_go_only_to_message_tags_clients() {
    let s = start(config()).await;
    let mut a = Raw::register_with(s.addr, "alice", "message-tags").await;
    let mut b = Raw::register_with(s.addr, "bob", "message-tags").await;
    let mut c = Raw::register(s.addr, "carol").await;
    for x in [&mut a, &mut b, &mut c] {
        x.send("JOIN #tags").await;
        x.until_cmd("366").await;
    }
    a.sync("joined").await;
    b.sync("joined").await;
    a.send("@+draft/reply=abc;+example=raw+:=,esc\\:\\s\\\\;server-only=1 PRIVMSG #tags :hi")
        .await;
    let got = b.until_cmd("PRIVMSG").await;
    let t = tags(&got);
    assert_eq!(t.get("+draft/reply"), Some("abc"));
    assert_eq!(t.get("+example"), Some("raw+:=,esc; \\"));
    assert_eq!(
        t.get("server-only"),
        None,
        "non-client tags are not relayed"
    );
    let msgid = t.get("msgid").expect("msgid").to_owned();
    assert!(!msgid.is_empty());
    let plain = c.until_cmd("PRIVMSG").await;
    assert_eq!(plain.tags, None);
    assert_eq!(plain.params, vec!["#tags", "hi"]);

    // Each message has its own id.
    a.send("PRIVMSG #tags :again").await;
    let again = b.until_cmd("PRIVMSG").await;
    assert_ne!(tags(&again).get("msgid"), Some(msgid.as_str()));

    // TAGMSG: to message-tags clients only, private or channel.
    a.send("@+typing=active TAGMSG #tags").await;
    a.send("@+typing=paused TAGMSG bob").await;
    let t1 = b.until_cmd("TAGMSG").await;
    assert_eq!(t1.params, vec!["#tags"]);
    assert_eq!(t1.prefix.as_deref(), Some("alice!alice@127.0.0.1"));
    assert_eq!(tags(&t1).get("+typing"), Some("active"));
    let t2 = b.until_cmd("TAGMSG").await;
    assert_eq!(t2.params, vec!["bob"]);
    assert_eq!(tags(&t2).get("+typing"), Some("paused"));
    let seen = c.sync("c").await;
    assert!(
        seen.iter().all(|m| m.command != "TAGMSG"),
        "no TAGMSG without message-tags: {seen:?}"
    );
    a.send("TAGMSG").await;
    a.until_cmd("411").await;
    a.send("TAGMSG nobody").await;
    a.until_cmd("401").await;

    // A client without message-tags cannot have its tags relayed.
    c.send("@+example=1 PRIVMSG #tags :untagged").await;
    let m = b.until_cmd("PRIVMSG").await;
    assert_eq!(tags(&m).get("+example"), None);
    assert!(tags(&m).get("msgid").is_some());
}

#[tokio::test]
async fn echo_message_returns_the_same_msgid() {
    let s = start(config()).await;
    let mut a = Raw::register_with(s.addr, "echo", "echo-message message-tags server-time").await;
    let mut b = Raw::register_with(s.addr, "peer", "message-tags").await;
    a.send("@+label-ish=1 PRIVMSG peer :hello").await;
    let echoed = a.until_cmd("PRIVMSG").await;
    assert_eq!(echoed.prefix.as_deref(), Some("echo!echo@127.0.0.1"));
    assert_eq!(echoed.params, vec!["peer", "hello"]);
    let got = b.until_cmd("PRIVMSG").await;
    assert_eq!(tags(&echoed).get("msgid"), tags(&got).get("msgid"));
    assert_eq!(tags(&echoed).get("+label-ish"), Some("1"));
    assert!(tags(&echoed).get("time").is_some());
    assert!(tags(&got).get("time").is_none(), "peer has no server-time");
    // NOTICE and channel messages echo too; a plain client gets no echo.
    a.send("JOIN #e").await;
    a.until_cmd("366").await;
    a.send("NOTICE #e :note").await;
    let n = a.until_cmd("NOTICE").await;
    assert_eq!(n.params, vec!["#e", "note"]);
    b.send("PRIVMSG echo :back").await;
    let seen = b.sync("no-echo").await;
    assert!(seen.iter().all(|m| m.command != "PRIVMSG"), "{seen:?}");
}

#[tokio::test]
async fn tag_size_limits_get_417_and_the_line_is_dropped() {
    let s = start(config()).await;
    let mut a = Raw::register_with(s.addr, "big", "message-tags").await;
    let mut b = Raw::register_with(s.addr, "small", "message-tags").await;
    // Exactly 4094 bytes of tag data: accepted and relayed whole.
    let value = "v".repeat(4094 - "+big=".len());
    a.send(&format!("@+big={value} PRIVMSG small :fits")).await;
    let got = b.until_cmd("PRIVMSG").await;
    assert_eq!(tags(&got).get("+big"), Some(value.as_str()));
    assert_eq!(got.params[1], "fits");
    // One byte more: 417, nothing relayed, the connection goes on.
    let value = "v".repeat(4095 - "+big=".len());
    a.send(&format!("@+big={value} PRIVMSG small :too much"))
        .await;
    assert_eq!(
        a.until_cmd("417").await.params,
        vec!["big", "Input line was too long"]
    );
    // Small tags but over 512 bytes after them: 417 as well.
    a.send(&format!("@+x=1 PRIVMSG small :{}", "y".repeat(500)))
        .await;
    a.until_cmd("417").await;
    a.send("PRIVMSG small :after").await;
    let next = b.until_cmd("PRIVMSG").await;
    assert_eq!(next.params[1], "after");
    // Far over every limit: discarded up to its end.
    a.send(&format!("@+x={} PRIVMSG small :x", "z".repeat(20_000)))
        .await;
    a.until_cmd("417").await;
    a.send("PRIVMSG small :still here").await;
    assert_eq!(b.until_cmd("PRIVMSG").await.params[1], "still here");
}

#[tokio::test]
async fn multi_prefix_and_userhost_in_names() {
    let s = start(config()).await;
    let mut op = Raw::register(s.addr, "op").await;
    op.send("JOIN #mp").await;
    op.until_cmd("366").await;
    op.send("MODE #mp +v op").await;
    op.until_cmd("MODE").await;
    let mut multi = Raw::register_with(s.addr, "multi", "multi-prefix").await;
    multi.send("JOIN #mp").await;
    let names = multi.until_cmd("353").await;
    assert_eq!(names.params[3], "@+op multi");
    multi.send("WHO #mp").await;
    let who = multi.until_cmd("352").await;
    assert_eq!(who.params[6], "H@+");
    op.send("NAMES #mp").await;
    assert_eq!(op.until_cmd("353").await.params[3], "@op multi");
    op.send("WHO #mp").await;
    assert_eq!(op.until_cmd("352").await.params[6], "H@");

    let mut uh = Raw::register_with(s.addr, "uh", "userhost-in-names multi-prefix").await;
    uh.send("JOIN #mp").await;
    let names = uh.until_cmd("353").await;
    assert_eq!(
        names.params[3],
        "@+op!op@127.0.0.1 multi!multi@127.0.0.1 uh!uh@127.0.0.1"
    );
}

#[tokio::test]
async fn away_notify_on_away_back_and_join() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    let mut b = Raw::register_with(s.addr, "bob", "away-notify").await;
    let mut c = Raw::register(s.addr, "carol").await;
    for x in [&mut a, &mut b, &mut c] {
        x.send("JOIN #away").await;
        x.until_cmd("366").await;
    }
    a.send("AWAY :lunch").await;
    a.until_cmd("306").await;
    let away = b.until_cmd("AWAY").await;
    assert_eq!(away.prefix.as_deref(), Some("alice!alice@127.0.0.1"));
    assert_eq!(away.params, vec!["lunch"]);
    a.send("AWAY").await;
    a.until_cmd("305").await;
    let back = b.until_cmd("AWAY").await;
    assert!(back.params.is_empty(), "{back}");
    let seen = c.sync("c").await;
    assert!(seen.iter().all(|m| m.command != "AWAY"), "{seen:?}");
    // An away user joining: JOIN, then AWAY for away-notify members.
    a.send("AWAY :gone").await;
    b.until_cmd("AWAY").await;
    b.send("JOIN #second").await;
    b.until_cmd("366").await;
    a.send("JOIN #second").await;
    let j = b.until_cmd("JOIN").await;
    assert_eq!(j.params, vec!["#second"]);
    let next = b.msg().await;
    assert_eq!(next.command, "AWAY");
    assert_eq!(next.params, vec!["gone"]);
}

#[tokio::test]
async fn extended_join_shows_account_and_realname() {
    let s = start(config()).await;
    let mut b = Raw::register_with(s.addr, "bob", "extended-join").await;
    b.send("JOIN #x").await;
    let own = b.expect("JOIN").await;
    assert_eq!(own.params, vec!["#x", "*", "Real bob"]);
    let mut a = Raw::register(s.addr, "alice").await;
    a.send("JOIN #x").await;
    assert_eq!(a.expect("JOIN").await.params, vec!["#x"]);
    let seen = b.until_cmd("JOIN").await;
    assert_eq!(seen.params, vec!["#x", "*", "Real alice"]);
}

#[tokio::test]
async fn setname_changes_the_realname_for_cap_holders() {
    let s = start(config()).await;
    let mut a = Raw::register_with(s.addr, "alice", "setname").await;
    let mut b = Raw::register_with(s.addr, "bob", "setname").await;
    let mut c = Raw::register(s.addr, "carol").await;
    for x in [&mut a, &mut b, &mut c] {
        x.send("JOIN #n").await;
        x.until_cmd("366").await;
    }
    a.send("SETNAME :Alice Liddell").await;
    let own = a.until_cmd("SETNAME").await;
    assert_eq!(own.params, vec!["Alice Liddell"]);
    let seen = b.until_cmd("SETNAME").await;
    assert_eq!(seen.prefix.as_deref(), Some("alice!alice@127.0.0.1"));
    assert_eq!(seen.params, vec!["Alice Liddell"]);
    let seen = c.sync("c").await;
    assert!(seen.iter().all(|m| m.command != "SETNAME"), "{seen:?}");
    c.send("WHOIS alice").await;
    assert_eq!(c.until_cmd("311").await.params[5], "Alice Liddell");
    a.send("SETNAME :").await;
    assert_eq!(
        a.until_cmd("FAIL").await.params,
        vec!["SETNAME", "INVALID_REALNAME", "Realname is not valid"]
    );
    a.send(&format!("SETNAME :{}", "r".repeat(101))).await;
    a.until_cmd("FAIL").await;
    a.send("SETNAME").await;
    a.until_cmd("461").await;
}
