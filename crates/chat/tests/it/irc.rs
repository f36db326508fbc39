//! The IRC server over real sockets, as a raw-socket client sees it.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{config, start, Raw};
use sockit_chat::irc::FloodConfig;
use sockit_chat::irc::{IrcServer, Message, ServerConfig};
use sockit_runtime::guarded::{GuardedStream, RequestClock};
use sockit_runtime::server::{ConnInfo, Limits};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Numerics (after the nick) of `msgs`, in order.
fn codes(msgs: &[sockit_chat::irc::Message]) -> Vec<String> {
    msgs.iter().map(|m| m.command.clone()).collect()
}

#[tokio::test]
async fn registration_order_as_modern_ircdocs_orders_it() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("NICK alice").await;
    c.send("USER alice 0 * :Alice Liddell").await;
    let mut got = Vec::new();
    loop {
        let m = c.msg().await;
        let done = m.command == "376";
        assert_eq!(m.prefix.as_deref(), Some("irc.test"), "{m}");
        assert_eq!(m.param(0), Some("alice"), "{m}");
        got.push(m);
        if done {
            break;
        }
    }
    let c5: Vec<String> = codes(&got);
    let n005 = c5.iter().filter(|c| *c == "005").count();
    assert!(n005 >= 2, "ISUPPORT spans lines: {c5:?}");
    let mut want: Vec<&str> = vec!["001", "002", "003", "004"];
    want.extend(std::iter::repeat_n("005", n005));
    want.extend([
        "251", "252", "253", "254", "255", "265", "266", "375", "372", "372", "376",
    ]);
    assert_eq!(c5, want);
    assert!(got[0].params[1].contains("alice!alice@127.0.0.1"));
    assert_eq!(got[3].params[1], "irc.test");
    let tokens: Vec<&str> = got
        .iter()
        .filter(|m| m.command == "005")
        .flat_map(|m| {
            let p = &m.params[1..m.params.len() - 1];
            assert!(p.len() <= 13, "at most 13 tokens a line: {m}");
            assert_eq!(m.params.last().unwrap(), "are supported by this server");
            p.iter().map(String::as_str)
        })
        .collect();
    for t in [
        "CHANTYPES=#",
        "NICKLEN=30",
        "CHANNELLEN=50",
        "CASEMAPPING=rfc1459",
        "PREFIX=(ov)@+",
        "CHANMODES=beI,k,l,imnst",
        "EXCEPTS=e",
        "INVEX=I",
        "ELIST=CMNTU",
        "BOT=B",
        "WHOX",
        "MONITOR=100",
        "MODES=4",
        "STATUSMSG=@+",
        "MAXLIST=beI:100",
        "NETWORK=sockit",
        "AWAYLEN=200",
        "TOPICLEN=390",
        "KICKLEN=255",
        "CHANLIMIT=#:50",
    ] {
        assert!(tokens.contains(&t), "{t} missing from {tokens:?}");
    }
}

#[tokio::test]
async fn irssi_probe_cap_ls_302_and_bare_join_then_registration() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP LS 302").await;
    c.send("JOIN :").await;
    let ls = c.expect("CAP").await;
    assert_eq!(ls.params[..2], ["*", "LS"]);
    let offered: Vec<&str> = ls.params[2].split(' ').collect();
    assert!(offered.contains(&"message-tags"), "{offered:?}");
    assert!(
        !offered.iter().any(|c| c.starts_with("sasl")),
        "{offered:?}"
    );
    let e = c.expect("451").await;
    assert_eq!(e.params, vec!["*", "You have not registered"]);
    c.send("NICK irssi").await;
    c.send("USER irssi irssi 127.0.0.1 :Irssi User").await;
    // Held until CAP END: a PING round trip shows nothing else arrived.
    let before = c.sync("held").await;
    assert!(
        before.is_empty(),
        "registration must wait for CAP END: {before:?}"
    );
    c.send("CAP END").await;
    c.expect("001").await;
    c.until_cmd("376").await;
    c.send("JOIN #irssi").await;
    let j = c.expect("JOIN").await;
    assert_eq!(j.prefix.as_deref(), Some("irssi!irssi@127.0.0.1"));
}

#[tokio::test]
async fn cap_req_of_an_unknown_cap_is_refused_and_list_is_empty() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("CAP REQ :multi-prefix sasl").await;
    let nak = c.expect("CAP").await;
    assert_eq!(
        nak.params,
        vec!["*", "NAK", "multi-prefix sasl"],
        "no sasl without accounts"
    );
    c.send("CAP LIST").await;
    assert_eq!(c.expect("CAP").await.params, vec!["*", "LIST", ""]);
    c.send("CAP BOGUS").await;
    assert_eq!(c.expect("410").await.param(1), Some("BOGUS"));
    c.send("NICK a").await;
    c.send("USER a 0 * :a").await;
    c.send("CAP END").await;
    c.expect("001").await;
}

#[tokio::test]
async fn no_motd_gets_422() {
    let s = start(ServerConfig {
        motd: None,
        ..config()
    })
    .await;
    let mut c = Raw::connect(s.addr).await;
    c.send("NICK a").await;
    c.send("USER a 0 * :a").await;
    let m = c.until(|m| m.command == "422" || m.command == "376").await;
    assert_eq!(m.command, "422");
}

#[tokio::test]
async fn password_required() {
    let s = start(ServerConfig {
        password: Some("sesame".into()),
        ..config()
    })
    .await;
    let mut bad = Raw::connect(s.addr).await;
    bad.send("PASS wrong").await;
    bad.send("NICK a").await;
    bad.send("USER a 0 * :a").await;
    bad.expect("464").await;
    let rest = bad.until_closed().await;
    assert!(rest[0].starts_with("ERROR :Closing Link"), "{rest:?}");

    let mut good = Raw::connect(s.addr).await;
    good.send("PASS sesame").await;
    good.send("NICK a").await;
    good.send("USER a 0 * :a").await;
    good.expect("001").await;
    good.send("PASS again").await;
    good.until_cmd("462").await;
}

#[tokio::test]
async fn ping_pong_server_name_first() {
    let s = start(config()).await;
    let mut c = Raw::connect(s.addr).await;
    c.send("PING :before registration").await;
    let p = c.expect("PONG").await;
    assert_eq!(p.prefix.as_deref(), Some("irc.test"));
    assert_eq!(p.params, vec!["irc.test", "before registration"]);
    c.send("PING").await;
    c.expect("409").await;
}

#[tokio::test]
async fn two_clients_chat_and_see_join_part_nick_quit() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    let mut b = Raw::register(s.addr, "bob").await;
    a.send("JOIN #room").await;
    let j = a.expect("JOIN").await;
    assert_eq!(j.params, vec!["#room"]);
    let names = a.expect("353").await;
    assert_eq!(names.params, vec!["alice", "=", "#room", "@alice"]);
    a.expect("366").await;

    b.send("JOIN #ROOM").await;
    let j = b.expect("JOIN").await;
    assert_eq!(j.params, vec!["#room"], "casemapping finds the channel");
    let names = b.expect("353").await;
    assert_eq!(names.params[3], "@alice bob");
    b.expect("366").await;
    let seen = a.expect("JOIN").await;
    assert_eq!(seen.prefix.as_deref(), Some("bob!bob@127.0.0.1"));

    a.send("PRIVMSG #room :hello bob").await;
    let m = b.expect("PRIVMSG").await;
    assert_eq!(m.prefix.as_deref(), Some("alice!alice@127.0.0.1"));
    assert_eq!(m.params, vec!["#room", "hello bob"]);
    b.send("PRIVMSG #room :hi alice").await;
    assert_eq!(a.expect("PRIVMSG").await.params[1], "hi alice");
    b.send("PRIVMSG alice :private").await;
    assert_eq!(a.expect("PRIVMSG").await.params, vec!["alice", "private"]);
    b.send("NOTICE #room :note").await;
    assert_eq!(a.expect("NOTICE").await.params, vec!["#room", "note"]);

    b.send("NICK robert").await;
    let n = b.expect("NICK").await;
    assert_eq!(n.prefix.as_deref(), Some("bob!bob@127.0.0.1"));
    assert_eq!(n.params, vec!["robert"]);
    assert_eq!(a.expect("NICK").await.params, vec!["robert"]);

    b.send("PART #room :later").await;
    assert_eq!(b.expect("PART").await.params, vec!["#room", "later"]);
    let p = a.expect("PART").await;
    assert_eq!(p.prefix.as_deref(), Some("robert!bob@127.0.0.1"));
    b.send("JOIN #room").await;
    a.expect("JOIN").await;

    b.send("QUIT :bye all").await;
    let rest = b.until_closed().await;
    assert!(
        rest.iter()
            .any(|l| l == "ERROR :Closing Link: 127.0.0.1 (Quit: bye all)"),
        "{rest:?}"
    );
    let q = a.expect("QUIT").await;
    assert_eq!(q.prefix.as_deref(), Some("robert!bob@127.0.0.1"));
    assert_eq!(q.params, vec!["Quit: bye all"]);
}

#[tokio::test]
async fn channel_sync_queries_irssi_waits_for() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    a.send("JOIN #c").await;
    a.until_cmd("366").await;
    a.send("MODE #c").await;
    assert_eq!(a.expect("324").await.params, vec!["alice", "#c", "+nt"]);
    a.expect("329").await;
    a.send("MODE #c b").await;
    assert_eq!(a.expect("368").await.params[1], "#c");
    a.send("WHO #c").await;
    let w = a.expect("352").await;
    assert_eq!(
        w.params,
        vec![
            "alice",
            "#c",
            "alice",
            "127.0.0.1",
            "irc.test",
            "alice",
            "H@",
            "0 Real alice"
        ]
    );
    assert_eq!(a.expect("315").await.params[1], "#c");
}

#[tokio::test]
async fn topic_mode_kick_list_whois() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    let mut b = Raw::register(s.addr, "bob").await;
    a.send("JOIN #c").await;
    a.until_cmd("366").await;
    b.send("JOIN #c").await;
    b.until_cmd("366").await;
    a.expect("JOIN").await;

    b.send("TOPIC #c").await;
    b.expect("331").await;
    b.send("TOPIC #c :bob's topic").await;
    assert_eq!(b.expect("482").await.params[1], "#c");
    a.send("TOPIC #c :the topic").await;
    assert_eq!(a.expect("TOPIC").await.params, vec!["#c", "the topic"]);
    assert_eq!(b.expect("TOPIC").await.params[1], "the topic");
    b.send("TOPIC #c").await;
    assert_eq!(b.expect("332").await.params[2], "the topic");
    assert_eq!(b.expect("333").await.params[2], "alice");

    a.send("MODE #c -t").await;
    assert_eq!(a.expect("MODE").await.params, vec!["#c", "-t"]);
    assert_eq!(b.expect("MODE").await.params, vec!["#c", "-t"]);
    b.send("TOPIC #c :now bob can").await;
    assert_eq!(b.expect("TOPIC").await.params[1], "now bob can");
    assert_eq!(a.expect("TOPIC").await.params[1], "now bob can");
    a.send("MODE #c +o bob").await;
    let m = b.expect("MODE").await;
    assert_eq!(m.params, vec!["#c", "+o", "bob"]);
    a.expect("MODE").await;
    b.send("NAMES #c").await;
    assert_eq!(b.expect("353").await.params[3], "@alice @bob");
    b.expect("366").await;

    b.send("LIST").await;
    b.expect("321").await;
    assert_eq!(
        b.expect("322").await.params,
        vec!["bob", "#c", "2", "now bob can"]
    );
    b.expect("323").await;

    a.send("WHOIS bob").await;
    let w = a.expect("311").await;
    assert_eq!(
        w.params,
        vec!["alice", "bob", "bob", "127.0.0.1", "*", "Real bob"]
    );
    assert_eq!(a.expect("319").await.params[2], "@#c");
    a.expect("312").await;
    a.expect("317").await;
    a.expect("318").await;

    b.send("KICK #c alice :out").await;
    let k = a.expect("KICK").await;
    assert_eq!(k.params, vec!["#c", "alice", "out"]);
    assert_eq!(b.expect("KICK").await.params[1], "alice");
    a.send("PRIVMSG #c :still here?").await;
    assert_eq!(
        a.expect("404").await.params[1],
        "#c",
        "+n keeps outsiders out"
    );
}

#[tokio::test]
async fn every_error_numeric() {
    let s = start(config()).await;
    let mut x = Raw::connect(s.addr).await;
    x.send("PRIVMSG #c :early").await;
    assert_eq!(x.expect("451").await.params[0], "*");
    x.send("NICK").await;
    x.expect("431").await;
    x.send("NICK 9lives").await;
    assert_eq!(x.expect("432").await.params[1], "9lives");
    x.send("USER onlytwo x").await;
    assert_eq!(x.expect("461").await.params[1], "USER");

    let mut a = Raw::register(s.addr, "Alice[1]").await;
    let mut b = Raw::register(s.addr, "bob").await;
    b.send("NICK alice{1}").await;
    assert_eq!(
        b.expect("433").await.params[1],
        "alice{1}",
        "rfc1459 casemapping"
    );
    b.send("NICK bad,nick").await;
    b.expect("432").await;
    b.send("FROBNICATE x").await;
    assert_eq!(b.expect("421").await.params[1], "FROBNICATE");
    b.send("PRIVMSG nobody :hi").await;
    assert_eq!(b.expect("401").await.params[1], "nobody");
    b.send("PRIVMSG #nochan :hi").await;
    assert_eq!(b.expect("403").await.params[1], "#nochan");
    b.send("PRIVMSG").await;
    b.expect("411").await;
    b.send("PRIVMSG alice[1]").await;
    b.expect("412").await;
    b.send("NOTICE nobody :no errors for notices").await;
    b.send("JOIN").await;
    assert_eq!(b.expect("461").await.params[1], "JOIN");
    b.send("JOIN :").await;
    b.expect("461").await;
    b.send("JOIN bad").await;
    assert_eq!(b.expect("403").await.params[1], "bad");
    b.send("PART #nochan").await;
    b.expect("403").await;
    a.send("JOIN #c").await;
    a.until_cmd("366").await;
    b.send("PART #c").await;
    assert_eq!(b.expect("442").await.params[1], "#c");
    b.send("TOPIC #c :x").await;
    b.expect("442").await;
    b.send("KICK #c alice[1]").await;
    b.expect("442").await;
    b.send("JOIN #c").await;
    b.until_cmd("366").await;
    b.send("KICK #c alice[1]").await;
    b.expect("482").await;
    b.send("MODE #c +t").await;
    b.expect("482").await;
    a.send("KICK #c nobody").await;
    a.until_cmd("401").await;
    let mut c = Raw::register(s.addr, "carol").await;
    a.send("KICK #c carol").await;
    assert_eq!(a.until_cmd("441").await.params[1], "carol");
    a.send("MODE #c +z").await;
    assert_eq!(a.expect("472").await.params[1], "z");
    a.send("MODE bob +i").await;
    a.expect("502").await;
    a.send("MODE alice[1] +iZ").await;
    a.expect("501").await;
    assert_eq!(a.expect("MODE").await.params, vec!["Alice[1]", "+i"]);
    a.send("KICK #c").await;
    a.expect("461").await;
    a.send("WHOIS").await;
    a.expect("431").await;
    a.send("WHOIS ghost").await;
    a.expect("401").await;
    a.expect("318").await;
    c.send("USER again 0 * :x").await;
    c.expect("462").await;
    c.send("PRIVMSG #c :outsider").await;
    c.expect("404").await;
}

#[tokio::test]
async fn over_long_lines_and_invalid_utf8_break_nobody() {
    let s = start(config()).await;
    let mut a = Raw::register(s.addr, "alice").await;
    let mut b = Raw::register(s.addr, "bob").await;
    for c in [&mut a, &mut b] {
        c.send("JOIN #c").await;
        c.until_cmd("366").await;
    }
    a.expect("JOIN").await;
    let long = format!("PRIVMSG #c :{}", "x".repeat(2000));
    a.send(&long).await;
    a.expect("417").await;
    a.send_raw(b"PRIVMSG #c :caf\xe9 \xff\xfe ok\r\n").await;
    let m = b.expect("PRIVMSG").await;
    assert_eq!(m.params[1], "caf\u{fffd} \u{fffd}\u{fffd} ok");
    a.send_raw(b"\x00\x01\x02 garbage\r\n\r\n:only.prefix\r\n")
        .await;
    // A maximal message from a long nick is cut to 512 bytes for the recipient.
    let text = "y".repeat(510 - "PRIVMSG #c :".len());
    a.send(&format!("PRIVMSG #c :{text}")).await;
    let got = b.expect("PRIVMSG").await;
    assert!(text.starts_with(&got.params[1]));
    a.sync("still-fine").await;
}

#[tokio::test]
async fn ping_timeout_disconnects_a_silent_client() {
    let s = start(ServerConfig {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        ..config()
    })
    .await;
    let mut silent = Raw::register(s.addr, "silent").await;
    let mut alive = Raw::register(s.addr, "alive").await;
    for c in [&mut silent, &mut alive] {
        c.send("JOIN #c").await;
        c.until_cmd("366").await;
    }
    silent.expect("JOIN").await;
    let started = Instant::now();
    let ping = alive.until_cmd("PING").await;
    assert_eq!(ping.params, vec!["irc.test"]);
    alive.send("PONG :irc.test").await;
    let rest = silent.until_closed().await;
    assert!(
        rest.iter().any(|l| l.contains("(Ping timeout: 0 seconds)")),
        "{rest:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(200));
    let mut quit = None;
    for _ in 0..100 {
        let m = alive.msg().await;
        if m.command == "PING" {
            alive.send("PONG :irc.test").await;
        } else if m.command == "QUIT" {
            quit = Some(m);
            break;
        }
    }
    let q = quit.expect("alive sees silent's QUIT");
    assert_eq!(q.source_nick(), Some("silent"));
    assert_eq!(q.params, vec!["Ping timeout: 0 seconds"]);
    alive.sync("alive").await;
}

/// A client of the connection handler over an in-memory stream: no sockets, so with paused
/// time only the server's own timers move the clock and pacing is exact.
struct Mem {
    rd: BufReader<ReadHalf<DuplexStream>>,
    wr: WriteHalf<DuplexStream>,
}

impl Mem {
    /// Opens a connection from 127.0.0.1:`port`, guarded as the runtime guards sockets.
    fn open(server: &IrcServer, port: u16) -> Mem {
        let (client, server_side) = tokio::io::duplex(64 * 1024);
        let limits = Limits::default();
        let clock = RequestClock::new();
        let stream =
            GuardedStream::with_clock(server_side, limits.stream_timeouts(), clock.clone());
        let info = ConnInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], port)),
            limits,
            shutdown: CancellationToken::new(),
            clock,
        };
        let srv = server.clone();
        tokio::spawn(async move { srv.serve_connection(stream, info).await });
        let (rd, wr) = tokio::io::split(client);
        Mem {
            rd: BufReader::new(rd),
            wr,
        }
    }

    async fn register(server: &IrcServer, port: u16, nick: &str) -> Mem {
        let mut c = Mem::open(server, port);
        c.send_raw(format!("NICK {nick}\r\nUSER {nick} 0 * :{nick}\r\n").as_bytes())
            .await;
        while !matches!(c.msg().await.command.as_str(), "376" | "422") {}
        c
    }

    async fn send_raw(&mut self, bytes: &[u8]) {
        self.wr.write_all(bytes).await.unwrap();
    }

    /// The next message (a hang fails after an hour of virtual time).
    async fn msg(&mut self) -> Message {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(
            Duration::from_secs(3600),
            self.rd.read_until(b'\n', &mut buf),
        )
        .await
        .expect("timed out waiting for a line")
        .unwrap();
        assert!(n > 0, "connection closed");
        Message::parse(&buf).unwrap_or_else(|e| panic!("bad line {buf:?}: {e}"))
    }
}

#[tokio::test(start_paused = true)]
async fn flood_penalty_paces_a_flooder_and_not_others() {
    let server = IrcServer::new(ServerConfig {
        flood: FloodConfig {
            penalty: Duration::from_millis(100),
            burst: Duration::from_millis(400),
        },
        ..config()
    });
    let mut flooder = Mem::register(&server, 40001, "flooder").await;
    let mut calm = Mem::register(&server, 40002, "calm").await;
    let mut rx = Mem::register(&server, 40003, "rx").await;
    // Let the registration burst of each client age out of its timer.
    tokio::time::sleep(Duration::from_millis(800)).await;
    let t0 = Instant::now();
    let mut batch = String::new();
    for i in 0..15 {
        batch.push_str(&format!("PRIVMSG rx :flood {i}\r\n"));
    }
    flooder.send_raw(batch.as_bytes()).await;
    let mut arrivals = Vec::new();
    let mut calm_at = None;
    while arrivals.len() < 15 || calm_at.is_none() {
        let m = rx.msg().await;
        assert_eq!(m.command, "PRIVMSG", "{m}");
        if m.source_nick() == Some("calm") {
            calm_at = Some(t0.elapsed());
            continue;
        }
        assert_eq!(m.params[1], format!("flood {}", arrivals.len()));
        arrivals.push(t0.elapsed());
        if arrivals.len() == 6 {
            // While the flooder is paced, another client's message goes straight through.
            calm.send_raw(b"PRIVMSG rx :calm\r\n").await;
        }
    }
    let ms = Duration::from_millis;
    // The burst: the timer may run 400 ms ahead, so 5 commands pass at once (the fifth
    // moves it to 500 ms); then one every 100 ms.
    let want: Vec<Duration> = (0..15u64).map(|i| ms(i.saturating_sub(4) * 100)).collect();
    assert_eq!(arrivals, want);
    // calm was sent at 100 ms (after the sixth) and is not queued behind the flooder.
    assert_eq!(calm_at, Some(ms(100)), "{arrivals:?}");
}

#[tokio::test]
async fn excess_flood_disconnects() {
    let s = start(ServerConfig {
        recvq: 8,
        flood: FloodConfig {
            penalty: Duration::from_secs(1),
            burst: Duration::from_secs(1),
        },
        ..config()
    })
    .await;
    let mut c = Raw::connect(s.addr).await;
    let mut batch = String::from("NICK f\r\nUSER f 0 * :f\r\n");
    for i in 0..200 {
        batch.push_str(&format!("PRIVMSG f :{i}\r\n"));
    }
    c.send_raw(batch.as_bytes()).await;
    let rest = c.until_closed().await;
    assert!(
        rest.iter().any(|l| l.ends_with("(Excess Flood)")),
        "{rest:?}"
    );
    assert_eq!(s.server.client_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendq_exceeded_drops_a_non_reader_while_50_others_chat() {
    let s = start(ServerConfig {
        sendq: 64,
        recvq: 100_000,
        ..config()
    })
    .await;
    // The victim: a tiny receive buffer and it never reads.
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(4096).unwrap();
    let mut victim = Raw::from_stream(sock.connect(s.addr).await.unwrap());
    victim.send("NICK victim").await;
    victim.send("USER v 0 * :v").await;
    victim.send("JOIN #room").await;
    victim.sync("joined").await;

    let mut chatters = Vec::new();
    for i in 0..50 {
        let mut c = Raw::register(s.addr, &format!("c{i}")).await;
        c.send("JOIN #room").await;
        c.until_cmd("366").await;
        chatters.push(c);
    }
    // Everyone has seen every JOIN: sync each so the queues are clean.
    for (i, c) in chatters.iter_mut().enumerate() {
        let t = format!("s{i}");
        c.sync(&t).await;
    }

    let mut spammer = Raw::register(s.addr, "spammer").await;
    let spam = tokio::spawn(async move {
        let line = format!("PRIVMSG victim :{}\r\n", "z".repeat(400));
        let batch = line.repeat(100);
        for _ in 0..200 {
            if tokio::io::AsyncWriteExt::write_all(&mut spammer.wr, batch.as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
        spammer
    });

    // Meanwhile everyone chats; every message reaches all 49 others (each read is bounded
    // by the line wait, so a stall fails without a bound on the whole exchange).
    let mut tasks = Vec::new();
    for (i, mut c) in chatters.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            c.send(&format!("PRIVMSG #room :hello from c{i}")).await;
            let mut seen = 0;
            let mut victim_quit = false;
            while seen < 49 {
                let m = c.msg().await;
                match m.command.as_str() {
                    "PRIVMSG" => seen += 1,
                    "QUIT" => {
                        assert_eq!(m.source_nick(), Some("victim"));
                        assert_eq!(m.params, vec!["SendQ exceeded"]);
                        victim_quit = true;
                    }
                    _ => {}
                }
            }
            (c, victim_quit)
        }));
    }
    let mut chatters = Vec::new();
    for t in tasks {
        chatters.push(t.await.unwrap());
    }
    // The victim goes: everyone in #room sees its QUIT.
    for (c, quit_seen) in &mut chatters {
        if !*quit_seen {
            let q = c.until_cmd("QUIT").await;
            assert_eq!(q.source_nick(), Some("victim"));
            assert_eq!(q.params, vec!["SendQ exceeded"]);
        }
    }
    let _spammer = spam.await.unwrap();
    drop(victim);
    let (c0, _) = &mut chatters[0];
    c0.send("PRIVMSG #room :after").await;
    let (c1, _) = &mut chatters[1];
    assert_eq!(c1.until_cmd("PRIVMSG").await.params[1], "after");
}
