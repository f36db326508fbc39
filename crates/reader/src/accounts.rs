//! Accounts and reading positions, stored in the catalog database, shared by kosync, the
//! web UI and OPDS Basic auth. As in koreader-sync-server the stored key is whatever the
//! client registered as its password (KOReader sends MD5(password)).

use rusqlite::{params, Connection, OptionalExtension};
use serde::Serialize;
use subtle_eq::ct_eq;

use crate::error::Result;

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

/// Creates a user; `false` when the name is taken.
///
/// # Errors
/// SQLite errors.
pub fn create_user(conn: &Connection, username: &str, key: &str) -> Result<bool> {
    let n = conn.execute(
        "INSERT OR IGNORE INTO users(username, key, created) VALUES (?1, ?2, ?3)",
        params![username, key, chrono::Utc::now().timestamp()],
    )?;
    Ok(n == 1)
}

/// Whether `key` is `username`'s key (constant-time comparison).
///
/// # Errors
/// SQLite errors.
pub fn check(conn: &Connection, username: &str, key: &str) -> Result<bool> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT key FROM users WHERE username = ?1")?
        .query_row(params![username], |r| r.get(0))
        .optional()?;
    Ok(stored.is_some_and(|s| ct_eq(s.as_bytes(), key.as_bytes())))
}

/// Whether any account exists (OPDS asks for Basic auth only then).
///
/// # Errors
/// SQLite errors.
pub fn any(conn: &Connection) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM users LIMIT 1")?
        .query_row([], |_| Ok(()))
        .optional()?
        .is_some())
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

/// Constant-time byte comparison (no early exit on the first difference).
mod subtle_eq {
    pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
        if a.len() != b.len() {
            return false;
        }
        a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_and_progress() {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::catalog::open(&dir.path().join("c.db")).unwrap();
        assert!(!any(&c).unwrap());
        assert!(create_user(&c, "u", "k").unwrap());
        assert!(!create_user(&c, "u", "other").unwrap());
        assert!(check(&c, "u", "k").unwrap());
        assert!(!check(&c, "u", "K").unwrap());
        assert!(!check(&c, "nobody", "k").unwrap());
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
}
