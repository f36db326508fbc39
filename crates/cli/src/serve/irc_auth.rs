//! IRC logins checked against the server's accounts (SASL PLAIN and `PASS account:password`).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sockit_accounts::{Accounts, Verdict};
use sockit_chat::irc::{AuthVerdict, IrcAuth};

/// [`IrcAuth`] over [`Accounts`]: required when the server has a key or any account exists.
#[derive(Debug)]
pub struct AccountsIrcAuth {
    accounts: Arc<Accounts>,
    /// The server has a key: logins are required even before the first account exists.
    key: bool,
}

impl AccountsIrcAuth {
    /// Checks logins against `accounts`; `key` says whether the server has a `--key`.
    pub fn new(accounts: Arc<Accounts>, key: bool) -> Self {
        Self { accounts, key }
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

    async fn verify(&self, account: &str, password: &str, ip: IpAddr) -> AuthVerdict {
        match self.accounts.verify(account, password, ip).await {
            Verdict::Ok => AuthVerdict::Ok,
            Verdict::Bad => AuthVerdict::Bad,
            Verdict::Throttled(wait) => AuthVerdict::Throttled(wait),
        }
    }
}
