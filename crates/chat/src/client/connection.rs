//! A client connection: negotiates IRCv3 capabilities and logs in with SASL PLAIN (a
//! pure state machine the connection drives), registers (NICK/USER, PASS), picks another nick when
//! the wanted one is taken, answers PINGs, fetches a channel's history on join (with
//! `draft/chathistory`; a query's on request, [`Connection::fetch_history`]), lists recent
//! conversations ([`Connection::fetch_targets`]), and hands every message to the front end
//! as an [`Event`]. With
//! [`Options::reconnect`] a dropped connection is dialled again with back-off (1 s, 2 s,
//! 4 s … 60 s; reset after a minute connected) and its channels are joined again.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sockit_runtime::dial::dial;
use sockit_runtime::stream::BoxedStream;
use sockit_runtime::tls::{Fingerprint, Trust};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::client::history;
use crate::client::negotiate::{Negotiation, Stage};
use crate::irc::line::{Line, LineBuffer};
use crate::irc::message::{Message, MAX_LINE};
use crate::irc::names;
use crate::irc::tags::{Tags, MAX_TAG_SECTION};

/// Longest line accepted from the server, CRLF included: a full IRCv3 tag section
/// (`@`, 4,607 bytes in all: the server's 510 and a client's 4,094 bytes of tag data) and
/// the 512 bytes of the rest. Longer lines are skipped.
pub const MAX_SERVER_LINE: usize = MAX_TAG_SECTION + MAX_LINE;

/// Most lines kept from one history batch (the rest are dropped).
pub const MAX_HISTORY_BATCH: usize = 1000;

/// What to connect as.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT`.
    pub addr: String,
    /// The wanted nick (`_` is appended while it is taken).
    pub nick: String,
    /// The real name.
    pub realname: String,
    /// The server password, if any (sent with PASS).
    pub password: Option<String>,
    /// `Some`: speak TLS (port 6697) and trust the server as given.
    pub tls: Option<Trust>,
}

/// How the connection behaves beyond registering.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Log in to this account (name, password) with SASL PLAIN; a server without SASL
    /// gets `PASS name:password`.
    pub account: Option<(String, String)>,
    /// Request `echo-message` (the front end then shows its own lines when they come
    /// back, not when it sends them).
    pub echo_message: bool,
    /// Dial again with back-off when the connection drops without a QUIT of ours.
    pub reconnect: bool,
    /// Lines of history to fetch with `CHATHISTORY LATEST`: on join, and for a query
    /// with [`Connection::fetch_history`] (0: none).
    pub history: usize,
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Registration completed (001) with this nick (again after each reconnect).
    Registered(String),
    /// A message from the server (PINGs are answered and not reported). Its IRCv3 tags
    /// are in [`Message::tags`]; [`server_time`] reads the `time` tag.
    Message(Message),
    /// A `chathistory` batch for `target`, complete, oldest first.
    History {
        /// The channel or nick the history is of.
        target: String,
        /// Its messages, each with its own tags (`time`).
        messages: Vec<Message>,
    },
    /// The answer to `CHATHISTORY TARGETS` (a `draft/chathistory-targets` batch): each
    /// channel or nick with its latest message time, as the server sent them.
    Targets(Vec<(String, String)>),
    /// The SASL login was refused (904, 905, …): the connection ends, no reconnect.
    LoginFailed(String),
    /// The connection dropped; the next attempt follows after `delay`.
    Reconnecting {
        /// Why it dropped (the server's ERROR text or the I/O error).
        reason: String,
        /// The back-off before the next attempt.
        delay: Duration,
        /// Attempts since the last registration, from 1.
        attempt: u32,
    },
    /// The connection ended for good, with the server's ERROR text if it sent one.
    Closed(Option<String>),
}

/// The `time` tag (server-time) of a message, if it has a valid one.
pub fn server_time(m: &Message) -> Option<chrono::DateTime<chrono::Utc>> {
    let tags = Tags::parse(m.tags.as_deref()?);
    let t = tags.get("time")?;
    chrono::DateTime::parse_from_rfc3339(t)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

/// The `msgid` tag of a message, if it has one (history and live copies of a line share
/// it).
pub fn msgid(m: &Message) -> Option<String> {
    let tags = Tags::parse(m.tags.as_deref()?);
    tags.get("msgid")
        .filter(|id| !id.is_empty())
        .map(str::to_owned)
}

/// Reconnection back-off: 1 s, 2 s, 4 s … at most 60 s; [`Backoff::reset`] after a
/// connection stayed up for [`Backoff::STABLE`].
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    /// The first delay.
    pub const FIRST: Duration = Duration::from_secs(1);
    /// The longest delay.
    pub const MAX: Duration = Duration::from_secs(60);
    /// A connection up this long resets the back-off.
    pub const STABLE: Duration = Duration::from_secs(60);

    /// A fresh back-off.
    pub fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    /// The delay before the next attempt (each call doubles the following one).
    pub fn delay(&mut self) -> Duration {
        let d = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        d
    }

    /// Back to [`Backoff::FIRST`].
    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

#[derive(Debug, Default)]
struct Shared {
    nick: String,
    caps: Vec<String>,
}

/// A connected client. Dropping it closes the connection.
#[derive(Debug)]
pub struct Connection {
    out: mpsc::Sender<Message>,
    /// Events from the server, in order; ends with [`Event::Closed`].
    pub events: mpsc::Receiver<Event>,
    shared: Arc<Mutex<Shared>>,
    history: usize,
    /// The host and fingerprint recorded on first use (TLS with a known-hosts file), if
    /// this connection recorded one.
    pub recorded: Option<(String, Fingerprint)>,
}

fn lock(s: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

impl Connection {
    /// Connects with the default [`Options`] (capabilities, history on join, no account,
    /// no reconnect); the first events are the welcome burst.
    ///
    /// # Errors
    /// The TCP connection or the TLS handshake failed, or the server was not trusted.
    pub async fn connect(cfg: &ClientConfig) -> io::Result<Connection> {
        Self::connect_with(
            cfg,
            Options {
                history: 50,
                ..Options::default()
            },
        )
        .await
    }

    /// Connects and starts registration as `opts` say.
    ///
    /// # Errors
    /// The first TCP connection or TLS handshake failed, or the server was not trusted
    /// (later failures are [`Event::Reconnecting`] or [`Event::Closed`]).
    pub async fn connect_with(cfg: &ClientConfig, opts: Options) -> io::Result<Connection> {
        let dialed = dial(&cfg.addr, cfg.tls.as_ref())
            .await
            .map_err(io::Error::other)?;
        let recorded = dialed.recorded;
        let history = opts.history;
        let (out, out_rx) = mpsc::channel::<Message>(256);
        let (ev_tx, events) = mpsc::channel(1024);
        let shared = Arc::new(Mutex::new(Shared {
            nick: cfg.nick.clone(),
            caps: Vec::new(),
        }));
        tokio::spawn(supervise(
            cfg.clone(),
            opts,
            dialed.stream,
            out_rx,
            ev_tx,
            shared.clone(),
        ));
        Ok(Connection {
            out,
            events,
            shared,
            history,
            recorded,
        })
    }

    /// Sends a message.
    ///
    /// # Errors
    /// The connection is closed.
    pub async fn send(&self, m: Message) -> io::Result<()> {
        self.out
            .send(m)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "connection closed"))
    }

    /// Our current nick.
    pub fn nick(&self) -> String {
        lock(&self.shared).nick.clone()
    }

    /// Asks for the newest lines of `target` (a channel or a private conversation) with
    /// `CHATHISTORY LATEST target * N` ([`Options::history`] lines); they arrive as
    /// [`Event::History`]. Returns whether it asked (not without `draft/chathistory`, or
    /// with `history` 0).
    ///
    /// # Errors
    /// The connection is closed.
    pub async fn fetch_history(&self, target: &str) -> io::Result<bool> {
        if self.history == 0 || target.is_empty() || !self.has_cap("draft/chathistory") {
            return Ok(false);
        }
        self.send(history::latest(target, self.history)).await?;
        Ok(true)
    }

    /// Asks which channels and conversations had messages in the last
    /// [`history::RECENT_DAYS`] days (`CHATHISTORY TARGETS`); the answer arrives as
    /// [`Event::Targets`]. Returns whether it asked (not without `draft/chathistory`).
    ///
    /// # Errors
    /// The connection is closed.
    pub async fn fetch_targets(&self) -> io::Result<bool> {
        if !self.has_cap("draft/chathistory") {
            return Ok(false);
        }
        self.send(history::recent_targets(chrono::Utc::now()))
            .await?;
        Ok(true)
    }

    /// Whether the server acknowledged capability `cap` on the current connection.
    pub fn has_cap(&self, cap: &str) -> bool {
        lock(&self.shared)
            .caps
            .iter()
            .any(|c| c.eq_ignore_ascii_case(cap))
    }
}

/// How one session (one TCP connection) ended.
enum End {
    /// We sent QUIT and the server closed (with its ERROR text).
    Quit(Option<String>),
    /// The front end dropped the connection.
    Gone,
    /// SASL refused.
    LoginFailed(String),
    /// The connection dropped on its own.
    Dropped(String),
}

/// What survives a reconnect: the channels we are in and the newest `time` seen in each.
#[derive(Debug, Default)]
struct Memory {
    channels: Vec<String>,
    last_time: HashMap<String, String>,
    registrations: u32,
}

async fn supervise(
    cfg: ClientConfig,
    opts: Options,
    first: BoxedStream,
    mut out_rx: mpsc::Receiver<Message>,
    events: mpsc::Sender<Event>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut stream = first;
    let mut memory = Memory::default();
    let mut backoff = Backoff::new();
    loop {
        let started = Instant::now();
        let end = session(
            stream,
            &cfg,
            &opts,
            &mut out_rx,
            &events,
            &shared,
            &mut memory,
        )
        .await;
        lock(&shared).caps.clear();
        let reason = match end {
            End::Gone => return,
            End::Quit(text) => {
                let _ = events.send(Event::Closed(text)).await;
                return;
            }
            End::LoginFailed(text) => {
                let _ = events.send(Event::LoginFailed(text)).await;
                let _ = events.send(Event::Closed(None)).await;
                return;
            }
            // Never registered (a refused password, a ban): dialling again cannot help.
            End::Dropped(reason) if !opts.reconnect || memory.registrations == 0 => {
                let _ = events.send(Event::Closed(Some(reason))).await;
                return;
            }
            End::Dropped(reason) => reason,
        };
        if started.elapsed() >= Backoff::STABLE {
            backoff.reset();
        }
        let mut reason = reason;
        let mut attempt = 0;
        stream = loop {
            attempt += 1;
            let delay = backoff.delay();
            let ev = Event::Reconnecting {
                reason: reason.clone(),
                delay,
                attempt,
            };
            if events.send(ev).await.is_err() {
                return;
            }
            // Wait, dropping what the user sends meanwhile (a QUIT ends it all).
            let wake = tokio::time::sleep(delay);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    () = &mut wake => break,
                    m = out_rx.recv() => match m {
                        None => return,
                        Some(m) if m.command == "QUIT" => {
                            let _ = events.send(Event::Closed(None)).await;
                            return;
                        }
                        Some(_) => {}
                    },
                }
            }
            match dial(&cfg.addr, cfg.tls.as_ref()).await {
                Ok(d) => break d.stream,
                Err(e) => reason = e.to_string(),
            }
        };
    }
}

/// The folded name of a channel, for [`Memory`].
fn key(channel: &str) -> String {
    names::fold(channel)
}

async fn session(
    stream: BoxedStream,
    cfg: &ClientConfig,
    opts: &Options,
    out_rx: &mut mpsc::Receiver<Message>,
    events: &mpsc::Sender<Event>,
    shared: &Arc<Mutex<Shared>>,
    memory: &mut Memory,
) -> End {
    let (mut rd, mut wr) = tokio::io::split(stream);
    let extra: &[&str] = if opts.echo_message {
        &["echo-message"]
    } else {
        &[]
    };
    let mut neg = Negotiation::new(extra, opts.account.clone());
    lock(shared).nick = cfg.nick.clone();
    let user: String = cfg
        .nick
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(10)
        .collect();
    let user = if user.is_empty() {
        "sockit".into()
    } else {
        user
    };
    let mut opening = vec![neg.start()];
    if let Some(p) = &cfg.password {
        opening.push(Message::new("PASS", vec![p.clone()]));
    }
    opening.push(Message::new("NICK", vec![cfg.nick.clone()]));
    opening.push(Message::new(
        "USER",
        vec![user, "0".into(), "*".into(), cfg.realname.clone()],
    ));
    for m in &opening {
        if let Err(e) = wr.write_all(&m.to_line()).await {
            return End::Dropped(e.to_string());
        }
    }

    let mut lines = LineBuffer::new(MAX_SERVER_LINE);
    let mut buf = vec![0u8; 8192];
    let mut registered = false;
    let mut quitting = false;
    let mut error: Option<String> = None;
    // Open chathistory batches: reference → (target, messages).
    let mut batches: HashMap<String, (String, Vec<Message>)> = HashMap::new();
    // Open chathistory-targets batches: reference → (name, time).
    let mut target_batches: HashMap<String, Vec<(String, String)>> = HashMap::new();
    loop {
        let n = tokio::select! {
            r = rd.read(&mut buf) => match r {
                Ok(0) => 0,
                Ok(n) => n,
                Err(e) => {
                    if quitting {
                        return End::Quit(error);
                    }
                    return End::Dropped(e.to_string());
                }
            },
            m = out_rx.recv() => {
                let Some(m) = m else {
                    let _ = wr.shutdown().await;
                    return End::Gone;
                };
                quitting |= m.command == "QUIT";
                if let Err(e) = wr.write_all(&m.to_line()).await {
                    if quitting {
                        return End::Quit(error);
                    }
                    return End::Dropped(e.to_string());
                }
                continue;
            }
        };
        if n == 0 {
            if quitting {
                return End::Quit(error);
            }
            return End::Dropped(
                error
                    .clone()
                    .unwrap_or_else(|| "the server closed the connection".into()),
            );
        }
        lines.push(&buf[..n]);
        while let Some(line) = lines.pop() {
            let Line::Text(bytes) = line else { continue };
            let Ok(m) = Message::parse(&bytes) else {
                continue;
            };
            let mut send: Vec<Message> = Vec::new();
            if !neg.finished() {
                send.extend(neg.on_message(&m));
                if !neg.enabled.is_empty() {
                    lock(shared).caps.clone_from(&neg.enabled);
                }
            }
            let current = lock(shared).nick.clone();
            let ours = m.source_nick().is_some_and(|s| names::eq(s, &current));
            let mut forward = true;
            match m.command.as_str() {
                "PING" => {
                    let token = m.params.last().cloned().unwrap_or_default();
                    send.push(Message::new("PONG", vec![token]));
                    forward = false;
                }
                "001" => {
                    registered = true;
                    memory.registrations += 1;
                    if let Some(n) = m.param(0) {
                        lock(shared).nick = n.to_owned();
                    }
                    if !memory.channels.is_empty() {
                        send.push(Message::new("JOIN", vec![memory.channels.join(",")]));
                    }
                }
                "433" | "432" if !registered => {
                    // Taken or refused: try another nick, bounded by NICKLEN.
                    let mut next: String = current.chars().take(names::NICKLEN - 1).collect();
                    next.push('_');
                    if next == current || !names::valid_nick(&next) {
                        next = "sockit_".into();
                    }
                    lock(shared).nick = next.clone();
                    send.push(Message::new("NICK", vec![next]));
                }
                "NICK" if ours => {
                    if let Some(n) = m.param(0) {
                        lock(shared).nick = n.to_owned();
                    }
                }
                "JOIN" if ours => {
                    let chan = m.param(0).unwrap_or("").to_owned();
                    if !memory.channels.iter().any(|c| names::eq(c, &chan)) {
                        memory.channels.push(chan.clone());
                    }
                    let has_history = neg.has("draft/chathistory");
                    if has_history && opts.history > 0 && !chan.is_empty() {
                        // After a reconnect: only what we missed.
                        let from = memory
                            .last_time
                            .get(&key(&chan))
                            .map_or_else(|| "*".to_owned(), |t| format!("timestamp={t}"));
                        send.push(Message::new(
                            "CHATHISTORY",
                            vec!["LATEST".into(), chan, from, opts.history.to_string()],
                        ));
                    }
                }
                "PART" if ours => {
                    let chan = m.param(0).unwrap_or("");
                    memory.channels.retain(|c| !names::eq(c, chan));
                }
                "KICK" if m.param(1).is_some_and(|n| names::eq(n, &current)) => {
                    let chan = m.param(0).unwrap_or("");
                    memory.channels.retain(|c| !names::eq(c, chan));
                }
                "ERROR" => error = m.param(0).map(str::to_owned),
                "CHATHISTORY" => {
                    if let Some(entry) = history::target_line(&m) {
                        let batch = m.tags.as_deref().map(Tags::parse);
                        let held = batch
                            .as_ref()
                            .and_then(|t| t.get("batch"))
                            .and_then(|r| target_batches.get_mut(r));
                        match held {
                            Some(held) if held.len() < MAX_HISTORY_BATCH => held.push(entry),
                            Some(_) => {}
                            // Without `batch`: one line, one answer.
                            None => {
                                if events.send(Event::Targets(vec![entry])).await.is_err() {
                                    return End::Gone;
                                }
                            }
                        }
                        forward = false;
                    }
                }
                "BATCH" => {
                    let r = m.param(0).unwrap_or("");
                    if let Some(r) = r.strip_prefix('+') {
                        if m.param(1) == Some("chathistory") {
                            let target = m.param(2).unwrap_or("").to_owned();
                            batches.insert(r.to_owned(), (target, Vec::new()));
                            forward = false;
                        } else if m.param(1) == Some("draft/chathistory-targets") {
                            target_batches.insert(r.to_owned(), Vec::new());
                            forward = false;
                        }
                    } else if let Some(targets) =
                        r.strip_prefix('-').and_then(|r| target_batches.remove(r))
                    {
                        if events.send(Event::Targets(targets)).await.is_err() {
                            return End::Gone;
                        }
                        forward = false;
                    } else if let Some((target, messages)) =
                        r.strip_prefix('-').and_then(|r| batches.remove(r))
                    {
                        if events
                            .send(Event::History { target, messages })
                            .await
                            .is_err()
                        {
                            return End::Gone;
                        }
                        forward = false;
                    }
                }
                _ => {}
            }
            if let Some(t) = m.tags.as_deref().map(Tags::parse) {
                if let (Some(time), Some(chan)) = (t.get("time"), m.param(0)) {
                    if names::is_channel(chan) && matches!(m.command.as_str(), "PRIVMSG" | "NOTICE")
                    {
                        memory.last_time.insert(key(chan), time.to_owned());
                    }
                }
                if let Some((_, held)) = t.get("batch").and_then(|r| batches.get_mut(r)) {
                    if held.len() < MAX_HISTORY_BATCH {
                        held.push(m.clone());
                    }
                    forward = false;
                }
            }
            for s in &send {
                if let Err(e) = wr.write_all(&s.to_line()).await {
                    return End::Dropped(e.to_string());
                }
                quitting |= s.command == "QUIT";
            }
            if forward {
                let event = if m.command == "001" {
                    let n = lock(shared).nick.clone();
                    if events.send(Event::Message(m)).await.is_err() {
                        return End::Gone;
                    }
                    Event::Registered(n)
                } else {
                    Event::Message(m)
                };
                if events.send(event).await.is_err() {
                    return End::Gone;
                }
            }
            if let Stage::Failed(text) = &neg.stage {
                let _ = wr.shutdown().await;
                return End::LoginFailed(text.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_minute_and_resets() {
        let mut b = Backoff::new();
        let secs: Vec<u64> = (0..9).map(|_| b.delay().as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        b.reset();
        assert_eq!(b.delay(), Duration::from_secs(1));
    }

    #[test]
    fn server_time_reads_the_time_tag() {
        let m = Message::parse(b"@time=2026-01-02T03:04:05.678Z;msgid=x :a!b@c PRIVMSG #c :hi")
            .unwrap();
        let t = server_time(&m).unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05.678+00:00");
        let m = Message::parse(b"@time=yesterday :a!b@c PRIVMSG #c :hi").unwrap();
        assert!(server_time(&m).is_none());
        assert!(server_time(&Message::parse(b"PING x").unwrap()).is_none());
    }
}
