//! Channel modes (+k +l +i +m +s +b, +o +v), INVITE, MODE queries, STATUSMSG, and the
//! queries WHO (flags, masks), LUSERS, TIME and USERHOST, over raw sockets.

use crate::common::{config, start, Raw};

/// `op` creates `chan` (and is its operator); returns after the 366.
async fn creator(addr: std::net::SocketAddr, nick: &str, chan: &str) -> Raw {
    let mut c = Raw::register(addr, nick).await;
    c.send(&format!("JOIN {chan}")).await;
    c.until_cmd("366").await;
    c
}

#[tokio::test]
async fn key_and_limit_with_mode_queries() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#k").await;
    op.send("MODE #k +kl sesame 2").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(m.params, vec!["#k", "+kl", "sesame", "2"]);
    op.send("MODE #k").await;
    assert_eq!(
        op.until_cmd("324").await.params,
        vec!["op", "#k", "+klnt", "sesame", "2"]
    );
    let created = op.until_cmd("329").await;
    assert!(created.params[2].parse::<i64>().unwrap() > 1_600_000_000);

    let mut out = Raw::register(s.addr, "out").await;
    out.send("MODE #k").await;
    assert_eq!(
        out.until_cmd("324").await.params,
        vec!["out", "#k", "+klnt", "*", "2"],
        "the key is hidden from non-members"
    );
    out.send("JOIN #k").await;
    assert_eq!(
        out.until_cmd("475").await.params,
        vec!["out", "#k", "Cannot join channel (+k)"]
    );
    out.send("JOIN #k wrong").await;
    out.until_cmd("475").await;
    out.send("JOIN #other,#k x,sesame").await;
    out.until(|m| m.command == "JOIN" && m.param(0) == Some("#k"))
        .await;
    let mut third = Raw::register(s.addr, "third").await;
    third.send("JOIN #k sesame").await;
    assert_eq!(
        third.until_cmd("471").await.params,
        vec!["third", "#k", "Cannot join channel (+l)"]
    );
    op.send("MODE #k +l nope").await;
    assert_eq!(op.until_cmd("696").await.params[1..4], ["#k", "l", "nope"]);
    op.send("MODE #k +k a,b").await;
    op.until_cmd("525").await;
    op.send("MODE #k -lk sesame").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(m.params, vec!["#k", "-lk", "*"]);
    third.send("JOIN #k").await;
    third.until_cmd("366").await;
    // Not an operator: 482, nothing changes.
    third.send("MODE #k +k x").await;
    third.until_cmd("482").await;
    third.send("MODE #k").await;
    assert_eq!(third.until_cmd("324").await.params[2], "+nt");
}

#[tokio::test]
async fn invite_only_and_invite() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#inv").await;
    let mut member = Raw::register_with(s.addr, "member", "invite-notify").await;
    member.send("JOIN #inv").await;
    member.until_cmd("366").await;
    op.send("MODE #inv +i").await;
    op.until_cmd("MODE").await;
    let mut guest = Raw::register(s.addr, "guest").await;
    guest.send("JOIN #inv").await;
    assert_eq!(
        guest.until_cmd("473").await.params,
        vec!["guest", "#inv", "Cannot join channel (+i)"]
    );
    // Errors.
    member.send("INVITE guest #inv").await;
    member.until_cmd("482").await;
    guest.send("INVITE op #inv").await;
    guest.until_cmd("442").await;
    op.send("INVITE nobody #inv").await;
    op.until_cmd("401").await;
    op.send("INVITE guest #nowhere").await;
    op.until_cmd("403").await;
    op.send("INVITE member #inv").await;
    assert_eq!(
        op.until_cmd("443").await.params,
        vec!["op", "member", "#inv", "is already on channel"]
    );
    op.send("INVITE guest").await;
    op.until_cmd("461").await;
    // The invitation: 341, INVITE to the guest and to invite-notify members.
    op.send("INVITE guest #inv").await;
    assert_eq!(
        op.until_cmd("341").await.params,
        vec!["op", "guest", "#inv"]
    );
    let inv = guest.until_cmd("INVITE").await;
    assert_eq!(inv.prefix.as_deref(), Some("op!op@127.0.0.1"));
    assert_eq!(inv.params, vec!["guest", "#inv"]);
    guest.send("INVITE").await;
    assert_eq!(guest.expect("336").await.params, vec!["guest", "#inv"]);
    guest.expect("337").await;
    let notified = member.until_cmd("INVITE").await;
    assert_eq!(notified.params, vec!["guest", "#inv"]);
    guest.send("JOIN #inv").await;
    guest.until_cmd("366").await;
    // The invitation is used up.
    guest.send("PART #inv").await;
    guest.send("JOIN #inv").await;
    guest.until_cmd("473").await;
}

#[tokio::test]
async fn moderated_and_statusmsg() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#m").await;
    let mut v = Raw::register(s.addr, "voiced").await;
    let mut q = Raw::register(s.addr, "quiet").await;
    for c in [&mut v, &mut q] {
        c.send("JOIN #m").await;
        c.until_cmd("366").await;
    }
    op.send("MODE #m +mv voiced").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(m.params, vec!["#m", "+mv", "voiced"]);
    q.send("PRIVMSG #m :can I talk").await;
    assert_eq!(
        q.until_cmd("404").await.params,
        vec!["quiet", "#m", "Cannot send to channel"]
    );
    v.send("PRIVMSG #m :I can").await;
    assert_eq!(q.until_cmd("PRIVMSG").await.params[1], "I can");
    op.send("PRIVMSG #m :so can I").await;
    assert_eq!(q.until_cmd("PRIVMSG").await.params[1], "so can I");
    // STATUSMSG: @#m reaches operators only, +#m voiced and operators.
    q.send("MODE #m -m").await;
    q.until_cmd("482").await;
    op.send("MODE #m -m").await;
    op.until_cmd("MODE").await;
    q.send("PRIVMSG @#m :to ops").await;
    q.send("PRIVMSG +#m :to voices").await;
    let got = op
        .until(|m| m.command == "PRIVMSG" && m.param(0) == Some("@#m"))
        .await;
    assert_eq!(got.params, vec!["@#m", "to ops"]);
    let got = op.until_cmd("PRIVMSG").await;
    assert_eq!(got.params, vec!["+#m", "to voices"]);
    let privs: Vec<Vec<String>> = v
        .sync("v")
        .await
        .into_iter()
        .filter(|m| m.command == "PRIVMSG")
        .map(|m| m.params)
        .collect();
    assert_eq!(
        privs,
        vec![vec!["#m", "so can I"], vec!["+#m", "to voices"]]
    );
}

#[tokio::test]
async fn secret_channels_hide_from_outsiders() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#hidden").await;
    op.send("JOIN #shown").await;
    op.until_cmd("366").await;
    op.send("MODE #hidden +s").await;
    op.until_cmd("MODE").await;
    let mut out = Raw::register(s.addr, "out").await;
    out.send("LIST").await;
    let mut listed = Vec::new();
    loop {
        let m = out.msg().await;
        match m.command.as_str() {
            "322" => listed.push(m.params[1].clone()),
            "323" => break,
            _ => {}
        }
    }
    assert_eq!(listed, vec!["#shown"]);
    out.send("NAMES #hidden").await;
    assert_eq!(out.expect("366").await.params[1], "#hidden");
    out.send("WHOIS op").await;
    assert_eq!(out.until_cmd("319").await.params[2], "@#shown");
    out.until_cmd("318").await;
    out.send("WHO #hidden").await;
    assert_eq!(out.expect("315").await.params[1], "#hidden");
    op.send("NAMES #hidden").await;
    assert_eq!(
        op.until_cmd("353").await.params,
        vec!["op", "@", "#hidden", "@op"]
    );
    op.send("MODE #hidden").await;
    assert_eq!(op.until_cmd("324").await.params[2], "+nst");
}

#[tokio::test]
async fn bans_with_list_queries_and_mask_matching() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "op", "#b").await;
    let mut bob = Raw::register(s.addr, "bob").await;
    bob.send("JOIN #b").await;
    bob.until_cmd("366").await;
    op.send("MODE #b +b bob").await;
    let m = op.until_cmd("MODE").await;
    assert_eq!(m.params, vec!["#b", "+b", "bob!*@*"]);
    assert_eq!(bob.until_cmd("MODE").await.params[2], "bob!*@*");
    // Anyone may list the bans.
    bob.send("MODE #b +b").await;
    let entry = bob.until_cmd("367").await;
    assert_eq!(
        entry.params[..4],
        ["bob", "#b", "bob!*@*", "op!op@127.0.0.1"]
    );
    assert!(entry.params[4].parse::<i64>().is_ok());
    assert_eq!(
        bob.expect("368").await.params,
        vec!["bob", "#b", "End of channel ban list"]
    );
    // A banned member cannot speak, a banned user cannot join.
    bob.send("PRIVMSG #b :hello?").await;
    bob.until_cmd("404").await;
    bob.send("PART #b").await;
    bob.send("JOIN #b").await;
    assert_eq!(
        bob.until_cmd("474").await.params,
        vec!["bob", "#b", "Cannot join channel (+b)"]
    );
    // Non-operators cannot ban; a duplicate is not added twice.
    bob.send("MODE #b +b *!*@*").await;
    bob.until_cmd("482").await;
    op.send("MODE #b +bb *!*@127.0.0.1 BOB!*@*").await;
    assert_eq!(
        op.until_cmd("MODE").await.params,
        vec!["#b", "+b", "*!*@127.0.0.1"]
    );
    op.send("MODE #b b").await;
    let mut masks = Vec::new();
    loop {
        let m = op.msg().await;
        match m.command.as_str() {
            "367" => masks.push(m.params[2].clone()),
            "368" => break,
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(masks, vec!["bob!*@*", "*!*@127.0.0.1"]);
    op.send("MODE #b -bb bob!*@* *!*@127.0.0.1").await;
    assert_eq!(
        op.until_cmd("MODE").await.params,
        vec!["#b", "-bb", "bob!*@*", "*!*@127.0.0.1"]
    );
    bob.send("JOIN #b").await;
    bob.until_cmd("366").await;
}

#[tokio::test]
async fn who_flags_and_masks() {
    let s = start(config()).await;
    let mut op = creator(s.addr, "alice", "#w").await;
    let mut bob = Raw::register(s.addr, "bob").await;
    bob.send("JOIN #w").await;
    bob.until_cmd("366").await;
    bob.send("AWAY :out").await;
    bob.until_cmd("306").await;
    let mut hidden = Raw::register(s.addr, "hidden").await;
    hidden.send("MODE hidden +i").await;
    hidden.until_cmd("MODE").await;

    op.send("WHO #w").await;
    let a = op.until_cmd("352").await;
    assert_eq!(
        a.params,
        vec![
            "alice",
            "#w",
            "alice",
            "127.0.0.1",
            "irc.test",
            "alice",
            "H@",
            "0 Real alice"
        ]
    );
    let b = op.expect("352").await;
    assert_eq!(b.params[5..7], ["bob", "G"]);
    assert_eq!(op.expect("315").await.params[1], "#w");

    // Masks match nick, user, host, server or realname; invisible users are hidden from
    // those who share no channel with them.
    for (mask, want) in [
        ("*", vec!["alice", "bob"]),
        ("b*", vec!["bob"]),
        ("127.0.0.?", vec!["alice", "bob"]),
        ("REAL?ALICE", vec!["alice"]),
        ("hidden", vec![]),
    ] {
        op.send(&format!("WHO :{mask}")).await;
        let mut nicks = Vec::new();
        loop {
            let m = op.msg().await;
            match m.command.as_str() {
                "352" => {
                    assert_eq!(m.params[1], "*");
                    nicks.push(m.params[5].clone());
                }
                "315" => {
                    assert_eq!(m.params[1], mask);
                    break;
                }
                other => panic!("unexpected {other}"),
            }
        }
        assert_eq!(nicks, want, "WHO {mask}");
    }
    hidden.send("WHO hidden").await;
    assert_eq!(hidden.until_cmd("352").await.params[5], "hidden");
    op.send("WHO * o").await;
    assert_eq!(op.expect("315").await.params[1], "*");
}

#[tokio::test]
async fn lusers_time_userhost() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    let mut b = Raw::register(s.addr, "bob").await;
    b.send("AWAY :brb").await;
    b.until_cmd("306").await;
    b.send("MODE bob +i").await;
    b.until_cmd("MODE").await;
    a.send("LUSERS").await;
    assert_eq!(
        a.expect("251").await.params[1],
        "There are 1 users and 1 invisible on 1 servers"
    );
    for code in ["252", "253", "254", "255"] {
        a.expect(code).await;
    }
    let local = a.expect("265").await;
    assert_eq!(local.params[1..3], ["2", "2"]);
    assert_eq!(local.params[3], "Current local users 2, max 2");
    let global = a.expect("266").await;
    assert_eq!(global.params[1..3], ["2", "2"]);
    drop(b);
    // The maximum stays after a user leaves (once the server saw the close).
    let mut c = Raw::register(s.addr, "carol").await;
    c.send("LUSERS").await;
    let l = c.until_cmd("265").await;
    assert!(l.params[2] == "2" || l.params[2] == "3", "{l}");

    a.send("TIME").await;
    let t = a.expect("391").await;
    assert_eq!(t.params[1], "irc.test");
    assert!(t.params[2].parse::<i64>().unwrap() > 1_600_000_000);
    a.send("TIME other.example").await;
    assert_eq!(a.expect("402").await.params[1], "other.example");

    c.send("AWAY :away").await;
    c.until_cmd("306").await;
    a.send("USERHOST alice carol nobody").await;
    assert_eq!(
        a.expect("302").await.params,
        vec!["alice", "alice=+alice@127.0.0.1 carol=-carol@127.0.0.1"]
    );
    a.send("USERHOST").await;
    a.expect("461").await;
}
