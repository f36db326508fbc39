//! Connecting to a framed server: TCP connect, optional TLS, hello, optional mutual auth,
//! requests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::auth::Key;
use crate::codec::FrameError;
use crate::connection::{BoxedStream, Connection, Incoming};
use crate::handshake::{self, HandshakeError};
use crate::header::{ErrorCode, Header, Hello};
use crate::tls::{self, Fingerprint, Trust, TrustError};

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {addr}")]
    Connect {
        /// The server address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
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
    /// The connection failed mid-request.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// The server closed the connection instead of answering.
    #[error("server closed the connection")]
    Closed,
    /// The server answered with something that is not a valid response.
    #[error("invalid response from server: {0}")]
    BadResponse(String),
    /// The server answered with an error.
    #[error("{message} ({code})")]
    Remote {
        /// The error code.
        code: ErrorCode,
        /// The server's message.
        message: String,
    },
    /// Timed out.
    #[error("{0} timed out after {1:?}")]
    Timeout(&'static str, Duration),
}

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// The shared key, when the server requires authentication.
    pub key: Option<Key>,
    /// Bound on connecting plus handshakes.
    pub timeout: Duration,
    /// `Some`: speak TLS and trust the server as given.
    pub tls: Option<Trust>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            key: None,
            timeout: Duration::from_secs(10),
            tls: None,
        }
    }
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
/// gives [`ClientError::NotTls`].
pub async fn dial(addr: &str, tls: Option<&Trust>) -> Result<Dialed, ClientError> {
    let connect_err = |source| ClientError::Connect {
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
    let tls_err = |message: String| ClientError::Tls {
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
                return Err(ClientError::Trust(trust_err));
            }
            let text = e.to_string();
            if text.contains("InvalidContentType") || text.contains("corrupt message") {
                return Err(ClientError::NotTls(addr.to_owned()));
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

/// A connected, authenticated framed client.
pub struct Client {
    conn: Connection<BoxedStream>,
    hello: Hello,
    peer: SocketAddr,
    recorded: Option<(String, Fingerprint)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.peer)
            .field("hello", &self.hello)
            .finish()
    }
}

/// The host part of `host:port` / `[v6]:port`.
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.trim_start_matches('[').trim_end_matches(']')
}

impl Client {
    /// Connects over plain TCP to `addr` (host:port), reads hello and authenticates with
    /// `key` when the server requires it; the whole step is bounded by `timeout`.
    ///
    /// # Errors
    /// Connection, handshake or timeout errors.
    pub async fn connect(
        addr: &str,
        key: Option<&Key>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let opts = ConnectOptions {
            key: key.cloned(),
            timeout,
            tls: None,
        };
        Self::connect_with(addr, &opts).await
    }

    /// Connects as `opts` say (TLS when `opts.tls` is set).
    ///
    /// # Errors
    /// Connection, trust, TLS, handshake or timeout errors.
    pub async fn connect_with(addr: &str, opts: &ConnectOptions) -> Result<Self, ClientError> {
        let fut = async {
            let dialed = dial(addr, opts.tls.as_ref()).await?;
            let mut client = Self::handshake(
                dialed.stream,
                dialed.peer,
                opts.key.as_ref(),
                dialed.binding.as_ref().map_or(&[][..], |b| &b[..]),
            )
            .await?;
            client.recorded = dialed.recorded;
            Ok(client)
        };
        tokio::time::timeout(opts.timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout("connecting and authenticating", opts.timeout))?
    }

    /// Runs the handshake over an already-connected stream; `binding` is the TLS channel
    /// binding (empty over plain TCP).
    ///
    /// # Errors
    /// Handshake errors.
    pub async fn handshake(
        stream: BoxedStream,
        peer: SocketAddr,
        key: Option<&Key>,
        binding: &[u8],
    ) -> Result<Self, ClientError> {
        let mut conn = Connection::new(stream);
        let hello = handshake::client_handshake(&mut conn, key, binding)
            .await
            .map_err(|e| match e {
                HandshakeError::NotFramed { sent, .. } => HandshakeError::NotFramed {
                    peer: format!("{peer} "),
                    sent,
                },
                other => other,
            })?;
        Ok(Self {
            conn,
            hello,
            peer,
            recorded: None,
        })
    }

    /// The server's hello.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// When this connection recorded a new host in the known-hosts file (trust on first
    /// use): the `host:port` and the fingerprint.
    pub fn recorded_host(&self) -> Option<&(String, Fingerprint)> {
        self.recorded.as_ref()
    }

    /// The underlying connection, for streaming bodies.
    pub fn connection(&mut self) -> &mut Connection<BoxedStream> {
        &mut self.conn
    }

    /// Sends a request and reads the response header (its body, if any, is left unread on
    /// [`Self::connection`]). An error response becomes [`ClientError::Remote`].
    ///
    /// # Errors
    /// I/O, framing, or a remote error.
    pub async fn request(&mut self, req: &Header) -> Result<Header, ClientError> {
        self.conn.send(req).await?;
        self.read_response().await
    }

    /// Sends a request with an in-memory body and reads the response header.
    ///
    /// # Errors
    /// I/O, framing, or a remote error.
    pub async fn request_with_body(
        &mut self,
        req: &Header,
        body: Bytes,
    ) -> Result<Header, ClientError> {
        self.conn.send_with_body(req, body).await?;
        self.read_response().await
    }

    /// Reads the next response header; an error response becomes [`ClientError::Remote`].
    ///
    /// # Errors
    /// I/O, framing, or a remote error.
    pub async fn read_response(&mut self) -> Result<Header, ClientError> {
        match self.conn.read_header().await? {
            None => Err(ClientError::Closed),
            Some(Incoming::Invalid(e)) => Err(ClientError::BadResponse(e.to_string())),
            Some(Incoming::Header(h)) => match h.as_error() {
                Some((code, message)) => Err(ClientError::Remote { code, message }),
                None => Ok(h),
            },
        }
    }

    /// Sends `bye` and waits for the server to acknowledge.
    ///
    /// # Errors
    /// I/O or framing errors.
    pub async fn bye(mut self) -> Result<(), ClientError> {
        self.request(&Header::request("bye")).await.map(|_| ())
    }
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
