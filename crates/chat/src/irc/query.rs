//! Queries: WHO, WHOIS, ISON, LUSERS, MOTD, VERSION.

use crate::irc::channel::ClientId;
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::*;
use crate::irc::register::version;

/// WHO #channel | WHO nick → 352 per user, then 315.
pub fn who(ctx: &mut Ctx<'_>, msg: &Message) {
    let mask = msg
        .param(0)
        .filter(|m| !m.is_empty())
        .unwrap_or("*")
        .to_owned();
    if names::is_channel(&mask) {
        if let Some(ch) = ctx.st.channels.get(&names::fold(&mask)) {
            for (id, op) in &ch.members {
                who_reply(ctx, *id, &ch.name, *op);
            }
        }
    } else if let Some(id) = ctx.st.by_nick(&mask) {
        who_reply(ctx, id, "*", false);
    }
    ctx.num(RPL_ENDOFWHO, &[&mask, "End of WHO list"]);
}

fn who_reply(ctx: &Ctx<'_>, id: ClientId, channel: &str, op: bool) {
    let Some(c) = ctx.st.clients.get(&id) else {
        return;
    };
    let mut flags = String::from(if c.away.is_some() { "G" } else { "H" });
    if op {
        flags.push('@');
    }
    ctx.num(
        RPL_WHOREPLY,
        &[
            channel,
            c.user.as_deref().unwrap_or("*"),
            &c.host,
            &ctx.cfg.name,
            c.nick_or_star(),
            &flags,
            &format!("0 {}", c.realname),
        ],
    );
}

/// WHOIS [server] nick.
pub fn whois(ctx: &mut Ctx<'_>, msg: &Message) {
    let nick = match msg.params.len() {
        0 => None,
        1 => msg.param(0),
        _ => msg.param(1),
    };
    let Some(nick) = nick.filter(|n| !n.is_empty()).map(str::to_owned) else {
        return ctx.num(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
    };
    let nick = nick.split(',').next().unwrap_or("").to_owned();
    let Some((id, c)) = ctx
        .st
        .by_nick(&nick)
        .and_then(|id| Some((id, ctx.st.clients.get(&id)?)))
    else {
        ctx.num(ERR_NOSUCHNICK, &[&nick, "No such nick/channel"]);
        return ctx.num(RPL_ENDOFWHOIS, &[&nick, "End of /WHOIS list"]);
    };
    let shown = c.nick_or_star().to_owned();
    ctx.num(
        RPL_WHOISUSER,
        &[
            &shown,
            c.user.as_deref().unwrap_or("*"),
            &c.host,
            "*",
            &c.realname,
        ],
    );
    let chans: Vec<String> = c
        .channels
        .iter()
        .filter_map(|k| ctx.st.channels.get(k))
        .map(|ch| format!("{}{}", if ch.is_op(id) { "@" } else { "" }, ch.name))
        .collect();
    if !chans.is_empty() {
        ctx.num(RPL_WHOISCHANNELS, &[&shown, &chans.join(" ")]);
    }
    ctx.num(
        RPL_WHOISSERVER,
        &[&shown, &ctx.cfg.name, "sockit IRC server"],
    );
    if let Some(away) = &c.away {
        ctx.num(RPL_AWAY, &[&shown, away]);
    }
    let idle = c.last_spoke.elapsed().as_secs().to_string();
    let signon = c.signon.to_string();
    ctx.num(
        RPL_WHOISIDLE,
        &[&shown, &idle, &signon, "seconds idle, signon time"],
    );
    ctx.num(RPL_ENDOFWHOIS, &[&shown, "End of /WHOIS list"]);
}

/// ISON nick nick... → 303 with those online.
pub fn ison(ctx: &mut Ctx<'_>, msg: &Message) {
    if msg.params.is_empty() {
        return ctx.need_more_params("ISON");
    }
    let online: Vec<String> = msg
        .params
        .iter()
        .flat_map(|p| p.split(' '))
        .filter_map(|n| ctx.st.by_nick(n).and_then(|id| ctx.st.clients.get(&id)))
        .map(|c| c.nick_or_star().to_owned())
        .collect();
    ctx.num(RPL_ISON, &[&online.join(" ")]);
}

/// LUSERS → 251–255.
pub fn lusers(ctx: &mut Ctx<'_>) {
    let (users, unknown, channels) = ctx.st.counts();
    ctx.num(
        RPL_LUSERCLIENT,
        &[&format!(
            "There are {users} users and 0 invisible on 1 servers"
        )],
    );
    ctx.num(RPL_LUSEROP, &["0", "operator(s) online"]);
    ctx.num(
        RPL_LUSERUNKNOWN,
        &[&unknown.to_string(), "unknown connection(s)"],
    );
    ctx.num(
        RPL_LUSERCHANNELS,
        &[&channels.to_string(), "channels formed"],
    );
    ctx.num(
        RPL_LUSERME,
        &[&format!("I have {users} clients and 0 servers")],
    );
}

/// MOTD → 375, 372..., 376, or 422 when there is none.
pub fn motd(ctx: &mut Ctx<'_>) {
    match &ctx.cfg.motd {
        None => ctx.num(ERR_NOMOTD, &["MOTD File is missing"]),
        Some(lines) => {
            ctx.num(
                RPL_MOTDSTART,
                &[&format!("- {} Message of the day - ", ctx.cfg.name)],
            );
            for l in lines {
                ctx.num(RPL_MOTD, &[&format!("- {l}")]);
            }
            ctx.num(RPL_ENDOFMOTD, &["End of /MOTD command."]);
        }
    }
}

/// VERSION → 351.
pub fn version_cmd(ctx: &mut Ctx<'_>) {
    ctx.num(
        RPL_VERSION,
        &[&version(), &ctx.cfg.name, "sockit IRC server"],
    );
}
