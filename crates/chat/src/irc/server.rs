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
//! connection's [`RequestClock`](sockit_runtime::guarded::RequestClock). From registration
//! on, every complete line (PONG included) is reported there, so the idle timeout counts
//! from the client's last line. The server pings at least every half idle timeout, so a
//! quiet client that answers PINGs stays.
//!
//! A command with a `label` tag from a client with `labeled-response` has its response
//! collected (everything queued for the client while the command runs, see
//! [`ClientHandle::capture`]) and sent labeled: the one line, an `ACK`, or a
//! `labeled-response` batch.
//!
//! Credentials ([`Outcome::Verify`]) are checked, and accounts created
//! ([`Outcome::Register`]), by the server's [`IrcAuth`](super::auth::IrcAuth) outside
//! the state lock, and the history store ([`History`]) answers CHATHISTORY
//! ([`Outcome::History`]) the same way, while this connection's later lines wait in its
//! queue.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use sockit_runtime::server::{ConnInfo, Refusal, ServiceStream, TcpService};

use crate::irc::auth::{AuthRequest, AuthVerdict, AuthVia, CertVerdict, PeerIdentity};
use crate::irc::register::auth_result;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::debug;

use crate::irc::account_reg::{self, RegisterRequest};
use crate::irc::auth::CreateVerdict;
use crate::irc::caps::Cap;
use crate::irc::chathistory;
use crate::irc::cluster;
use crate::irc::commands::{dispatch, Ctx, Outcome};
use crate::irc::flood::FloodTimer;
use crate::irc::history::{History, HistoryError, DEFAULT_MAX_DAYS, DEFAULT_MAX_MESSAGES};
use crate::irc::line::{Line as InLine, LineBuffer};
use crate::irc::message::{Message, ParseError, MAX_LINE};
use crate::irc::numeric::ERR_INPUTTOOLONG;
use crate::irc::state::{
    server_time, tagged_line, Client, ClientHandle, Killer, Line, ServerConfig, State,
};
use crate::irc::tags::{check_size, escape, Tags, MAX_CLIENT_TAG_DATA};

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
    /// Message history and read markers.
    history: History,
}

impl IrcServer {
    /// A server with `cfg`. When its history file cannot be opened, history is kept in
    /// memory with the same limits (logged); [`try_new`](Self::try_new) reports it instead.
    pub fn new(cfg: ServerConfig) -> Self {
        let history = History::from_config(cfg.history.as_ref()).unwrap_or_else(|e| {
            tracing::error!(error = %e, "chat history kept in memory");
            let h = cfg.history.as_ref();
            History::memory(
                h.map_or(DEFAULT_MAX_DAYS, |h| h.max_days),
                h.map_or(DEFAULT_MAX_MESSAGES, |h| h.max_messages),
            )
        });
        Self::with_history(cfg, history)
    }

    /// A server with `cfg`, its history store opened first.
    ///
    /// # Errors
    /// The history file (`cfg.history`) cannot be opened or set up.
    pub fn try_new(cfg: ServerConfig) -> Result<Self, HistoryError> {
        let history = History::from_config(cfg.history.as_ref())?;
        Ok(Self::with_history(cfg, history))
    }

    fn with_history(cfg: ServerConfig, history: History) -> Self {
        let state = State::new(&cfg);
        Self {
            shared: Arc::new(Shared {
                cfg,
                state: Mutex::new(state),
                created: chrono::Local::now()
                    .format("%a %b %e %Y at %H:%M:%S %Z")
                    .to_string(),
                flush_timeout: Duration::from_secs(5),
                history,
            }),
        }
    }

    /// Waits until every registered-channel change so far is on disk.
    pub async fn flush_channels(&self) {
        let store = self.lock().channel_store.clone();
        store.flush().await;
    }

    /// The message history and read-marker store.
    pub fn history(&self) -> &History {
        &self.shared.history
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.shared.cfg
    }

    /// Number of connected clients (registered or not).
    pub fn client_count(&self) -> usize {
        self.lock().clients.len()
    }

    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, State> {
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
        self.serve_connection_with(stream, info, PeerIdentity::default())
            .await
    }

    /// [`serve_connection`](Self::serve_connection) for a client whose transport proved
    /// `peer` (the TLS port: its certificate's fingerprint, for SASL EXTERNAL and WHOIS).
    ///
    /// # Errors
    /// None in practice: connection errors end the session and become the close reason.
    pub async fn serve_connection_with<S>(
        &self,
        stream: S,
        info: ConnInfo,
        peer_identity: PeerIdentity,
    ) -> io::Result<String>
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let cfg = &self.shared.cfg;
        let peer: SocketAddr = info.peer;
        let (rd, wr) = tokio::io::split(stream);
        let (handle, rx) = ClientHandle::new(cfg.sendq);
        let killer = handle.killer().clone();
        let host = peer.ip().to_string();
        let mut client = Client::new(host.clone(), handle.clone());
        client.cert_fingerprint = peer_identity.cert_fingerprint;
        let id = self.lock().add(client);
        let writer = tokio::spawn(write_loop(wr, rx, killer.clone()));
        let (line_tx, mut line_rx) = mpsc::channel(cfg.recvq.max(1));
        let reader = tokio::spawn(read_loop(rd, line_tx, killer.clone()));

        let reason = self
            .session(id, &handle, &killer, &mut line_rx, &info)
            .await;

        reader.abort();
        let _ = reader.await;
        // A labeled command's response may still be collecting: queue the rest plainly.
        for line in handle.release() {
            handle.send(line);
        }
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
        {
            let mut st = self.lock();
            crate::irc::cluster::quit(&mut st, id, &reason);
            st.remove_from(id, &reason, &cfg.name);
        }
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
        // Batches opened on this connection (their ids).
        let mut batches: u64 = 0;
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
                Some(Ok(InLine::Text(bytes))) if check_size(&bytes, MAX_LINE - 2).is_err() => {
                    self.input_too_long(id, handle);
                    continue;
                }
                Some(Ok(InLine::TooLong)) => {
                    self.input_too_long(id, handle);
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
            let reg = (!registered).then_some(reg_deadline);
            if !wait.is_zero() {
                if let Err(reason) =
                    unless_ended(tokio::time::sleep(wait), killer, shutdown, reg).await
                {
                    return reason;
                }
            }
            let label = label_of(handle, &msg);
            if label.is_some() {
                handle.capture();
            }
            let mut captured = Vec::new();
            let (mut outcome, before) = self.with_ctx(id, |ctx| {
                let before = crate::irc::cluster::before(ctx, &msg);
                (dispatch(ctx, &msg), before)
            });
            while let Outcome::History(call) = outcome {
                if label.is_some() {
                    // Others may send to this client while the store answers.
                    captured.extend(handle.release());
                }
                let query = self.shared.history.query(call.request.clone());
                let resp = match unless_ended(query, killer, shutdown, None).await {
                    Ok(r) => r,
                    Err(reason) => return reason,
                };
                if label.is_some() {
                    handle.capture();
                }
                outcome = self.with_ctx(id, |ctx| chathistory::reply(ctx, &call, resp));
            }
            while let Outcome::Register(req) = outcome {
                if label.is_some() {
                    captured.extend(handle.release());
                }
                let create = self.create_account(&req, info.peer.ip());
                let verdict = match unless_ended(create, killer, shutdown, reg).await {
                    Ok(v) => v,
                    Err(reason) => return reason,
                };
                if label.is_some() {
                    handle.capture();
                }
                outcome = self.with_ctx(id, |ctx| account_reg::register_result(ctx, &req, verdict));
            }
            while let Outcome::ClaimNick(nick) = outcome {
                if label.is_some() {
                    captured.extend(handle.release());
                }
                let link = self.lock().cluster.link();
                let claim = crate::irc::cluster::claim(link, &nick, id);
                let won = match unless_ended(claim, killer, shutdown, reg).await {
                    Ok(won) => won,
                    Err(reason) => return reason,
                };
                if label.is_some() {
                    handle.capture();
                }
                outcome =
                    self.with_ctx(id, |ctx| crate::irc::cluster::claim_result(ctx, &nick, won));
            }
            while let Outcome::Verify(req) = outcome {
                if label.is_some() {
                    // Others may send to this client while the password is checked.
                    captured.extend(handle.release());
                }
                let check = self.verify(id, req, info.peer.ip());
                let (req, verdict) = match unless_ended(check, killer, shutdown, reg).await {
                    Ok(v) => v,
                    Err(reason) => return reason,
                };
                if label.is_some() {
                    handle.capture();
                }
                outcome = self.with_ctx(id, |ctx| auth_result(ctx, &req, verdict));
            }
            if let Some(label) = &label {
                captured.extend(handle.release());
                // A command that closes the connection gets its ERROR, not an ACK.
                if !(captured.is_empty() && matches!(outcome, Outcome::Close(_))) {
                    batches += 1;
                    send_labeled(handle, &cfg.name, label, captured, batches);
                }
            }
            if let Outcome::Close(reason) = outcome {
                return reason;
            }
            if let Some(before) = before {
                self.with_ctx(id, |ctx| crate::irc::cluster::after(ctx, &msg, before));
            }
            if !registered && self.with_ctx(id, |ctx| ctx.registered()) {
                registered = true;
                info.clock.request_complete();
            }
        }
    }

    /// Runs `f` with the state locked, as client `id`.
    pub(crate) fn with_ctx<T>(&self, id: u64, f: impl FnOnce(&mut Ctx<'_>) -> T) -> T {
        let mut st = self.lock();
        let mut ctx = Ctx {
            cfg: &self.shared.cfg,
            st: &mut st,
            id,
            created: &self.shared.created,
            history: &self.shared.history,
        };
        f(&mut ctx)
    }

    /// Asks the auth policy about `req` of client `id` from `ip` (not at all while `ip` or
    /// the account is backing off). SASL EXTERNAL checks the client's certificate and
    /// comes back with the certificate's account in the request.
    async fn verify(
        &self,
        id: u64,
        mut req: AuthRequest,
        ip: std::net::IpAddr,
    ) -> (AuthRequest, AuthVerdict) {
        let Some(auth) = self.shared.cfg.auth.clone() else {
            return (req, AuthVerdict::Bad);
        };
        if req.via == AuthVia::External {
            let fp = self
                .lock()
                .clients
                .get(&id)
                .and_then(|c| c.cert_fingerprint.clone());
            let verdict = match fp {
                None => AuthVerdict::Bad,
                Some(fp) => match auth.verify_cert(&fp, ip).await {
                    // An authorization identity must be the certificate's own account.
                    CertVerdict::Ok(account)
                        if req.account.is_empty() || req.account == account =>
                    {
                        req.account = account;
                        AuthVerdict::Ok
                    }
                    CertVerdict::Ok(_) | CertVerdict::Bad => AuthVerdict::Bad,
                    CertVerdict::Throttled(wait) => AuthVerdict::Throttled(wait),
                },
            };
            return (req, verdict);
        }
        if let Some(wait) = auth.retry_after(&req.account, ip) {
            return (req, AuthVerdict::Throttled(wait));
        }
        // A cluster node: the network's accounts first, then its own store.
        let link = self.lock().cluster.link();
        if cluster::verify_account(link.clone(), &req.account, &req.password).await {
            return (req, AuthVerdict::Ok);
        }
        let verdict = auth.verify(&req.account, &req.password, ip).await;
        if verdict == AuthVerdict::Ok {
            cluster::remember_login(link, &req.account, &req.password);
        }
        (req, verdict)
    }

    /// Asks the auth policy to create the account of a `REGISTER`; on a cluster node the
    /// name is reserved network-wide first (see `cluster/accounts.rs`).
    async fn create_account(&self, req: &RegisterRequest, ip: std::net::IpAddr) -> CreateVerdict {
        let auth = match self.shared.cfg.auth.clone() {
            Some(auth) if auth.registration() => auth,
            _ => return CreateVerdict::Unsupported,
        };
        let link = self.lock().cluster.link();
        if link.is_none() {
            return auth.create(&req.account, &req.password, ip).await;
        }
        // The back-off first: a reservation costs an argon2 hash.
        if let Some(wait) = auth.retry_after(&req.account, ip) {
            return CreateVerdict::Throttled(wait);
        }
        match cluster::reserve_account(link.clone(), &req.account, &req.password).await {
            cluster::Reserve::Exists => CreateVerdict::Exists,
            cluster::Reserve::Reserved(rev) => {
                let verdict = auth.create(&req.account, &req.password, ip).await;
                if verdict != CreateVerdict::Created {
                    cluster::unreserve_account(link, &req.account, rev).await;
                }
                verdict
            }
            cluster::Reserve::Unavailable => {
                let verdict = auth.create(&req.account, &req.password, ip).await;
                if verdict == CreateVerdict::Created {
                    cluster::remember_login(link, &req.account, &req.password);
                }
                verdict
            }
        }
    }

    /// 417 ERR_INPUTTOOLONG (the line was discarded; the connection goes on).
    fn input_too_long(&self, id: u64, handle: &ClientHandle) {
        let nick = self.nick_of(id);
        handle.send_msg(
            &Message::new(
                ERR_INPUTTOOLONG,
                vec![nick, "Input line was too long".into()],
            )
            .with_prefix(self.shared.cfg.name.clone()),
        );
    }

    fn nick_of(&self, id: u64) -> String {
        self.lock()
            .clients
            .get(&id)
            .map_or("*", Client::nick_or_star)
            .to_owned()
    }
}

/// Longest `label` tag value honoured (IRCv3 labeled-response: at most 64 bytes).
pub const MAX_LABEL: usize = 64;

/// The `label` of `msg` when its sender enabled `labeled-response` (a label over
/// [`MAX_LABEL`] bytes is ignored).
fn label_of(handle: &ClientHandle, msg: &Message) -> Option<String> {
    if !handle.caps().has(Cap::LabeledResponse) {
        return None;
    }
    let tags = Tags::parse(msg.tags.as_deref()?);
    tags.get("label")
        .filter(|l| !l.is_empty() && l.len() <= MAX_LABEL)
        .map(str::to_owned)
}

/// `line` with `tag` (already escaped, `key=value`) first in its tag section.
pub fn with_tag(line: &[u8], tag: &str) -> Line {
    let mut out = Vec::with_capacity(line.len() + tag.len() + 2);
    out.push(b'@');
    out.extend_from_slice(tag.as_bytes());
    match line.strip_prefix(b"@") {
        Some(rest) => {
            out.push(b';');
            out.extend_from_slice(rest);
        }
        None => {
            out.push(b' ');
            out.extend_from_slice(line);
        }
    }
    out.into()
}

/// Sends the response of a labeled command (IRCv3 labeled-response): `ACK` when there is
/// none, the one line with the label, or, for a client with `batch`, the lines in a
/// `labeled-response` batch whose `BATCH +id` carries the label. A client without
/// `batch` gets a longer response unlabeled.
fn send_labeled(handle: &ClientHandle, server: &str, label: &str, lines: Vec<Line>, n: u64) {
    let caps = handle.caps();
    let label_tag = format!("label={}", escape(label));
    let server_line = |tags: &mut Tags, msg: Message| {
        if caps.has(Cap::ServerTime) {
            tags.insert("time", server_time());
        }
        tagged_line(tags, &msg.with_prefix(server.to_owned()))
    };
    match lines.len() {
        0 => {
            let mut tags = Tags::new();
            tags.insert("label", label);
            handle.send(server_line(&mut tags, Message::new("ACK", vec![])));
        }
        1 => handle.send(with_tag(&lines[0], &label_tag)),
        // One batch already (CHATHISTORY): the label goes on its BATCH +id.
        _ if is_one_batch(&lines) => {
            let mut lines = lines.into_iter();
            if let Some(first) = lines.next() {
                handle.send(with_tag(&first, &label_tag));
            }
            for line in lines {
                handle.send(line);
            }
        }
        _ if caps.has(Cap::Batch) => {
            let id = format!("lr{n:x}");
            let mut open = Tags::new();
            open.insert("label", label);
            let start = Message::new("BATCH", vec![format!("+{id}"), "labeled-response".into()]);
            handle.send(server_line(&mut open, start));
            let batch_tag = format!("batch={id}");
            for line in &lines {
                handle.send(with_tag(line, &batch_tag));
            }
            let end = Message::new("BATCH", vec![format!("-{id}")]);
            handle.send(server_line(&mut Tags::new(), end));
        }
        _ => {
            for line in lines {
                handle.send(line);
            }
        }
    }
}

/// A queued line parsed back (CRLF removed).
fn words(line: &[u8]) -> Option<Message> {
    Message::parse(line.strip_suffix(b"\r\n").unwrap_or(line)).ok()
}

/// Whether `lines` are exactly one batch: `BATCH +id …` first, `BATCH -id` last, and
/// every line between inside it.
fn is_one_batch(lines: &[Line]) -> bool {
    let (Some(first), Some(last)) = (lines.first(), lines.last()) else {
        return false;
    };
    let (Some(open), Some(close)) = (words(first), words(last)) else {
        return false;
    };
    let Some(id) = open
        .param(0)
        .filter(|_| open.command == "BATCH")
        .and_then(|p| p.strip_prefix('+'))
    else {
        return false;
    };
    let closes =
        close.command == "BATCH" && close.param(0).and_then(|p| p.strip_prefix('-')) == Some(id);
    closes
        && lines[1..lines.len() - 1].iter().all(|l| {
            words(l).is_some_and(|m| {
                Tags::parse(m.tags.as_deref().unwrap_or("")).get("batch") == Some(id)
            })
        })
}

/// Reads lines into the bounded receive queue; a full queue is an "Excess Flood".
async fn read_loop<R: AsyncRead + Unpin>(
    mut rd: R,
    tx: mpsc::Sender<io::Result<InLine>>,
    killer: Killer,
) {
    // Room for a client's tags (4094 bytes with `@` and a space) before the 512 bytes.
    let mut buf = LineBuffer::new(MAX_LINE + MAX_CLIENT_TAG_DATA + 2);
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
/// Waits for `work` unless the connection is killed, the server shuts down or, while the
/// client is unregistered, `registration` (its deadline) passes; then `Err` with the
/// reason the connection closes.
async fn unless_ended<T>(
    work: impl std::future::Future<Output = T>,
    killer: &Killer,
    shutdown: &tokio_util::sync::CancellationToken,
    registration: Option<Instant>,
) -> Result<T, String> {
    let registration_over = async {
        match registration {
            Some(deadline) => tokio::time::sleep_until(deadline).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = killer.killed().cancelled() => Err(killer.reason().unwrap_or_else(|| "Killed".into())),
        _ = shutdown.cancelled() => Err("Server shutting down".into()),
        _ = registration_over => Err(REGISTRATION_TIMEOUT.into()),
        v = work => Ok(v),
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_tag_goes_first_in_the_tag_section() {
        assert_eq!(
            &with_tag(b":s PONG s :t\r\n", "label=x")[..],
            b"@label=x :s PONG s :t\r\n"
        );
        assert_eq!(
            &with_tag(b"@time=1 :s PONG s :t\r\n", "batch=b")[..],
            b"@batch=b;time=1 :s PONG s :t\r\n"
        );
    }

    #[test]
    fn labeled_responses_ack_label_or_batch() {
        let (h, mut rx) = ClientHandle::new(16);
        let caps = crate::irc::caps::CapSet::default().with(Cap::LabeledResponse, true);
        h.set_caps(caps);
        let mut got = || {
            let mut v = Vec::new();
            while let Ok(l) = rx.try_recv() {
                v.push(String::from_utf8_lossy(&l).into_owned());
            }
            v
        };
        send_labeled(&h, "srv", "a b", vec![], 1);
        assert_eq!(got(), ["@label=a\\sb :srv ACK\r\n"]);
        let two: Vec<Line> = vec![Arc::from(&b":srv 1\r\n"[..]), Arc::from(&b":srv 2\r\n"[..])];
        send_labeled(&h, "srv", "l", two.clone(), 2);
        assert_eq!(
            got(),
            [":srv 1\r\n", ":srv 2\r\n"],
            "no batch cap: unlabeled"
        );
        h.set_caps(caps.with(Cap::Batch, true));
        send_labeled(&h, "srv", "l", two, 3);
        assert_eq!(
            got(),
            [
                "@label=l :srv BATCH +lr3 labeled-response\r\n",
                "@batch=lr3 :srv 1\r\n",
                "@batch=lr3 :srv 2\r\n",
                ":srv BATCH -lr3\r\n",
            ]
        );
    }

    #[test]
    fn capture_collects_until_release_and_is_bounded() {
        let (h, mut rx) = ClientHandle::new(2);
        h.capture();
        h.send(Arc::from(&b"a\r\n"[..]));
        h.send(Arc::from(&b"b\r\n"[..]));
        assert!(rx.try_recv().is_err(), "held while capturing");
        assert_eq!(h.release().len(), 2);
        h.send(Arc::from(&b"c\r\n"[..]));
        assert_eq!(&rx.try_recv().unwrap()[..], b"c\r\n");
        h.capture();
        for _ in 0..3 {
            h.send(Arc::from(&b"x\r\n"[..]));
        }
        assert_eq!(h.killer().reason().as_deref(), Some("SendQ exceeded"));
    }
}
