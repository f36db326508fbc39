//! Registration: CAP, PASS, NICK, USER and the welcome burst (001–005, LUSERS, MOTD).
//!
//! A client that sends `CAP LS`/`CAP REQ` is held until `CAP END`; we offer no
//! capabilities (`CAP * LS :`) and refuse every request (`NAK`).

use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::Message;
use crate::irc::names::{self, CHANNELLEN, KICKLEN, NICKLEN, TOPICLEN};
use crate::irc::numeric::*;
use crate::irc::query;

/// Most ISUPPORT tokens per 005 line.
const ISUPPORT_PER_LINE: usize = 13;

/// The server's version string.
pub fn version() -> String {
    format!("sockit-{}", env!("CARGO_PKG_VERSION"))
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
            ctx.send(&ctx.from_server("CAP", vec![nick, "LS".into(), String::new()]));
        }
        "LIST" => ctx.send(&ctx.from_server("CAP", vec![nick, "LIST".into(), String::new()])),
        "REQ" => {
            hold(ctx);
            let wanted = msg.param(1).unwrap_or("").to_owned();
            ctx.send(&ctx.from_server("CAP", vec![nick, "NAK".into(), wanted]));
        }
        "END" => {
            if let Some(c) = ctx.me_mut() {
                c.cap_negotiating = false;
            }
            return try_complete(ctx);
        }
        _ => ctx.num(ERR_INVALIDCAPCMD, &[&sub, "Invalid CAP command"]),
    }
    Outcome::Continue
}

/// PASS password (before registration).
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

/// Completes registration once NICK and USER are in and CAP negotiation is over.
pub fn try_complete(ctx: &mut Ctx<'_>) -> Outcome {
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    if me.registered || me.nick.is_none() || me.user.is_none() || me.cap_negotiating {
        return Outcome::Continue;
    }
    if let Some(want) = &ctx.cfg.password {
        if me.pass.as_deref() != Some(want.as_str()) {
            ctx.num(ERR_PASSWDMISMATCH, &["Password incorrect"]);
            return Outcome::Close("Bad password".into());
        }
    }
    let prefix = me.prefix();
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
