//! Chat past one machine: three IRC servers in one process, each a node of one cluster
//! over a real `nats-server` (JetStream on), with raw-socket clients on different nodes.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use sockit_chat::irc::{ClusterConfig, Message};
use sockit_testkit::process::OutputLines;
use tokio_util::sync::CancellationToken;

use crate::common::{config, start, Raw, TestServer};

/// How long nats-server may take to say it is ready (a hang guard).
const READY_WAIT: Duration = Duration::from_secs(30);

/// The node timeout of the tests (short, so a netsplit comes soon).
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// A running nats-server, killed on drop.
struct Nats {
    child: Child,
    port: u16,
}

impl Nats {
    /// Starts `nats-server -js` on a free loopback port with its store in `dir`; returns
    /// once it says it is ready.
    fn start(dir: &Path, port: Option<u16>) -> Nats {
        let bin = sockit_testkit::peer::require("nats-server", "nats-server");
        let port = port.unwrap_or_else(sockit_testkit::net::free_tcp_port);
        let mut child = Command::new(bin)
            .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let mut lines = OutputLines::of(child.stderr.take().expect("its stderr"));
        lines.wait_for("Server is ready", READY_WAIT);
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.rest());
        Nats { child, port }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One node: its server and the token that stops its cluster link.
struct Node {
    server: TestServer,
    link: CancellationToken,
}

impl Node {
    fn addr(&self) -> SocketAddr {
        self.server.addr
    }
}

/// Starts node `name` on `nats` and waits until it is subscribed.
async fn node(name: &str, nats: &str) -> Node {
    let server = start(sockit_chat::irc::ServerConfig {
        name: name.into(),
        ..config()
    })
    .await;
    let link = CancellationToken::new();
    server.server.join_cluster(
        ClusterConfig {
            servers: vec![nats.to_owned()],
            node_timeout: NODE_TIMEOUT,
        },
        link.clone(),
    );
    tokio::time::timeout(READY_WAIT, server.server.cluster_ready())
        .await
        .expect("the node reached NATS");
    Node { server, link }
}

/// Reads until a `command` line from `nick` comes.
async fn from(c: &mut Raw, command: &str, nick: &str) -> Message {
    c.until(|m| m.command == command && m.source_nick() == Some(nick))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn three_nodes_are_one_network() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let (a, b, c) = (
        node("node-a", &nats.url()).await,
        node("node-b", &nats.url()).await,
        node("node-c", &nats.url()).await,
    );
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #room").await;
    bob.until_cmd("366").await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #room").await;
    alice.until_cmd("366").await;
    // Bob, on another node, sees Alice join; Alice sees what Bob says.
    let join = from(&mut bob, "JOIN", "alice").await;
    assert_eq!(join.param(0), Some("#room"));
    bob.send("PRIVMSG #room :hello from b").await;
    let m = from(&mut alice, "PRIVMSG", "bob").await;
    assert_eq!(m.params, ["#room", "hello from b"]);
    // NAMES and WHOIS on node A show the remote user.
    alice.send("NAMES #room").await;
    let names = alice.until_cmd("353").await;
    let list = names.params.last().unwrap().clone();
    assert!(
        list.split(' ')
            .any(|n| n.trim_start_matches(['@', '+']) == "bob"),
        "{list}"
    );
    alice.until_cmd("366").await;
    alice.send("WHOIS bob").await;
    let who = alice.until_cmd("311").await;
    assert_eq!(who.param(1), Some("bob"));
    let server = alice.until_cmd("312").await;
    assert_eq!(server.param(2), Some("node-b"), "{server}");
    alice.until_cmd("318").await;

    // A third node: a private message across, a NICK seen everywhere.
    let mut carol = Raw::register(c.addr(), "carol").await;
    carol.send("JOIN #room").await;
    from(&mut alice, "JOIN", "carol").await;
    from(&mut bob, "JOIN", "carol").await;
    alice.send("PRIVMSG carol :psst").await;
    let m = from(&mut carol, "PRIVMSG", "alice").await;
    assert_eq!(m.params, ["carol", "psst"]);
    carol.send("NOTICE alice :noted").await;
    let m = from(&mut alice, "NOTICE", "carol").await;
    assert_eq!(m.params, ["alice", "noted"]);
    carol.send("NICK carol2").await;
    let m = from(&mut alice, "NICK", "carol").await;
    assert_eq!(m.param(0), Some("carol2"));
    let m = from(&mut bob, "NICK", "carol").await;
    assert_eq!(m.param(0), Some("carol2"));
    // The old nick is free again, the new one is taken network-wide.
    alice.send("PRIVMSG carol2 :again").await;
    from(&mut carol, "PRIVMSG", "alice").await;

    // Bob created #room, so he is its operator on every node: his TOPIC is everyone's.
    bob.send("TOPIC #room :the new topic").await;
    let t = from(&mut alice, "TOPIC", "bob").await;
    assert_eq!(t.params, ["#room", "the new topic"]);
    let t = from(&mut carol, "TOPIC", "bob").await;
    assert_eq!(t.params, ["#room", "the new topic"]);

    // PART and QUIT travel too.
    carol.send("PART #room :bye all").await;
    let p = from(&mut alice, "PART", "carol2").await;
    assert_eq!(p.params, ["#room", "bye all"]);
    bob.send("QUIT :gone home").await;
    let q = from(&mut alice, "QUIT", "bob").await;
    assert_eq!(q.param(0), Some("Quit: gone home"));
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nick_race_across_nodes_has_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let a = node("race-a", &nats.url()).await;
    let b = node("race-b", &nats.url()).await;
    let mut one = Raw::connect(a.addr()).await;
    let mut two = Raw::connect(b.addr()).await;
    let register = "NICK racer\r\nUSER racer 0 * :Racer\r\n";
    tokio::join!(
        one.send_raw(register.as_bytes()),
        two.send_raw(register.as_bytes())
    );
    let first = |m: &Message| m.command == "001" || m.command == "433";
    let (r1, r2) = tokio::join!(one.until(first), two.until(first));
    let mut got = [r1.command.as_str(), r2.command.as_str()];
    got.sort_unstable();
    assert_eq!(
        got,
        ["001", "433"],
        "exactly one gets the nick: {r1} / {r2}"
    );
    let (winner, mut loser) = if r1.command == "001" {
        (r1, two)
    } else {
        (r2, one)
    };
    assert_eq!(winner.param(0), Some("racer"));
    // The loser picks another nick and registers.
    loser.send("NICK racer2").await;
    let welcome = loser.until_cmd("001").await;
    assert_eq!(welcome.param(0), Some("racer2"));
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_users_of_a_silent_node_quit_with_a_netsplit() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let a = node("split-a", &nats.url()).await;
    let b = node("split-b", &nats.url()).await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #s").await;
    alice.until_cmd("366").await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #s").await;
    from(&mut alice, "JOIN", "bob").await;
    // Node B stops talking to the cluster: within the node timeout its users quit.
    b.link.cancel();
    let q = tokio::time::timeout(Duration::from_secs(60), from(&mut alice, "QUIT", "bob"))
        .await
        .expect("bob quit on node A");
    assert_eq!(q.param(0), Some("split-a split-b"));
    // His nick is free on node A again.
    alice.send("WHOIS bob").await;
    alice.until_cmd("401").await;
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_resync_when_nats_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path(), None);
    let port = nats.port;
    let a = node("back-a", &nats.url()).await;
    let b = node("back-b", &nats.url()).await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #r").await;
    alice.until_cmd("366").await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #r").await;
    from(&mut alice, "JOIN", "bob").await;
    nats.kill();
    // Each node keeps serving its own users, says so, and sees the other's leave.
    let n = alice
        .until(|m| m.command == "NOTICE" && m.param(1).is_some_and(|t| t.contains("Lost")))
        .await;
    assert!(n.param(1).unwrap().contains("rest of the network"), "{n}");
    let q = from(&mut alice, "QUIT", "bob").await;
    assert_eq!(q.param(0), Some("back-a back-b"));
    alice.send("PRIVMSG #r :still here").await;
    alice.send("PING :local").await;
    alice.until_cmd("PONG").await;
    // NATS returns: the nodes exchange snapshots and Bob is back in #r.
    let _nats = Nats::start(dir.path(), Some(port));
    let j = tokio::time::timeout(Duration::from_secs(60), from(&mut alice, "JOIN", "bob"))
        .await
        .expect("bob is back");
    assert_eq!(j.param(0), Some("#r"));
    bob.send("PRIVMSG #r :back").await;
    let m = from(&mut alice, "PRIVMSG", "bob").await;
    assert_eq!(m.params, ["#r", "back"]);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn modes_away_and_kicks_cross_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let a = node("ops-a", &nats.url()).await;
    let b = node("ops-b", &nats.url()).await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #m").await;
    bob.until_cmd("366").await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #m").await;
    from(&mut bob, "JOIN", "alice").await;
    // Bob made the channel: his MODE counts on node A.
    bob.send("MODE #m +v alice").await;
    let m = from(&mut alice, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "+v", "alice"]);
    // AWAY travels before what Alice says next.
    alice.send("AWAY :at lunch").await;
    alice.send("PRIVMSG #m :brb").await;
    from(&mut bob, "PRIVMSG", "alice").await;
    bob.send("WHOIS alice").await;
    let away = bob.until_cmd("301").await;
    assert_eq!(away.params, ["bob", "alice", "at lunch"]);
    bob.until_cmd("318").await;
    bob.send("KICK #m alice :out").await;
    let k = from(&mut alice, "KICK", "bob").await;
    assert_eq!(k.params, ["#m", "alice", "out"]);
    drop((a, b));
}
