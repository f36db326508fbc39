//! A client connection: registers (NICK/USER, PASS), picks another nick when the wanted
//! one is taken, answers PINGs, and hands every message to the front end as an [`Event`].

use std::io;
use std::sync::{Arc, Mutex};

use sockit_wire::client::dial;
use sockit_wire::connection::BoxedStream;
use sockit_wire::tls::{Fingerprint, Trust};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf};
use tokio::sync::mpsc;

use crate::irc::line::{Line, LineBuffer};
use crate::irc::message::{Message, MAX_LINE};
use crate::irc::names;
use crate::irc::tags::MAX_TAG_SECTION;

/// Longest line accepted from the server, CRLF included: a full IRCv3 tag section
/// (`@`, 4,607 bytes in all: the server's 510 and a client's 4,094 bytes of tag data) and
/// the 512 bytes of the rest. Longer lines are skipped.
pub const MAX_SERVER_LINE: usize = MAX_TAG_SECTION + MAX_LINE;

/// What to connect as.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `HOST:PORT`.
    pub addr: String,
    /// The wanted nick (`_` is appended while it is taken).
    pub nick: String,
    /// The real name.
    pub realname: String,
    /// The server password, if any.
    pub password: Option<String>,
    /// `Some`: speak TLS (port 6697) and trust the server as given.
    pub tls: Option<Trust>,
}

/// What the connection reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Registration completed (001) with this nick.
    Registered(String),
    /// A message from the server (PINGs are answered and not reported).
    Message(Message),
    /// The connection ended, with the server's ERROR text if it sent one.
    Closed(Option<String>),
}

/// A connected client. Dropping it closes the connection.
#[derive(Debug)]
pub struct Connection {
    out: mpsc::Sender<Message>,
    /// Events from the server, in order; ends with [`Event::Closed`].
    pub events: mpsc::Receiver<Event>,
    nick: Arc<Mutex<String>>,
    /// The host and fingerprint recorded on first use (TLS with a known-hosts file), if
    /// this connection recorded one.
    pub recorded: Option<(String, Fingerprint)>,
}

impl Connection {
    /// Connects and starts registration; the first events are the welcome burst.
    ///
    /// # Errors
    /// The TCP connection or the TLS handshake failed, or the server was not trusted.
    pub async fn connect(cfg: &ClientConfig) -> io::Result<Connection> {
        let dialed = dial(&cfg.addr, cfg.tls.as_ref())
            .await
            .map_err(io::Error::other)?;
        let recorded = dialed.recorded;
        let (rd, mut wr) = tokio::io::split(dialed.stream);
        let (out, mut out_rx) = mpsc::channel::<Message>(256);
        let (ev_tx, events) = mpsc::channel(1024);
        let nick = Arc::new(Mutex::new(cfg.nick.clone()));

        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                if wr.write_all(&m.to_line()).await.is_err() {
                    break;
                }
            }
            let _ = wr.shutdown().await;
        });

        if let Some(p) = &cfg.password {
            out.send(Message::new("PASS", vec![p.clone()])).await.ok();
        }
        out.send(Message::new("NICK", vec![cfg.nick.clone()]))
            .await
            .ok();
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
        out.send(Message::new(
            "USER",
            vec![user, "0".into(), "*".into(), cfg.realname.clone()],
        ))
        .await
        .ok();

        tokio::spawn(read_loop(rd, out.clone(), ev_tx, nick.clone()));
        Ok(Connection {
            out,
            events,
            nick,
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
        self.nick.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn read_loop(
    rd: ReadHalf<BoxedStream>,
    out: mpsc::Sender<Message>,
    events: mpsc::Sender<Event>,
    nick: Arc<Mutex<String>>,
) {
    let mut rd = BufReader::new(rd);
    let mut lines = LineBuffer::new(MAX_SERVER_LINE);
    let mut registered = false;
    let mut error = None;
    loop {
        let chunk = match rd.fill_buf().await {
            Ok([]) | Err(_) => break,
            Ok(c) => c.to_vec(),
        };
        rd.consume(chunk.len());
        lines.push(&chunk);
        while let Some(line) = lines.pop() {
            let Line::Text(bytes) = line else { continue };
            let Ok(m) = Message::parse(&bytes) else {
                continue;
            };
            let current = nick.lock().unwrap_or_else(|p| p.into_inner()).clone();
            match m.command.as_str() {
                "PING" => {
                    let token = m.params.last().cloned().unwrap_or_default();
                    let _ = out.send(Message::new("PONG", vec![token])).await;
                    continue;
                }
                "001" => {
                    registered = true;
                    if let Some(n) = m.param(0) {
                        *nick.lock().unwrap_or_else(|p| p.into_inner()) = n.to_owned();
                    }
                    let n = nick.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    let _ = events.send(Event::Registered(n)).await;
                }
                "433" | "432" if !registered => {
                    // Taken or refused: try another nick, bounded by NICKLEN.
                    let mut next: String = current.chars().take(names::NICKLEN - 1).collect();
                    next.push('_');
                    if next == current || !names::valid_nick(&next) {
                        next = "sockit_".into();
                    }
                    *nick.lock().unwrap_or_else(|p| p.into_inner()) = next.clone();
                    let _ = out.send(Message::new("NICK", vec![next])).await;
                }
                "NICK" if m.source_nick().is_some_and(|s| names::eq(s, &current)) => {
                    if let Some(n) = m.param(0) {
                        *nick.lock().unwrap_or_else(|p| p.into_inner()) = n.to_owned();
                    }
                }
                "ERROR" => error = m.param(0).map(str::to_owned),
                _ => {}
            }
            if events.send(Event::Message(m)).await.is_err() {
                return;
            }
        }
    }
    let _ = events.send(Event::Closed(error)).await;
}
