//! IRC operators: OPER, KILL, WALLOPS, CHGHOST.
//!
//! Operators are configured by the server admin ([`OperBlock`]): a name, the account
//! whose password proves it (checked by the server's [`IrcAuth`](crate::irc::IrcAuth),
//! i.e. the accounts store's argon2id hashes and its login back-off) and a `user@host`
//! mask. `OPER name password` answers `381` and sets user mode `+o`; an unknown name or
//! a client outside the mask gets `491`, a wrong password `464` (the connection goes on).
//! Only operators may KILL, WALLOPS and CHGHOST (`481` otherwise).

use crate::irc::auth::{AuthRequest, AuthVerdict, AuthVia};
use crate::irc::caps::Cap;
use crate::irc::channel::{mask_matches, ClientId};
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::Message;
use crate::irc::numeric::*;
use crate::irc::state::OperBlock;

/// Longest KILL reason kept.
const KILL_REASON_LEN: usize = 255;

/// `OPER name password`.
pub fn oper(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let (Some(name), Some(password)) = (msg.param(0), msg.param(1)) else {
        ctx.need_more_params("OPER");
        return Outcome::Continue;
    };
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    if me.is_oper() {
        ctx.num(RPL_YOUREOPER, &["You are now an IRC operator"]);
        return Outcome::Continue;
    }
    let userhost = format!("{}@{}", me.user.as_deref().unwrap_or("*"), me.host);
    let block: Option<&OperBlock> = ctx.cfg.opers.iter().find(|b| b.name == name);
    let Some(block) = block.filter(|b| mask_matches(&b.mask, &userhost)) else {
        ctx.num(ERR_NOOPERHOST, &["No O-lines for your host"]);
        return Outcome::Continue;
    };
    if ctx.cfg.auth.is_none() {
        ctx.num(ERR_PASSWDMISMATCH, &["Password incorrect"]);
        return Outcome::Continue;
    }
    let req = AuthRequest {
        via: AuthVia::Oper,
        account: block.account.clone(),
        password: password.to_owned(),
    };
    let name = block.name.clone();
    if let Some(c) = ctx.me_mut() {
        c.pending_oper = Some(name);
    }
    Outcome::Verify(req)
}

/// The verdict on an OPER password: `381` and `MODE nick +o`, or `464`.
pub fn oper_result(ctx: &mut Ctx<'_>, verdict: AuthVerdict) {
    let Some(name) = ctx.me_mut().and_then(|c| c.pending_oper.take()) else {
        return;
    };
    match verdict {
        AuthVerdict::Ok => {
            let nick = ctx.nick();
            if let Some(c) = ctx.me_mut() {
                c.modes.insert('o');
                c.oper = Some(name);
            }
            ctx.num(RPL_YOUREOPER, &["You are now an IRC operator"]);
            let m = Message::new("MODE", vec![nick.clone(), "+o".into()]).with_prefix(nick);
            ctx.send(&m);
        }
        AuthVerdict::Bad => ctx.num(ERR_PASSWDMISMATCH, &["Password incorrect"]),
        AuthVerdict::Throttled(wait) => ctx.num(
            ERR_PASSWDMISMATCH,
            &[&format!(
                "Too many failed logins; try again in {}",
                crate::irc::auth::retry_text(wait)
            )],
        ),
    }
}

/// 481 unless the sender is an operator; whether it is.
fn require_oper(ctx: &Ctx<'_>) -> bool {
    let ok = ctx.me().is_some_and(|c| c.is_oper());
    if !ok {
        ctx.num(
            ERR_NOPRIVILEGES,
            &["Permission Denied- You're not an IRC operator"],
        );
    }
    ok
}

/// `KILL nick :reason` (operators): the target gets `KILL`, then
/// `ERROR :Closing Link: host (Killed (oper (reason)))`; its neighbours see
/// `QUIT :Killed (oper (reason))`.
pub fn kill(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let (Some(target), Some(reason)) = (
        msg.param(0).filter(|t| !t.is_empty()),
        msg.param(1).filter(|r| !r.is_empty()),
    ) else {
        ctx.need_more_params("KILL");
        return Outcome::Continue;
    };
    if !require_oper(ctx) {
        return Outcome::Continue;
    }
    let Some(tid) = ctx.st.by_nick(target) else {
        ctx.num(ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
        return Outcome::Continue;
    };
    let reason: String = reason.chars().take(KILL_REASON_LEN).collect();
    let killer = ctx.nick();
    let quit = format!("Killed ({killer} ({reason}))");
    if ctx.st.cluster.is_proxy(tid) {
        // A user of another node: its node closes the connection (and tells everyone);
        // here it is gone at once.
        crate::irc::cluster::kill_remote(ctx, tid, &reason);
        ctx.st.remove_from(tid, &quit, &ctx.cfg.name);
        return Outcome::Continue;
    }
    let Some(victim) = ctx.st.clients.get(&tid) else {
        return Outcome::Continue;
    };
    let vnick = victim.nick_or_star().to_owned();
    let line = ctx.out(Message::new("KILL", vec![vnick, reason]));
    victim.handle.send_out(&line);
    victim.handle.kill(&quit);
    if tid == ctx.id {
        return Outcome::Close(quit);
    }
    // Gone at once for everyone else (its connection then sends ERROR and closes).
    ctx.st.remove_from(tid, &quit, &ctx.cfg.name);
    Outcome::Continue
}

/// `WALLOPS :text` (operators): `:oper!user@host WALLOPS :text` to every user with `+w`.
pub fn wallops(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(text) = msg.param(0).filter(|t| !t.is_empty()) else {
        return ctx.need_more_params("WALLOPS");
    };
    if !require_oper(ctx) {
        return;
    }
    let out = ctx.out(Message::new("WALLOPS", vec![text.to_owned()]));
    for c in ctx.st.clients.values() {
        if c.registered && c.modes.contains(&'w') {
            c.handle.send_out(&out);
        }
    }
}

/// Longest host CHGHOST accepts.
pub const HOSTLEN: usize = 64;

/// Whether `host` may be shown as a host: 1..=[`HOSTLEN`] bytes of letters, digits and
/// `.-:/`, not starting with `:` or `-`.
pub fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= HOSTLEN
        && !host.starts_with([':', '-'])
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '/'))
}

/// `CHGHOST nick host` (operators, as InspIRCd's): changes a user's displayed host. The
/// user gets `396 nick host :is now your displayed host`; it and its neighbours with
/// `chghost` see `:nick!user@old CHGHOST user host`; neighbours without it see
/// `QUIT :Changing host`, then the JOIN (and the user's channel status as a MODE) again.
pub fn chghost(ctx: &mut Ctx<'_>, msg: &Message) {
    let (Some(target), Some(host)) = (
        msg.param(0).filter(|t| !t.is_empty()),
        msg.param(1).filter(|h| !h.is_empty()),
    ) else {
        return ctx.need_more_params("CHGHOST");
    };
    if !require_oper(ctx) {
        return;
    }
    if !valid_host(host) {
        return ctx.fail("CHGHOST", "INVALID_HOST", &[host], "Invalid host");
    }
    let Some(tid) = ctx.st.by_nick(target) else {
        return ctx.num(ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
    };
    if ctx.st.cluster.is_proxy(tid) {
        // A user of another node: its node changes the host and tells everyone.
        let params = vec![target.to_owned(), host.to_owned()];
        return crate::irc::cluster::route_to_owner(ctx, tid, "CHGHOST", params);
    }
    set_host(ctx, tid, host);
}

/// Changes user `tid`'s displayed host to `host` and tells it and its neighbours (see
/// [`chghost`]); a local user of a cluster node has the change published.
pub fn set_host(ctx: &mut Ctx<'_>, tid: ClientId, host: &str) {
    let Some(c) = ctx.st.clients.get_mut(&tid) else {
        return;
    };
    if c.host == host {
        return;
    }
    let old_prefix = c.prefix();
    let user = c.user.clone().unwrap_or_else(|| "*".into());
    c.host = host.to_owned();
    let (nick, account, realname, away) = (
        c.nick_or_star().to_owned(),
        c.account.clone(),
        c.realname.clone(),
        c.away.clone(),
    );
    let new_prefix = c.prefix();
    let visible = Message::new(
        RPL_VISIBLEHOST,
        vec![
            nick.clone(),
            host.to_owned(),
            "is now your displayed host".into(),
        ],
    )
    .with_prefix(ctx.cfg.name.clone());
    c.handle.send_msg(&visible);
    crate::irc::cluster::host_changed(ctx.st, tid);
    let change = ctx.st.from_client(
        tid,
        Message::new("CHGHOST", vec![user, host.to_owned()]).with_prefix(old_prefix.clone()),
    );
    if let Some(c) = ctx.st.clients.get(&tid) {
        if c.has(Cap::Chghost) {
            c.handle.send_out(&change);
        }
    }
    let quit = ctx.st.from_client(
        tid,
        Message::new("QUIT", vec!["Changing host".into()]).with_prefix(old_prefix),
    );
    let chans: Vec<String> = ctx
        .st
        .clients
        .get(&tid)
        .map(|c| c.channels.iter().cloned().collect())
        .unwrap_or_default();
    for n in ctx.st.neighbours(tid) {
        let Some(nc) = ctx.st.clients.get(&n) else {
            continue;
        };
        if nc.has(Cap::Chghost) {
            nc.handle.send_out(&change);
            continue;
        }
        nc.handle.send_out(&quit);
        for key in &chans {
            let Some(ch) = ctx.st.channels.get(key) else {
                continue;
            };
            if !ch.has(n) {
                continue;
            }
            let params = if nc.has(Cap::ExtendedJoin) {
                vec![
                    ch.name.clone(),
                    account.clone().unwrap_or_else(|| "*".into()),
                    realname.clone(),
                ]
            } else {
                vec![ch.name.clone()]
            };
            let join = Message::new("JOIN", params).with_prefix(new_prefix.clone());
            nc.handle.send_out(&ctx.st.from_client(tid, join));
            let m = ch.members.get(&tid).copied().unwrap_or_default();
            let modes: String = [(m.op, 'o'), (m.voice, 'v')]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect();
            if !modes.is_empty() {
                let mut params = vec![ch.name.clone(), format!("+{modes}")];
                params.extend(modes.chars().map(|_| nick.clone()));
                nc.handle.send_msg(&ctx.from_server("MODE", params));
            }
        }
        if let (Some(a), true) = (&away, nc.has(Cap::AwayNotify)) {
            let m = Message::new("AWAY", vec![a.clone()]).with_prefix(new_prefix.clone());
            nc.handle.send_out(&ctx.st.from_client(tid, m));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts() {
        for ok in ["a", "cloaked.example", "2001:db8::1", "user/alice", "a-b"] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in ["", ":x", "-x", "a b", "a!b", "a@b", "é", &"a".repeat(65)] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }
}
