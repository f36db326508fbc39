//! `sockit serve` chat services and `sockit chat` / `sockit discover`, over real sockets:
//! plain and terminal (tmux) clients, irssi in tmux, the UDP room and discovery.

use crate::common::tmux::Tmux;
use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    addr_file,
    net::host_port,
    peer,
    process::{run, stderr, stdout, wait_child},
    serve::Serve,
};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long any one expected event may take.
const WAIT: Duration = Duration::from_secs(20);

type Raw = crate::common::irc::RawIrc;

/// A raw client registered as `nick` in `channel`.
fn raw_in(addr: &str, nick: &str, channel: &str) -> Raw {
    let mut r = Raw::register(addr, nick, None, WAIT);
    r.join(channel);
    r
}

/// A child's stdout, line by line, through a thread (so reads can time out).
struct Lines(mpsc::Receiver<String>);

impl Lines {
    fn of(child: &mut Child) -> Lines {
        let out = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Lines(rx)
    }

    fn until(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.0.recv_timeout(left) {
                Ok(l) if pred(&l) => return l,
                Ok(_) => {}
                Err(e) => panic!("no matching output line: {e}"),
            }
        }
    }
}

fn chat_serve() -> Serve {
    Serve::start(
        SOCKIT,
        &[
            "--only",
            "chat,udp-chat,discovery",
            "--chat-name",
            "irc.test",
            "--udp-chat-idle",
            "2s",
        ],
    )
}

#[test]
fn chat_plain_client_talks_with_a_raw_client() {
    let s = chat_serve();
    let addr = s.addr("chat", "tcp");
    let mut raw = raw_in(&addr, "raw", "#room");
    let mut alice = sockit()
        .args([
            "--server", &addr, "chat", "--plain", "--nick", "alice", "room",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::of(&mut alice);
    raw.until(|l| l.starts_with(":alice!") && l.ends_with("JOIN #room"));
    out.until(|l| l == "-!- alice has joined #room");
    raw.send("PRIVMSG #room :hi alice");
    out.until(|l| l == "<raw> hi alice");
    raw.send("PRIVMSG alice :psst");
    out.until(|l| l == "*raw* psst");
    let mut stdin = alice.stdin.take().unwrap();
    stdin.write_all(b"hello raw\n/me waves\n").unwrap();
    let m = raw.until(|l| l.contains(" PRIVMSG #room :hello raw"));
    assert!(m.starts_with(":alice!alice@127.0.0.1 "), "{m}");
    raw.until(|l| l.ends_with("PRIVMSG #room :\x01ACTION waves\x01"));
    drop(stdin);
    raw.until(|l| l.starts_with(":alice!") && l.contains(" QUIT "));
    let status = wait_child(&mut alice, WAIT).expect("plain client exits after EOF");
    assert!(status.success());
}

#[test]
fn chat_nick_in_use_gets_an_underscore() {
    let s = chat_serve();
    let addr = s.addr("chat", "tcp");
    let mut raw = raw_in(&addr, "taken", "#room");
    let mut c = sockit()
        .args([
            "--server", &addr, "chat", "--plain", "--nick", "taken", "#room",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    raw.until(|l| l.starts_with(":taken_!") && l.ends_with("JOIN #room"));
    drop(c.stdin.take());
    assert!(wait_child(&mut c, WAIT).unwrap().success());
}

#[test]
fn chat_usage_errors_exit_2() {
    let out = run(
        sockit().args(["chat", "--plain", "--nick", "9bad"]),
        b"",
        WAIT,
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("not a valid nick"));
}

/// Adds account `name` with `password` under `root` through the CLI.
fn add_account(root: &std::path::Path, name: &str, password: &str) {
    let mut c = sockit();
    c.args(["account", "--root"]).arg(root).args(["add", name]);
    let out = run(&mut c, format!("{password}\n").as_bytes(), WAIT);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn chat_plain_logs_in_with_sasl_gets_history_on_join_and_forwards_commands() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    add_account(&root, "alice", "alice-pw-1");
    add_account(&root, "raw", "raw-pw-1");
    let s = Serve::start_in(
        SOCKIT,
        &root,
        &["--only", "chat", "--chat-name", "irc.test"],
    );
    let addr = s.addr("chat", "tcp");

    // Accounts exist, so the server wants a login: the raw client uses PASS.
    let mut raw = Raw::register(&addr, "raw", Some("raw:raw-pw-1"), WAIT);
    raw.join("#room");
    raw.send("PRIVMSG #room :said before alice came");
    // A round trip so the line is stored before alice asks.
    raw.send("PING :stored");
    raw.until(|l| l.contains("PONG") && l.ends_with("stored"));

    let mut alice = sockit()
        .args([
            "--server",
            &addr,
            "chat",
            "--plain",
            "--nick",
            "alice",
            "--account",
            "alice",
            "room",
        ])
        .env("SOCKIT_CHAT_PASSWORD", "alice-pw-1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::of(&mut alice);
    raw.until(|l| l.starts_with(":alice!") && l.ends_with("JOIN #room"));
    let h = out.until(|l| l.starts_with("[history "));
    assert!(h.ends_with("] <raw> said before alice came"), "{h}");
    // The history line carries the server's time: `[history HH:MM:SS]`.
    assert_eq!(h.find(']'), Some("[history 12:34:56".len()), "{h}");
    raw.send("PRIVMSG #room :live now");
    out.until(|l| l == "<raw> live now");

    // Logged in to the account (the server says so to WHOIS).
    raw.send("WHOIS alice");
    raw.until(|l| l.contains(" 330 raw alice alice "));

    // Unknown /commands go raw; every reply is printed.
    let mut stdin = alice.stdin.take().unwrap();
    stdin.write_all(b"/frobnicate now\n/whois raw\n").unwrap();
    out.until(|l| l == "-!- error: FROBNICATE: Unknown command (421)");
    out.until(|l| l.starts_with("-!- raw ") && l.contains("End of /WHOIS"));
    drop(stdin);
    let status = wait_child(&mut alice, WAIT).expect("plain client exits after EOF");
    assert!(status.success());

    // A wrong password: a clear error and exit 1, no retry.
    let mut c = sockit();
    c.args([
        "--server",
        &addr,
        "chat",
        "--plain",
        "--nick",
        "alice",
        "--account",
        "alice",
        "room",
    ])
    .env("SOCKIT_CHAT_PASSWORD", "wrong");
    let out = run(&mut c, b"", WAIT);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("login refused"), "{}", stderr(&out));
}

fn recv_line(sock: &UdpSocket) -> String {
    let mut buf = [0u8; 2048];
    let n = sock.recv(&mut buf).expect("datagram (timed out?)");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `[Thu Jan  1 12:00:00 2026] 127.0.0.1:PORT: text`
fn assert_log_format(line: &str, from: &UdpSocket, text: &str) {
    let port = from.local_addr().unwrap().port();
    let line = line.trim_end_matches('\n');
    let (stamp, rest) = line.split_once("] ").expect("[ctime] prefix");
    assert_eq!(rest, format!("127.0.0.1:{port}: {text}"), "{line}");
    let stamp = stamp.strip_prefix('[').unwrap();
    assert!(
        chrono::NaiveDateTime::parse_from_str(stamp, "%a %b %e %H:%M:%S %Y").is_ok(),
        "ctime format: {stamp:?}"
    );
}

#[test]
fn udp_chat_room_relays_between_three_and_expires_idle_ones() {
    let s = chat_serve();
    let room = s.addr("udp-chat", "udp");
    let parts: Vec<UdpSocket> = (0..3)
        .map(|_| {
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            u.connect(&room).unwrap();
            u.set_read_timeout(Some(WAIT)).unwrap();
            u
        })
        .collect();
    // Joining is sending (an empty datagram joins without saying anything).
    parts[0].send(b"").unwrap();
    parts[1].send(b"").unwrap();
    // A message from the third reaching the first two proves they are in the room.
    parts[2].send(b"hello room\n").unwrap();
    for p in &parts[..2] {
        assert_log_format(&recv_line(p), &parts[2], "hello room");
    }
    parts[0].send("caf\u{e9} from 0".as_bytes()).unwrap();
    assert_log_format(&recv_line(&parts[1]), &parts[0], "caf\u{e9} from 0");
    assert_log_format(&recv_line(&parts[2]), &parts[0], "caf\u{e9} from 0");

    // The full-duplex client: it joins on start; its stdin reaches the room and the
    // room reaches its stdout.
    let mut client = sockit()
        .args(["--server", &room, "chat", "--udp"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Lines::of(&mut client);
    let mut stdin = client.stdin.take().unwrap();
    stdin.write_all(b"from the cli\n").unwrap();
    stdin.flush().unwrap();
    for p in &parts {
        assert!(recv_line(p).ends_with(": from the cli\n"));
    }
    parts[1].send(b"to the cli").unwrap();
    let got = out.until(|l| l.ends_with("to the cli"));
    assert_log_format(&got, &parts[1], "to the cli");
    for p in [&parts[0], &parts[2]] {
        assert_log_format(&recv_line(p), &parts[1], "to the cli");
    }
    drop(stdin);
    assert!(wait_child(&mut client, WAIT).unwrap().success());

    // After the idle time (2 s) without a word, a participant no longer receives. (The
    // sleep is the idle time that must pass, a lower bound, not a wait for a server.)
    std::thread::sleep(Duration::from_millis(2300));
    parts[1].send(b"").unwrap();
    parts[0].send(b"after idle").unwrap();
    assert_log_format(&recv_line(&parts[1]), &parts[0], "after idle");
    // The expired one joins again and a marker follows: the first thing it receives is the
    // marker, so "after idle" never reached it (no waiting for something not to arrive).
    parts[2].send(b"").unwrap();
    parts[0].send(b"marker").unwrap();
    assert_log_format(&recv_line(&parts[2]), &parts[0], "marker");
    assert_log_format(&recv_line(&parts[1]), &parts[0], "marker");

    s.terminate();
    let mut s = s;
    s.wait_exit(WAIT);
    let mut err = String::new();
    s.child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let port = parts[2].local_addr().unwrap().port();
    assert!(
        err.contains(&format!("127.0.0.1:{port}: hello room")),
        "server log: {err}"
    );
}

#[test]
fn discovery_answers_on_loopback_once() {
    let s = chat_serve();
    let disc = s.addr("discovery", "udp");
    let out = run(
        sockit().args([
            "--json",
            "discover",
            "--timeout",
            "500ms",
            "--target",
            &disc,
            "--target",
            &disc,
        ]),
        b"",
        WAIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1, "asked twice, listed once: {v}");
    assert_eq!(list[0]["name"], "irc.test");
    assert_eq!(list[0]["services"]["chat"]["tcp"], s.addr("chat", "tcp"));
    assert_eq!(
        list[0]["services"]["udp-chat"]["udp"],
        s.addr("udp-chat", "udp")
    );

    let table = run(
        sockit().args(["discover", "--timeout", "300ms", "--target", &disc]),
        b"",
        WAIT,
    );
    assert!(stdout(&table).contains("irc.test"), "{}", stdout(&table));
}

#[test]
fn discovery_with_no_server_lists_nothing_and_exits_0() {
    // A port nobody listens on (bound then released by us).
    let port = UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let target = format!("127.0.0.1:{port}");
    let out = run(
        sockit().args([
            "--json",
            "discover",
            "--timeout",
            "300ms",
            "--target",
            &target,
        ]),
        b"",
        WAIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
    let out = run(
        sockit().args(["discover", "--timeout", "300ms", "--target", &target]),
        b"",
        WAIT,
    );
    assert!(out.status.success());
    assert!(stderr(&out).contains("no sockit server answered"));
}

#[test]
fn chat_terminal_ui_shows_history_before_the_join_and_echoed_lines_once() {
    let s = chat_serve();
    let addr = s.addr("chat", "tcp");
    let mut raw = raw_in(&addr, "raw", "#room");
    raw.send("PRIVMSG #room :words from before");
    raw.send("PING :stored");
    raw.until(|l| l.contains("PONG") && l.ends_with("stored"));
    let bin = SOCKIT;
    let tmux = Tmux::start(
        "history",
        &format!("{bin} --server {addr} chat --nick tui '#room'"),
    );
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("JOIN #room"));
    let screen = tmux.wait_until("the history and the join", |s| {
        s.contains("<raw> words from before") && s.contains("tui has joined #room")
    });
    let old = screen.find("<raw> words from before").unwrap();
    let join = screen.find("tui has joined #room").unwrap();
    assert!(old < join, "history comes before the join:\n{screen}");
    // With echo-message the line is shown when the server sends it back: once.
    tmux.keys("my own line");
    raw.until(|l| l.ends_with("PRIVMSG #room :my own line"));
    let screen = tmux.wait_for("<tui> my own line");
    assert_eq!(screen.matches("<tui> my own line").count(), 1, "{screen}");
}

#[test]
fn chat_terminal_ui_in_tmux_joins_sends_and_shows() {
    let s = chat_serve();
    let addr = s.addr("chat", "tcp");
    let mut raw = raw_in(&addr, "raw", "#room");
    let bin = SOCKIT;
    let tmux = Tmux::start(
        "tui",
        &format!("{bin} --server {addr} chat --nick tui '#room'"),
    );
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("JOIN #room"));
    tmux.wait_for("tui has joined #room");
    raw.send("PRIVMSG #room :hello tui");
    let screen = tmux.wait_for("<raw> hello tui");
    assert!(
        screen.contains("#room"),
        "channel list shows #room:\n{screen}"
    );
    tmux.keys("hi from the terminal");
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("PRIVMSG #room :hi from the terminal"));
    tmux.wait_for("<tui> hi from the terminal");
    tmux.keys("/me dances");
    raw.until(|l| l.ends_with("PRIVMSG #room :\x01ACTION dances\x01"));
    tmux.keys("/nick tui2");
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("NICK tui2"));
    tmux.keys("/quit bye");
    raw.until(|l| l.starts_with(":tui2!") && l.ends_with("QUIT :Quit: bye"));
    let deadline = Instant::now() + WAIT;
    while tmux.alive() {
        assert!(Instant::now() < deadline, "the UI did not exit after /quit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn chat_terminal_ui_scrolls_back_wraps_completes_nicks_and_logs() {
    // Flood control off: the raw client sends 80 lines at once.
    let s = Serve::start(
        SOCKIT,
        &[
            "--only",
            "chat",
            "--chat-name",
            "irc.test",
            "--chat-flood-penalty",
            "0s",
        ],
    );
    let addr = s.addr("chat", "tcp");
    let mut raw = raw_in(&addr, "raw", "#room");
    raw.send("TOPIC #room :the room's topic");
    let logs = s.path("logs");
    let tmux = Tmux::start(
        "tui-scroll",
        &format!(
            "{SOCKIT} --server {addr} chat --nick tui --log-dir {} '#room'",
            logs.display()
        ),
    );
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("JOIN #room"));
    // The topic bar and the member list (the names may arrive after the topic).
    tmux.wait_until("the topic and both members", |s| {
        s.contains("the room's topic") && s.contains("2 nicks") && s.contains("@raw")
    });
    for i in 0..80 {
        raw.send(&format!("PRIVMSG #room :scroll line {i:02}"));
    }
    tmux.wait_for("scroll line 79");
    // PgUp: back in time, the newest line off screen, and the status bar says so.
    tmux.press("PPage");
    let back = tmux.wait_until("the scrolled-back page", |s| {
        s.contains("more below") && !s.contains("scroll line 79")
    });
    assert!(back.contains("scroll line 40"), "{back}");
    tmux.press("NPage");
    tmux.wait_until("the newest lines again", |s| {
        s.contains("scroll line 79") && !s.contains("more below")
    });
    // A line longer than the screen wraps: its end is on a row of its own, indented
    // under the text.
    let long = format!("{} LONGEND", "word ".repeat(40));
    raw.send(&format!("PRIVMSG #room :{long}"));
    let screen = tmux.wait_for("LONGEND");
    let end_row = screen.lines().find(|l| l.contains("LONGEND")).unwrap_or("");
    assert!(
        !end_row.contains("<raw>"),
        "the wrapped end is on its own row:\n{screen}"
    );
    // Tab completes the nick, with `: ` at the start of the line.
    tmux.type_text("ra");
    tmux.press("Tab");
    tmux.keys("hello there");
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("PRIVMSG #room :raw: hello there"));
    // Every line of the channel went to its log.
    let log = logs.join(addr.replace(['.', ':'], "_")).join("#room.log");
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("<tui> raw: hello there") {
            assert!(text.contains("<raw> scroll line 05"), "{text}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} lacks the lines:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    tmux.keys("/quit");
}

/// A raw client logged in to an account with `PASS account:password`, registered.
fn raw_login(addr: &str, nick: &str, password: &str) -> Raw {
    Raw::register(addr, nick, Some(&format!("{nick}:{password}")), WAIT)
}

/// The screen with its colours and attributes (tmux `capture-pane -e`).
fn styled_screen(t: &Tmux) -> String {
    let out = t
        .cmd(&["capture-pane", "-p", "-e", "-t", "t"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The member-list cell of the screen row showing `nick` there (the text after the
/// row's last `│`), with its escape sequences.
fn member_cell(styled: &str, nick: &str) -> Option<String> {
    styled
        .lines()
        .filter_map(|row| row.rsplit('│').next())
        .find(|cell| {
            let text: String = strip_escapes(cell);
            text.trim() == nick
        })
        .map(str::to_owned)
}

fn strip_escapes(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a styled cell is drawn dim (SGR 2, among other attributes or alone; the
/// numbers of a 38/48 colour are not attributes).
fn is_dim(cell: &str) -> bool {
    cell.split('\x1b').any(|seq| {
        let Some((params, _)) = seq.strip_prefix('[').and_then(|s| s.split_once('m')) else {
            return false;
        };
        let mut p = params.split(';');
        while let Some(n) = p.next() {
            match n {
                "2" => return true,
                "38" | "48" | "58" => {
                    let skip = if p.next() == Some("5") { 1 } else { 3 };
                    p.by_ref().take(skip).for_each(drop);
                }
                _ => {}
            }
        }
        false
    })
}

#[test]
fn chat_terminal_ui_shows_away_query_history_and_whois() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    add_account(&root, "tui", "tui-pw-1");
    add_account(&root, "raw", "raw-pw-1");
    let s = Serve::start_in(
        SOCKIT,
        &root,
        &["--only", "chat", "--chat-name", "irc.test"],
    );
    let addr = s.addr("chat", "tcp");
    let mut raw = raw_login(&addr, "raw", "raw-pw-1");
    raw.send("JOIN #room");
    raw.until(|l| l.contains(" 366 "));
    // An earlier private conversation of account tui with raw, from another client.
    let mut before = raw_login(&addr, "tui", "tui-pw-1");
    before.send("PRIVMSG raw :question from before");
    raw.until(|l| l.ends_with("PRIVMSG raw :question from before"));
    raw.send("PRIVMSG tui :answer from before");
    before.until(|l| l.ends_with("PRIVMSG tui :answer from before"));
    before.send("QUIT");
    before.until(|l| l.starts_with("ERROR"));

    let tmux = Tmux::start(
        "tui-away",
        &format!(
            "SOCKIT_CHAT_PASSWORD=tui-pw-1 {SOCKIT} --server {addr} chat --nick tui --account tui '#room'"
        ),
    );
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("JOIN #room"));
    // On connect the recent conversation opens a window of its own (CHATHISTORY TARGETS).
    tmux.wait_until("the joined channel and the reopened query", |s| {
        s.contains("tui has joined #room")
            && s.lines().any(|l| {
                // The channel list: `N name` before the first `│`.
                let entry = l.split('│').next().unwrap_or("").trim();
                entry.ends_with(" raw") && entry.starts_with(|c: char| c.is_ascii_digit())
            })
    });
    // Its window shows the earlier lines, ours and theirs, in order.
    tmux.keys("/query raw");
    let screen = tmux.wait_until("the query's history", |s| {
        s.contains("<tui> question from before") && s.contains("<raw> answer from before")
    });
    let q = screen.find("<tui> question from before").unwrap();
    let a = screen.find("<raw> answer from before").unwrap();
    assert!(q < a, "oldest first:\n{screen}");
    assert!(screen.contains("[tui] [raw]"), "{screen}");

    // Another user goes away: a line in the channel, and the nick list dims it.
    tmux.keys("/window #room");
    tmux.wait_for("[tui] [#room]");
    let cell = member_cell(&styled_screen(&tmux), "@raw").expect("raw in the nick list");
    assert!(!is_dim(&cell), "not away yet: {cell:?}");
    raw.send("AWAY :out to lunch");
    tmux.wait_for("raw is away: out to lunch");
    let deadline = Instant::now() + WAIT;
    loop {
        let styled = styled_screen(&tmux);
        if member_cell(&styled, "@raw").is_some_and(|c| is_dim(&c)) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the nick list never dimmed raw:\n{styled}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // WHOIS as a readable block, the away message in it.
    tmux.keys("/whois raw");
    let screen = tmux.wait_for("End of WHOIS");
    for line in [
        "raw [raw@",
        " ircname  : raw",
        " channels : @#room",
        " server   : irc.test [sockit IRC server]",
        " account  : raw",
        " away     : out to lunch",
        " idle     : ",
    ] {
        assert!(screen.contains(line), "{line:?} missing:\n{screen}");
    }
    assert!(
        !screen.contains(" 311 ") && !screen.contains(" 318 "),
        "{screen}"
    );

    // Back again: a line, and the nick list no longer dims it.
    raw.send("AWAY");
    tmux.wait_for("raw is back");
    let deadline = Instant::now() + WAIT;
    while member_cell(&styled_screen(&tmux), "@raw").is_some_and(|c| is_dim(&c)) {
        assert!(Instant::now() < deadline, "raw stayed dim");
        std::thread::sleep(Duration::from_millis(50));
    }

    // Our own /away: confirmed with the reason, and the status bar says so.
    tmux.keys("/away brb");
    tmux.wait_for("You are now marked as away: brb");
    tmux.wait_for("[tui (away)]");
    raw.send("WHOIS tui");
    raw.until(|l| l.contains(" 301 raw tui ") && l.ends_with("brb"));
    tmux.keys("/away");
    tmux.wait_for("You are no longer marked as away");
    tmux.wait_until("the away mark gone", |s| s.contains("[tui] [#room]"));

    // /topic shows and sets the topic; /quote sends a raw line.
    tmux.keys("/topic");
    tmux.wait_for("No topic set for #room");
    // Operators may set it (+t): raw makes us one, the nick list follows.
    raw.send("MODE #room +o tui");
    tmux.wait_until("tui as an operator", |s| {
        s.lines()
            .any(|l| l.rsplit('│').next().is_some_and(|c| c.trim() == "@tui"))
    });
    tmux.keys("/topic a fresh topic");
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("TOPIC #room :a fresh topic"));
    tmux.keys("/topic");
    tmux.wait_for("Topic set by tui [");
    tmux.keys("/quote NOTICE raw :raw notice");
    raw.until(|l| l.starts_with(":tui!") && l.ends_with("NOTICE raw :raw notice"));
    tmux.keys("/quit");
}

#[test]
fn interop_irssi_in_tmux_chats_with_a_raw_client() {
    let s = chat_serve();
    let addr = s.addr("chat", "tcp");
    let (host, port) = host_port(&addr);
    let mut raw = raw_in(&addr, "raw", "#room");
    let home = s.path("irssi");
    std::fs::create_dir_all(&home).unwrap();
    let tmux = Tmux::start(
        "irssi",
        &format!(
            "irssi --home={} --connect={host} --port={port} --nick=irssiuser",
            home.display()
        ),
    );
    // irssi registers (CAP LS 302 probe included) and shows the welcome.
    tmux.wait_for("Welcome to the sockit IRC Network");
    tmux.keys("/join #room");
    raw.until(|l| l.starts_with(":irssiuser!") && l.ends_with("JOIN #room"));
    // irssi asked MODE/WHO to sync the channel; it shows the NAMES list.
    tmux.wait_for("raw");
    raw.send("PRIVMSG #room :hello irssi");
    tmux.wait_for("hello irssi");
    tmux.keys("hello raw, from irssi");
    raw.until(|l| {
        l.starts_with(":irssiuser!") && l.ends_with("PRIVMSG #room :hello raw, from irssi")
    });
    tmux.keys("/quit done");
    raw.until(|l| l.starts_with(":irssiuser!") && l.contains(" QUIT :"));
}

/// Two network namespaces joined by a veth pair (10.77.x.1 ↔ 10.77.x.2), removed on drop.
struct NetnsPair {
    a: String,
    b: String,
}

impl NetnsPair {
    /// Creates the pair, or says why it cannot be made here (`ip` missing, not root).
    fn create() -> Result<NetnsPair, String> {
        let id = std::process::id() % 250;
        let pair = NetnsPair {
            a: format!("sockit-a-{}", std::process::id()),
            b: format!("sockit-b-{}", std::process::id()),
        };
        let first = Command::new("ip")
            .args(["netns", "add", &pair.a])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| {
                format!(
                    "cannot run `ip` ({e}): apt-get install iproute2 (scripts/test.sh installs it)"
                )
            })?;
        if !first.status.success() {
            return Err(format!(
                "`ip netns add` failed (network namespaces need root, or CAP_SYS_ADMIN): {}",
                String::from_utf8_lossy(&first.stderr).trim()
            ));
        }
        let ip = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        };
        let va = format!("sva{id}");
        let vb = format!("svb{id}");
        let net = format!("10.77.{id}");
        let steps: Vec<Vec<String>> = vec![
            vec!["netns".into(), "add".into(), pair.b.clone()],
            vec![
                "link".into(),
                "add".into(),
                va.clone(),
                "type".into(),
                "veth".into(),
                "peer".into(),
                "name".into(),
                vb.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                va.clone(),
                "netns".into(),
                pair.a.clone(),
            ],
            vec![
                "link".into(),
                "set".into(),
                vb.clone(),
                "netns".into(),
                pair.b.clone(),
            ],
            vec![
                "-n".into(),
                pair.a.clone(),
                "addr".into(),
                "add".into(),
                format!("{net}.1/24"),
                "brd".into(),
                "+".into(),
                "dev".into(),
                va.clone(),
            ],
            vec![
                "-n".into(),
                pair.b.clone(),
                "addr".into(),
                "add".into(),
                format!("{net}.2/24"),
                "brd".into(),
                "+".into(),
                "dev".into(),
                vb.clone(),
            ],
            vec![
                "-n".into(),
                pair.a.clone(),
                "link".into(),
                "set".into(),
                va,
                "up".into(),
            ],
            vec![
                "-n".into(),
                pair.b.clone(),
                "link".into(),
                "set".into(),
                vb,
                "up".into(),
            ],
            vec![
                "-n".into(),
                pair.a.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
            vec![
                "-n".into(),
                pair.b.clone(),
                "link".into(),
                "set".into(),
                "lo".into(),
                "up".into(),
            ],
        ];
        for s in steps {
            let args: Vec<&str> = s.iter().map(String::as_str).collect();
            assert!(ip(&args), "ip {args:?} failed");
        }
        Ok(pair)
    }

    fn exec(&self, ns: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns, SOCKIT]);
        c.env_remove("SOCKIT_SERVER").env_remove("RUST_LOG");
        c
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

#[test]
fn discovery_across_network_namespaces_by_broadcast() {
    let Some(pair) = peer::unless_skipped("netns", NetnsPair::create()) else {
        return;
    };
    let net = format!("10.77.{}", std::process::id() % 250);
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("addrs.json");
    let mut server = pair
        .exec(&pair.a)
        .args([
            "serve",
            "--bind",
            "0.0.0.0",
            "--no-auth",
            "--only",
            "chat,discovery",
        ])
        .args(["--port", "chat=0", "--chat-name", "ns-server", "--root"])
        .arg(dir.path().join("root"))
        .arg("--addr-file")
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addrs = addr_file::wait(&addr_file, &mut server);
    let chat_port = addrs["chat"]["tcp"]
        .as_str()
        .unwrap()
        .rsplit_once(':')
        .unwrap()
        .1
        .to_owned();
    // Default targets: 255.255.255.255, the veth's broadcast address, loopback.
    let out = run(
        pair.exec(&pair.b)
            .args(["--json", "discover", "--timeout", "1s"]),
        b"",
        WAIT,
    );
    let _ = server.kill();
    let _ = server.wait();
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let list = v.as_array().unwrap();
    assert_eq!(list.len(), 1, "one server, listed once: {v}");
    assert_eq!(list[0]["name"], "ns-server");
    assert_eq!(list[0]["from"], format!("{net}.1:7099"));
    assert_eq!(
        list[0]["services"]["chat"]["tcp"],
        format!("{net}.1:{chat_port}")
    );

    // Nothing answers in a namespace with no server: an empty list and exit 0.
    let out = run(
        pair.exec(&pair.a)
            .args(["--json", "discover", "--timeout", "300ms"]),
        b"",
        WAIT,
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[]");
}

/// A python `ssl` client that trusts exactly the server's certificate file: registers on the
/// TLS port, joins #sec, says one line, quits, and prints the TLS version it got.
const PYTHON_SSL_CLIENT: &str = r#"
import socket, ssl, sys
host, port, cafile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
ctx.check_hostname = False
s = ctx.wrap_socket(socket.create_connection((host, port), timeout=20))
s.sendall(b"NICK pyssl\r\nUSER py 0 * :py\r\nJOIN #sec\r\n")
buf = b""
while b" 366 " not in buf:
    chunk = s.recv(4096)
    if not chunk:
        sys.exit("closed before joining")
    buf += chunk
s.sendall(b"PRIVMSG #sec :from python over tls\r\nQUIT :done\r\n")
while b"ERROR" not in buf:
    chunk = s.recv(4096)
    if not chunk:
        break
    buf += chunk
print(s.version())
"#;

#[test]
fn irc_over_tls_shares_the_network_with_the_plain_port() {
    let s = Serve::start(SOCKIT, &["--only", "chat", "--tls"]);
    let plain = s.addr("chat", "tcp");
    let tls = s.addr("chat", "tls");
    let cert = s.dir.path().join("root/state/tls/cert.pem");
    let mut raw = raw_in(&plain, "plainuser", "#sec");

    // python's ssl module, verifying the certificate file (no hostname check: the
    // self-signed certificate names no host).
    let (host, port) = host_port(&tls);
    let o = run(
        Command::new(peer::require("python3", "python3"))
            .args(["-c", PYTHON_SSL_CLIENT, &host, &port])
            .arg(&cert),
        b"",
        WAIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stdout(&o).starts_with("TLSv1."), "{}", stdout(&o));
    raw.until(|l| l.starts_with(":pyssl!") && l.ends_with("PRIVMSG #sec :from python over tls"));

    // sockit chat --tls, trusting on first use.
    let kh = s.path("known_hosts");
    let o = run(
        sockit()
            .args(["--server", &tls, "--tls", "--known-hosts"])
            .arg(&kh)
            .args(["chat", "--plain", "--nick", "tlsuser", "#sec"]),
        b"from sockit over tls\n",
        WAIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(stderr(&o).contains("trusting"), "{}", stderr(&o));
    raw.until(|l| l.starts_with(":tlsuser!") && l.ends_with("PRIVMSG #sec :from sockit over tls"));

    // A plain-text client on the TLS port reads why it is dropped; the port keeps serving.
    let mut wrong = TcpStream::connect(&tls).unwrap();
    wrong.set_read_timeout(Some(WAIT)).unwrap();
    wrong.write_all(b"NICK oops\r\nUSER o 0 * :o\r\n").unwrap();
    let mut answer = String::new();
    let _ = wrong.read_to_string(&mut answer);
    assert!(
        answer.starts_with("ERROR :") && answer.contains("this port speaks TLS"),
        "{answer:?}"
    );

    // openssl s_client registers through TLS too.
    let o = run(
        Command::new(peer::require("openssl", "openssl"))
            .args(["s_client", "-connect", &tls, "-quiet", "-ign_eof"]),
        b"NICK ossl\r\nUSER o 0 * :o\r\nQUIT\r\n",
        WAIT,
    );
    assert!(stdout(&o).contains(" 001 ossl "), "{}", stdout(&o));

    // irssi over TLS, driven in tmux, chats with the plain client.
    let home = s.path("irssi-tls");
    std::fs::create_dir_all(&home).unwrap();
    let tmux = Tmux::start(
        "irssi-tls",
        &format!("irssi --home={} --nick=irtls", home.display()),
    );
    tmux.wait_for("(status)");
    tmux.keys(&format!("/connect -tls -notls_verify {host} {port}"));
    tmux.wait_for("Welcome to the sockit IRC Network");
    tmux.keys("/join #sec");
    raw.until(|l| l.starts_with(":irtls!") && l.ends_with("JOIN #sec"));
    raw.send("PRIVMSG #sec :hello irssi over tls");
    tmux.wait_for("hello irssi over tls");
    tmux.keys("/quit done");
    raw.until(|l| l.starts_with(":irtls!") && l.contains(" QUIT :"));
}
