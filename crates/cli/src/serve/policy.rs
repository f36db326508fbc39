//! The auth policy of one `sockit serve` bind (pure): which planned endpoints run, which
//! require authentication, and which are left out, decided once from the bind address,
//! the key, the accounts, `--public` and `--no-auth`.
//!
//! - Auth is **on** when the server has a key or any account exists. Then every endpoint
//!   that can authenticate requires it: framed with the key (HMAC), the reader's HTTP(S)
//!   and IRC with accounts.
//! - On a **non-loopback** bind, an endpoint that would serve unauthenticated clients
//!   (one that cannot authenticate: greet, echo, daytime, time, tftp, udp-chat,
//!   discovery, the classic reader protocol; or one that could but has nothing to check
//!   against) runs only when `--public` names it (`SVC` or `SVC.PROTO`) or `--no-auth` is
//!   given. Otherwise it is left out with a note, and the server refuses to start when
//!   `--only` named a service none of whose endpoints may run.
//! - The classic reader protocol cannot log in, so while the reader requires accounts it
//!   would be a way around them: it is left out (on any bind) unless named in `--public`.

use std::collections::BTreeSet;

use crate::serve::plan::{parse_target, Endpoint, PlanError};
use crate::serve::registry::{AuthMethod, Proto, Service};

/// What the policy is decided from.
#[derive(Debug, Clone)]
pub struct PolicyInput {
    /// Whether the bind address is loopback.
    pub loopback: bool,
    /// Whether the server has a `--key`.
    pub key: bool,
    /// Whether any account exists.
    pub accounts: bool,
    /// `--no-auth`: every endpoint is public.
    pub no_auth: bool,
    /// `--public` entries, already parsed.
    pub public: Publics,
    /// Services `--only` named explicitly (a refusal for these is an error, not a note).
    pub explicit: Vec<Service>,
}

/// `--public SVC[.PROTO],...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Publics {
    services: BTreeSet<Service>,
    endpoints: BTreeSet<(Service, Proto)>,
}

impl Publics {
    /// Parses the `--public` entries.
    ///
    /// # Errors
    /// An unknown service or endpoint.
    pub fn parse(entries: &[String]) -> Result<Self, PlanError> {
        let mut out = Publics::default();
        for e in entries.iter().filter(|e| !e.trim().is_empty()) {
            match parse_target(e)? {
                (svc, None) => {
                    out.services.insert(svc);
                }
                (svc, Some(proto)) => {
                    out.endpoints.insert((svc, proto));
                }
            }
        }
        Ok(out)
    }

    /// Whether `e` was named.
    pub fn contains(&self, e: &Endpoint) -> bool {
        self.names(e.service, e.proto)
    }

    /// Whether `service`'s `proto` endpoint was named (as `SVC` or `SVC.PROTO`).
    pub fn names(&self, service: Service, proto: Proto) -> bool {
        self.services.contains(&service) || self.endpoints.contains(&(service, proto))
    }
}

/// How a running endpoint treats its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// Clients must authenticate.
    Authenticated,
    /// Anyone who reaches it is served (loopback, `--public` or `--no-auth`).
    Open,
}

/// The decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The endpoints to run, with how each is guarded, in plan order.
    pub run: Vec<(Endpoint, Guard)>,
    /// Endpoints left out, with why and how to include them.
    pub left_out: Vec<(Endpoint, String)>,
    /// Things the operator should know (printed at start).
    pub warnings: Vec<String>,
}

/// Why the server refuses to start.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// `--only` named a service none of whose endpoints the policy exposes.
    #[error("refusing to serve {0}: {1}")]
    Refused(String, String),
    /// Nothing is left to run.
    #[error("nothing to serve: {0}")]
    NothingLeft(String),
}

/// Decides which of the planned `endpoints` run and how they are guarded.
///
/// # Errors
/// An endpoint `--only` named cannot be exposed, or nothing is left to run.
pub fn decide(endpoints: Vec<Endpoint>, input: &PolicyInput) -> Result<Decision, PolicyError> {
    let auth_on = input.key || input.accounts;
    let mut decision = Decision {
        run: Vec::new(),
        left_out: Vec::new(),
        warnings: Vec::new(),
    };
    for e in endpoints {
        let public = input.no_auth || input.public.contains(&e);
        let authenticates = match e.auth {
            AuthMethod::None => false,
            AuthMethod::Key => input.key,
            AuthMethod::Accounts => auth_on,
        };
        if authenticates {
            decision.run.push((e, Guard::Authenticated));
            continue;
        }
        let reader_bypass = e.service == Service::Reader
            && e.auth == AuthMethod::None
            && auth_on
            && !input.public.contains(&e);
        let why = if reader_bypass {
            Some(format!(
                "the classic reader protocol cannot log in and the library requires accounts; \
                 name it in --public {} to serve it anyway",
                e.label()
            ))
        } else if !input.loopback && !public {
            Some(match e.auth {
                AuthMethod::None => format!(
                    "{} cannot authenticate; name it in --public {} to expose it",
                    e.label(),
                    e.service
                ),
                AuthMethod::Key => format!(
                    "{} would be unauthenticated without --key; pass --key FILE (create one with \
                     `sockit keygen FILE`) or name it in --public",
                    e.label()
                ),
                AuthMethod::Accounts => format!(
                    "{} would be unauthenticated with neither --key nor accounts; create one with \
                     `sockit account add NAME` or name it in --public",
                    e.label()
                ),
            })
        } else {
            None
        };
        match why {
            Some(why) => decision.left_out.push((e, why)),
            None => decision.run.push((e, Guard::Open)),
        }
    }
    // A service `--only` named must run on at least one endpoint.
    for service in &input.explicit {
        if decision.run.iter().any(|(e, _)| e.service == *service) {
            continue;
        }
        if let Some((e, why)) = decision
            .left_out
            .iter()
            .find(|(e, _)| e.service == *service)
        {
            return Err(PolicyError::Refused(e.label(), why.clone()));
        }
    }
    if input.no_auth && !input.loopback {
        decision
            .warnings
            .push("--no-auth: every service is open to anyone who can reach this address".into());
    }
    let account_endpoints = decision
        .run
        .iter()
        .any(|(e, g)| *g == Guard::Authenticated && e.auth == AuthMethod::Accounts);
    if account_endpoints && !input.accounts {
        decision.warnings.push(
            "the reader and IRC require accounts and none exist yet: nobody can log in until \
             `sockit account add NAME`"
                .into(),
        );
    }
    if decision.run.is_empty() {
        let why = decision
            .left_out
            .first()
            .map_or_else(|| "no endpoint selected".to_owned(), |(_, w)| w.clone());
        return Err(PolicyError::NothingLeft(why));
    }
    Ok(decision)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::plan::{plan, TlsMode};

    fn input(loopback: bool) -> PolicyInput {
        PolicyInput {
            loopback,
            key: false,
            accounts: false,
            no_auth: false,
            public: Publics::default(),
            explicit: Vec::new(),
        }
    }

    fn all(bind: &str) -> Vec<Endpoint> {
        plan(&[], &[], bind.parse().unwrap(), TlsMode::Off).unwrap()
    }

    fn running(d: &Decision) -> Vec<String> {
        d.run.iter().map(|(e, _)| e.label()).collect()
    }

    #[test]
    fn loopback_without_credentials_runs_everything_open() {
        let d = decide(all("127.0.0.1"), &input(true)).unwrap();
        assert_eq!(d.run.len(), all("127.0.0.1").len());
        assert!(d.run.iter().all(|(_, g)| *g == Guard::Open));
        assert!(d.left_out.is_empty());
    }

    #[test]
    fn key_guards_every_service_that_can_authenticate() {
        let mut i = input(true);
        i.key = true;
        let d = decide(all("127.0.0.1"), &i).unwrap();
        for (e, g) in &d.run {
            let expect = if e.auth == AuthMethod::None {
                Guard::Open
            } else {
                Guard::Authenticated
            };
            assert_eq!(*g, expect, "{}", e.label());
        }
        // The classic reader port would bypass the reader's login.
        assert!(d.left_out.iter().any(|(e, _)| e.label() == "reader.tcp"));
        assert!(d.warnings.iter().any(|w| w.contains("sockit account add")));
    }

    #[test]
    fn non_loopback_with_a_key_leaves_out_what_cannot_authenticate() {
        let mut i = input(false);
        i.key = true;
        let d = decide(all("0.0.0.0"), &i).unwrap();
        assert_eq!(
            running(&d),
            ["framed.tcp", "reader.http", "chat.tcp", "chat.ws"].map(String::from)
        );
        assert!(d
            .left_out
            .iter()
            .any(|(e, why)| e.label() == "tftp.udp" && why.contains("--public tftp")));
    }

    #[test]
    fn non_loopback_without_credentials_refuses_or_leaves_out() {
        let d = decide(all("0.0.0.0"), &input(false));
        assert!(matches!(d, Err(PolicyError::NothingLeft(_))));
        let mut i = input(false);
        i.explicit = vec![Service::Chat];
        let only_chat = plan(
            &["chat".into()],
            &[],
            "0.0.0.0".parse().unwrap(),
            TlsMode::Off,
        )
        .unwrap();
        let err = decide(only_chat, &i).unwrap_err();
        assert!(err.to_string().contains("sockit account add"), "{err}");
    }

    #[test]
    fn public_and_no_auth() {
        let mut i = input(false);
        i.key = true;
        i.public = Publics::parse(&["echo".into(), "time.udp".into()]).unwrap();
        let d = decide(all("0.0.0.0"), &i).unwrap();
        let run = running(&d);
        assert!(run.contains(&"echo.tcp".into()) && run.contains(&"echo.udp".into()));
        assert!(run.contains(&"time.udp".into()) && !run.contains(&"time.tcp".into()));
        let mut i = input(false);
        i.no_auth = true;
        let d = decide(all("0.0.0.0"), &i).unwrap();
        assert_eq!(d.run.len(), all("0.0.0.0").len());
        assert!(d.warnings.iter().any(|w| w.contains("--no-auth")));
        assert!(Publics::parse(&["nope".into()]).is_err());
        assert!(Publics::parse(&["greet.udp".into()]).is_err());
    }

    #[test]
    fn accounts_alone_turn_auth_on_for_reader_and_chat_only() {
        let mut i = input(true);
        i.accounts = true;
        let d = decide(all("127.0.0.1"), &i).unwrap();
        let guard = |label: &str| {
            d.run
                .iter()
                .find(|(e, _)| e.label() == label)
                .map(|(_, g)| *g)
        };
        assert_eq!(guard("reader.http"), Some(Guard::Authenticated));
        assert_eq!(guard("chat.tcp"), Some(Guard::Authenticated));
        assert_eq!(guard("framed.tcp"), Some(Guard::Open));
        assert_eq!(guard("reader.tcp"), None);
        i.public = Publics::parse(&["reader.tcp".into()]).unwrap();
        let d = decide(all("127.0.0.1"), &i).unwrap();
        assert!(running(&d).contains(&"reader.tcp".into()));
    }
}
