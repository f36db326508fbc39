//! Back-off for failed logins, per source IP and per account, shared by every service
//! that authenticates (the framed HMAC handshake, the reader's logins, IRC SASL/PASS).
//!
//! The first [`ThrottleConfig::free_failures`] failures of a source (or an account) cost
//! nothing; each further one doubles a back-off window, from [`ThrottleConfig::base`] up
//! to [`ThrottleConfig::max`], during which that source's (or account's) attempts are
//! refused without being checked. A success clears the account's counter; a source's
//! counter decays once it has stayed clean for `max`. Like OpenSSH's per-source penalties,
//! a refusal says how long to wait, and the tables are bounded so a spoofed or distributed
//! flood cannot grow memory without limit.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How failed logins are throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Failures a source or an account may have before back-off starts.
    pub free_failures: u32,
    /// The first back-off window; each further failure doubles it.
    pub base: Duration,
    /// The longest back-off window.
    pub max: Duration,
    /// Most sources (and, separately, accounts) remembered; the oldest are forgotten first.
    pub max_entries: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            free_failures: 5,
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            max_entries: 65_536,
        }
    }
}

/// Failure counters with exponential back-off (see the module docs). `Send + Sync`.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    sources: Mutex<Table<IpAddr>>,
    accounts: Mutex<Table<String>>,
}

/// One counter.
#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    /// Attempts are refused until then.
    blocked_until: Option<Instant>,
    last_failure: Instant,
}

#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }

    fn retry_after(&mut self, key: &K, now: Instant, config: &ThrottleConfig) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if now.saturating_duration_since(entry.last_failure) >= config.max {
            self.entries.remove(key);
            return None;
        }
        entry
            .blocked_until
            .filter(|until| *until > now)
            .map(|until| until - now)
    }

    fn fail(&mut self, key: K, now: Instant, config: &ThrottleConfig) {
        if !self.entries.contains_key(&key) && self.entries.len() >= config.max_entries {
            self.evict(now, config);
        }
        let entry = self.entries.entry(key).or_insert(Entry {
            failures: 0,
            blocked_until: None,
            last_failure: now,
        });
        if now.saturating_duration_since(entry.last_failure) >= config.max {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        if entry.failures > config.free_failures {
            let doublings = (entry.failures - config.free_failures - 1).min(30);
            let window = config.base.saturating_mul(1 << doublings).min(config.max);
            entry.blocked_until = Some(now + window);
        }
    }

    /// Forgets stale entries, or (when none is stale) the one with the oldest failure.
    fn evict(&mut self, now: Instant, config: &ThrottleConfig) {
        let before = self.entries.len();
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) < config.max);
        if self.entries.len() == before {
            if let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k.clone())
            {
                self.entries.remove(&oldest);
            }
        }
    }
}

impl LoginThrottle {
    /// An empty throttle.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            config,
            sources: Mutex::new(Table::new()),
            accounts: Mutex::new(Table::new()),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// `Err(retry_after)` while `ip` or `account` is backing off: refuse the attempt
    /// without checking it.
    pub fn check(&self, ip: IpAddr, account: Option<&str>, now: Instant) -> Result<(), Duration> {
        let by_ip = lock(&self.sources).retry_after(&ip, now, &self.config);
        let by_account = account
            .and_then(|a| lock(&self.accounts).retry_after(&a.to_owned(), now, &self.config));
        match by_ip.max(by_account) {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    /// Records a failed attempt from `ip` (for `account`, when one was named).
    pub fn failed(&self, ip: IpAddr, account: Option<&str>, now: Instant) {
        lock(&self.sources).fail(ip, now, &self.config);
        if let Some(a) = account {
            lock(&self.accounts).fail(a.to_owned(), now, &self.config);
        }
    }

    /// Records a success: the account's counter is cleared (the source's decays by
    /// itself, so one good login does not license a scan from the same address).
    pub fn succeeded(&self, ip: IpAddr, account: Option<&str>) {
        let _ = ip;
        if let Some(a) = account {
            lock(&self.accounts).entries.remove(a);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig {
            free_failures: 2,
            base: Duration::from_secs(1),
            max: Duration::from_secs(8),
            max_entries: 4,
        }
    }

    fn ip(n: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, n])
    }

    #[test]
    fn free_failures_then_doubling() {
        let t = LoginThrottle::new(cfg());
        let now = Instant::now();
        t.failed(ip(1), None, now);
        t.failed(ip(1), None, now);
        assert_eq!(t.check(ip(1), None, now), Ok(()));
        t.failed(ip(1), None, now);
        assert_eq!(t.check(ip(1), None, now), Err(Duration::from_secs(1)));
        t.failed(ip(1), None, now);
        assert_eq!(t.check(ip(1), None, now), Err(Duration::from_secs(2)));
        for _ in 0..10 {
            t.failed(ip(1), None, now);
        }
        assert_eq!(t.check(ip(1), None, now), Err(Duration::from_secs(8)));
        // Other sources are untouched.
        assert_eq!(t.check(ip(2), None, now), Ok(()));
    }

    #[test]
    fn window_passes() {
        let t = LoginThrottle::new(cfg());
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip(1), None, now);
        }
        assert!(t.check(ip(1), None, now).is_err());
        assert_eq!(t.check(ip(1), None, now + Duration::from_secs(1)), Ok(()));
    }

    #[test]
    fn account_is_throttled_from_any_source() {
        let t = LoginThrottle::new(cfg());
        let now = Instant::now();
        for n in 0..3 {
            t.failed(ip(n), Some("ada"), now);
        }
        assert!(t.check(ip(9), Some("ada"), now).is_err());
        assert_eq!(t.check(ip(9), Some("bob"), now), Ok(()));
        t.succeeded(ip(9), Some("ada"));
        assert_eq!(t.check(ip(9), Some("ada"), now), Ok(()));
    }

    #[test]
    fn counters_decay() {
        let t = LoginThrottle::new(cfg());
        let now = Instant::now();
        for _ in 0..3 {
            t.failed(ip(1), None, now);
        }
        let later = now + Duration::from_secs(8);
        assert_eq!(t.check(ip(1), None, later), Ok(()));
        t.failed(ip(1), None, later);
        assert_eq!(t.check(ip(1), None, later), Ok(()));
    }

    #[test]
    fn table_is_bounded() {
        let t = LoginThrottle::new(cfg());
        let now = Instant::now();
        for n in 0..100 {
            t.failed(ip(n), None, now + Duration::from_millis(u64::from(n)));
        }
        assert!(lock(&t.sources).entries.len() <= 4);
    }
}
