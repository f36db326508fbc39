//! Channel commands: JOIN, PART, TOPIC, NAMES, LIST, KICK, INVITE and MODE (channel and
//! user).

use crate::irc::caps::Cap;
use crate::irc::channel::{mask_matches, normalize_mask, Ban, Channel, ClientId, Member};
use crate::irc::chanserv;
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names::{self, KICKLEN, TOPICLEN};
use crate::irc::numeric::*;

/// Bytes of nicks per 353 line (leaves room for the prefix and the other params).
const NAMES_LINE_BUDGET: usize = 400;

/// Most bans per channel (ISUPPORT `MAXLIST=b:100`).
pub const MAX_BANS: usize = 100;

/// Longest channel key (+k).
pub const KEYLEN: usize = 32;

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// `JOIN #a,#b [key,key]` | `JOIN 0`.
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
    let keys: Vec<String> = msg
        .param(1)
        .map(|k| k.split(',').map(str::to_owned).collect())
        .unwrap_or_default();
    for (i, name) in list.split(',').enumerate().filter(|(_, n)| !n.is_empty()) {
        join_one(ctx, name, keys.get(i).map(String::as_str));
    }
}

fn join_one(ctx: &mut Ctx<'_>, name: &str, key_given: Option<&str>) {
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
    let (account, realname, away) = (me.account.clone(), me.realname.clone(), me.away.clone());
    match ctx.st.channels.get_mut(&key) {
        Some(ch) => {
            // The founder and +o AMODE accounts of a registered channel join past these.
            let invited = ch.invited.contains(&id) || chanserv::may_bypass(ch, account.as_deref());
            let refusal = if ch.is_banned(&prefix) && !invited {
                Some((ERR_BANNEDFROMCHAN, "Cannot join channel (+b)"))
            } else if ch.invite_only && !invited && !ch.is_invex(&prefix) {
                Some((ERR_INVITEONLYCHAN, "Cannot join channel (+i)"))
            } else if ch.key.as_deref().is_some_and(|k| Some(k) != key_given) && !invited {
                Some((ERR_BADCHANNELKEY, "Cannot join channel (+k)"))
            } else if ch.limit.is_some_and(|l| ch.members.len() >= l) && !invited {
                Some((ERR_CHANNELISFULL, "Cannot join channel (+l)"))
            } else {
                None
            };
            if let Some((code, text)) = refusal {
                let cname = ch.name.clone();
                return ctx.num(code, &[&cname, text]);
            }
            ch.invited.remove(&id);
            ch.members.insert(id, Member::default());
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
    let plain = ctx.out(Message::new("JOIN", vec![ch.name.clone()]));
    let extended = ctx.out(Message::new(
        "JOIN",
        vec![
            ch.name.clone(),
            account.unwrap_or_else(|| "*".into()),
            realname,
        ],
    ));
    let away_out = away.map(|a| ctx.out(Message::new("AWAY", vec![a])));
    for mid in ch.members.keys() {
        let Some(c) = ctx.st.clients.get(mid) else {
            continue;
        };
        if c.has(Cap::ExtendedJoin) {
            c.handle.send_out(&extended);
        } else {
            c.handle.send_out(&plain);
        }
        if let Some(a) = &away_out {
            if *mid != id && c.has(Cap::AwayNotify) {
                c.handle.send_out(a);
            }
        }
    }
    chanserv::on_join(ctx, &key);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return;
    };
    send_topic(ctx, &key, false);
    crate::irc::markread::on_join(ctx, &ch.name);
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

/// 353 (split to fit the line limit) + 366, shaped by the asker's `multi-prefix` and
/// `userhost-in-names`. A secret channel shows its names only to members.
fn send_names(ctx: &Ctx<'_>, key: &str) {
    let Some(ch) = ctx.st.channels.get(key) else {
        return;
    };
    let (multi, userhost) = ctx.me().map_or((false, false), |c| {
        (c.has(Cap::MultiPrefix), c.has(Cap::UserhostInNames))
    });
    if ch.secret && !ch.has(ctx.id) {
        return ctx.num(RPL_ENDOFNAMES, &[&ch.name, "End of /NAMES list"]);
    }
    let kind = if ch.secret { "@" } else { "=" };
    let mut line = String::new();
    for (id, member) in &ch.members {
        let Some(c) = ctx.st.clients.get(id) else {
            continue;
        };
        let shown = if userhost {
            c.prefix()
        } else {
            c.nick_or_star().to_owned()
        };
        let entry = format!("{}{shown}", member.prefixes(multi));
        if !line.is_empty() && line.len() + entry.len() + 1 > NAMES_LINE_BUDGET {
            ctx.num(RPL_NAMREPLY, &[kind, &ch.name, &line]);
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(&entry);
    }
    if !line.is_empty() {
        ctx.num(RPL_NAMREPLY, &[kind, &ch.name, &line]);
    }
    ctx.num(RPL_ENDOFNAMES, &[&ch.name, "End of /NAMES list"]);
}

/// `PART #a,#b [reason]`.
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
    let m = ctx.out(Message::new("PART", params));
    ctx.st.to_channel(ch, &m, None);
    ctx.st.leave(ctx.id, key);
}

/// `TOPIC #c [text]`.
pub fn topic(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(name) = msg.param(0).filter(|n| !n.is_empty()) else {
        return ctx.need_more_params("TOPIC");
    };
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    };
    let Some(text) = msg.param(1) else {
        if ch.secret && !ch.has(ctx.id) {
            return ctx.num(ERR_NOTONCHANNEL, &[&ch.name, "You're not on that channel"]);
        }
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
    // A remote user's topic keeps the time its own node set it.
    let set_at = ctx
        .st
        .cluster
        .take_stamp()
        .map_or_else(now, |s| s.at / 1000);
    let Some(ch) = ctx.st.channels.get_mut(&key) else {
        return;
    };
    ch.topic = (!text.is_empty()).then(|| crate::irc::channel::Topic {
        text: text.clone(),
        set_by: nick,
        set_at,
    });
    let cname = ch.name.clone();
    let m = ctx.out(Message::new("TOPIC", vec![cname, text]));
    if let Some(ch) = ctx.st.channels.get(&key) {
        ctx.st.to_channel(ch, &m, None);
    }
    ctx.st.save_channel(&key);
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

/// `>rest` → `(true, rest)`, `<rest` → `(false, rest)`.
fn cmp(s: &str) -> Option<(bool, &str)> {
    s.strip_prefix('>')
        .map(|r| (true, r))
        .or_else(|| s.strip_prefix('<').map(|r| (false, r)))
}

/// One LIST filter (ISUPPORT `ELIST=CMNTU`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListFilter {
    /// A channel name or mask (`M`; a plain name matches itself).
    Mask(String),
    /// `!mask` (`N`): channels not matching.
    NotMask(String),
    /// `>n` / `<n` (`U`): more / fewer than n users.
    Users {
        /// `>` (more) rather than `<` (less).
        more: bool,
        /// The bound.
        n: usize,
    },
    /// `C>n` / `C<n` (`C`): created more / less than n minutes ago.
    Created {
        /// `>` (more) rather than `<` (less).
        more: bool,
        /// The bound.
        minutes: i64,
    },
    /// `T>n` / `T<n` (`T`): topic set more / less than n minutes ago.
    Topic {
        /// `>` (more) rather than `<` (less).
        more: bool,
        /// The bound.
        minutes: i64,
    },
}

impl ListFilter {
    /// Parses one comma-separated LIST item; `None` for a malformed number.
    pub fn parse(item: &str) -> Option<Self> {
        let num = |s: &str| s.parse::<i64>().ok().filter(|n| *n >= 0);
        if let Some((more, n)) = cmp(item) {
            let n = usize::try_from(num(n)?).ok()?;
            return Some(Self::Users { more, n });
        }
        for (letter, topic) in [("C", false), ("c", false), ("T", true), ("t", true)] {
            if let Some((more, n)) = item.strip_prefix(letter).and_then(cmp) {
                let minutes = num(n)?;
                return Some(if topic {
                    Self::Topic { more, minutes }
                } else {
                    Self::Created { more, minutes }
                });
            }
        }
        Some(match item.strip_prefix('!') {
            Some(m) => Self::NotMask(m.to_owned()),
            None => Self::Mask(item.to_owned()),
        })
    }
}

/// `LIST [filter[,filter…]]`: `321`, `322 #c users :topic` per channel, `323`. Secret
/// channels are listed only to their members. Filters (ELIST=CMNTU): names and masks
/// (`#a*`; a channel is listed when it matches one of them), `!mask`, `>n` / `<n` users,
/// `C>n` / `C<n` created more / less than n minutes ago, `T>n` / `T<n` topic set more /
/// less than n minutes ago (a channel without a topic fails `T`); all must hold.
pub fn list(ctx: &mut Ctx<'_>, msg: &Message) {
    ctx.num(RPL_LISTSTART, &["Channel", "Users  Name"]);
    let filters: Vec<ListFilter> = msg
        .param(0)
        .filter(|p| !p.is_empty())
        .map(|l| {
            l.split(',')
                .filter(|i| !i.is_empty())
                .filter_map(ListFilter::parse)
                .collect()
        })
        .unwrap_or_default();
    let masks: Vec<&str> = filters
        .iter()
        .filter_map(|f| match f {
            ListFilter::Mask(m) => Some(m.as_str()),
            _ => None,
        })
        .collect();
    let now = now();
    let minutes_ago = |t: i64| (now - t) / 60;
    let keep = |ch: &Channel| {
        (masks.is_empty() || masks.iter().any(|m| mask_matches(m, &ch.name)))
            && filters.iter().all(|f| match f {
                ListFilter::Mask(_) => true,
                ListFilter::NotMask(m) => !mask_matches(m, &ch.name),
                ListFilter::Users { more: true, n } => ch.members.len() > *n,
                ListFilter::Users { more: false, n } => ch.members.len() < *n,
                ListFilter::Created { more, minutes } => {
                    let age = minutes_ago(ch.created);
                    if *more {
                        age > *minutes
                    } else {
                        age < *minutes
                    }
                }
                ListFilter::Topic { more, minutes } => ch.topic.as_ref().is_some_and(|t| {
                    let age = minutes_ago(t.set_at);
                    if *more {
                        age > *minutes
                    } else {
                        age < *minutes
                    }
                }),
            })
    };
    let mut chans: Vec<&Channel> = ctx
        .st
        .channels
        .values()
        .filter(|c| !c.secret || c.has(ctx.id))
        .filter(|c| keep(c))
        .collect();
    chans.sort_by(|a, b| a.name.cmp(&b.name));
    for ch in chans {
        let topic = ch.topic.as_ref().map_or("", |t| t.text.as_str());
        ctx.num(RPL_LIST, &[&ch.name, &ch.members.len().to_string(), topic]);
    }
    ctx.num(RPL_LISTEND, &["End of /LIST"]);
}

/// `KICK #c nick[,nick] [reason]`.
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
        let m = ctx.out(Message::new(
            "KICK",
            vec![ch.name.clone(), tnick.unwrap_or_default(), reason.clone()],
        ));
        ctx.st.to_channel(ch, &m, None);
        ctx.st.leave(tid, &key);
    }
}

/// INVITE nick #channel: 341 to the inviter, INVITE to the invitee (who may then join
/// past +i), and to members with `invite-notify`.
///
/// `INVITE` alone lists the channels the client is invited to (336 each, then 337).
pub fn invite(ctx: &mut Ctx<'_>, msg: &Message) {
    if msg.params.is_empty() {
        let mut chans: Vec<&str> = ctx
            .st
            .channels
            .values()
            .filter(|c| c.invited.contains(&ctx.id))
            .map(|c| c.name.as_str())
            .collect();
        chans.sort_unstable();
        for c in chans {
            ctx.num(RPL_INVITELIST, &[c]);
        }
        return ctx.num(RPL_ENDOFINVITELIST, &["End of /INVITE list"]);
    }
    let (Some(nick), Some(name)) = (msg.param(0), msg.param(1)) else {
        return ctx.need_more_params("INVITE");
    };
    if nick.is_empty() || name.is_empty() {
        return ctx.need_more_params("INVITE");
    }
    let Some(tid) = ctx.st.by_nick(nick) else {
        return ctx.num(ERR_NOSUCHNICK, &[nick, "No such nick/channel"]);
    };
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    };
    let cname = ch.name.clone();
    if !ch.has(ctx.id) {
        return ctx.num(ERR_NOTONCHANNEL, &[&cname, "You're not on that channel"]);
    }
    if ch.invite_only && !ch.is_op(ctx.id) {
        return ctx.num(
            ERR_CHANOPRIVSNEEDED,
            &[&cname, "You're not channel operator"],
        );
    }
    let Some(target) = ctx.st.clients.get(&tid) else {
        return;
    };
    let tnick = target.nick_or_star().to_owned();
    if ch.has(tid) {
        return ctx.num(
            ERR_USERONCHANNEL,
            &[&tnick, &cname, "is already on channel"],
        );
    }
    let away = target.away.clone();
    let out = ctx.out(Message::new("INVITE", vec![tnick.clone(), cname.clone()]));
    ctx.num(RPL_INVITING, &[&tnick, &cname]);
    if let Some(away) = away {
        ctx.num(RPL_AWAY, &[&tnick, &away]);
    }
    target.handle.send_out(&out);
    for mid in ch.members.keys().filter(|m| **m != ctx.id) {
        if let Some(c) = ctx.st.clients.get(mid) {
            if c.has(Cap::InviteNotify) {
                c.handle.send_out(&out);
            }
        }
    }
    if let Some(ch) = ctx.st.channels.get_mut(&key) {
        ch.invited.insert(tid);
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

/// The list of mode `b` (367… 368), `e` (348… 349) or `I` (346… 347).
fn send_list(ctx: &Ctx<'_>, key: &str, mode: char) {
    let Some(ch) = ctx.st.channels.get(key) else {
        return;
    };
    let (item, end, text) = match mode {
        'e' => (
            RPL_EXCEPTLIST,
            RPL_EXCEPTLIST_END,
            "End of channel exception list",
        ),
        'I' => (
            RPL_INVEXLIST,
            RPL_INVITELIST_END,
            "End of channel invite list",
        ),
        _ => (RPL_BANLIST, RPL_ENDOFBANLIST, "End of channel ban list"),
    };
    for b in ch.list(mode) {
        ctx.num(item, &[&ch.name, &b.mask, &b.set_by, &b.set_at.to_string()]);
    }
    ctx.num(end, &[&ch.name, text]);
}

/// Most mode changes with a parameter in one MODE command (ISUPPORT `MODES=4`); the
/// ones past it are ignored.
pub const MAX_MODES: usize = 4;

/// Whether a +k key is acceptable: 1..=KEYLEN bytes, no space, comma or colon first.
fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.len() <= KEYLEN
        && !k.starts_with(':')
        && !k
            .chars()
            .any(|c| c == ',' || c.is_whitespace() || c.is_control())
}

fn channel_mode(ctx: &mut Ctx<'_>, name: &str, args: &[String]) {
    let key = names::fold(name);
    let Some(ch) = ctx.st.channels.get(&key) else {
        return ctx.num(ERR_NOSUCHCHANNEL, &[name, "No such channel"]);
    };
    let cname = ch.name.clone();
    let Some(modes) = args.first() else {
        let mut p = vec![cname.clone()];
        p.extend(ch.modes(ch.has(ctx.id)));
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        ctx.num(RPL_CHANNELMODEIS, &p);
        ctx.num(RPL_CREATIONTIME, &[&cname, &ch.created.to_string()]);
        return;
    };
    let is_op = ch.is_op(ctx.id);
    let setter = ctx.prefix();
    let mut rest = args[1..].iter();
    let mut adding = true;
    let mut applied_modes = String::new();
    let mut applied_args: Vec<String> = Vec::new();
    let mut last_sign = None;
    let mut denied = false;
    let mut listed = String::new();
    let mut with_param = 0usize;
    for c in modes.chars().take(32) {
        let takes_param = match c {
            'b' | 'e' | 'I' | 'o' | 'v' | 'k' => args.len() > 1 + with_param,
            'l' => adding,
            _ => false,
        };
        if takes_param {
            with_param += 1;
            if with_param > MAX_MODES {
                rest.next();
                continue;
            }
        }
        match c {
            '+' => adding = true,
            '-' => adding = false,
            'b' | 'e' | 'I' => {
                let Some(mask) = rest.next() else {
                    if !listed.contains(c) {
                        listed.push(c);
                        send_list(ctx, &key, c);
                    }
                    continue;
                };
                if !is_op {
                    denied = true;
                    continue;
                }
                let mask = normalize_mask(mask);
                let Some(ch) = ctx.st.channels.get_mut(&key) else {
                    return;
                };
                let Some(list) = ch.list_mut(c) else {
                    continue;
                };
                let pos = list.iter().position(|b| names::eq(&b.mask, &mask));
                let changed = match (adding, pos) {
                    (true, None) if list.len() >= MAX_BANS => {
                        ctx.num(ERR_BANLISTFULL, &[&cname, &mask, "Channel list is full"]);
                        false
                    }
                    (true, None) => {
                        list.push(Ban {
                            mask: mask.clone(),
                            set_by: setter.clone(),
                            set_at: now(),
                        });
                        true
                    }
                    (false, Some(i)) => {
                        list.remove(i);
                        true
                    }
                    _ => false,
                };
                if changed {
                    push_mode(&mut applied_modes, &mut last_sign, adding, c);
                    applied_args.push(mask);
                }
            }
            'o' | 'v' => {
                let Some(nick) = rest.next() else { continue };
                if !is_op {
                    denied = true;
                    continue;
                }
                let Some(tid) = ctx.st.by_nick(nick) else {
                    ctx.num(ERR_NOSUCHNICK, &[nick, "No such nick/channel"]);
                    continue;
                };
                let Some(ch) = ctx.st.channels.get_mut(&key) else {
                    return;
                };
                let Some(member) = ch.members.get_mut(&tid) else {
                    ctx.num(
                        ERR_USERNOTINCHANNEL,
                        &[nick, &cname, "They aren't on that channel"],
                    );
                    continue;
                };
                let flag = if c == 'o' {
                    &mut member.op
                } else {
                    &mut member.voice
                };
                if *flag == adding {
                    continue;
                }
                *flag = adding;
                let shown = ctx
                    .st
                    .clients
                    .get(&tid)
                    .map(|c| c.nick_or_star().to_owned());
                push_mode(&mut applied_modes, &mut last_sign, adding, c);
                applied_args.push(shown.unwrap_or_default());
            }
            'k' => {
                let arg = rest.next();
                if !is_op {
                    denied = true;
                    continue;
                }
                let Some(ch) = ctx.st.channels.get_mut(&key) else {
                    return;
                };
                if adding {
                    let Some(k) = arg else { continue };
                    if !valid_key(k) {
                        ctx.num(ERR_INVALIDKEY, &[&cname, "Key is not well-formed"]);
                        continue;
                    }
                    if ch.key.as_deref() == Some(k.as_str()) {
                        continue;
                    }
                    ch.key = Some(k.clone());
                    push_mode(&mut applied_modes, &mut last_sign, adding, c);
                    applied_args.push(k.clone());
                } else if ch.key.take().is_some() {
                    push_mode(&mut applied_modes, &mut last_sign, adding, c);
                    applied_args.push("*".into());
                }
            }
            'l' => {
                let arg = if adding { rest.next() } else { None };
                if !is_op {
                    denied = true;
                    continue;
                }
                let Some(ch) = ctx.st.channels.get_mut(&key) else {
                    return;
                };
                if adding {
                    let Some(a) = arg else { continue };
                    let Some(n) = a.parse::<usize>().ok().filter(|n| *n > 0) else {
                        ctx.num(
                            ERR_INVALIDMODEPARAM,
                            &[&cname, "l", a, "Invalid limit mode parameter"],
                        );
                        continue;
                    };
                    if ch.limit == Some(n) {
                        continue;
                    }
                    ch.limit = Some(n);
                    push_mode(&mut applied_modes, &mut last_sign, adding, c);
                    applied_args.push(n.to_string());
                } else if ch.limit.take().is_some() {
                    push_mode(&mut applied_modes, &mut last_sign, adding, c);
                }
            }
            'i' | 'm' | 'n' | 's' | 't' => {
                if !is_op {
                    denied = true;
                    continue;
                }
                let Some(ch) = ctx.st.channels.get_mut(&key) else {
                    return;
                };
                let flag = match c {
                    'i' => &mut ch.invite_only,
                    'm' => &mut ch.moderated,
                    'n' => &mut ch.no_external,
                    's' => &mut ch.secret,
                    _ => &mut ch.topic_ops_only,
                };
                if *flag == adding {
                    continue;
                }
                *flag = adding;
                if c == 'i' && !adding {
                    ch.invited.clear();
                }
                push_mode(&mut applied_modes, &mut last_sign, adding, c);
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
    // A registered channel's modes and lists are saved (member status is not).
    if applied_modes
        .chars()
        .any(|c| !matches!(c, '+' | '-' | 'o' | 'v'))
    {
        ctx.st.save_channel(&key);
    }
    if !applied_modes.is_empty() {
        let mut params = vec![cname, applied_modes];
        params.extend(applied_args);
        ctx.st.cluster.note_modes(ctx.id, params.clone());
        let m = ctx.out(Message::new("MODE", params));
        if let Some(ch) = ctx.st.channels.get(&key) {
            ctx.st.to_channel(ch, &m, None);
        }
    }
}

fn push_mode(out: &mut String, last_sign: &mut Option<bool>, adding: bool, c: char) {
    if *last_sign != Some(adding) {
        out.push(if adding { '+' } else { '-' });
        *last_sign = Some(adding);
    }
    out.push(c);
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
            'i' | 'w' | 'B' => {
                let Some(client) = ctx.me_mut() else { return };
                let changed = if adding {
                    client.modes.insert(c)
                } else {
                    client.modes.remove(&c)
                };
                if changed {
                    push_mode(&mut applied, &mut last_sign, adding, c);
                }
            }
            // Only OPER makes an operator; anyone may stop being one.
            'o' if adding => {}
            'o' => {
                let Some(client) = ctx.me_mut() else { return };
                if client.modes.remove(&'o') {
                    client.oper = None;
                    push_mode(&mut applied, &mut last_sign, adding, c);
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

/// Whether `id` may speak in `ch`: +n keeps out non-members, +m non-voiced members, and
/// a ban silences anyone not voiced.
pub fn may_speak(ch: &Channel, id: ClientId, mask: &str) -> bool {
    if ch.no_external && !ch.has(id) {
        return false;
    }
    if ch.moderated && !ch.is_voiced(id) {
        return false;
    }
    ch.is_voiced(id) || !ch.is_banned(mask)
}

#[cfg(test)]
mod tests {
    use super::ListFilter::{self, *};

    #[test]
    fn list_filters() {
        assert_eq!(ListFilter::parse(">3"), Some(Users { more: true, n: 3 }));
        assert_eq!(ListFilter::parse("<10"), Some(Users { more: false, n: 10 }));
        assert_eq!(
            ListFilter::parse("C>5"),
            Some(Created {
                more: true,
                minutes: 5
            })
        );
        assert_eq!(
            ListFilter::parse("t<1"),
            Some(Topic {
                more: false,
                minutes: 1
            })
        );
        assert_eq!(ListFilter::parse("!#a*"), Some(NotMask("#a*".into())));
        assert_eq!(ListFilter::parse("#x"), Some(Mask("#x".into())));
        for bad in [">", "<-1", ">x", "C>", "T<y", ">99999999999999999999"] {
            assert_eq!(ListFilter::parse(bad), None, "{bad}");
        }
    }
}
