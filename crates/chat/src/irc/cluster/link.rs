//! The NATS side of a node: one connection (reconnecting for ever, to the servers in
//! the order given), one subscription to every cluster subject, a publisher task that
//! keeps the order events were queued in, the nick-claim and account buckets, the
//! history stream's reader, heartbeats and the liveness check.
//!
//! Events are queued without waiting (under the state lock) on a bounded queue; when it
//! is full (NATS gone for long) events are dropped and logged, and the snapshot sent on
//! reconnection repairs what the others missed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::kv::{self, CreateErrorKind, Operation};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::irc::message::Message;
use crate::irc::server::IrcServer;

use super::events::{self, Envelope, Event};
use super::{apply, history, hooks, jetstream};

/// Most events waiting to be published.
const QUEUE: usize = 16 * 1024;

/// How long a nick claim may take before the nick is given without it.
const CLAIM_TIMEOUT: Duration = Duration::from_secs(3);

/// How often a node deletes its own claims no user holds any more.
const SWEEP_EVERY: Duration = Duration::from_secs(300);

/// The pause between two tries of a claim that failed (not because it was taken).
const CLAIM_RETRY: Duration = Duration::from_millis(100);

/// How a server joins a cluster (`sockit serve --chat-cluster`).
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// The NATS servers (`nats://host:port`), tried in turn.
    pub servers: Vec<String>,
    /// A node silent this long is gone: its users quit (netsplit).
    pub node_timeout: Duration,
}

/// What the publisher task does.
#[derive(Debug)]
enum Outbound {
    /// Publish bytes on a subject.
    Publish(String, Vec<u8>),
    /// Delete a nick claim if it still holds this value.
    Release(String, String),
    /// Make a nick claim hold this value (a collision's winner).
    Ensure(String, String),
}

/// The node's link: its name and run, the publish queue, the buckets.
#[derive(Debug)]
pub struct Link {
    node: String,
    epoch: u64,
    tx: mpsc::Sender<Outbound>,
    kv: Mutex<Option<kv::Store>>,
    /// The network's accounts bucket, once open.
    accounts: Mutex<Option<kv::Store>>,
    /// Accounts whose bucket entry this node checked against a login here: account →
    /// (the entry's revision, a keyed hash of the password). Memory only.
    pub(super) account_checks: Mutex<HashMap<String, (u64, u64)>>,
    /// The key of those password hashes (random per run).
    pub(super) check_key: std::collections::hash_map::RandomState,
    /// argon2 computations for the bucket running at once.
    pub(super) hash_slots: tokio::sync::Semaphore,
    /// (subscribed, claim bucket open, accounts bucket open, history stream followed).
    ready: tokio::sync::watch::Sender<(bool, bool, bool, bool)>,
}

impl Link {
    /// This node's name.
    pub fn node(&self) -> &str {
        &self.node
    }

    /// Queues `event` on `subject` (dropped, and logged, when the queue is full).
    pub fn publish(&self, subject: String, event: Event) {
        let env = Envelope {
            node: self.node.clone(),
            epoch: self.epoch,
            event,
        };
        if self
            .tx
            .try_send(Outbound::Publish(subject, env.encode()))
            .is_err()
        {
            tracing::warn!("chat cluster: event queue full, event dropped");
        }
    }

    /// The claim value of local user `uid`.
    fn value(&self, uid: u64) -> String {
        events::claim_value(&self.node, self.epoch, uid)
    }

    /// Queues raw `bytes` on `subject` (history records).
    pub fn publish_raw(&self, subject: String, bytes: Vec<u8>) {
        if self.tx.try_send(Outbound::Publish(subject, bytes)).is_err() {
            tracing::warn!("chat cluster: event queue full, history record dropped");
        }
    }

    /// Releases local user `uid`'s claim on `key`.
    pub fn release(&self, key: String, uid: u64) {
        let _ = self.tx.try_send(Outbound::Release(key, self.value(uid)));
    }

    /// Makes the claim on `key` local user `uid`'s, whoever holds it now (it won a
    /// collision).
    pub fn ensure(&self, key: String, uid: u64) {
        let _ = self.tx.try_send(Outbound::Ensure(key, self.value(uid)));
    }

    /// Makes the claim on `key` hold `value` (another node's user won a collision with
    /// a local one: the claim goes to it).
    pub fn hand_over(&self, key: String, value: String) {
        let _ = self.tx.try_send(Outbound::Ensure(key, value));
    }

    fn store(&self) -> Option<kv::Store> {
        self.kv.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The accounts bucket, once open.
    pub(super) fn accounts(&self) -> Option<kv::Store> {
        self.accounts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// Claims `nick` for local user `uid`: `true` when it is this user's now. Without the
/// bucket (NATS unreachable, no JetStream), or when the claim takes too long, the nick
/// is given (the node keeps serving; a later conflict is logged).
pub async fn claim(link: Option<Arc<Link>>, nick: &str, uid: u64) -> bool {
    let Some(link) = link else { return true };
    let Some(store) = link.store() else {
        return true;
    };
    let key = events::nick_key(nick);
    let value = link.value(uid);
    // Retried until the timeout: a NATS server that just died, or a bucket electing a
    // new leader, fails for a moment.
    let work = async {
        loop {
            match store.create(&key, value.clone().into_bytes().into()).await {
                Ok(_) => return true,
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    match store.get(&key).await {
                        Ok(Some(v)) => return v.as_ref() == value.as_bytes(),
                        // Deleted meanwhile: try again.
                        Ok(None) => continue,
                        Err(e) => tracing::debug!(error = %e, "chat cluster: claim read failed"),
                    }
                }
                Err(e) => tracing::debug!(error = %e, "chat cluster: nick claim failed"),
            }
            tokio::time::sleep(CLAIM_RETRY).await;
        }
    };
    match tokio::time::timeout(CLAIM_TIMEOUT, work).await {
        Ok(won) => won,
        Err(_) => {
            tracing::warn!(nick, "chat cluster: nick claim timed out; given locally");
            true
        }
    }
}

/// Deletes `key` if it still holds `value`.
async fn release(store: kv::Store, key: String, value: String) {
    retrying(|| async {
        match store.entry(&key).await {
            Ok(Some(e))
                if e.operation == Operation::Put && e.value.as_ref() == value.as_bytes() =>
            {
                store
                    .delete_expect_revision(&key, Some(e.revision))
                    .await
                    .is_ok()
            }
            Ok(_) => true,
            Err(_) => false,
        }
    })
    .await;
}

/// Deletes the claims of this run of this node that no local user holds (a release
/// that could not be made while JetStream was away).
async fn sweep(server: &IrcServer, link: &Link, store: &kv::Store) {
    let Ok(keys) = store.keys().await else { return };
    let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
    let run = format!("{} {:x} ", link.node, link.epoch);
    for key in keys {
        let Ok(Some(e)) = store.entry(&key).await else {
            continue;
        };
        let value = String::from_utf8_lossy(&e.value).into_owned();
        let Some(uid) = value
            .strip_prefix(&run)
            .and_then(|u| u64::from_str_radix(u, 16).ok())
        else {
            continue;
        };
        let held = server.lock().cluster.claimed.get(&uid) == Some(&key);
        if e.operation == Operation::Put && !held {
            let _ = store.delete_expect_revision(&key, Some(e.revision)).await;
        }
    }
}

/// Makes `key` hold `value`: created if absent, replaced (compare-and-set on the
/// revision read) if another value holds it; retried against concurrent changes and a
/// JetStream that is not back yet.
async fn ensure(store: kv::Store, key: String, value: String) {
    let done = retrying(|| async {
        match store.entry(&key).await {
            Ok(Some(e)) if e.operation == Operation::Put => {
                e.value.as_ref() == value.as_bytes()
                    || store
                        .update(&key, value.clone().into_bytes().into(), e.revision)
                        .await
                        .is_ok()
            }
            Ok(_) => store
                .create(&key, value.clone().into_bytes().into())
                .await
                .is_ok(),
            Err(_) => false,
        }
    })
    .await;
    if !done {
        tracing::warn!(key, "chat cluster: could not take over a nick claim");
    }
}

/// Deletes every claim of `node` (all its users are gone), except those of run `keep`.
async fn release_node(store: kv::Store, node: String, keep: Option<String>) {
    release_claims(store, |value| {
        let run = value.rsplit_once(' ').map(|(run, _)| run);
        events::claim_node(value) == Some(node.as_str())
            && (keep.is_none() || run != keep.as_deref())
    })
    .await;
}

/// Deletes the claims of run `run` (`node epoch`) of a node that went silent, as long
/// as `still_gone` says it has not come back (a task that waited for JetStream must not
/// free the nicks of a node that is back).
async fn release_run(store: kv::Store, run: String, still_gone: impl Fn() -> bool) {
    let prefix = format!("{run} ");
    release_claims(store, |value| value.starts_with(&prefix) && still_gone()).await;
}

/// Deletes each claim whose value `doomed` picks.
async fn release_claims(store: kv::Store, doomed: impl Fn(&str) -> bool) {
    let Ok(keys) = store.keys().await else { return };
    let keys: Vec<String> = keys.filter_map(|k| async { k.ok() }).collect().await;
    for key in keys {
        let Ok(Some(e)) = store.entry(&key).await else {
            continue;
        };
        let value = String::from_utf8_lossy(&e.value).into_owned();
        if e.operation == Operation::Put && doomed(&value) {
            let _ = store.delete_expect_revision(&key, Some(e.revision)).await;
        }
    }
}

impl IrcServer {
    /// Makes this server a node of the cluster `cfg` describes (its name is the node's):
    /// from now on local users' events are published, and the task returned applies the
    /// other nodes' until `shutdown`.
    pub fn join_cluster(
        &self,
        cfg: ClusterConfig,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let epoch = self.lock().epoch();
        let link = Arc::new(Link {
            node: self.config().name.clone(),
            epoch,
            tx,
            kv: Mutex::new(None),
            accounts: Mutex::new(None),
            account_checks: Mutex::new(HashMap::new()),
            check_key: std::collections::hash_map::RandomState::new(),
            hash_slots: tokio::sync::Semaphore::new(2),
            ready: tokio::sync::watch::channel((false, false, false, false)).0,
        });
        self.lock().cluster.link = Some(link.clone());
        tokio::spawn(run(self.clone(), link, rx, cfg, shutdown))
    }

    /// Waits until this node is subscribed to the cluster, its buckets are open and it
    /// follows the history stream (at once without a cluster).
    pub async fn cluster_ready(&self) {
        let Some(link) = self.lock().cluster.link() else {
            return;
        };
        let mut rx = link.ready.subscribe();
        let _ = rx
            .wait_for(|(sub, kv, accounts, hist)| *sub && *kv && *accounts && *hist)
            .await;
    }
}

/// Tells every local user `text` (a server NOTICE).
fn notice_local(server: &IrcServer, text: &str) {
    let st = server.lock();
    let name = server.config().name.clone();
    for (id, c) in &st.clients {
        if c.registered && !st.cluster.is_proxy(*id) {
            let m = Message::new("NOTICE", vec![c.nick_or_star().to_owned(), text.to_owned()])
                .with_prefix(name.clone());
            c.handle.send_msg(&m);
        }
    }
}

/// Announces this node and its users (on start and on every reconnection).
fn announce(server: &IrcServer, link: &Link) {
    link.publish(events::node_subject(&link.node, "hello"), Event::Hello);
    let snap = hooks::snapshot(&server.lock());
    link.publish(events::node_subject(&link.node, "snapshot"), snap);
}

/// Claims again every local user's nick (after the others freed them in a split).
async fn reclaim(server: &IrcServer, link: &Link, store: &kv::Store) {
    let claims: Vec<(u64, String)> = server
        .lock()
        .cluster
        .claimed
        .iter()
        .map(|(id, key)| (*id, key.clone()))
        .collect();
    for (uid, key) in claims {
        let value = link.value(uid);
        // JetStream may need a moment after NATS returns: retried for a while.
        let done = retrying(|| async {
            match store.create(&key, value.clone().into_bytes().into()).await {
                Ok(_) => true,
                Err(e) if e.kind() == CreateErrorKind::AlreadyExists => {
                    match store.get(&key).await {
                        Ok(held) => {
                            if held.as_deref() != Some(value.as_bytes()) {
                                tracing::warn!(key, "chat cluster: a nick is now held elsewhere");
                            }
                            true
                        }
                        Err(_) => false,
                    }
                }
                Err(_) => false,
            }
        })
        .await;
        if !done {
            tracing::warn!(key, "chat cluster: could not claim a nick again");
        }
    }
}

/// How long a claim operation after a reconnection is retried.
const RETRY_FOR: Duration = Duration::from_secs(15);

/// Runs `attempt` until it returns `true`, [`CLAIM_RETRY`] apart, for at most
/// [`RETRY_FOR`]; whether it succeeded.
async fn retrying<F: std::future::Future<Output = bool>>(mut attempt: impl FnMut() -> F) -> bool {
    let deadline = Instant::now() + RETRY_FOR;
    while Instant::now() < deadline {
        if tokio::time::timeout_at(deadline, attempt())
            .await
            .unwrap_or(false)
        {
            return true;
        }
        tokio::time::sleep(CLAIM_RETRY).await;
    }
    false
}

/// Opens (or creates) the claim and account buckets, retrying until NATS answers; then
/// frees the claims an earlier run of this node left.
async fn open_buckets(client: async_nats::Client, link: Arc<Link>, shutdown: CancellationToken) {
    let js = async_nats::jetstream::new(client);
    let (store, accounts) = loop {
        let got = async {
            let nicks = jetstream::bucket(&js, events::NICK_BUCKET).await?;
            let accounts = jetstream::bucket(&js, events::ACCOUNT_BUCKET).await?;
            Ok::<_, async_nats::Error>((nicks, accounts))
        };
        match got.await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "chat cluster: no buckets yet (JetStream?)");
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    };
    let run = format!("{} {:x}", link.node, link.epoch);
    release_node(store.clone(), link.node.clone(), Some(run)).await;
    *link.kv.lock().unwrap_or_else(|p| p.into_inner()) = Some(store);
    *link.accounts.lock().unwrap_or_else(|p| p.into_inner()) = Some(accounts);
    link.ready.send_modify(|r| {
        r.1 = true;
        r.2 = true;
    });
}

/// Marks the history stream as followed (for [`IrcServer::cluster_ready`]).
pub(super) fn history_followed(link: &Link) {
    link.ready.send_modify(|r| r.3 = true);
}

/// Publishes queued events in order; releases claims.
async fn publisher(client: async_nats::Client, link: Arc<Link>, mut rx: mpsc::Receiver<Outbound>) {
    while let Some(out) = rx.recv().await {
        match out {
            Outbound::Publish(subject, bytes) => {
                if let Err(e) = client.publish(subject, bytes.into()).await {
                    tracing::debug!(error = %e, "chat cluster: publish failed");
                }
            }
            Outbound::Release(key, value) => {
                if let Some(store) = link.store() {
                    tokio::spawn(release(store, key, value));
                }
            }
            Outbound::Ensure(key, value) => {
                if let Some(store) = link.store() {
                    tokio::spawn(ensure(store, key, value));
                }
            }
        }
    }
}

/// The node's loop: incoming events, connection changes, heartbeats, liveness.
async fn run(
    server: IrcServer,
    link: Arc<Link>,
    rx: mpsc::Receiver<Outbound>,
    cfg: ClusterConfig,
    shutdown: CancellationToken,
) {
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let opts = async_nats::ConnectOptions::new()
        .name(format!("sockit {}", link.node))
        .retain_servers_order()
        .retry_on_initial_connect()
        .max_reconnects(None)
        .reconnect_delay_callback(|n| Duration::from_millis((n as u64 * 100).min(1000)))
        .event_callback(move |e| {
            let tx = ev_tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
    let client = match opts.connect(cfg.servers.clone()).await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "chat cluster: cannot use the NATS servers");
            return;
        }
    };
    let mut sub = match client.subscribe(events::ALL).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "chat cluster: cannot subscribe");
            return;
        }
    };
    // The subscription is in place once the server answered a round trip after it.
    let _ = client.flush().await;
    link.ready.send_modify(|r| r.0 = true);
    tokio::spawn(publisher(client.clone(), link.clone(), rx));
    tokio::spawn(open_buckets(client.clone(), link.clone(), shutdown.clone()));
    tokio::spawn(history::follow(
        server.clone(),
        client.clone(),
        link.clone(),
        shutdown.clone(),
    ));
    announce(&server, &link);
    let timeout = cfg.node_timeout.max(Duration::from_millis(100));
    let mut beat = tokio::time::interval(timeout / 3);
    let mut check = tokio::time::interval(timeout / 4);
    let mut sweep_every = tokio::time::interval_at(Instant::now() + SWEEP_EVERY, SWEEP_EVERY);
    // Node → (its run, when it was last heard).
    let mut seen: HashMap<String, (u64, Instant)> = HashMap::new();
    let mut lost = false;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = beat.tick() => {
                link.publish(events::node_subject(&link.node, "alive"), Event::Alive);
            }
            _ = sweep_every.tick() => {
                if let Some(store) = link.store() {
                    let (server, link) = (server.clone(), link.clone());
                    tokio::spawn(async move { sweep(&server, &link, &store).await });
                }
            }
            _ = check.tick() => {
                let now = Instant::now();
                let gone: Vec<(String, u64)> = seen
                    .iter()
                    .filter(|(_, (_, t))| now.duration_since(*t) > timeout)
                    .map(|(n, (epoch, _))| (n.clone(), *epoch))
                    .collect();
                for (node, epoch) in gone {
                    seen.remove(&node);
                    server.lock().cluster.nodes.remove(&node);
                    let n = apply::split(&server, &node);
                    tracing::warn!(node, users = n, "chat cluster: node gone (netsplit)");
                    if let Some(store) = link.store() {
                        let run = format!("{node} {epoch:x}");
                        let server = server.clone();
                        let still_gone = move || !server.lock().cluster.nodes.contains(&node);
                        tokio::spawn(release_run(store, run, still_gone));
                    }
                }
            }
            e = ev_rx.recv() => match e {
                Some(async_nats::Event::Disconnected) if !lost => {
                    lost = true;
                    tracing::warn!("chat cluster: NATS unreachable; serving local users");
                    notice_local(&server, "*** Lost the link to the rest of the network; \
                        users elsewhere will leave if it does not come back soon");
                }
                Some(async_nats::Event::Connected) if lost => {
                    lost = false;
                    tracing::info!("chat cluster: NATS back; re-syncing");
                    notice_local(&server, "*** The link to the rest of the network is back");
                    announce(&server, &link);
                    if let Some(store) = link.store() {
                        let (server, link) = (server.clone(), link.clone());
                        tokio::spawn(async move {
                            reclaim(&server, &link, &store).await;
                            sweep(&server, &link, &store).await;
                        });
                    }
                }
                Some(_) => {}
                None => {}
            },
            msg = sub.next() => {
                let Some(msg) = msg else { break };
                let Some(env) = Envelope::decode(&msg.payload) else { continue };
                let Some(route) = events::route(msg.subject.as_str()) else { continue };
                if env.node == link.node {
                    continue;
                }
                let known = seen.insert(env.node.clone(), (env.epoch, Instant::now()));
                if known.is_none_or(|(epoch, _)| epoch != env.epoch) {
                    let mut st = server.lock();
                    st.cluster.nodes.insert(env.node.clone());
                    st.cluster.epochs.insert(env.node.clone(), env.epoch);
                }
                if known.is_some_and(|(epoch, _)| epoch != env.epoch) {
                    // A new run of that node: its earlier users are gone.
                    apply::split(&server, &env.node);
                }
                if known.is_none() && !matches!(env.event, Event::Hello | Event::Snapshot { .. }) {
                    // Heard again after a split (it was only slow): both sides resync.
                    announce(&server, &link);
                }
                if env.event == Event::Hello {
                    let snap = hooks::snapshot(&server.lock());
                    link.publish(events::node_subject(&link.node, "snapshot"), snap);
                }
                apply::apply(&server, &env.node, &route, env.event);
            }
        }
    }
}
