//! The services `sockit serve` runs: names, protocols, default ports.

use std::fmt;

/// A transport a service endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Proto {
    /// A TCP listener.
    Tcp,
    /// A UDP socket.
    Udp,
}

impl Proto {
    /// The key used in the table and the addr file.
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
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
        name: "tftp",
        endpoints: &[(Proto::Udp, sockit_tftp::DEFAULT_PORT)],
    },
    ServiceSpec {
        name: "chat",
        endpoints: &[(Proto::Tcp, sockit_chat::ports::IRC)],
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
