//! What local users' commands publish. The command loop takes a [`Before`] of the
//! sender (while dispatching, in the same lock), runs the command, then calls [`after`],
//! which compares and publishes what changed: registration (the user), NICK, JOIN,
//! PART, AWAY, SETNAME, TOPIC, KICK, MODE, INVITE, and every PRIVMSG/NOTICE/TAGMSG that
//! reached a channel or a remote user. A NICK first claims the nick network-wide
//! ([`claim_nick`], then [`claim_result`]); [`quit`] publishes a local user's QUIT and
//! releases its claim.

use std::collections::BTreeMap;

use crate::irc::channel::ClientId;
use crate::irc::channel_cmds::may_speak;
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::ERR_NICKNAMEINUSE;
use crate::irc::state::State;
use crate::irc::tags::Tags;

use super::events::{self, Event, Membership, TopicInfo, UserInfo};

/// The sender as it was before its command.
#[derive(Debug)]
pub struct Before {
    nick: Option<String>,
    registered: bool,
    /// Folded key → name of the channels it was in.
    channels: BTreeMap<String, String>,
    away: Option<String>,
    realname: String,
    /// TOPIC: the channel's key and topic text before.
    topic: Option<(String, Option<String>)>,
    /// KICK: the channel key, the target and whether it was a member.
    kick: Option<(String, ClientId)>,
}

/// The sender's state before `msg`, when it is a local user of a cluster node.
pub fn before(ctx: &Ctx<'_>, msg: &Message) -> Option<Before> {
    if !ctx.st.cluster.enabled() || ctx.st.cluster.is_proxy(ctx.id) {
        return None;
    }
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

/// Publishes `event` of client `id` on `subject`.
fn publish(st: &State, subject: String, event: Event) {
    if let Some(link) = &st.cluster.link {
        link.publish(subject, event);
    }
}

/// Publishes a command of local user `id`.
fn cmd(st: &State, id: ClientId, subject: String, line: String) {
    publish(st, subject, Event::Cmd { uid: id, line });
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
    })
}

/// This node's users and their channels' topics.
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
    let topics = keys
        .iter()
        .filter_map(|k| {
            let ch = st.channels.get(k)?;
            let t = ch.topic.as_ref()?;
            Some(TopicInfo {
                channel: ch.name.clone(),
                topic: t.text.clone(),
                by: t.set_by.clone(),
                at: t.set_at,
            })
        })
        .collect();
    Event::Snapshot { users, topics }
}

/// Publishes what the sender's command changed (see the module documentation).
pub fn after(ctx: &mut Ctx<'_>, msg: &Message, b: Before) {
    let id = ctx.id;
    let st = &mut *ctx.st;
    let Some(me) = st.clients.get(&id) else {
        return;
    };
    if !me.registered {
        return;
    }
    let Some(link) = st.cluster.link.clone() else {
        return;
    };
    let users = events::node_subject(link.node(), "users");
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
        cmd(
            st,
            id,
            users.clone(),
            line_of("NICK", vec![me_nick.clone()], None),
        );
    }
    if b.away != me.away {
        let params = me.away.clone().into_iter().collect();
        cmd(st, id, users.clone(), line_of("AWAY", params, None));
    }
    if b.realname != me.realname {
        let params = vec![me.realname.clone()];
        cmd(st, id, users.clone(), line_of("SETNAME", params, None));
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
                let params = vec![ch.name.clone(), text.unwrap_or_default()];
                let subject = events::channel_subject(&ch.name);
                cmd(st, id, subject, line_of("TOPIC", params, None));
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
    match msg.command.as_str() {
        "MODE" if msg.params.len() >= 2 => {
            let key = names::fold(msg.param(0).unwrap_or(""));
            let is_op = st
                .channels
                .get(&key)
                .and_then(|c| c.members.get(&id))
                .is_some_and(|m| m.op);
            if is_op {
                let subject = events::channel_subject(&key);
                cmd(st, id, subject, line_of("MODE", msg.params.clone(), None));
            }
        }
        "INVITE" => {
            let (Some(nick), Some(chan)) = (msg.param(0), msg.param(1)) else {
                return;
            };
            let target = st.by_nick(nick).filter(|t| st.cluster.is_proxy(*t));
            let invited = target.is_some_and(|t| {
                st.channels
                    .get(&names::fold(chan))
                    .is_some_and(|c| c.invited.contains(&t))
            });
            if invited {
                let subject = events::user_subject(nick);
                cmd(st, id, subject, line_of("INVITE", msg.params.clone(), None));
            }
        }
        "PRIVMSG" | "NOTICE" | "TAGMSG" => relay_message(st, id, &mask, msg),
        _ => {}
    }
}

/// Publishes each target of a PRIVMSG/NOTICE/TAGMSG that reached a channel (the sender
/// may speak there) or a remote user.
fn relay_message(st: &State, id: ClientId, mask: &str, msg: &Message) {
    let Some(targets) = msg.param(0) else { return };
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
    for target in targets.split(',').filter(|t| !t.is_empty()).take(4) {
        let mut params = vec![target.to_owned()];
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
            match st.by_nick(target) {
                Some(t) if st.cluster.is_proxy(t) => events::user_subject(target),
                _ => continue,
            }
        };
        cmd(st, id, subject, line_of(&msg.command, params, tags));
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
