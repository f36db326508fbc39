//! `sockit serve --chat-cluster`: three real server processes over one `nats-server`
//! (JetStream on) are one IRC network, and the users of a node killed with SIGKILL quit
//! on the others.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::common::irc::RawIrc;
use crate::common::SOCKIT;
use sockit_testkit::{peer, process::OutputLines, serve::Serve};

/// How long any one expected line may take (a hang guard, not a bound on speed).
const WAIT: Duration = Duration::from_secs(60);

/// A running nats-server, killed on drop.
struct Nats {
    child: Child,
    url: String,
}

impl Nats {
    fn start(dir: &Path) -> Nats {
        let bin = peer::require("nats-server", "nats-server");
        let port = sockit_testkit::net::free_tcp_port();
        let mut child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let mut lines = OutputLines::of(child.stderr.take().expect("its stderr"));
        lines.wait_for("Server is ready", WAIT);
        std::thread::spawn(move || lines.rest());
        Nats {
            child,
            url: format!("nats://127.0.0.1:{port}"),
        }
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `sockit serve --only chat` as node `name` of the cluster at `url`.
fn node(name: &str, url: &str) -> Serve {
    Serve::start(
        SOCKIT,
        &[
            "--only",
            "chat",
            "--chat-name",
            name,
            "--chat-cluster",
            url,
            "--chat-node-timeout",
            "2s",
        ],
    )
}

#[test]
fn serve_nodes_are_one_network_and_a_killed_node_splits() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path());
    let a = node("node-a", &nats.url);
    let b = node("node-b", &nats.url);
    let mut c = node("node-c", &nats.url);
    let mut alice = RawIrc::register(&a.addr("chat", "tcp"), "alice", None, WAIT);
    alice.send("JOIN #k");
    alice.until(|l| l.contains(" 366 "));
    let mut bob = RawIrc::register(&b.addr("chat", "tcp"), "bob", None, WAIT);
    bob.send("JOIN #k");
    alice.until(|l| l.starts_with(":bob!") && l.contains(" JOIN "));
    let mut carol = RawIrc::register(&c.addr("chat", "tcp"), "carol", None, WAIT);
    carol.send("JOIN #k");
    alice.until(|l| l.starts_with(":carol!") && l.contains(" JOIN "));
    bob.until(|l| l.starts_with(":carol!") && l.contains(" JOIN "));
    carol.send("PRIVMSG #k :hi from c");
    let got = alice.until(|l| l.starts_with(":carol!") && l.contains(" PRIVMSG "));
    assert!(got.ends_with("PRIVMSG #k :hi from c"), "{got}");
    bob.send("PRIVMSG alice :private from b");
    let got = alice.until(|l| l.starts_with(":bob!") && l.contains(" PRIVMSG "));
    assert!(got.ends_with("PRIVMSG alice :private from b"), "{got}");

    // SIGKILL: no QUIT is ever sent, the heartbeats stop.
    c.signal(libc::SIGKILL);
    c.wait_exit(WAIT);
    let quit = alice.until(|l| l.starts_with(":carol!") && l.contains(" QUIT "));
    assert!(quit.ends_with("QUIT :node-a node-c"), "{quit}");
    let quit = bob.until(|l| l.starts_with(":carol!") && l.contains(" QUIT "));
    assert!(quit.ends_with("QUIT :node-b node-c"), "{quit}");
    // Her nick is free network-wide: a user of node A takes it.
    let mut again = RawIrc::register(&a.addr("chat", "tcp"), "carol", None, WAIT);
    again.send("JOIN #k");
    bob.until(|l| l.starts_with(":carol!") && l.contains(" JOIN "));
    drop(carol);
}
