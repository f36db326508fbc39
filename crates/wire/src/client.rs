//! Connecting to a framed server: TCP connect, hello, optional mutual auth, requests.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::net::TcpStream;

use crate::auth::Key;
use crate::codec::FrameError;
use crate::connection::{BoxedStream, Connection, Incoming};
use crate::handshake::{self, HandshakeError};
use crate::header::{ErrorCode, Header, Hello};

/// Client failures.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not connect.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// The server address.
        addr: String,
        /// The cause.
        source: std::io::Error,
    },
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
}

/// A connected, authenticated framed client.
pub struct Client {
    conn: Connection<BoxedStream>,
    hello: Hello,
    peer: SocketAddr,
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
    /// Connects to `addr` (host:port, resolved), reads hello and authenticates with `key`
    /// when the server requires it; the whole step is bounded by `timeout`.
    ///
    /// # Errors
    /// Connection, handshake or timeout errors.
    pub async fn connect(
        addr: &str,
        key: Option<&Key>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let fut = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|source| ClientError::Connect {
                    addr: addr.to_owned(),
                    source,
                })?;
            let _ = stream.set_nodelay(true);
            let peer = stream.peer_addr().map_err(|source| ClientError::Connect {
                addr: addr.to_owned(),
                source,
            })?;
            Self::handshake(Box::new(stream), peer, key).await
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| ClientError::Timeout("connecting and authenticating", timeout))?
    }

    /// Runs the handshake over an already-connected stream.
    ///
    /// # Errors
    /// Handshake errors.
    pub async fn handshake(
        stream: BoxedStream,
        peer: SocketAddr,
        key: Option<&Key>,
    ) -> Result<Self, ClientError> {
        let mut conn = Connection::new(stream);
        let hello = handshake::client_handshake(&mut conn, key).await?;
        Ok(Self { conn, hello, peer })
    }

    /// The server's hello.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// The server's address.
    pub fn peer(&self) -> SocketAddr {
        self.peer
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
