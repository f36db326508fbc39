//! The IRC server: one task per connection on the shared runtime, plus a reader and a
//! writer task per connection.
//!
//! ```text
//!   socket ──► reader task ──(bounded recvq: "Excess Flood")──► session task ──► state (lock)
//!   socket ◄── writer task ◄──(bounded sendq: "SendQ exceeded")── any session's command
//! ```
//!
//! The session applies flood control (a penalty timer, see [`flood`](super::flood)),
//! pings a silent client and drops it after the ping timeout, and on every way out
//! (QUIT, EOF, error, kill, shutdown) removes the client so its neighbours see QUIT.
//!
//! Deadlines trickled bytes cannot stretch: a client must finish registering (001 sent)
//! within the runtime's handshake timeout, counted from the connection's start, whatever
//! it sends meanwhile; lines before registration do not count as requests on the
//! connection's [`RequestClock`](sockit_wire::guarded::RequestClock). From registration
//! on, every complete line (PONG included) is reported there, so the idle timeout counts
//! from the client's last line. The server pings at least every half idle timeout, so a
//! quiet client that answers PINGs stays.
//!
//! Credentials ([`Outcome::Verify`]) are checked by the server's
//! [`IrcAuth`](super::auth::IrcAuth) outside the state lock, while this connection's
//! later lines wait in its queue.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sockit_wire::runtime::{ConnInfo, Refusal, ServiceStream, TcpService};

use crate::irc::auth::{AuthRequest, AuthVerdict};
use crate::irc::register::auth_result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::irc::commands::{dispatch, Ctx, Outcome};
use crate::irc::flood::FloodTimer;
use crate::irc::line::{Line as InLine, LineBuffer};
use crate::irc::message::{Message, ParseError, MAX_LINE};
use crate::irc::numeric::ERR_INPUTTOOLONG;
use crate::irc::state::{Client, ClientHandle, Killer, Line, ServerConfig, State};

/// Most queued lines the writer sends before flushing.
const WRITE_BATCH: usize = 64;

/// The close reason of a client that did not register within the handshake timeout.
pub const REGISTRATION_TIMEOUT: &str = "Registration timed out";

/// The IRC server (cheap to clone; clones share one state).
#[derive(Debug, Clone)]
pub struct IrcServer {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    cfg: ServerConfig,
    state: Mutex<State>,
    /// Start time for 003.
    created: String,
    /// How long the writer may take to flush the last lines (ERROR) on close.
    flush_timeout: Duration,
}

impl IrcServer {
    /// A server with `cfg`.
    pub fn new(cfg: ServerConfig) -> Self {
        Self {
            shared: Arc::new(Shared {
                cfg,
                state: Mutex::new(State::default()),
                created: chrono::Local::now()
                    .format("%a %b %e %Y at %H:%M:%S %Z")
                    .to_string(),
                flush_timeout: Duration::from_secs(5),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.cfg
    }

    /// Number of connected clients (registered or not).
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Serves one connection until the client quits, fails, is killed or `info.shutdown`.
    /// The client must register within `info.limits.handshake_timeout`; complete lines are
    /// reported on `info.clock` from registration on.
    ///
    /// # Errors
    /// None in practice: connection errors end the session and become the close reason.
    pub async fn serve_connection<S>(&self, stream: S, info: ConnInfo) -> io::Result<String>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let cfg = &self.shared.cfg;
        let peer: SocketAddr = info.peer;
        let (rd, wr) = tokio::io::split(stream);
        let (handle, rx) = ClientHandle::new(cfg.sendq);
        let killer = handle.killer().clone();
        let host = peer.ip().to_string();
        let id = self.lock().add(Client::new(host.clone(), handle.clone()));
        let writer = tokio::spawn(write_loop(wr, rx, killer.clone()));
        let (line_tx, mut line_rx) = mpsc::channel(cfg.recvq.max(1));
        let reader = tokio::spawn(read_loop(rd, line_tx, killer.clone()));

        let reason = self
            .session(id, &handle, &killer, &mut line_rx, &info)
            .await;

        reader.abort();
        let _ = reader.await;
        // A full queue or a broken socket cannot take the ERROR line.
        let hard_kill = killer
            .reason()
            .is_some_and(|r| r == "SendQ exceeded" || r.starts_with("Write error"));
        if !hard_kill {
            handle.send_msg(&Message::new(
                "ERROR",
                vec![format!("Closing Link: {host} ({reason})")],
            ));
        }
        drop(handle);
        self.lock().remove(id, &reason);
        if hard_kill {
            // Its queue is full or its socket is broken: nothing more can be delivered.
            writer.abort();
        } else if tokio::time::timeout(self.shared.flush_timeout, writer)
            .await
            .is_err()
        {
            debug!(%peer, "writer did not flush in time");
        }
        Ok(reason)
    }

    async fn session(
        &self,
        id: u64,
        handle: &ClientHandle,
        killer: &Killer,
        lines: &mut mpsc::Receiver<io::Result<InLine>>,
        info: &ConnInfo,
    ) -> String {
        let cfg = &self.shared.cfg;
        let shutdown = &info.shutdown;
        // Ping often enough that a client answering PINGs never reaches the idle timeout.
        let ping_interval = cfg
            .ping_interval
            .min(info.limits.idle_timeout / 2)
            .max(Duration::from_millis(10));
        let reg_deadline = Instant::now() + info.limits.handshake_timeout;
        let mut registered = false;
        // The flood timer reads tokio's clock (as a std Instant) so that it runs on the same
        // clock as the pacing sleep below, and tests with paused time see exact pacing.
        let mut flood = FloodTimer::new(cfg.flood, Instant::now().into_std());
        let mut last_rx = Instant::now();
        let mut pinged: Option<Instant> = None;
        loop {
            let deadline = match pinged {
                None => last_rx + ping_interval,
                Some(t) => t + cfg.ping_timeout,
            };
            let item = tokio::select! {
                _ = killer.killed().cancelled() => {
                    return killer.reason().unwrap_or_else(|| "Killed".into());
                }
                _ = shutdown.cancelled() => return "Server shutting down".into(),
                _ = tokio::time::sleep_until(reg_deadline), if !registered => {
                    return REGISTRATION_TIMEOUT.into();
                }
                _ = tokio::time::sleep_until(deadline) => {
                    if pinged.is_some() {
                        return format!("Ping timeout: {} seconds", cfg.ping_timeout.as_secs());
                    }
                    handle.send_msg(&Message::new("PING", vec![cfg.name.clone()]));
                    pinged = Some(Instant::now());
                    continue;
                }
                item = lines.recv() => item,
            };
            last_rx = Instant::now();
            pinged = None;
            if registered && matches!(item, Some(Ok(_))) {
                info.clock.request_complete();
            }
            let bytes = match item {
                None => return "Remote host closed the connection".into(),
                Some(Err(e)) if !registered && e.kind() == io::ErrorKind::TimedOut => {
                    return REGISTRATION_TIMEOUT.into();
                }
                Some(Err(e)) => return format!("Read error: {e}"),
                Some(Ok(InLine::TooLong)) => {
                    let nick = self.nick_of(id);
                    handle.send_msg(
                        &Message::new(
                            ERR_INPUTTOOLONG,
                            vec![nick, "Input line was too long".into()],
                        )
                        .with_prefix(cfg.name.clone()),
                    );
                    continue;
                }
                Some(Ok(InLine::Text(bytes))) => bytes,
            };
            let msg = match Message::parse(&bytes) {
                Ok(m) => m,
                Err(ParseError::Empty) => continue,
                Err(e) => {
                    debug!(error = %e, "unparsable line ignored");
                    continue;
                }
            };
            let weight = u32::from(msg.command != "PONG");
            let wait = flood.charge(Instant::now().into_std(), weight);
            if !wait.is_zero() {
                tokio::select! {
                    _ = killer.killed().cancelled() => {
                        return killer.reason().unwrap_or_else(|| "Killed".into());
                    }
                    _ = shutdown.cancelled() => return "Server shutting down".into(),
                    _ = tokio::time::sleep_until(reg_deadline), if !registered => {
                        return REGISTRATION_TIMEOUT.into();
                    }
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            let mut outcome = self.with_ctx(id, |ctx| dispatch(ctx, &msg));
            while let Outcome::Verify(req) = outcome {
                let verdict = tokio::select! {
                    _ = killer.killed().cancelled() => {
                        return killer.reason().unwrap_or_else(|| "Killed".into());
                    }
                    _ = shutdown.cancelled() => return "Server shutting down".into(),
                    _ = tokio::time::sleep_until(reg_deadline), if !registered => {
                        return REGISTRATION_TIMEOUT.into();
                    }
                    v = self.verify(&req, info.peer.ip()) => v,
                };
                outcome = self.with_ctx(id, |ctx| auth_result(ctx, &req, verdict));
            }
            if let Outcome::Close(reason) = outcome {
                return reason;
            }
            if !registered && self.with_ctx(id, |ctx| ctx.registered()) {
                registered = true;
                info.clock.request_complete();
            }
        }
    }

    /// Runs `f` with the state locked, as client `id`.
    fn with_ctx<T>(&self, id: u64, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
        let mut st = self.lock();
        let mut ctx = Ctx {
            cfg: &self.shared.cfg,
            st: &mut st,
            id,
            created: &self.shared.created,
        };
        f(&mut ctx)
    }

    /// Asks the auth policy about `req` from `ip` (not at all while `ip` or the account is
    /// backing off).
    async fn verify(&self, req: &AuthRequest, ip: std::net::IpAddr) -> AuthVerdict {
        let Some(auth) = self.shared.cfg.auth.clone() else {
            return AuthVerdict::Bad;
        };
        if let Some(wait) = auth.retry_after(&req.account, ip) {
            return AuthVerdict::Throttled(wait);
        }
        auth.verify(&req.account, &req.password, ip).await
    }

    fn nick_of(&self, id: u64) -> String {
        self.lock()
            .clients
            .get(&id)
            .map_or("*", Client::nick_or_star)
            .to_owned()
    }
}

/// Reads lines into the bounded receive queue; a full queue is an "Excess Flood".
async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    tx: mpsc::Sender<io::Result<InLine>>,
    killer: Killer,
) {
    let mut buf = LineBuffer::new(MAX_LINE);
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = match rd.read(&mut chunk).await {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) => {
                let _ = tx.try_send(Err(e));
                return;
            }
        };
        buf.push(&chunk[..n]);
        while let Some(line) = buf.pop() {
            match tx.try_send(Ok(line)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => {
                    killer.kill("Excess Flood");
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        }
    }
}

/// Writes queued lines, flushing after each batch; ends when every sender is gone.
async fn write_loop<W: AsyncWrite + Unpin>(wr: W, mut rx: mpsc::Receiver<Line>, killer: Killer) {
    let mut w = BufWriter::with_capacity(16 * 1024, wr);
    let result: io::Result<()> = async {
        while let Some(line) = rx.recv().await {
            w.write_all(&line).await?;
            for _ in 0..WRITE_BATCH {
                match rx.try_recv() {
                    Ok(line) => w.write_all(&line).await?,
                    Err(_) => break,
                }
            }
            w.flush().await?;
        }
        w.shutdown().await
    }
    .await;
    if let Err(e) = result {
        killer.kill(&format!("Write error: {e}"));
    }
}

#[async_trait]
impl TcpService for IrcServer {
    fn name(&self) -> &'static str {
        "chat"
    }

    async fn handle(&self, stream: ServiceStream, info: ConnInfo) -> io::Result<String> {
        self.serve_connection(stream, info).await
    }

    async fn refuse(&self, mut stream: TcpStream, refusal: Refusal) {
        let line = Message::new("ERROR", vec![format!("Closing Link: ({refusal})")]).to_line();
        let _ = stream.write_all(&line).await;
    }
}
