//! Registration: CAP, AUTHENTICATE (SASL PLAIN), PASS, NICK, USER and the welcome burst
//! (001–005, LUSERS, MOTD).
//!
//! A client that sends `CAP LS`/`CAP REQ` is held until `CAP END`. The only capability
//! offered is `sasl` (`sasl=PLAIN` to `CAP LS 302`), and only when the server has an
//! [`IrcAuth`](crate::irc::auth::IrcAuth); every other request is refused (`NAK`).
//!
//! The gate, checked when NICK, USER and CAP END are in: with a server password or an
//! auth policy that is [`required`](crate::irc::auth::IrcAuth::required), a client passes
//! if it sent the server password with PASS or logged in to an account (SASL, or PASS
//! `account:password` checked right then); otherwise it gets 464 and is closed.

use crate::irc::auth::{
    decode_plain, push_chunk, retry_text, AuthRequest, AuthVerdict, AuthVia, Chunk, SaslState,
    SASL_MECHANISMS,
};
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::Message;
use crate::irc::names::{self, CHANNELLEN, KICKLEN, NICKLEN, TOPICLEN};
use crate::irc::numeric::*;
use crate::irc::query;

/// Most ISUPPORT tokens per 005 line.
const ISUPPORT_PER_LINE: usize = 13;

/// The close reason (and 464 text) for a client that did not authenticate.
pub const AUTH_REQUIRED: &str = "Authentication required: use SASL PLAIN or PASS account:password";

/// The server's version string.
pub fn version() -> String {
    format!("sockit-{}", env!("CARGO_PKG_VERSION"))
}

/// The capabilities the server offers: `(name, value for CAP LS 302)`.
fn offered(ctx: &Ctx<'_>) -> Vec<(&'static str, &'static str)> {
    if ctx.cfg.auth.is_some() {
        vec![("sasl", SASL_MECHANISMS)]
    } else {
        Vec::new()
    }
}

/// CAP LS|LIST|REQ|END.
pub fn cap(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let Some(sub) = msg.param(0) else {
        ctx.need_more_params("CAP");
        return Outcome::Continue;
    };
    let sub = sub.to_ascii_uppercase();
    let nick = ctx.nick();
    let hold = |ctx: &mut Ctx<'_>| {
        if let Some(c) = ctx.me_mut() {
            if !c.registered {
                c.cap_negotiating = true;
            }
        }
    };
    match sub.as_str() {
        "LS" => {
            hold(ctx);
            let v302 = msg
                .param(1)
                .and_then(|v| v.parse::<u32>().ok())
                .is_some_and(|v| v >= 302);
            let list: Vec<String> = offered(ctx)
                .into_iter()
                .map(|(name, value)| {
                    if v302 && !value.is_empty() {
                        format!("{name}={value}")
                    } else {
                        name.to_owned()
                    }
                })
                .collect();
            ctx.send(&ctx.from_server("CAP", vec![nick, "LS".into(), list.join(" ")]));
        }
        "LIST" => {
            let on: Vec<String> = ctx
                .me()
                .map(|c| c.caps.iter().cloned().collect())
                .unwrap_or_default();
            ctx.send(&ctx.from_server("CAP", vec![nick, "LIST".into(), on.join(" ")]));
        }
        "REQ" => {
            hold(ctx);
            let wanted = msg.param(1).unwrap_or("").to_owned();
            let known = offered(ctx);
            let tokens: Vec<(bool, String)> = wanted
                .split_ascii_whitespace()
                .map(|t| match t.strip_prefix('-') {
                    Some(name) => (false, name.to_ascii_lowercase()),
                    None => (true, t.to_ascii_lowercase()),
                })
                .collect();
            let all_known = !tokens.is_empty()
                && tokens
                    .iter()
                    .all(|(_, name)| known.iter().any(|(k, _)| k == name));
            if all_known {
                if let Some(c) = ctx.me_mut() {
                    for (on, name) in tokens {
                        if on {
                            c.caps.insert(name);
                        } else {
                            c.caps.remove(&name);
                        }
                    }
                }
                ctx.send(&ctx.from_server("CAP", vec![nick, "ACK".into(), wanted]));
            } else {
                ctx.send(&ctx.from_server("CAP", vec![nick, "NAK".into(), wanted]));
            }
        }
        "END" => {
            let aborted = ctx.me_mut().is_some_and(|c| {
                c.cap_negotiating = false;
                std::mem::take(&mut c.sasl) != SaslState::Idle
            });
            if aborted {
                ctx.num(ERR_SASLABORTED, &["SASL authentication aborted"]);
            }
            return try_complete(ctx);
        }
        _ => ctx.num(ERR_INVALIDCAPCMD, &[&sub, "Invalid CAP command"]),
    }
    Outcome::Continue
}

/// AUTHENTICATE mechanism | base64 chunk | `+` | `*` (IRCv3 SASL 3.1, PLAIN only).
pub fn authenticate(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let Some(arg) = msg.param(0).map(str::to_owned) else {
        ctx.need_more_params("AUTHENTICATE");
        return Outcome::Continue;
    };
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    if ctx.cfg.auth.is_none() || !me.caps.contains("sasl") {
        ctx.num(
            ERR_SASLFAIL,
            &["SASL authentication failed: request the sasl capability first (CAP REQ :sasl)"],
        );
        return Outcome::Continue;
    }
    if me.account.is_some() {
        ctx.num(
            ERR_SASLALREADY,
            &["You have already authenticated using SASL"],
        );
        return Outcome::Continue;
    }
    if me.registered {
        ctx.num(
            ERR_SASLFAIL,
            &["SASL authentication failed: only available before registration"],
        );
        return Outcome::Continue;
    }
    let state = me.sasl.clone();
    if arg == "*" {
        if let Some(c) = ctx.me_mut() {
            c.sasl = SaslState::Idle;
        }
        ctx.num(ERR_SASLABORTED, &["SASL authentication aborted"]);
        return Outcome::Continue;
    }
    match state {
        SaslState::Idle => {
            if arg.eq_ignore_ascii_case("PLAIN") {
                if let Some(c) = ctx.me_mut() {
                    c.sasl = SaslState::Plain(String::new());
                }
                ctx.send(&Message::new("AUTHENTICATE", vec!["+".into()]));
            } else {
                ctx.num(
                    RPL_SASLMECHS,
                    &[SASL_MECHANISMS, "are available SASL mechanisms"],
                );
                ctx.num(ERR_SASLFAIL, &["SASL authentication failed"]);
            }
            Outcome::Continue
        }
        SaslState::Plain(mut buf) => {
            let step = push_chunk(&mut buf, &arg);
            let next = match step {
                Chunk::More => SaslState::Plain(buf),
                Chunk::Done(_) | Chunk::TooLong => SaslState::Idle,
            };
            if let Some(c) = ctx.me_mut() {
                c.sasl = next;
            }
            match step {
                Chunk::More => Outcome::Continue,
                Chunk::TooLong => {
                    ctx.num(ERR_SASLTOOLONG, &["SASL message too long"]);
                    Outcome::Continue
                }
                Chunk::Done(b64) => match decode_plain(&b64) {
                    Some((account, password)) => Outcome::Verify(AuthRequest {
                        via: AuthVia::Sasl,
                        account,
                        password,
                    }),
                    None => {
                        ctx.num(
                            ERR_SASLFAIL,
                            &["SASL authentication failed: malformed PLAIN message"],
                        );
                        count_failure(ctx)
                    }
                },
            }
        }
    }
}

/// Counts a failed login; closes the connection once it reached the limit.
fn count_failure(ctx: &mut Ctx<'_>) -> Outcome {
    let max = ctx.cfg.max_auth_failures.max(1);
    let failures = ctx.me_mut().map_or(max, |c| {
        c.auth_failures = c.auth_failures.saturating_add(1);
        c.auth_failures
    });
    if failures >= max {
        Outcome::Close("Too many failed logins".into())
    } else {
        Outcome::Continue
    }
}

/// Applies the verdict on credentials an [`Outcome::Verify`] asked to check.
pub fn auth_result(ctx: &mut Ctx<'_>, req: &AuthRequest, verdict: AuthVerdict) -> Outcome {
    match (req.via, verdict) {
        (via, AuthVerdict::Ok) => {
            let prefix = ctx.prefix();
            if let Some(c) = ctx.me_mut() {
                c.account = Some(req.account.clone());
                c.sasl = SaslState::Idle;
            }
            ctx.num(
                RPL_LOGGEDIN,
                &[
                    &prefix,
                    &req.account,
                    &format!("You are now logged in as {}", req.account),
                ],
            );
            if via == AuthVia::Sasl {
                ctx.num(RPL_SASLSUCCESS, &["SASL authentication successful"]);
            }
            try_complete(ctx)
        }
        (AuthVia::Sasl, AuthVerdict::Bad) => {
            ctx.num(ERR_SASLFAIL, &["SASL authentication failed"]);
            count_failure(ctx)
        }
        (AuthVia::Sasl, AuthVerdict::Throttled(wait)) => {
            ctx.num(
                ERR_SASLFAIL,
                &[&format!(
                    "SASL authentication failed: too many failed logins; try again in {}",
                    retry_text(wait)
                )],
            );
            Outcome::Continue
        }
        (AuthVia::Pass, AuthVerdict::Bad) => {
            ctx.num(ERR_PASSWDMISMATCH, &["Password incorrect"]);
            Outcome::Close("Bad password".into())
        }
        (AuthVia::Pass, AuthVerdict::Throttled(wait)) => {
            let text = format!("Too many failed logins; try again in {}", retry_text(wait));
            ctx.num(ERR_PASSWDMISMATCH, &[&text]);
            Outcome::Close(text)
        }
    }
}

/// PASS password (before registration): the server password, or `account:password`.
pub fn pass(ctx: &mut Ctx<'_>, msg: &Message) {
    if ctx.registered() {
        ctx.num(ERR_ALREADYREGISTERED, &["You may not reregister"]);
        return;
    }
    match msg.param(0) {
        None => ctx.need_more_params("PASS"),
        Some(p) => {
            let p = p.to_owned();
            if let Some(c) = ctx.me_mut() {
                c.pass = Some(p);
                c.pass_checked = false;
            }
        }
    }
}

/// NICK newnick.
pub fn nick(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let new = match msg.param(0) {
        None | Some("") => {
            ctx.num(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
            return Outcome::Continue;
        }
        Some(n) => n.to_owned(),
    };
    if !names::valid_nick(&new) {
        ctx.num(ERR_ERRONEUSNICKNAME, &[&new, "Erroneous nickname"]);
        return Outcome::Continue;
    }
    let id = ctx.id;
    if let Some(owner) = ctx.st.by_nick(&new) {
        if owner != id {
            ctx.num(ERR_NICKNAMEINUSE, &[&new, "Nickname is already in use"]);
            return Outcome::Continue;
        }
    }
    let Some(me) = ctx.st.clients.get(&id) else {
        return Outcome::Continue;
    };
    if me.nick.as_deref() == Some(new.as_str()) {
        return Outcome::Continue;
    }
    let old_prefix = me.prefix();
    let registered = me.registered;
    if let Some(old) = me.nick.clone() {
        ctx.st.nicks.remove(&names::fold(&old));
    }
    ctx.st.nicks.insert(names::fold(&new), id);
    if let Some(c) = ctx.me_mut() {
        c.nick = Some(new.clone());
    }
    if registered {
        let m = Message::new("NICK", vec![new]).with_prefix(old_prefix);
        ctx.st.to_self_and_neighbours(id, &m);
        Outcome::Continue
    } else {
        try_complete(ctx)
    }
}

/// USER username mode unused :realname.
pub fn user(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    if ctx.registered() {
        ctx.num(ERR_ALREADYREGISTERED, &["You may not reregister"]);
        return Outcome::Continue;
    }
    if msg.params.len() < 4 || msg.params[0].is_empty() {
        ctx.need_more_params("USER");
        return Outcome::Continue;
    }
    // Keep the user name printable and short: it appears in every prefix.
    let user: String = msg.params[0]
        .chars()
        .filter(|c| c.is_ascii_graphic() && !matches!(c, '!' | '@' | ':'))
        .take(16)
        .collect();
    let user = if user.is_empty() { "user".into() } else { user };
    let realname = msg.params[3].chars().take(100).collect();
    if let Some(c) = ctx.me_mut() {
        c.user = Some(user);
        c.realname = realname;
    }
    try_complete(ctx)
}

/// Whether two secrets are equal, in time independent of where they differ.
fn same_secret(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Completes registration once NICK and USER are in and CAP negotiation is over, if the
/// client passes the gate (see the module documentation).
pub fn try_complete(ctx: &mut Ctx<'_>) -> Outcome {
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    if me.registered || me.nick.is_none() || me.user.is_none() || me.cap_negotiating {
        return Outcome::Continue;
    }
    let auth_required = ctx.cfg.auth.as_ref().is_some_and(|a| a.required());
    let server_pass_ok = match (&ctx.cfg.password, &me.pass) {
        (Some(want), Some(got)) => same_secret(want, got),
        _ => false,
    };
    let gated = ctx.cfg.password.is_some() || auth_required;
    let prefix = me.prefix();
    if gated && !server_pass_ok && me.account.is_none() {
        let pass_req = if auth_required && !me.pass_checked {
            me.pass
                .as_deref()
                .and_then(|p| AuthRequest::from_pass(p, me.nick.as_deref()))
        } else {
            None
        };
        let no_pass = me.pass.is_none();
        if let Some(req) = pass_req {
            if let Some(c) = ctx.me_mut() {
                c.pass_checked = true;
            }
            return Outcome::Verify(req);
        }
        if auth_required && no_pass {
            ctx.num(ERR_PASSWDMISMATCH, &[AUTH_REQUIRED]);
            return Outcome::Close(AUTH_REQUIRED.into());
        }
        ctx.num(ERR_PASSWDMISMATCH, &["Password incorrect"]);
        return Outcome::Close("Bad password".into());
    }
    if let Some(c) = ctx.me_mut() {
        c.registered = true;
    }
    welcome(ctx, &prefix);
    Outcome::Continue
}

/// The ISUPPORT tokens we announce.
pub fn isupport_tokens(ctx: &Ctx<'_>) -> Vec<String> {
    vec![
        "CHANTYPES=#".into(),
        format!("NICKLEN={NICKLEN}"),
        format!("CHANNELLEN={CHANNELLEN}"),
        "CASEMAPPING=rfc1459".into(),
        "PREFIX=(o)@".into(),
        "CHANMODES=,,,nt".into(),
        format!("TOPICLEN={TOPICLEN}"),
        format!("KICKLEN={KICKLEN}"),
        format!("CHANLIMIT=#:{}", ctx.cfg.max_channels),
        format!("NETWORK={}", ctx.cfg.network),
        "MODES=4".into(),
        "MAXTARGETS=4".into(),
        "TARGMAX=PRIVMSG:4,NOTICE:4,JOIN:,PART:,KICK:1,NAMES:1,WHOIS:1".into(),
        "AWAYLEN=200".into(),
    ]
}

fn welcome(ctx: &mut Ctx<'_>, prefix: &str) {
    let name = ctx.cfg.name.clone();
    let ver = version();
    ctx.num(
        RPL_WELCOME,
        &[&format!(
            "Welcome to the {} IRC Network {prefix}",
            ctx.cfg.network
        )],
    );
    ctx.num(
        RPL_YOURHOST,
        &[&format!("Your host is {name}, running version {ver}")],
    );
    ctx.num(
        RPL_CREATED,
        &[&format!("This server was created {}", ctx.created)],
    );
    ctx.num(RPL_MYINFO, &[&name, &ver, "iw", "not", "o"]);
    let tokens = isupport_tokens(ctx);
    for chunk in tokens.chunks(ISUPPORT_PER_LINE) {
        let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
        params.push("are supported by this server");
        ctx.num(RPL_ISUPPORT, &params);
    }
    query::lusers(ctx);
    query::motd(ctx);
}
