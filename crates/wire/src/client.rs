//! Connecting to a framed server: TCP connect, optional TLS, hello, optional mutual auth,
//! requests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;

use crate::auth::Key;
use crate::codec::FrameError;
use crate::connection::{BoxedStream, Connection, Incoming};
use crate::handshake::{self, HandshakeError};
use crate::header::{Bye, Done, ErrorCode, Header, Hello, Message, MessageError, Ping, Pong};
use sockit_runtime::dial::DialError;
use sockit_runtime::tls::{Fingerprint, Trust};

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Connecting failed: TCP, TLS or trust ([`DialError`]).
    #[error(transparent)]
    Dial(#[from] DialError),
    /// The handshake failed.
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
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
    /// A request could not be encoded as its typed message.
    #[error(transparent)]
    Encode(MessageError),
}

/// A reply that does not match its typed message is a bad response; a request that
/// cannot be encoded is [`ClientError::Encode`].
impl From<MessageError> for ClientError {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::Decode { .. } => Self::BadResponse(e.to_string()),
            MessageError::Encode { .. } => Self::Encode(e),
        }
    }
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

pub use sockit_runtime::dial::Dialed;

/// Connects to `addr` (`host:port`) over TCP, then speaks TLS when `tls` is given
/// ([`sockit_runtime::dial::dial`], with its errors as [`ClientError`]s).
///
/// # Errors
/// Connection, trust or TLS errors.
pub async fn dial(addr: &str, tls: Option<&Trust>) -> Result<Dialed, ClientError> {
    Ok(sockit_runtime::dial::dial(addr, tls).await?)
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

    /// Sends the typed request `req` and reads its reply as `R` (an error response
    /// becomes [`ClientError::Remote`], a reply that is not an `R`
    /// [`ClientError::BadResponse`]). A body that follows the reply is left unread on
    /// [`Self::connection`].
    ///
    /// # Errors
    /// I/O, framing, a remote error or a malformed reply.
    pub async fn call<Q: Message, R: Message>(&mut self, req: &Q) -> Result<R, ClientError> {
        let reply = self.request(&Header::encode(req)?).await?;
        Ok(reply.decode()?)
    }

    /// Sends `ping` and waits for its `pong`.
    ///
    /// # Errors
    /// I/O, framing, a remote error or a reply that is not `pong`.
    pub async fn ping(&mut self) -> Result<(), ClientError> {
        self.call::<Ping, Pong>(&Ping {}).await.map(|_| ())
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
        self.call::<Bye, Done>(&Bye {}).await.map(|_| ())
    }
}
