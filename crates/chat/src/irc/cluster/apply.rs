//! Remote events applied to the local state. A remote user is a *proxy*: a registered
//! client whose queue has no reader, so whatever is sent to it is dropped (and what is
//! meant for it was published by [`after`](super::after)). A remote user's command is
//! replayed as that proxy through the ordinary dispatch, so local members see exactly
//! what they would see from a local user; a JOIN is let past the channel's modes (the
//! user's own node already checked them), a message keeps the `msgid` and time its node
//! gave it. Typed events (account, user modes, host, a collision's rename) change the
//! proxy directly and tell local neighbours what a local change would.

use crate::irc::caps::{Cap, CapSet};
use crate::irc::channel::ClientId;
use crate::irc::commands::dispatch;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::server::IrcServer;
use crate::irc::state::{Client, ClientHandle, State};

use super::events::{split_reason, ChannelInfo, Event, Route, UserInfo};
use super::{collide, merge, Origin, Stamp};

/// Applies `event` from `node` that came on a subject with `route`.
pub fn apply(server: &IrcServer, node: &str, route: &Route, event: Event) {
    let origin = |uid| Origin {
        node: node.to_owned(),
        uid,
    };
    match event {
        Event::Alive | Event::Hello => {}
        Event::User(u) => {
            let mut st = server.lock();
            upsert(&mut st, &server.config().name, node, &u);
        }
        Event::Snapshot { users, channels } => snapshot(server, node, &users, &channels),
        Event::Quit { uid, reason } => {
            let mut st = server.lock();
            if let Some(id) = st.cluster.by_origin.get(&origin(uid)).copied() {
                drop_proxy(&mut st, id, &reason, &server.config().name);
            }
        }
        Event::Cmd {
            uid,
            line,
            msgid,
            at,
        } => {
            let stamp = at.map(|at| Stamp {
                msgid: msgid.unwrap_or_default(),
                at,
            });
            command(server, node, route, uid, &line, stamp);
        }
        Event::Join {
            uid,
            channel,
            op,
            voice,
            created,
        } => join(server, node, uid, &channel, (op, voice), created),
        Event::Account { uid, account } => {
            let mut st = server.lock();
            if let Some(id) = st.cluster.by_origin.get(&origin(uid)).copied() {
                set_account(&mut st, id, account);
            }
        }
        Event::Modes { uid, modes } => {
            let mut st = server.lock();
            if let Some(id) = st.cluster.by_origin.get(&origin(uid)).copied() {
                set_modes(&mut st, id, &modes);
            }
        }
        Event::Host { uid, host } => {
            let id = server.lock().cluster.by_origin.get(&origin(uid)).copied();
            if let Some(id) = id.filter(|_| crate::irc::oper::valid_host(&host)) {
                server.with_ctx(id, |ctx| crate::irc::oper::set_host(ctx, id, &host));
            }
        }
        Event::Rename { uid, nick } if super::events::is_uid_nick(&nick) => {
            let mut st = server.lock();
            if let Some(id) = st.cluster.by_origin.get(&origin(uid)).copied() {
                let name = server.config().name.clone();
                collide::force_nick(&mut st, &name, id, &nick);
            }
        }
        Event::Rename { .. } => {}
    }
}

/// Replays remote user `uid`'s command `line` (with the `msgid` and time its node gave
/// it, if any).
fn command(
    server: &IrcServer,
    node: &str,
    route: &Route,
    uid: u64,
    line: &str,
    stamp: Option<Stamp>,
) {
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
    let me = server.config().name.clone();
    server.with_ctx(id, |ctx| {
        if let Route::User(_) = route {
            // Private messages, invitations, an operator's KILL or CHGHOST: only where
            // the target is.
            let target = match msg.command.as_str() {
                "INVITE" | "PRIVMSG" | "NOTICE" | "TAGMSG" | "KILL" | "CHGHOST" => msg.param(0),
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
            "NICK" => {
                // A nick someone else holds here: a collision (after a split).
                let holder = msg
                    .param(0)
                    .and_then(|n| ctx.st.by_nick(n))
                    .filter(|h| *h != id);
                if let (Some(holder), Some(new)) = (holder, msg.param(0)) {
                    let old = ctx.st.clients.get(&id).and_then(|c| c.nick.clone());
                    rename_quietly(ctx.st, id, new);
                    if let Some(c) = ctx.st.clients.get_mut(&id) {
                        c.nick_ts = stamp.as_ref().map_or(c.nick_ts, |s| s.at);
                    }
                    if let Some(old) = old {
                        let prefix = ctx.st.clients.get(&id).map(|c| {
                            format!("{old}!{}@{}", c.user.as_deref().unwrap_or("*"), c.host)
                        });
                        let m = Message::new("NICK", vec![new.to_owned()])
                            .with_prefix(prefix.unwrap_or_default());
                        let out = ctx.st.from_client(id, m);
                        ctx.st.to_self_and_neighbours(id, &out);
                    }
                    collide::resolve(ctx.st, &me, id, holder);
                    return;
                }
            }
            // Registration, queries and connection commands are never replayed.
            "PART" | "TOPIC" | "KICK" | "MODE" | "INVITE" | "PRIVMSG" | "NOTICE" | "TAGMSG"
            | "AWAY" | "SETNAME" | "KILL" | "CHGHOST" | "WALLOPS" => {}
            _ => return,
        }
        ctx.st.cluster.stamp = stamp;
        let _ = dispatch(ctx, &msg);
        ctx.st.cluster.stamp = None;
    });
}

/// Remote user `uid` joins `channel` (unless it is in it) with the status its node
/// gave it; the channel keeps the older creation time. Local members see the JOIN and,
/// for a status the JOIN did not give, a `MODE` from the server (as on a netjoin).
fn join(
    server: &IrcServer,
    node: &str,
    uid: u64,
    channel: &str,
    (op, voice): (bool, bool),
    created: Option<i64>,
) {
    let origin = Origin {
        node: node.to_owned(),
        uid,
    };
    let key = names::fold(channel);
    let absent = {
        let st = server.lock();
        let Some(id) = st.cluster.by_origin.get(&origin).copied() else {
            return;
        };
        st.clients
            .get(&id)
            .is_some_and(|c| !c.channels.contains(&key))
    };
    if absent {
        command(
            server,
            node,
            &Route::Node,
            uid,
            &format!("JOIN {channel}"),
            None,
        );
    }
    let mut st = server.lock();
    let Some(id) = st.cluster.by_origin.get(&origin).copied() else {
        return;
    };
    let nick = st
        .clients
        .get(&id)
        .map(|c| c.nick_or_star().to_owned())
        .unwrap_or_default();
    let Some(ch) = st.channels.get_mut(&key) else {
        return;
    };
    if let Some(created) = created {
        ch.created = ch.created.min(created);
    }
    let Some(m) = ch.members.get_mut(&id) else {
        return;
    };
    let added: String = [(op && !m.op, 'o'), (voice && !m.voice, 'v')]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, c)| *c)
        .collect();
    m.op = op;
    m.voice = voice;
    if added.is_empty() {
        return;
    }
    let mut params = vec![ch.name.clone(), format!("+{added}")];
    params.extend(added.chars().map(|_| nick.clone()));
    let line = Message::new("MODE", params).with_prefix(server.config().name.clone());
    let ch = &st.channels[&key];
    for mid in ch.members.keys().filter(|m| **m != id) {
        if let Some(c) = st.clients.get(mid) {
            c.handle.send_msg(&line);
        }
    }
}

/// A handle whose lines go nowhere (a remote user's).
fn dead_handle() -> ClientHandle {
    let (handle, _rx) = ClientHandle::new(1);
    handle.set_caps(CapSet::default().with(Cap::MessageTags, true));
    handle
}

/// Adds remote user `u` of `node`, or updates it; returns its local id. A nick another
/// user holds here is a collision ([`collide::resolve`]).
fn upsert(st: &mut State, me: &str, node: &str, u: &UserInfo) -> ClientId {
    let origin = Origin {
        node: node.to_owned(),
        uid: u.uid,
    };
    if let Some(id) = st.cluster.by_origin.get(&origin).copied() {
        rename_quietly(st, id, &u.nick);
        if let Some(c) = st.clients.get_mut(&id) {
            c.away = u.away.clone();
            c.realname = u.realname.clone();
            c.account = u.account.clone();
            c.host = u.host.clone();
            c.nick_ts = u.nick_ts;
        }
        set_modes(st, id, &u.modes);
        if let Some(holder) = st.by_nick(&u.nick).filter(|h| *h != id) {
            collide::resolve(st, me, id, holder);
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
    c.nick_ts = u.nick_ts;
    if u.signon > 0 {
        c.signon = u.signon;
    }
    let mask = c.prefix();
    let id = st.add(c);
    st.cluster.proxies.insert(id, origin.clone());
    st.cluster.by_origin.insert(origin, id);
    set_modes(st, id, &u.modes);
    let key = names::fold(&u.nick);
    match st.nicks.get(&key).copied() {
        Some(holder) => collide::resolve(st, me, id, holder),
        None => {
            st.nicks.insert(key, id);
            st.notify_watchers(&u.nick, Some(&mask), me);
        }
    }
    let (users, _, _) = st.counts();
    st.max_users = st.max_users.max(users);
    id
}

/// Gives proxy `id` the nick `nick` without telling anyone (a snapshot's correction).
fn rename_quietly(st: &mut State, id: ClientId, nick: &str) {
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

/// Proxy `id`'s user modes become `modes` (the letters its node knows; `o` an IRC
/// operator of the network).
fn set_modes(st: &mut State, id: ClientId, modes: &str) {
    if let Some(c) = st.clients.get_mut(&id) {
        c.modes = modes
            .chars()
            .filter(|m| matches!(m, 'i' | 'w' | 'o' | 'B'))
            .collect();
        c.oper = c.is_oper().then(|| "remote".to_owned());
    }
}

/// Proxy `id` logged in to `account`: its neighbours with `account-notify` see ACCOUNT.
fn set_account(st: &mut State, id: ClientId, account: Option<String>) {
    let Some(c) = st.clients.get_mut(&id) else {
        return;
    };
    if c.account == account {
        return;
    }
    c.account.clone_from(&account);
    let prefix = c.prefix();
    let name = account.unwrap_or_else(|| "*".into());
    let out = st.from_client(id, Message::new("ACCOUNT", vec![name]).with_prefix(prefix));
    st.to_neighbours_with(id, Cap::AccountNotify, &out, false);
}

/// Removes proxy `id`: local neighbours see it QUIT with `reason`.
pub fn drop_proxy(st: &mut State, id: ClientId, reason: &str, server: &str) {
    st.cluster.forget(id);
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
/// channels), missing ones quit; each channel is merged with the local one
/// ([`merge::merge`]: modes, key, limit, lists, topic), and local members are told
/// what changed.
fn snapshot(server: &IrcServer, node: &str, users: &[UserInfo], channels: &[ChannelInfo]) {
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
        upsert(&mut server.lock(), &name, node, u);
        for m in &u.channels {
            join(server, node, u.uid, &m.channel, (m.op, m.voice), None);
        }
    }
    let mut st = server.lock();
    for info in channels {
        merge_channel(&mut st, &name, info);
    }
}

/// Merges a snapshot's channel into the local one and tells its local members.
fn merge_channel(st: &mut State, server: &str, info: &ChannelInfo) {
    let key = names::fold(&info.name);
    let Some(ch) = st.channels.get_mut(&key) else {
        return;
    };
    let merged = merge::merge(ch, info);
    let ch = &st.channels[&key];
    for params in merge::mode_lines(&merged.modes) {
        let mut p = vec![ch.name.clone()];
        p.extend(params);
        let line = Message::new("MODE", p).with_prefix(server.to_owned());
        for id in ch.members.keys() {
            if let Some(c) = st.clients.get(id) {
                c.handle.send_msg(&line);
            }
        }
    }
    if let (true, Some(t)) = (merged.topic, &ch.topic) {
        let line = Message::new("TOPIC", vec![ch.name.clone(), t.text.clone()])
            .with_prefix(server.to_owned());
        for id in ch.members.keys() {
            if let Some(c) = st.clients.get(id) {
                c.handle.send_msg(&line);
            }
        }
    }
    if !merged.modes.is_empty() || merged.topic {
        st.save_channel(&key);
    }
}
