//! Turning `--only` and `--port` into the list of endpoints to bind (pure).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use crate::serve::registry::{AuthMethod, Proto, Service};

/// One endpoint to bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The service.
    pub service: Service,
    /// The transport.
    pub proto: Proto,
    /// The address to bind.
    pub addr: SocketAddr,
    /// How it authenticates.
    pub auth: AuthMethod,
}

impl Endpoint {
    /// `SVC.PROTO`, as `--port` and `--public` spell it.
    pub fn label(&self) -> String {
        format!("{}.{}", self.service, self.proto)
    }
}

/// Which TLS endpoints to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// No TLS endpoints.
    Off,
    /// TLS endpoints next to the plain ones.
    Also,
    /// TLS endpoints instead of their plain twins (`--tls-only`).
    Only,
}

/// Why the plan is invalid (a usage error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// An unknown service name.
    #[error("unknown service `{0}` (known: {known})", known = Service::names())]
    UnknownService(String),
    /// A `--port` value that is not `SVC=N`.
    #[error("--port wants SVC=N or SVC.PROTO=N (e.g. greet=6001, chat.tls=6698, or all=0 for free ports), got `{0}`")]
    BadPort(String),
    /// A `SVC.PROTO` naming an endpoint the service does not have.
    #[error("service `{0}` has no `{1}` endpoint (it has: {2})")]
    UnknownEndpoint(String, String, String),
    /// Two TCP endpoints (or two UDP ones) would bind the same port.
    #[error("{0} and {1} would both listen on port {2}; set one apart with --port {1}=N")]
    PortClash(String, String, u16),
    /// `--only` left nothing to run.
    #[error("--only selected no service")]
    Empty,
}

/// Port overrides: `all=N`, `SVC=N`, `SVC.PROTO=N`; the most specific wins.
#[derive(Debug, Default)]
struct Ports {
    all: Option<u16>,
    service: BTreeMap<Service, u16>,
    endpoint: BTreeMap<(Service, Proto), u16>,
}

impl Ports {
    fn parse(ports: &[String]) -> Result<Self, PlanError> {
        let mut out = Ports::default();
        for p in ports {
            let (name, port) = p
                .split_once('=')
                .ok_or_else(|| PlanError::BadPort(p.clone()))?;
            let port: u16 = port
                .trim()
                .parse()
                .map_err(|_| PlanError::BadPort(p.clone()))?;
            let name = name.trim();
            if name == "all" {
                out.all = Some(port);
                continue;
            }
            match parse_target(name)? {
                (svc, None) => {
                    out.service.insert(svc, port);
                }
                (svc, Some(proto)) => {
                    out.endpoint.insert((svc, proto), port);
                }
            }
        }
        Ok(out)
    }

    fn port(&self, service: Service, proto: Proto, default: u16) -> u16 {
        self.endpoint
            .get(&(service, proto))
            .or_else(|| self.service.get(&service))
            .copied()
            .or(self.all)
            .unwrap_or(default)
    }
}

/// Parses `SVC` or `SVC.PROTO` (as `--port` and `--public` name an endpoint).
///
/// # Errors
/// An unknown service, or a protocol the service has no endpoint for.
pub fn parse_target(name: &str) -> Result<(Service, Option<Proto>), PlanError> {
    let (svc, proto) = match name.trim().split_once('.') {
        Some((svc, proto)) => (svc, Some(proto)),
        None => (name.trim(), None),
    };
    let service = Service::find(svc).ok_or_else(|| PlanError::UnknownService(svc.to_owned()))?;
    let Some(proto) = proto else {
        return Ok((service, None));
    };
    match Proto::parse(proto).filter(|p| service.endpoint(*p).is_some()) {
        Some(p) => Ok((service, Some(p))),
        None => {
            let has = service
                .endpoints()
                .iter()
                .map(|e| e.proto.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            Err(PlanError::UnknownEndpoint(
                service.name().into(),
                proto.into(),
                has,
            ))
        }
    }
}

/// Resolves the selection, the TLS mode and the port overrides into endpoints, in table
/// order.
///
/// `ports` entries are `SVC=N`, `SVC.PROTO=N` or `all=N`; later entries win, and the most
/// specific entry wins. A `SVC=N` port applies to every endpoint of the service, so a
/// service with several TCP endpoints needs `SVC.PROTO=N` for a fixed port (0 is fine).
pub fn plan(
    only: &[String],
    ports: &[String],
    bind: IpAddr,
    tls: TlsMode,
) -> Result<Vec<Endpoint>, PlanError> {
    for name in only {
        if Service::find(name).is_none() {
            return Err(PlanError::UnknownService(name.clone()));
        }
    }
    let ports = Ports::parse(ports)?;
    let selected: Vec<Service> = Service::ALL
        .into_iter()
        .filter(|s| only.is_empty() || only.iter().any(|o| o == s.name()))
        .collect();
    if selected.is_empty() {
        return Err(PlanError::Empty);
    }
    let mut out: Vec<Endpoint> = Vec::new();
    for service in selected {
        for spec in service.endpoints() {
            let (proto, default) = (spec.proto, spec.port);
            let replaced_by_tls = service
                .endpoints()
                .iter()
                .any(|other| other.proto.plain_twin() == Some(proto));
            let wanted = match tls {
                TlsMode::Off => !proto.is_tls(),
                TlsMode::Also => true,
                TlsMode::Only => !replaced_by_tls,
            };
            if !wanted {
                continue;
            }
            let port = ports.port(service, proto, default);
            if let Some(clash) = out
                .iter()
                .find(|e| port != 0 && e.addr.port() == port && e.proto.is_tcp() == proto.is_tcp())
            {
                return Err(PlanError::PortClash(
                    clash.label(),
                    format!("{service}.{proto}"),
                    port,
                ));
            }
            out.push(Endpoint {
                service,
                proto,
                addr: SocketAddr::new(bind, port),
                auth: spec.auth,
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
        let p = plan(&[], &[], lo(), TlsMode::Off).unwrap();
        assert!(p.contains(&Endpoint {
            service: Service::Greet,
            proto: Proto::Tcp,
            addr: "127.0.0.1:6000".parse().unwrap(),
            auth: AuthMethod::None,
        }));
        assert_eq!(p.iter().filter(|e| e.service == Service::Echo).count(), 2);
    }

    #[test]
    fn only_and_ports() {
        let p = plan(
            &["echo".into(), "time".into()],
            &["all=0".into(), "time=9037".into()],
            lo(),
            TlsMode::Off,
        )
        .unwrap();
        assert_eq!(p.len(), 4);
        assert!(p
            .iter()
            .filter(|e| e.service == Service::Echo)
            .all(|e| e.addr.port() == 0));
        assert!(p
            .iter()
            .filter(|e| e.service == Service::Time)
            .all(|e| e.addr.port() == 9037));
    }

    #[test]
    fn errors() {
        assert_eq!(
            plan(&["nope".into()], &[], lo(), TlsMode::Off),
            Err(PlanError::UnknownService("nope".into()))
        );
        assert!(matches!(
            plan(&[], &["chat.udp=1".into()], lo(), TlsMode::Off),
            Err(PlanError::UnknownEndpoint(..))
        ));
        let clash = plan(&[], &["chat=7000".into()], lo(), TlsMode::Also).unwrap_err();
        assert_eq!(
            clash.to_string(),
            "chat.tcp and chat.tls would both listen on port 7000; set one apart with --port chat.tls=N"
        );
        assert!(matches!(
            plan(
                &[],
                &["greet=6001".into(), "echo=6001".into()],
                lo(),
                TlsMode::Off
            ),
            Err(PlanError::PortClash(..))
        ));
        assert!(matches!(
            plan(&[], &["greet".into()], lo(), TlsMode::Off),
            Err(PlanError::BadPort(_))
        ));
        assert!(matches!(
            plan(&[], &["greet=x".into()], lo(), TlsMode::Off),
            Err(PlanError::BadPort(_))
        ));
        assert!(matches!(
            plan(&[], &["greet=70000".into()], lo(), TlsMode::Off),
            Err(PlanError::BadPort(_))
        ));
        assert!(matches!(
            plan(&[], &["zz=1".into()], lo(), TlsMode::Off),
            Err(PlanError::UnknownService(_))
        ));
    }

    #[test]
    fn tls_modes() {
        let has = |p: &[Endpoint], svc: &str, proto: Proto| {
            p.iter()
                .any(|e| e.service.name() == svc && e.proto == proto)
        };
        let off = plan(&[], &[], lo(), TlsMode::Off).unwrap();
        assert!(has(&off, "chat", Proto::Tcp) && !has(&off, "chat", Proto::Tls));
        assert!(has(&off, "reader", Proto::Http) && !has(&off, "reader", Proto::Https));
        let also = plan(&[], &[], lo(), TlsMode::Also).unwrap();
        assert!(has(&also, "chat", Proto::Tcp) && has(&also, "chat", Proto::Tls));
        assert!(also
            .iter()
            .any(|e| e.proto == Proto::Tls && e.addr.port() == 6697));
        assert!(has(&also, "reader", Proto::Https));
        let only = plan(&[], &[], lo(), TlsMode::Only).unwrap();
        assert!(!has(&only, "chat", Proto::Tcp) && has(&only, "chat", Proto::Tls));
        assert!(!has(&only, "reader", Proto::Http) && has(&only, "reader", Proto::Https));
        assert!(has(&off, "chat", Proto::Ws) && !has(&off, "chat", Proto::Wss));
        assert!(has(&also, "chat", Proto::Ws) && has(&also, "chat", Proto::Wss));
        assert!(!has(&only, "chat", Proto::Ws) && has(&only, "chat", Proto::Wss));
        // The classic reader protocol has no TLS form; it stays.
        assert!(has(&only, "reader", Proto::Tcp));
        let one = plan(&[], &["chat.tls=7001".into()], lo(), TlsMode::Also).unwrap();
        assert!(one
            .iter()
            .any(|e| e.proto == Proto::Tls && e.addr.port() == 7001));
        assert!(one
            .iter()
            .any(|e| e.service == Service::Chat && e.proto == Proto::Tcp && e.addr.port() == 6667));
    }
}
