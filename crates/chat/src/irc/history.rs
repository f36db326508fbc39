//! Message history (IRCv3 `draft/chathistory`) and read markers (`draft/read-marker`):
//! the store behind the `CHATHISTORY` and `MARKREAD` commands.
//!
//! Two backends with the same limits and the same answers:
//!
//! - **SQLite** ([`HistoryConfig`] gives the file): one writer thread owns the
//!   connection. Commands only push onto its bounded queue ([`WRITE_QUEUE`] entries), so
//!   delivery never waits on the disk: when the queue is full the oldest pending write is
//!   dropped and counted ([`History::dropped`]). Queries go through the same thread,
//!   answered after every write queued before them (a client sees its own last message),
//!   and are awaited outside the server's state lock. Retention (age, then count) runs at
//!   start and every [`RETENTION_EVERY`].
//! - **Memory**: a ring of at most `max_messages` entries, pruned by age and count on
//!   every write.
//!
//! Both keep a message once per `msgid` (a cluster node may receive one message both
//! live and from the network's history stream).
//!
//! Queries never return messages older than `max_days`, even between retention runs.
//! Positions are `(time_ms, seq)`: the receive time in milliseconds, then the order the
//! server stored them in.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

/// Default `max_days` (`--chat-history-days`).
pub const DEFAULT_MAX_DAYS: u32 = 30;

/// Default `max_messages` (`--chat-history-max`).
pub const DEFAULT_MAX_MESSAGES: usize = 100_000;

/// Most writes waiting for the SQLite writer; past it the oldest is dropped.
pub const WRITE_QUEUE: usize = 4096;

/// How often the SQLite writer enforces retention.
pub const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Where and how long history is kept (`ServerConfig::history`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryConfig {
    /// The SQLite file (created if missing).
    pub path: PathBuf,
    /// Messages older than this many days are deleted (0: no age limit).
    pub max_days: u32,
    /// Most messages kept in all (the oldest go first; 0: nothing is stored).
    pub max_messages: usize,
}

/// Why the history store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The SQLite file could not be opened or set up.
    #[error("chat history {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("chat history writer: {0}")]
    Thread(std::io::Error),
}

/// Where a stored message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// To a channel (its folded name).
    Channel(String),
    /// Between two users: each party's key (`a:account`, or a key of that connection
    /// when not logged in) and folded nick at the time.
    Direct {
        /// The sender's key.
        from: String,
        /// The sender's folded nick.
        from_nick: String,
        /// The recipient's key.
        to: String,
        /// The recipient's folded nick.
        to_nick: String,
    },
}

/// One stored PRIVMSG or NOTICE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The store's order (assigned when stored; 0 before).
    pub seq: i64,
    /// When the server received it (Unix milliseconds).
    pub time_ms: i64,
    /// Its `msgid`.
    pub msgid: String,
    /// Where it went.
    pub place: Place,
    /// `PRIVMSG` or `NOTICE`.
    pub command: String,
    /// The sender's `nick!user@host`.
    pub prefix: String,
    /// The target as sent.
    pub target: String,
    /// The text.
    pub text: String,
    /// The sender's account, if logged in.
    pub account: Option<String>,
    /// The client-only tags relayed with it, on the wire (escaped, `;`-separated).
    pub client_tags: String,
    /// Whether the sender was a bot (`+B`).
    pub bot: bool,
}

impl Entry {
    fn pos(&self) -> Pos {
        (self.time_ms, self.seq)
    }
}

/// A message reference: `timestamp=` (Unix milliseconds) or `msgid=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bound {
    /// A time.
    Time(i64),
    /// A message id.
    Msgid(String),
}

/// Which messages a `CHATHISTORY` subcommand asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// The latest, after the reference (exclusive) if any.
    Latest(Option<Bound>),
    /// The ones just before the reference (exclusive).
    Before(Bound),
    /// The ones just after the reference (exclusive).
    After(Bound),
    /// Half before the reference, the rest from it on (the referenced message included).
    Around(Bound),
    /// Between the two (both exclusive), counted from the first.
    Between(Bound, Bound),
}

/// Whose messages a query reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A channel's (folded name).
    Channel(String),
    /// The conversation of the party `me` with the user whose folded nick is `other`.
    Direct {
        /// The asking party's key.
        me: String,
        /// The correspondent's folded nick.
        other: String,
    },
}

/// A query for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Whose messages.
    pub scope: Scope,
    /// Which.
    pub selector: Selector,
    /// At most this many.
    pub limit: usize,
}

/// A `CHATHISTORY TARGETS` query: the channels and correspondents with messages between
/// two times (exclusive), each with its latest message time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetsQuery {
    /// The channels to consider (folded names; those the client is in).
    pub channels: Vec<String>,
    /// The asking party's key (its direct messages).
    pub me: String,
    /// The first time (Unix milliseconds); the count starts there.
    pub from_ms: i64,
    /// The second time.
    pub to_ms: i64,
    /// At most this many targets.
    pub limit: usize,
}

/// What the store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Messages.
    Messages(Query),
    /// Targets.
    Targets(TargetsQuery),
}

/// The store's answer, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// The messages asked for.
    Messages(Vec<Entry>),
    /// `(target, latest message time)`: a folded channel name, or the correspondent's
    /// nick as last seen.
    Targets(Vec<(String, i64)>),
}

type Pos = (i64, i64);

const MIN_POS: Pos = (i64::MIN, i64::MIN);
const MAX_POS: Pos = (i64::MAX, i64::MAX);

/// The primitives both backends implement; the selectors are built on them.
trait Store {
    /// Messages in `scope` strictly between `after` and `before`, ascending: the first
    /// `limit`, or the last `limit` when `latest`.
    fn fetch(
        &mut self,
        scope: &Scope,
        after: Pos,
        before: Pos,
        limit: usize,
        latest: bool,
    ) -> Vec<Entry>;
    /// The position of the message `msgid` in `scope`.
    fn pos_of(&mut self, scope: &Scope, msgid: &str) -> Option<Pos>;
    /// Per target, the latest message time strictly between `lo` and `hi`.
    fn targets(&mut self, q: &TargetsQuery, lo: i64, hi: i64) -> Vec<(String, i64)>;
}

/// Runs `req` on `store`, hiding messages before `cutoff` (Unix milliseconds).
fn run(store: &mut dyn Store, req: &Request, cutoff: i64) -> Response {
    match req {
        Request::Messages(q) => Response::Messages(run_messages(store, q, cutoff)),
        Request::Targets(q) => {
            let (lo, hi) = (q.from_ms.min(q.to_ms), q.from_ms.max(q.to_ms));
            let mut all = store.targets(q, lo.max(cutoff.saturating_sub(1)), hi);
            all.sort_by(|a, b| a.1.cmp(&b.1).then_with(|| a.0.cmp(&b.0)));
            if q.from_ms <= q.to_ms {
                all.truncate(q.limit);
            } else {
                let skip = all.len().saturating_sub(q.limit);
                all.drain(..skip);
            }
            Response::Targets(all)
        }
    }
}

fn run_messages(store: &mut dyn Store, q: &Query, cutoff: i64) -> Vec<Entry> {
    let floor = (cutoff, i64::MIN);
    let limit = q.limit;
    if limit == 0 {
        return Vec::new();
    }
    // Exclusive lower bound after a reference / exclusive upper bound before it.
    let lo = |store: &mut dyn Store, b: &Bound| match b {
        Bound::Time(t) => Some((*t, i64::MAX)),
        Bound::Msgid(id) => store.pos_of(&q.scope, id),
    };
    let hi = |store: &mut dyn Store, b: &Bound| match b {
        Bound::Time(t) => Some((*t, i64::MIN)),
        Bound::Msgid(id) => store.pos_of(&q.scope, id),
    };
    let s = &q.scope;
    let clamp = |p: Pos| p.max(floor);
    match &q.selector {
        Selector::Latest(None) => store.fetch(s, clamp(MIN_POS), MAX_POS, limit, true),
        Selector::Latest(Some(b)) => match lo(store, b) {
            Some(p) => store.fetch(s, clamp(p), MAX_POS, limit, true),
            None => Vec::new(),
        },
        Selector::Before(b) => match hi(store, b) {
            Some(p) => store.fetch(s, clamp(MIN_POS), p, limit, true),
            None => Vec::new(),
        },
        Selector::After(b) => match lo(store, b) {
            Some(p) => store.fetch(s, clamp(p), MAX_POS, limit, false),
            None => Vec::new(),
        },
        Selector::Around(b) => {
            let Some(p) = hi(store, b) else {
                return Vec::new();
            };
            let mut out = store.fetch(s, clamp(MIN_POS), p, limit / 2, true);
            // From the reference on, the referenced message included.
            let from = (p.0, p.1.saturating_sub(1));
            let rest = limit - out.len();
            out.extend(store.fetch(s, clamp(from), MAX_POS, rest, false));
            out
        }
        Selector::Between(a, b) => {
            let (Some(pa), Some(pb)) = (lo(store, a), hi(store, b)) else {
                return Vec::new();
            };
            // Compare the references by time, then order.
            let ka = match a {
                Bound::Time(t) => (*t, 0),
                Bound::Msgid(_) => pa,
            };
            let kb = match b {
                Bound::Time(t) => (*t, 0),
                Bound::Msgid(_) => pb,
            };
            if ka <= kb {
                store.fetch(s, clamp(pa), pb, limit, false)
            } else {
                // Backwards: the ones nearest the first reference, still oldest first.
                let (Some(pb_lo), Some(pa_hi)) = (lo(store, b), hi(store, a)) else {
                    return Vec::new();
                };
                store.fetch(s, clamp(pb_lo), pa_hi, limit, true)
            }
        }
    }
}

/// The history store (cheap to share behind an `Arc`; the server holds one).
#[derive(Debug)]
pub struct History {
    backend: Backend,
    max_days: u32,
    max_messages: usize,
    /// Read markers: (account, folded target) → Unix milliseconds.
    markers: Mutex<HashMap<(String, String), i64>>,
}

#[derive(Debug)]
enum Backend {
    Memory(Mutex<Memory>),
    Sqlite(Worker),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl History {
    /// An in-memory store with these limits.
    pub fn memory(max_days: u32, max_messages: usize) -> Self {
        Self {
            backend: Backend::Memory(Mutex::new(Memory::default())),
            max_days,
            max_messages,
            markers: Mutex::new(HashMap::new()),
        }
    }

    /// The store `cfg` asks for: its SQLite file, or (`None`) memory with the default
    /// limits.
    ///
    /// # Errors
    /// The file cannot be opened or set up, or the writer thread cannot start.
    pub fn from_config(cfg: Option<&HistoryConfig>) -> Result<Self, HistoryError> {
        match cfg {
            None => Ok(Self::memory(DEFAULT_MAX_DAYS, DEFAULT_MAX_MESSAGES)),
            Some(cfg) => Self::open(cfg),
        }
    }

    /// Opens (or creates) the SQLite store at `cfg.path`, enforces retention once and
    /// starts its writer thread.
    ///
    /// # Errors
    /// The file cannot be opened or set up, or the writer thread cannot start.
    pub fn open(cfg: &HistoryConfig) -> Result<Self, HistoryError> {
        let err = |source| HistoryError::Open {
            path: cfg.path.clone(),
            source,
        };
        let mut db = Sqlite::open(&cfg.path).map_err(err)?;
        db.purge(cutoff(cfg.max_days), cfg.max_messages)
            .map_err(err)?;
        let markers = db.markers().map_err(err)?;
        let worker = Worker::start(db, cfg.max_days, cfg.max_messages)?;
        Ok(Self {
            backend: Backend::Sqlite(worker),
            max_days: cfg.max_days,
            max_messages: cfg.max_messages,
            markers: Mutex::new(markers),
        })
    }

    /// Stores `entry` without waiting (see the module documentation).
    pub fn store(&self, mut entry: Entry) {
        if self.max_messages == 0 {
            return;
        }
        match &self.backend {
            Backend::Memory(m) => {
                lock(m).push(&mut entry, cutoff(self.max_days), self.max_messages);
            }
            Backend::Sqlite(w) => w.write(Write::Message(Box::new(entry))),
        }
    }

    /// Answers `req` (for SQLite, on the writer thread, after the writes queued before).
    pub async fn query(&self, req: Request) -> Response {
        let cut = cutoff(self.max_days);
        match &self.backend {
            Backend::Memory(m) => run(&mut *lock(m), &req, cut),
            Backend::Sqlite(w) => {
                let empty = match &req {
                    Request::Messages(_) => Response::Messages(Vec::new()),
                    Request::Targets(_) => Response::Targets(Vec::new()),
                };
                match w.query(req) {
                    Some(rx) => rx.await.unwrap_or(empty),
                    None => empty,
                }
            }
        }
    }

    /// The read marker of `account` on `target` (folded), in Unix milliseconds.
    pub fn marker(&self, account: &str, target: &str) -> Option<i64> {
        lock(&self.markers)
            .get(&(account.to_owned(), target.to_owned()))
            .copied()
    }

    /// Moves the read marker of `account` on `target` (folded) to `time_ms` unless it is
    /// already there or later; returns the marker afterwards.
    pub fn set_marker(&self, account: &str, target: &str, time_ms: i64) -> i64 {
        let key = (account.to_owned(), target.to_owned());
        let mut markers = lock(&self.markers);
        let cur = markers.entry(key).or_insert(i64::MIN);
        if time_ms <= *cur {
            return *cur;
        }
        *cur = time_ms;
        drop(markers);
        if let Backend::Sqlite(w) = &self.backend {
            w.write(Write::Marker {
                account: account.to_owned(),
                target: target.to_owned(),
                time_ms,
            });
        }
        time_ms
    }

    /// Writes dropped because the writer's queue was full (always 0 in memory).
    pub fn dropped(&self) -> u64 {
        match &self.backend {
            Backend::Memory(_) => 0,
            Backend::Sqlite(w) => lock(&w.shared.0).dropped,
        }
    }

    /// Waits until every write queued so far is on disk (a no-op in memory).
    pub async fn flush(&self) {
        if let Backend::Sqlite(w) = &self.backend {
            if let Some(rx) = w.query(Request::Targets(TargetsQuery {
                channels: Vec::new(),
                me: String::new(),
                from_ms: 0,
                to_ms: 0,
                limit: 0,
            })) {
                let _ = rx.await;
            }
        }
    }
}

/// The oldest time kept for `max_days` (0: everything).
fn cutoff(max_days: u32) -> i64 {
    if max_days == 0 {
        i64::MIN
    } else {
        now_ms().saturating_sub(i64::from(max_days) * 86_400_000)
    }
}

fn in_scope(e: &Entry, scope: &Scope) -> bool {
    match (scope, &e.place) {
        (Scope::Channel(c), Place::Channel(k)) => c == k,
        (
            Scope::Direct { me, other },
            Place::Direct {
                from,
                from_nick,
                to,
                to_nick,
            },
        ) => (from == me && to_nick == other) || (to == me && from_nick == other),
        _ => false,
    }
}

/// The nick part of `nick!user@host`.
fn nick_of(prefix: &str) -> &str {
    prefix.split('!').next().unwrap_or(prefix)
}

/// The in-memory ring.
#[derive(Debug, Default)]
struct Memory {
    entries: VecDeque<Entry>,
    seq: i64,
    /// The msgids in `entries` (a message is kept once).
    msgids: std::collections::HashSet<String>,
}

impl Memory {
    fn push(&mut self, e: &mut Entry, cutoff: i64, max: usize) {
        if !self.msgids.insert(e.msgid.clone()) {
            return;
        }
        self.seq += 1;
        e.seq = self.seq;
        self.entries.push_back(e.clone());
        while self.entries.len() > max || self.entries.front().is_some_and(|f| f.time_ms < cutoff) {
            if let Some(old) = self.entries.pop_front() {
                self.msgids.remove(&old.msgid);
            }
        }
    }
}

impl Store for Memory {
    fn fetch(
        &mut self,
        scope: &Scope,
        after: Pos,
        before: Pos,
        limit: usize,
        latest: bool,
    ) -> Vec<Entry> {
        let hit = |e: &&Entry| in_scope(e, scope) && e.pos() > after && e.pos() < before;
        if latest {
            let mut v: Vec<Entry> = self
                .entries
                .iter()
                .rev()
                .filter(hit)
                .take(limit)
                .cloned()
                .collect();
            v.reverse();
            v
        } else {
            self.entries
                .iter()
                .filter(hit)
                .take(limit)
                .cloned()
                .collect()
        }
    }

    fn pos_of(&mut self, scope: &Scope, msgid: &str) -> Option<Pos> {
        self.entries
            .iter()
            .find(|e| e.msgid == msgid && in_scope(e, scope))
            .map(Entry::pos)
    }

    fn targets(&mut self, q: &TargetsQuery, lo: i64, hi: i64) -> Vec<(String, i64)> {
        let mut latest: HashMap<String, (String, i64)> = HashMap::new();
        for e in &self.entries {
            if e.time_ms <= lo || e.time_ms >= hi {
                continue;
            }
            let (key, name) = match &e.place {
                Place::Channel(c) if q.channels.contains(c) => (c.clone(), c.clone()),
                Place::Direct { from, to_nick, .. } if *from == q.me => {
                    (format!("n:{to_nick}"), e.target.clone())
                }
                Place::Direct { to, from_nick, .. } if *to == q.me => {
                    (format!("n:{from_nick}"), nick_of(&e.prefix).to_owned())
                }
                _ => continue,
            };
            latest.insert(key, (name, e.time_ms));
        }
        latest.into_values().collect()
    }
}

/// The SQLite store (owned by the writer thread).
#[derive(Debug)]
struct Sqlite {
    conn: rusqlite::Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    time_ms INTEGER NOT NULL,
    msgid TEXT NOT NULL,
    chan TEXT,
    from_key TEXT,
    from_nick TEXT,
    to_key TEXT,
    to_nick TEXT,
    command TEXT NOT NULL,
    prefix TEXT NOT NULL,
    target TEXT NOT NULL,
    text TEXT NOT NULL,
    account TEXT,
    client_tags TEXT NOT NULL,
    bot INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS messages_chan ON messages (chan, time_ms, seq);
CREATE INDEX IF NOT EXISTS messages_from ON messages (from_key, to_nick, time_ms, seq);
CREATE INDEX IF NOT EXISTS messages_to ON messages (to_key, from_nick, time_ms, seq);
CREATE INDEX IF NOT EXISTS messages_msgid ON messages (msgid);
CREATE INDEX IF NOT EXISTS messages_time ON messages (time_ms);
CREATE TABLE IF NOT EXISTS read_markers (
    account TEXT NOT NULL,
    target TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (account, target)
);
";

const COLUMNS: &str = "seq, time_ms, msgid, chan, from_key, from_nick, to_key, to_nick, command, \
                       prefix, target, text, account, client_tags, bot";

/// The scope as SQL (`?1`, `?2` bound by [`scope_params`]).
fn scope_sql(scope: &Scope) -> &'static str {
    match scope {
        Scope::Channel(_) => "chan = ?1",
        Scope::Direct { .. } => {
            "((from_key = ?1 AND to_nick = ?2) OR (to_key = ?1 AND from_nick = ?2))"
        }
    }
}

fn scope_params(scope: &Scope) -> (String, String) {
    match scope {
        Scope::Channel(c) => (c.clone(), String::new()),
        Scope::Direct { me, other } => (me.clone(), other.clone()),
    }
}

fn row_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<Entry> {
    let chan: Option<String> = r.get(3)?;
    let place = match chan {
        Some(c) => Place::Channel(c),
        None => Place::Direct {
            from: r.get::<_, Option<String>>(4)?.unwrap_or_default(),
            from_nick: r.get::<_, Option<String>>(5)?.unwrap_or_default(),
            to: r.get::<_, Option<String>>(6)?.unwrap_or_default(),
            to_nick: r.get::<_, Option<String>>(7)?.unwrap_or_default(),
        },
    };
    Ok(Entry {
        seq: r.get(0)?,
        time_ms: r.get(1)?,
        msgid: r.get(2)?,
        place,
        command: r.get(8)?,
        prefix: r.get(9)?,
        target: r.get(10)?,
        text: r.get(11)?,
        account: r.get(12)?,
        client_tags: r.get(13)?,
        bot: r.get::<_, i64>(14)? != 0,
    })
}

impl Sqlite {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    fn markers(&self) -> rusqlite::Result<HashMap<(String, String), i64>> {
        let mut st = self
            .conn
            .prepare("SELECT account, target, time_ms FROM read_markers")?;
        let rows = st.query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?;
        rows.collect()
    }

    fn write(&mut self, writes: Vec<Write>) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut msg = tx.prepare_cached(
                "INSERT INTO messages (time_ms, msgid, chan, from_key, from_nick, to_key, \
                 to_nick, command, prefix, target, text, account, client_tags, bot) \
                 SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14 \
                 WHERE NOT EXISTS (SELECT 1 FROM messages WHERE msgid = ?2)",
            )?;
            let mut marker = tx.prepare_cached(
                "INSERT INTO read_markers (account, target, time_ms) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (account, target) DO UPDATE SET time_ms = \
                 max(time_ms, excluded.time_ms)",
            )?;
            for w in writes {
                match w {
                    Write::Message(e) => {
                        let e = *e;
                        let (chan, from, from_nick, to, to_nick) = match e.place {
                            Place::Channel(c) => (Some(c), None, None, None, None),
                            Place::Direct {
                                from,
                                from_nick,
                                to,
                                to_nick,
                            } => (None, Some(from), Some(from_nick), Some(to), Some(to_nick)),
                        };
                        msg.execute(rusqlite::params![
                            e.time_ms,
                            e.msgid,
                            chan,
                            from,
                            from_nick,
                            to,
                            to_nick,
                            e.command,
                            e.prefix,
                            e.target,
                            e.text,
                            e.account,
                            e.client_tags,
                            i64::from(e.bot),
                        ])?;
                    }
                    Write::Marker {
                        account,
                        target,
                        time_ms,
                    } => {
                        marker.execute(rusqlite::params![account, target, time_ms])?;
                    }
                }
            }
        }
        tx.commit()
    }

    /// Deletes messages older than `cutoff`, then all but the newest `max`.
    fn purge(&mut self, cutoff: i64, max: usize) -> rusqlite::Result<()> {
        self.conn
            .execute("DELETE FROM messages WHERE time_ms < ?1", [cutoff])?;
        let keep = i64::try_from(max).unwrap_or(i64::MAX);
        self.conn.execute(
            "DELETE FROM messages WHERE seq <= \
             (SELECT seq FROM messages ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            [keep],
        )?;
        Ok(())
    }

    fn try_fetch(
        &mut self,
        scope: &Scope,
        after: Pos,
        before: Pos,
        limit: usize,
        latest: bool,
    ) -> rusqlite::Result<Vec<Entry>> {
        let order = if latest { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {COLUMNS} FROM messages WHERE {} \
             AND (time_ms > ?3 OR (time_ms = ?3 AND seq > ?4)) \
             AND (time_ms < ?5 OR (time_ms = ?5 AND seq < ?6)) \
             ORDER BY time_ms {order}, seq {order} LIMIT ?7",
            scope_sql(scope)
        );
        let (p1, p2) = scope_params(scope);
        let mut st = self.conn.prepare_cached(&sql)?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = st.query_map(
            rusqlite::params![p1, p2, after.0, after.1, before.0, before.1, limit],
            row_entry,
        )?;
        let mut v = rows.collect::<rusqlite::Result<Vec<_>>>()?;
        if latest {
            v.reverse();
        }
        Ok(v)
    }

    fn try_targets(
        &mut self,
        q: &TargetsQuery,
        lo: i64,
        hi: i64,
    ) -> rusqlite::Result<Vec<(String, i64)>> {
        let mut out = Vec::new();
        {
            let mut st = self.conn.prepare_cached(
                "SELECT max(time_ms) FROM messages WHERE chan = ?1 AND time_ms > ?2 \
                 AND time_ms < ?3",
            )?;
            for c in &q.channels {
                let t: Option<i64> = st.query_row(rusqlite::params![c, lo, hi], |r| r.get(0))?;
                if let Some(t) = t {
                    out.push((c.clone(), t));
                }
            }
        }
        let mut st = self.conn.prepare_cached(
            "SELECT CASE WHEN from_key = ?1 THEN to_nick ELSE from_nick END AS other, \
             CASE WHEN from_key = ?1 THEN target ELSE prefix END, from_key = ?1, \
             max(time_ms) FROM messages \
             WHERE chan IS NULL AND (from_key = ?1 OR to_key = ?1) \
             AND time_ms > ?2 AND time_ms < ?3 GROUP BY other",
        )?;
        let rows = st.query_map(rusqlite::params![q.me, lo, hi], |r| {
            let name: String = r.get(1)?;
            let mine: bool = r.get(2)?;
            let t: i64 = r.get(3)?;
            Ok((
                if mine {
                    name
                } else {
                    nick_of(&name).to_owned()
                },
                t,
            ))
        })?;
        for row in rows {
            out.push(row?);
        }
        Ok(out)
    }
}

impl Store for Sqlite {
    fn fetch(
        &mut self,
        scope: &Scope,
        after: Pos,
        before: Pos,
        limit: usize,
        latest: bool,
    ) -> Vec<Entry> {
        self.try_fetch(scope, after, before, limit, latest)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "chat history query failed");
                Vec::new()
            })
    }

    fn pos_of(&mut self, scope: &Scope, msgid: &str) -> Option<Pos> {
        let sql = format!(
            "SELECT time_ms, seq FROM messages WHERE msgid = ?3 AND {} LIMIT 1",
            scope_sql(scope)
        );
        let (p1, p2) = scope_params(scope);
        let mut st = self.conn.prepare_cached(&sql).ok()?;
        st.query_row(rusqlite::params![p1, p2, msgid], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .ok()
    }

    fn targets(&mut self, q: &TargetsQuery, lo: i64, hi: i64) -> Vec<(String, i64)> {
        self.try_targets(q, lo, hi).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "chat history targets query failed");
            Vec::new()
        })
    }
}

/// A pending write.
#[derive(Debug)]
enum Write {
    Message(Box<Entry>),
    Marker {
        account: String,
        target: String,
        time_ms: i64,
    },
}

type Reply = oneshot::Sender<Response>;

#[derive(Debug, Default)]
struct Pending {
    writes: VecDeque<Write>,
    queries: VecDeque<(Request, Reply)>,
    dropped: u64,
    closed: bool,
}

/// The SQLite writer thread and its queue.
#[derive(Debug)]
struct Worker {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(db: Sqlite, max_days: u32, max_messages: usize) -> Result<Self, HistoryError> {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("chat-history".into())
            .spawn(move || writer(db, &theirs, max_days, max_messages))
            .map_err(HistoryError::Thread)?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Queues `w`; when the queue is full, drops the oldest pending write (counted).
    fn write(&self, w: Write) {
        let mut p = lock(&self.shared.0);
        if p.writes.len() >= WRITE_QUEUE {
            p.writes.pop_front();
            p.dropped += 1;
            if p.dropped.is_power_of_two() {
                tracing::warn!(dropped = p.dropped, "chat history writes dropped");
            }
        }
        p.writes.push_back(w);
        drop(p);
        self.shared.1.notify_one();
    }

    fn query(&self, req: Request) -> Option<oneshot::Receiver<Response>> {
        let (tx, rx) = oneshot::channel();
        let mut p = lock(&self.shared.0);
        if p.closed {
            return None;
        }
        p.queries.push_back((req, tx));
        drop(p);
        self.shared.1.notify_one();
        Some(rx)
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        lock(&self.shared.0).closed = true;
        self.shared.1.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: writes what is queued in one transaction, then answers the
/// queries queued with it; enforces retention every [`RETENTION_EVERY`]. Ends (after a
/// last write) once the store is dropped.
fn writer(mut db: Sqlite, shared: &(Mutex<Pending>, Condvar), max_days: u32, max: usize) {
    let mut last_purge = std::time::Instant::now();
    loop {
        let (writes, queries, closed) = {
            let mut p = lock(&shared.0);
            while p.writes.is_empty() && p.queries.is_empty() && !p.closed {
                let wait = RETENTION_EVERY.saturating_sub(last_purge.elapsed());
                if wait.is_zero() {
                    break;
                }
                p = shared
                    .1
                    .wait_timeout(p, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0);
            }
            (
                p.writes.drain(..).collect::<Vec<_>>(),
                p.queries.drain(..).collect::<Vec<_>>(),
                p.closed,
            )
        };
        if !writes.is_empty() {
            if let Err(e) = db.write(writes) {
                tracing::warn!(error = %e, "chat history write failed");
            }
        }
        for (req, reply) in queries {
            let _ = reply.send(run(&mut db, &req, cutoff(max_days)));
        }
        if last_purge.elapsed() >= RETENTION_EVERY {
            if let Err(e) = db.purge(cutoff(max_days), max) {
                tracing::warn!(error = %e, "chat history retention failed");
            }
            last_purge = std::time::Instant::now();
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(chan: &str, t: i64, id: &str) -> Entry {
        Entry {
            seq: 0,
            time_ms: t,
            msgid: id.into(),
            place: Place::Channel(chan.into()),
            command: "PRIVMSG".into(),
            prefix: "a!u@h".into(),
            target: chan.into(),
            text: id.into(),
            account: None,
            client_tags: String::new(),
            bot: false,
        }
    }

    fn ids(r: Response) -> Vec<String> {
        match r {
            Response::Messages(v) => v.into_iter().map(|e| e.msgid).collect(),
            Response::Targets(v) => v.into_iter().map(|(t, _)| t).collect(),
        }
    }

    fn q(sel: Selector, limit: usize) -> Request {
        Request::Messages(Query {
            scope: Scope::Channel("#c".into()),
            selector: sel,
            limit,
        })
    }

    async fn check(h: &History, base: i64) {
        let m = |s: &str| Bound::Msgid(s.into());
        let t = |n: i64| Bound::Time(base + n);
        let all: Vec<String> = (1..=5).map(|i| format!("m{i}")).collect();
        assert_eq!(ids(h.query(q(Selector::Latest(None), 10)).await), all);
        assert_eq!(
            ids(h.query(q(Selector::Latest(None), 2)).await),
            ["m4", "m5"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Latest(Some(m("m3"))), 10)).await),
            ["m4", "m5"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Before(m("m4")), 2)).await),
            ["m2", "m3"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Before(t(3)), 10)).await),
            ["m1", "m2"]
        );
        assert_eq!(ids(h.query(q(Selector::After(t(3)), 1)).await), ["m4"]);
        assert_eq!(
            ids(h.query(q(Selector::After(m("m1")), 2)).await),
            ["m2", "m3"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Around(m("m3")), 3)).await),
            ["m2", "m3", "m4"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Between(m("m1"), m("m5")), 2)).await),
            ["m2", "m3"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Between(m("m5"), m("m1")), 2)).await),
            ["m3", "m4"]
        );
        assert_eq!(
            ids(h.query(q(Selector::Between(t(0), t(6)), 10)).await),
            all
        );
        assert!(ids(h.query(q(Selector::After(m("nope")), 10)).await).is_empty());
        let targets = Request::Targets(TargetsQuery {
            channels: vec!["#c".into(), "#d".into()],
            me: "a:x".into(),
            from_ms: base,
            to_ms: base + 100,
            limit: 10,
        });
        assert_eq!(ids(h.query(targets).await), ["#c"]);
    }

    #[tokio::test]
    async fn selectors_agree_in_memory_and_sqlite_and_sqlite_persists() {
        let base = now_ms() - 10_000;
        let mem = History::memory(1, 100);
        let dir = tempfile::tempdir().unwrap();
        let cfg = HistoryConfig {
            path: dir.path().join("h.sqlite"),
            max_days: 1,
            max_messages: 100,
        };
        let db = History::open(&cfg).unwrap();
        for h in [&mem, &db] {
            for i in 1..=5 {
                h.store(entry("#c", base + i, &format!("m{i}")));
            }
            // Another channel, and one too old to show.
            h.store(entry("#other", base + 3, "x"));
            check(h, base).await;
        }
        assert_eq!(db.set_marker("acct", "#c", 5), 5);
        assert_eq!(
            db.set_marker("acct", "#c", 3),
            5,
            "markers only move forward"
        );
        db.flush().await;
        drop(db);
        let db = History::open(&cfg).unwrap();
        check(&db, base).await;
        assert_eq!(db.marker("acct", "#c"), Some(5));
        assert_eq!(db.dropped(), 0);
    }

    #[tokio::test]
    async fn retention_by_count_and_age() {
        let now = now_ms();
        let mem = History::memory(1, 3);
        for i in 0..5 {
            mem.store(entry("#c", now + i, &format!("m{i}")));
        }
        assert_eq!(
            ids(mem.query(q(Selector::Latest(None), 10)).await),
            ["m2", "m3", "m4"]
        );
        let old = History::memory(1, 10);
        old.store(entry("#c", now - 2 * 86_400_000, "old"));
        old.store(entry("#c", now, "new"));
        assert_eq!(ids(old.query(q(Selector::Latest(None), 10)).await), ["new"]);

        let dir = tempfile::tempdir().unwrap();
        let cfg = HistoryConfig {
            path: dir.path().join("h.sqlite"),
            max_days: 1,
            max_messages: 3,
        };
        let db = History::open(&cfg).unwrap();
        db.store(entry("#c", now - 2 * 86_400_000, "old"));
        for i in 0..5 {
            db.store(entry("#c", now + i, &format!("m{i}")));
        }
        // Hidden at once; deleted at the next start (or retention run).
        assert_eq!(
            ids(db.query(q(Selector::Latest(None), 2)).await),
            ["m3", "m4"]
        );
        db.flush().await;
        drop(db);
        let db = History::open(&cfg).unwrap();
        assert_eq!(
            ids(db.query(q(Selector::Latest(None), 10)).await),
            ["m2", "m3", "m4"]
        );
    }

    #[test]
    fn a_full_queue_drops_the_oldest_write() {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let w = Worker {
            shared: shared.clone(),
            thread: None,
        };
        for i in 0..(WRITE_QUEUE + 3) {
            w.write(Write::Message(Box::new(entry(
                "#c",
                i as i64,
                &format!("m{i}"),
            ))));
        }
        let p = lock(&shared.0);
        assert_eq!(p.dropped, 3);
        assert_eq!(p.writes.len(), WRITE_QUEUE);
        assert!(matches!(&p.writes[0], Write::Message(e) if e.msgid == "m3"));
    }
}
