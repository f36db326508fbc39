//! A raw-socket IRC client for tests and a server started on a free port.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use sockit_chat::irc::tags::Tags;
use sockit_chat::irc::{IrcServer, Message, ServerConfig};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// How long a test waits for any one line.
pub const LINE_WAIT: Duration = Duration::from_secs(10);

/// A running server; cancelled on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    pub token: CancellationToken,
    pub server: IrcServer,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.token.cancel();
    }
}

/// A test configuration: name `irc.test`, no flood control, the given tweaks.
pub fn config() -> ServerConfig {
    ServerConfig {
        name: "irc.test".into(),
        flood: sockit_chat::irc::FloodConfig {
            penalty: Duration::ZERO,
            burst: Duration::ZERO,
        },
        ..ServerConfig::default()
    }
}

/// Starts a server on 127.0.0.1:0 (bound before this returns: no readiness wait needed).
pub async fn start(cfg: ServerConfig) -> TestServer {
    let listener = bind_tcp("127.0.0.1:0".parse().unwrap(), 1024).unwrap();
    let addr = listener.local_addr().unwrap();
    let token = CancellationToken::new();
    let server = IrcServer::new(cfg);
    tokio::spawn(serve_tcp(
        listener,
        Arc::new(server.clone()),
        Limits {
            max_conns_per_ip: 10_000,
            ..Limits::default()
        },
        token.clone(),
    ));
    TestServer {
        addr,
        token,
        server,
    }
}

/// A raw line-oriented client.
pub struct Raw {
    pub rd: BufReader<OwnedReadHalf>,
    pub wr: OwnedWriteHalf,
}

impl Raw {
    pub async fn connect(addr: SocketAddr) -> Raw {
        Self::from_stream(TcpStream::connect(addr).await.unwrap())
    }

    pub fn from_stream(s: TcpStream) -> Raw {
        let (rd, wr) = s.into_split();
        Raw {
            rd: BufReader::new(rd),
            wr,
        }
    }

    /// Connects and registers as `nick`; returns after the end of the MOTD.
    pub async fn register(addr: SocketAddr, nick: &str) -> Raw {
        let mut c = Self::connect(addr).await;
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :Real {nick}")).await;
        c.until(|m| m.command == "376" || m.command == "422").await;
        c
    }

    /// Connects, negotiates `caps` with `CAP LS 302` / `CAP REQ` (asserting the ACK),
    /// registers as `nick`; returns after the end of the MOTD.
    pub async fn register_with(addr: SocketAddr, nick: &str, caps: &str) -> Raw {
        let mut c = Self::connect(addr).await;
        c.send("CAP LS 302").await;
        loop {
            let ls = c.expect("CAP").await;
            if ls.param(2) != Some("*") {
                break;
            }
        }
        c.send(&format!("CAP REQ :{caps}")).await;
        let ack = c.expect("CAP").await;
        assert_eq!(ack.params[1..], ["ACK", caps], "{ack}");
        c.send(&format!("NICK {nick}")).await;
        c.send(&format!("USER {nick} 0 * :Real {nick}")).await;
        c.send("CAP END").await;
        c.until(|m| m.command == "376" || m.command == "422").await;
        c
    }

    pub async fn send(&mut self, line: &str) {
        self.wr
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    /// The next line (without CRLF), or `None` at EOF.
    pub async fn try_line(&mut self) -> Option<String> {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(LINE_WAIT, self.rd.read_until(b'\n', &mut buf))
            .await
            .expect("timed out waiting for a line")
            .ok()?;
        if n == 0 {
            return None;
        }
        // IRCv3 tags come before the 512 bytes of the rest.
        let tag_len = if buf.first() == Some(&b'@') {
            let end = buf.iter().position(|&b| b == b' ').unwrap_or(buf.len());
            assert!(
                end < sockit_chat::irc::tags::MAX_TAG_SECTION,
                "tag section over the limit: {}",
                end + 1
            );
            end + 1
        } else {
            0
        };
        assert!(
            buf.len() - tag_len <= 512,
            "line over 512 bytes: {}",
            buf.len()
        );
        assert!(buf.ends_with(b"\r\n"), "line without CRLF: {buf:?}");
        Some(String::from_utf8_lossy(&buf[..buf.len() - 2]).into_owned())
    }

    /// The next line; panics at EOF.
    pub async fn line(&mut self) -> String {
        self.try_line().await.expect("connection closed")
    }

    /// The next message.
    pub async fn msg(&mut self) -> Message {
        let l = self.line().await;
        Message::parse(l.as_bytes()).unwrap_or_else(|e| panic!("bad line {l:?}: {e}"))
    }

    /// Reads messages until one matches; returns it (at most 10,000 lines).
    pub async fn until(&mut self, pred: impl Fn(&Message) -> bool) -> Message {
        for _ in 0..10_000 {
            let m = self.msg().await;
            if pred(&m) {
                return m;
            }
        }
        panic!("no matching message in 10,000 lines");
    }

    /// Reads until a message with `command` (e.g. a numeric).
    pub async fn until_cmd(&mut self, command: &str) -> Message {
        self.until(|m| m.command == command).await
    }

    /// Expects the very next message to have `command`.
    pub async fn expect(&mut self, command: &str) -> Message {
        let m = self.msg().await;
        assert_eq!(m.command, command, "expected {command}, got {m}");
        m
    }

    /// Reads until EOF (at most 10,000 lines); returns the lines read.
    pub async fn until_closed(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for _ in 0..10_000 {
            match self.try_line().await {
                Some(l) => out.push(l),
                None => return out,
            }
        }
        panic!("connection not closed after 10,000 lines");
    }

    /// A round trip: PING and wait for its PONG (everything sent before has been handled).
    pub async fn sync(&mut self, token: &str) -> Vec<Message> {
        self.send(&format!("PING {token}")).await;
        let mut before = Vec::new();
        for _ in 0..10_000 {
            let m = self.msg().await;
            if m.command == "PONG" && m.param(1) == Some(token) {
                return before;
            }
            before.push(m);
        }
        panic!("no PONG");
    }
}

/// The tags of a received message.
pub fn tags(m: &Message) -> Tags {
    Tags::parse(m.tags.as_deref().unwrap_or(""))
}
