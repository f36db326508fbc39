//! The server's shared state: clients, nicks and channels, behind one lock.
//!
//! Every command runs with the lock held and only ever *queues* lines for clients (a
//! non-blocking `try_send` on each client's bounded queue), so no client can slow the
//! others: a client whose queue is full is marked to be disconnected with
//! "SendQ exceeded" and its connection task does the rest.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::irc::auth::{IrcAuth, SaslState};
use crate::irc::channel::{Channel, ClientId};
use crate::irc::flood::FloodConfig;
use crate::irc::message::Message;
use crate::irc::names;

/// What the IRC server is configured with (every limit has a `sockit serve` flag).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// The server name: the prefix of every server message and the first PONG parameter.
    pub name: String,
    /// The network name (ISUPPORT `NETWORK`).
    pub network: String,
    /// The server password clients must send with PASS, if any. With [`auth`](Self::auth)
    /// as well, a client logged in to an account passes without it.
    pub password: Option<String>,
    /// Account authentication (SASL PLAIN, `PASS account:password`); `None` offers neither.
    pub auth: Option<Arc<dyn IrcAuth>>,
    /// Failed logins one connection may make before it is closed.
    pub max_auth_failures: u32,
    /// Message-of-the-day lines; `None` answers MOTD with 422.
    pub motd: Option<Vec<String>>,
    /// Ping a client silent this long.
    pub ping_interval: Duration,
    /// Disconnect a pinged client that stays silent this long after the PING.
    pub ping_timeout: Duration,
    /// Most lines queued for one client before it is disconnected ("SendQ exceeded").
    pub sendq: usize,
    /// Most received lines waiting for processing before "Excess Flood".
    pub recvq: usize,
    /// Flood control.
    pub flood: FloodConfig,
    /// Most channels one client may be in (ISUPPORT `CHANLIMIT`).
    pub max_channels: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            name: crate::default_server_name(),
            network: "sockit".into(),
            password: None,
            auth: None,
            max_auth_failures: 3,
            motd: Some(vec![
                "Welcome to sockit's IRC server.".into(),
                "Be kind; messages are not stored.".into(),
            ]),
            ping_interval: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(120),
            sendq: 2048,
            recvq: 128,
            flood: FloodConfig::default(),
            max_channels: 50,
        }
    }
}

/// A line ready to write (CRLF included), shared by every recipient.
pub type Line = Arc<[u8]>;

/// A connection's kill switch: marks it for disconnection with a reason.
#[derive(Debug, Clone, Default)]
pub struct Killer {
    kill: CancellationToken,
    reason: Arc<Mutex<Option<String>>>,
}

impl Killer {
    /// Marks the client for disconnection with `reason` (the first reason wins).
    pub fn kill(&self, reason: &str) {
        let mut r = self.reason.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_none() {
            *r = Some(reason.to_owned());
        }
        self.kill.cancel();
    }

    /// Cancelled once the client is marked for disconnection.
    pub fn killed(&self) -> &CancellationToken {
        &self.kill
    }

    /// Why the client was marked for disconnection.
    pub fn reason(&self) -> Option<String> {
        self.reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The part of a connection other tasks may touch: its send queue and its kill switch.
#[derive(Debug, Clone)]
pub struct ClientHandle {
    tx: mpsc::Sender<Line>,
    killer: Killer,
}

impl ClientHandle {
    /// A handle and the receiving end of its queue (`capacity` lines).
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Line>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        (
            Self {
                tx,
                killer: Killer::default(),
            },
            rx,
        )
    }

    /// Queues a line without waiting; a full queue disconnects the client.
    pub fn send(&self, line: Line) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(line) {
            self.kill("SendQ exceeded");
        }
    }

    /// Queues a message.
    pub fn send_msg(&self, msg: &Message) {
        self.send(msg.to_line().into());
    }

    /// Marks the client for disconnection with `reason` (the first reason wins).
    pub fn kill(&self, reason: &str) {
        self.killer.kill(reason);
    }

    /// The kill switch alone (holding it does not keep the queue open).
    pub fn killer(&self) -> &Killer {
        &self.killer
    }
}

/// One connected client, registered or not.
#[derive(Debug)]
pub struct Client {
    /// The nick, once NICK was accepted.
    pub nick: Option<String>,
    /// The user name from USER.
    pub user: Option<String>,
    /// The real name from USER.
    pub realname: String,
    /// The client's host as shown to others (its IP).
    pub host: String,
    /// Whether registration completed (001 was sent).
    pub registered: bool,
    /// Set by `CAP LS`/`CAP REQ` until `CAP END`: registration waits.
    pub cap_negotiating: bool,
    /// The password given with PASS.
    pub pass: Option<String>,
    /// Whether the PASS argument was already checked as account credentials.
    pub pass_checked: bool,
    /// Capabilities the client enabled with `CAP REQ`.
    pub caps: BTreeSet<String>,
    /// The account the client logged in to (SASL or PASS), if any.
    pub account: Option<String>,
    /// Where the client is in a SASL exchange.
    pub sasl: SaslState,
    /// Failed logins on this connection.
    pub auth_failures: u32,
    /// User modes (`i`, `w`).
    pub modes: BTreeSet<char>,
    /// Away message, if away.
    pub away: Option<String>,
    /// Folded names of the channels the client is in.
    pub channels: BTreeSet<String>,
    /// Its queue and kill switch.
    pub handle: ClientHandle,
    /// When it connected (Unix seconds, for WHOIS 317).
    pub signon: i64,
    /// When it last sent a PRIVMSG/NOTICE (for WHOIS idle).
    pub last_spoke: Instant,
}

impl Client {
    /// A new, unregistered client.
    pub fn new(host: String, handle: ClientHandle) -> Self {
        Self {
            nick: None,
            user: None,
            realname: String::new(),
            host,
            registered: false,
            cap_negotiating: false,
            pass: None,
            pass_checked: false,
            caps: BTreeSet::new(),
            account: None,
            sasl: SaslState::Idle,
            auth_failures: 0,
            modes: BTreeSet::new(),
            away: None,
            channels: BTreeSet::new(),
            handle,
            signon: chrono::Utc::now().timestamp(),
            last_spoke: Instant::now(),
        }
    }

    /// The nick, or `*` before one is set (the target of early numerics).
    pub fn nick_or_star(&self) -> &str {
        self.nick.as_deref().unwrap_or("*")
    }

    /// `nick!user@host`, the prefix of messages from this client.
    pub fn prefix(&self) -> String {
        format!(
            "{}!{}@{}",
            self.nick_or_star(),
            self.user.as_deref().unwrap_or("*"),
            self.host
        )
    }
}

/// Clients, nicks and channels.
#[derive(Debug, Default)]
pub struct State {
    /// Every connected client.
    pub clients: HashMap<ClientId, Client>,
    /// Folded nick → client.
    pub nicks: HashMap<String, ClientId>,
    /// Folded channel name → channel.
    pub channels: HashMap<String, Channel>,
    /// The next client id.
    next_id: ClientId,
}

impl State {
    /// Adds a connection; returns its id.
    pub fn add(&mut self, client: Client) -> ClientId {
        self.next_id += 1;
        let id = self.next_id;
        self.clients.insert(id, client);
        id
    }

    /// The client with `id` looked up by nick.
    pub fn by_nick(&self, nick: &str) -> Option<ClientId> {
        self.nicks.get(&names::fold(nick)).copied()
    }

    /// Sends `msg` to every member of `chan` except `except`.
    pub fn to_channel(&self, chan: &Channel, msg: &Message, except: Option<ClientId>) {
        let line: Line = msg.to_line().into();
        for id in chan.members.keys() {
            if Some(*id) != except {
                if let Some(c) = self.clients.get(id) {
                    c.handle.send(line.clone());
                }
            }
        }
    }

    /// Every client sharing a channel with `id`, each once (`id` excluded).
    pub fn neighbours(&self, id: ClientId) -> BTreeSet<ClientId> {
        let mut out = BTreeSet::new();
        if let Some(c) = self.clients.get(&id) {
            for key in &c.channels {
                if let Some(ch) = self.channels.get(key) {
                    out.extend(ch.members.keys().copied());
                }
            }
        }
        out.remove(&id);
        out
    }

    /// Sends `msg` to `id` and everyone sharing a channel with it, each once.
    pub fn to_self_and_neighbours(&self, id: ClientId, msg: &Message) {
        let line: Line = msg.to_line().into();
        for n in self.neighbours(id).into_iter().chain([id]) {
            if let Some(c) = self.clients.get(&n) {
                c.handle.send(line.clone());
            }
        }
    }

    /// Removes `id` from channel `key`; deletes the channel when it becomes empty.
    pub fn leave(&mut self, id: ClientId, key: &str) {
        if let Some(ch) = self.channels.get_mut(key) {
            ch.members.remove(&id);
            if ch.members.is_empty() {
                self.channels.remove(key);
            }
        }
        if let Some(c) = self.clients.get_mut(&id) {
            c.channels.remove(key);
        }
    }

    /// Removes a client: tells its neighbours it quit with `reason` (if it was
    /// registered), leaves its channels, frees its nick.
    pub fn remove(&mut self, id: ClientId, reason: &str) {
        let Some(client) = self.clients.get(&id) else {
            return;
        };
        if client.registered {
            let quit = Message::new("QUIT", vec![reason.to_owned()]).with_prefix(client.prefix());
            let line: Line = quit.to_line().into();
            for n in self.neighbours(id) {
                if let Some(c) = self.clients.get(&n) {
                    c.handle.send(line.clone());
                }
            }
        }
        let keys: Vec<String> = client.channels.iter().cloned().collect();
        for key in keys {
            self.leave(id, &key);
        }
        if let Some(client) = self.clients.remove(&id) {
            if let Some(nick) = &client.nick {
                let folded = names::fold(nick);
                if self.nicks.get(&folded) == Some(&id) {
                    self.nicks.remove(&folded);
                }
            }
        }
    }

    /// Counts for LUSERS: (registered users, unregistered connections, channels).
    pub fn counts(&self) -> (usize, usize, usize) {
        let users = self.clients.values().filter(|c| c.registered).count();
        (users, self.clients.len() - users, self.channels.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(st: &mut State, nick: &str) -> (ClientId, mpsc::Receiver<Line>) {
        let (h, rx) = ClientHandle::new(4);
        let mut c = Client::new("127.0.0.1".into(), h);
        c.nick = Some(nick.into());
        c.user = Some("u".into());
        c.registered = true;
        let id = st.add(c);
        st.nicks.insert(names::fold(nick), id);
        (id, rx)
    }

    #[test]
    fn full_queue_kills_only_that_client() {
        let (h, _rx) = ClientHandle::new(2);
        for _ in 0..2 {
            h.send(Arc::from(&b"x\r\n"[..]));
        }
        assert!(!h.killer().killed().is_cancelled());
        h.send(Arc::from(&b"x\r\n"[..]));
        assert!(h.killer().killed().is_cancelled());
        assert_eq!(h.killer().reason().as_deref(), Some("SendQ exceeded"));
        h.kill("later reason");
        assert_eq!(h.killer().reason().as_deref(), Some("SendQ exceeded"));
    }

    #[test]
    fn remove_tells_neighbours_once_and_frees_nick() {
        let mut st = State::default();
        let (a, _ra) = client(&mut st, "alice");
        let (b, mut rb) = client(&mut st, "bob");
        for key in ["#x", "#y"] {
            let mut ch = Channel::new(key, a, 0);
            ch.members.insert(b, false);
            st.channels.insert(key.into(), ch);
            st.clients.get_mut(&a).unwrap().channels.insert(key.into());
            st.clients.get_mut(&b).unwrap().channels.insert(key.into());
        }
        st.remove(a, "Quit: bye");
        let got = rb.try_recv().unwrap();
        assert_eq!(&got[..], b":alice!u@127.0.0.1 QUIT :Quit: bye\r\n");
        assert!(rb.try_recv().is_err(), "QUIT sent once");
        assert!(st.by_nick("ALICE").is_none());
        assert_eq!(st.channels.len(), 2);
        st.remove(b, "x");
        assert!(st.channels.is_empty());
    }
}
