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
//! - `link`: the NATS connection (publishing, the subscription, claims, liveness).
//!
//! Without a cluster ([`ClusterState::default`]) every hook returns at once.

mod apply;
pub mod events;
mod hooks;
mod link;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use crate::irc::channel::ClientId;

pub use hooks::{after, before, claim_nick, claim_result, quit, Before};
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
}

/// The default time a node may stay silent before the others quit its users.
pub const DEFAULT_NODE_TIMEOUT: Duration = Duration::from_secs(15);
