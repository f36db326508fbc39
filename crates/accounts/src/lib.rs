//! The accounts of a sockit server, shared by every service that logs users in: the
//! reader (kosync, OPDS, the web UI) and IRC (SASL PLAIN, PASS, and SASL EXTERNAL by the
//! client-certificate fingerprints in [`certs`]).
//!
//! Accounts live in one SQLite file (`ROOT/state/accounts.db` under `sockit serve`,
//! created with mode 0600). An account may be an administrator ([`Accounts::is_admin`],
//! set with `sockit account add NAME --admin` or `sockit account admin NAME`): the reader
//! lets administrators delete books. A secret is never stored: each account keeps an
//! argon2id PHC string of `md5hex(password)`. kosync's key is itself `md5hex(password)` (KOReader sends
//! the MD5 of what the user typed), so the one stored hash verifies both a plaintext
//! password (IRC, HTTP Basic, the web login form: hashed with MD5 first) and a kosync key.
//!
//! [`Accounts::verify`] checks the shared [`LoginThrottle`] first (per source IP and per
//! account back-off), runs argon2 on a blocking worker (at most
//! [`AccountsConfig::max_concurrent_hashes`] at once, so a flood cannot exhaust memory),
//! spends the same work on unknown accounts (a dummy hash) so timing does not reveal
//! which names exist, and records the outcome in the throttle. Recently verified
//! credentials are remembered in memory for [`AccountsConfig::cache_ttl`] (as a keyed
//! hash), so clients that authenticate every request (kosync, OPDS Basic) do not pay
//! argon2 each time.
#![deny(missing_docs)]

pub mod certs;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use md5::{Digest, Md5};
use rusqlite::{params, Connection, OptionalExtension};
use sockit_runtime::throttle::LoginThrottle;
use tokio::sync::Semaphore;
use tracing::warn;

pub use certs::{normalize_fingerprint, CertAdded, MAX_CERTS_PER_ACCOUNT};

/// Longest account name, in bytes.
pub const MAX_NAME_BYTES: usize = 128;
/// Longest password, in bytes.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// What can go wrong with the accounts store.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// The SQLite file could not be read or written.
    #[error("account storage: {0}")]
    Db(#[from] rusqlite::Error),
    /// The file or its directory could not be created.
    #[error("account storage: {0}")]
    Io(#[from] std::io::Error),
    /// The account name is empty, too long, or holds a colon or a control character.
    #[error("invalid account name: {0}")]
    InvalidName(&'static str),
    /// The password is empty or too long.
    #[error("invalid password: {0}")]
    InvalidPassword(&'static str),
    /// A kosync key that is not 32 hexadecimal digits.
    #[error("invalid key: not an MD5 hex digest")]
    InvalidMd5,
    /// A certificate fingerprint that is not a SHA-256 in hex (64 digits, colons allowed).
    #[error(
        "invalid certificate fingerprint: expected the SHA-256 as 64 hex digits (colons allowed)"
    )]
    InvalidFingerprint,
    /// argon2 refused its parameters or input.
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// The result type of this crate.
pub type Result<T> = std::result::Result<T, AccountsError>;

/// The outcome of [`Accounts::verify`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The secret is the account's password or kosync key.
    Ok,
    /// Unknown account or wrong secret (the two are not told apart).
    Bad,
    /// The source or the account is backing off: refused without checking; retry after
    /// this long (HTTP `Retry-After`).
    Throttled(Duration),
}

/// argon2id cost parameters of new hashes (existing hashes verify with their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashCost {
    /// Memory, in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl HashCost {
    /// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane (the default).
    pub const OWASP: Self = Self {
        m_kib: 19_456,
        t: 2,
        p: 1,
    };
    /// The cheapest argon2 allows, for tests only.
    pub const TEST: Self = Self {
        m_kib: 8,
        t: 1,
        p: 1,
    };
}

impl Default for HashCost {
    fn default() -> Self {
        Self::OWASP
    }
}

/// Settings of an [`Accounts`] store.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// Cost of new hashes.
    pub cost: HashCost,
    /// The failed-login throttle (share one between services so an account's back-off
    /// holds on every port).
    pub throttle: Arc<LoginThrottle>,
    /// Most argon2 computations running at once (each takes `cost.m_kib` of memory).
    pub max_concurrent_hashes: usize,
    /// How long a verified credential is remembered (0 disables the cache).
    pub cache_ttl: Duration,
    /// Most credentials remembered.
    pub cache_entries: usize,
}

impl Default for AccountsConfig {
    fn default() -> Self {
        Self {
            cost: HashCost::OWASP,
            throttle: Arc::new(LoginThrottle::new(Default::default())),
            max_concurrent_hashes: std::thread::available_parallelism()
                .map_or(2, |n| n.get())
                .max(1),
            cache_ttl: Duration::from_secs(600),
            cache_entries: 4096,
        }
    }
}

/// Recently verified credentials: keyed hash of (name, md5hex) → expiry.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<[u8; 32], Instant>,
}

/// The accounts store (see the crate docs). `Send + Sync`; share it as `Arc<Accounts>`.
pub struct Accounts {
    path: PathBuf,
    db: Mutex<Connection>,
    argon: Argon2<'static>,
    /// A hash of a random secret, verified against when the account does not exist.
    dummy: String,
    hash_slots: Semaphore,
    cache: Mutex<Cache>,
    cache_key: [u8; 32],
    cfg: AccountsConfig,
}

impl std::fmt::Debug for Accounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Accounts")
            .field("path", &self.path)
            .field("cost", &self.cfg.cost)
            .finish_non_exhaustive()
    }
}

/// `md5hex(data)`, lower case: the kosync key of a password.
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

/// Whether `s` is 32 hexadecimal digits (either case).
pub fn is_md5_hex(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Checks an account name: 1 to [`MAX_NAME_BYTES`] bytes, no colon (kosync and HTTP
/// Basic use it as a separator), no control character.
///
/// # Errors
/// [`AccountsError::InvalidName`].
pub fn check_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(AccountsError::InvalidName("empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(AccountsError::InvalidName("longer than 128 bytes"));
    }
    if name.contains(':') {
        return Err(AccountsError::InvalidName("contains a colon"));
    }
    if name.chars().any(char::is_control) {
        return Err(AccountsError::InvalidName("contains a control character"));
    }
    Ok(())
}

fn check_password(password: &str) -> Result<()> {
    if password.is_empty() {
        return Err(AccountsError::InvalidPassword("empty"));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(AccountsError::InvalidPassword("longer than 1024 bytes"));
    }
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b)
        .map_err(|e| AccountsError::Io(std::io::Error::other(e.to_string())))?;
    Ok(b)
}

/// The md5 hex forms `secret` may stand for: the MD5 of it as a password, and, when it
/// already looks like an MD5 (a kosync key), itself.
fn candidates(secret: &str) -> Vec<String> {
    let mut c = vec![md5_hex(secret.as_bytes())];
    if is_md5_hex(secret) {
        c.push(secret.to_ascii_lowercase());
    }
    c
}

/// Verifies every candidate against `phc` (no early exit, so the work does not depend on
/// which one matches); the index of a match.
fn check_phc(phc: &str, candidates: &[String]) -> Option<usize> {
    let parsed = PasswordHash::new(phc).ok()?;
    let verifier = Argon2::default();
    let mut found = None;
    for (i, c) in candidates.iter().enumerate() {
        if verifier.verify_password(c.as_bytes(), &parsed).is_ok() && found.is_none() {
            found = Some(i);
        }
    }
    found
}

#[cfg(unix)]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

#[cfg(not(unix))]
fn create_private_file(path: &Path) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map(|_| ())
}

impl Accounts {
    /// Opens (creating it when missing, mode 0600) the accounts file at `path` with the
    /// default settings: OWASP argon2id cost and a fresh default throttle.
    ///
    /// # Errors
    /// The file or its directory cannot be created, or SQLite fails.
    pub fn open(path: &Path) -> Result<Arc<Self>> {
        Self::open_with(path, AccountsConfig::default())
    }

    /// Opens the accounts file at `path` with `cfg`.
    ///
    /// # Errors
    /// The file or its directory cannot be created, SQLite fails, or the cost parameters
    /// are out of argon2's range.
    pub fn open_with(path: &Path, cfg: AccountsConfig) -> Result<Arc<Self>> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        create_private_file(path)?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(
            "PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS accounts(
                 name TEXT PRIMARY KEY NOT NULL,
                 secret TEXT NOT NULL,
                 created INTEGER NOT NULL,
                 changed INTEGER NOT NULL
             );",
        )?;
        // Stores written before accounts had roles gain the column (nobody is an admin).
        let has_admin: bool = conn
            .prepare("SELECT count(*) FROM pragma_table_info('accounts') WHERE name = 'admin'")?
            .query_row([], |r| r.get::<_, i64>(0))?
            > 0;
        if !has_admin {
            conn.execute_batch("ALTER TABLE accounts ADD COLUMN admin INTEGER NOT NULL DEFAULT 0")?;
        }
        conn.execute_batch(certs::SCHEMA)?;
        let params = Params::new(cfg.cost.m_kib, cfg.cost.t, cfg.cost.p, None)
            .map_err(|e| AccountsError::Hash(e.to_string()))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy = hash_with(&argon, &hex::encode(random::<16>()?))?;
        Ok(Arc::new(Self {
            path: path.to_owned(),
            db: Mutex::new(conn),
            argon,
            dummy,
            hash_slots: Semaphore::new(cfg.max_concurrent_hashes.max(1)),
            cache: Mutex::new(Cache::default()),
            cache_key: random::<32>()?,
            cfg,
        }))
    }

    /// The file this store lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The failed-login throttle [`verify`](Self::verify) uses (services that refuse
    /// other credentials can record those failures in it too).
    pub fn throttle(&self) -> &Arc<LoginThrottle> {
        &self.cfg.throttle
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.db.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether any account exists. A storage error counts as "yes", so a broken store
    /// never opens a service that requires logins.
    pub fn any(&self) -> bool {
        let r = self
            .conn()
            .prepare_cached("SELECT 1 FROM accounts LIMIT 1")
            .and_then(|mut s| s.query_row([], |_| Ok(())).optional());
        match r {
            Ok(found) => found.is_some(),
            Err(e) => {
                warn!(error = %e, "accounts: cannot read the store");
                true
            }
        }
    }

    /// Whether the account `user` exists (`false` on a storage error, which is logged).
    pub fn exists(&self, user: &str) -> bool {
        match self.stored(user) {
            Ok(s) => s.is_some(),
            Err(e) => {
                warn!(error = %e, "accounts: cannot read the store");
                false
            }
        }
    }

    /// Every account name, sorted (empty on a storage error, which is logged).
    pub fn list(&self) -> Vec<String> {
        let conn = self.conn();
        let r = conn
            .prepare_cached("SELECT name FROM accounts ORDER BY name")
            .and_then(|mut s| {
                s.query_map([], |r| r.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()
            });
        r.unwrap_or_else(|e| {
            warn!(error = %e, "accounts: cannot read the store");
            Vec::new()
        })
    }

    /// Whether `user` is an administrator (`false` for an unknown account, and on a
    /// storage error, which is logged). Read from the file on every call, so a running
    /// server sees `sockit account admin` at once.
    pub fn is_admin(&self, user: &str) -> bool {
        let r = self
            .conn()
            .prepare_cached("SELECT admin FROM accounts WHERE name = ?1")
            .and_then(|mut s| {
                s.query_row(params![user], |r| r.get::<_, bool>(0))
                    .optional()
            });
        match r {
            Ok(admin) => admin.unwrap_or(false),
            Err(e) => {
                warn!(error = %e, "accounts: cannot read the store");
                false
            }
        }
    }

    /// Makes `user` an administrator, or an ordinary account again; `false` when there
    /// is no such account.
    ///
    /// # Errors
    /// A storage error.
    pub fn set_admin(&self, user: &str, admin: bool) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE accounts SET admin = ?2, changed = ?3 WHERE name = ?1",
            params![user, admin, unix_now()],
        )?;
        Ok(n == 1)
    }

    fn stored(&self, user: &str) -> rusqlite::Result<Option<String>> {
        self.conn()
            .prepare_cached("SELECT secret FROM accounts WHERE name = ?1")?
            .query_row(params![user], |r| r.get(0))
            .optional()
    }

    /// Creates `user` with `password`; `false` when the name is taken. Runs argon2 on
    /// the calling thread (use `spawn_blocking` from async code).
    ///
    /// # Errors
    /// An invalid name or password, or a storage error.
    pub fn create(&self, user: &str, password: &str) -> Result<bool> {
        check_password(password)?;
        self.create_with_md5(user, &md5_hex(password.as_bytes()))
    }

    /// Creates `user` from a kosync key, `md5hex(password)` as KOReader registers it;
    /// `false` when the name is taken. Runs argon2 on the calling thread.
    ///
    /// # Errors
    /// An invalid name, a key that is not 32 hex digits, or a storage error.
    pub fn create_with_md5(&self, user: &str, md5hex: &str) -> Result<bool> {
        check_name(user)?;
        if !is_md5_hex(md5hex) {
            return Err(AccountsError::InvalidMd5);
        }
        if self.stored(user)?.is_some() {
            return Ok(false);
        }
        let phc = hash_with(&self.argon, &md5hex.to_ascii_lowercase())?;
        let now = unix_now();
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO accounts(name, secret, created, changed) VALUES (?1, ?2, ?3, ?3)",
            params![user, phc, now],
        )?;
        Ok(n == 1)
    }

    /// Removes `user` and its certificate fingerprints; `false` when there was no such
    /// account. Credentials remembered by this process are forgotten at once (another
    /// process sees the change when its cache entries expire, after at most
    /// [`AccountsConfig::cache_ttl`]).
    ///
    /// # Errors
    /// A storage error.
    pub fn remove(&self, user: &str) -> Result<bool> {
        let n = {
            let mut conn = self.conn();
            let tx = conn.transaction()?;
            let n = tx.execute("DELETE FROM accounts WHERE name = ?1", params![user])?;
            tx.execute(
                "DELETE FROM cert_fingerprints WHERE name = ?1",
                params![user],
            )?;
            tx.commit()?;
            n
        };
        self.forget_all();
        Ok(n == 1)
    }

    /// Replaces `user`'s password; `false` when there is no such account. Runs argon2 on
    /// the calling thread.
    ///
    /// # Errors
    /// An invalid password, or a storage error.
    pub fn set_password(&self, user: &str, password: &str) -> Result<bool> {
        check_password(password)?;
        let phc = hash_with(&self.argon, &md5_hex(password.as_bytes()))?;
        let n = self.conn().execute(
            "UPDATE accounts SET secret = ?2, changed = ?3 WHERE name = ?1",
            params![user, phc, unix_now()],
        )?;
        self.forget_all();
        Ok(n == 1)
    }

    /// Moves secrets kept in clear by an older store in: each `(name, key)` becomes an
    /// account whose password or kosync key is `key` (a 32-hex-digit key is taken as the
    /// MD5 KOReader registered; any other key as the password itself). Names already
    /// present here, or invalid, are skipped (and logged). Runs argon2 on the calling
    /// thread, once per pair. Returns how many accounts were added.
    ///
    /// # Errors
    /// A storage error (the accounts added before it stay).
    pub fn migrate_clear_keys(
        &self,
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<usize> {
        let mut added = 0;
        for (name, key) in pairs {
            let md5 = if is_md5_hex(&key) {
                key.to_ascii_lowercase()
            } else {
                md5_hex(key.as_bytes())
            };
            match self.create_with_md5(&name, &md5) {
                Ok(true) => added += 1,
                Ok(false) => {
                    warn!(account = %name, "accounts: not migrated: the name already exists")
                }
                Err(AccountsError::InvalidName(why)) => {
                    warn!(account = %name, why, "accounts: not migrated: invalid name")
                }
                Err(e) => return Err(e),
            }
        }
        Ok(added)
    }

    fn cache_id(&self, user: &str, md5: &str) -> [u8; 32] {
        let mut h = blake3::Hasher::new_keyed(&self.cache_key);
        h.update(&(user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(md5.as_bytes());
        *h.finalize().as_bytes()
    }

    fn cache_hit(&self, user: &str, candidates: &[String], now: Instant) -> bool {
        if self.cfg.cache_ttl.is_zero() {
            return false;
        }
        let ids: Vec<_> = candidates.iter().map(|c| self.cache_id(user, c)).collect();
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        ids.iter()
            .any(|id| cache.entries.get(id).is_some_and(|exp| *exp > now))
    }

    fn remember(&self, user: &str, md5: &str, now: Instant) {
        if self.cfg.cache_ttl.is_zero() || self.cfg.cache_entries == 0 {
            return;
        }
        let id = self.cache_id(user, md5);
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.entries.len() >= self.cfg.cache_entries {
            cache.entries.retain(|_, exp| *exp > now);
            if cache.entries.len() >= self.cfg.cache_entries {
                cache.entries.clear();
            }
        }
        cache.entries.insert(id, now + self.cfg.cache_ttl);
    }

    fn forget_all(&self) {
        self.cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entries
            .clear();
    }

    /// Checks `secret` for `user`, from `ip`: the plaintext password or its MD5 hex
    /// (a kosync key). Credentials verified within [`AccountsConfig::cache_ttl`] pass at
    /// once; otherwise a backing-off source or account gets [`Verdict::Throttled`]
    /// without a check, and the check costs the same argon2 work whether or not the
    /// account exists. Failures and successes are recorded in the throttle.
    pub async fn verify(&self, user: &str, secret: &str, ip: IpAddr) -> Verdict {
        let cands = candidates(secret);
        let now = Instant::now();
        if self.cache_hit(user, &cands, now) {
            return Verdict::Ok;
        }
        if let Err(wait) = self.cfg.throttle.check(ip, Some(user), now) {
            return Verdict::Throttled(wait);
        }
        let (phc, known) = match self.stored(user) {
            Ok(Some(h)) => (h, true),
            Ok(None) => (self.dummy.clone(), false),
            Err(e) => {
                warn!(error = %e, "accounts: cannot read the store");
                (self.dummy.clone(), false)
            }
        };
        let matched = {
            // The semaphore is never closed, so acquiring only waits.
            let _slot = self.hash_slots.acquire().await;
            let c = cands.clone();
            tokio::task::spawn_blocking(move || check_phc(&phc, &c))
                .await
                .unwrap_or(None)
        };
        match matched {
            Some(i) if known => {
                self.cfg.throttle.succeeded(ip, Some(user));
                self.remember(user, &cands[i], Instant::now());
                Verdict::Ok
            }
            _ => {
                self.cfg.throttle.failed(ip, Some(user), Instant::now());
                Verdict::Bad
            }
        }
    }
}

/// An argon2id PHC string of `md5hex(password)` at `cost`, with a fresh random salt:
/// what a store keeps for the password, for copies kept elsewhere (a cluster's shared
/// account bucket). Blocks for the hash's time.
///
/// # Errors
/// The cost parameters are out of argon2's range or no randomness is available.
pub fn hash_password(password: &str, cost: HashCost) -> Result<String> {
    let params = Params::new(cost.m_kib, cost.t, cost.p, None)
        .map_err(|e| AccountsError::Hash(e.to_string()))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
    hash_with(&argon, &md5_hex(password.as_bytes()))
}

/// Whether `phc` (as a store or [`hash_password`] writes it) verifies `password` (or
/// the kosync key `md5hex(password)`). Blocks for the hash's time.
pub fn phc_matches(phc: &str, password: &str) -> bool {
    check_phc(phc, &candidates(password)).is_some()
}

/// An argon2id PHC string of `md5hex` with a fresh random salt.
fn hash_with(argon: &Argon2<'_>, md5hex: &str) -> Result<String> {
    let salt =
        SaltString::encode_b64(&random::<16>()?).map_err(|e| AccountsError::Hash(e.to_string()))?;
    argon
        .hash_password(md5hex.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AccountsError::Hash(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sockit_runtime::throttle::ThrottleConfig;

    const IP: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn store(dir: &Path, free_failures: u32) -> Arc<Accounts> {
        Accounts::open_with(
            &dir.join("state/accounts.db"),
            AccountsConfig {
                cost: HashCost::TEST,
                throttle: Arc::new(LoginThrottle::new(ThrottleConfig {
                    free_failures,
                    ..ThrottleConfig::default()
                })),
                ..AccountsConfig::default()
            },
        )
        .unwrap()
    }

    #[tokio::test]
    async fn create_verify_remove() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 100);
        assert!(!a.any());
        assert!(a.create("alice", "s3cret").unwrap());
        assert!(!a.create("alice", "other").unwrap(), "name taken");
        assert!(a.any() && a.exists("alice") && !a.exists("bob"));
        assert_eq!(a.verify("alice", "s3cret", IP).await, Verdict::Ok);
        let key = md5_hex(b"s3cret");
        assert_eq!(a.verify("alice", &key, IP).await, Verdict::Ok);
        assert_eq!(
            a.verify("alice", &key.to_ascii_uppercase(), IP).await,
            Verdict::Ok
        );
        assert_eq!(a.verify("alice", "S3cret", IP).await, Verdict::Bad);
        assert_eq!(a.verify("bob", "s3cret", IP).await, Verdict::Bad);
        assert!(a.create_with_md5("bob", &md5_hex(b"pw")).unwrap());
        assert_eq!(a.verify("bob", "pw", IP).await, Verdict::Ok);
        assert_eq!(a.list(), vec!["alice".to_owned(), "bob".to_owned()]);
        assert!(a.set_password("alice", "new").unwrap());
        assert_eq!(a.verify("alice", "s3cret", IP).await, Verdict::Bad);
        assert_eq!(a.verify("alice", "new", IP).await, Verdict::Ok);
        assert!(!a.set_password("carol", "x").unwrap());
        assert!(a.remove("alice").unwrap());
        assert!(!a.remove("alice").unwrap());
        assert_eq!(
            a.verify("alice", "new", IP).await,
            Verdict::Bad,
            "cache forgotten"
        );
    }

    #[test]
    fn admins_are_marked_and_an_older_store_gains_the_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/accounts.db");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE accounts(name TEXT PRIMARY KEY NOT NULL, secret TEXT NOT NULL,
                 created INTEGER NOT NULL, changed INTEGER NOT NULL);
                 INSERT INTO accounts VALUES ('old', 'x', 1, 1);",
            )
            .unwrap();
        }
        let a = store(dir.path(), 5);
        assert!(!a.is_admin("old"), "nobody is an admin after the upgrade");
        assert!(a.create("root", "pw").unwrap());
        assert!(!a.is_admin("root"));
        assert!(a.set_admin("root", true).unwrap());
        assert!(a.is_admin("root") && !a.is_admin("old") && !a.is_admin("nobody"));
        assert!(!a.set_admin("nobody", true).unwrap());
        // Another handle on the same file (the CLI beside a running server) sees it.
        assert!(store(dir.path(), 5).is_admin("root"));
        assert!(a.set_admin("root", false).unwrap());
        assert!(!a.is_admin("root"));
    }

    #[test]
    fn exported_hashes_verify_like_stored_ones() {
        let phc = hash_password("s3cret pass", HashCost::TEST).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{phc}");
        assert!(phc_matches(&phc, "s3cret pass"));
        assert!(
            phc_matches(&phc, &md5_hex(b"s3cret pass")),
            "the kosync key form"
        );
        assert!(!phc_matches(&phc, "s3cret pas"));
        assert!(!phc_matches("not a hash", "s3cret pass"));
    }

    #[test]
    fn rejects_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 5);
        for bad in ["", "a:b", "a\nb", &"x".repeat(129)] {
            assert!(
                matches!(a.create(bad, "pw"), Err(AccountsError::InvalidName(_))),
                "{bad:?}"
            );
        }
        assert!(matches!(
            a.create("u", ""),
            Err(AccountsError::InvalidPassword(_))
        ));
        assert!(matches!(
            a.create_with_md5("u", "not-md5"),
            Err(AccountsError::InvalidMd5)
        ));
        assert!(!a.any());
    }

    #[test]
    fn stored_secrets_are_argon2id_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 5);
        a.create("alice", "s3cret").unwrap();
        let key = md5_hex(b"kosync-pw");
        a.create_with_md5("bob", &key).unwrap();
        let raw = std::fs::read(a.path()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        assert!(!text.contains("s3cret"));
        assert!(!text.contains(&md5_hex(b"s3cret")));
        assert!(!text.contains(&key));
        let c = Connection::open(a.path()).unwrap();
        let secrets: Vec<String> = c
            .prepare("SELECT secret FROM accounts")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(secrets.len(), 2);
        assert!(secrets.iter().all(|s| s.starts_with("$argon2id$v=19$")));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(a.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn production_cost_is_owasp() {
        let dir = tempfile::tempdir().unwrap();
        let a = Accounts::open(&dir.path().join("a.db")).unwrap();
        a.create("u", "pw").unwrap();
        let phc = a.stored("u").unwrap().unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
    }

    #[tokio::test]
    async fn failures_back_off_per_account_and_per_ip() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 2);
        a.create("alice", "pw").unwrap();
        let other: IpAddr = "127.0.0.2".parse().unwrap();
        // Two free failures on alice from IP, then alice is backing off from anywhere.
        assert_eq!(a.verify("alice", "x", IP).await, Verdict::Bad);
        assert_eq!(a.verify("alice", "y", IP).await, Verdict::Bad);
        assert_eq!(a.verify("alice", "z", IP).await, Verdict::Bad);
        assert!(matches!(
            a.verify("alice", "pw", other).await,
            Verdict::Throttled(d) if d > Duration::ZERO
        ));
        // IP has failed too often, whatever the account.
        assert!(matches!(
            a.verify("nobody", "x", IP).await,
            Verdict::Throttled(_)
        ));
    }

    #[tokio::test]
    async fn cached_credentials_skip_the_throttle() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 1);
        a.create("alice", "pw").unwrap();
        assert_eq!(a.verify("alice", "pw", IP).await, Verdict::Ok);
        let attacker: IpAddr = "127.0.0.9".parse().unwrap();
        for _ in 0..3 {
            a.verify("alice", "guess", attacker).await;
        }
        assert!(matches!(
            a.verify("alice", "guess", attacker).await,
            Verdict::Throttled(_)
        ));
        // The owner's device, already verified, keeps working.
        assert_eq!(a.verify("alice", "pw", IP).await, Verdict::Ok);
    }

    #[test]
    fn migrates_clear_keys() {
        let dir = tempfile::tempdir().unwrap();
        let a = store(dir.path(), 100);
        a.create("taken", "pw").unwrap();
        let n = a
            .migrate_clear_keys([
                ("ko".to_owned(), md5_hex(b"kopw").to_ascii_uppercase()),
                ("plain".to_owned(), "clearpw".to_owned()),
                ("taken".to_owned(), "other".to_owned()),
                ("bad:name".to_owned(), "x".to_owned()),
            ])
            .unwrap();
        assert_eq!(n, 2);
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            assert_eq!(a.verify("ko", "kopw", IP).await, Verdict::Ok);
            assert_eq!(a.verify("ko", &md5_hex(b"kopw"), IP).await, Verdict::Ok);
            assert_eq!(a.verify("plain", "clearpw", IP).await, Verdict::Ok);
            assert_eq!(a.verify("taken", "pw", IP).await, Verdict::Ok);
            assert_eq!(a.verify("taken", "other", IP).await, Verdict::Bad);
        });
    }

    #[test]
    fn reopens_with_accounts_kept() {
        let dir = tempfile::tempdir().unwrap();
        store(dir.path(), 5).create("alice", "pw").unwrap();
        let a = store(dir.path(), 5);
        assert_eq!(a.list(), vec!["alice".to_owned()]);
    }
}
