//! Turning `--only` and `--port` into the list of endpoints to bind (pure).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::serve::registry::{self, Proto, ServiceSpec};

/// One endpoint to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service name.
    pub service: &'static str,
    /// The transport.
    pub proto: Proto,
    /// The address to bind.
    pub addr: SocketAddr,
}

/// Why the plan is invalid (a usage error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An unknown service name.
    #[error("unknown service `{0}` (known: {known})", known = registry::names())]
    UnknownService(String),
    /// A `--port` value that is not `SVC=N`.
    #[error("--port wants SVC=N (e.g. greet=6001, or all=0 for free ports), got `{0}`")]
    BadPort(String),
    /// `--only` left nothing to run.
    #[error("--only selected no service")]
    Empty,
}

/// Resolves the selection and port overrides into endpoints, in table order.
///
/// `ports` entries are `SVC=N` or `all=N`; later entries win, and a service's own entry
/// wins over `all`. A port applies to every endpoint of its service.
pub fn plan(only: &[String], ports: &[String], bind: IpAddr) -> Result<Vec<Endpoint>, PlanError> {
    for name in only {
        if registry::find(name).is_none() {
            return Err(PlanError::UnknownService(name.clone()));
        }
    }
    let mut all: Option<u16> = None;
    let mut per: BTreeMap<&'static str, u16> = BTreeMap::new();
    for p in ports {
        let (name, port) = p
            .split_once('=')
            .ok_or_else(|| PlanError::BadPort(p.clone()))?;
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| PlanError::BadPort(p.clone()))?;
        match name.trim() {
            "all" => all = Some(port),
            n => {
                let spec =
                    registry::find(n).ok_or_else(|| PlanError::UnknownService(n.to_owned()))?;
                per.insert(spec.name, port);
            }
        }
    }
    let selected: Vec<&ServiceSpec> = registry::SERVICES
        .iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name))
        .collect();
    if selected.is_empty() {
        return Err(PlanError::Empty);
    }
    let mut out = Vec::new();
    for spec in selected {
        for &(proto, default) in spec.endpoints {
            let port = per.get(spec.name).copied().or(all).unwrap_or(default);
            out.push(Endpoint {
                service: spec.name,
                proto,
                addr: SocketAddr::new(bind, port),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn defaults() {
        let p = plan(&[], &[], lo()).unwrap();
        assert!(p.contains(&Endpoint {
            service: "greet",
            proto: Proto::Tcp,
            addr: "127.0.0.1:6000".parse().unwrap()
        }));
        assert_eq!(p.iter().filter(|e| e.service == "echo").count(), 2);
    }

    #[test]
    fn only_and_ports() {
        let p = plan(
            &["echo".into(), "time".into()],
            &["all=0".into(), "time=9037".into()],
            lo(),
        )
        .unwrap();
        assert_eq!(p.len(), 4);
        assert!(p
            .iter()
            .filter(|e| e.service == "echo")
            .all(|e| e.addr.port() == 0));
        assert!(p
            .iter()
            .filter(|e| e.service == "time")
            .all(|e| e.addr.port() == 9037));
    }

    #[test]
    fn errors() {
        assert_eq!(
            plan(&["nope".into()], &[], lo()),
            Err(PlanError::UnknownService("nope".into()))
        );
        assert!(matches!(
            plan(&[], &["greet".into()], lo()),
            Err(PlanError::BadPort(_))
        ));
        assert!(matches!(
            plan(&[], &["greet=x".into()], lo()),
            Err(PlanError::BadPort(_))
        ));
        assert!(matches!(
            plan(&[], &["greet=70000".into()], lo()),
            Err(PlanError::BadPort(_))
        ));
        assert!(matches!(
            plan(&[], &["zz=1".into()], lo()),
            Err(PlanError::UnknownService(_))
        ));
    }
}
