//! The registered-channel store: what ChanServ keeps of a registered channel across
//! restarts (its registration, topic, modes, ban/exception/invite-exception lists).
//!
//! Two backends with the same interface:
//!
//! - **SQLite** ([`ChannelStoreConfig`] gives the file): one writer thread owns the
//!   connection. Commands only record the channel's latest state in a pending map (one
//!   entry per channel, a later change replacing an earlier one not yet written), so
//!   delivery never waits on the disk and the pending set is bounded by the number of
//!   registered channels: nothing is dropped. Each batch is written in one transaction
//!   (`synchronous=FULL`); a failed batch is retried after [`RETRY_AFTER`]; dropping the
//!   store writes what is pending before it returns.
//! - **Memory**: the same map, lost when the server stops (tests, or a file that could
//!   not be opened).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::irc::channel::{Amode, Ban, Channel, Registration, Topic};
use crate::irc::names;

/// How long the writer waits before retrying a batch that failed.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Where registered channels are kept (`ServerConfig::channels`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelStoreConfig {
    /// The SQLite file (created if missing).
    pub path: PathBuf,
}

/// Why the channel store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum ChannelStoreError {
    /// The SQLite file could not be opened, set up or read.
    #[error("registered channels {path}: {source}")]
    Open {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        source: rusqlite::Error,
    },
    /// The writer thread could not be started.
    #[error("registered channels writer: {0}")]
    Thread(std::io::Error),
}

/// The registered-channel store (the server's state holds one behind an `Arc`).
#[derive(Debug)]
pub struct ChannelStore {
    backend: Backend,
}

#[derive(Debug)]
enum Backend {
    Memory(Mutex<BTreeMap<String, Channel>>),
    Sqlite(Worker),
}

impl Default for ChannelStore {
    fn default() -> Self {
        Self::memory()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl ChannelStore {
    /// An empty in-memory store.
    pub fn memory() -> Self {
        Self {
            backend: Backend::Memory(Mutex::new(BTreeMap::new())),
        }
    }

    /// The store `cfg` asks for (its SQLite file, or memory for `None`) and the
    /// registered channels it holds (without members).
    ///
    /// # Errors
    /// The file cannot be opened, set up or read, or the writer thread cannot start.
    pub fn from_config(
        cfg: Option<&ChannelStoreConfig>,
    ) -> Result<(Self, Vec<Channel>), ChannelStoreError> {
        match cfg {
            None => Ok((Self::memory(), Vec::new())),
            Some(cfg) => Self::open(cfg),
        }
    }

    /// Opens (or creates) the SQLite store at `cfg.path`, reads the registered channels
    /// and starts the writer thread.
    ///
    /// # Errors
    /// The file cannot be opened, set up or read, or the writer thread cannot start.
    pub fn open(cfg: &ChannelStoreConfig) -> Result<(Self, Vec<Channel>), ChannelStoreError> {
        let err = |source| ChannelStoreError::Open {
            path: cfg.path.clone(),
            source,
        };
        let mut db = Sqlite::open(&cfg.path).map_err(err)?;
        let channels = db.load().map_err(err)?;
        let worker = Worker::start(db)?;
        Ok((
            Self {
                backend: Backend::Sqlite(worker),
            },
            channels,
        ))
    }

    /// Saves the registered channel `ch` (its persistent part) without waiting; an
    /// unregistered channel is removed from the store.
    pub fn save(&self, ch: &Channel) {
        let key = names::fold(&ch.name);
        let value = ch.is_registered().then(|| ch.persistent());
        match &self.backend {
            Backend::Memory(m) => {
                let mut m = lock(m);
                match value {
                    Some(v) => m.insert(key, v),
                    None => m.remove(&key),
                };
            }
            Backend::Sqlite(w) => w.write(key, value),
        }
    }

    /// Removes the channel `name` from the store without waiting.
    pub fn delete(&self, name: &str) {
        let key = names::fold(name);
        match &self.backend {
            Backend::Memory(m) => {
                lock(m).remove(&key);
            }
            Backend::Sqlite(w) => w.write(key, None),
        }
    }

    /// What the store holds now (for SQLite: what is written, not what is pending),
    /// ordered by folded name.
    pub async fn saved(&self) -> Vec<Channel> {
        match &self.backend {
            Backend::Memory(m) => lock(m).values().cloned().collect(),
            Backend::Sqlite(w) => match w.ask(Ask::Load) {
                Some(rx) => match rx.await {
                    Ok(Answer::Channels(v)) => v,
                    _ => Vec::new(),
                },
                None => Vec::new(),
            },
        }
    }

    /// Waits until every change saved so far has been written (a no-op in memory).
    pub async fn flush(&self) {
        if let Backend::Sqlite(w) = &self.backend {
            if let Some(rx) = w.ask(Ask::Flush) {
                let _ = rx.await;
            }
        }
    }
}

/// The SQLite store (owned by the writer thread).
#[derive(Debug)]
struct Sqlite {
    conn: rusqlite::Connection,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS channels (
    chan TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    founder TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    created INTEGER NOT NULL,
    topic TEXT,
    topic_by TEXT,
    topic_at INTEGER,
    flags TEXT NOT NULL,
    chan_key TEXT,
    chan_limit INTEGER
);
CREATE TABLE IF NOT EXISTS channel_lists (
    chan TEXT NOT NULL,
    mode TEXT NOT NULL,
    pos INTEGER NOT NULL,
    mask TEXT NOT NULL,
    set_by TEXT NOT NULL,
    set_at INTEGER NOT NULL,
    PRIMARY KEY (chan, mode, pos)
);
CREATE TABLE IF NOT EXISTS channel_amodes (
    chan TEXT NOT NULL,
    account TEXT NOT NULL,
    mode TEXT NOT NULL,
    PRIMARY KEY (chan, account)
);
";

/// The `+imnst` flags of `ch` as letters.
fn flags_of(ch: &Channel) -> String {
    [
        ('i', ch.invite_only),
        ('m', ch.moderated),
        ('n', ch.no_external),
        ('s', ch.secret),
        ('t', ch.topic_ops_only),
    ]
    .iter()
    .filter(|(_, on)| *on)
    .map(|(c, _)| *c)
    .collect()
}

/// Sets the `+imnst` flags of `ch` from letters (unknown letters are ignored).
fn set_flags(ch: &mut Channel, flags: &str) {
    ch.invite_only = flags.contains('i');
    ch.moderated = flags.contains('m');
    ch.no_external = flags.contains('n');
    ch.secret = flags.contains('s');
    ch.topic_ops_only = flags.contains('t');
}

impl Sqlite {
    fn open(path: &Path) -> rusqlite::Result<Self> {
        let conn = rusqlite::Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self { conn })
    }

    /// Every registered channel, without members, ordered by folded name.
    fn load(&mut self) -> rusqlite::Result<Vec<Channel>> {
        let mut out: BTreeMap<String, Channel> = BTreeMap::new();
        {
            let mut st = self.conn.prepare(
                "SELECT chan, name, founder, registered_at, created, topic, topic_by, \
                 topic_at, flags, chan_key, chan_limit FROM channels",
            )?;
            let rows = st.query_map([], |r| {
                let key: String = r.get(0)?;
                let name: String = r.get(1)?;
                let mut ch = Channel::new(&name, 0, r.get(4)?);
                ch.members.clear();
                ch.registration = Some(Registration {
                    founder: r.get(2)?,
                    registered_at: r.get(3)?,
                    amodes: BTreeMap::new(),
                });
                let topic: Option<String> = r.get(5)?;
                ch.topic = topic.map(|text| Topic {
                    text,
                    set_by: r
                        .get::<_, Option<String>>(6)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    set_at: r
                        .get::<_, Option<i64>>(7)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                });
                set_flags(&mut ch, &r.get::<_, String>(8)?);
                ch.key = r.get(9)?;
                ch.limit = r
                    .get::<_, Option<i64>>(10)?
                    .and_then(|l| usize::try_from(l).ok())
                    .filter(|l| *l > 0);
                Ok((key, ch))
            })?;
            for row in rows {
                let (key, ch) = row?;
                out.insert(key, ch);
            }
        }
        {
            let mut st = self.conn.prepare(
                "SELECT chan, mode, mask, set_by, set_at FROM channel_lists \
                 ORDER BY chan, mode, pos",
            )?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    Ban {
                        mask: r.get(2)?,
                        set_by: r.get(3)?,
                        set_at: r.get(4)?,
                    },
                ))
            })?;
            for row in rows {
                let (key, mode, ban) = row?;
                let mode = mode.chars().next().unwrap_or(' ');
                if let Some(list) = out.get_mut(&key).and_then(|c| c.list_mut(mode)) {
                    list.push(ban);
                }
            }
        }
        {
            let mut st = self
                .conn
                .prepare("SELECT chan, account, mode FROM channel_amodes")?;
            let rows = st.query_map([], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (key, account, mode) = row?;
                let amode = mode.chars().next().and_then(Amode::from_letter);
                let reg = out.get_mut(&key).and_then(|c| c.registration.as_mut());
                if let (Some(reg), Some(amode)) = (reg, amode) {
                    reg.amodes.insert(account, amode);
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// Writes a batch (folded name → its state, `None` to delete) in one transaction.
    fn write(&mut self, writes: &BTreeMap<String, Option<Channel>>) -> rusqlite::Result<()> {
        let tx = self.conn.transaction()?;
        {
            let mut del_chan = tx.prepare_cached("DELETE FROM channels WHERE chan = ?1")?;
            let mut del_lists = tx.prepare_cached("DELETE FROM channel_lists WHERE chan = ?1")?;
            let mut del_amodes = tx.prepare_cached("DELETE FROM channel_amodes WHERE chan = ?1")?;
            let mut put_chan = tx.prepare_cached(
                "INSERT OR REPLACE INTO channels (chan, name, founder, registered_at, \
                 created, topic, topic_by, topic_at, flags, chan_key, chan_limit) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            )?;
            let mut put_list = tx.prepare_cached(
                "INSERT INTO channel_lists (chan, mode, pos, mask, set_by, set_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut put_amode = tx.prepare_cached(
                "INSERT INTO channel_amodes (chan, account, mode) VALUES (?1, ?2, ?3)",
            )?;
            for (key, value) in writes {
                del_lists.execute([key])?;
                del_amodes.execute([key])?;
                let (Some(ch), Some(reg)) = (
                    value.as_ref(),
                    value.as_ref().and_then(|c| c.registration.as_ref()),
                ) else {
                    del_chan.execute([key])?;
                    continue;
                };
                let topic = ch.topic.as_ref();
                put_chan.execute(rusqlite::params![
                    key,
                    ch.name,
                    reg.founder,
                    reg.registered_at,
                    ch.created,
                    topic.map(|t| &t.text),
                    topic.map(|t| &t.set_by),
                    topic.map(|t| t.set_at),
                    flags_of(ch),
                    ch.key,
                    ch.limit.and_then(|l| i64::try_from(l).ok()),
                ])?;
                for mode in ['b', 'e', 'I'] {
                    for (pos, b) in ch.list(mode).iter().enumerate() {
                        put_list.execute(rusqlite::params![
                            key,
                            mode.to_string(),
                            i64::try_from(pos).unwrap_or(i64::MAX),
                            b.mask,
                            b.set_by,
                            b.set_at,
                        ])?;
                    }
                }
                for (account, amode) in &reg.amodes {
                    put_amode.execute(rusqlite::params![
                        key,
                        account,
                        amode.letter().to_string()
                    ])?;
                }
            }
        }
        tx.commit()
    }
}

/// What the writer is asked besides writing.
#[derive(Debug)]
enum Ask {
    /// Answer once every write queued before is written.
    Flush,
    /// Answer with what the file holds (after the writes queued before).
    Load,
}

#[derive(Debug)]
enum Answer {
    Done,
    Channels(Vec<Channel>),
}

#[derive(Debug, Default)]
struct Pending {
    /// Folded name → the latest state not yet written (`None`: delete).
    writes: BTreeMap<String, Option<Channel>>,
    asks: Vec<(Ask, oneshot::Sender<Answer>)>,
    closed: bool,
}

/// The SQLite writer thread and its pending changes.
#[derive(Debug)]
struct Worker {
    shared: Arc<(Mutex<Pending>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    fn start(db: Sqlite) -> Result<Self, ChannelStoreError> {
        let shared = Arc::new((Mutex::new(Pending::default()), Condvar::new()));
        let theirs = shared.clone();
        let thread = std::thread::Builder::new()
            .name("chat-channels".into())
            .spawn(move || writer(db, &theirs))
            .map_err(ChannelStoreError::Thread)?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Records the latest state of channel `key` (replacing one not yet written).
    fn write(&self, key: String, value: Option<Channel>) {
        lock(&self.shared.0).writes.insert(key, value);
        self.shared.1.notify_one();
    }

    fn ask(&self, ask: Ask) -> Option<oneshot::Receiver<Answer>> {
        let (tx, rx) = oneshot::channel();
        let mut p = lock(&self.shared.0);
        if p.closed {
            return None;
        }
        p.asks.push((ask, tx));
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

/// The writer thread: writes what is pending in one transaction, then answers the asks
/// queued with it. A failed batch goes back to the pending map (unless a newer state of
/// the same channel arrived) and is retried after [`RETRY_AFTER`]. Ends (after a last
/// write) once the store is dropped.
fn writer(mut db: Sqlite, shared: &(Mutex<Pending>, Condvar)) {
    let mut retry_at: Option<Instant> = None;
    loop {
        let (writes, asks, closed) = {
            let mut p = lock(&shared.0);
            loop {
                let due = retry_at.is_none_or(|t| Instant::now() >= t);
                if (due && !p.writes.is_empty()) || !p.asks.is_empty() || p.closed {
                    break;
                }
                p = match retry_at {
                    Some(t) if !p.writes.is_empty() => shared
                        .1
                        .wait_timeout(p, t.saturating_duration_since(Instant::now()))
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0),
                    _ => shared.1.wait(p).unwrap_or_else(|e| e.into_inner()),
                };
            }
            (
                std::mem::take(&mut p.writes),
                std::mem::take(&mut p.asks),
                p.closed,
            )
        };
        if !writes.is_empty() {
            match db.write(&writes) {
                Ok(()) => retry_at = None,
                Err(e) => {
                    tracing::warn!(error = %e, "registered channels write failed");
                    if closed {
                        tracing::error!(
                            channels = writes.len(),
                            "registered channel changes not written"
                        );
                    } else {
                        let mut p = lock(&shared.0);
                        for (k, v) in writes {
                            p.writes.entry(k).or_insert(v);
                        }
                        retry_at = Some(Instant::now() + RETRY_AFTER);
                    }
                }
            }
        }
        for (ask, reply) in asks {
            let answer = match ask {
                Ask::Flush => Answer::Done,
                Ask::Load => Answer::Channels(db.load().unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "registered channels read failed");
                    Vec::new()
                })),
            };
            let _ = reply.send(answer);
        }
        if closed {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registered(name: &str) -> Channel {
        let mut ch = Channel::new(name, 1, 1000);
        ch.registration = Some(Registration {
            founder: "alice".into(),
            registered_at: 2000,
            amodes: BTreeMap::from([("bob".into(), Amode::Op), ("carol".into(), Amode::Voice)]),
        });
        ch.topic = Some(Topic {
            text: "hello world".into(),
            set_by: "alice".into(),
            set_at: 3000,
        });
        ch.moderated = true;
        ch.no_external = false;
        ch.key = Some("sesame".into());
        ch.limit = Some(7);
        for (i, mask) in ["a!*@*", "b!*@*"].iter().enumerate() {
            ch.bans.push(Ban {
                mask: (*mask).into(),
                set_by: "alice!a@h".into(),
                set_at: 4000 + i as i64,
            });
        }
        ch.excepts.push(Ban {
            mask: "c!*@*".into(),
            set_by: "x".into(),
            set_at: 5,
        });
        ch.invex.push(Ban {
            mask: "d!*@*".into(),
            set_by: "y".into(),
            set_at: 6,
        });
        ch
    }

    fn same(a: &Channel, b: &Channel) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.topic, b.topic);
        assert_eq!(a.registration, b.registration);
        assert_eq!(a.modes(true), b.modes(true));
        assert_eq!(a.bans, b.bans);
        assert_eq!(a.excepts, b.excepts);
        assert_eq!(a.invex, b.invex);
        assert_eq!(a.created, b.created);
        assert!(b.members.is_empty());
    }

    #[tokio::test]
    async fn sqlite_keeps_the_latest_state_across_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = ChannelStoreConfig {
            path: dir.path().join("c.sqlite"),
        };
        let (store, loaded) = ChannelStore::open(&cfg).unwrap();
        assert!(loaded.is_empty());
        let mut ch = registered("#Room");
        store.save(&ch);
        let mut other = registered("#other");
        store.save(&other);
        // An unregistered channel is not kept; a later state replaces an earlier one.
        store.save(&Channel::new("#plain", 1, 0));
        ch.topic = None;
        ch.bans.remove(0);
        store.save(&ch);
        other.registration = None;
        store.save(&other);
        store.flush().await;
        let saved = store.saved().await;
        assert_eq!(saved.len(), 1);
        same(&ch, &saved[0]);
        drop(store);
        let (store, loaded) = ChannelStore::open(&cfg).unwrap();
        assert_eq!(loaded.len(), 1);
        same(&ch, &loaded[0]);
        store.delete("#ROOM");
        drop(store);
        let (_store, loaded) = ChannelStore::open(&cfg).unwrap();
        assert!(
            loaded.is_empty(),
            "deleted, and written before the drop returned"
        );
    }

    #[tokio::test]
    async fn memory_saves_and_deletes() {
        let store = ChannelStore::memory();
        let ch = registered("#x");
        store.save(&ch);
        same(&ch, &store.saved().await[0]);
        store.delete("#X");
        assert!(store.saved().await.is_empty());
        store.flush().await;
    }

    #[test]
    fn flags_round_trip() {
        let mut ch = Channel::new("#f", 1, 0);
        assert_eq!(flags_of(&ch), "nt");
        set_flags(&mut ch, "ims");
        assert_eq!(flags_of(&ch), "ims");
        set_flags(&mut ch, "?x");
        assert_eq!(flags_of(&ch), "");
    }
}
