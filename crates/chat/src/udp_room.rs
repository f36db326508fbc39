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

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

/// Longest message relayed (bytes of text; longer ones are cut at a character boundary).
pub const MAX_MESSAGE: usize = 4096;

/// Room settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoomConfig {
    /// A participant silent this long stops receiving.
    pub idle: Duration,
    /// Most participants remembered.
    pub max_members: usize,
}

impl Default for RoomConfig {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(600),
            max_members: 4096,
        }
    }
}

/// The room's membership (pure: time is passed in).
#[derive(Debug)]
pub struct Room {
    config: RoomConfig,
    /// Participant → when it last sent something.
    seen: HashMap<SocketAddr, Instant>,
}

/// What one datagram produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relay {
    /// The log line (also the relayed text, without newline).
    pub line: String,
    /// Who receives it.
    pub to: Vec<SocketAddr>,
}

impl Room {
    /// An empty room.
    pub fn new(config: RoomConfig) -> Self {
        Self {
            config,
            seen: HashMap::new(),
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

    /// Handles a datagram from `from` at `now` (`ctime` is the wall-clock time to log):
    /// `None` for an empty one (a join), else the line and its recipients.
    pub fn on_datagram(
        &mut self,
        from: SocketAddr,
        now: Instant,
        ctime: &str,
        datagram: &[u8],
    ) -> Option<Relay> {
        self.expire(now);
        if !self.seen.contains_key(&from) && self.seen.len() >= self.config.max_members {
            if let Some(oldest) = self.seen.iter().min_by_key(|(_, t)| **t).map(|(a, _)| *a) {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(from, now);
        let text = message_text(datagram);
        if text.is_empty() {
            return None;
        }
        let mut to: Vec<SocketAddr> = self.seen.keys().filter(|a| **a != from).copied().collect();
        to.sort();
        Some(Relay {
            line: format!("[{ctime}] {from}: {text}"),
            to,
        })
    }
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
        let (n, from) = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = socket.recv_from(&mut buf) => match r {
                Ok(x) => x,
                Err(e) => {
                    debug!(service = "udp-chat", error = %e, "recv failed");
                    continue;
                }
            },
        };
        let Some(relay) = room.on_datagram(from, Instant::now(), &ctime_now(), &buf[..n]) else {
            continue;
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
                    }
                    line.clear();
                }
            }
            r = socket.recv(&mut buf) => {
                let n = r?;
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

    #[test]
    fn relays_to_the_others_with_the_log_format() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig::default());
        assert_eq!(room.on_datagram(a(1), t0, "T", b""), None);
        assert_eq!(room.on_datagram(a(2), t0, "T", b""), None);
        let r = room
            .on_datagram(a(3), t0, "Thu Jan  1 00:00:00 2026", b"hi all\r\n")
            .unwrap();
        assert_eq!(r.line, "[Thu Jan  1 00:00:00 2026] 127.0.0.1:3: hi all");
        assert_eq!(r.to, vec![a(1), a(2)]);
    }

    #[test]
    fn idle_members_expire() {
        let t0 = Instant::now();
        let mut room = Room::new(RoomConfig {
            idle: Duration::from_secs(60),
            max_members: 10,
        });
        room.on_datagram(a(1), t0, "T", b"");
        room.on_datagram(a(2), t0 + Duration::from_secs(30), "T", b"");
        let r = room
            .on_datagram(a(3), t0 + Duration::from_secs(61), "T", b"x")
            .unwrap();
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
        });
        room.on_datagram(a(1), t0, "T", b"");
        room.on_datagram(a(2), t0 + Duration::from_secs(1), "T", b"");
        let r = room
            .on_datagram(a(3), t0 + Duration::from_secs(2), "T", b"x")
            .unwrap();
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
