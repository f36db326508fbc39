//! The UDP chat room (udp 7788) and its full-duplex client.
//!
//! ```text
//! C → S: any datagram: one message (trailing CR/LF trimmed, invalid UTF-8 replaced);
//!        an empty datagram only joins the room (or keeps a quiet member in it)
//! S:     logs "[Thu Jan  1 12:00:00 2026] 127.0.0.1:50000: hello"
//! S → C: the same line to every other participant seen in the last `idle` (default 10 min)
//! ```
//!
//! Membership is implicit, as in the course's chat room: sending anything joins, and a
//! participant silent for `idle` stops receiving. The room holds at most `max_members`
//! addresses; when full, the one silent longest makes room.
//!
//! With [`RoomConfig::guard`] on (the default off loopback), a source must first prove
//! it receives what is sent to its address, so forged sources cannot be made the target
//! of the room's traffic:
//!
//! ```text
//! C → S: anything, from an address that is not a member
//! S → C: "COOKIE 0123456789abcdef01234567 (send back to join)\n"   (never over 3× what C sent)
//! C → S: "COOKIE 0123456789abcdef01234567"  (the line sent back; the rest of it is ignored)
//! S → C: "* joined\n"; C is now a member: it receives the room and its messages are relayed
//! ```
//!
//! The cookie is stateless (an HMAC of `ip:port` and a one-minute window under a key
//! drawn at start, valid for one to two minutes); nothing is stored for a source until it
//! answers. A message from a source that is not a member is answered with the cookie and
//! not relayed. A valid cookie from a member only keeps it in the room. Every source is
//! also rate-limited ([`RoomConfig::rate`]); datagrams over the rate are dropped.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sockit_runtime::udp::recv_or_shutdown;
use sockit_runtime::udp_guard::{
    reply_limit, RateLimit, RateLimiter, ReturnPathCookies, COOKIE_LEN,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Longest message relayed (bytes of text; longer ones are cut at a character boundary).
pub const MAX_MESSAGE: usize = 4096;

/// The word a cookie challenge and its answer start with.
pub const COOKIE_WORD: &str = "COOKIE";

/// What the server answers a valid cookie from a new member.
pub const JOINED: &[u8] = b"* joined\n";

/// Room settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomConfig {
    /// A participant silent this long stops receiving.
    pub idle: Duration,
    /// Most participants remembered.
    pub max_members: usize,
    /// Return-path cookies: only a source that sent back the cookie it was sent joins
    /// the room (receives and is relayed). Off by default, as the course's naive client
    /// does not answer cookies; `sockit serve` turns it on off loopback (`--udp-guard`).
    pub guard: bool,
    /// Per-source rate limit of datagrams.
    pub rate: RateLimit,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(600),
            max_members: 4096,
            guard: false,
            rate: RateLimit::default(),
        }
    }
}

/// The room's membership (pure: time is passed in).
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    /// Participant → when it last sent something.
    seen: HashMap<SocketAddr, Instant>,
    cookies: ReturnPathCookies,
    limiter: RateLimiter,
}

/// What one datagram produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The log line (also the relayed text, without newline).
    pub line: String,
    /// Who receives it.
    pub to: Vec<SocketAddr>,
}

/// What the server does with one datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing is sent: a join, a keepalive, or a datagram over the rate.
    Nothing,
    /// The message goes to the other members.
    Relay(Relay),
    /// A datagram goes back to the sender only (the cookie challenge, or [`JOINED`]).
    Reply(Vec<u8>),
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            seen: HashMap::new(),
            cookies: ReturnPathCookies::new(Instant::now()),
            limiter: RateLimiter::new(config.rate),
        }
    }

    /// The current participants (after expiring at `now`).
    pub fn members(&mut self, now: Instant) -> Vec<SocketAddr> {
        self.expire(now);
        let mut m: Vec<SocketAddr> = self.seen.keys().copied().collect();
        m.sort();
        m
    }

    fn expire(&mut self, now: Instant) {
        let idle = self.config.idle;
        self.seen
            .retain(|_, last| now.saturating_duration_since(*last) <= idle);
    }

    /// The challenge for `to` at `now`, cut to what a request of `request_len` bytes
    /// allows.
    pub fn challenge(&self, to: SocketAddr, now: Instant, request_len: usize) -> Vec<u8> {
        let hex = hex::encode(self.cookies.issue(to, now));
        let full = format!("{COOKIE_WORD} {hex} (send back to join)\n");
        if full.len() <= reply_limit(request_len) {
            full.into_bytes()
        } else {
            format!("{COOKIE_WORD} {hex}\n").into_bytes()
        }
    }

    /// Whether `datagram` carries a cookie valid for `from` at `now`.
    fn answers_cookie(&self, from: SocketAddr, now: Instant, datagram: &[u8]) -> bool {
        parse_cookie(datagram).is_some_and(|c| self.cookies.verify(from, now, &c))
    }

    fn touch(&mut self, from: SocketAddr, now: Instant) {
        if !self.seen.contains_key(&from) && self.seen.len() >= self.config.max_members {
            if let Some(oldest) = self.seen.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a) {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(from, now);
    }

    /// Handles a datagram from `from` at `now` (`ctime` is the wall-clock time to log).
    pub fn on_datagram(
        &mut self,
        from: SocketAddr,
        now: Instant,
        ctime: &str,
        datagram: &[u8],
    ) -> Action {
        if !self.limiter.admit("udp-chat", from, now) {
            return Action::Nothing;
        }
        self.expire(now);
        if self.config.guard {
            let member = self.seen.contains_key(&from);
            if self.answers_cookie(from, now, datagram) {
                self.touch(from, now);
                return if member {
                    Action::Nothing
                } else {
                    debug!(service = "udp-chat", peer = %from, "return path proved, joined");
                    Action::Reply(JOINED.to_vec())
                };
            }
            if !member {
                debug!(service = "udp-chat", peer = %from, "not a member: cookie sent");
                return Action::Reply(self.challenge(from, now, datagram.len()));
            }
        }
        self.touch(from, now);
        let text = message_text(datagram);
        if text.is_empty() {
            return Action::Nothing;
        }
        let mut to: Vec<SocketAddr> = self.seen.keys().filter(|a| **a != from).copied().collect();
        to.sort();
        Action::Relay(Relay {
            line: format!("[{ctime}] {from}: {text}"),
            to,
        })
    }
}

/// The cookie in a challenge or its answer: `COOKIE <hex>` at the start of the datagram
/// (whatever follows the hex is ignored).
pub fn parse_cookie(datagram: &[u8]) -> Option<[u8; COOKIE_LEN]> {
    let rest = datagram.strip_prefix(COOKIE_WORD.as_bytes())?;
    let rest = rest.strip_prefix(b" ")?;
    let hex_part = rest.get(..COOKIE_LEN * 2)?;
    if rest
        .get(COOKIE_LEN * 2)
        .is_some_and(|b| !b.is_ascii_whitespace())
    {
        return None;
    }
    let mut out = [0u8; COOKIE_LEN];
    hex::decode_to_slice(hex_part, &mut out).ok()?;
    Some(out)
}

/// The text of a datagram: lossy UTF-8, trailing CR/LF trimmed, other line breaks turned
/// into spaces (one datagram is one line), cut to [`MAX_MESSAGE`] bytes.
pub fn message_text(datagram: &[u8]) -> String {
    let text = String::from_utf8_lossy(datagram);
    let mut t: String = text
        .trim_end_matches(['\r', '\n'])
        .chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect();
    if t.len() > MAX_MESSAGE {
        let mut cut = MAX_MESSAGE;
        while !t.is_char_boundary(cut) {
            cut -= 1;
        }
        t.truncate(cut);
    }
    t
}

/// Longest log line (characters); the relayed text is not cut to this.
pub const MAX_LOG_LINE: usize = 512;

/// The line as it goes to the log: control characters escaped (a datagram must not
/// drive the operator's terminal) and cut to [`MAX_LOG_LINE`] characters.
pub fn log_safe(line: &str) -> String {
    let mut out = String::new();
    for (i, c) in line.chars().enumerate() {
        if i == MAX_LOG_LINE {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Control characters escaped, nothing cut (what the client prints).
fn log_safe_full(line: &str) -> String {
    line.chars()
        .flat_map(|c| {
            let esc: Vec<char> = if c.is_control() && c != '\t' {
                c.escape_default().collect()
            } else {
                vec![c]
            };
            esc
        })
        .collect()
}

/// Local time as C's `ctime()` (and Python's `time.ctime()`) prints it:
/// `Thu Jan  1 12:00:00 2026`.
pub fn ctime_now() -> String {
    chrono::Local::now()
        .format("%a %b %e %H:%M:%S %Y")
        .to_string()
}

/// Serves the room on `socket` until `shutdown`.
///
/// # Errors
/// Never once bound: receive and send errors are logged and serving goes on.
pub async fn serve_room(
    socket: UdpSocket,
    config: RoomConfig,
    shutdown: CancellationToken,
) -> io::Result<()> {
    let mut room = Room::new(config);
    let mut buf = vec![0u8; 65536];
    loop {
        let Some((n, from)) = recv_or_shutdown(&socket, &mut buf, &shutdown, "udp-chat").await
        else {
            return Ok(());
        };
        let now = tokio::time::Instant::now().into_std();
        let relay = match room.on_datagram(from, now, &ctime_now(), &buf[..n]) {
            Action::Nothing => continue,
            Action::Reply(reply) => {
                if let Err(e) = socket.send_to(&reply, from).await {
                    debug!(service = "udp-chat", peer = %from, error = %e, "send failed");
                }
                continue;
            }
            Action::Relay(relay) => relay,
        };
        info!(service = "udp-chat", "{}", log_safe(&relay.line));
        let mut out = relay.line.into_bytes();
        out.push(b'\n');
        for to in relay.to {
            if let Err(e) = socket.send_to(&out, to).await {
                debug!(service = "udp-chat", peer = %to, error = %e, "send failed");
            }
        }
    }
}

/// The full-duplex client: joins with an empty datagram, then sends each line of `input`
/// as one datagram while printing every datagram that arrives to `output`, until `input`
/// ends or `stop` is cancelled.
///
/// A cookie challenge from a guarded server is answered at once (and not printed); the
/// line sent just before it, which the server did not relay, is sent again after the
/// answer.
///
/// # Errors
/// Reading input or writing output failed, or the server's port is closed (ICMP port
/// unreachable).
pub async fn run_client<R, W>(
    socket: &UdpSocket,
    input: R,
    mut output: W,
    stop: CancellationToken,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    socket.send(b"").await?;
    let mut lines = BufReader::new(input);
    let mut line = Vec::new();
    let mut buf = vec![0u8; 65536];
    let mut input_open = true;
    // The last line sent and not yet known to be relayed.
    let mut pending: Option<Vec<u8>> = None;
    while input_open {
        tokio::select! {
            _ = stop.cancelled() => break,
            r = lines.read_until(b'\n', &mut line) => {
                if r? == 0 {
                    input_open = false;
                } else {
                    let text = line.strip_suffix(b"\n").unwrap_or(&line);
                    let text = text.strip_suffix(b"\r").unwrap_or(text);
                    if !text.is_empty() {
                        socket.send(text).await?;
                        pending = Some(text.to_vec());
                    }
                    line.clear();
                }
            }
            r = socket.recv(&mut buf) => {
                let n = r?;
                if let Some(cookie) = parse_cookie(&buf[..n]) {
                    let answer = format!("{COOKIE_WORD} {}", hex::encode(cookie));
                    socket.send(answer.as_bytes()).await?;
                    if let Some(text) = pending.take() {
                        socket.send(&text).await?;
                    }
                    continue;
                }
                // Whatever others sent must not drive our terminal: escape controls.
                let text = String::from_utf8_lossy(&buf[..n]);
                let mut shown = log_safe_full(text.trim_end_matches('\n'));
                shown.push('\n');
                output.write_all(shown.as_bytes()).await?;
                output.flush().await?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(p: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], p))
    }

    fn relay(action: Action) -> Relay {
        match action {
            Action::Relay(r) => r,
            other => panic!("expected a relay, got {other:?}"),
        }
    }

    fn guarded() -> Room {
        Room::new(RoomConfig {
            guard: true,
            ..RoomConfig::default()
        })
    }

    fn answer(room: &mut Room, from: SocketAddr, now: Instant) -> Action {
        let Action::Reply(challenge) = room.on_datagram(from, now, "T", b"") else {
            panic!("expected a challenge");
        };
        let line = String::from_utf8(challenge).unwrap();
        let answer = line.split(" (").next().unwrap().trim_end().to_owned();
        room.on_datagram(from, now, "T", answer.as_bytes())
    }

    #[test]
    fn guard_relays_only_between_members_that_answered() {
        let t0 = Instant::now();
        let mut room = guarded();
        // A join and a message from strangers: each gets the cookie, nothing is relayed.
        let Action::Reply(c) = room.on_datagram(a(1), t0, "T", b"") else {
            panic!("no challenge");
        };
        assert!(
            c.starts_with(b"COOKIE ") && c.len() <= reply_limit(0),
            "{c:?}"
        );
        assert!(matches!(
            room.on_datagram(a(2), t0, "T", b"hello"),
            Action::Reply(_)
        ));
        assert_eq!(room.members(t0), Vec::<SocketAddr>::new());
        // Answering joins.
        assert_eq!(answer(&mut room, a(1), t0), Action::Reply(JOINED.to_vec()));
        assert_eq!(answer(&mut room, a(2), t0), Action::Reply(JOINED.to_vec()));
        let r = relay(room.on_datagram(a(2), t0, "T", b"hello"));
        assert_eq!(r.to, vec![a(1)]);
        // A stranger's message reaches nobody; a member's does not reach the stranger.
        assert!(matches!(
            room.on_datagram(a(3), t0, "T", b"spam"),
            Action::Reply(_)
        ));
        assert_eq!(relay(room.on_datagram(a(1), t0, "T", b"hi")).to, vec![a(2)]);
        // A member answering again stays a member, silently.
        let again = room.challenge(a(1), t0, 0);
        let again = String::from_utf8(again).unwrap();
        let again = again.split(" (").next().unwrap().to_owned();
        assert_eq!(
            room.on_datagram(a(1), t0, "T", again.as_bytes()),
            Action::Nothing
        );
        // An empty datagram from a member is a keepalive, as without the guard.
        assert_eq!(room.on_datagram(a(1), t0, "T", b""), Action::Nothing);
    }

    #[test]
    fn a_cookie_only_works_for_its_address_and_window() {
        let t0 = Instant::now();
        let mut room = guarded();
        let Action::Reply(c) = room.on_datagram(a(1), t0, "T", b"") else {
            panic!("no challenge");
        };
        let cookie = parse_cookie(&c).unwrap();
        let answer = format!("COOKIE {}", hex::encode(cookie));
        // Another port with a's cookie gets its own challenge instead.
        assert!(matches!(
            room.on_datagram(a(9), t0, "T", answer.as_bytes()),
            Action::Reply(r) if r != JOINED
        ));
        // Too late.
        let late = t0 + Duration::from_secs(200);
        assert!(matches!(
            room.on_datagram(a(1), late, "T", answer.as_bytes()),
            Action::Reply(r) if r != JOINED
        ));
        assert_eq!(
            room.on_datagram(a(1), t0, "T", answer.as_bytes()),
            Action::Reply(JOINED.to_vec())
        );
    }

    #[test]
    fn cookie_parsing_is_total() {
        let hex = "00112233445566778899aabb";
        assert!(parse_cookie(format!("COOKIE {hex}").as_bytes()).is_some());
        assert!(parse_cookie(format!("COOKIE {hex} (send back to join)\n").as_bytes()).is_some());
        assert!(parse_cookie(format!("COOKIE {hex}ff").as_bytes()).is_none());
        assert!(parse_cookie(b"COOKIE zz").is_none());
        assert!(parse_cookie(b"COOKIE").is_none());
        assert!(parse_cookie(b"").is_none());
        assert!(parse_cookie("COOKIE é€€€€€€€€€€€€€€€€€€€€€".as_bytes()).is_none());
    }

    #[test]
    fn a_flood_from_one_source_is_dropped() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig {
            rate: RateLimit {
                per_second: 10,
                burst: 10,
                max_sources: 100,
            },
            ..RoomConfig::default()
        });
        room.on_datagram(a(1), t0, "T", b"");
        let flooder = SocketAddr::from(([192, 0, 2, 2], 2));
        let relayed = (0..1000)
            .filter(|_| matches!(room.on_datagram(flooder, t0, "T", b"x"), Action::Relay(_)))
            .count();
        assert_eq!(relayed, 10);
    }

    #[test]
    fn relays_to_the_others_with_the_log_format() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        assert_eq!(room.on_datagram(a(1), t0, "T", b""), Action::Nothing);
        assert_eq!(room.on_datagram(a(2), t0, "T", b""), Action::Nothing);
        let r = relay(room.on_datagram(a(3), t0, "Thu Jan  1 00:00:00 2026", b"hi all\r\n"));
        assert_eq!(r.line, "[Thu Jan  1 00:00:00 2026] 127.0.0.1:3: hi all");
        assert_eq!(r.to, vec![a(1), a(2)]);
    }

    #[test]
    fn idle_members_expire() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig {
            idle: Duration::from_secs(60),
            max_members: 10,
            ..RoomConfig::default()
        });
        room.on_datagram(a(1), t0, "T", b"");
        room.on_datagram(a(2), t0 + Duration::from_secs(30), "T", b"");
        let r = relay(room.on_datagram(a(3), t0 + Duration::from_secs(61), "T", b"x"));
        assert_eq!(r.to, vec![a(2)]);
        assert_eq!(
            room.members(t0 + Duration::from_secs(200)),
            Vec::<SocketAddr>::new()
        );
    }

    #[test]
    fn full_room_drops_the_longest_silent() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig {
            idle: Duration::from_secs(60),
            max_members: 2,
            ..RoomConfig::default()
        });
        room.on_datagram(a(1), t0, "T", b"");
        room.on_datagram(a(2), t0 + Duration::from_secs(1), "T", b"");
        let r = relay(room.on_datagram(a(3), t0 + Duration::from_secs(2), "T", b"x"));
        assert_eq!(r.to, vec![a(2)]);
    }

    #[test]
    fn log_lines_are_escaped_and_short() {
        assert_eq!(log_safe("a\x1b[2Jb\x07"), "a\\u{1b}[2Jb\\u{7}");
        assert_eq!(log_safe(&"x".repeat(600)).chars().count(), MAX_LOG_LINE + 1);
    }

    #[test]
    fn text_is_one_line_and_bounded() {
        assert_eq!(message_text(b"a\r\nb\n"), "a  b");
        assert_eq!(message_text(b"\xff"), "\u{fffd}");
        assert!(message_text(&vec![b'x'; 70000]).len() <= MAX_MESSAGE);
    }
}
