//! Two users with one nick: what a split leaves when each side gave the nick away (the
//! other side's claims were freed, or NATS was gone and nicks were given locally). When
//! a node sees a remote user whose nick another user holds here, it decides with
//! [`keeps_nick`](super::events::keeps_nick): the user that took the nick first keeps
//! it (then the smaller node name, then the smaller id), and every node decides the same
//! from the same two users. The loser's own node renames it to its
//! [`uid_nick`](super::events::uid_nick), a nick no client can choose, with a `NICK`
//! its client and neighbours see, and tells the others ([`Event::Rename`]); the winner's
//! node makes sure the nick's claim in the bucket is its user's.

use crate::irc::channel::ClientId;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::state::State;

use super::events::{self, keeps_nick, Event};

/// Who a user is, for a collision: (nick time, node, id on that node).
fn identity(st: &State, me: &str, id: ClientId) -> Option<(i64, String, u64)> {
    let c = st.clients.get(&id)?;
    Some(match st.cluster.proxies.get(&id) {
        Some(o) => (c.nick_ts, o.node.clone(), o.uid),
        None => (c.nick_ts, me.to_owned(), id),
    })
}

/// Proxy `incoming` holds a nick that `holder` has here: decides who keeps it, maps the
/// nick to the winner and renames a local loser. `me` is this node's name.
pub fn resolve(st: &mut State, me: &str, incoming: ClientId, holder: ClientId) {
    let (Some(a), Some(b)) = (identity(st, me, holder), identity(st, me, incoming)) else {
        return;
    };
    let Some(nick) = st.clients.get(&incoming).and_then(|c| c.nick.clone()) else {
        return;
    };
    let holder_keeps = keeps_nick((a.0, &a.1, a.2), (b.0, &b.1, b.2));
    tracing::warn!(
        nick,
        kept_by = if holder_keeps { &a.1 } else { &b.1 },
        "chat cluster: nick collision after a split"
    );
    let key = names::fold(&nick);
    if holder_keeps {
        if !st.cluster.is_proxy(holder) {
            ensure_claim(st, holder);
        }
        return;
    }
    st.nicks.insert(key, incoming);
    if !st.cluster.is_proxy(holder) {
        // The claim goes to the winner (its node does the same when it sees the
        // collision; whichever comes first, the bucket ends with the winner's value).
        let winner = st.cluster.proxies.get(&incoming).and_then(|o| {
            let epoch = st.cluster.epochs.get(&o.node)?;
            Some(events::claim_value(&o.node, *epoch, o.uid))
        });
        if let (Some(link), Some(value)) = (st.cluster.link.clone(), winner) {
            link.hand_over(events::nick_key(&nick), value);
            st.cluster.claimed.remove(&holder);
        }
        let new = events::uid_nick(me, holder);
        force_nick(st, me, holder, &new);
    }
}

/// Makes sure the bucket's claim on local user `id`'s nick is its own.
fn ensure_claim(st: &mut State, id: ClientId) {
    let (Some(link), Some(nick)) = (
        st.cluster.link.clone(),
        st.clients.get(&id).and_then(|c| c.nick.clone()),
    ) else {
        return;
    };
    let key = events::nick_key(&nick);
    st.cluster.claimed.insert(id, key.clone());
    link.ensure(key, id);
}

/// Renames client `id` to `new` without any check (a collision's loser): it and its
/// neighbours see `NICK`, WHOWAS and MONITOR as for any change, the old nick's claim
/// is released, and a local user's rename is published.
pub fn force_nick(st: &mut State, server: &str, id: ClientId, new: &str) {
    let Some(c) = st.clients.get_mut(&id) else {
        return;
    };
    let old_prefix = c.prefix();
    let Some(old) = c.nick.replace(new.to_owned()) else {
        return;
    };
    c.nick_ts = chrono::Utc::now().timestamp_millis();
    let registered = c.registered;
    let old_key = names::fold(&old);
    if st.nicks.get(&old_key) == Some(&id) {
        st.nicks.remove(&old_key);
    }
    st.nicks.insert(names::fold(new), id);
    if registered {
        let m = Message::new("NICK", vec![new.to_owned()]).with_prefix(old_prefix);
        let out = st.from_client(id, m);
        st.to_self_and_neighbours(id, &out);
        if let Some(c) = st.clients.get_mut(&id) {
            c.nick = Some(old.clone());
        }
        st.remember_nick(id);
        if let Some(c) = st.clients.get_mut(&id) {
            c.nick = Some(new.to_owned());
        }
        st.notify_watchers(&old, None, server);
        let mask = st.clients.get(&id).map(|c| c.prefix()).unwrap_or_default();
        st.notify_watchers(new, Some(&mask), server);
    }
    if st.cluster.is_proxy(id) {
        return;
    }
    let Some(link) = st.cluster.link.clone() else {
        return;
    };
    // The new nick starts with a digit: no one can claim it, so it needs no claim.
    if let Some(key) = st.cluster.claimed.remove(&id) {
        link.release(key, id);
    }
    if st.cluster.introduced.contains(&id) {
        let subject = events::node_subject(link.node(), "users");
        let event = Event::Rename {
            uid: id,
            nick: new.to_owned(),
        };
        link.publish(subject, event);
    }
}
