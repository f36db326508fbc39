//! Chat past one machine: IRC servers in one process, each a node of one cluster over
//! real `nats-server`s (JetStream on): a single server, and a cluster of three for the
//! failure of one. Raw-socket clients on different nodes check what users see.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use base64::Engine as _;
use sockit_chat::irc::{
    AuthVerdict, ClusterConfig, CreateVerdict, IrcAuth, Message, OperBlock, ServerConfig,
};
use sockit_testkit::process::OutputLines;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::common::{config, start, tags, Raw, TestServer};

/// How long nats-server may take to say it is ready (a hang guard).
const READY_WAIT: Duration = Duration::from_secs(60);

/// The node timeout of the tests that split the network (short, so a netsplit comes
/// soon).
const NODE_TIMEOUT: Duration = Duration::from_secs(2);

/// The node timeout of the other tests: long, so a loaded machine never splits them.
const QUIET_TIMEOUT: Duration = Duration::from_secs(120);

/// Bounded polls: at most this many tries, [`POLL_PAUSE`] apart.
const POLL_TRIES: usize = 600;

/// The pause between two polls of a state that changes by itself (a hang guard's unit,
/// not a wait for readiness).
const POLL_PAUSE: Duration = Duration::from_millis(100);

/// A running nats-server, killed on drop.
struct Nats {
    child: Child,
    port: u16,
    /// The monitoring port (`/healthz`), when started with one.
    monitor: Option<u16>,
    /// `-n`, for a server of a NATS cluster.
    name: String,
}

impl Nats {
    /// Starts `nats-server -js` with `args` and its store in `dir`; returns once it says
    /// it is ready.
    fn spawn(dir: &Path, port: u16, monitor: Option<u16>, name: &str, args: &[String]) -> Nats {
        let bin = sockit_testkit::peer::require("nats-server", "nats-server");
        let mut cmd = Command::new(bin);
        cmd.args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
            .arg(dir)
            .args(args);
        if let Some(m) = monitor {
            cmd.args(["-m", &m.to_string()]);
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start nats-server");
        let mut lines = OutputLines::of(child.stderr.take().expect("its stderr"));
        lines.wait_for("Server is ready", READY_WAIT);
        // Keep draining its log so it never blocks on a full pipe.
        std::thread::spawn(move || lines.rest());
        Nats {
            child,
            port,
            monitor,
            name: name.to_owned(),
        }
    }

    /// A single server on `port` (a free one if `None`).
    fn start(dir: &Path, port: Option<u16>) -> Nats {
        let port = port.unwrap_or_else(sockit_testkit::net::free_tcp_port);
        Nats::spawn(dir, port, None, "", &[])
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no goodbye to its clients or its cluster.
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

/// Whether `GET /healthz` on monitoring port `port` answers 200 (JetStream has a meta
/// leader and every stream this server holds is current).
async fn healthy(port: u16) -> bool {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return false;
    };
    if s.write_all(b"GET /healthz HTTP/1.0\r\n\r\n").await.is_err() {
        return false;
    }
    let mut head = Vec::new();
    let _ = s.read_to_end(&mut head).await;
    head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.0 200")
}

/// Polls until `check` holds (bounded); panics with `what` otherwise.
async fn poll<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    for _ in 0..POLL_TRIES {
        if check().await {
            return;
        }
        tokio::time::sleep(POLL_PAUSE).await;
    }
    panic!("{what} did not happen");
}

/// Three nats-servers routed to each other as the NATS cluster `sockit`, JetStream on
/// (each its own store directory).
struct NatsCluster {
    servers: Vec<Nats>,
}

impl NatsCluster {
    async fn start(dir: &Path) -> NatsCluster {
        let free = sockit_testkit::net::free_tcp_port;
        let routes: Vec<u16> = (0..3).map(|_| free()).collect();
        let route_list = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers: Vec<Nats> = (0..3)
            .map(|i| {
                let name = format!("nats-{i}");
                let store = dir.join(&name);
                std::fs::create_dir_all(&store).unwrap();
                let args = [
                    "-n".to_owned(),
                    name.clone(),
                    "--cluster_name".into(),
                    "sockit".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{}", routes[i]),
                    "--routes".into(),
                    route_list.clone(),
                ];
                Nats::spawn(&store, free(), Some(free()), &name, &args)
            })
            .collect();
        for s in &servers {
            let m = s.monitor.unwrap();
            poll("JetStream cluster ready", || healthy(m)).await;
        }
        NatsCluster { servers }
    }

    /// Every server's URL, server `first` first (a node tries them in this order).
    fn urls_from(&self, first: usize) -> Vec<String> {
        (0..3)
            .map(|k| self.servers[(first + k) % 3].url())
            .collect()
    }
}

/// The JetStream streams a cluster node uses.
const STREAMS: [&str; 3] = [
    "KV_sockit-irc-nicks",
    "KV_sockit-irc-accounts",
    "SOCKIT_IRC_HISTORY",
];

/// Whether every stream of [`STREAMS`] has a leader other than `dead`, asked through
/// `url`.
async fn leaders_elected(url: &str, dead: &str) -> bool {
    let Ok(client) = async_nats::connect(url).await else {
        return false;
    };
    let js = async_nats::jetstream::new(client);
    for name in STREAMS {
        let Ok(mut s) = js.get_stream(name).await else {
            return false;
        };
        let Ok(info) = s.info().await else {
            return false;
        };
        let leader = info.cluster.as_ref().and_then(|c| c.leader.clone());
        if leader.is_none_or(|l| l == dead) {
            return false;
        }
    }
    true
}

/// The replicas of stream `name`, asked through `url`.
async fn replicas(url: &str, name: &str) -> usize {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(name).await.expect("the stream exists");
    s.info().await.expect("its info").config.num_replicas
}

/// Accounts kept in memory: names and passwords; clients may register.
#[derive(Debug, Default)]
struct Accounts {
    map: Mutex<HashMap<String, String>>,
}

impl Accounts {
    fn with(accounts: &[(&str, &str)]) -> Arc<Accounts> {
        let map = accounts
            .iter()
            .map(|(a, p)| ((*a).to_owned(), (*p).to_owned()))
            .collect();
        Arc::new(Accounts {
            map: Mutex::new(map),
        })
    }
}

#[async_trait]
impl IrcAuth for Accounts {
    fn required(&self) -> bool {
        false
    }

    async fn verify(&self, account: &str, password: &str, _ip: IpAddr) -> AuthVerdict {
        match self.map.lock().unwrap().get(account) {
            Some(p) if p == password => AuthVerdict::Ok,
            _ => AuthVerdict::Bad,
        }
    }

    fn registration(&self) -> bool {
        true
    }

    async fn create(&self, account: &str, password: &str, _ip: IpAddr) -> CreateVerdict {
        let mut map = self.map.lock().unwrap();
        if map.contains_key(account) {
            return CreateVerdict::Exists;
        }
        map.insert(account.into(), password.into());
        CreateVerdict::Created
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

/// Starts node `name` on the NATS servers `nats` (tried in order), its configuration
/// changed by `tweak`, and waits until it is subscribed, its buckets are open and it
/// caught up with the history stream.
async fn node_with(name: &str, nats: Vec<String>, tweak: impl FnOnce(&mut ServerConfig)) -> Node {
    node_timed(name, nats, QUIET_TIMEOUT, tweak).await
}

/// [`node_with`] with node timeout `timeout`.
async fn node_timed(
    name: &str,
    nats: Vec<String>,
    timeout: Duration,
    tweak: impl FnOnce(&mut ServerConfig),
) -> Node {
    let mut cfg = ServerConfig {
        name: name.into(),
        ..config()
    };
    tweak(&mut cfg);
    let server = start(cfg).await;
    let link = CancellationToken::new();
    server.server.join_cluster(
        ClusterConfig {
            servers: nats,
            node_timeout: timeout,
        },
        link.clone(),
    );
    tokio::time::timeout(READY_WAIT, server.server.cluster_ready())
        .await
        .expect("the node reached NATS");
    Node { server, link }
}

/// Starts node `name` on `nats`.
async fn node(name: &str, nats: &str) -> Node {
    node_with(name, vec![nats.to_owned()], |_| {}).await
}

/// Starts node `name` on `nats` with the short [`NODE_TIMEOUT`] (a test that splits).
async fn split_node(name: &str, nats: &str) -> Node {
    node_timed(name, vec![nats.to_owned()], NODE_TIMEOUT, |_| {}).await
}

/// Reads until a `command` line from `nick` comes.
async fn from(c: &mut Raw, command: &str, nick: &str) -> Message {
    c.until(|m| m.command == command && m.source_nick() == Some(nick))
        .await
}

/// The text of the numerics `code` until `end` (the lines of a WHO, NAMES, LIST…).
async fn replies(c: &mut Raw, code: &str, end: &str) -> Vec<Message> {
    let mut out = Vec::new();
    loop {
        let m = c.msg().await;
        if m.command == end {
            return out;
        }
        if m.command == code {
            out.push(m);
        }
    }
}

/// Registers as `nick` with `caps`, logged in to `account` with SASL PLAIN.
async fn login(addr: SocketAddr, nick: &str, account: &str, password: &str, caps: &str) -> Raw {
    let mut c = Raw::connect(addr).await;
    c.send("CAP LS 302").await;
    loop {
        let ls = c.expect("CAP").await;
        if ls.param(2) != Some("*") {
            break;
        }
    }
    let caps = if caps.is_empty() {
        "sasl".to_owned()
    } else {
        format!("sasl {caps}")
    };
    c.send(&format!("CAP REQ :{caps}")).await;
    c.until_cmd("CAP").await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :Real {nick}")).await;
    assert_eq!(sasl(&mut c, account, password).await, "903");
    c.send("CAP END").await;
    c.until(|m| m.command == "376" || m.command == "422").await;
    c
}

/// One SASL PLAIN exchange; the numeric that ends it (`903`, `904`…).
async fn sasl(c: &mut Raw, account: &str, password: &str) -> String {
    c.send("AUTHENTICATE PLAIN").await;
    c.until_cmd("AUTHENTICATE").await;
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"));
    c.send(&format!("AUTHENTICATE {b64}")).await;
    c.until(|m| matches!(m.command.as_str(), "903" | "904" | "905" | "906"))
        .await
        .command
}

/// Sends probes from `sender` to `target` until `receiver` gets one from `sender_nick`
/// (bounded). After a NATS server dies, a moment passes before a node's subscription
/// is known on its new server; and once a probe arrives, the receiver's node has
/// applied every earlier event of the sender's node (one publisher, one subscription).
async fn until_crosses(sender: &mut Raw, sender_nick: &str, receiver: &mut Raw, target: &str) {
    for i in 0..POLL_TRIES {
        sender.send(&format!("PRIVMSG {target} :probe {i}")).await;
        tokio::time::sleep(POLL_PAUSE).await;
        let got = receiver.sync(&format!("p{i}")).await;
        if got.iter().any(|m| {
            m.command == "PRIVMSG"
                && m.source_nick() == Some(sender_nick)
                && m.param(1).is_some_and(|t| t.starts_with("probe "))
        }) {
            return;
        }
    }
    panic!("no message from {sender_nick} crossed to {target}");
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
    let a = split_node("split-a", &nats.url()).await;
    let b = split_node("split-b", &nats.url()).await;
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
    let a = split_node("back-a", &nats.url()).await;
    let b = split_node("back-b", &nats.url()).await;
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
async fn topic_modes_bans_limits_and_kicks_cross_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let a = node("ops-a", &nats.url()).await;
    let b = node("ops-b", &nats.url()).await;
    let c = node("ops-c", &nats.url()).await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #m").await;
    bob.until_cmd("366").await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    let mut carol = Raw::register(c.addr(), "carol").await;
    // Nodes A and C know #m and its operator before their users join (else each would
    // make its own joiner an operator too: two joins at once).
    until_crosses(&mut bob, "bob", &mut alice, "alice").await;
    until_crosses(&mut bob, "bob", &mut carol, "carol").await;
    alice.send("JOIN #m").await;
    from(&mut bob, "JOIN", "alice").await;
    carol.send("JOIN #m").await;
    from(&mut alice, "JOIN", "carol").await;
    from(&mut bob, "JOIN", "carol").await;
    // Bob made the channel: his MODE counts on nodes A and C.
    bob.send("MODE #m +v alice").await;
    let m = from(&mut alice, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "+v", "alice"]);
    let m = from(&mut carol, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "+v", "alice"]);
    // A key and a ban set on node B keep a user of node C out; a limit too.
    let mut dave = Raw::register(c.addr(), "dave").await;
    bob.send("MODE #m +k sesame").await;
    let m = from(&mut carol, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "+k", "sesame"]);
    dave.send("JOIN #m").await;
    assert_eq!(dave.until_cmd("475").await.param(1), Some("#m"));
    bob.send("MODE #m +b dave!*@*").await;
    let m = from(&mut carol, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "+b", "dave!*@*"]);
    dave.send("JOIN #m sesame").await;
    assert_eq!(dave.until_cmd("474").await.param(1), Some("#m"));
    bob.send("MODE #m -b+l dave!*@* 3").await;
    let m = from(&mut carol, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "-b+l", "dave!*@*", "3"]);
    dave.send("JOIN #m sesame").await;
    assert_eq!(dave.until_cmd("471").await.param(1), Some("#m"));
    bob.send("MODE #m -l").await;
    from(&mut carol, "MODE", "bob").await;
    dave.send("JOIN #m sesame").await;
    dave.until_cmd("366").await;
    from(&mut bob, "JOIN", "dave").await;
    // Modes as node C sees them: the key (shown to members), +n +t.
    dave.send("MODE #m").await;
    let modes = dave.until_cmd("324").await;
    assert_eq!(modes.params[1..], ["#m", "+knt", "sesame"]);
    // +m on node B: on node A, Alice (voiced) may speak, Carol on node C may not.
    bob.send("MODE #m +m").await;
    from(&mut carol, "MODE", "bob").await;
    from(&mut alice, "MODE", "bob").await;
    carol.send("PRIVMSG #m :can I?").await;
    assert_eq!(carol.until_cmd("404").await.param(1), Some("#m"));
    alice.send("PRIVMSG #m :I can").await;
    let m = from(&mut bob, "PRIVMSG", "alice").await;
    assert_eq!(m.params, ["#m", "I can"]);
    // The topic, with who set it and when, is the same on every node.
    bob.send("TOPIC #m :ops only").await;
    from(&mut alice, "TOPIC", "bob").await;
    from(&mut dave, "TOPIC", "bob").await;
    bob.send("TOPIC #m").await;
    bob.until_cmd("332").await;
    let at_b = bob.until_cmd("333").await;
    dave.send("TOPIC #m").await;
    dave.until_cmd("332").await;
    let at_c = dave.until_cmd("333").await;
    assert_eq!(at_b.params[1..], at_c.params[1..]);
    assert_eq!(at_c.param(2), Some("bob"));
    // Bob hands over and steps down: Alice's MODE on node A then counts everywhere.
    bob.send("MODE #m +o-o alice bob").await;
    let m = from(&mut carol, "MODE", "bob").await;
    assert_eq!(m.params, ["#m", "+o-o", "alice", "bob"]);
    from(&mut alice, "MODE", "bob").await;
    alice.send("MODE #m -m").await;
    let m = from(&mut carol, "MODE", "alice").await;
    assert_eq!(m.params, ["#m", "-m"]);
    // A KICK on node A reaches the kicked user on node C and everyone else.
    alice.send("KICK #m carol :out").await;
    let k = from(&mut carol, "KICK", "alice").await;
    assert_eq!(k.params, ["#m", "carol", "out"]);
    let k = from(&mut bob, "KICK", "alice").await;
    assert_eq!(k.params, ["#m", "carol", "out"]);
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn invite_and_tagmsg_cross_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let a = node("inv-a", &nats.url()).await;
    let b = node("inv-b", &nats.url()).await;
    let c = node("inv-c", &nats.url()).await;
    let mut bob = Raw::register_with(b.addr(), "bob", "message-tags").await;
    bob.send("JOIN #inv").await;
    bob.until_cmd("366").await;
    let mut carol = Raw::register_with(c.addr(), "carol", "invite-notify message-tags").await;
    carol.send("JOIN #inv").await;
    from(&mut bob, "JOIN", "carol").await;
    bob.send("MODE #inv +i").await;
    from(&mut carol, "MODE", "bob").await;
    let mut alice = Raw::register_with(a.addr(), "alice", "message-tags").await;
    // Node A has applied node B's events up to the +i once a message from B arrives.
    until_crosses(&mut bob, "bob", &mut alice, "alice").await;
    alice.send("JOIN #inv").await;
    assert_eq!(alice.until_cmd("473").await.param(1), Some("#inv"));
    // Bob (node B) invites Alice (node A): she gets the INVITE, Carol (node C, with
    // invite-notify) sees it, and Alice joins past +i.
    bob.send("INVITE alice #inv").await;
    let r = bob.until_cmd("341").await;
    assert_eq!(r.params[1..], ["alice", "#inv"]);
    let inv = from(&mut alice, "INVITE", "bob").await;
    assert_eq!(inv.params, ["alice", "#inv"]);
    let seen = from(&mut carol, "INVITE", "bob").await;
    assert_eq!(seen.params, ["alice", "#inv"]);
    alice.send("JOIN #inv").await;
    alice.until_cmd("366").await;
    from(&mut bob, "JOIN", "alice").await;
    from(&mut carol, "JOIN", "alice").await;
    // TAGMSG with a client-only tag, to the channel and to one user on another node:
    // the tag arrives, and the msgid is the same on every node.
    alice.send("@+typing=active TAGMSG #inv").await;
    let t1 = from(&mut bob, "TAGMSG", "alice").await;
    let t2 = from(&mut carol, "TAGMSG", "alice").await;
    assert_eq!(t1.params, ["#inv"]);
    assert_eq!(tags(&t1).get("+typing"), Some("active"));
    assert_eq!(tags(&t2).get("+typing"), Some("active"));
    let id = tags(&t1).get("msgid").map(str::to_owned);
    assert!(id.is_some(), "{t1}");
    assert_eq!(tags(&t2).get("msgid").map(str::to_owned), id);
    alice.send("@+react=wave TAGMSG carol").await;
    let t = from(&mut carol, "TAGMSG", "alice").await;
    assert_eq!(t.params, ["carol"]);
    assert_eq!(tags(&t).get("+react"), Some("wave"));
    // A PRIVMSG keeps one msgid network-wide too.
    carol.send("PRIVMSG #inv :same id").await;
    let p1 = from(&mut alice, "PRIVMSG", "carol").await;
    let p2 = from(&mut bob, "PRIVMSG", "carol").await;
    assert_eq!(tags(&p1).get("msgid"), tags(&p2).get("msgid"));
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn away_account_setname_and_extended_join_notifications_cross_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let auth = |cfg: &mut ServerConfig| {
        cfg.auth = Some(Accounts::with(&[("alice", "pw"), ("dave", "pw")]));
    };
    let a = node_with("ntf-a", vec![nats.url()], auth).await;
    let b = node_with("ntf-b", vec![nats.url()], |_| {}).await;
    let caps = "away-notify account-notify setname extended-join";
    let mut watcher = Raw::register_with(b.addr(), "watcher", caps).await;
    watcher.send("JOIN #n").await;
    watcher.until_cmd("366").await;
    let mut alice = Raw::register_with(a.addr(), "alice", "sasl").await;
    alice.send("JOIN #n").await;
    let j = from(&mut watcher, "JOIN", "alice").await;
    assert_eq!(
        j.params,
        ["#n", "*", "Real alice"],
        "extended-join, no account"
    );
    alice.send("AWAY :lunch").await;
    let m = from(&mut watcher, "AWAY", "alice").await;
    assert_eq!(m.params, ["lunch"]);
    alice.send("AWAY").await;
    let m = from(&mut watcher, "AWAY", "alice").await;
    assert!(m.params.is_empty(), "{m}");
    alice.send("SETNAME :Alice Liddell").await;
    let m = from(&mut watcher, "SETNAME", "alice").await;
    assert_eq!(m.params, ["Alice Liddell"]);
    // A login after registration (SASL 3.2) is ACCOUNT on the other node.
    assert_eq!(sasl(&mut alice, "alice", "pw").await, "903");
    let m = from(&mut watcher, "ACCOUNT", "alice").await;
    assert_eq!(m.params, ["alice"]);
    // Someone logged in already joins: extended-join carries the account.
    let mut dave = login(a.addr(), "dave", "dave", "pw", "").await;
    dave.send("AWAY :busy").await;
    dave.until_cmd("306").await;
    dave.send("JOIN #n").await;
    let j = from(&mut watcher, "JOIN", "dave").await;
    assert_eq!(j.params, ["#n", "dave", "Real dave"]);
    // A user already away when it joins: its AWAY follows the JOIN.
    let m = from(&mut watcher, "AWAY", "dave").await;
    assert_eq!(m.params, ["busy"]);
    // WHOIS on node B shows the account and the away message.
    watcher.send("WHOIS alice").await;
    let acc = watcher.until_cmd("330").await;
    assert_eq!(acc.params[1..3], ["alice", "alice"]);
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn who_whois_names_list_and_lusers_answer_for_the_network() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let a = node("q-a", &nats.url()).await;
    let b = node("q-b", &nats.url()).await;
    let c = node("q-c", &nats.url()).await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #w").await;
    alice.until_cmd("366").await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #w,#b2").await;
    from(&mut alice, "JOIN", "bob").await;
    let mut carol = Raw::register(c.addr(), "carol").await;
    carol.send("JOIN #w").await;
    from(&mut alice, "JOIN", "carol").await;
    from(&mut bob, "JOIN", "carol").await;
    // LUSERS on node A: the network's users on three servers, one of them local.
    alice.send("LUSERS").await;
    let l = alice.until_cmd("251").await;
    assert_eq!(
        l.param(1),
        Some("There are 3 users and 0 invisible on 3 servers")
    );
    let me = alice.until_cmd("255").await;
    assert_eq!(me.param(1), Some("I have 1 clients and 2 servers"));
    let local = alice.until_cmd("265").await;
    assert_eq!(local.params[1..3], ["1", "1"]);
    let global = alice.until_cmd("266").await;
    assert_eq!(global.params[1..3], ["3", "3"]);
    // WHO #w on node A: every member, each on its own server (remote ones one hop away).
    alice.send("WHO #w").await;
    let mut rows: Vec<(String, String, String)> = replies(&mut alice, "352", "315")
        .await
        .iter()
        .map(|m| {
            let hops = m.params[7].split(' ').next().unwrap().to_owned();
            (m.params[5].clone(), m.params[4].clone(), hops)
        })
        .collect();
    rows.sort();
    let want = [
        ("alice", "q-a", "0"),
        ("bob", "q-b", "1"),
        ("carol", "q-c", "1"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(n, s, h)| ((*n).into(), (*s).into(), (*h).into()))
        .collect();
    assert_eq!(rows, want);
    // WHOIS on node B names carol's node.
    bob.send("WHOIS carol").await;
    let s = bob.until_cmd("312").await;
    assert_eq!(s.params[1..3], ["carol", "q-c"]);
    bob.until_cmd("318").await;
    // NAMES on node C: all three.
    carol.send("NAMES #w").await;
    let names: Vec<String> = replies(&mut carol, "353", "366")
        .await
        .iter()
        .flat_map(|m| {
            m.params
                .last()
                .unwrap()
                .split(' ')
                .map(|n| n.trim_start_matches(['@', '+']).to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let mut names = names;
    names.sort();
    assert_eq!(names, ["alice", "bob", "carol"]);
    // LIST on node A: both channels with their member counts.
    alice.send("LIST").await;
    let mut list: Vec<(String, String)> = replies(&mut alice, "322", "323")
        .await
        .iter()
        .map(|m| (m.params[1].clone(), m.params[2].clone()))
        .collect();
    list.sort();
    assert_eq!(
        list,
        [
            ("#b2".to_owned(), "1".to_owned()),
            ("#w".into(), "3".into())
        ]
    );
    alice.send("ISON bob carol nobody").await;
    assert_eq!(alice.until_cmd("303").await.param(1), Some("bob carol"));
    // MONITOR on node A sees a user of node C come and go.
    alice.send("MONITOR + dave").await;
    assert_eq!(alice.until_cmd("731").await.param(1), Some("dave"));
    let mut dave = Raw::register(c.addr(), "dave").await;
    let on = alice.until_cmd("730").await;
    assert!(on.param(1).is_some_and(|m| m.starts_with("dave!")), "{on}");
    dave.send("QUIT :bye").await;
    assert_eq!(alice.until_cmd("731").await.param(1), Some("dave"));
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_kills_and_wallops_across_nodes() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let oper = |cfg: &mut ServerConfig| {
        cfg.auth = Some(Accounts::with(&[("root", "rootpw")]));
        cfg.opers = vec![OperBlock::new("root")];
    };
    let a = node_with("op-a", vec![nats.url()], oper).await;
    let b = node("op-b", &nats.url()).await;
    let c = node("op-c", &nats.url()).await;
    let mut op = Raw::register(a.addr(), "op").await;
    op.send("JOIN #x").await;
    op.until_cmd("366").await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("MODE bob +w").await;
    bob.send("JOIN #x").await;
    from(&mut op, "JOIN", "bob").await;
    let mut carol = Raw::register_with(c.addr(), "carol", "chghost").await;
    carol.send("MODE carol +w").await;
    carol.send("JOIN #x").await;
    from(&mut op, "JOIN", "carol").await;
    from(&mut bob, "JOIN", "carol").await;
    op.send("OPER root rootpw").await;
    op.until_cmd("381").await;
    // WALLOPS reach the +w users of every node.
    op.send("WALLOPS :maintenance at noon").await;
    let w = from(&mut bob, "WALLOPS", "op").await;
    assert_eq!(w.params, ["maintenance at noon"]);
    let w = from(&mut carol, "WALLOPS", "op").await;
    assert_eq!(w.params, ["maintenance at noon"]);
    // The operator is one everywhere (node C learnt it before the WALLOPS, which only
    // an operator may send): WHOIS 313 and LUSERS 252 there.
    carol.send("WHOIS op").await;
    let o = carol.until_cmd("313").await;
    assert_eq!(o.param(1), Some("op"));
    carol.until_cmd("318").await;
    carol.send("LUSERS").await;
    assert_eq!(carol.until_cmd("252").await.param(1), Some("1"));
    // CHGHOST of a user of node C: node C changes it, everyone sees it.
    op.send("CHGHOST carol cloak.example").await;
    let v = carol.until_cmd("396").await;
    assert_eq!(v.param(1), Some("cloak.example"));
    let ch = from(&mut carol, "CHGHOST", "carol").await;
    assert_eq!(ch.params, ["carol", "cloak.example"]);
    let q = from(&mut bob, "QUIT", "carol").await;
    assert_eq!(q.params, ["Changing host"]);
    let j = from(&mut bob, "JOIN", "carol").await;
    assert_eq!(j.prefix.as_deref(), Some("carol!carol@cloak.example"));
    // KILL of a user of node B from node A: B closes the connection, everyone sees it.
    op.send("KILL bob :spamming").await;
    let k = from(&mut bob, "KILL", "op").await;
    assert_eq!(k.params, ["bob", "spamming"]);
    let lines = bob.until_closed().await;
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("ERROR") && l.contains("Killed (op (spamming))")),
        "{lines:?}"
    );
    let q = from(&mut carol, "QUIT", "bob").await;
    assert_eq!(q.params, ["Killed (op (spamming))"]);
    let q = from(&mut op, "QUIT", "bob").await;
    assert_eq!(q.params, ["Killed (op (spamming))"]);
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_carry_modes_lists_and_topics_to_a_new_node_and_after_a_split() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path(), None);
    let port = nats.port;
    let a = split_node("snap-a", &nats.url()).await;
    let b = split_node("snap-b", &nats.url()).await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #s").await;
    bob.until_cmd("366").await;
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #s").await;
    from(&mut bob, "JOIN", "alice").await;
    bob.send("MODE #s +iklb key 10 bad!*@*").await;
    from(&mut alice, "MODE", "bob").await;
    bob.send("MODE #s +eI good!*@* friend!*@*").await;
    from(&mut alice, "MODE", "bob").await;
    bob.send("TOPIC #s :the topic").await;
    from(&mut alice, "TOPIC", "bob").await;
    bob.send("MODE #s").await;
    let created = bob.until_cmd("329").await;
    bob.send("TOPIC #s").await;
    let set = bob.until_cmd("333").await;
    // Node C starts later: the snapshots give it the channel as it is.
    let c = split_node("snap-c", &nats.url()).await;
    let mut dave = Raw::register(c.addr(), "dave").await;
    // Node B's snapshot came before anything Bob says after it.
    until_crosses(&mut bob, "bob", &mut dave, "dave").await;
    dave.send("MODE #s").await;
    let modes = dave.until_cmd("324").await;
    assert_eq!(modes.params[1..], ["#s", "+iklnt", "*", "10"]);
    let when = dave.until_cmd("329").await;
    assert_eq!(when.params[1..], created.params[1..], "the creation time");
    for (mode, item, end, mask) in [
        ("b", "367", "368", "bad!*@*"),
        ("e", "348", "349", "good!*@*"),
        ("I", "346", "347", "friend!*@*"),
    ] {
        dave.send(&format!("MODE #s {mode}")).await;
        let l = replies(&mut dave, item, end).await;
        assert_eq!(l.len(), 1, "{mode}");
        assert_eq!(l[0].params[2], mask);
        assert!(l[0].params[3].starts_with("bob!"), "{}", l[0]);
    }
    dave.send("TOPIC #s").await;
    assert_eq!(dave.until_cmd("332").await.param(2), Some("the topic"));
    let t = dave.until_cmd("333").await;
    assert_eq!(t.params[1..], set.params[1..]);
    // A split: during it, node B's side sets +m and a ban; when NATS is back, node A's
    // channel has them too, and its members are told by a MODE from their server.
    nats.kill();
    from(&mut alice, "QUIT", "bob").await;
    from(&mut bob, "QUIT", "alice").await;
    bob.send("MODE #s +mb worse!*@*").await;
    bob.until(|m| m.command == "MODE" && m.param(1) == Some("+mb"))
        .await;
    let _nats = Nats::start(dir.path(), Some(port));
    from(&mut alice, "JOIN", "bob").await;
    // (Bob's JOIN comes with his status, +o, first.)
    let m = alice
        .until(|m| {
            m.command == "MODE" && m.prefix.as_deref() == Some("snap-a") && m.param(1) != Some("+o")
        })
        .await;
    assert_eq!(m.params, ["#s", "+mb", "worse!*@*"]);
    alice.send("MODE #s").await;
    let modes = alice.until_cmd("324").await;
    assert_eq!(modes.params[1..], ["#s", "+iklmnt", "key", "10"]);
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nick_taken_on_both_sides_of_a_split_stays_with_the_older_claim() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = Nats::start(dir.path(), None);
    let port = nats.port;
    let a = split_node("twin-a", &nats.url()).await;
    let b = split_node("twin-b", &nats.url()).await;
    let mut watcher = Raw::register(b.addr(), "watcher").await;
    nats.kill();
    watcher
        .until(|m| m.command == "NOTICE" && m.param(1).is_some_and(|t| t.contains("Lost")))
        .await;
    // NATS is gone: no claim can be made, each node gives the nick to its own user.
    let mut first = Raw::register(a.addr(), "twin").await;
    first.send("JOIN #t").await;
    first.until_cmd("366").await;
    let mut second = Raw::register(b.addr(), "twin").await;
    second.send("JOIN #t").await;
    second.until_cmd("366").await;
    watcher.send("JOIN #t").await;
    watcher.until_cmd("366").await;
    // NATS is back: the older claim (node A's user) keeps the nick; node B renames its
    // user to a nick no client could choose, and everyone there sees the NICK.
    let _nats = Nats::start(dir.path(), Some(port));
    let renamed = from(&mut second, "NICK", "twin").await;
    let new = renamed.param(0).unwrap().to_owned();
    assert!(new.starts_with(|c: char| c.is_ascii_digit()), "{renamed}");
    let seen = from(&mut watcher, "NICK", "twin").await;
    assert_eq!(seen.param(0), Some(new.as_str()));
    // The nick is node A's user's everywhere: WHOIS on node B names node A.
    from(&mut watcher, "JOIN", "twin").await;
    watcher.send("WHOIS twin").await;
    let s = watcher.until_cmd("312").await;
    assert_eq!(s.params[1..3], ["twin", "twin-a"]);
    watcher.until_cmd("318").await;
    // Messages reach each of them by their nicks now.
    second.send("PRIVMSG twin :we collided").await;
    let m = from(&mut first, "PRIVMSG", &new).await;
    assert_eq!(m.params, ["twin", "we collided"]);
    first.send(&format!("PRIVMSG {new} :yes")).await;
    let m = from(&mut second, "PRIVMSG", "twin").await;
    assert_eq!(m.params, [new.as_str(), "yes"]);
    // And the nick is the winner's: a third user cannot take it on node B, and its
    // claim in the bucket names node A.
    let mut third = Raw::connect(b.addr()).await;
    third.send("NICK twin").await;
    third.send("USER t 0 * :T").await;
    assert_eq!(third.until_cmd("433").await.param(1), Some("twin"));
    let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
        .await
        .unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value("sockit-irc-nicks")
        .await
        .unwrap();
    poll("the claim held by node A", || {
        let kv = kv.clone();
        async move {
            let v = kv.get("twin").await.ok().flatten();
            v.is_some_and(|v| v.starts_with(b"twin-a "))
        }
    })
    .await;
    drop((a, b));
}

#[tokio::test(flavor = "multi_thread")]
async fn accounts_registered_on_one_node_log_in_on_another() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let with = |accounts: &[(&str, &str)]| {
        let store = Accounts::with(accounts);
        move |cfg: &mut ServerConfig| cfg.auth = Some(store)
    };
    let a = node_with("acc-a", vec![nats.url()], with(&[("local", "localpw")])).await;
    let b = node_with("acc-b", vec![nats.url()], with(&[])).await;
    // REGISTER on node A.
    let mut c = Raw::connect(a.addr()).await;
    c.send("CAP LS 302").await;
    c.until_cmd("CAP").await;
    c.send("NICK newbie").await;
    c.send("REGISTER * newbie@example.org s3cretpw").await;
    let ok = c.until_cmd("REGISTER").await;
    assert_eq!(ok.params[..2], ["SUCCESS", "newbie"]);
    // SASL on node B, whose own store has no such account: the network's bucket has.
    let mut on_b = login(b.addr(), "nb", "newbie", "s3cretpw", "").await;
    on_b.send("WHOIS nb").await;
    let acc = on_b.until_cmd("330").await;
    assert_eq!(acc.params[1..3], ["nb", "newbie"]);
    // A wrong password is refused there.
    let mut wrong = Raw::connect(b.addr()).await;
    wrong.send("CAP REQ :sasl").await;
    wrong.until_cmd("CAP").await;
    wrong.send("NICK w").await;
    wrong.send("USER w 0 * :W").await;
    assert_eq!(sasl(&mut wrong, "newbie", "nope").await, "904");
    // The name is taken network-wide: REGISTER on node B is ACCOUNT_EXISTS.
    let mut again = Raw::connect(b.addr()).await;
    again.send("CAP LS 302").await;
    again.until_cmd("CAP").await;
    again.send("NICK newbie2").await;
    again.send("REGISTER newbie x@example.org other").await;
    let fail = again.until_cmd("FAIL").await;
    assert_eq!(fail.params[..3], ["REGISTER", "ACCOUNT_EXISTS", "newbie"]);
    // An account of node A's own store joins the network when it first logs in there.
    login(a.addr(), "loc", "local", "localpw", "").await;
    let client = async_nats::connect(nats.url()).await.unwrap();
    let kv = async_nats::jetstream::new(client)
        .get_key_value("sockit-irc-accounts")
        .await
        .unwrap();
    poll("the account in the bucket", || {
        let kv = kv.clone();
        async move { kv.get("local").await.ok().flatten().is_some() }
    })
    .await;
    login(b.addr(), "loc2", "local", "localpw", "").await;
    drop((a, b));
}

/// CHATHISTORY LATEST `target` on `c`: the messages' (text, msgid).
async fn latest(c: &mut Raw, target: &str) -> Vec<(String, String)> {
    c.send(&format!("CHATHISTORY LATEST {target} * 50")).await;
    let mut out = Vec::new();
    loop {
        let m = c.msg().await;
        if m.command == "BATCH" && m.param(0).is_some_and(|p| p.starts_with('-')) {
            return out;
        }
        if m.command == "PRIVMSG" {
            let id = tags(&m).get("msgid").unwrap_or("").to_owned();
            out.push((m.param(1).unwrap_or("").to_owned(), id));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn history_sent_on_one_node_is_read_on_every_node() {
    let dir = tempfile::tempdir().unwrap();
    let nats = Nats::start(dir.path(), None);
    let auth = |cfg: &mut ServerConfig| {
        cfg.auth = Some(Accounts::with(&[("alice", "pw"), ("bob", "pw")]));
    };
    let a = node_with("hist-a", vec![nats.url()], auth).await;
    let b = node_with("hist-b", vec![nats.url()], auth).await;
    let caps = "batch message-tags draft/chathistory";
    let mut alice = login(a.addr(), "alice", "alice", "pw", caps).await;
    alice.send("JOIN #h").await;
    alice.until_cmd("366").await;
    let mut bob = login(b.addr(), "bob", "bob", "pw", caps).await;
    bob.send("JOIN #h").await;
    from(&mut alice, "JOIN", "bob").await;
    let mut live = Vec::new();
    for i in 0..3 {
        alice.send(&format!("PRIVMSG #h :line {i}")).await;
        let m = from(&mut bob, "PRIVMSG", "alice").await;
        live.push((
            m.param(1).unwrap().to_owned(),
            tags(&m).get("msgid").unwrap().to_owned(),
        ));
    }
    alice.send("PRIVMSG bob :just us").await;
    from(&mut bob, "PRIVMSG", "alice").await;
    // On node B: the channel's history, with the msgids the lines had live.
    assert_eq!(latest(&mut bob, "#h").await, live);
    // Node C starts after all of it: it reads the network's history stream.
    let c = node_with("hist-c", vec![nats.url()], auth).await;
    let mut late = login(c.addr(), "bob2", "bob", "pw", caps).await;
    late.send("JOIN #h").await;
    late.until_cmd("366").await;
    assert_eq!(latest(&mut late, "#h").await, live);
    // The private conversation of two accounts is there too (Bob's, on another node).
    let private = latest(&mut late, "alice").await;
    assert_eq!(
        private.iter().map(|(t, _)| t.as_str()).collect::<Vec<_>>(),
        ["just us"]
    );
    drop((a, b, c));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_nats_server_of_a_three_server_cluster_dies_and_the_network_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsCluster::start(dir.path()).await;
    // Each node tries its own NATS server first.
    let a = node_with("nc-a", nats.urls_from(0), |_| {}).await;
    let b = node_with("nc-b", nats.urls_from(1), |_| {}).await;
    let c = node_with("nc-c", nats.urls_from(2), |_| {}).await;
    // The buckets and the history stream got three replicas: they survive one server.
    for name in STREAMS {
        assert_eq!(replicas(&nats.servers[1].url(), name).await, 3, "{name}");
    }
    let mut alice = Raw::register(a.addr(), "alice").await;
    alice.send("JOIN #k").await;
    alice.until_cmd("366").await;
    let mut bob = Raw::register(b.addr(), "bob").await;
    bob.send("JOIN #k").await;
    from(&mut alice, "JOIN", "bob").await;
    let mut carol = Raw::register(c.addr(), "carol").await;
    carol.send("JOIN #k").await;
    from(&mut alice, "JOIN", "carol").await;
    from(&mut bob, "JOIN", "carol").await;
    // SIGKILL the server node A is connected to.
    let dead = nats.servers[0].name.clone();
    nats.servers[0].kill();
    // Node A says it lost the link, moves to the next server and says it is back.
    alice
        .until(|m| m.command == "NOTICE" && m.param(1).is_some_and(|t| t.contains("Lost")))
        .await;
    alice
        .until(|m| m.command == "NOTICE" && m.param(1).is_some_and(|t| t.contains("is back")))
        .await;
    let alive = nats.servers[1].url();
    poll("new stream leaders", || leaders_elected(&alive, &dead)).await;
    // Messages still cross, both ways and to the third node.
    until_crosses(&mut alice, "alice", &mut bob, "#k").await;
    until_crosses(&mut bob, "bob", &mut alice, "#k").await;
    until_crosses(&mut carol, "carol", &mut alice, "#k").await;
    alice.send("PRIVMSG carol :direct").await;
    let m = carol
        .until(|m| m.command == "PRIVMSG" && m.param(0) == Some("carol"))
        .await;
    assert_eq!(m.source_nick(), Some("alice"));
    assert_eq!(m.params, ["carol", "direct"]);
    // Nick claims still work on the surviving servers: a race for one nick from two
    // nodes has one winner.
    let mut one = Raw::connect(a.addr()).await;
    let mut two = Raw::connect(c.addr()).await;
    let register = "NICK racer\r\nUSER racer 0 * :Racer\r\n";
    tokio::join!(
        one.send_raw(register.as_bytes()),
        two.send_raw(register.as_bytes())
    );
    let first = |m: &Message| m.command == "001" || m.command == "433";
    let (r1, r2) = tokio::join!(one.until(first), two.until(first));
    let mut got = [r1.command.as_str(), r2.command.as_str()];
    got.sort_unstable();
    assert_eq!(got, ["001", "433"], "one winner: {r1} / {r2}");
    drop((a, b, c));
}
