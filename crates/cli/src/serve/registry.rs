//! The services `sockit serve` runs, as one typed list: names, endpoints, default ports,
//! how each endpoint authenticates and whether it answers unauthenticated UDP.
//!
//! `--only`, `--port`, `--public`, the serve table, the addr file, `serve --help` and the
//! auth policy all derive from [`Service::ALL`]; adding a service touches this file plus
//! its crate (and the match in `start.rs` that builds it).

use std::fmt;

/// A transport a service endpoint uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
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
    /// A TCP listener serving the service over WebSocket (an HTTP upgrade).
    Ws,
    /// A TCP listener serving the service over WebSocket inside TLS (only with `--tls`).
    Wss,
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
            Proto::Ws => "ws",
            Proto::Wss => "wss",
        }
    }

    /// Parses the addr-file key (`tcp`, `udp`, `http`, `tls`, `https`, `ws`, `wss`).
    pub fn parse(s: &str) -> Option<Proto> {
        [
            Proto::Tcp,
            Proto::Udp,
            Proto::Http,
            Proto::Tls,
            Proto::Https,
            Proto::Ws,
            Proto::Wss,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// Whether it exists only when the server runs with `--tls`.
    pub fn is_tls(self) -> bool {
        matches!(self, Proto::Tls | Proto::Https | Proto::Wss)
    }

    /// The plain endpoint this TLS endpoint stands in for (`--tls-only` drops it).
    pub fn plain_twin(self) -> Option<Proto> {
        match self {
            Proto::Tls => Some(Proto::Tcp),
            Proto::Https => Some(Proto::Http),
            Proto::Wss => Some(Proto::Ws),
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

/// How an endpoint can tell who its client is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// It cannot: anyone who reaches the port is served (`--public` to expose it beyond
    /// loopback).
    None,
    /// The framed protocol's mutual HMAC-SHA256 with the shared `--key`.
    Key,
    /// Server accounts (`sockit account add`): HTTP Basic, kosync headers and the web
    /// login for the reader; SASL PLAIN or `PASS account:password` for IRC.
    Accounts,
}

/// One endpoint of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndpointSpec {
    /// Its transport.
    pub proto: Proto,
    /// Its default port.
    pub port: u16,
    /// How it authenticates.
    pub auth: AuthMethod,
}

/// An [`EndpointSpec`] literal (a macro, not a `const fn`, so the tables stay `'static`).
macro_rules! ep {
    ($proto:expr, $port:expr, $auth:expr) => {
        EndpointSpec {
            proto: $proto,
            port: $port,
            auth: $auth,
        }
    };
}

/// One service of `sockit serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Service {
    /// The course's greeting dialogue.
    Greet,
    /// RFC 862 echo.
    Echo,
    /// RFC 867 daytime (and the course's strftime server over UDP).
    Daytime,
    /// RFC 868 time.
    Time,
    /// NTPv4 (RFC 5905), with NTS-KE (RFC 8915) over TLS.
    Ntp,
    /// The framed file and exec protocol.
    Framed,
    /// The book reader: the course protocol, HTTP (web UI, OPDS, kosync), HTTPS.
    Reader,
    /// TFTP.
    Tftp,
    /// The IRC server.
    Chat,
    /// The UDP chat room.
    UdpChat,
    /// LAN discovery.
    Discovery,
}

use AuthMethod as A;

impl Service {
    /// Every service, in table order.
    pub const ALL: [Service; 11] = [
        Service::Greet,
        Service::Echo,
        Service::Daytime,
        Service::Time,
        Service::Ntp,
        Service::Framed,
        Service::Reader,
        Service::Tftp,
        Service::Chat,
        Service::UdpChat,
        Service::Discovery,
    ];

    /// The name used in the table, `--only`, `--port`, `--public` and the addr file.
    pub fn name(self) -> &'static str {
        match self {
            Service::Greet => "greet",
            Service::Echo => "echo",
            Service::Daytime => "daytime",
            Service::Time => "time",
            Service::Ntp => "ntp",
            Service::Framed => "framed",
            Service::Reader => "reader",
            Service::Tftp => "tftp",
            Service::Chat => "chat",
            Service::UdpChat => "udp-chat",
            Service::Discovery => "discovery",
        }
    }

    /// Its endpoints with their default ports and how each authenticates.
    pub fn endpoints(self) -> &'static [EndpointSpec] {
        use Proto::*;
        match self {
            Service::Greet => &[ep!(Tcp, sockit_basic::ports::GREET, A::None)],
            Service::Echo => &[
                ep!(Tcp, sockit_basic::ports::ECHO, A::None),
                ep!(Udp, sockit_basic::ports::ECHO, A::None),
            ],
            Service::Daytime => &[
                ep!(Tcp, sockit_basic::ports::DAYTIME, A::None),
                ep!(Udp, sockit_basic::ports::DAYTIME, A::None),
            ],
            Service::Time => &[
                ep!(Tcp, sockit_basic::ports::TIME, A::None),
                ep!(Udp, sockit_basic::ports::TIME, A::None),
            ],
            Service::Ntp => &[
                ep!(Udp, sockit_ntp::NTP_PORT, A::None),
                ep!(Tls, sockit_ntp::NTS_KE_PORT, A::None),
            ],
            Service::Framed => &[ep!(Tcp, sockit_wire::FRAMED_PORT, A::Key)],
            Service::Reader => &[
                ep!(Tcp, sockit_reader::classic::PORT, A::None),
                ep!(Http, sockit_reader::http::PORT, A::Accounts),
                ep!(Https, sockit_reader::http::tls::PORT, A::Accounts),
            ],
            Service::Tftp => &[ep!(Udp, sockit_tftp::DEFAULT_PORT, A::None)],
            Service::Chat => &[
                ep!(Tcp, sockit_chat::ports::IRC, A::Accounts),
                ep!(Tls, sockit_chat::ports::IRC_TLS, A::Accounts),
                ep!(Ws, sockit_chat::ports::IRC_WS, A::Accounts),
                ep!(Wss, sockit_chat::ports::IRC_WSS, A::Accounts),
            ],
            Service::UdpChat => &[ep!(Udp, sockit_chat::ports::UDP_CHAT, A::None)],
            Service::Discovery => &[ep!(Udp, sockit_chat::ports::DISCOVERY, A::None)],
        }
    }

    /// One line saying what it is (help texts and docs).
    pub fn summary(self) -> &'static str {
        match self {
            Service::Greet => "the course's welcome / name / Hello dialogue",
            Service::Echo => "RFC 862 echo",
            Service::Daytime => "RFC 867 daytime; UDP formats a strftime pattern",
            Service::Time => "RFC 868 time (rdate)",
            Service::Ntp => {
                "NTPv4 time clocks can sync from (chrony, ntpdig); NTS-KE on tls with --tls"
            }
            Service::Framed => {
                "files (ls/stat/get/put/rm/mkdir) and exec, HMAC-authenticated with --key"
            }
            Service::Reader => "books: course protocol (tcp), web UI, OPDS, kosync (http/https)",
            Service::Tftp => "RFC 1350 TFTP with options",
            Service::Chat => "IRC (tcp, ws; tls and wss with --tls)",
            Service::UdpChat => "the course's UDP chat room",
            Service::Discovery => "LAN discovery answers",
        }
    }

    /// The endpoint spec for `proto`, if the service has one.
    pub fn endpoint(self, proto: Proto) -> Option<&'static EndpointSpec> {
        self.endpoints().iter().find(|e| e.proto == proto)
    }

    /// Whether some endpoint can authenticate its clients.
    pub fn can_authenticate(self) -> bool {
        self.endpoints().iter().any(|e| e.auth != AuthMethod::None)
    }

    /// Whether it answers UDP datagrams from sources that never proved anything.
    pub fn answers_unauthenticated_udp(self) -> bool {
        self.endpoints()
            .iter()
            .any(|e| e.proto == Proto::Udp && e.auth == AuthMethod::None)
    }

    /// Looks a service up by name.
    pub fn find(name: &str) -> Option<Service> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Every service name, comma-separated (for error messages and help).
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|s| s.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for s in Service::ALL {
            assert_eq!(Service::find(s.name()), Some(s));
        }
        let mut names: Vec<_> = Service::ALL.iter().map(|s| s.name()).collect();
        names.dedup();
        assert_eq!(names.len(), Service::ALL.len());
    }

    #[test]
    fn auth_capabilities() {
        assert!(Service::Framed.can_authenticate());
        assert!(Service::Chat.can_authenticate());
        assert!(!Service::Greet.can_authenticate());
        assert!(Service::Tftp.answers_unauthenticated_udp());
        assert!(!Service::Framed.answers_unauthenticated_udp());
        assert_eq!(
            Service::Reader.endpoint(Proto::Tcp).map(|e| e.auth),
            Some(AuthMethod::None)
        );
    }
}
