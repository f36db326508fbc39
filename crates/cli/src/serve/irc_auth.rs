//! IRC logins checked against the server's accounts (SASL PLAIN and `PASS account:password`,
//! and SASL EXTERNAL by the client certificate fingerprints `sockit account cert add`
//! registered).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sockit_accounts::{Accounts, AccountsError, Verdict};
use sockit_chat::irc::{AuthVerdict, CertVerdict, CreateVerdict, IrcAuth};

/// [`IrcAuth`] over [`Accounts`]: required when the server has a key or any account exists.
#[derive(Debug)]
pub struct AccountsIrcAuth {
    accounts: Arc<Accounts>,
    /// The server has a key: logins are required even before the first account exists.
    key: bool,
    /// Clients may create accounts (`--chat-registration`).
    registration: bool,
}

impl AccountsIrcAuth {
    /// Checks logins against `accounts`; `key` says whether the server has a `--key`,
    /// `registration` whether clients may create accounts.
    pub fn new(accounts: Arc<Accounts>, key: bool, registration: bool) -> Self {
        Self {
            accounts,
            key,
            registration,
        }
    }
}

#[async_trait]
impl IrcAuth for AccountsIrcAuth {
    fn required(&self) -> bool {
        self.key || self.accounts.any()
    }

    fn retry_after(&self, account: &str, ip: IpAddr) -> Option<Duration> {
        self.accounts
            .throttle()
            .check(ip, Some(account), Instant::now())
            .err()
    }

    fn registration(&self) -> bool {
        self.registration
    }

    async fn create(&self, account: &str, password: &str, ip: IpAddr) -> CreateVerdict {
        // Registrations count against the login throttle of the address, so a client
        // cannot create accounts (argon2 hashes) as fast as it can send lines.
        let throttle = self.accounts.throttle();
        if let Err(wait) = throttle.check(ip, None, Instant::now()) {
            return CreateVerdict::Throttled(wait);
        }
        throttle.failed(ip, None, Instant::now());
        let accounts = self.accounts.clone();
        let (name, pw) = (account.to_owned(), password.to_owned());
        let created = tokio::task::spawn_blocking(move || accounts.create(&name, &pw)).await;
        match created {
            Ok(Ok(true)) => CreateVerdict::Created,
            Ok(Ok(false)) => CreateVerdict::Exists,
            Ok(Err(AccountsError::InvalidName(why))) => CreateVerdict::BadName(why.into()),
            Ok(Err(AccountsError::InvalidPassword(why))) => CreateVerdict::BadPassword(why.into()),
            Ok(Err(e)) => {
                tracing::warn!("IRC account registration failed: {e}");
                CreateVerdict::Failed
            }
            Err(e) => {
                tracing::warn!("IRC account registration failed: {e}");
                CreateVerdict::Failed
            }
        }
    }

    fn cert_logins(&self) -> bool {
        true
    }

    async fn verify_cert(&self, fingerprint: &str, ip: IpAddr) -> CertVerdict {
        // The address's back-off applies as for passwords. The account's does not: the
        // certificate proves its key, so someone guessing the account's password cannot
        // lock its owner's certificate out.
        let throttle = self.accounts.throttle();
        if let Err(wait) = throttle.check(ip, None, Instant::now()) {
            return CertVerdict::Throttled(wait);
        }
        let accounts = self.accounts.clone();
        let fp = fingerprint.to_owned();
        let found = tokio::task::spawn_blocking(move || accounts.account_of_cert(&fp)).await;
        match found {
            Ok(Ok(Some(account))) => {
                throttle.succeeded(ip, Some(&account));
                CertVerdict::Ok(account)
            }
            Ok(Ok(None)) => {
                throttle.failed(ip, None, Instant::now());
                CertVerdict::Bad
            }
            Ok(Err(e)) => {
                tracing::warn!("IRC certificate login: {e}");
                CertVerdict::Bad
            }
            Err(e) => {
                tracing::warn!("IRC certificate login: {e}");
                CertVerdict::Bad
            }
        }
    }

    async fn verify(&self, account: &str, password: &str, ip: IpAddr) -> AuthVerdict {
        match self.accounts.verify(account, password, ip).await {
            Verdict::Ok => AuthVerdict::Ok,
            Verdict::Bad => AuthVerdict::Bad,
            Verdict::Throttled(wait) => AuthVerdict::Throttled(wait),
        }
    }
}
