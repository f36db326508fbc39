//! Client-certificate fingerprints of accounts (IRC SASL EXTERNAL): the SHA-256 of a
//! certificate's DER, kept as 64 lowercase hex digits in the `cert_fingerprints` table.
//! A fingerprint belongs to at most one account; an account has at most
//! [`MAX_CERTS_PER_ACCOUNT`]. Removing an account removes its fingerprints.

use rusqlite::{params, Connection, OptionalExtension};

use crate::{unix_now, Accounts, AccountsError, Result};

/// Most certificate fingerprints one account may have.
pub const MAX_CERTS_PER_ACCOUNT: usize = 16;

/// The table (created when missing, so older stores gain it when opened).
pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS cert_fingerprints(
     fingerprint TEXT PRIMARY KEY NOT NULL,
     name TEXT NOT NULL,
     added INTEGER NOT NULL
 );
 CREATE INDEX IF NOT EXISTS cert_fingerprints_by_name ON cert_fingerprints(name);";

/// The outcome of [`Accounts::add_cert`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertAdded {
    /// The fingerprint now logs in to the account.
    Added,
    /// The account already had it.
    AlreadyThere,
    /// Another account has it (its name).
    OtherAccount(String),
    /// No such account.
    NoAccount,
    /// The account has [`MAX_CERTS_PER_ACCOUNT`] already.
    Full,
}

/// Normalizes a SHA-256 fingerprint as users paste it: `AA:BB:…` or `aabb…`, any case,
/// an optional `sha256:` prefix, surrounding spaces. The result is 64 lowercase hex
/// digits.
///
/// # Errors
/// [`AccountsError::InvalidFingerprint`] for anything else.
pub fn normalize_fingerprint(text: &str) -> Result<String> {
    let t = text.trim();
    let body = match t.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("sha256:") => &t[7..],
        _ => t,
    };
    let digits: String = body
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if digits.len() == 64 && digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(digits)
    } else {
        Err(AccountsError::InvalidFingerprint)
    }
}

fn owner(conn: &Connection, fp: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT name FROM cert_fingerprints WHERE fingerprint = ?1")?
        .query_row(params![fp], |r| r.get(0))
        .optional()
}

impl Accounts {
    /// Lets the certificate with fingerprint `fp` (any form [`normalize_fingerprint`]
    /// takes) log in to `user`.
    ///
    /// # Errors
    /// A malformed fingerprint, or a storage error.
    pub fn add_cert(&self, user: &str, fp: &str) -> Result<CertAdded> {
        let fp = normalize_fingerprint(fp)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        let known: Option<i64> = tx
            .prepare_cached("SELECT 1 FROM accounts WHERE name = ?1")?
            .query_row(params![user], |r| r.get(0))
            .optional()?;
        if known.is_none() {
            return Ok(CertAdded::NoAccount);
        }
        match owner(&tx, &fp)? {
            Some(name) if name == user => return Ok(CertAdded::AlreadyThere),
            Some(name) => return Ok(CertAdded::OtherAccount(name)),
            None => {}
        }
        let count: i64 = tx
            .prepare_cached("SELECT COUNT(*) FROM cert_fingerprints WHERE name = ?1")?
            .query_row(params![user], |r| r.get(0))?;
        if usize::try_from(count).unwrap_or(usize::MAX) >= MAX_CERTS_PER_ACCOUNT {
            return Ok(CertAdded::Full);
        }
        tx.execute(
            "INSERT INTO cert_fingerprints(fingerprint, name, added) VALUES (?1, ?2, ?3)",
            params![fp, user, unix_now()],
        )?;
        tx.commit()?;
        Ok(CertAdded::Added)
    }

    /// Stops the fingerprint `fp` logging in to `user`; `false` when `user` did not have
    /// it.
    ///
    /// # Errors
    /// A malformed fingerprint, or a storage error.
    pub fn remove_cert(&self, user: &str, fp: &str) -> Result<bool> {
        let fp = normalize_fingerprint(fp)?;
        let n = self.conn().execute(
            "DELETE FROM cert_fingerprints WHERE fingerprint = ?1 AND name = ?2",
            params![fp, user],
        )?;
        Ok(n == 1)
    }

    /// The fingerprints of `user`, sorted.
    ///
    /// # Errors
    /// A storage error.
    pub fn certs(&self, user: &str) -> Result<Vec<String>> {
        let conn = self.conn();
        let mut s = conn.prepare_cached(
            "SELECT fingerprint FROM cert_fingerprints WHERE name = ?1 ORDER BY fingerprint",
        )?;
        let rows = s.query_map(params![user], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<rusqlite::Result<Vec<_>>>()?)
    }

    /// The account the certificate with fingerprint `fp` logs in to, if any (a malformed
    /// fingerprint has none).
    ///
    /// # Errors
    /// A storage error.
    pub fn account_of_cert(&self, fp: &str) -> Result<Option<String>> {
        let Ok(fp) = normalize_fingerprint(fp) else {
            return Ok(None);
        };
        Ok(owner(&self.conn(), &fp)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountsConfig, HashCost};

    fn store(dir: &std::path::Path) -> std::sync::Arc<Accounts> {
        Accounts::open_with(
            &dir.join("accounts.db"),
            AccountsConfig {
                cost: HashCost::TEST,
                ..AccountsConfig::default()
            },
        )
        .unwrap()
    }

    const FP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn colons_upper(fp: &str) -> String {
        fp.as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8_lossy(c).to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn fingerprints_normalize() {
        assert_eq!(normalize_fingerprint(FP).unwrap(), FP);
        assert_eq!(normalize_fingerprint(&colons_upper(FP)).unwrap(), FP);
        assert_eq!(
            normalize_fingerprint(&format!(" SHA256:{} ", colons_upper(FP))).unwrap(),
            FP
        );
        for bad in [
            "",
            "abc",
            &FP[1..],
            &format!("{FP}00"),
            &FP.replace('a', "g"),
        ] {
            assert!(
                matches!(
                    normalize_fingerprint(bad),
                    Err(AccountsError::InvalidFingerprint)
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn add_look_up_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path());
        a.create("alice", "pw").unwrap();
        a.create("bob", "pw").unwrap();
        assert_eq!(a.add_cert("carol", FP).unwrap(), CertAdded::NoAccount);
        assert_eq!(
            a.add_cert("alice", &colons_upper(FP)).unwrap(),
            CertAdded::Added
        );
        assert_eq!(a.add_cert("alice", FP).unwrap(), CertAdded::AlreadyThere);
        assert_eq!(
            a.add_cert("bob", FP).unwrap(),
            CertAdded::OtherAccount("alice".into())
        );
        assert_eq!(a.account_of_cert(FP).unwrap().as_deref(), Some("alice"));
        assert_eq!(
            a.account_of_cert(&colons_upper(FP)).unwrap().as_deref(),
            Some("alice")
        );
        assert_eq!(a.account_of_cert("junk").unwrap(), None);
        assert_eq!(a.certs("alice").unwrap(), vec![FP.to_owned()]);
        assert!(a.certs("bob").unwrap().is_empty());
        assert!(!a.remove_cert("bob", FP).unwrap(), "not bob's");
        assert!(a.remove_cert("alice", FP).unwrap());
        assert!(!a.remove_cert("alice", FP).unwrap());
        assert_eq!(a.account_of_cert(FP).unwrap(), None);
    }

    #[test]
    fn at_most_sixteen_and_removed_with_the_account() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path());
        a.create("alice", "pw").unwrap();
        let fp = |i: usize| format!("{i:064x}");
        for i in 0..MAX_CERTS_PER_ACCOUNT {
            assert_eq!(a.add_cert("alice", &fp(i)).unwrap(), CertAdded::Added);
        }
        assert_eq!(
            a.add_cert("alice", &fp(MAX_CERTS_PER_ACCOUNT)).unwrap(),
            CertAdded::Full
        );
        assert!(a.remove("alice").unwrap());
        assert_eq!(a.account_of_cert(&fp(0)).unwrap(), None);
        a.create("alice", "pw").unwrap();
        assert!(a.certs("alice").unwrap().is_empty(), "a new alice has none");
    }

    #[test]
    fn an_older_store_gains_the_table() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("accounts.db");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE accounts(name TEXT PRIMARY KEY NOT NULL, secret TEXT NOT NULL,
                 created INTEGER NOT NULL, changed INTEGER NOT NULL);
                 INSERT INTO accounts VALUES ('old', 'x', 0, 0);",
            )
            .unwrap();
        }
        let a = store(dir.path());
        assert_eq!(a.list(), vec!["old".to_owned()]);
        assert_eq!(a.add_cert("old", FP).unwrap(), CertAdded::Added);
        drop(a);
        let a = store(dir.path());
        assert_eq!(a.account_of_cert(FP).unwrap().as_deref(), Some("old"));
    }
}
