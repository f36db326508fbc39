//! Channel commands: JOIN, PART, TOPIC, NAMES, LIST, KICK and MODE (channel and user).

use crate::irc::channel::Channel;
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names::{self, KICKLEN, TOPICLEN};
use crate::irc::numeric::*;

/// Bytes of nicks per 353 line (leaves room for the prefix and the other params).
const NAMES_LINE_BUDGET: usize = 400;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// JOIN #a,#b | JOIN 0.
pub fn join(ctx: &mut Ctx<'_>, msg: &Message) {
    let list = match msg.param(0) {
        None | Some("") => return ctx.need_more_params("JOIN"),
        Some(l) => l.to_owned(),
    };
    if list == "0" {
        let keys: Vec<String> = ctx
            .me()
            .map(|c| c.channels.iter().cloned().collect())
            .unwrap_or_default();
        for key in keys {
            part_one(ctx, &key, Some("Left all channels"));
        }
        return;
    }
    for name in list.split(',').filter(|n| !n.is_empty()) {
        join_one(ctx, name);
    }
}

fn join_one(ctx: &mut Ctx<'_>, name: &str) {
    if !names::valid_channel(name) {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    }
    let key = names::fold(name);
    let id = ctx.id;
    let Some(me) = ctx.me() else { return };
    if me.channels.contains(&key) {
        return;
    }
    if me.channels.len() >= ctx.cfg.max_channels {
        return ctx.num(
            ERR_TOOMANYCHANNELS,
            &[name, "You have joined too many channels"],
        );
    }
    let prefix = me.prefix();
    match ctx.st.channels.get_mut(&key) {
        Some(ch) => {
            ch.members.insert(id, false);
        }
        None => {
            ctx.st
                .channels
                .insert(key.clone(), Channel::new(name, id, now()));
        }
    }
    if let Some(c) = ctx.me_mut() {
        c.channels.insert(key.clone());
    }
    let Some(ch) = ctx.st.channels.get(&key) else {
        return;
    };
    let join = Message::new("JOIN", vec![ch.name.clone()]).with_prefix(prefix);
    ctx.st.to_channel(ch, &join, None);
    send_topic(ctx, &key, false);
    send_names(ctx, &key);
}

/// 332 + 333, or 331 when `or_none` and there is no topic.
fn send_topic(ctx: &Ctx<'_>, key: &str, or_none: bool) {
    let Some(ch) = ctx.st.channels.get(key) else {
        return;
    };
    match &ch.topic {
        Some(t) => {
            ctx.num(RPL_TOPIC, &[&ch.name, &t.text]);
            ctx.num(
                RPL_TOPICWHOTIME,
                &[&ch.name, &t.set_by, &t.set_at.to_string()],
            );
        }
        None if or_none => ctx.num(RPL_NOTOPIC, &[&ch.name, "No topic is set"]),
        None => {}
    }
}

/// 353 (split to fit the line limit) + 366.
fn send_names(ctx: &Ctx<'_>, key: &str) {
    let Some(ch) = ctx.st.channels.get(key) else {
        return;
    };
    let mut line = String::new();
    for (id, op) in &ch.members {
        let Some(nick) = ctx.st.clients.get(id).and_then(|c| c.nick.as_deref()) else {
            continue;
        };
        if line.len() + nick.len() + 2 > NAMES_LINE_BUDGET {
            ctx.num(RPL_NAMREPLY, &["=", &ch.name, &line]);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        if *op {
            line.push('@');
        }
        line.push_str(nick);
    }
    if !line.is_empty() {
        ctx.num(RPL_NAMREPLY, &["=", &ch.name, &line]);
    }
    ctx.num(RPL_ENDOFNAMES, &[&ch.name, "End of /NAMES list"]);
}

/// PART #a,#b [reason].
pub fn part(ctx: &mut Ctx<'_>, msg: &Message) {
    let list = match msg.param(0) {
        None | Some("") => return ctx.need_more_params("PART"),
        Some(l) => l.to_owned(),
    };
    let reason = msg.param(1).filter(|r| !r.is_empty()).map(str::to_owned);
    for name in list.split(',').filter(|n| !n.is_empty()) {
        let key = names::fold(name);
        if !ctx.st.channels.contains_key(&key) {
            ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
        } else if !ctx.me().is_some_and(|c| c.channels.contains(&key)) {
            ctx.num(ERR_NOTONCHANNEL, &[name, "You're not on that channel"]);
        } else {
            part_one(ctx, &key, reason.as_deref());
        }
    }
}

fn part_one(ctx: &mut Ctx<'_>, key: &str, reason: Option<&str>) {
    let Some(ch) = ctx.st.channels.get(key) else {
        return;
    };
    let mut params = vec![ch.name.clone()];
    params.extend(reason.map(str::to_owned));
    let m = Message::new("PART", params).with_prefix(ctx.prefix());
    ctx.st.to_channel(ch, &m, None);
    ctx.st.leave(ctx.id, key);
}

/// TOPIC #c [text].
pub fn topic(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(name) = msg.param(0).filter(|n| !n.is_empty()) else {
        return ctx.need_more_params("TOPIC");
    };
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    };
    let Some(text) = msg.param(1) else {
        return send_topic(ctx, &key, true);
    };
    if !ch.has(ctx.id) {
        return ctx.num(ERR_NOTONCHANNEL, &[&ch.name, "You're not on that channel"]);
    }
    if ch.topic_ops_only && !ch.is_op(ctx.id) {
        return ctx.num(
            ERR_CHANOPRIVSNEEDED,
            &[&ch.name, "You're not channel operator"],
        );
    }
    let text: String = text.chars().take(TOPICLEN).collect();
    let nick = ctx.nick();
    let prefix = ctx.prefix();
    let Some(ch) = ctx.st.channels.get_mut(&key) else {
        return;
    };
    ch.topic = (!text.is_empty()).then(|| crate::irc::channel::Topic {
        text: text.clone(),
        set_by: nick,
        set_at: now(),
    });
    let m = Message::new("TOPIC", vec![ch.name.clone(), text]).with_prefix(prefix);
    if let Some(ch) = ctx.st.channels.get(&key) {
        ctx.st.to_channel(ch, &m, None);
    }
}

/// NAMES [#c,#d].
pub fn names(ctx: &mut Ctx<'_>, msg: &Message) {
    match msg.param(0).filter(|p| !p.is_empty()) {
        None => ctx.num(RPL_ENDOFNAMES, &["*", "End of /NAMES list"]),
        Some(list) => {
            for name in list.split(',').filter(|n| !n.is_empty()) {
                let key = names::fold(name);
                if ctx.st.channels.contains_key(&key) {
                    send_names(ctx, &key);
                } else {
                    ctx.num(RPL_ENDOFNAMES, &[name, "End of /NAMES list"]);
                }
            }
        }
    }
}

/// LIST [#c,#d].
pub fn list(ctx: &mut Ctx<'_>, msg: &Message) {
    ctx.num(RPL_LISTSTART, &["Channel", "Users  Name"]);
    let wanted: Option<Vec<String>> = msg
        .param(0)
        .filter(|p| !p.is_empty())
        .map(|l| l.split(',').map(names::fold).collect());
    let mut chans: Vec<&Channel> = ctx
        .st
        .channels
        .iter()
        .filter(|(k, _)| wanted.as_ref().map_or(true, |w| w.contains(k)))
        .map(|(_, c)| c)
        .collect();
    chans.sort_by(|a, b| a.name.cmp(&b.name));
    for ch in chans {
        let topic = ch.topic.as_ref().map_or("", |t| t.text.as_str());
        ctx.num(RPL_LIST, &[&ch.name, &ch.members.len().to_string(), topic]);
    }
    ctx.num(RPL_LISTEND, &["End of /LIST"]);
}

/// KICK #c nick[,nick] [reason].
pub fn kick(ctx: &mut Ctx<'_>, msg: &Message) {
    let (Some(name), Some(targets)) = (msg.param(0), msg.param(1)) else {
        return ctx.need_more_params("KICK");
    };
    if name.is_empty() || targets.is_empty() {
        return ctx.need_more_params("KICK");
    }
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    };
    if !ch.has(ctx.id) {
        return ctx.num(ERR_NOTONCHANNEL, &[&ch.name, "You're not on that channel"]);
    }
    if !ch.is_op(ctx.id) {
        return ctx.num(
            ERR_CHANOPRIVSNEEDED,
            &[&ch.name, "You're not channel operator"],
        );
    }
    let nick = ctx.nick();
    let reason: String = msg
        .param(2)
        .filter(|r| !r.is_empty())
        .unwrap_or(&nick)
        .chars()
        .take(KICKLEN)
        .collect();
    let prefix = ctx.prefix();
    for target in targets.split(',').filter(|t| !t.is_empty()) {
        let Some(tid) = ctx.st.by_nick(target) else {
            ctx.num(ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
            continue;
        };
        let Some(ch) = ctx.st.channels.get(&key) else {
            return;
        };
        if !ch.has(tid) {
            ctx.num(
                ERR_USERNOTINCHANNEL,
                &[target, &ch.name, "They aren't on that channel"],
            );
            continue;
        }
        let tnick = ctx
            .st
            .clients
            .get(&tid)
            .map(|c| c.nick_or_star().to_owned());
        let m = Message::new(
            "KICK",
            vec![ch.name.clone(), tnick.unwrap_or_default(), reason.clone()],
        )
        .with_prefix(prefix.clone());
        ctx.st.to_channel(ch, &m, None);
        ctx.st.leave(tid, &key);
    }
}

/// MODE target [modes [args...]].
pub fn mode(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(target) = msg.param(0).filter(|t| !t.is_empty()) else {
        return ctx.need_more_params("MODE");
    };
    if names::is_channel(target) {
        channel_mode(ctx, target, &msg.params[1..]);
    } else {
        user_mode(ctx, target, msg.param(1));
    }
}

fn channel_mode(ctx: &mut Ctx<'_>, name: &str, args: &[String]) {
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    };
    let cname = ch.name.clone();
    let Some(modes) = args.first() else {
        ctx.num(RPL_CHANNELMODEIS, &[&cname, &ch.modes()]);
        ctx.num(RPL_CREATIONTIME, &[&cname, &ch.created.to_string()]);
        return;
    };
    let is_op = ch.is_op(ctx.id);
    let mut rest = args[1..].iter();
    let mut adding = true;
    let mut applied_modes = String::new();
    let mut applied_args: Vec<String> = Vec::new();
    let mut last_sign = None;
    let mut denied = false;
    for c in modes.chars().take(32) {
        match c {
            '+' => adding = true,
            '-' => adding = false,
            // List queries: we keep no ban/exception/invite lists, so each is empty.
            'b' | 'e' | 'I' if args.len() == 1 => {
                let (code, text) = match c {
                    'b' => (RPL_ENDOFBANLIST, "End of channel ban list"),
                    'e' => (RPL_EXCEPTLIST_END, "End of channel exception list"),
                    _ => (RPL_INVITELIST_END, "End of channel invite list"),
                };
                ctx.num(code, &[&cname, text]);
            }
            'n' | 't' | 'o' => {
                if !is_op {
                    denied = true;
                    if c == 'o' {
                        rest.next();
                    }
                    continue;
                }
                let Some(ch) = ctx.st.channels.get_mut(&key) else {
                    return;
                };
                let arg = if c == 'o' {
                    let Some(nick) = rest.next() else { continue };
                    let Some(tid) = ctx.st.by_nick(nick) else {
                        ctx.num(ERR_NOSUCHNICK, &[nick, "No such nick/channel"]);
                        continue;
                    };
                    let Some(ch) = ctx.st.channels.get_mut(&key) else {
                        return;
                    };
                    let Some(op) = ch.members.get_mut(&tid) else {
                        ctx.num(
                            ERR_USERNOTINCHANNEL,
                            &[nick, &cname, "They aren't on that channel"],
                        );
                        continue;
                    };
                    if *op == adding {
                        continue;
                    }
                    *op = adding;
                    let shown = ctx
                        .st
                        .clients
                        .get(&tid)
                        .map(|c| c.nick_or_star().to_owned());
                    Some(shown.unwrap_or_default())
                } else {
                    let flag = if c == 'n' {
                        &mut ch.no_external
                    } else {
                        &mut ch.topic_ops_only
                    };
                    if *flag == adding {
                        continue;
                    }
                    *flag = adding;
                    None
                };
                if last_sign != Some(adding) {
                    applied_modes.push(if adding { '+' } else { '-' });
                    last_sign = Some(adding);
                }
                applied_modes.push(c);
                applied_args.extend(arg);
            }
            other => ctx.num(
                ERR_UNKNOWNMODE,
                &[&other.to_string(), "is unknown mode char to me"],
            ),
        }
    }
    if denied {
        ctx.num(
            ERR_CHANOPRIVSNEEDED,
            &[&cname, "You're not channel operator"],
        );
    }
    if !applied_modes.is_empty() {
        let mut params = vec![cname, applied_modes];
        params.extend(applied_args);
        let m = Message::new("MODE", params).with_prefix(ctx.prefix());
        if let Some(ch) = ctx.st.channels.get(&key) {
            ctx.st.to_channel(ch, &m, None);
        }
    }
}

fn user_mode(ctx: &mut Ctx<'_>, target: &str, modes: Option<&str>) {
    let me = ctx.nick();
    if !names::eq(target, &me) {
        if ctx.st.by_nick(target).is_some() {
            ctx.num(ERR_USERSDONTMATCH, &["Cant change mode for other users"]);
        } else {
            ctx.num(ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
        }
        return;
    }
    let Some(modes) = modes else {
        let current: String = ctx
            .me()
            .map(|c| c.modes.iter().collect())
            .unwrap_or_default();
        return ctx.num(RPL_UMODEIS, &[&format!("+{current}")]);
    };
    let mut adding = true;
    let mut applied = String::new();
    let mut last_sign = None;
    let mut unknown = false;
    for c in modes.chars().take(32) {
        match c {
            '+' => adding = true,
            '-' => adding = false,
            'i' | 'w' => {
                let Some(client) = ctx.me_mut() else { return };
                let changed = if adding {
                    client.modes.insert(c)
                } else {
                    client.modes.remove(&c)
                };
                if changed {
                    if last_sign != Some(adding) {
                        applied.push(if adding { '+' } else { '-' });
                        last_sign = Some(adding);
                    }
                    applied.push(c);
                }
            }
            _ => unknown = true,
        }
    }
    if unknown {
        ctx.num(ERR_UMODEUNKNOWNFLAG, &["Unknown MODE flag"]);
    }
    if !applied.is_empty() {
        let m = Message::new("MODE", vec![me.clone(), applied]).with_prefix(me);
        ctx.send(&m);
    }
}
