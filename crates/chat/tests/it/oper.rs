//! Operators and user modes over raw sockets: OPER (381, 464, 491), user mode +o, KILL,
//! WALLOPS and +w, +i, bot mode (+B: 335, the `bot` tag, the WHO flag), the `*` WHO flag
//! and `WHO mask o`, LUSERS 252.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use sockit_chat::irc::{AuthVerdict, IrcAuth, OperBlock, ServerConfig};

use crate::common::{config, start, tags, Raw};

/// Accounts `admin` (password `pw`) and nothing else; logging in is optional.
#[derive(Debug)]
struct OneAccount;

#[async_trait]
impl IrcAuth for OneAccount {
    fn required(&self) -> bool {
        false
    }

    async fn verify(&self, account: &str, password: &str, _ip: IpAddr) -> AuthVerdict {
        if account == "admin" && password == "pw" {
            AuthVerdict::Ok
        } else {
            AuthVerdict::Bad
        }
    }
}

/// Every account is backing off.
#[derive(Debug)]
struct BackingOff;

#[async_trait]
impl IrcAuth for BackingOff {
    fn required(&self) -> bool {
        false
    }

    fn retry_after(&self, _account: &str, _ip: IpAddr) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_secs(30))
    }

    async fn verify(&self, _account: &str, _password: &str, _ip: IpAddr) -> AuthVerdict {
        panic!("not asked while backing off")
    }
}

fn oper_config() -> ServerConfig {
    ServerConfig {
        auth: Some(Arc::new(OneAccount)),
        opers: vec![
            OperBlock::new("admin"),
            OperBlock {
                name: "remote".into(),
                account: "admin".into(),
                mask: "*@10.*".into(),
            },
        ],
        ..config()
    }
}

/// `nick` registered and OPERed as `admin`.
async fn oper(addr: std::net::SocketAddr, nick: &str) -> Raw {
    let mut c = Raw::register(addr, nick).await;
    c.send("OPER admin pw").await;
    c.expect("381").await;
    c
}

#[tokio::test]
async fn oper_replies_and_user_mode_o() {
    let s = start(oper_config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    a.send("OPER admin wrong").await;
    assert_eq!(
        a.expect("464").await.params,
        vec!["alice", "Password incorrect"]
    );
    a.send("OPER nobody pw").await;
    assert_eq!(a.expect("491").await.param(0), Some("alice"));
    a.send("OPER remote pw").await;
    a.expect("491").await;
    a.send("OPER admin").await;
    assert_eq!(a.expect("461").await.param(1), Some("OPER"));
    a.send("OPER admin pw").await;
    assert_eq!(
        a.expect("381").await.params,
        vec!["alice", "You are now an IRC operator"]
    );
    let m = a.expect("MODE").await;
    assert_eq!(m.prefix.as_deref(), Some("alice"));
    assert_eq!(m.params, vec!["alice", "+o"]);
    a.send("MODE alice").await;
    assert_eq!(a.expect("221").await.params, vec!["alice", "+o"]);
    a.send("LUSERS").await;
    assert_eq!(a.until_cmd("252").await.param(1), Some("1"));
    a.until_cmd("266").await;

    let mut b = Raw::register(s.addr, "bob").await;
    b.send("WHOIS alice").await;
    assert_eq!(
        b.until_cmd("313").await.params,
        vec!["bob", "alice", "is an IRC operator"]
    );
    b.until_cmd("318").await;
    b.send("WHO * o").await;
    let r = b.expect("352").await;
    assert_eq!(r.param(5), Some("alice"));
    assert_eq!(r.param(6), Some("H*"));
    assert_eq!(b.expect("315").await.param(1), Some("*"));
    b.send("WHO *").await;
    let rows = [b.expect("352").await, b.expect("352").await];
    assert_eq!(rows[1].param(6), Some("H"), "bob is no operator");
    b.expect("315").await;
    // Not an operator: +o cannot be taken, only dropped.
    b.send("MODE bob +o").await;
    assert!(b.sync("o").await.is_empty());
    a.send("MODE alice -o").await;
    assert_eq!(a.expect("MODE").await.params, vec!["alice", "-o"]);
    b.send("WHOIS alice").await;
    let rest = b.sync("w").await;
    assert!(rest.iter().all(|m| m.command != "313"), "{rest:?}");
    b.send("LUSERS").await;
    assert_eq!(b.until_cmd("252").await.param(1), Some("0"));
}

#[tokio::test]
async fn oper_without_an_account_policy_never_succeeds() {
    let s = start(ServerConfig {
        opers: vec![OperBlock::new("admin")],
        ..config()
    })
    .await;
    let mut a = Raw::register(s.addr, "alice").await;
    a.send("OPER admin pw").await;
    a.expect("464").await;
}

#[tokio::test]
async fn kill_closes_the_target_and_neighbours_see_quit() {
    let s = start(oper_config()).await;
    let mut op = oper(s.addr, "op").await;
    op.expect("MODE").await;
    let mut victim = Raw::register(s.addr, "victim").await;
    let mut witness = Raw::register(s.addr, "witness").await;
    victim.send("JOIN #c").await;
    victim.until_cmd("366").await;
    witness.send("JOIN #c").await;
    witness.until_cmd("366").await;
    victim.until_cmd("JOIN").await;

    witness.send("KILL victim :no").await;
    assert_eq!(
        witness.expect("481").await.params,
        vec!["witness", "Permission Denied- You're not an IRC operator"]
    );
    op.send("KILL nobody :x").await;
    assert_eq!(op.expect("401").await.param(1), Some("nobody"));
    op.send("KILL victim").await;
    assert_eq!(op.expect("461").await.param(1), Some("KILL"));

    op.send("KILL victim :spamming").await;
    let k = victim.expect("KILL").await;
    assert_eq!(k.prefix.as_deref(), Some("op!op@127.0.0.1"));
    assert_eq!(k.params, vec!["victim", "spamming"]);
    let rest = victim.until_closed().await;
    assert_eq!(
        rest,
        vec!["ERROR :Closing Link: 127.0.0.1 (Killed (op (spamming)))"]
    );
    let q = witness.expect("QUIT").await;
    assert_eq!(q.prefix.as_deref(), Some("victim!victim@127.0.0.1"));
    assert_eq!(q.params, vec!["Killed (op (spamming))"]);
    // Gone at once: the nick is free.
    op.send("WHOIS victim").await;
    op.expect("401").await;
    op.expect("318").await;
    op.send("WHOWAS victim").await;
    assert_eq!(op.expect("314").await.param(1), Some("victim"));
}

#[tokio::test]
async fn wallops_reach_users_with_w() {
    let s = start(oper_config()).await;
    let mut op = oper(s.addr, "op").await;
    op.expect("MODE").await;
    let mut w = Raw::register(s.addr, "watcher").await;
    let mut quiet = Raw::register(s.addr, "quiet").await;
    w.send("MODE watcher +w").await;
    assert_eq!(w.expect("MODE").await.params, vec!["watcher", "+w"]);
    quiet.send("WALLOPS :hi").await;
    quiet.expect("481").await;
    op.send("WALLOPS").await;
    assert_eq!(op.expect("461").await.param(1), Some("WALLOPS"));
    op.send("WALLOPS :server going down").await;
    let m = w.expect("WALLOPS").await;
    assert_eq!(m.prefix.as_deref(), Some("op!op@127.0.0.1"));
    assert_eq!(m.params, vec!["server going down"]);
    assert!(quiet.sync("q").await.is_empty(), "no +w, no WALLOPS");
    assert!(op.sync("o").await.is_empty(), "the sender has no +w");
}

#[tokio::test]
async fn bot_mode_whois_who_and_tag() {
    let s = start(config()).await;
    let mut bot = Raw::register(s.addr, "robot").await;
    bot.send("MODE robot +B").await;
    assert_eq!(bot.expect("MODE").await.params, vec!["robot", "+B"]);
    let mut tagged = Raw::register_with(s.addr, "tagged", "message-tags").await;
    let mut plain = Raw::register(s.addr, "plain").await;
    tagged.send("WHOIS robot").await;
    assert_eq!(
        tagged.until_cmd("335").await.params,
        vec!["tagged", "robot", "is a bot"]
    );
    tagged.until_cmd("318").await;
    tagged.send("WHO robot").await;
    assert_eq!(tagged.expect("352").await.param(6), Some("HB"));
    tagged.until_cmd("315").await;
    bot.send("PRIVMSG tagged,plain :beep").await;
    let m = tagged.expect("PRIVMSG").await;
    assert_eq!(tags(&m).get("bot"), Some(""), "{m}");
    let p = plain.expect("PRIVMSG").await;
    assert!(p.tags.is_none(), "{p}");
    bot.send("MODE robot -B").await;
    bot.expect("MODE").await;
    bot.send("PRIVMSG tagged :human now").await;
    let m = tagged.expect("PRIVMSG").await;
    assert_eq!(tags(&m).get("bot"), None, "{m}");
}

#[tokio::test]
async fn invisible_users_are_hidden_from_strangers() {
    let s = start(config()).await;
    let mut ghost = Raw::register(s.addr, "ghost").await;
    ghost.send("MODE ghost +i").await;
    assert_eq!(ghost.expect("MODE").await.params, vec!["ghost", "+i"]);
    ghost.send("MODE ghost +x").await;
    ghost.expect("501").await;
    let mut other = Raw::register(s.addr, "other").await;
    other.send("WHO ghost").await;
    assert_eq!(other.expect("315").await.param(1), Some("ghost"));
    ghost.send("JOIN #x").await;
    ghost.until_cmd("366").await;
    other.send("JOIN #x").await;
    other.until_cmd("366").await;
    other.send("WHO ghost").await;
    assert_eq!(other.expect("352").await.param(5), Some("ghost"));
}

#[tokio::test]
async fn chghost_with_the_cap_and_the_quit_join_fallback() {
    let s = start(oper_config()).await;
    let mut op = oper(s.addr, "op").await;
    op.expect("MODE").await;
    let mut user = Raw::register(s.addr, "user").await;
    user.send("JOIN #h").await;
    user.until_cmd("366").await;
    let mut modern = Raw::register_with(s.addr, "modern", "chghost").await;
    modern.send("JOIN #h").await;
    modern.until_cmd("366").await;
    let mut old = Raw::register(s.addr, "old").await;
    old.send("JOIN #h").await;
    old.until_cmd("366").await;
    modern.until_cmd("JOIN").await;
    user.send("CHGHOST user x.example").await;
    user.until_cmd("481").await;
    op.send("CHGHOST user bad!host").await;
    let f = op.expect("FAIL").await;
    assert_eq!(f.params[..2], ["CHGHOST", "INVALID_HOST"]);
    op.send("CHGHOST nobody x.example").await;
    op.expect("401").await;
    op.send("CHGHOST user").await;
    op.expect("461").await;

    op.send("CHGHOST user cloaked.example").await;
    assert_eq!(
        user.until_cmd("396").await.params,
        vec!["user", "cloaked.example", "is now your displayed host"]
    );
    let m = modern.until_cmd("CHGHOST").await;
    assert_eq!(m.prefix.as_deref(), Some("user!user@127.0.0.1"));
    assert_eq!(m.params, vec!["user", "cloaked.example"]);
    let q = old.until_cmd("QUIT").await;
    assert_eq!(q.prefix.as_deref(), Some("user!user@127.0.0.1"));
    assert_eq!(q.params, vec!["Changing host"]);
    let j = old.expect("JOIN").await;
    assert_eq!(j.prefix.as_deref(), Some("user!user@cloaked.example"));
    assert_eq!(j.params, vec!["#h"]);
    let mo = old.expect("MODE").await;
    assert_eq!(mo.params, vec!["#h", "+o", "user"], "the creator's @ again");
    // WHOX hides the IP behind the new host from others, not from operators.
    old.send("WHO user %ih").await;
    assert_eq!(
        old.expect("354").await.params,
        vec!["old", "255.255.255.255", "cloaked.example"]
    );
    old.expect("315").await;
    op.send("WHO user %ih").await;
    assert_eq!(
        op.expect("354").await.params,
        vec!["op", "127.0.0.1", "cloaked.example"]
    );
}

#[tokio::test]
async fn oper_while_backing_off_is_refused_unchecked() {
    let s = start(ServerConfig {
        auth: Some(Arc::new(BackingOff)),
        opers: vec![OperBlock::new("admin")],
        ..config()
    })
    .await;
    let mut a = Raw::register(s.addr, "alice").await;
    a.send("OPER admin pw").await;
    let m = a.expect("464").await;
    assert!(m.params[1].starts_with("Too many failed logins"), "{m}");
    a.send("MODE alice").await;
    assert_eq!(a.expect("221").await.params, vec!["alice", "+"]);
}

#[tokio::test]
async fn a_labeled_oper_gets_its_batch_after_the_password_check() {
    let s = start(oper_config()).await;
    let mut a = Raw::register_with(s.addr, "alice", "batch labeled-response").await;
    a.send("@label=op OPER admin pw").await;
    let start = a.expect("BATCH").await;
    assert_eq!(tags(&start).get("label"), Some("op"));
    let id = start.params[0][1..].to_owned();
    for cmd in ["381", "MODE"] {
        let m = a.expect(cmd).await;
        assert_eq!(tags(&m).get("batch"), Some(id.as_str()), "{m}");
    }
    assert_eq!(a.expect("BATCH").await.params, vec![format!("-{id}")]);
    a.send("@label=bad OPER admin wrong").await;
    a.expect("381").await;
    a.send("MODE alice -o").await;
    a.expect("MODE").await;
    a.send("@label=bad OPER admin wrong").await;
    let m = a.expect("464").await;
    assert_eq!(tags(&m).get("label"), Some("bad"));
}
