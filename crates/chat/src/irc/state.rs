//! The server's shared state: clients, nicks and channels, behind one lock.
//!
//! Every command runs with the lock held and only ever *queues* lines for clients (a
//! non-blocking `try_send` on each client's bounded queue), so no client can slow the
//! others: a client whose queue is full is marked to be disconnected with
//! "SendQ exceeded" and its connection task does the rest.

use std::cell::OnceCell;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::irc::auth::{IrcAuth, SaslState};
use crate::irc::caps::{Cap, CapSet};
use crate::irc::channel::{Channel, ClientId};
use crate::irc::channel_store::{ChannelStore, ChannelStoreConfig};
use crate::irc::flood::FloodConfig;
use crate::irc::history::HistoryConfig;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::tags::Tags;

/// What the IRC server is configured with (every limit has a `sockit serve` flag).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server name: the prefix of every server message and the first PONG parameter.
    pub name: String,
    /// The network name (ISUPPORT `NETWORK`).
    pub network: String,
    /// The server password clients must send with PASS, if any. With [`auth`](Self::auth)
    /// as well, a client logged in to an account passes without it.
    pub password: Option<String>,
    /// Account authentication (SASL PLAIN, `PASS account:password`); `None` offers neither.
    pub auth: Option<Arc<dyn IrcAuth>>,
    /// Failed logins one connection may make before it is closed.
    pub max_auth_failures: u32,
    /// Message-of-the-day lines; `None` answers MOTD with 422.
    pub motd: Option<Vec<String>>,
    /// Ping a client silent this long.
    pub ping_interval: Duration,
    /// Disconnect a pinged client that stays silent this long after the PING.
    pub ping_timeout: Duration,
    /// Most lines queued for one client before it is disconnected ("SendQ exceeded").
    pub sendq: usize,
    /// Most received lines waiting for processing before "Excess Flood".
    pub recvq: usize,
    /// Flood control.
    pub flood: FloodConfig,
    /// Most channels one client may be in (ISUPPORT `CHANLIMIT`).
    pub max_channels: usize,
    /// The IRC operators (`OPER name password`); their passwords are checked by
    /// [`auth`](Self::auth), so without it no OPER succeeds.
    pub opers: Vec<OperBlock>,
    /// What ADMIN answers.
    pub admin: AdminInfo,
    /// Where message history (`draft/chathistory`) and read markers are kept; `None`
    /// keeps them in memory with the default limits
    /// ([`DEFAULT_MAX_DAYS`](crate::irc::history::DEFAULT_MAX_DAYS),
    /// [`DEFAULT_MAX_MESSAGES`](crate::irc::history::DEFAULT_MAX_MESSAGES)).
    pub history: Option<HistoryConfig>,
    /// Channel registration (ChanServ, as in Ergo): logged-in channel operators may
    /// register channels, whose topic, modes and lists then survive restarts. While on,
    /// the nick `ChanServ` is reserved.
    pub channel_registration: bool,
    /// Where registered channels are kept; `None` keeps them in memory (lost when the
    /// server stops).
    pub channels: Option<ChannelStoreConfig>,
    /// Most channels one account may register.
    pub max_registered_channels: usize,
}

/// An IRC operator the server admin configured: `OPER name password` succeeds when
/// `password` is the password of `account` (checked by the server's
/// [`IrcAuth`], i.e. the accounts store's argon2id hash, with its login back-off) and the
/// client's `user@host` matches `mask`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperBlock {
    /// The name given to OPER.
    pub name: String,
    /// The account whose password the operator gives.
    pub account: String,
    /// A `user@host` glob the client must match (`*` for anyone).
    pub mask: String,
}

impl OperBlock {
    /// Operator `name` proving the password of the account of the same name, from anywhere.
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            account: name.to_owned(),
            mask: "*".into(),
        }
    }
}

/// The three lines of ADMIN (257, 258, 259).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminInfo {
    /// 257 RPL_ADMINLOC1: where the server is.
    pub location: String,
    /// 258 RPL_ADMINLOC2: who runs it.
    pub details: String,
    /// 259 RPL_ADMINEMAIL: how to reach them.
    pub email: String,
}

impl Default for AdminInfo {
    fn default() -> Self {
        Self {
            location: "A sockit server".into(),
            details: "Run by its host's administrator".into(),
            email: "(no address configured)".into(),
        }
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: crate::default_server_name(),
            network: "sockit".into(),
            password: None,
            auth: None,
            max_auth_failures: 3,
            motd: Some(vec![
                "Welcome to sockit's IRC server.".into(),
                "Be kind; channel and private messages are kept for chat history.".into(),
            ]),
            ping_interval: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(120),
            sendq: 2048,
            recvq: 128,
            flood: FloodConfig::default(),
            max_channels: 50,
            opers: Vec::new(),
            admin: AdminInfo::default(),
            history: None,
            channel_registration: true,
            channels: None,
            max_registered_channels: 15,
        }
    }
}

/// A line ready to write (CRLF included), shared by every recipient.
pub type Line = Arc<[u8]>;

/// A connection's kill switch: marks it for disconnection with a reason.
#[derive(Debug, Clone, Default)]
pub struct Killer {
    kill: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Killer {
    /// Marks the client for disconnection with `reason` (the first reason wins).
    pub fn kill(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason.to_owned());
        }
        self.kill.cancel();
    }

    /// Cancelled once the client is marked for disconnection.
    pub fn killed(&self) -> &CancellationToken {
        &self.kill
    }

    /// Why the client was marked for disconnection.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The part of a connection other tasks may touch: its send queue and its kill switch.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: mpsc::Sender<Line>,
    killer: Killer,
    /// The capabilities the client enabled (a [`CapSet`]), read by whoever queues a line.
    caps: Arc<AtomicU32>,
    /// While set, lines are collected here instead of queued (a labeled command's
    /// response, see [`capture`](Self::capture)).
    captured: Arc<Mutex<Option<Vec<Line>>>>,
    /// Whether `captured` is set (checked without the lock on every send).
    capturing: Arc<std::sync::atomic::AtomicBool>,
    /// The queue's capacity (the most lines one capture holds).
    capacity: usize,
}

impl ClientHandle {
    /// A handle and the receiving end of its queue (`capacity` lines).
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Line>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx,
                killer: Killer::default(),
                caps: Arc::new(AtomicU32::new(0)),
                captured: Arc::new(Mutex::new(None)),
                capturing: Arc::new(std::sync::atomic::AtomicBool::new(false)),
                capacity: capacity.max(1),
            },
            rx,
        )
    }

    /// From now on, collects the lines sent to this client instead of queueing them,
    /// until [`release`](Self::release). Commands run under the state lock, so while a
    /// command of this client runs, what it is sent is that command's response.
    pub fn capture(&self) {
        let mut c = self.captured.lock().unwrap_or_else(|p| p.into_inner());
        if c.is_none() {
            *c = Some(Vec::new());
        }
        self.capturing.store(true, Ordering::SeqCst);
    }

    /// Stops collecting; returns the lines collected since [`capture`](Self::capture).
    pub fn release(&self) -> Vec<Line> {
        self.capturing.store(false, Ordering::SeqCst);
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
            .unwrap_or_default()
    }

    /// Queues a line without waiting; a full queue disconnects the client.
    pub fn send(&self, line: Line) {
        if self.capturing.load(Ordering::SeqCst) {
            let mut c = self.captured.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(lines) = c.as_mut() {
                if lines.len() >= self.capacity {
                    drop(c);
                    self.kill("SendQ exceeded");
                } else {
                    lines.push(line);
                }
                return;
            }
        }
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(line) {
            self.kill("SendQ exceeded");
        }
    }

    /// Queues a message (with `time=` for a client with `server-time`).
    pub fn send_msg(&self, msg: &Message) {
        let caps = self.caps();
        if caps.has(Cap::ServerTime) {
            let mut tags = Tags::new();
            tags.insert("time", server_time());
            self.send(tagged_line(&tags, msg));
        } else {
            self.send(msg.to_line().into());
        }
    }

    /// Queues `out` shaped for this client's capabilities, past any
    /// [`capture`](Self::capture): a side effect of the client's command, not its
    /// response (a message the client sent to itself).
    pub fn send_out_uncaptured(&self, out: &Outgoing) {
        if let Some(line) = out.line(self.caps()) {
            if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(line) {
                self.kill("SendQ exceeded");
            }
        }
    }

    /// Queues `out` shaped for this client's capabilities (nothing if it may not get it).
    pub fn send_out(&self, out: &Outgoing) {
        if let Some(line) = out.line(self.caps()) {
            self.send(line);
        }
    }

    /// The capabilities the client enabled.
    pub fn caps(&self) -> CapSet {
        CapSet(self.caps.load(Ordering::Relaxed))
    }

    /// Replaces the client's capabilities.
    pub fn set_caps(&self, caps: CapSet) {
        self.caps.store(caps.0, Ordering::Relaxed);
    }

    /// Marks the client for disconnection with `reason` (the first reason wins).
    pub fn kill(&self, reason: &str) {
        self.killer.kill(reason);
    }

    /// The kill switch alone (holding it does not keep the queue open).
    pub fn killer(&self) -> &Killer {
        &self.killer
    }
}

/// The current time as `server-time` wants it: ISO 8601, UTC, milliseconds.
pub fn server_time() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// Unix milliseconds as `server-time` writes them (`YYYY-MM-DDThh:mm:ss.sssZ`).
pub fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// A `server-time` timestamp (any RFC 3339 time) as Unix milliseconds.
pub fn parse_time(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.timestamp_millis())
}

/// `@tags ` (when there are any) followed by the message's line. The message's own tags
/// are not used; the part after the tags keeps the 512-byte limit.
pub fn tagged_line(tags: &Tags, msg: &Message) -> Line {
    let body = if msg.tags.is_some() {
        Message {
            tags: None,
            ..msg.clone()
        }
        .to_line()
    } else {
        msg.to_line()
    };
    if tags.is_empty() {
        return body.into();
    }
    let wire = tags.to_wire();
    let mut line = Vec::with_capacity(wire.len() + 2 + body.len());
    line.push(b'@');
    line.extend_from_slice(wire.as_bytes());
    line.push(b' ');
    line.extend_from_slice(&body);
    line.into()
}

/// A message from a user to others, shaped per recipient: `time` for `server-time`,
/// `msgid` and the sender's client-only tags for `message-tags`, `account` for
/// `account-tag`. Each shape is serialized once, however many recipients share it.
#[derive(Debug)]
pub struct Outgoing {
    msg: Message,
    time: String,
    account: Option<String>,
    msgid: Option<String>,
    client_tags: Tags,
    /// Only for clients with `message-tags` (TAGMSG).
    tags_only: bool,
    /// From a client in bot mode (`+B`): the `bot` tag for `message-tags`.
    bot: bool,
    cache: [OnceCell<Line>; 8],
}

impl Outgoing {
    /// `msg` stamped with the current time.
    pub fn new(msg: Message) -> Self {
        Self {
            msg,
            time: server_time(),
            account: None,
            msgid: None,
            client_tags: Tags::new(),
            tags_only: false,
            bot: false,
            cache: Default::default(),
        }
    }

    /// Stamped with `ms` (Unix milliseconds) instead of the current time.
    pub fn at_ms(mut self, ms: i64) -> Self {
        self.time = format_ms(ms);
        self
    }

    /// With the sender's account (for `account-tag`).
    pub fn account(mut self, account: Option<String>) -> Self {
        self.account = account;
        self
    }

    /// With a message id (for `message-tags`).
    pub fn msgid(mut self, msgid: String) -> Self {
        self.msgid = Some(msgid);
        self
    }

    /// With client-only tags to relay (for `message-tags`).
    pub fn client_tags(mut self, tags: Tags) -> Self {
        self.client_tags = tags;
        self
    }

    /// From a bot (`+B`): recipients with `message-tags` see the `bot` tag.
    pub fn bot(mut self, bot: bool) -> Self {
        self.bot = bot;
        self
    }

    /// Delivered only to clients with `message-tags` (TAGMSG).
    pub fn tags_only(mut self) -> Self {
        self.tags_only = true;
        self
    }

    /// The line for a client with `caps`, or `None` when it must not get this message.
    pub fn line(&self, caps: CapSet) -> Option<Line> {
        let tags_cap = caps.has(Cap::MessageTags);
        if self.tags_only && !tags_cap {
            return None;
        }
        let time = caps.has(Cap::ServerTime);
        let account = caps.has(Cap::AccountTag);
        let slot = usize::from(time) | usize::from(tags_cap) << 1 | usize::from(account) << 2;
        let line = self.cache[slot].get_or_init(|| {
            let mut tags = Tags::new();
            if time {
                tags.insert("time", self.time.as_str());
            }
            if tags_cap {
                if let Some(id) = &self.msgid {
                    tags.insert("msgid", id.as_str());
                }
            }
            if account {
                if let Some(a) = &self.account {
                    tags.insert("account", a.as_str());
                }
            }
            if tags_cap && self.bot {
                tags.insert("bot", "");
            }
            if tags_cap {
                for (k, v) in self.client_tags.iter() {
                    tags.insert(k, v);
                }
            }
            tagged_line(&tags, &self.msg)
        });
        Some(line.clone())
    }
}

/// One connected client, registered or not.
#[derive(Debug)]
pub struct Client {
    /// The nick, once NICK was accepted.
    pub nick: Option<String>,
    /// The user name from USER.
    pub user: Option<String>,
    /// The real name from USER.
    pub realname: String,
    /// The client's host as shown to others (its IP, until an operator's CHGHOST).
    pub host: String,
    /// The client's IP address.
    pub ip: String,
    /// Whether registration completed (001 was sent).
    pub registered: bool,
    /// Set by `CAP LS`/`CAP REQ` until `CAP END`: registration waits.
    pub cap_negotiating: bool,
    /// The password given with PASS.
    pub pass: Option<String>,
    /// Whether the PASS argument was already checked as account credentials.
    pub pass_checked: bool,
    /// The highest `CAP LS` version the client sent (0 without one, 302 for `CAP LS 302`).
    pub cap_version: u32,
    /// The account the client logged in to (SASL or PASS), if any.
    pub account: Option<String>,
    /// Where the client is in a SASL exchange.
    pub sasl: SaslState,
    /// The SHA-256 fingerprint of its TLS client certificate (SASL EXTERNAL, WHOIS 276).
    pub cert_fingerprint: Option<String>,
    /// Failed logins on this connection.
    pub auth_failures: u32,
    /// User modes (`i`, `w`, `o`, `B`).
    pub modes: BTreeSet<char>,
    /// The operator name the client OPERed as (user mode `o`), if it is an operator.
    pub oper: Option<String>,
    /// The operator name of an OPER whose password is being checked.
    pub pending_oper: Option<String>,
    /// The client's MONITOR list: folded nick → the nick as given.
    pub monitor: std::collections::BTreeMap<String, String>,
    /// Away message, if away.
    pub away: Option<String>,
    /// Folded names of the channels the client is in.
    pub channels: BTreeSet<String>,
    /// Read markers of a client not logged in (folded target → Unix milliseconds; those
    /// of an account are in the history store).
    pub markers: HashMap<String, i64>,
    /// Its queue and kill switch.
    pub handle: ClientHandle,
    /// When it connected (Unix seconds, for WHOIS 317).
    pub signon: i64,
    /// When it last sent a PRIVMSG/NOTICE (for WHOIS idle).
    pub last_spoke: Instant,
    /// When it took its current nick (Unix milliseconds): in a cluster, the older of
    /// two users with one nick keeps it.
    pub nick_ts: i64,
}

impl Client {
    /// A new, unregistered client.
    pub fn new(host: String, handle: ClientHandle) -> Self {
        Self {
            nick: None,
            user: None,
            realname: String::new(),
            ip: host.clone(),
            host,
            registered: false,
            cap_negotiating: false,
            pass: None,
            pass_checked: false,
            cap_version: 0,
            account: None,
            sasl: SaslState::Idle,
            cert_fingerprint: None,
            auth_failures: 0,
            modes: BTreeSet::new(),
            oper: None,
            pending_oper: None,
            monitor: std::collections::BTreeMap::new(),
            away: None,
            channels: BTreeSet::new(),
            markers: HashMap::new(),
            handle,
            signon: chrono::Utc::now().timestamp(),
            last_spoke: Instant::now(),
            nick_ts: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// The nick, or `*` before one is set (the target of early numerics).
    pub fn nick_or_star(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// The capabilities the client enabled with `CAP REQ`.
    pub fn caps(&self) -> CapSet {
        self.handle.caps()
    }

    /// Whether the client enabled `cap`.
    pub fn has(&self, cap: Cap) -> bool {
        self.handle.caps().has(cap)
    }

    /// Whether the client is an IRC operator (user mode `o`).
    pub fn is_oper(&self) -> bool {
        self.modes.contains(&'o')
    }

    /// Whether the client is a bot (user mode `B`).
    pub fn is_bot(&self) -> bool {
        self.modes.contains(&'B')
    }

    /// `nick!user@host`, the prefix of messages from this client.
    pub fn prefix(&self) -> String {
        format!(
            "{}!{}@{}",
            self.nick_or_star(),
            self.user.as_deref().unwrap_or("*"),
            self.host
        )
    }
}

/// Clients, nicks and channels.
#[derive(Debug, Default)]
pub struct State {
    /// Every connected client.
    pub clients: HashMap<ClientId, Client>,
    /// Folded nick → client.
    pub nicks: HashMap<String, ClientId>,
    /// Folded channel name → channel.
    pub channels: HashMap<String, Channel>,
    /// The next client id.
    next_id: ClientId,
    /// The most registered users seen at once (LUSERS 266; the whole network on a
    /// cluster node).
    pub max_users: usize,
    /// The most of this server's own registered users seen at once (LUSERS 265).
    pub max_local_users: usize,
    /// Message ids handed out so far.
    msgids: u64,
    /// What makes this server's message ids differ from an earlier run's.
    msgid_epoch: u64,
    /// WHOWAS: folded nick → the users who last had it, newest first.
    pub whowas: HashMap<String, VecDeque<WhowasEntry>>,
    /// The folded nicks in `whowas`, oldest entry first (one per entry, for eviction).
    whowas_order: VecDeque<String>,
    /// MONITOR: folded nick → the clients watching it.
    pub watchers: HashMap<String, BTreeSet<ClientId>>,
    /// Batches opened by commands so far (for unique batch ids).
    batches: u64,
    /// Where registered channels are saved.
    pub channel_store: Arc<ChannelStore>,
    /// The chat cluster's remote users and claims (empty without `--chat-cluster`).
    pub cluster: crate::irc::cluster::ClusterState,
}

/// Most WHOWAS entries kept per nick.
pub const WHOWAS_PER_NICK: usize = 8;

/// Most WHOWAS entries kept in all.
pub const WHOWAS_MAX: usize = 4096;

/// One former user of a nick (WHOWAS 314).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhowasEntry {
    /// The nick as it was spelled.
    pub nick: String,
    /// The user name.
    pub user: String,
    /// The host.
    pub host: String,
    /// The realname.
    pub realname: String,
    /// The account, if logged in.
    pub account: Option<String>,
    /// When the nick was left (Unix seconds).
    pub at: i64,
}

impl State {
    /// The state a server with `cfg` starts with: with channel registration on, the
    /// registered channels from its store (empty, with their topic, modes and lists) and
    /// the nick `ChanServ` reserved. A store that cannot be opened is logged and replaced
    /// by memory.
    pub fn new(cfg: &ServerConfig) -> Self {
        let mut st = Self::default();
        if !cfg.channel_registration {
            return st;
        }
        let (store, channels) =
            ChannelStore::from_config(cfg.channels.as_ref()).unwrap_or_else(|e| {
                tracing::error!(error = %e, "registered channels kept in memory");
                (ChannelStore::memory(), Vec::new())
            });
        for ch in channels {
            st.channels.insert(names::fold(&ch.name), ch);
        }
        st.channel_store = Arc::new(store);
        crate::irc::chanserv::reserve_nick(&mut st);
        st
    }

    /// Saves channel `key` if it is registered (without waiting on the disk).
    pub fn save_channel(&self, key: &str) {
        if let Some(ch) = self.channels.get(key).filter(|c| c.is_registered()) {
            self.channel_store.save(ch);
        }
    }

    /// Adds a connection; returns its id.
    pub fn add(&mut self, client: Client) -> ClientId {
        self.next_id += 1;
        let id = self.next_id;
        self.clients.insert(id, client);
        id
    }

    /// A new message id, unique for this server (and across restarts).
    pub fn next_msgid(&mut self) -> String {
        let epoch = self.epoch();
        self.msgids += 1;
        format!("{:x}-{:x}", epoch, self.msgids)
    }

    /// What tells this run of the server from earlier ones (its start in Unix ms).
    pub fn epoch(&mut self) -> u64 {
        if self.msgid_epoch == 0 {
            self.msgid_epoch = u64::try_from(chrono::Utc::now().timestamp_millis()).unwrap_or(1);
        }
        self.msgid_epoch
    }

    /// A new batch id (`prefix` then a number unique for this server).
    pub fn next_batch(&mut self, prefix: &str) -> String {
        self.batches += 1;
        format!("{prefix}{:x}", self.batches)
    }

    /// Who client `id` is for history and read markers: `a:account` when logged in,
    /// otherwise a key of this connection that no later connection or run shares.
    pub fn party_key(&mut self, id: ClientId) -> String {
        let epoch = self.epoch();
        match self.clients.get(&id).and_then(|c| c.account.as_deref()) {
            Some(a) => format!("a:{a}"),
            None => format!("s:{epoch:x}:{id:x}"),
        }
    }

    /// The client with `id` looked up by nick.
    pub fn by_nick(&self, nick: &str) -> Option<ClientId> {
        self.nicks.get(&names::fold(nick)).copied()
    }

    /// Sends `out` to every member of `chan` except `except`.
    pub fn to_channel(&self, chan: &Channel, out: &Outgoing, except: Option<ClientId>) {
        for id in chan.members.keys() {
            if Some(*id) != except {
                if let Some(c) = self.clients.get(id) {
                    c.handle.send_out(out);
                }
            }
        }
    }

    /// Sends `out` to every neighbour of `id` with `cap` (and `id` itself when `me` and it
    /// has `cap`).
    pub fn to_neighbours_with(&self, id: ClientId, cap: Cap, out: &Outgoing, me: bool) {
        let me = me.then_some(id);
        for n in self.neighbours(id).into_iter().chain(me) {
            if let Some(c) = self.clients.get(&n) {
                if c.has(cap) {
                    c.handle.send_out(out);
                }
            }
        }
    }

    /// An [`Outgoing`] from client `id` (its account for `account-tag`).
    #[allow(clippy::wrong_self_convention)] // reads "a message from this client"
    pub fn from_client(&self, id: ClientId, msg: Message) -> Outgoing {
        let c = self.clients.get(&id);
        let account = c.and_then(|c| c.account.clone());
        let bot = c.is_some_and(Client::is_bot);
        Outgoing::new(msg).account(account).bot(bot)
    }

    /// Every client sharing a channel with `id`, each once (`id` excluded).
    pub fn neighbours(&self, id: ClientId) -> BTreeSet<ClientId> {
        let mut out = BTreeSet::new();
        if let Some(c) = self.clients.get(&id) {
            for key in &c.channels {
                if let Some(ch) = self.channels.get(key) {
                    out.extend(ch.members.keys().copied());
                }
            }
        }
        out.remove(&id);
        out
    }

    /// Sends `out` to `id` and everyone sharing a channel with it, each once.
    pub fn to_self_and_neighbours(&self, id: ClientId, out: &Outgoing) {
        for n in self.neighbours(id).into_iter().chain([id]) {
            if let Some(c) = self.clients.get(&n) {
                c.handle.send_out(out);
            }
        }
    }

    /// Removes `id` from channel `key`; deletes the channel when it becomes empty,
    /// unless it is registered.
    pub fn leave(&mut self, id: ClientId, key: &str) {
        if let Some(ch) = self.channels.get_mut(key) {
            ch.members.remove(&id);
            if ch.members.is_empty() && !ch.is_registered() {
                self.channels.remove(key);
            }
        }
        if let Some(c) = self.clients.get_mut(&id) {
            c.channels.remove(key);
        }
    }

    /// Remembers that client `id` leaves its nick (WHOWAS), bounded per nick and in all.
    pub fn remember_nick(&mut self, id: ClientId) {
        let Some(c) = self.clients.get(&id) else {
            return;
        };
        let (Some(nick), true) = (&c.nick, c.registered) else {
            return;
        };
        let entry = WhowasEntry {
            nick: nick.clone(),
            user: c.user.clone().unwrap_or_else(|| "*".into()),
            host: c.host.clone(),
            realname: c.realname.clone(),
            account: c.account.clone(),
            at: chrono::Utc::now().timestamp(),
        };
        let key = names::fold(nick);
        let list = self.whowas.entry(key.clone()).or_default();
        list.push_front(entry);
        self.whowas_order.push_back(key.clone());
        if list.len() > WHOWAS_PER_NICK {
            list.pop_back();
            // Drop the oldest order slot of this nick: the one just evicted.
            if let Some(pos) = self.whowas_order.iter().position(|k| *k == key) {
                self.whowas_order.remove(pos);
            }
        }
        while self.whowas_order.len() > WHOWAS_MAX {
            let Some(old) = self.whowas_order.pop_front() else {
                break;
            };
            if let Some(list) = self.whowas.get_mut(&old) {
                list.pop_back();
                if list.is_empty() {
                    self.whowas.remove(&old);
                }
            }
        }
    }

    /// Tells the clients monitoring `nick` that it is online (730, `nick!user@host`) or
    /// offline (731).
    pub fn notify_watchers(&self, nick: &str, online: Option<&str>, server: &str) {
        let Some(ws) = self.watchers.get(&names::fold(nick)) else {
            return;
        };
        for w in ws {
            if let Some(c) = self.clients.get(w) {
                let (code, what) = match online {
                    Some(mask) => (crate::irc::numeric::RPL_MONONLINE, mask),
                    None => (crate::irc::numeric::RPL_MONOFFLINE, nick),
                };
                let m = Message::new(code, vec![c.nick_or_star().to_owned(), what.to_owned()])
                    .with_prefix(server.to_owned());
                c.handle.send_msg(&m);
            }
        }
    }

    /// Removes `id`'s MONITOR list.
    pub fn clear_monitor(&mut self, id: ClientId) {
        let Some(c) = self.clients.get_mut(&id) else {
            return;
        };
        for key in std::mem::take(&mut c.monitor).into_keys() {
            if let Some(ws) = self.watchers.get_mut(&key) {
                ws.remove(&id);
                if ws.is_empty() {
                    self.watchers.remove(&key);
                }
            }
        }
    }

    /// Removes a client: tells its neighbours it quit with `reason` (if it was
    /// registered), leaves its channels, frees its nick (remembered for WHOWAS; its
    /// watchers see it go offline with `server` as the prefix).
    pub fn remove_from(&mut self, id: ClientId, reason: &str, server: &str) {
        if let Some(nick) = self
            .clients
            .get(&id)
            .filter(|c| c.registered)
            .and_then(|c| c.nick.clone())
        {
            self.remember_nick(id);
            self.clear_monitor(id);
            self.notify_watchers(&nick, None, server);
        }
        self.clear_monitor(id);
        self.remove(id, reason);
    }

    /// Removes a client: tells its neighbours it quit with `reason` (if it was
    /// registered), leaves its channels, frees its nick.
    pub fn remove(&mut self, id: ClientId, reason: &str) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if client.registered {
            let quit = Message::new("QUIT", vec![reason.to_owned()]).with_prefix(client.prefix());
            let out = self.from_client(id, quit);
            for n in self.neighbours(id) {
                if let Some(c) = self.clients.get(&n) {
                    c.handle.send_out(&out);
                }
            }
        }
        let keys: Vec<String> = client.channels.iter().cloned().collect();
        for key in keys {
            self.leave(id, &key);
        }
        self.cluster.forget(id);
        if let Some(client) = self.clients.remove(&id) {
            if let Some(nick) = &client.nick {
                let folded = names::fold(nick);
                if self.nicks.get(&folded) == Some(&id) {
                    self.nicks.remove(&folded);
                }
            }
        }
    }

    /// Registered users connected to this server (remote users of a cluster excluded).
    pub fn local_users(&self) -> usize {
        self.clients
            .iter()
            .filter(|(id, c)| c.registered && !self.cluster.is_proxy(**id))
            .count()
    }

    /// Counts for LUSERS: (registered users, unregistered connections, channels).
    pub fn counts(&self) -> (usize, usize, usize) {
        let users = self.clients.values().filter(|c| c.registered).count();
        (users, self.clients.len() - users, self.channels.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(st: &mut State, nick: &str) -> (ClientId, mpsc::Receiver<Line>) {
        let (h, rx) = ClientHandle::new(4);
        let mut c = Client::new("127.0.0.1".into(), h);
        c.nick = Some(nick.into());
        c.user = Some("u".into());
        c.registered = true;
        let id = st.add(c);
        st.nicks.insert(names::fold(nick), id);
        (id, rx)
    }

    #[test]
    fn full_queue_kills_only_that_client() {
        let (h, _rx) = ClientHandle::new(2);
        for _ in 0..2 {
            h.send(Arc::from(&b"x\r\n"[..]));
        }
        assert!(!h.killer().killed().is_cancelled());
        h.send(Arc::from(&b"x\r\n"[..]));
        assert!(h.killer().killed().is_cancelled());
        assert_eq!(h.killer().reason().as_deref(), Some("SendQ exceeded"));
        h.kill("later reason");
        assert_eq!(h.killer().reason().as_deref(), Some("SendQ exceeded"));
    }

    #[test]
    fn whowas_is_bounded_per_nick_and_in_all() {
        let mut st = State::default();
        let (id, _rx) = client(&mut st, "Ghost");
        for _ in 0..(WHOWAS_PER_NICK + 3) {
            st.remember_nick(id);
        }
        assert_eq!(st.whowas["ghost"].len(), WHOWAS_PER_NICK);
        assert_eq!(st.whowas_order.len(), WHOWAS_PER_NICK);
        for i in 0..(WHOWAS_MAX + 10) {
            st.clients.get_mut(&id).unwrap().nick = Some(format!("n{i}"));
            st.remember_nick(id);
        }
        let total: usize = st.whowas.values().map(VecDeque::len).sum();
        assert_eq!(total, WHOWAS_MAX);
        assert_eq!(st.whowas_order.len(), WHOWAS_MAX);
        assert!(!st.whowas.contains_key("ghost"), "the oldest went first");
        assert!(st.whowas.contains_key(&format!("n{}", WHOWAS_MAX + 9)));
    }

    #[test]
    fn bot_messages_carry_the_bot_tag_for_message_tags() {
        let mut st = State::default();
        let (id, _rx) = client(&mut st, "robot");
        st.clients.get_mut(&id).unwrap().modes.insert('B');
        let out = st.from_client(id, Message::new("PRIVMSG", vec!["#c".into(), "hi".into()]));
        let tagged = out
            .line(CapSet::default().with(Cap::MessageTags, true))
            .unwrap();
        assert!(
            tagged.starts_with(b"@bot "),
            "{:?}",
            String::from_utf8_lossy(&tagged)
        );
        let plain = out.line(CapSet::default()).unwrap();
        assert!(plain.starts_with(b"PRIVMSG"));
    }

    #[test]
    fn remove_tells_neighbours_once_and_frees_nick() {
        let mut st = State::default();
        let (a, _ra) = client(&mut st, "alice");
        let (b, mut rb) = client(&mut st, "bob");
        for key in ["#x", "#y"] {
            let mut ch = Channel::new(key, a, 0);
            ch.members.insert(b, Default::default());
            st.channels.insert(key.into(), ch);
            st.clients.get_mut(&a).unwrap().channels.insert(key.into());
            st.clients.get_mut(&b).unwrap().channels.insert(key.into());
        }
        st.remove(a, "Quit: bye");
        let got = rb.try_recv().unwrap();
        assert_eq!(&got[..], b":alice!u@127.0.0.1 QUIT :Quit: bye\r\n");
        assert!(rb.try_recv().is_err(), "QUIT sent once");
        assert!(st.by_nick("ALICE").is_none());
        assert_eq!(st.channels.len(), 2);
        st.remove(b, "x");
        assert!(st.channels.is_empty());
    }
}
