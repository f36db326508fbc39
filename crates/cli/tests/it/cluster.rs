//! `sockit serve --chat-cluster`: three real server processes over one `nats-server`
//! (JetStream on) are one IRC network, and the users of a node killed with SIGKILL quit
//! on the others; over a NATS cluster of three servers given as a list, the network
//! rides out one of them dying.

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
        Nats::start_with(dir, sockit_testkit::net::free_tcp_port(), &[])
    }

    /// `nats-server -js` on `port` with its store in `dir` and `args`; returns once it
    /// says it is ready.
    fn start_with(dir: &Path, port: u16, args: &[String]) -> Nats {
        let bin = peer::require("nats-server", "nats-server");
        let mut child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .args(args)
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

/// Whether `GET /healthz` on monitoring port `port` answers 200 (JetStream has its meta
/// leader).
fn healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(WAIT));
    if s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").is_err() {
        return false;
    }
    let mut head = Vec::new();
    let _ = s.read_to_end(&mut head);
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200")
}

/// Three nats-servers routed as the NATS cluster `sockit` (JetStream on, a store each);
/// returns once JetStream is healthy on all three.
fn nats_cluster(dir: &Path) -> Vec<Nats> {
    let free = sockit_testkit::net::free_tcp_port;
    let routes: Vec<u16> = (0..3).map(|_| free()).collect();
    let list = routes
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let servers: Vec<(Nats, u16)> = (0..3)
        .map(|i| {
            let store = dir.join(format!("nats-{i}"));
            std::fs::create_dir_all(&store).unwrap();
            let monitor = free();
            let args = [
                "-n".to_owned(),
                format!("nats-{i}"),
                "-m".into(),
                monitor.to_string(),
                "--cluster_name".into(),
                "sockit".into(),
                "--cluster".into(),
                format!("nats://127.0.0.1:{}", routes[i]),
                "--routes".into(),
                list.clone(),
            ];
            (Nats::start_with(&store, free(), &args), monitor)
        })
        .collect();
    for (_, monitor) in &servers {
        // A bounded poll: the servers elect JetStream's meta leader among themselves.
        let ok = (0..600).any(|_| {
            healthy(*monitor) || {
                std::thread::sleep(Duration::from_millis(100));
                false
            }
        });
        assert!(ok, "the NATS cluster never became healthy");
    }
    servers.into_iter().map(|(n, _)| n).collect()
}

/// Sends probes from `sender` to `target` until `receiver` gets one from
/// `sender_nick` (bounded): after a NATS server died, a node's subscription takes a
/// moment to be known on its new server.
fn until_crosses(sender: &mut RawIrc, sender_nick: &str, receiver: &mut RawIrc, target: &str) {
    for i in 0..300 {
        sender.send(&format!("PRIVMSG {target} :probe {i}"));
        std::thread::sleep(Duration::from_millis(100));
        receiver.send(&format!("PING :p{i}"));
        let from = format!(":{sender_nick}!");
        let pong = format!(":p{i}");
        let got = receiver.until(|l| {
            (l.starts_with(&from) && l.contains(" PRIVMSG ") && l.contains(":probe "))
                || (l.contains(" PONG ") && l.ends_with(&pong))
        });
        if got.contains(" PRIVMSG ") {
            return;
        }
    }
    panic!("no probe from {sender_nick} crossed to {target}");
}

/// `sockit serve --only chat` as node `name` of the cluster at `url`, with the short
/// node timeout of a test that kills a node.
fn node(name: &str, url: &str) -> Serve {
    node_timed(name, url, "2s")
}

/// [`node`] with node timeout `timeout` (a long one where no node should split, even on
/// a loaded machine).
fn node_timed(name: &str, url: &str, timeout: &str) -> Serve {
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
            timeout,
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

#[test]
fn serve_nodes_on_a_nats_cluster_ride_out_a_dead_nats_server() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = nats_cluster(dir.path());
    // Each node gets the three servers as one list, its own first.
    let list = |first: usize| {
        (0..3)
            .map(|k| nats[(first + k) % 3].url.clone())
            .collect::<Vec<_>>()
            .join(",")
    };
    let a = node_timed("ride-a", &list(0), "120s");
    let b = node_timed("ride-b", &list(1), "120s");
    let c = node_timed("ride-c", &list(2), "120s");
    let mut alice = RawIrc::register(&a.addr("chat", "tcp"), "alice", None, WAIT);
    alice.join("#k");
    let mut bob = RawIrc::register(&b.addr("chat", "tcp"), "bob", None, WAIT);
    bob.send("JOIN #k");
    alice.until(|l| l.starts_with(":bob!") && l.contains(" JOIN "));
    let mut carol = RawIrc::register(&c.addr("chat", "tcp"), "carol", None, WAIT);
    carol.send("JOIN #k");
    alice.until(|l| l.starts_with(":carol!") && l.contains(" JOIN "));
    // SIGKILL the NATS server node A uses: it says so, moves on, says it is back.
    let dead = nats.remove(0);
    drop(dead);
    alice.until(|l| l.contains(" NOTICE ") && l.contains("Lost the link"));
    alice.until(|l| l.contains(" NOTICE ") && l.contains("is back"));
    // The network goes on: messages cross both ways and reach the third node.
    until_crosses(&mut alice, "alice", &mut bob, "#k");
    until_crosses(&mut bob, "bob", &mut alice, "#k");
    until_crosses(&mut carol, "carol", &mut alice, "#k");
    // A newcomer on node B registers and is seen on node A.
    let mut dave = RawIrc::register(&b.addr("chat", "tcp"), "dave", None, WAIT);
    dave.send("JOIN #k");
    alice.until(|l| l.starts_with(":dave!") && l.contains(" JOIN "));
    drop((a, b, c));
}
