//! Reading positions (stored in the catalog, per account name) and web UI sessions.
//!
//! The accounts themselves live in [`sockit_accounts::Accounts`] (argon2id hashes, shared
//! with IRC). Older catalogs kept kosync keys in clear in a `users` table:
//! [`clear_keys`] and [`drop_clear_keys`] let the library move them into the hashed store
//! when it opens.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;

use crate::error::{ReaderError, Result};

/// A stored reading position, in kosync's shape.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Progress {
    /// The document id (KOReader's partial MD5).
    pub document: String,
    /// The client's position string, returned byte for byte.
    pub progress: String,
    /// 0.0..=1.0.
    pub percentage: f64,
    /// Device name.
    pub device: String,
    /// Device id, if the client sent one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    /// Server time of the write, seconds since the epoch.
    pub timestamp: i64,
}

/// The `(username, key)` pairs an older catalog kept in clear (its `users` table),
/// to be moved into the hashed [`sockit_accounts::Accounts`] store.
///
/// # Errors
/// SQLite errors.
pub fn clear_keys(conn: &Connection) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare("SELECT username, key FROM users ORDER BY username")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Deletes the clear keys from the catalog for good: the freed pages are zeroed
/// (`secure_delete`) and the write-ahead log is checkpointed and truncated, so no copy of
/// a key stays in the catalog files.
///
/// # Errors
/// SQLite errors.
pub fn drop_clear_keys(conn: &Connection) -> Result<()> {
    conn.pragma_update(None, "secure_delete", "ON")?;
    conn.execute("DELETE FROM users", [])?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.pragma_update(None, "secure_delete", "OFF")?;
    Ok(())
}

/// The stored position of `username` in `document`.
///
/// # Errors
/// SQLite errors.
pub fn get(conn: &Connection, username: &str, document: &str) -> Result<Option<Progress>> {
    Ok(conn
        .prepare_cached(
            "SELECT document, progress, percentage, device, device_id, timestamp FROM progress \
             WHERE username = ?1 AND document = ?2",
        )?
        .query_row(params![username, document], |r| {
            Ok(Progress {
                document: r.get(0)?,
                progress: r.get(1)?,
                percentage: r.get(2)?,
                device: r.get(3)?,
                device_id: r.get(4)?,
                timestamp: r.get(5)?,
            })
        })
        .optional()?)
}

/// Stores a position (the timestamp is the server's, as in koreader-sync-server).
///
/// # Errors
/// SQLite errors.
pub fn put(conn: &Connection, username: &str, p: &Progress) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO progress(username, document, progress, percentage, device, device_id, timestamp) \
         VALUES (?1,?2,?3,?4,?5,?6,?7) ON CONFLICT(username, document) DO UPDATE SET \
         progress=excluded.progress, percentage=excluded.percentage, device=excluded.device, \
         device_id=excluded.device_id, timestamp=excluded.timestamp",
    )?
    .execute(params![
        username,
        p.document,
        p.progress,
        p.percentage,
        p.device,
        p.device_id,
        p.timestamp
    ])?;
    Ok(())
}

/// Web UI logins: random session tokens (sent as an HttpOnly, SameSite=Strict cookie)
/// mapped, in memory, to their account and expiry. Tokens are kept as their BLAKE3 hash.
#[derive(Debug)]
pub struct Sessions {
    ttl: Duration,
    max: usize,
    map: Mutex<HashMap<[u8; 32], (String, Instant)>>,
}

impl Sessions {
    /// An empty table: sessions last `ttl`, at most `max` are kept.
    pub fn new(ttl: Duration, max: usize) -> Self {
        Self {
            ttl,
            max: max.max(1),
            map: Mutex::new(HashMap::new()),
        }
    }

    /// How long a session lasts.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (String, Instant)>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Opens a session for `user`; its token (64 hex digits).
    ///
    /// # Errors
    /// The system's random source failed.
    pub fn create(&self, user: &str) -> Result<String> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw)
            .map_err(|e| ReaderError::Worker(format!("drawing a session token ({e})")))?;
        let token = hex::encode(raw);
        let now = Instant::now();
        let mut map = self.lock();
        if map.len() >= self.max {
            map.retain(|_, (_, exp)| *exp > now);
        }
        while map.len() >= self.max {
            let oldest = map.iter().min_by_key(|(_, (_, exp))| *exp).map(|(k, _)| *k);
            match oldest {
                Some(k) => map.remove(&k),
                None => break,
            };
        }
        map.insert(
            *blake3::hash(token.as_bytes()).as_bytes(),
            (user.to_owned(), now + self.ttl),
        );
        Ok(token)
    }

    /// The account of a live session.
    pub fn user(&self, token: &str) -> Option<String> {
        let id = *blake3::hash(token.as_bytes()).as_bytes();
        let mut map = self.lock();
        match map.get(&id) {
            Some((user, exp)) if *exp > Instant::now() => Some(user.clone()),
            Some(_) => {
                map.remove(&id);
                None
            }
            None => None,
        }
    }

    /// Ends a session (logout).
    pub fn remove(&self, token: &str) {
        self.lock()
            .remove(blake3::hash(token.as_bytes()).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clear_keys_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::catalog::open(&dir.path().join("c.db")).unwrap();
        c.execute(
            "INSERT INTO users(username, key, created) VALUES ('u', 'k', 0)",
            [],
        )
        .unwrap();
        assert_eq!(clear_keys(&c).unwrap(), vec![("u".into(), "k".into())]);
        drop_clear_keys(&c).unwrap();
        assert!(clear_keys(&c).unwrap().is_empty());
        let p = Progress {
            document: "d".into(),
            progress: "/body/DocFragment[2]".into(),
            percentage: 0.5,
            device: "dev".into(),
            device_id: None,
            timestamp: 7,
        };
        put(&c, "u", &p).unwrap();
        assert_eq!(get(&c, "u", "d").unwrap(), Some(p));
        assert_eq!(get(&c, "u", "x").unwrap(), None);
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let s = Sessions::new(Duration::from_secs(60), 2);
        let a = s.create("alice").unwrap();
        assert_eq!(a.len(), 64);
        assert_eq!(s.user(&a).as_deref(), Some("alice"));
        assert_eq!(s.user("nope"), None);
        let b = s.create("bob").unwrap();
        let c = s.create("carol").unwrap();
        assert_eq!(s.user(&a), None, "oldest dropped at the bound");
        assert_eq!(s.user(&b).as_deref(), Some("bob"));
        s.remove(&c);
        assert_eq!(s.user(&c), None);
        let short = Sessions::new(Duration::ZERO, 4);
        let t = short.create("x").unwrap();
        assert_eq!(short.user(&t), None, "expired");
    }
}
