//! weechat (`weechat-headless`, no terminal) against `sockit serve --only chat`: it logs
//! in with SASL PLAIN, negotiates IRCv3 capabilities, joins a channel and talks with a
//! raw socket client, which checks what the server relays from it (extended-join,
//! account-tag, message-tags) and what WHOIS says about it.
//!
//! weechat is driven by its own configuration, given with `-r` commands at start-up: the
//! server entry (SASL, capabilities) and the server's `command` option, which weechat runs
//! once it is registered (`/join`, then `/msg`). Its logger plugin writes every buffer to
//! `DIR/logs/` with no flush delay, which is how the test reads what weechat shows.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    net::host_port,
    peer,
    process::{run, stderr},
    serve::Serve,
};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any one expected event may take (a hang guard, not a measurement).
const WAIT: Duration = Duration::from_secs(60);

/// The capabilities weechat is told to request (its `capabilities` server option).
const CAPS: [&str; 7] = [
    "server-time",
    "message-tags",
    "echo-message",
    "away-notify",
    "account-notify",
    "extended-join",
    "account-tag",
];

/// Adds account `name` with `password` under `root` through the CLI.
fn add_account(root: &Path, name: &str, password: &str) {
    let mut c = sockit();
    c.args(["account", "--root"]).arg(root).args(["add", name]);
    let out = run(&mut c, format!("{password}\n").as_bytes(), WAIT);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// A line split into its IRCv3 tags (`key` or `key=value`, escapes left as sent) and the
/// rest (`:prefix COMMAND params`).
fn split_tags(line: &str) -> (Vec<&str>, &str) {
    match line.strip_prefix('@') {
        Some(tagged) => {
            let (tags, rest) = tagged.split_once(' ').unwrap_or((tagged, ""));
            (tags.split(';').collect(), rest.trim_start())
        }
        None => (Vec::new(), line),
    }
}

/// A raw IRC client on a blocking socket, logged in with `PASS account:password`.
struct Raw {
    rd: BufReader<TcpStream>,
    wr: TcpStream,
}

impl Raw {
    /// Connects, requests `caps`, registers as `nick` (account `nick`) and joins `channel`.
    fn login(addr: &str, nick: &str, password: &str, caps: &str, channel: &str) -> Raw {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        let mut r = Raw {
            rd: BufReader::new(s.try_clone().unwrap()),
            wr: s,
        };
        r.send("CAP LS 302");
        r.send(&format!("PASS {nick}:{password}"));
        r.send(&format!("NICK {nick}"));
        r.send(&format!("USER {nick} 0 * :{nick}"));
        r.send(&format!("CAP REQ :{caps}"));
        r.send("CAP END");
        let ack = r.until(|l| l.contains(" CAP ") && (l.contains(" ACK ") || l.contains(" NAK ")));
        assert!(ack.contains(" ACK "), "{ack}");
        r.until(|l| split_tags(l).1.contains(" 001 "));
        r.send(&format!("JOIN {channel}"));
        r.until(|l| split_tags(l).1.contains(" 366 "));
        r
    }

    fn send(&mut self, line: &str) {
        self.wr.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    }

    /// Reads lines until one matches (answering PINGs); panics on timeout or EOF, with the
    /// lines read.
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            let mut line = String::new();
            let n = self.rd.read_line(&mut line).unwrap_or_else(|e| {
                panic!("read (timed out?): {e}; lines so far:\n{}", seen.join("\n"))
            });
            assert!(
                n > 0,
                "server closed the connection after:\n{}",
                seen.join("\n")
            );
            let line = line.trim_end().to_owned();
            if let Some(token) = split_tags(&line).1.strip_prefix("PING ") {
                let pong = format!("PONG {token}");
                self.send(&pong);
                continue;
            }
            if pred(&line) {
                return line;
            }
            seen.push(line);
        }
        panic!(
            "no matching line within {WAIT:?}; got:\n{}",
            seen.join("\n")
        );
    }
}

/// A `weechat-headless` process with its own home directory; killed on drop.
struct Weechat {
    child: Child,
    home: PathBuf,
}

impl Weechat {
    /// Starts weechat with home `home`: a server `sockit` at `addr` with SASL PLAIN for
    /// `nick`/`password` and the capabilities [`CAPS`], whose `command` option (run
    /// once registered) is `commands`; then `/connect sockit`.
    fn start(
        bin: &Path,
        home: &Path,
        addr: &str,
        nick: &str,
        password: &str,
        commands: &str,
    ) -> Weechat {
        let (host, port) = host_port(addr);
        std::fs::create_dir_all(home).unwrap();
        let server = format!(
            "/server add sockit {host}/{port} -notls -nicks={nick} -username={nick} \
             -realname=WeeChat_user -sasl_mechanism=plain -sasl_username={nick} \
             -sasl_password={password} -capabilities={caps} -autoreconnect=off \
             -anti_flood_prio_high=0 -anti_flood_prio_low=0",
            caps = CAPS.join(",")
        );
        // One command per `-r`: inside one, weechat splits at `;` (hence `\;` in the
        // server's `command`, whose own separator is `;`).
        let child = Command::new(bin)
            .arg("--dir")
            .arg(home)
            .args(["-r", "/set logger.file.flush_delay 0"])
            .args(["-r", &server])
            .args(["-r", &format!("/set irc.server.sockit.command {commands}")])
            .args(["-r", "/connect sockit"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", bin.display()));
        Weechat {
            child,
            home: home.to_owned(),
        }
    }

    /// The logger's file for `buffer` (`irc.server.sockit`, `irc.sockit.#room`).
    fn log(&self, buffer: &str) -> PathBuf {
        self.home.join("logs").join(format!("{buffer}.weechatlog"))
    }

    /// Waits until `buffer`'s log has a line matching `pred` (its `date\tprefix\ttext`
    /// lines); fails after [`WAIT`] with the log, or at once if weechat exited.
    fn wait_log(&mut self, buffer: &str, pred: impl Fn(&str) -> bool) -> String {
        let path = self.log(buffer);
        let deadline = Instant::now() + WAIT;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| pred(l)) {
                return line.to_owned();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("weechat exited ({status}); {}:\n{text}", path.display());
            }
            assert!(
                Instant::now() < deadline,
                "no matching line in {} within {WAIT:?}:\n{text}",
                path.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Weechat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The logger's text of a `date\tprefix\ttext` line: (prefix, text), the prefix without
/// a nick's channel status (`@rawuser` is rawuser, an operator of the channel).
fn log_entry(line: &str) -> (&str, &str) {
    let mut parts = line.splitn(3, '\t').skip(1);
    let prefix = parts.next().unwrap_or("").trim_start_matches(['@', '+']);
    (prefix, parts.next().unwrap_or(""))
}

#[test]
fn interop_weechat_logs_in_with_sasl_and_chats_with_ircv3_tags() {
    let bin = peer::require("weechat-headless", "weechat-headless");
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    add_account(&root, "weeuser", "wee-pw-1");
    add_account(&root, "rawuser", "raw-pw-1");
    let s = Serve::start_in(
        SOCKIT,
        &root,
        &["--only", "chat", "--chat-name", "irc.test"],
    );
    let addr = s.addr("chat", "tcp");
    let mut raw = Raw::login(
        &addr,
        "rawuser",
        "raw-pw-1",
        "account-tag extended-join message-tags server-time",
        "#room",
    );

    let mut wee = Weechat::start(
        &bin,
        &dir.path().join("weechat"),
        &addr,
        "weeuser",
        "wee-pw-1",
        "/join #room\\;/msg #room hello from weechat",
    );

    // extended-join: weechat's JOIN carries its account and realname (and, with
    // account-tag, the account tag).
    let join = raw.until(|l| split_tags(l).1.starts_with(":weeuser!") && l.contains(" JOIN "));
    let (tags, rest) = split_tags(&join);
    assert_eq!(
        rest, ":weeuser!weeuser@127.0.0.1 JOIN #room weeuser WeeChat_user",
        "{join}"
    );
    assert!(tags.contains(&"account=weeuser"), "{join}");

    // weechat's message: account-tag names its account, message-tags gives a msgid,
    // server-time the time.
    let msg = raw.until(|l| split_tags(l).1.contains(" PRIVMSG #room "));
    let (tags, rest) = split_tags(&msg);
    assert_eq!(
        rest, ":weeuser!weeuser@127.0.0.1 PRIVMSG #room :hello from weechat",
        "{msg}"
    );
    assert!(tags.contains(&"account=weeuser"), "{msg}");
    assert!(tags.iter().any(|t| t.starts_with("msgid=")), "{msg}");
    assert!(tags.iter().any(|t| t.starts_with("time=")), "{msg}");

    // The server knows the SASL login.
    raw.send("WHOIS weeuser");
    raw.until(|l| split_tags(l).1.contains(" 330 rawuser weeuser weeuser :"));
    raw.until(|l| split_tags(l).1.contains(" 318 rawuser weeuser "));

    // weechat's side: the server acknowledged every capability asked for, SASL
    // succeeded, and the raw client's line reached the channel buffer.
    let enabled = wee.wait_log("irc.server.sockit", |l| {
        log_entry(l)
            .1
            .starts_with("irc: client capability, enabled: ")
    });
    let enabled: Vec<&str> = log_entry(&enabled)
        .1
        .trim_start_matches("irc: client capability, enabled: ")
        .split(' ')
        .collect();
    for cap in CAPS.iter().chain(&["sasl"]) {
        assert!(enabled.contains(cap), "{cap} not enabled: {enabled:?}");
    }
    wee.wait_log("irc.server.sockit", |l| {
        log_entry(l).1 == "SASL authentication successful"
    });
    raw.send("PRIVMSG #room :hello weechat");
    wee.wait_log("irc.sockit.#room", |l| {
        log_entry(l) == ("rawuser", "hello weechat")
    });
    // With echo-message weechat shows its own line when the server echoes it: once.
    let log = std::fs::read_to_string(wee.log("irc.sockit.#room")).unwrap();
    let own = log
        .lines()
        .filter(|l| log_entry(l) == ("weeuser", "hello from weechat"))
        .count();
    assert_eq!(own, 1, "{log}");
}
