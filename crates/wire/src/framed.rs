//! The framed service (tcp 7788): hello, optional mutual auth, and a dispatch table of
//! commands. `ping`, `bye`, `hello` and `auth` are built in; later crates register more
//! (`ls`, `get`, `put`, `exec`, ...) with [`CommandTable::register`].

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tracing::debug;

use crate::auth::{self, Key};
use crate::codec::{FrameCodec, FrameError};
use crate::connection::{BoxedStream, Connection, Incoming};
use crate::handshake::{self, AuthOutcome};
use crate::header::{AuthMode, Done, ErrorCode, Header, Hello, MessageError, Pong};
use sockit_runtime::guarded::RequestClock;
use sockit_runtime::server::{ConnInfo, Refusal, ServiceStream, TcpService};
use sockit_runtime::throttle::{LoginThrottle, ThrottleConfig};
use sockit_runtime::tls::{Accepted, Binding};

/// How long a TLS port waits for a ClientHello before it decides the client speaks plain
/// text and tells it so.
const PLAIN_CLIENT_GRACE: Duration = Duration::from_secs(1);

/// The connection type framed commands work with.
pub type ServerConnection = Connection<BoxedStream>;

/// Per-connection state visible to commands.
#[derive(Debug, Clone)]
pub struct Session {
    /// The client's address.
    pub peer: SocketAddr,
    /// Whether the client proved it holds the key (always false without a key).
    pub authenticated: bool,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// The connection's deadlines: a command that reads further frames itself (the
    /// `block` frames of a compressed upload) reports them here.
    pub clock: RequestClock,
}

/// How a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Answer the client with this error and keep the connection.
    #[error("{0}: {1}")]
    Reply(ErrorCode, String),
    /// The connection is broken or out of sync; close it.
    #[error(transparent)]
    Fatal(#[from] FrameError),
}

impl CommandError {
    /// A reply error.
    pub fn reply(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Reply(code, message.into())
    }
}

/// A request that does not match its typed message is the client's mistake
/// (`bad_request`, saying which key is wrong); a reply that cannot be encoded is the
/// server's (`internal`).
impl From<MessageError> for CommandError {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::Decode { .. } => Self::Reply(ErrorCode::BadRequest, e.to_string()),
            MessageError::Encode { .. } => Self::Reply(ErrorCode::Internal, e.to_string()),
        }
    }
}

impl From<io::Error> for CommandError {
    fn from(e: io::Error) -> Self {
        Self::Fatal(FrameError::Io(e))
    }
}

/// One framed command.
#[async_trait]
pub trait Command: Send + Sync + 'static {
    /// Runs the command for request `req`, whose body (if any) is unread on `conn`. The
    /// command sends its own success response; a [`CommandError::Reply`] is sent for it.
    ///
    /// # Errors
    /// See [`CommandError`].
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError>;
}

/// The dispatch table: command name → handler.
#[derive(Clone, Default)]
pub struct CommandTable {
    map: BTreeMap<String, Arc<dyn Command>>,
}

impl std::fmt::Debug for CommandTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.map.keys()).finish()
    }
}

/// Commands every framed server has.
pub const BUILTIN_COMMANDS: [&str; 4] = ["hello", "auth", "ping", "bye"];

impl CommandTable {
    /// An empty table (the built-ins are always there).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `cmd` under `name`, replacing an earlier one.
    pub fn register(&mut self, name: &str, cmd: Arc<dyn Command>) {
        self.map.insert(name.to_owned(), cmd);
    }

    /// Every command name the server dispatches, built-ins first.
    pub fn names(&self) -> Vec<String> {
        BUILTIN_COMMANDS
            .iter()
            .map(|s| s.to_string())
            .chain(self.map.keys().cloned())
            .collect()
    }

    fn get(&self, name: &str) -> Option<Arc<dyn Command>> {
        self.map.get(name).cloned()
    }
}

/// Settings of the framed service.
#[derive(Clone)]
pub struct FramedConfig {
    /// The shared key; `Some` turns on hmac-sha256 authentication.
    pub key: Option<Key>,
    /// Pause before answering a wrong mac (slows down guessing).
    pub auth_failure_delay: Duration,
    /// Header cap.
    pub max_header: usize,
    /// `Some`: the port speaks TLS only (plain-text clients get a clear error).
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Failed authentications back off per source address (shared by every connection).
    pub throttle: Arc<LoginThrottle>,
}

impl std::fmt::Debug for FramedConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FramedConfig")
            .field("key", &self.key.as_ref().map(|_| "<key>"))
            .field("auth_failure_delay", &self.auth_failure_delay)
            .field("max_header", &self.max_header)
            .field("tls", &self.tls.is_some())
            .field("throttle", self.throttle.config())
            .finish()
    }
}

impl Default for FramedConfig {
    fn default() -> Self {
        Self {
            key: None,
            auth_failure_delay: Duration::from_millis(500),
            max_header: crate::MAX_HEADER_LEN,
            tls: None,
            throttle: Arc::new(LoginThrottle::new(ThrottleConfig::default())),
        }
    }
}

/// The framed service.
#[derive(Debug, Clone)]
pub struct FramedService {
    table: CommandTable,
    config: FramedConfig,
}

impl FramedService {
    /// A service with the given commands and settings.
    pub fn new(table: CommandTable, config: FramedConfig) -> Self {
        Self { table, config }
    }

    /// How long `peer` must still wait after too many failed authentications.
    fn throttled(&self, peer: SocketAddr) -> Option<Duration> {
        self.config
            .throttle
            .check(peer.ip(), None, std::time::Instant::now())
            .err()
    }

    /// Serves one connection over any stream (the TCP service calls this after TLS, if
    /// any; tests can call it directly). `binding` is the TLS channel binding that the
    /// authentication MACs must cover (`None` over plain TCP). Each request header is
    /// reported on `clock`, and a request body counts as progress while it streams.
    ///
    /// # Errors
    /// I/O errors on the connection.
    pub async fn serve_connection(
        &self,
        stream: BoxedStream,
        peer: SocketAddr,
        shutdown: CancellationToken,
        handshake_timeout: Duration,
        binding: Option<Binding>,
        clock: RequestClock,
    ) -> io::Result<String> {
        let binding: &[u8] = binding.as_ref().map_or(&[], |b| &b[..]);
        let mut conn =
            Connection::with_codec(stream, FrameCodec::with_max_header(self.config.max_header));
        let nonce = auth::fresh_nonce().map_err(io::Error::other)?;
        let mode = if self.config.key.is_some() {
            AuthMode::HmacSha256
        } else {
            AuthMode::None
        };
        let hello = Hello::new(mode, &nonce, &self.table.names());
        let hello_frame = typed(Header::encode(&hello))?;
        let hello_reply = typed(Header::reply(&hello))?;
        // Course-style clients on a plain, key-less port send requests without reading the
        // hello and may close without reading anything; an unread hello makes their kernel
        // reset the connection and drop the tail of what they sent (a half-delivered
        // upload). So there the hello is sent only when asked for (`{"cmd":"hello"}`).
        if self.config.key.is_some() || !binding.is_empty() {
            send_or_io(&mut conn, &hello_frame).await?;
        }
        let mut session = Session {
            peer,
            authenticated: false,
            shutdown,
            clock: clock.clone(),
        };
        let auth_deadline = tokio::time::Instant::now() + handshake_timeout;
        loop {
            // Between requests, received bytes are the next request's, not a body's.
            clock.set_streaming(false);
            let need_auth = self.config.key.is_some() && !session.authenticated;
            let next = tokio::select! {
                biased;
                _ = session.shutdown.cancelled() => return Ok("server shutting down".into()),
                r = conn.read_header() => r,
                _ = tokio::time::sleep_until(auth_deadline), if need_auth => {
                    let _ = conn.send(&Header::error(ErrorCode::Timeout, "authentication not completed in time")).await;
                    // The client may have a request in flight: closing with it unread would
                    // reset the connection, and a reset can destroy the timeout frame.
                    linger_close(conn.into_inner()).await;
                    return Ok("handshake timeout".into());
                }
            };
            let req = match next {
                Ok(None) => return Ok("client closed".into()),
                Ok(Some(Incoming::Invalid(e))) => {
                    send_or_io(
                        &mut conn,
                        &Header::error(ErrorCode::BadRequest, e.to_string()),
                    )
                    .await?;
                    continue;
                }
                Ok(Some(Incoming::Header(h))) => {
                    clock.request_complete();
                    clock.set_streaming(conn.body_remaining() > 0);
                    h
                }
                Err(FrameError::Io(e)) if e.kind() == io::ErrorKind::TimedOut => {
                    let _ = conn
                        .send(&Header::error(ErrorCode::Timeout, e.to_string()))
                        .await;
                    return Ok(e.to_string());
                }
                Err(FrameError::Io(e)) => return Err(e),
                Err(e) => {
                    // The stream can no longer be trusted: say why, then close.
                    let _ = conn
                        .send(&Header::error(ErrorCode::BadRequest, e.to_string()))
                        .await;
                    return Ok(format!("framing error: {e}"));
                }
            };
            let Some(cmd) = req.cmd().map(str::to_owned) else {
                send_or_io(
                    &mut conn,
                    &Header::error(ErrorCode::BadRequest, "request header has no string `cmd`"),
                )
                .await?;
                continue;
            };
            debug!(%peer, cmd = %cmd, "request");
            match cmd.as_str() {
                "hello" => send_or_io(&mut conn, &hello_reply).await?,
                "auth" => match (&self.config.key, self.throttled(peer)) {
                    (None, _) => {
                        send_or_io(
                            &mut conn,
                            &Header::error(
                                ErrorCode::Unsupported,
                                "server has no key; no authentication needed",
                            ),
                        )
                        .await?
                    }
                    (Some(_), Some(wait)) => {
                        let _ = conn
                            .send(&Header::error(
                                ErrorCode::AuthFailed,
                                format!(
                                    "too many failed authentications from this address; retry in {} s",
                                    wait.as_secs().max(1)
                                ),
                            ))
                            .await;
                        return Ok("authentication refused: source is backing off".into());
                    }
                    (Some(key), None) => match handshake::check_auth(key, &nonce, &req, binding) {
                        AuthOutcome::Accepted(reply) => {
                            session.authenticated = true;
                            self.config.throttle.succeeded(peer.ip(), None);
                            send_or_io(&mut conn, &reply).await?;
                        }
                        AuthOutcome::BadRequest(msg) => {
                            send_or_io(&mut conn, &Header::error(ErrorCode::BadRequest, msg))
                                .await?
                        }
                        AuthOutcome::Failed => {
                            self.config
                                .throttle
                                .failed(peer.ip(), None, std::time::Instant::now());
                            tokio::time::sleep(self.config.auth_failure_delay).await;
                            let _ = conn
                                .send(&Header::error(
                                    ErrorCode::AuthFailed,
                                    "wrong key: authentication failed",
                                ))
                                .await;
                            return Ok("authentication failed".into());
                        }
                    },
                },
                _ if need_auth => send_or_io(&mut conn, &handshake::auth_required(&cmd)).await?,
                "ping" => send_or_io(&mut conn, &typed(Header::reply(&Pong {}))?).await?,
                "bye" => {
                    let _ = conn.send(&typed(Header::reply(&Done {}))?).await;
                    return Ok("client said bye".into());
                }
                other => match self.table.get(other) {
                    None => {
                        send_or_io(
                            &mut conn,
                            &Header::error(
                                ErrorCode::UnknownCommand,
                                format!("unknown command `{other}`"),
                            ),
                        )
                        .await?
                    }
                    Some(handler) => match handler.run(req, &mut conn, &session).await {
                        Ok(()) => {
                            clock.set_streaming(false);
                            clock.request_complete();
                        }
                        Err(CommandError::Reply(code, message)) => {
                            // Skip whatever body the command did not read, then answer.
                            if let Err(e) = conn.discard_body().await {
                                return Ok(format!("connection lost: {e}"));
                            }
                            send_or_io(&mut conn, &Header::error(code, message)).await?;
                        }
                        Err(CommandError::Fatal(e)) => return Ok(format!("`{other}` failed: {e}")),
                    },
                },
            }
        }
    }
}

pub use sockit_runtime::close::linger_close;

/// A built-in frame that failed to encode, as an I/O error of the connection.
fn typed(h: Result<Header, MessageError>) -> io::Result<Header> {
    h.map_err(io::Error::other)
}

async fn send_or_io(conn: &mut ServerConnection, header: &Header) -> io::Result<()> {
    conn.send(header).await.map_err(|e| match e {
        FrameError::Io(e) => e,
        other => io::Error::other(other.to_string()),
    })
}

#[async_trait]
impl TcpService for FramedService {
    fn name(&self) -> &'static str {
        "framed"
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        let timeout = info.limits.handshake_timeout;
        let Some(acceptor) = &self.config.tls else {
            return self
                .serve_connection(
                    Box::new(stream),
                    info.peer,
                    info.shutdown,
                    timeout,
                    None,
                    info.clock,
                )
                .await;
        };
        // TLS clients speak first (ClientHello) at once; a plain sockit client instead waits
        // for our hello. So silence for a moment, or a first byte that cannot start a TLS
        // record, means a plain-text client.
        let grace = Some(timeout.min(PLAIN_CLIENT_GRACE));
        match sockit_runtime::tls::accept_tls(acceptor, stream, timeout, grace).await {
            Accepted::Gone(why) => Ok(why),
            Accepted::Plain(stream) => {
                // Tell the plain-text client in its own framing, then close.
                let mut conn = Connection::new(stream);
                let _ = conn
                    .send(&Header::error(
                        ErrorCode::Unsupported,
                        "this port speaks TLS: connect with --tls (sockit clients) or a TLS client",
                    ))
                    .await;
                linger_close(conn.into_inner()).await;
                Ok("plain-text client on the TLS port".into())
            }
            Accepted::Tls(tls) => {
                let binding =
                    sockit_runtime::tls::binding_of_server(&tls).map_err(io::Error::other)?;
                self.serve_connection(
                    tls,
                    info.peer,
                    info.shutdown,
                    timeout,
                    Some(binding),
                    info.clock,
                )
                .await
            }
        }
    }

    async fn refuse(&self, stream: TcpStream, refusal: Refusal) {
        let mut conn = Connection::new(stream);
        let _ = conn
            .send(&Header::error(ErrorCode::Busy, refusal.to_string()))
            .await;
    }
}
