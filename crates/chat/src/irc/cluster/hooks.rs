//! What local users' commands publish. The command loop takes a [`Before`] of the
//! sender (while dispatching, in the same lock), runs the command, then calls [`after`],
//! which compares and publishes what changed: registration (the user), NICK, JOIN,
//! PART, AWAY, SETNAME, the account (account-notify), the user modes (OPER's `+o`,
//! `+i`, `+w`, `+B`), TOPIC, KICK, the MODE changes the command applied, INVITE,
//! WALLOPS, and every PRIVMSG/NOTICE/TAGMSG that reached a channel or a remote user
//! (with the `msgid` and time it got here, so every node shows the same). A NICK first
//! claims the nick network-wide ([`claim_nick`], then [`claim_result`]); [`quit`]
//! publishes a local user's QUIT and releases its claim. A KILL or CHGHOST of a remote
//! user goes to its node ([`kill_remote`], [`route_to_owner`]); a local user's new host
//! is published by [`host_changed`].

use std::collections::BTreeMap;

use crate::irc::channel::ClientId;
use crate::irc::channel_cmds::may_speak;
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::ERR_NICKNAMEINUSE;
use crate::irc::state::State;
use crate::irc::tags::Tags;

use super::events::{self, ChannelInfo, Event, ListEntry, Membership, TopicInfo, UserInfo};
use super::Stamp;

/// The sender as it was before its command.
#[derive(Debug)]
pub struct Before {
    nick: Option<String>,
    registered: bool,
    /// Folded key → name of the channels it was in.
    channels: BTreeMap<String, String>,
    away: Option<String>,
    realname: String,
    account: Option<String>,
    modes: String,
    /// TOPIC: the channel's key and topic text before.
    topic: Option<(String, Option<String>)>,
    /// KICK: the channel key, the target and whether it was a member.
    kick: Option<(String, ClientId)>,
}

/// The sender's state before `msg`, when it is a local user of a cluster node.
pub fn before(ctx: &mut Ctx<'_>, msg: &Message) -> Option<Before> {
    if !ctx.st.cluster.publishes(ctx.id) {
        return None;
    }
    ctx.st.cluster.pending.remove(&ctx.id);
    let me = ctx.me()?;
    let channels = me
        .channels
        .iter()
        .map(|k| {
            let name = ctx.st.channels.get(k).map_or(k.clone(), |c| c.name.clone());
            (k.clone(), name)
        })
        .collect();
    let key = msg.param(0).map(names::fold).unwrap_or_default();
    let topic = (msg.command == "TOPIC" && msg.params.len() >= 2).then(|| {
        let text = ctx
            .st
            .channels
            .get(&key)
            .and_then(|c| c.topic.as_ref().map(|t| t.text.clone()));
        (key.clone(), text)
    });
    let kick = if msg.command == "KICK" {
        msg.param(1)
            .and_then(|n| ctx.st.by_nick(n))
            .filter(|t| {
                ctx.st
                    .channels
                    .get(&key)
                    .is_some_and(|c| c.members.contains_key(t))
            })
            .map(|t| (key.clone(), t))
    } else {
        None
    };
    Some(Before {
        nick: me.nick.clone(),
        registered: me.registered,
        channels,
        away: me.away.clone(),
        realname: me.realname.clone(),
        account: me.account.clone(),
        modes: me.modes.iter().collect(),
        topic,
        kick,
    })
}

/// `msg` as a line to replay elsewhere: no prefix, only client-only tags.
fn line_of(command: &str, params: Vec<String>, tags: Option<&str>) -> String {
    let tags = tags
        .map(|t| Tags::parse(t).client_only())
        .filter(|t| !t.is_empty())
        .map(|t| t.to_wire());
    let m = Message {
        tags,
        prefix: None,
        command: command.to_owned(),
        params,
    };
    let mut bytes = m.to_line();
    while matches!(bytes.last(), Some(b'\r' | b'\n')) {
        bytes.pop();
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Publishes `event` on `subject`.
fn publish(st: &State, subject: String, event: Event) {
    if let Some(link) = &st.cluster.link {
        link.publish(subject, event);
    }
}

/// Publishes a command of local user `id`.
fn cmd(st: &State, id: ClientId, subject: String, line: String) {
    cmd_stamped(st, id, subject, line, None);
}

/// Publishes a command of local user `id` with the `msgid` and time it got here.
fn cmd_stamped(st: &State, id: ClientId, subject: String, line: String, stamp: Option<Stamp>) {
    let (msgid, at) = match stamp {
        Some(s) => (Some(s.msgid), Some(s.at)),
        None => (None, None),
    };
    let event = Event::Cmd {
        uid: id,
        line,
        msgid,
        at,
    };
    publish(st, subject, event);
}

/// The subject of this node's own user events.
fn users_subject(st: &State) -> Option<String> {
    let link = st.cluster.link.as_ref()?;
    Some(events::node_subject(link.node(), "users"))
}

/// What the other nodes learn of local user `id`.
pub fn user_info(st: &State, id: ClientId) -> Option<UserInfo> {
    let c = st.clients.get(&id)?;
    let channels = c
        .channels
        .iter()
        .filter_map(|k| {
            let ch = st.channels.get(k)?;
            let m = ch.members.get(&id).copied().unwrap_or_default();
            Some(Membership {
                channel: ch.name.clone(),
                op: m.op,
                voice: m.voice,
            })
        })
        .collect();
    Some(UserInfo {
        uid: id,
        nick: c.nick.clone()?,
        user: c.user.clone().unwrap_or_else(|| "*".into()),
        host: c.host.clone(),
        realname: c.realname.clone(),
        account: c.account.clone(),
        away: c.away.clone(),
        channels,
        modes: c.modes.iter().collect(),
        nick_ts: c.nick_ts,
        signon: c.signon,
    })
}

/// Channel `key` as a snapshot carries it.
pub fn channel_info(st: &State, key: &str) -> Option<ChannelInfo> {
    let ch = st.channels.get(key)?;
    let list = |l: &[crate::irc::channel::Ban]| {
        l.iter()
            .map(|b| ListEntry {
                mask: b.mask.clone(),
                by: b.set_by.clone(),
                at: b.set_at,
            })
            .collect()
    };
    let flags = [
        (ch.invite_only, 'i'),
        (ch.moderated, 'm'),
        (ch.no_external, 'n'),
        (ch.secret, 's'),
        (ch.topic_ops_only, 't'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect();
    Some(ChannelInfo {
        name: ch.name.clone(),
        created: ch.created,
        flags,
        key: ch.key.clone(),
        limit: ch.limit,
        bans: list(&ch.bans),
        excepts: list(&ch.excepts),
        invex: list(&ch.invex),
        topic: ch.topic.as_ref().map(|t| TopicInfo {
            text: t.text.clone(),
            by: t.set_by.clone(),
            at: t.set_at,
        }),
    })
}

/// This node's users and their channels (modes, lists, topics).
pub fn snapshot(st: &State) -> Event {
    let mut users = Vec::new();
    let mut keys = std::collections::BTreeSet::new();
    for (id, c) in &st.clients {
        if !c.registered || st.cluster.is_proxy(*id) {
            continue;
        }
        if let Some(u) = user_info(st, *id) {
            keys.extend(c.channels.iter().cloned());
            users.push(u);
        }
    }
    let channels = keys.iter().filter_map(|k| channel_info(st, k)).collect();
    Event::Snapshot { users, channels }
}

/// Publishes what the sender's command changed (see the module documentation).
pub fn after(ctx: &mut Ctx<'_>, msg: &Message, b: Before) {
    let id = ctx.id;
    let pending = ctx.st.cluster.pending.remove(&id).unwrap_or_default();
    let st = &mut *ctx.st;
    let Some(me) = st.clients.get(&id) else {
        return;
    };
    if !me.registered {
        return;
    }
    let Some(users) = users_subject(st) else {
        return;
    };
    if !st.cluster.introduced.contains(&id) {
        if let Some(u) = user_info(st, id) {
            st.cluster.introduced.insert(id);
            publish(st, users, Event::User(u));
        }
        return;
    }
    let me_nick = me.nick.clone().unwrap_or_default();
    let mask = me.prefix();
    if b.registered && b.nick.as_deref() != Some(me_nick.as_str()) {
        // With the time it took the nick: a later collision compares it.
        let stamp = Stamp {
            msgid: String::new(),
            at: me.nick_ts,
        };
        let line = line_of("NICK", vec![me_nick.clone()], None);
        cmd_stamped(st, id, users.clone(), line, Some(stamp));
    }
    if b.away != me.away {
        let params = me.away.clone().into_iter().collect();
        cmd(st, id, users.clone(), line_of("AWAY", params, None));
    }
    if b.realname != me.realname {
        let params = vec![me.realname.clone()];
        cmd(st, id, users.clone(), line_of("SETNAME", params, None));
    }
    if b.account != me.account {
        let account = me.account.clone();
        publish(st, users.clone(), Event::Account { uid: id, account });
    }
    let modes: String = me.modes.iter().collect();
    if b.modes != modes {
        publish(st, users.clone(), Event::Modes { uid: id, modes });
    }
    let now: Vec<String> = me.channels.iter().cloned().collect();
    for key in now.iter().filter(|k| !b.channels.contains_key(*k)) {
        if let Some(ch) = st.channels.get(key) {
            let m = ch.members.get(&id).copied().unwrap_or_default();
            let event = Event::Join {
                uid: id,
                channel: ch.name.clone(),
                op: m.op,
                voice: m.voice,
                created: Some(ch.created),
            };
            publish(st, events::channel_subject(&ch.name), event);
        }
    }
    for (key, name) in &b.channels {
        if now.contains(key) {
            continue;
        }
        let reason = match msg.command.as_str() {
            "PART" => msg.param(1).map(str::to_owned),
            "JOIN" => Some("Left all channels".to_owned()),
            _ => None,
        };
        let params = std::iter::once(name.clone()).chain(reason).collect();
        cmd(
            st,
            id,
            events::channel_subject(name),
            line_of("PART", params, None),
        );
    }
    if let Some((key, old)) = &b.topic {
        if let Some(ch) = st.channels.get(key) {
            let text = ch.topic.as_ref().map(|t| t.text.clone());
            if text != *old {
                let at = ch.topic.as_ref().map(|t| t.set_at.saturating_mul(1000));
                let stamp = at.map(|at| Stamp {
                    msgid: String::new(),
                    at,
                });
                let params = vec![ch.name.clone(), text.unwrap_or_default()];
                let subject = events::channel_subject(&ch.name);
                cmd_stamped(st, id, subject, line_of("TOPIC", params, None), stamp);
            }
        }
    }
    if let Some((key, target)) = &b.kick {
        let gone = st
            .channels
            .get(key)
            .is_none_or(|c| !c.members.contains_key(target));
        if gone {
            let subject = events::channel_subject(msg.param(0).unwrap_or(key));
            cmd(st, id, subject, line_of("KICK", msg.params.clone(), None));
        }
    }
    for params in pending.modes {
        let subject = events::channel_subject(&params[0]);
        cmd(st, id, subject, line_of("MODE", params, None));
    }
    match msg.command.as_str() {
        "INVITE" => {
            let (Some(nick), Some(chan)) = (msg.param(0), msg.param(1)) else {
                return;
            };
            // On the channel's subject: the invitee's node delivers it, every node shows
            // it to members with invite-notify.
            let ch = st.channels.get(&names::fold(chan));
            let invited = st
                .by_nick(nick)
                .is_some_and(|t| ch.is_some_and(|c| c.invited.contains(&t)));
            if let (true, Some(ch)) = (invited, ch) {
                let subject = events::channel_subject(&ch.name);
                cmd(st, id, subject, line_of("INVITE", msg.params.clone(), None));
            }
        }
        "WALLOPS" => {
            let oper = st.clients.get(&id).is_some_and(|c| c.is_oper());
            if let (true, Some(text)) = (oper, msg.param(0).filter(|t| !t.is_empty())) {
                cmd(
                    st,
                    id,
                    users,
                    line_of("WALLOPS", vec![text.to_owned()], None),
                );
            }
        }
        "PRIVMSG" | "NOTICE" | "TAGMSG" => relay_message(st, id, &mask, msg, pending.sent),
        _ => {}
    }
}

/// Publishes each target of a PRIVMSG/NOTICE/TAGMSG that reached a channel (the sender
/// may speak there) or a remote user, with the `msgid` and time it got here.
fn relay_message(st: &State, id: ClientId, mask: &str, msg: &Message, sent: Vec<(String, Stamp)>) {
    let tagmsg = msg.command == "TAGMSG";
    let text = msg.param(1).unwrap_or("");
    if text.is_empty() && !tagmsg {
        return;
    }
    let tags = st
        .clients
        .get(&id)
        .filter(|c| c.has(crate::irc::caps::Cap::MessageTags))
        .and(msg.tags.as_deref());
    for (target, stamp) in sent {
        let mut params = vec![target.clone()];
        if !tagmsg {
            params.push(text.to_owned());
        }
        let chan = target.trim_start_matches(['@', '+']);
        let subject = if names::is_channel(chan) {
            match st.channels.get(&names::fold(chan)) {
                Some(ch) if may_speak(ch, id, mask) => events::channel_subject(chan),
                _ => continue,
            }
        } else {
            match st.by_nick(&target) {
                Some(t) if st.cluster.is_proxy(t) => events::user_subject(&target),
                _ => continue,
            }
        };
        let line = line_of(&msg.command, params, tags);
        cmd_stamped(st, id, subject, line, Some(stamp));
    }
}

/// A local user leaves: the others are told, its claim is released.
pub fn quit(st: &mut State, id: ClientId, reason: &str) {
    let Some(link) = st.cluster.link.clone() else {
        return;
    };
    if st.cluster.is_proxy(id) {
        return;
    }
    if let Some(key) = st.cluster.claimed.remove(&id) {
        link.release(key, id);
    }
    if st.cluster.introduced.remove(&id) {
        let subject = events::node_subject(link.node(), "users");
        let reason = reason.to_owned();
        publish(st, subject, Event::Quit { uid: id, reason });
    }
}

/// Sends `command params` of the sender (a local user) to the node of remote user
/// `target`, which runs it there (an operator's CHGHOST of a user of another node).
pub fn route_to_owner(ctx: &mut Ctx<'_>, target: ClientId, command: &str, params: Vec<String>) {
    if !ctx.st.cluster.publishes(ctx.id) {
        return;
    }
    let Some(nick) = ctx.st.clients.get(&target).and_then(|c| c.nick.clone()) else {
        return;
    };
    let line = line_of(command, params, None);
    cmd(ctx.st, ctx.id, events::user_subject(&nick), line);
}

/// An operator's KILL of remote user `target`: its own node closes the connection
/// (`Killed (oper (reason))`) and tells every node it quit.
pub fn kill_remote(ctx: &mut Ctx<'_>, target: ClientId, reason: &str) {
    let Some(nick) = ctx.st.clients.get(&target).and_then(|c| c.nick.clone()) else {
        return;
    };
    route_to_owner(ctx, target, "KILL", vec![nick, reason.to_owned()]);
}

/// Local user `id`'s displayed host changed: the other nodes are told.
pub fn host_changed(st: &State, id: ClientId) {
    if !st.cluster.publishes(id) || !st.cluster.introduced.contains(&id) {
        return;
    }
    let (Some(subject), Some(c)) = (users_subject(st), st.clients.get(&id)) else {
        return;
    };
    let host = c.host.clone();
    publish(st, subject, Event::Host { uid: id, host });
}

/// Before NICK `new` of a local user is applied: `Some(ClaimNick)` to claim it
/// network-wide first, `None` to go on (no cluster, a remote user, a nick it already
/// holds, or the claim just won).
pub fn claim_nick(ctx: &mut Ctx<'_>, new: &str) -> Option<Outcome> {
    let cl = &mut ctx.st.cluster;
    let link = cl.link.clone()?;
    if cl.is_proxy(ctx.id) {
        return None;
    }
    let key = events::nick_key(new);
    if cl.claimed.get(&ctx.id) == Some(&key) {
        return None;
    }
    if cl.granted.as_ref() == Some(&(ctx.id, key.clone())) {
        cl.granted = None;
        if let Some(old) = cl.claimed.insert(ctx.id, key) {
            link.release(old, ctx.id);
        }
        return None;
    }
    Some(Outcome::ClaimNick(new.to_owned()))
}

/// The claim of `nick` was decided: won, the NICK is applied now; lost, 433.
pub fn claim_result(ctx: &mut Ctx<'_>, nick: &str, won: bool) -> Outcome {
    if !won {
        ctx.num(ERR_NICKNAMEINUSE, &[nick, "Nickname is already in use"]);
        return Outcome::Continue;
    }
    let key = events::nick_key(nick);
    ctx.st.cluster.granted = Some((ctx.id, key.clone()));
    let outcome = crate::irc::register::nick(ctx, &Message::new("NICK", vec![nick.to_owned()]));
    if ctx.st.cluster.granted.take().is_some() {
        // Refused after all (taken here meanwhile): give the claim back.
        if let Some(link) = ctx.st.cluster.link.clone() {
            link.release(key, ctx.id);
        }
    }
    outcome
}
