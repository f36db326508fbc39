//! Queries: WHO (and WHOX), WHOIS, WHOWAS, USERHOST, ISON, LUSERS, TIME, MOTD, VERSION,
//! INFO, ADMIN.

use crate::irc::caps::Cap;
use crate::irc::channel::{mask_matches, ClientId, Member};
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::*;
use crate::irc::register::version;

/// `WHO #channel` | `WHO mask [o][%fields[,token]]` → 352 (or 354 with WHOX fields)
/// per user, then 315.
///
/// A channel lists its members (a secret channel only to members; invisible members
/// only to those who share it); another mask is matched (`*`, `?`) against nick, user,
/// host, server and realname of every user, invisible users only when they share a
/// channel with the asker. Flags: `H`/`G` (here/gone), `*` for an IRC operator, the
/// channel prefixes (all of them with `multi-prefix`), `B` for a bot. `o` keeps only IRC
/// operators.
///
/// WHOX (ISUPPORT `WHOX`): after `%`, the fields wanted among `tcuihsnfdlaor`, answered
/// in that order in `354`, and after a comma a token (1–3 digits) for `t`. `i` is the
/// IP (`255.255.255.255` when CHGHOST hid it, but to operators and the user). `a` is `0`
/// without an account, `o` (the channel op level) is `n/a`, `d` (hops) is `0`, `l` the
/// idle seconds.
pub fn who(ctx: &mut Ctx<'_>, msg: &Message) {
    let mask = msg
        .param(0)
        .filter(|m| !m.is_empty())
        .unwrap_or("*")
        .to_owned();
    // `WHO 0` is the RFC 1459 spelling of "everyone".
    let pattern = if mask == "0" { "*" } else { mask.as_str() };
    let options = msg.param(1).unwrap_or("");
    let (flags, whox) = match options.split_once('%') {
        Some((f, x)) => (f, Some(Whox::parse(x))),
        None => (options, None),
    };
    let opers_only = flags.contains('o');
    let me = ctx.id;
    let multi = ctx.me().is_some_and(|c| c.has(Cap::MultiPrefix));
    let neighbours = ctx.st.neighbours(me);
    let mut rows: Vec<(ClientId, String, Option<Member>)> = Vec::new();
    if names::is_channel(&mask) {
        if let Some(ch) = ctx.st.channels.get(&names::fold(&mask)) {
            let member = ch.has(me);
            if member || !ch.secret {
                for (id, m) in &ch.members {
                    let invisible = ctx
                        .st
                        .clients
                        .get(id)
                        .is_some_and(|c| c.modes.contains(&'i'));
                    if member || !invisible {
                        rows.push((*id, ch.name.clone(), Some(*m)));
                    }
                }
            }
        }
    } else {
        let mut ids: Vec<&ClientId> = ctx.st.clients.keys().collect();
        ids.sort();
        for id in ids {
            let Some(c) = ctx.st.clients.get(id) else {
                continue;
            };
            if !c.registered {
                continue;
            }
            let visible = *id == me || !c.modes.contains(&'i') || neighbours.contains(id);
            let fields = [
                c.nick_or_star(),
                c.user.as_deref().unwrap_or("*"),
                c.host.as_str(),
                server_of(ctx, *id),
                c.realname.as_str(),
            ];
            if visible && fields.iter().any(|f| mask_matches(pattern, f)) {
                rows.push((*id, "*".into(), None));
            }
        }
    }
    for (id, channel, member) in rows {
        if opers_only && !ctx.st.clients.get(&id).is_some_and(|c| c.is_oper()) {
            continue;
        }
        match &whox {
            Some(x) => whox_reply(ctx, x, id, &channel, member, multi),
            None => who_reply(ctx, id, &channel, member, multi),
        }
    }
    ctx.num(RPL_ENDOFWHO, &[&mask, "End of WHO list"]);
}

/// The fields and token of a WHOX query (`%tcuihsnfdlaor,123`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Whox {
    /// The field letters asked for (unknown ones ignored).
    pub fields: String,
    /// The token echoed for `t` (`0` when none was given).
    pub token: String,
}

impl Whox {
    /// Every field WHOX knows, in the order of the 354 reply.
    pub const ORDER: &'static str = "tcuihsnfdlaor";

    /// Parses what follows `%`.
    pub fn parse(spec: &str) -> Self {
        let (fields, token) = spec.split_once(',').unwrap_or((spec, ""));
        let token: String = token
            .chars()
            .take_while(char::is_ascii_digit)
            .take(3)
            .collect();
        Self {
            fields: fields
                .chars()
                .filter(|c| Self::ORDER.contains(*c))
                .collect(),
            token: if token.is_empty() { "0".into() } else { token },
        }
    }
}

/// The WHO flags of `id`: `H`/`G`, `*` (operator), channel prefixes, `B` (bot).
fn who_flags(ctx: &Ctx<'_>, id: ClientId, member: Option<Member>, multi: bool) -> String {
    let Some(c) = ctx.st.clients.get(&id) else {
        return String::new();
    };
    let mut flags = String::from(if c.away.is_some() { "G" } else { "H" });
    if c.is_oper() {
        flags.push('*');
    }
    if let Some(m) = member {
        flags.push_str(&m.prefixes(multi));
    }
    if c.is_bot() {
        flags.push('B');
    }
    flags
}

/// The server user `id` is on: its node for a remote user of a cluster, else this one.
fn server_of<'a>(ctx: &'a Ctx<'_>, id: ClientId) -> &'a str {
    ctx.st.cluster.node_of(id).unwrap_or(&ctx.cfg.name)
}

/// The hop count WHO shows: 1 for a remote user of a cluster, 0 here.
fn hops_of(ctx: &Ctx<'_>, id: ClientId) -> &'static str {
    if ctx.st.cluster.is_proxy(id) {
        "1"
    } else {
        "0"
    }
}

fn who_reply(ctx: &Ctx<'_>, id: ClientId, channel: &str, member: Option<Member>, multi: bool) {
    let Some(c) = ctx.st.clients.get(&id) else {
        return;
    };
    let flags = who_flags(ctx, id, member, multi);
    ctx.num(
        RPL_WHOREPLY,
        &[
            channel,
            c.user.as_deref().unwrap_or("*"),
            &c.host,
            server_of(ctx, id),
            c.nick_or_star(),
            &flags,
            &format!("{} {}", hops_of(ctx, id), c.realname),
        ],
    );
}

fn whox_reply(
    ctx: &Ctx<'_>,
    x: &Whox,
    id: ClientId,
    channel: &str,
    member: Option<Member>,
    multi: bool,
) {
    let Some(c) = ctx.st.clients.get(&id) else {
        return;
    };
    // A changed host hides the IP from all but operators and the user itself.
    let asker_sees_ip = id == ctx.id || ctx.me().is_some_and(|m| m.is_oper());
    let mut params: Vec<String> = Vec::new();
    for f in Whox::ORDER.chars().filter(|f| x.fields.contains(*f)) {
        params.push(match f {
            't' => x.token.clone(),
            'c' => channel.to_owned(),
            'u' => c.user.clone().unwrap_or_else(|| "*".into()),
            'i' if c.ip == c.host || asker_sees_ip => c.ip.clone(),
            'i' => "255.255.255.255".into(),
            'h' => c.host.clone(),
            's' => server_of(ctx, id).to_owned(),
            'n' => c.nick_or_star().to_owned(),
            'f' => who_flags(ctx, id, member, multi),
            'd' => hops_of(ctx, id).into(),
            'l' => c.last_spoke.elapsed().as_secs().to_string(),
            'a' => c.account.clone().unwrap_or_else(|| "0".into()),
            'o' => "n/a".into(),
            _ => c.realname.clone(),
        });
    }
    // Only the last parameter may be empty or hold spaces (the realname is last).
    let params: Vec<&str> = params.iter().map(String::as_str).collect();
    ctx.num(RPL_WHOSPCRPL, &params);
}

/// USERHOST nick [nick...] (at most 5) → 302 `nick=+user@host` (`-` when away).
pub fn userhost(ctx: &mut Ctx<'_>, msg: &Message) {
    if msg.params.is_empty() {
        return ctx.need_more_params("USERHOST");
    }
    let replies: Vec<String> = msg
        .params
        .iter()
        .flat_map(|p| p.split(' '))
        .filter(|n| !n.is_empty())
        .take(5)
        .filter_map(|n| ctx.st.by_nick(n).and_then(|id| ctx.st.clients.get(&id)))
        .map(|c| {
            format!(
                "{}={}{}@{}",
                c.nick_or_star(),
                if c.away.is_some() { '-' } else { '+' },
                c.user.as_deref().unwrap_or("*"),
                c.host
            )
        })
        .collect();
    ctx.num(RPL_USERHOST, &[&replies.join(" ")]);
}

/// `TIME [server]` → 391 with the server's local time (402 for another server).
pub fn time(ctx: &mut Ctx<'_>, msg: &Message) {
    if let Some(server) = msg.param(0).filter(|s| !s.is_empty()) {
        if !mask_matches(server, &ctx.cfg.name) {
            return ctx.num(ERR_NOSUCHSERVER, &[server, "No such server"]);
        }
    }
    let now = chrono::Local::now();
    ctx.num(
        RPL_TIME,
        &[
            &ctx.cfg.name,
            &now.timestamp().to_string(),
            "0",
            &now.format("%A %B %d %Y -- %H:%M:%S %:z").to_string(),
        ],
    );
}

/// `WHOIS [server] nick`.
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
    let multi = ctx.me().is_some_and(|c| c.has(Cap::MultiPrefix));
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
        .filter(|ch| !ch.secret || ch.has(ctx.id))
        .map(|ch| {
            let m = ch.members.get(&id).copied().unwrap_or_default();
            format!("{}{}", m.prefixes(multi), ch.name)
        })
        .collect();
    if !chans.is_empty() {
        ctx.num(RPL_WHOISCHANNELS, &[&shown, &chans.join(" ")]);
    }
    // A remote user of a cluster is on its own node.
    let server = ctx.st.cluster.node_of(id).unwrap_or(&ctx.cfg.name);
    ctx.num(RPL_WHOISSERVER, &[&shown, server, "sockit IRC server"]);
    if c.is_oper() {
        ctx.num(RPL_WHOISOPERATOR, &[&shown, "is an IRC operator"]);
    }
    if c.is_bot() {
        ctx.num(RPL_WHOISBOT, &[&shown, "is a bot"]);
    }
    if let Some(account) = &c.account {
        ctx.num(RPL_WHOISACCOUNT, &[&shown, account, "is logged in as"]);
    }
    // The certificate fingerprint only to the client itself and to operators (as Ergo
    // and InspIRCd show it).
    let sees_cert = id == ctx.id || ctx.me().is_some_and(|m| m.is_oper());
    if let Some(fp) = c.cert_fingerprint.as_ref().filter(|_| sees_cert) {
        let text = format!("has client certificate fingerprint {fp}");
        ctx.num(RPL_WHOISCERTFP, &[&shown, &text]);
    }
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

/// LUSERS → 251–255, 265, 266.
pub fn lusers(ctx: &mut Ctx<'_>) {
    let (users, unknown, channels) = ctx.st.counts();
    let invisible = ctx
        .st
        .clients
        .values()
        .filter(|c| c.registered && c.modes.contains(&'i'))
        .count();
    let max = ctx.st.max_users.max(users);
    // A cluster node counts the whole network (remote users are in `clients`); 255 and
    // 265 count this server's own users, and the other nodes as its servers.
    let local = ctx.st.local_users();
    let max_local = ctx.st.max_local_users.max(local);
    ctx.st.max_local_users = max_local;
    let others = ctx.st.cluster.other_nodes();
    ctx.num(
        RPL_LUSERCLIENT,
        &[&format!(
            "There are {} users and {invisible} invisible on {} servers",
            users - invisible,
            others + 1
        )],
    );
    let opers = ctx
        .st
        .clients
        .values()
        .filter(|c| c.registered && c.is_oper())
        .count();
    ctx.num(RPL_LUSEROP, &[&opers.to_string(), "operator(s) online"]);
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
        &[&format!("I have {local} clients and {others} servers")],
    );
    let (l, ml) = (local.to_string(), max_local.to_string());
    ctx.num(
        RPL_LOCALUSERS,
        &[
            &l,
            &ml,
            &format!("Current local users {local}, max {max_local}"),
        ],
    );
    let (u, m) = (users.to_string(), max.to_string());
    ctx.num(
        RPL_GLOBALUSERS,
        &[&u, &m, &format!("Current global users {users}, max {max}")],
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

/// `WHOWAS nick[,nick] [count]` → per nick, its former users newest first (`314`, `312`,
/// `330` when logged in; at most `count` of them when positive), or `406`; then `369`.
pub fn whowas(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(list) = msg.param(0).filter(|n| !n.is_empty()) else {
        return ctx.num(ERR_NONICKNAMEGIVEN, &["No nickname given"]);
    };
    let count = msg
        .param(1)
        .and_then(|c| c.parse::<usize>().ok())
        .filter(|c| *c > 0)
        .unwrap_or(usize::MAX);
    for nick in list.split(',').filter(|n| !n.is_empty()) {
        let entries: Vec<_> = ctx
            .st
            .whowas
            .get(&names::fold(nick))
            .map(|l| l.iter().take(count).cloned().collect())
            .unwrap_or_default();
        if entries.is_empty() {
            ctx.num(ERR_WASNOSUCHNICK, &[nick, "There was no such nickname"]);
        }
        for e in entries {
            ctx.num(
                RPL_WHOWASUSER,
                &[&e.nick, &e.user, &e.host, "*", &e.realname],
            );
            let when = chrono::DateTime::from_timestamp(e.at, 0)
                .map(|t| t.format("%a %b %e %H:%M:%S %Y UTC").to_string())
                .unwrap_or_default();
            ctx.num(RPL_WHOISSERVER, &[&e.nick, &ctx.cfg.name, &when]);
            if let Some(a) = &e.account {
                ctx.num(RPL_WHOISACCOUNT, &[&e.nick, a, "was logged in as"]);
            }
        }
        ctx.num(RPL_ENDOFWHOWAS, &[nick, "End of WHOWAS"]);
    }
}

/// `INFO [server]` → `371` lines about the server, then `374`; `402` for another server.
pub fn info(ctx: &mut Ctx<'_>, msg: &Message) {
    if let Some(server) = msg.param(0).filter(|s| !s.is_empty()) {
        if !mask_matches(server, &ctx.cfg.name) {
            return ctx.num(ERR_NOSUCHSERVER, &[server, "No such server"]);
        }
    }
    let lines = [
        format!("{} ({})", version(), env!("CARGO_PKG_DESCRIPTION")),
        format!("License: {}", env!("CARGO_PKG_LICENSE")),
        "RFC 1459/2812 as modern.ircdocs.horse documents them, and IRCv3.".to_owned(),
        format!("On-line since {}", ctx.created),
    ];
    for l in &lines {
        ctx.num(RPL_INFO, &[l]);
    }
    ctx.num(RPL_ENDOFINFO, &["End of INFO list"]);
}

/// `ADMIN [server]` → `256`, `257`, `258`, `259`; `402` for another server.
pub fn admin(ctx: &mut Ctx<'_>, msg: &Message) {
    if let Some(server) = msg.param(0).filter(|s| !s.is_empty()) {
        if !mask_matches(server, &ctx.cfg.name) && ctx.st.by_nick(server).is_none() {
            return ctx.num(ERR_NOSUCHSERVER, &[server, "No such server"]);
        }
    }
    let name = ctx.cfg.name.clone();
    let a = ctx.cfg.admin.clone();
    ctx.num(RPL_ADMINME, &[&name, "Administrative info"]);
    ctx.num(RPL_ADMINLOC1, &[&a.location]);
    ctx.num(RPL_ADMINLOC2, &[&a.details]);
    ctx.num(RPL_ADMINEMAIL, &[&a.email]);
}

#[cfg(test)]
mod tests {
    use super::Whox;

    #[test]
    fn whox_specs() {
        assert_eq!(
            Whox::parse("nuf,123"),
            Whox {
                fields: "nuf".into(),
                token: "123".into()
            }
        );
        assert_eq!(Whox::parse("tn").token, "0");
        assert_eq!(Whox::parse("tn,12345").token, "123");
        assert_eq!(Whox::parse("tn,x").token, "0");
        assert_eq!(Whox::parse("xyzn%").fields, "n");
        assert_eq!(Whox::parse("").fields, "");
    }
}
