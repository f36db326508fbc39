//! Connecting to any sockit TCP service: TCP connect, then TLS when asked, trusting the
//! server as the caller says (pinned fingerprint, known hosts, or system roots).

use std::net::SocketAddr;

use tokio::net::TcpStream;

use crate::stream::BoxedStream;
use crate::tls::{self, Fingerprint, Trust, TrustError};

/// Why [`dial`] failed.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    /// Could not connect.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The server address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The server's certificate was not trusted.
    #[error(transparent)]
    Trust(TrustError),
    /// The server answered a TLS ClientHello in plain text.
    #[error("{0} answered in plain text: that port does not speak TLS (drop --tls, or use the server's TLS port)")]
    NotTls(String),
    /// Another TLS failure.
    #[error("TLS with {addr} failed: {message}")]
    Tls {
        /// The server address.
        addr: String,
        /// The cause.
        message: String,
    },
}

/// A connected stream, plain TCP or TLS, as [`dial`] returns it.
pub struct Dialed {
    /// The stream.
    pub stream: BoxedStream,
    /// The server's address.
    pub peer: SocketAddr,
    /// The TLS channel binding (`None` over plain TCP).
    pub binding: Option<tls::Binding>,
    /// The host and fingerprint recorded in the known-hosts file on first use, if that
    /// happened during this connection.
    pub recorded: Option<(String, Fingerprint)>,
}

impl std::fmt::Debug for Dialed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialed")
            .field("peer", &self.peer)
            .field("tls", &self.binding.is_some())
            .field("recorded", &self.recorded)
            .finish()
    }
}

/// Connects to `addr` (`host:port`) over TCP, then speaks TLS when `tls` is given,
/// trusting the server as it says. Used by every sockit client (framed, IRC, HTTP).
///
/// # Errors
/// Connection, trust or TLS errors; a server that answers the ClientHello in plain text
/// gives [`DialError::NotTls`].
pub async fn dial(addr: &str, tls: Option<&Trust>) -> Result<Dialed, DialError> {
    let connect_err = |source| DialError::Connect {
        addr: addr.to_owned(),
        source,
    };
    let stream = TcpStream::connect(addr).await.map_err(connect_err)?;
    let _ = stream.set_nodelay(true);
    let peer = stream.peer_addr().map_err(connect_err)?;
    let Some(trust) = tls else {
        return Ok(Dialed {
            stream: Box::new(stream),
            peer,
            binding: None,
            recorded: None,
        });
    };
    let tls_err = |message: String| DialError::Tls {
        addr: addr.to_owned(),
        message,
    };
    let (connector, report) = tls::connector(trust.clone()).map_err(|e| tls_err(e.to_string()))?;
    let name = tls::server_name(host_of(addr)).map_err(|e| tls_err(e.to_string()))?;
    let tls_stream = match connector.connect(name, stream).await {
        Ok(s) => s,
        Err(e) => {
            let refused = report.lock().ok().and_then(|mut r| r.error.take());
            if let Some(trust_err) = refused {
                return Err(DialError::Trust(trust_err));
            }
            let text = e.to_string();
            if text.contains("InvalidContentType") || text.contains("corrupt message") {
                return Err(DialError::NotTls(addr.to_owned()));
            }
            return Err(tls_err(text));
        }
    };
    let binding = tls::binding_of_client(&tls_stream).map_err(|e| tls_err(e.to_string()))?;
    let recorded = report.lock().ok().and_then(|mut r| r.recorded.take());
    Ok(Dialed {
        stream: Box::new(tls_stream),
        peer,
        binding: Some(binding),
        recorded,
    })
}

/// The host part of `host:port` (brackets of an IPv6 literal removed).
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

#[cfg(test)]
mod tests {
    use super::host_of;

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:7788"), "127.0.0.1");
        assert_eq!(host_of("[::1]:7788"), "::1");
        assert_eq!(host_of("example.org:1"), "example.org");
    }
}
