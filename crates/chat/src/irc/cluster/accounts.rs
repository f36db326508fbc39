//! The network's accounts: a JetStream key-value bucket
//! ([`ACCOUNT_BUCKET`](events::ACCOUNT_BUCKET)) every node reads, so an account
//! registered on one node logs in on any other.
//!
//! A key is the account's name ([`account_key`](events::account_key)), a value an
//! [`AccountRecord`]: the argon2id PHC string of `md5hex(password)` (the accounts
//! store's own format, so no password is ever kept) and the node that wrote it.
//!
//! - **REGISTER** on a node first *reserves* the name in the bucket (`create`, which one
//!   claimant wins), then creates the account in the node's own store; if that fails
//!   (a bad name or password, a name the store has) the reservation is deleted again.
//!   A name in the bucket is `ACCOUNT_EXISTS` on every node.
//! - **A login** (SASL PLAIN, `PASS account:password`, OPER) checks the bucket first;
//!   when its record does not verify, the node's own store decides (and counts a
//!   failure in its back-off, as before). So a login that the bucket accepts never
//!   touches the local back-off.
//! - **An account of a node's own store** (`sockit account add`) joins the bucket the
//!   first time it logs in on that node; if that node wrote the record, a later login
//!   with another password (changed with `sockit account passwd`) replaces it. A record
//!   another node wrote is never replaced from here.
//!
//! Without the bucket (NATS unreachable, no JetStream) every node answers from its own
//! store alone, after at most [`BUCKET_TIMEOUT`].

use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::kv::{CreateErrorKind, Operation};

use super::events::{account_key, AccountRecord};
use super::link::Link;

/// How long a bucket operation may take before the node decides alone.
pub const BUCKET_TIMEOUT: Duration = Duration::from_secs(3);

/// A new PHC string for `password` at the accounts store's cost (on a blocking worker).
async fn hash(password: &str) -> Option<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        sockit_accounts::hash_password(&password, sockit_accounts::HashCost::default()).ok()
    })
    .await
    .ok()
    .flatten()
}

/// Whether `password` matches `phc` (on a blocking worker).
async fn matches(phc: &str, password: &str) -> bool {
    let (phc, password) = (phc.to_owned(), password.to_owned());
    tokio::task::spawn_blocking(move || sockit_accounts::phc_matches(&phc, &password))
        .await
        .unwrap_or(false)
}

/// Runs `work` within [`BUCKET_TIMEOUT`] (`None` after it).
async fn bounded<T>(work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::time::timeout(BUCKET_TIMEOUT, work).await.ok()
}

/// The bucket's record of `account` and its revision.
async fn record(link: &Link, account: &str) -> Option<(AccountRecord, u64)> {
    let store = link.accounts()?;
    let entry = bounded(store.entry(account_key(account)))
        .await?
        .ok()
        .flatten()?;
    if entry.operation != Operation::Put {
        return None;
    }
    let r = AccountRecord::decode(&entry.value)?;
    (r.name == account).then_some((r, entry.revision))
}

/// Whether the network's bucket has `account` with `password` (`false` without a
/// cluster, without the bucket, or for an account it does not have).
pub async fn verify_account(link: Option<Arc<Link>>, account: &str, password: &str) -> bool {
    let Some(link) = link else { return false };
    let Some((r, _)) = record(&link, account).await else {
        return false;
    };
    let Ok(_slot) = link.hash_slots.acquire().await else {
        return false;
    };
    matches(&r.phc, password).await
}

/// A keyed hash of `password` for the in-memory check cache.
fn check_of(link: &Link, password: &str) -> u64 {
    link.check_key.hash_one(password)
}

/// After a login this node's own store accepted: puts the account in the bucket if it
/// is not there, or replaces the record this node wrote when the password changed (in
/// the background; at most one argon2 per account and password per run).
pub fn remember_login(link: Option<Arc<Link>>, account: &str, password: &str) {
    let Some(link) = link else { return };
    let (account, password) = (account.to_owned(), password.to_owned());
    tokio::spawn(async move {
        let Some(store) = link.accounts() else { return };
        let check = check_of(&link, &password);
        let key = account_key(&account);
        let current = record(&link, &account).await;
        let cached = |rev| {
            link.account_checks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(&account)
                == Some(&(rev, check))
        };
        if let Some((_, rev)) = &current {
            if cached(*rev) {
                return;
            }
        }
        let Ok(_slot) = link.hash_slots.acquire().await else {
            return;
        };
        let rev = match current {
            Some((r, rev)) if matches(&r.phc, &password).await => Some(rev),
            Some((r, _)) if r.node != link.node() => {
                tracing::warn!(
                    account,
                    node = r.node,
                    "chat cluster: this node's account differs from the network's; \
                     other nodes use the network's"
                );
                None
            }
            current => {
                let Some(phc) = hash(&password).await else {
                    return;
                };
                let value = AccountRecord {
                    name: account.clone(),
                    phc,
                    node: link.node().to_owned(),
                }
                .encode();
                match current {
                    Some((_, rev)) => bounded(store.update(&key, value.into(), rev))
                        .await
                        .and_then(Result::ok),
                    None => bounded(store.create(&key, value.into()))
                        .await
                        .and_then(Result::ok),
                }
            }
        };
        if let Some(rev) = rev {
            link.account_checks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(account, (rev, check));
        }
    });
}

/// What reserving an account name in the bucket gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Reserved (the record's revision): create the account, or give the name back.
    Reserved(u64),
    /// The network has the name.
    Exists,
    /// No bucket (no cluster, NATS unreachable): the node's store decides alone.
    Unavailable,
}

/// Reserves `account` with `password`'s hash in the bucket (REGISTER).
pub async fn reserve_account(link: Option<Arc<Link>>, account: &str, password: &str) -> Reserve {
    let Some(link) = link else {
        return Reserve::Unavailable;
    };
    let Some(store) = link.accounts() else {
        return Reserve::Unavailable;
    };
    let phc = {
        let Ok(_slot) = link.hash_slots.acquire().await else {
            return Reserve::Unavailable;
        };
        let Some(phc) = hash(password).await else {
            return Reserve::Unavailable;
        };
        phc
    };
    let value = AccountRecord {
        name: account.to_owned(),
        phc,
        node: link.node().to_owned(),
    }
    .encode();
    match bounded(store.create(account_key(account), value.into())).await {
        Some(Ok(rev)) => Reserve::Reserved(rev),
        Some(Err(e)) if e.kind() == CreateErrorKind::AlreadyExists => Reserve::Exists,
        _ => Reserve::Unavailable,
    }
}

/// Gives back the reservation of `account` (revision `rev`): its creation failed.
pub async fn unreserve_account(link: Option<Arc<Link>>, account: &str, rev: u64) {
    let Some(store) = link.and_then(|l| l.accounts()) else {
        return;
    };
    let _ = bounded(store.delete_expect_revision(account_key(account), Some(rev))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_of_the_md5_and_verify() {
        let phc = hash("s3cret").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(matches(&phc, "s3cret").await);
        assert!(!matches(&phc, "other").await);
        assert!(!matches("not a phc", "s3cret").await);
        assert_ne!(hash("s3cret").await.unwrap(), phc, "a fresh salt each time");
    }
}
