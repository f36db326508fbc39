//! Registration: CAP, AUTHENTICATE (SASL PLAIN and EXTERNAL), PASS, NICK, USER and the
//! welcome burst (001–005, LUSERS, MOTD).
//!
//! A client that sends `CAP LS`/`CAP REQ` is held until `CAP END`. The capabilities are
//! those of [`Cap`]; `sasl` (`sasl=PLAIN` to `CAP LS 302`, `sasl=PLAIN,EXTERNAL` when the
//! policy logs in by client certificate) only when the server has an
//! [`IrcAuth`](crate::irc::auth::IrcAuth). A `CAP REQ` is acknowledged or refused as a
//! whole.
//!
//! The gate, checked when NICK, USER and CAP END are in: with a server password or an
//! auth policy that is [`required`](crate::irc::auth::IrcAuth::required), a client passes
//! if it sent the server password with PASS or logged in to an account (SASL, or PASS
//! `account:password` checked right then); otherwise it gets 464 and is closed.

use crate::irc::auth::{
    decode_external, decode_plain, mechanisms, push_chunk, retry_text, AuthRequest, AuthVerdict,
    AuthVia, Chunk, SaslState, SASL_MECHANISMS,
};
use crate::irc::caps::{split_list, Cap};
use crate::irc::channel_cmds::{KEYLEN, MAX_BANS};
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::{Message, MAX_LINE};
use crate::irc::messaging::{AWAYLEN, NAMELEN};
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

/// The capabilities the server offers: `sasl` only with an account policy,
/// `draft/account-registration` only when it lets clients register.
pub fn offered(ctx: &Ctx<'_>) -> Vec<Cap> {
    Cap::ALL
        .into_iter()
        .filter(|c| *c != Cap::Sasl || ctx.cfg.auth.is_some())
        .filter(|c| *c != Cap::AccountRegistration || crate::irc::account_reg::enabled(ctx))
        .collect()
}

/// The SASL mechanisms of this server (`PLAIN`, or `PLAIN,EXTERNAL`).
fn sasl_mechanisms(ctx: &Ctx<'_>) -> &'static str {
    ctx.cfg.auth.as_deref().map_or(SASL_MECHANISMS, mechanisms)
}

/// The value of `cap` in `CAP LS 302` (`sasl=PLAIN`), if it has one.
fn cap_value(ctx: &Ctx<'_>, cap: Cap) -> Option<&'static str> {
    match cap {
        Cap::Sasl => Some(sasl_mechanisms(ctx)),
        Cap::AccountRegistration => Some(crate::irc::account_reg::CAP_VALUE),
        _ => None,
    }
}

/// Sends `CAP <nick> <sub> :list` split over lines that fit; every line but the last
/// carries `*` for a 302 client (others cannot read continuations: one line each).
fn send_cap_list(ctx: &Ctx<'_>, sub: &str, items: &[String], v302: bool) {
    let nick = ctx.nick();
    let overhead = ctx.cfg.name.len() + nick.len() + sub.len() + 16;
    let lines = split_list(items, MAX_LINE.saturating_sub(overhead).max(64));
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let mut params = vec![nick.clone(), sub.to_owned()];
        if v302 && i + 1 < n {
            params.push("*".into());
        }
        params.push(line);
        ctx.send(&ctx.from_server("CAP", params));
    }
}

/// CAP LS|LIST|REQ|END (IRCv3 capability negotiation, version 302).
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
            let version = msg
                .param(1)
                .and_then(|v| v.parse::<u32>().ok())
                .unwrap_or(0);
            if let Some(c) = ctx.me_mut() {
                c.cap_version = c.cap_version.max(version);
                if version >= 302 {
                    // CAP LS 302 enables cap-notify implicitly.
                    c.handle.set_caps(c.caps().with(Cap::CapNotify, true));
                }
            }
            let v302 = ctx.me().is_some_and(|c| c.cap_version >= 302);
            let items: Vec<String> = offered(ctx)
                .into_iter()
                .map(|cap| match cap_value(ctx, cap) {
                    Some(value) if v302 => format!("{cap}={value}"),
                    _ => cap.name().to_owned(),
                })
                .collect();
            send_cap_list(ctx, "LS", &items, v302);
        }
        "LIST" => {
            let (on, v302) = ctx.me().map_or((Vec::new(), false), |c| {
                (
                    c.caps().iter().map(|c| c.name().to_owned()).collect(),
                    c.cap_version >= 302,
                )
            });
            send_cap_list(ctx, "LIST", &on, v302);
        }
        "REQ" => {
            hold(ctx);
            let wanted = msg.param(1).unwrap_or("").trim().to_owned();
            let known = offered(ctx);
            let v302 = ctx.me().is_some_and(|c| c.cap_version >= 302);
            let changes: Option<Vec<(Cap, bool)>> = wanted
                .split_ascii_whitespace()
                .map(|t| {
                    let (on, name) = match t.strip_prefix('-') {
                        Some(name) => (false, name),
                        None => (true, t),
                    };
                    let cap = Cap::from_name(name).filter(|c| known.contains(c))?;
                    // A 302 client keeps cap-notify (as Ergo does).
                    (on || !(cap == Cap::CapNotify && v302)).then_some((cap, on))
                })
                .collect();
            match changes.filter(|c| !c.is_empty()) {
                Some(changes) => {
                    if let Some(c) = ctx.me() {
                        let caps = changes
                            .into_iter()
                            .fold(c.caps(), |set, (cap, on)| set.with(cap, on));
                        c.handle.set_caps(caps);
                    }
                    ctx.send(&ctx.from_server("CAP", vec![nick, "ACK".into(), wanted]));
                }
                None => ctx.send(&ctx.from_server("CAP", vec![nick, "NAK".into(), wanted])),
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

/// AUTHENTICATE mechanism | base64 chunk | `+` | `*` (IRCv3 SASL 3.2: PLAIN, and
/// EXTERNAL when the policy logs in by client certificate). Before or after
/// registration; once logged in, 907 (accounts cannot be changed).
pub fn authenticate(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let Some(arg) = msg.param(0).map(str::to_owned) else {
        ctx.need_more_params("AUTHENTICATE");
        return Outcome::Continue;
    };
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    if ctx.cfg.auth.is_none() || !me.has(Cap::Sasl) {
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
    let state = me.sasl.clone();
    let has_cert = me.cert_fingerprint.is_some();
    let external = ctx.cfg.auth.as_ref().is_some_and(|a| a.cert_logins());
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
            } else if external && arg.eq_ignore_ascii_case("EXTERNAL") {
                if !has_cert {
                    ctx.num(
                        ERR_SASLFAIL,
                        &["SASL authentication failed: no client certificate (connect with TLS and a certificate)"],
                    );
                    return Outcome::Continue;
                }
                if let Some(c) = ctx.me_mut() {
                    c.sasl = SaslState::External(String::new());
                }
                ctx.send(&Message::new("AUTHENTICATE", vec!["+".into()]));
            } else {
                let mechs = sasl_mechanisms(ctx);
                ctx.num(RPL_SASLMECHS, &[mechs, "are available SASL mechanisms"]);
                ctx.num(ERR_SASLFAIL, &["SASL authentication failed"]);
            }
            Outcome::Continue
        }
        SaslState::External(mut buf) => {
            let step = push_chunk(&mut buf, &arg);
            let next = match step {
                Chunk::More => SaslState::External(buf),
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
                Chunk::Done(b64) => match decode_external(&b64) {
                    Some(authzid) => Outcome::Verify(AuthRequest {
                        via: AuthVia::External,
                        account: authzid,
                        password: String::new(),
                    }),
                    None => {
                        ctx.num(
                            ERR_SASLFAIL,
                            &["SASL authentication failed: malformed EXTERNAL message"],
                        );
                        count_failure(ctx)
                    }
                },
            }
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
        (AuthVia::Oper, verdict) => {
            crate::irc::oper::oper_result(ctx, verdict);
            Outcome::Continue
        }
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
            if matches!(via, AuthVia::Sasl | AuthVia::External) {
                ctx.num(RPL_SASLSUCCESS, &["SASL authentication successful"]);
            }
            if ctx.registered() {
                // Logged in after registration (SASL 3.2): account-notify.
                let out = ctx.out(Message::new("ACCOUNT", vec![req.account.clone()]));
                ctx.st
                    .to_neighbours_with(ctx.id, Cap::AccountNotify, &out, true);
            }
            try_complete(ctx)
        }
        (AuthVia::Sasl | AuthVia::External, AuthVerdict::Bad) => {
            ctx.num(ERR_SASLFAIL, &["SASL authentication failed"]);
            count_failure(ctx)
        }
        (AuthVia::Sasl | AuthVia::External, AuthVerdict::Throttled(wait)) => {
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
    if ctx
        .me()
        .is_some_and(|me| me.nick.as_deref() == Some(new.as_str()))
    {
        return Outcome::Continue;
    }
    if let Some(claim) = crate::irc::cluster::claim_nick(ctx, &new) {
        return claim;
    }
    let Some(me) = ctx.st.clients.get(&id) else {
        return Outcome::Continue;
    };
    let old_prefix = me.prefix();
    let registered = me.registered;
    if let Some(old) = me.nick.clone() {
        ctx.st.nicks.remove(&names::fold(&old));
    }
    ctx.st.nicks.insert(names::fold(&new), id);
    // A remote user's nick keeps the time its own node gave it (collisions compare it).
    let nick_ts = ctx
        .st
        .cluster
        .take_stamp()
        .map_or_else(|| chrono::Utc::now().timestamp_millis(), |s| s.at);
    if let Some(c) = ctx.me_mut() {
        c.nick = Some(new.clone());
        c.nick_ts = nick_ts;
    }
    if registered {
        let m = Message::new("NICK", vec![new.clone()]).with_prefix(old_prefix.clone());
        let out = ctx.st.from_client(id, m);
        ctx.st.to_self_and_neighbours(id, &out);
        // WHOWAS remembers the old nick; MONITOR sees it go and the new one come (a
        // change of case only is the same nick to MONITOR: nothing to tell).
        let mut renamed = true;
        if let Some(old) = old_prefix.split('!').next().map(str::to_owned) {
            if let Some(c) = ctx.me_mut() {
                c.nick = Some(old.clone());
            }
            ctx.st.remember_nick(id);
            if let Some(c) = ctx.me_mut() {
                c.nick = Some(new.clone());
            }
            renamed = !names::eq(&old, &new);
            if renamed {
                ctx.st.notify_watchers(&old, None, &ctx.cfg.name);
            }
        }
        if renamed {
            let mask = ctx.prefix();
            ctx.st.notify_watchers(&new, Some(&mask), &ctx.cfg.name);
        }
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
    // An empty realname is refused too, as InspIRCd and Ergo do.
    if msg.params.len() < 4 || msg.params[0].is_empty() || msg.params[3].is_empty() {
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
    let (users, _, _) = ctx.st.counts();
    ctx.st.max_users = ctx.st.max_users.max(users);
    welcome(ctx, &prefix);
    if let Some(nick) = ctx.me().and_then(|c| c.nick.clone()) {
        ctx.st.notify_watchers(&nick, Some(&prefix), &ctx.cfg.name);
    }
    Outcome::Continue
}

/// The ISUPPORT tokens we announce.
pub fn isupport_tokens(ctx: &Ctx<'_>) -> Vec<String> {
    vec![
        "CHANTYPES=#".into(),
        format!("NICKLEN={NICKLEN}"),
        format!("CHANNELLEN={CHANNELLEN}"),
        "CASEMAPPING=rfc1459".into(),
        "PREFIX=(ov)@+".into(),
        "CHANMODES=beI,k,l,imnst".into(),
        "EXCEPTS=e".into(),
        "INVEX=I".into(),
        "ELIST=CMNTU".into(),
        "STATUSMSG=@+".into(),
        format!("TOPICLEN={TOPICLEN}"),
        format!("KICKLEN={KICKLEN}"),
        format!("CHANLIMIT=#:{}", ctx.cfg.max_channels),
        format!("MAXLIST=beI:{MAX_BANS}"),
        format!("NETWORK={}", ctx.cfg.network),
        "MODES=4".into(),
        "MAXTARGETS=4".into(),
        "TARGMAX=PRIVMSG:4,NOTICE:4,TAGMSG:4,JOIN:,PART:,KICK:1,NAMES:1,WHOIS:1,USERHOST:5,MONITOR:".into(),
        format!("AWAYLEN={AWAYLEN}"),
        format!("NAMELEN={NAMELEN}"),
        format!("KEYLEN={KEYLEN}"),
        "BOT=B".into(),
        "WHOX".into(),
        format!("MONITOR={}", crate::irc::monitor::MONITOR_LIMIT),
    ]
    .into_iter()
    .chain(crate::irc::chathistory::isupport())
    .collect()
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
    ctx.num(
        RPL_MYINFO,
        &[&name, &ver, "Biow", "Ibeiklmnostv", "Ibeklov"],
    );
    let tokens = isupport_tokens(ctx);
    for chunk in tokens.chunks(ISUPPORT_PER_LINE) {
        let mut params: Vec<&str> = chunk.iter().map(String::as_str).collect();
        params.push("are supported by this server");
        ctx.num(RPL_ISUPPORT, &params);
    }
    query::lusers(ctx);
    query::motd(ctx);
}
