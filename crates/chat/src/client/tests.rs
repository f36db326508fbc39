//! The client connection against a scripted IRC server on loopback: the CAP and SASL
//! exchange, server-time tags, chathistory batches (a channel on join, a query on request,
//! the recent targets), a refused login, and reconnecting.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};

use super::connection::{ClientConfig, Connection, Event, Options};
use crate::irc::message::Message;

struct Peer {
    rd: BufReader<OwnedReadHalf>,
    wr: OwnedWriteHalf,
}

impl Peer {
    async fn accept(l: &TcpListener) -> Peer {
        let (s, _) = l.accept().await.unwrap();
        let (rd, wr) = TcpStream::into_split(s);
        Peer {
            rd: BufReader::new(rd),
            wr,
        }
    }

    /// The next line from the client, without CRLF.
    async fn line(&mut self) -> String {
        let mut l = String::new();
        let n = self.rd.read_line(&mut l).await.unwrap();
        assert!(n > 0, "the client closed the connection");
        l.trim_end().to_owned()
    }

    async fn expect(&mut self, want: &str) {
        assert_eq!(self.line().await, want);
    }

    async fn send(&mut self, lines: &[&str]) {
        for l in lines {
            self.wr
                .write_all(format!("{l}\r\n").as_bytes())
                .await
                .unwrap();
        }
    }
}

fn cfg(addr: std::net::SocketAddr) -> ClientConfig {
    ClientConfig {
        addr: addr.to_string(),
        nick: "alice".into(),
        realname: "Alice".into(),
        password: None,
        tls: None,
    }
}

async fn next(c: &mut Connection) -> Event {
    c.events.recv().await.expect("events ended")
}

/// The next event that is not a plain message.
async fn next_special(c: &mut Connection) -> Event {
    loop {
        match next(c).await {
            Event::Message(_) => {}
            e => return e,
        }
    }
}

#[tokio::test]
async fn negotiates_caps_logs_in_and_fetches_history_in_a_batch() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.expect("CAP LS 302").await;
        p.expect("NICK alice").await;
        p.expect("USER alice 0 * Alice").await;
        p.send(&[
            ":srv CAP * LS * :server-time message-tags batch sasl=PLAIN",
            ":srv CAP * LS :multi-prefix away-notify draft/chathistory labeled-response",
        ])
        .await;
        p.expect("CAP REQ :server-time message-tags batch multi-prefix away-notify draft/chathistory sasl")
            .await;
        p.send(&[":srv CAP * ACK :server-time message-tags batch multi-prefix away-notify draft/chathistory sasl"])
            .await;
        p.expect("AUTHENTICATE PLAIN").await;
        p.send(&["AUTHENTICATE +"]).await;
        p.expect("AUTHENTICATE AGFsaWNlAHMzY3JldA==").await;
        p.send(&[
            ":srv 900 alice alice!alice@h alice :You are now logged in as alice",
            ":srv 903 alice :SASL authentication successful",
        ])
        .await;
        p.expect("CAP END").await;
        p.send(&["@time=2026-01-02T03:04:05.000Z :srv 001 alice :Welcome"])
            .await;
        p.expect("JOIN #room").await;
        p.send(&["@time=2026-01-02T03:04:06.000Z :alice!alice@h JOIN #room"])
            .await;
        p.expect("CHATHISTORY LATEST #room * 50").await;
        p.send(&[
            ":srv BATCH +h1 chathistory #room",
            "@batch=h1;time=2026-01-01T10:00:00.000Z :bob!b@h PRIVMSG #room :old one",
            "@batch=h1;time=2026-01-01T10:00:01.000Z :bob!b@h PRIVMSG #room :old two",
            ":srv BATCH -h1",
            "@time=2026-01-02T03:04:07.000Z :bob!b@h PRIVMSG #room :new",
        ])
        .await;
        p.line().await
    });
    let opts = Options {
        account: Some(("alice".into(), "s3cret".into())),
        history: 50,
        ..Options::default()
    };
    let mut c = Connection::connect_with(&cfg(addr), opts).await.unwrap();
    assert_eq!(
        next_special(&mut c).await,
        Event::Registered("alice".into())
    );
    assert!(c.has_cap("server-time") && c.has_cap("draft/chathistory"));
    assert!(!c.has_cap("echo-message"), "not requested");
    c.send(Message::new("JOIN", vec!["#room".into()]))
        .await
        .unwrap();
    let Event::History { target, messages } = next_special(&mut c).await else {
        panic!("no history")
    };
    assert_eq!(target, "#room");
    let texts: Vec<&str> = messages.iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["old one", "old two"]);
    let t = super::server_time(&messages[0]).unwrap();
    assert_eq!(t.to_rfc3339(), "2026-01-01T10:00:00+00:00");
    let live = loop {
        if let Event::Message(m) = next(&mut c).await {
            if m.command == "PRIVMSG" {
                break m;
            }
        }
    };
    assert_eq!(live.params[1], "new", "history first, then live lines");
    assert!(super::server_time(&live).is_some());
    c.send(Message::new("QUIT", vec![])).await.unwrap();
    assert_eq!(server.await.unwrap(), "QUIT");
}

#[tokio::test]
async fn a_refused_login_is_reported_and_ends_the_connection() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        for _ in 0..3 {
            p.line().await;
        }
        p.send(&[":srv CAP * LS :sasl"]).await;
        p.expect("CAP REQ sasl").await;
        p.send(&[":srv CAP * ACK sasl"]).await;
        p.expect("AUTHENTICATE PLAIN").await;
        p.send(&["AUTHENTICATE +"]).await;
        p.line().await;
        p.send(&[":srv 904 alice :SASL authentication failed"])
            .await;
        p.expect("AUTHENTICATE *").await;
    });
    let opts = Options {
        account: Some(("alice".into(), "wrong".into())),
        reconnect: true,
        ..Options::default()
    };
    let mut c = Connection::connect_with(&cfg(addr), opts).await.unwrap();
    assert_eq!(
        next_special(&mut c).await,
        Event::LoginFailed("SASL authentication failed (904)".into())
    );
    assert_eq!(
        next_special(&mut c).await,
        Event::Closed(None),
        "no reconnect"
    );
    server.await.unwrap();
}

#[tokio::test]
async fn a_server_without_cap_still_registers() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        p.expect("CAP LS 302").await;
        p.send(&[":old 421 * CAP :Unknown command"]).await;
        p.expect("NICK alice").await;
        p.line().await;
        p.send(&[":old 001 alice :Welcome"]).await;
        p.line().await
    });
    let mut c = Connection::connect(&cfg(addr)).await.unwrap();
    assert_eq!(
        next_special(&mut c).await,
        Event::Registered("alice".into())
    );
    assert!(!c.has_cap("server-time"));
    c.send(Message::new("JOIN", vec!["#x".into()]))
        .await
        .unwrap();
    assert_eq!(
        server.await.unwrap(),
        "JOIN #x",
        "no CAP END, no CHATHISTORY"
    );
}

#[tokio::test(start_paused = true)]
async fn reconnects_with_back_off_and_rejoins() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        for _ in 0..3 {
            p.line().await;
        }
        p.send(&[":srv 001 alice :Welcome"]).await;
        p.expect("JOIN #room").await;
        p.send(&[":alice!a@h JOIN #room"]).await;
        drop(p);
        let dropped = tokio::time::Instant::now();
        // The second connection: registers again and rejoins by itself.
        let mut p = Peer::accept(&l).await;
        let waited = dropped.elapsed();
        p.expect("CAP LS 302").await;
        for _ in 0..2 {
            p.line().await;
        }
        p.send(&[":srv 001 alice :Welcome back"]).await;
        p.expect("JOIN #room").await;
        p.send(&[":alice!a@h JOIN #room"]).await;
        let last = p.line().await;
        (waited, last)
    });
    let opts = Options {
        reconnect: true,
        ..Options::default()
    };
    let mut c = Connection::connect_with(&cfg(addr), opts).await.unwrap();
    assert_eq!(
        next_special(&mut c).await,
        Event::Registered("alice".into())
    );
    c.send(Message::new("JOIN", vec!["#room".into()]))
        .await
        .unwrap();
    let Event::Reconnecting { delay, attempt, .. } = next_special(&mut c).await else {
        panic!("no reconnect")
    };
    assert_eq!((delay.as_secs(), attempt), (1, 1));
    assert_eq!(
        next_special(&mut c).await,
        Event::Registered("alice".into())
    );
    let rejoined = loop {
        if let Event::Message(m) = next(&mut c).await {
            if m.command == "JOIN" {
                break m;
            }
        }
    };
    assert_eq!(rejoined.params, ["#room"]);
    c.send(Message::new("QUIT", vec!["bye".into()]))
        .await
        .unwrap();
    let (waited, last) = server.await.unwrap();
    assert!(waited >= std::time::Duration::from_secs(1), "{waited:?}");
    assert_eq!(last, "QUIT bye");
    assert_eq!(next_special(&mut c).await, Event::Closed(None));
}

#[tokio::test]
async fn lists_recent_conversations_and_fetches_a_query_on_request() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        for _ in 0..3 {
            p.line().await;
        }
        p.send(&[":srv CAP * LS :batch draft/chathistory"]).await;
        p.expect("CAP REQ :batch draft/chathistory").await;
        p.send(&[":srv CAP * ACK :batch draft/chathistory"]).await;
        p.expect("CAP END").await;
        p.send(&[":srv 001 alice :Welcome"]).await;
        let targets = p.line().await;
        p.send(&[
            ":srv BATCH +t1 draft/chathistory-targets",
            "@batch=t1 :srv CHATHISTORY TARGETS #room 2026-12-01T09:00:00.000Z",
            "@batch=t1 :srv CHATHISTORY TARGETS bob 2026-12-01T10:00:00.000Z",
            ":srv BATCH -t1",
        ])
        .await;
        p.expect("CHATHISTORY LATEST bob * 50").await;
        p.send(&[
            ":srv BATCH +h2 chathistory bob",
            "@batch=h2;msgid=a :bob!b@h PRIVMSG alice :earlier",
            ":srv BATCH -h2",
        ])
        .await;
        targets
    });
    let opts = Options {
        history: 50,
        ..Options::default()
    };
    let mut c = Connection::connect_with(&cfg(addr), opts).await.unwrap();
    assert_eq!(
        next_special(&mut c).await,
        Event::Registered("alice".into())
    );
    assert!(c.fetch_targets().await.unwrap());
    assert_eq!(
        next_special(&mut c).await,
        Event::Targets(vec![
            ("#room".into(), "2026-12-01T09:00:00.000Z".into()),
            ("bob".into(), "2026-12-01T10:00:00.000Z".into()),
        ])
    );
    assert!(c.fetch_history("bob").await.unwrap());
    let Event::History { target, messages } = next_special(&mut c).await else {
        panic!("no history")
    };
    assert_eq!(target, "bob");
    assert_eq!(messages[0].params, ["alice", "earlier"]);
    assert_eq!(super::connection::msgid(&messages[0]).as_deref(), Some("a"));
    let targets = server.await.unwrap();
    let words: Vec<&str> = targets.split(' ').collect();
    assert_eq!(words[..2], ["CHATHISTORY", "TARGETS"]);
    assert!(words[2].starts_with("timestamp=") && words[3].starts_with("timestamp="));
    assert_eq!(words[4], "50");
}

#[tokio::test]
async fn without_chathistory_nothing_is_fetched() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let mut p = Peer::accept(&l).await;
        for _ in 0..3 {
            p.line().await;
        }
        p.send(&[":srv 001 alice :Welcome"]).await;
        p.line().await
    });
    let mut c = Connection::connect(&cfg(addr)).await.unwrap();
    assert_eq!(
        next_special(&mut c).await,
        Event::Registered("alice".into())
    );
    assert!(!c.fetch_targets().await.unwrap());
    assert!(!c.fetch_history("bob").await.unwrap());
    c.send(Message::new("QUIT", vec![])).await.unwrap();
    assert_eq!(server.await.unwrap(), "QUIT", "no CHATHISTORY was sent");
}
