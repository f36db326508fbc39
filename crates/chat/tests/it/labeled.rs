//! IRCv3 labeled-response and batch over raw sockets: the label on a one-line response,
//! `ACK` for none, a `labeled-response` batch for several lines.

use crate::common::{config, start, tags, Raw};

#[tokio::test]
async fn label_on_one_line_ack_for_none_batch_for_many() {
    let s = start(config()).await;
    let mut c = Raw::register_with(s.addr, "lab", "batch labeled-response message-tags").await;
    let mut other = Raw::register(s.addr, "other").await;

    c.send("@label=one PING tok").await;
    let m = c.expect("PONG").await;
    assert_eq!(tags(&m).get("label"), Some("one"));

    c.send("@label=none PRIVMSG other :hi").await;
    let ack = c.expect("ACK").await;
    assert_eq!(ack.prefix.as_deref(), Some("irc.test"));
    assert_eq!(tags(&ack).get("label"), Some("none"));
    assert!(ack.params.is_empty());
    other.expect("PRIVMSG").await;

    c.send("@label=w;+x=y WHOIS other").await;
    let start = c.expect("BATCH").await;
    assert_eq!(tags(&start).get("label"), Some("w"));
    let id = start.params[0].strip_prefix('+').expect("+id").to_owned();
    assert_eq!(start.params[1], "labeled-response");
    let mut inside = Vec::new();
    loop {
        let m = c.msg().await;
        if m.command == "BATCH" {
            assert_eq!(m.params, vec![format!("-{id}")]);
            break;
        }
        assert_eq!(tags(&m).get("batch"), Some(id.as_str()), "{m}");
        assert_eq!(tags(&m).get("label"), None, "{m}");
        inside.push(m.command);
    }
    assert_eq!(inside.first().map(String::as_str), Some("311"));
    assert_eq!(inside.last().map(String::as_str), Some("318"));

    // A label with spaces and semicolons comes back as sent.
    c.send("@label=a\\sb\\:c PING t").await;
    assert_eq!(tags(&c.expect("PONG").await).get("label"), Some("a b;c"));
    // Unlabeled commands are answered plainly.
    c.send("PING plain").await;
    assert!(c.expect("PONG").await.tags.is_none());
}

#[tokio::test]
async fn echo_is_the_labeled_response_and_time_is_kept() {
    let s = start(config()).await;
    let mut c = Raw::register_with(
        s.addr,
        "echo",
        "batch echo-message labeled-response message-tags server-time",
    )
    .await;
    let _other = Raw::register(s.addr, "other").await;
    c.send("@label=e1 PRIVMSG other :hello").await;
    let m = c.expect("PRIVMSG").await;
    let t = tags(&m);
    assert_eq!(t.get("label"), Some("e1"));
    assert!(t.get("msgid").is_some() && t.get("time").is_some(), "{m}");
    c.send("@label=n NAMES #none").await;
    assert_eq!(tags(&c.expect("366").await).get("label"), Some("n"));
}

#[tokio::test]
async fn without_the_capability_labels_are_ignored() {
    let s = start(config()).await;
    let mut c = Raw::register_with(s.addr, "nolab", "message-tags").await;
    c.send("@label=x PING t").await;
    assert!(c.expect("PONG").await.tags.is_none());
    // Without batch, a multi-line response is sent unlabeled.
    let mut d = Raw::register_with(s.addr, "nobatch", "labeled-response").await;
    d.send("@label=y WHOIS nolab").await;
    let m = d.expect("311").await;
    assert!(m.tags.is_none(), "{m}");
    d.until_cmd("318").await;
    d.send("@label=z PING t").await;
    assert_eq!(tags(&d.expect("PONG").await).get("label"), Some("z"));
}

#[tokio::test]
async fn a_message_to_oneself_is_not_the_response() {
    let s = start(config()).await;
    let mut c = Raw::register_with(s.addr, "me", "batch labeled-response message-tags").await;
    c.send("@label=self PRIVMSG me :note").await;
    let got = [c.msg().await, c.msg().await];
    let delivered = got
        .iter()
        .find(|m| m.command == "PRIVMSG")
        .expect("delivered");
    assert_eq!(tags(delivered).get("label"), None, "{delivered}");
    let ack = got.iter().find(|m| m.command == "ACK").expect("ACK");
    assert_eq!(tags(ack).get("label"), Some("self"));
    // With echo-message the echo is the response and carries the label.
    let mut e = Raw::register_with(
        s.addr,
        "echoer",
        "batch echo-message labeled-response message-tags",
    )
    .await;
    e.send("@label=x PRIVMSG echoer :note").await;
    let got = [e.msg().await, e.msg().await];
    let labeled: Vec<_> = got
        .iter()
        .filter(|m| tags(m).get("label").is_some())
        .collect();
    assert_eq!(labeled.len(), 1, "{got:?}");
    assert_eq!(labeled[0].command, "PRIVMSG");
}
