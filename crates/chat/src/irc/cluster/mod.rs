//! Chat past one machine: several servers form one IRC network over NATS.
//!
//! Each server is one *node*. What its users do is published as
//! [`events`] (per channel, per user, per node); every node subscribes to all of them and
//! applies the others' events to its own state, where remote users are *proxies*:
//! clients without a connection, whose lines go nowhere, so NAMES, WHO, WHOIS and LUSERS
//! see them like anyone else and a message to them is published instead. A node that
//! starts or comes back asks the others for a snapshot of their users and channels.
//! Nicks are unique network-wide through a JetStream key-value bucket (`create`
//! succeeds for one claimant only); heartbeats tell the nodes which of them are alive,
//! and the users of a node that stops are quit with a netsplit message.
//!
//! - [`events`]: the wire types, subjects and claim keys (pure);
//! - `hooks`: what local commands publish (called from the command loop);
//! - `apply`: how remote events change the local state;
//! - `merge`: how a snapshot's channel joins the local one (pure);
//! - `collide`: two users with one nick after a split (the older claim keeps it);
//! - `jetstream`: creating the buckets and the stream (replicas where the NATS cluster
//!   has them);
//! - `accounts`: the network's accounts bucket (logins on any node);
//! - `history`: the network's history stream (CHATHISTORY on any node);
//! - `link`: the NATS connection (publishing, the subscription, claims, liveness).
//!
//! Without a cluster ([`ClusterState::default`]) every hook returns at once.

mod accounts;
mod apply;
mod collide;
pub mod events;
mod history;
mod hooks;
mod jetstream;
mod link;
mod merge;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::irc::channel::ClientId;

pub use accounts::{
    remember_login, reserve_account, unreserve_account, verify_account, Reserve, BUCKET_TIMEOUT,
};
pub use history::publish_record;
pub use hooks::{
    after, before, claim_nick, claim_result, host_changed, kill_remote, quit, route_to_owner,
    Before,
};
pub use link::{claim, ClusterConfig, Link};

/// A remote user's origin: its node and its id there.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The node's name.
    pub node: String,
    /// The user's id on that node.
    pub uid: u64,
}

/// The cluster's part of the server state (inside the state lock).
#[derive(Debug, Default)]
pub struct ClusterState {
    /// The link to NATS; `None`: no cluster, every hook does nothing.
    link: Option<Arc<Link>>,
    /// Local id of each remote user → where it comes from.
    proxies: HashMap<ClientId, Origin>,
    /// The other way round.
    by_origin: HashMap<Origin, ClientId>,
    /// Local users the other nodes were told about.
    introduced: HashSet<ClientId>,
    /// Local user → the nick key it holds a claim on.
    claimed: HashMap<ClientId, String>,
    /// A claim just won, for the NICK that is applied next: (client, key).
    granted: Option<(ClientId, String)>,
    /// The message id and time of the remote command being replayed, for the command
    /// to use instead of its own (one message, one `msgid` network-wide).
    stamp: Option<Stamp>,
    /// What each local sender's current command did that [`after`] publishes (the lock
    /// is released between the command and `after`, so it is kept per sender).
    pending: HashMap<ClientId, Pending>,
    /// The other nodes alive now (LUSERS counts them).
    nodes: BTreeSet<String>,
    /// Each node's current run (its epoch), as its events say: what its users' claims
    /// hold.
    epochs: HashMap<String, u64>,
}

/// What one local sender's command did, for [`after`] to publish.
#[derive(Debug, Default)]
struct Pending {
    /// Each PRIVMSG/NOTICE/TAGMSG target with its `msgid` and time.
    sent: Vec<(String, Stamp)>,
    /// The channel MODE changes applied (`#c`, `+o-v`, `a`, `b`).
    modes: Vec<Vec<String>>,
}

/// A message's id and receive time (Unix milliseconds).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamp {
    /// The `msgid`.
    pub msgid: String,
    /// When the sender's node received it.
    pub at: i64,
}

impl ClusterState {
    /// Whether this server is a node of a cluster.
    pub fn enabled(&self) -> bool {
        self.link.is_some()
    }

    /// The link, when clustered.
    pub fn link(&self) -> Option<Arc<Link>> {
        self.link.clone()
    }

    /// Whether client `id` is a remote user.
    pub fn is_proxy(&self, id: ClientId) -> bool {
        self.proxies.contains_key(&id)
    }

    /// The node of remote user `id`.
    pub fn node_of(&self, id: ClientId) -> Option<&str> {
        self.proxies.get(&id).map(|o| o.node.as_str())
    }

    /// Remote users (local id and origin).
    pub fn proxies(&self) -> impl Iterator<Item = (&ClientId, &Origin)> {
        self.proxies.iter()
    }

    /// Whether client `id` is a local user of a cluster node (its commands are
    /// published).
    pub fn publishes(&self, id: ClientId) -> bool {
        self.enabled() && !self.is_proxy(id)
    }

    /// The stamp of the remote message being replayed, once.
    pub fn take_stamp(&mut self) -> Option<Stamp> {
        self.stamp.take()
    }

    /// Notes that local user `id` sent a message to `target` with `stamp`.
    pub fn note_sent(&mut self, id: ClientId, target: &str, stamp: Stamp) {
        if self.publishes(id) {
            let p = self.pending.entry(id).or_default();
            p.sent.push((target.to_owned(), stamp));
        }
    }

    /// Notes that local user `id`'s MODE applied `params` (`#c`, the modes, their
    /// arguments).
    pub fn note_modes(&mut self, id: ClientId, params: Vec<String>) {
        if self.publishes(id) {
            self.pending.entry(id).or_default().modes.push(params);
        }
    }

    /// How many other nodes are alive.
    pub fn other_nodes(&self) -> usize {
        self.nodes.len()
    }

    /// Forgets client `id` (it is being removed from the state).
    pub fn forget(&mut self, id: ClientId) {
        if let Some(origin) = self.proxies.remove(&id) {
            self.by_origin.remove(&origin);
        }
        self.pending.remove(&id);
    }
}

/// The default time a node may stay silent before the others quit its users.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(15);
