//! WHOX (354), WHOWAS (314/312/369, 406), INFO (371/374), ADMIN (256–259) and LIST with
//! ELIST filters, over raw sockets.

use crate::common::{config, start, Raw};

#[tokio::test]
async fn whox_fields_in_order_with_token() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    a.send("JOIN #w").await;
    a.until_cmd("366").await;
    let mut b = Raw::register(s.addr, "bob").await;
    b.send("AWAY :gone").await;
    b.expect("306").await;
    b.send("JOIN #w").await;
    b.until_cmd("366").await;
    a.until_cmd("JOIN").await;
    a.send("WHO #w %tcuihsnfdlaor,42").await;
    let r = a.expect("354").await;
    assert_eq!(r.params.len(), 14, "{r}");
    assert_eq!(
        r.params[..10],
        [
            "alice",
            "42",
            "#w",
            "alice",
            "127.0.0.1",
            "127.0.0.1",
            "irc.test",
            "alice",
            "H@",
            "0"
        ]
    );
    assert!(r.params[10].parse::<u64>().is_ok(), "idle seconds: {r}");
    assert_eq!(r.params[11..], ["0", "n/a", "Real alice"]);
    let r = a.expect("354").await;
    assert_eq!(r.param(7), Some("bob"));
    assert_eq!(r.param(8), Some("G"));
    assert_eq!(a.expect("315").await.param(1), Some("#w"));
    // A subset, any order asked: the reply keeps the fixed order; no token without t.
    a.send("WHO bob %nuf").await;
    assert_eq!(
        a.expect("354").await.params,
        vec!["alice", "bob", "bob", "G"]
    );
    a.expect("315").await;
    a.send("WHO alice %tn").await;
    assert_eq!(a.expect("354").await.params, vec!["alice", "0", "alice"]);
    a.expect("315").await;
    // `o` with WHOX: operators only (none here).
    a.send("WHO * o%n").await;
    a.expect("315").await;
}

#[tokio::test]
async fn whowas_history_per_nick() {
    let s = start(config()).await;
    let mut q = Raw::register(s.addr, "asker").await;
    q.send("WHOWAS ghost").await;
    assert_eq!(
        q.expect("406").await.params,
        vec!["asker", "ghost", "There was no such nickname"]
    );
    assert_eq!(
        q.expect("369").await.params,
        vec!["asker", "ghost", "End of WHOWAS"]
    );
    q.send("WHOWAS").await;
    q.expect("431").await;
    // Two users had the nick: a nick change and a quit.
    let mut first = Raw::register(s.addr, "ghost").await;
    first.send("NICK first").await;
    first.expect("NICK").await;
    let mut second = Raw::register(s.addr, "ghost").await;
    second.send("QUIT :bye").await;
    second.until_closed().await;
    q.send("WHOWAS GHOST").await;
    let newest = q.expect("314").await;
    assert_eq!(
        newest.params,
        vec!["asker", "ghost", "ghost", "127.0.0.1", "*", "Real ghost"]
    );
    assert_eq!(q.expect("312").await.param(2), Some("irc.test"));
    q.expect("314").await;
    q.expect("312").await;
    assert_eq!(q.expect("369").await.param(1), Some("GHOST"));
    q.send("WHOWAS ghost 1").await;
    q.expect("314").await;
    q.expect("312").await;
    q.expect("369").await;
    drop(first);
}

#[tokio::test]
async fn info_and_admin() {
    let s = start(config()).await;
    let mut c = Raw::register(s.addr, "c").await;
    c.send("INFO").await;
    let first = c.expect("371").await;
    assert!(first.params[1].starts_with("sockit-"), "{first}");
    let end = c.until_cmd("374").await;
    assert_eq!(end.params, vec!["c", "End of INFO list"]);
    c.send("INFO other.server").await;
    c.expect("402").await;
    c.send("ADMIN").await;
    assert_eq!(
        c.expect("256").await.params,
        vec!["c", "irc.test", "Administrative info"]
    );
    c.expect("257").await;
    c.expect("258").await;
    c.expect("259").await;
    c.send("ADMIN irc.test").await;
    c.expect("256").await;
    c.until_cmd("259").await;
    c.send("ADMIN nowhere.example").await;
    c.expect("402").await;
}

async fn listed(c: &mut Raw, query: &str) -> Vec<String> {
    c.send(query).await;
    c.expect("321").await;
    let mut out = Vec::new();
    loop {
        let m = c.msg().await;
        match m.command.as_str() {
            "322" => out.push(m.params[1].clone()),
            "323" => return out,
            _ => panic!("unexpected {m}"),
        }
    }
}

#[tokio::test]
async fn list_with_elist_filters() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "a").await;
    let mut b = Raw::register(s.addr, "b").await;
    for ch in ["#alpha", "#beta", "#big"] {
        a.send(&format!("JOIN {ch}")).await;
        a.until_cmd("366").await;
    }
    b.send("JOIN #big").await;
    b.until_cmd("366").await;
    a.send("TOPIC #beta :hello").await;
    a.until_cmd("TOPIC").await;
    assert_eq!(listed(&mut a, "LIST").await, ["#alpha", "#beta", "#big"]);
    assert_eq!(listed(&mut a, "LIST >1").await, ["#big"]);
    assert_eq!(listed(&mut a, "LIST <2").await, ["#alpha", "#beta"]);
    assert_eq!(listed(&mut a, "LIST #b*").await, ["#beta", "#big"]);
    assert_eq!(listed(&mut a, "LIST !#b*").await, ["#alpha"]);
    assert_eq!(listed(&mut a, "LIST #B*,<2").await, ["#beta"]);
    assert_eq!(listed(&mut a, "LIST #alpha,#big").await, ["#alpha", "#big"]);
    assert_eq!(
        listed(&mut a, "LIST C<60").await,
        ["#alpha", "#beta", "#big"]
    );
    assert!(listed(&mut a, "LIST C>60").await.is_empty());
    assert_eq!(listed(&mut a, "LIST T<60").await, ["#beta"]);
    assert!(listed(&mut a, "LIST T>60").await.is_empty());
    assert_eq!(listed(&mut a, "LIST >x,#alpha").await, ["#alpha"]);
}
