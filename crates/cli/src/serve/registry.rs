//! The services `sockit serve` runs: names, protocols, default ports.

use std::fmt;

/// A transport a service endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// A TCP listener.
    Tcp,
    /// A UDP socket.
    Udp,
    /// A TCP listener serving HTTP (shown as `http` in the table and the addr file).
    Http,
    /// A TCP listener speaking the service's protocol inside TLS (only with `--tls`).
    Tls,
    /// A TCP listener serving HTTPS (only with `--tls`).
    Https,
}

impl Proto {
    /// The key used in the table and the addr file.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Http => "http",
            Proto::Tls => "tls",
            Proto::Https => "https",
        }
    }

    /// Parses the addr-file key (`tcp`, `udp`, `http`, `tls`, `https`).
    pub fn parse(s: &str) -> Option<Proto> {
        [
            Proto::Tcp,
            Proto::Udp,
            Proto::Http,
            Proto::Tls,
            Proto::Https,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// Whether it exists only when the server runs with `--tls`.
    pub fn is_tls(self) -> bool {
        matches!(self, Proto::Tls | Proto::Https)
    }

    /// The plain endpoint this TLS endpoint stands in for (`--tls-only` drops it).
    pub fn plain_twin(self) -> Option<Proto> {
        match self {
            Proto::Tls => Some(Proto::Tcp),
            Proto::Https => Some(Proto::Http),
            _ => None,
        }
    }

    /// Whether it is a TCP port (everything but UDP).
    pub fn is_tcp(self) -> bool {
        self != Proto::Udp
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One service of `sockit serve`.
#[derive(Debug)]
pub struct ServiceSpec {
    /// The name used in the table, `--only`, `--port` and the addr file.
    pub name: &'static str,
    /// Its endpoints and their default ports.
    pub endpoints: &'static [(Proto, u16)],
}

/// Every service, in table order.
pub const SERVICES: &[ServiceSpec] = &[
    ServiceSpec {
        name: "greet",
        endpoints: &[(Proto::Tcp, sockit_basic::ports::GREET)],
    },
    ServiceSpec {
        name: "echo",
        endpoints: &[
            (Proto::Tcp, sockit_basic::ports::ECHO),
            (Proto::Udp, sockit_basic::ports::ECHO),
        ],
    },
    ServiceSpec {
        name: "daytime",
        endpoints: &[
            (Proto::Tcp, sockit_basic::ports::DAYTIME),
            (Proto::Udp, sockit_basic::ports::DAYTIME),
        ],
    },
    ServiceSpec {
        name: "time",
        endpoints: &[
            (Proto::Tcp, sockit_basic::ports::TIME),
            (Proto::Udp, sockit_basic::ports::TIME),
        ],
    },
    ServiceSpec {
        name: "framed",
        endpoints: &[(Proto::Tcp, sockit_wire::FRAMED_PORT)],
    },
    ServiceSpec {
        name: "reader",
        endpoints: &[
            (Proto::Tcp, sockit_reader::classic::PORT),
            (Proto::Http, sockit_reader::http::PORT),
            (Proto::Https, sockit_reader::http::tls::PORT),
        ],
    },
    ServiceSpec {
        name: "tftp",
        endpoints: &[(Proto::Udp, sockit_tftp::DEFAULT_PORT)],
    },
    ServiceSpec {
        name: "chat",
        endpoints: &[
            (Proto::Tcp, sockit_chat::ports::IRC),
            (Proto::Tls, sockit_chat::ports::IRC_TLS),
        ],
    },
    ServiceSpec {
        name: "udp-chat",
        endpoints: &[(Proto::Udp, sockit_chat::ports::UDP_CHAT)],
    },
    ServiceSpec {
        name: "discovery",
        endpoints: &[(Proto::Udp, sockit_chat::ports::DISCOVERY)],
    },
];

/// Looks a service up by name.
pub fn find(name: &str) -> Option<&'static ServiceSpec> {
    SERVICES.iter().find(|s| s.name == name)
}

/// Every service name, comma-separated (for error messages).
pub fn names() -> String {
    SERVICES
        .iter()
        .map(|s| s.name)
        .collect::<Vec<_>>()
        .join(", ")
}
