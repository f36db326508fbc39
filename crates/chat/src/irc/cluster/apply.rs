//! Remote events applied to the local state. A remote user is a *proxy*: a registered
//! client whose queue has no reader, so whatever is sent to it is dropped (and what is
//! meant for it was published by [`after`](super::after)). A remote user's command is
//! replayed as that proxy through the ordinary dispatch, so local members see exactly
//! what they would see from a local user; a JOIN is let past the channel's modes (the
//! user's own node already checked them).

use crate::irc::caps::{Cap, CapSet};
use crate::irc::channel::ClientId;
use crate::irc::commands::dispatch;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::server::IrcServer;
use crate::irc::state::{Client, ClientHandle, State};

use super::events::{split_reason, Event, Route, TopicInfo, UserInfo};
use super::Origin;

/// Applies `event` from `node` that came on a subject with `route`.
pub fn apply(server: &IrcServer, node: &str, route: &Route, event: Event) {
    match event {
        Event::Alive | Event::Hello => {}
        Event::User(u) => {
            let mut st = server.lock();
            upsert(&mut st, node, &u);
        }
        Event::Snapshot { users, topics } => snapshot(server, node, &users, &topics),
        Event::Quit { uid, reason } => {
            let mut st = server.lock();
            let origin = Origin {
                node: node.to_owned(),
                uid,
            };
            if let Some(id) = st.cluster.by_origin.get(&origin).copied() {
                drop_proxy(&mut st, id, &reason, &server.config().name);
            }
        }
        Event::Cmd { uid, line } => command(server, node, route, uid, &line),
        Event::Join {
            uid,
            channel,
            op,
            voice,
        } => join(server, node, uid, &channel, op, voice),
    }
}

/// Replays remote user `uid`'s command `line`.
fn command(server: &IrcServer, node: &str, route: &Route, uid: u64, line: &str) {
    let Ok(msg) = Message::parse(line.as_bytes()) else {
        return;
    };
    let origin = Origin {
        node: node.to_owned(),
        uid,
    };
    let Some(id) = server.lock().cluster.by_origin.get(&origin).copied() else {
        return;
    };
    server.with_ctx(id, |ctx| {
        if let Route::User(_) = route {
            // Private messages and invitations: only where the target is.
            let target = match msg.command.as_str() {
                "INVITE" | "PRIVMSG" | "NOTICE" | "TAGMSG" => msg.param(0),
                _ => None,
            };
            let local = target
                .and_then(|t| ctx.st.by_nick(t))
                .is_some_and(|t| !ctx.st.cluster.is_proxy(t));
            if !local {
                return;
            }
        }
        match msg.command.as_str() {
            "JOIN" => {
                for name in msg.param(0).unwrap_or("").split(',') {
                    if let Some(ch) = ctx.st.channels.get_mut(&names::fold(name)) {
                        ch.invited.insert(id);
                    }
                }
            }
            // Registration, queries and connection commands are never replayed.
            "NICK" | "PART" | "TOPIC" | "KICK" | "MODE" | "INVITE" | "PRIVMSG" | "NOTICE"
            | "TAGMSG" | "AWAY" | "SETNAME" => {}
            _ => return,
        }
        let _ = dispatch(ctx, &msg);
    });
}

/// Remote user `uid` joins `channel` (unless it is in it) with the status its node
/// gave it.
fn join(server: &IrcServer, node: &str, uid: u64, channel: &str, op: bool, voice: bool) {
    let origin = Origin {
        node: node.to_owned(),
        uid,
    };
    let key = names::fold(channel);
    let id = {
        let st = server.lock();
        let Some(id) = st.cluster.by_origin.get(&origin).copied() else {
            return;
        };
        if st
            .clients
            .get(&id)
            .is_none_or(|c| c.channels.contains(&key))
        {
            None
        } else {
            Some(id)
        }
    };
    if id.is_some() {
        command(server, node, &Route::Node, uid, &format!("JOIN {channel}"));
    }
    let mut st = server.lock();
    let Some(id) = st.cluster.by_origin.get(&origin).copied() else {
        return;
    };
    if let Some(m) = st
        .channels
        .get_mut(&key)
        .and_then(|c| c.members.get_mut(&id))
    {
        m.op |= op;
        m.voice |= voice;
    }
}

/// A handle whose lines go nowhere (a remote user's).
fn dead_handle() -> ClientHandle {
    let (handle, _rx) = ClientHandle::new(1);
    handle.set_caps(CapSet::default().with(Cap::MessageTags, true));
    handle
}

/// Adds remote user `u` of `node`, or updates it; returns its local id.
fn upsert(st: &mut State, node: &str, u: &UserInfo) -> ClientId {
    let origin = Origin {
        node: node.to_owned(),
        uid: u.uid,
    };
    if let Some(id) = st.cluster.by_origin.get(&origin).copied() {
        rename(st, id, &u.nick);
        if let Some(c) = st.clients.get_mut(&id) {
            c.away = u.away.clone();
            c.realname = u.realname.clone();
        }
        return id;
    }
    let mut c = Client::new(u.host.clone(), dead_handle());
    c.nick = Some(u.nick.clone());
    c.user = Some(u.user.clone());
    c.realname = u.realname.clone();
    c.account = u.account.clone();
    c.away = u.away.clone();
    c.registered = true;
    let id = st.add(c);
    let key = names::fold(&u.nick);
    match st.nicks.entry(key) {
        std::collections::hash_map::Entry::Occupied(_) => {
            tracing::warn!(nick = %u.nick, node, "remote nick already in use here");
        }
        std::collections::hash_map::Entry::Vacant(e) => {
            e.insert(id);
        }
    }
    st.cluster.proxies.insert(id, origin.clone());
    st.cluster.by_origin.insert(origin, id);
    let (users, _, _) = st.counts();
    st.max_users = st.max_users.max(users);
    id
}

/// Gives proxy `id` the nick `nick` without telling anyone (a snapshot's correction).
fn rename(st: &mut State, id: ClientId, nick: &str) {
    let Some(c) = st.clients.get_mut(&id) else {
        return;
    };
    let Some(old) = c.nick.replace(nick.to_owned()) else {
        return;
    };
    let (old, new) = (names::fold(&old), names::fold(nick));
    if old != new {
        if st.nicks.get(&old) == Some(&id) {
            st.nicks.remove(&old);
        }
        st.nicks.entry(new).or_insert(id);
    }
}

/// Removes proxy `id`: local neighbours see it QUIT with `reason`.
pub fn drop_proxy(st: &mut State, id: ClientId, reason: &str, server: &str) {
    if let Some(origin) = st.cluster.proxies.remove(&id) {
        st.cluster.by_origin.remove(&origin);
    }
    st.remove_from(id, reason, server);
}

/// Every user of `node` quits with a netsplit message (`me node`).
pub fn split(server: &IrcServer, node: &str) -> usize {
    let me = server.config().name.clone();
    let reason = split_reason(&me, node);
    let mut st = server.lock();
    let ids: Vec<ClientId> = st
        .cluster
        .proxies
        .iter()
        .filter(|(_, o)| o.node == node)
        .map(|(id, _)| *id)
        .collect();
    for id in &ids {
        drop_proxy(&mut st, *id, &reason, &me);
    }
    ids.len()
}

/// Reconciles the users of `node` with its snapshot: new ones appear (joining their
/// channels), missing ones quit; topics fill channels that have none.
fn snapshot(server: &IrcServer, node: &str, users: &[UserInfo], topics: &[TopicInfo]) {
    let name = server.config().name.clone();
    let present: std::collections::HashSet<u64> = users.iter().map(|u| u.uid).collect();
    {
        let mut st = server.lock();
        let gone: Vec<ClientId> = st
            .cluster
            .proxies
            .iter()
            .filter(|(_, o)| o.node == node && !present.contains(&o.uid))
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            drop_proxy(&mut st, id, &split_reason(&name, node), &name);
        }
    }
    for u in users {
        upsert(&mut server.lock(), node, u);
        for m in &u.channels {
            join(server, node, u.uid, &m.channel, m.op, m.voice);
        }
    }
    let mut st = server.lock();
    for t in topics {
        if let Some(ch) = st.channels.get_mut(&names::fold(&t.channel)) {
            if ch.topic.is_none() {
                ch.topic = Some(crate::irc::channel::Topic {
                    text: t.topic.clone(),
                    set_by: t.by.clone(),
                    set_at: t.at,
                });
            }
        }
    }
}
