//! The wire events every node of a chat cluster shares: serde types (JSON on the wire),
//! the NATS subjects they travel on, and the nick-claim keys. Pure: no I/O.
//!
//! Every event travels in an [`Envelope`] naming the node (and its run, the `epoch`) it
//! comes from. Subjects are per channel (`sockit.irc.chan.<token>`), per user
//! (`sockit.irc.user.<token>`, private messages and invitations) and per node
//! (`sockit.irc.node.<node>.<kind>`: users coming, renaming and going, heartbeats,
//! snapshots). A token is a folded name with every byte outside `[a-z0-9-]` written as
//! `_xx` (hex), so any channel or nick is one valid subject token and one valid key.
//!
//! Outside the events: the network's message history travels as [`HistoryRecord`]s on
//! `sockit.history.<node>` (a JetStream stream keeps them, see `history`), and accounts
//! are [`AccountRecord`]s in the key-value bucket [`ACCOUNT_BUCKET`].

use serde::{Deserialize, Serialize};

use crate::irc::names;

/// The root of every subject of the cluster.
pub const ROOT: &str = "sockit.irc";

/// What every node subscribes to (one subscription keeps one publisher's order).
pub const ALL: &str = "sockit.irc.>";

/// The JetStream key-value bucket of nick claims.
pub const NICK_BUCKET: &str = "sockit-irc-nicks";

/// The JetStream key-value bucket of the network's accounts.
pub const ACCOUNT_BUCKET: &str = "sockit-irc-accounts";

/// The JetStream stream of the network's message history.
pub const HISTORY_STREAM: &str = "SOCKIT_IRC_HISTORY";

/// The root of the history subjects (`sockit.history.<node>`), outside [`ALL`] so the
/// event subscription does not receive them a second time.
pub const HISTORY_ROOT: &str = "sockit.history";

/// One event with the node it comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// The sending node's name (its `--chat-name`).
    pub node: String,
    /// The sending node's run (its start in Unix milliseconds): a restarted node has a
    /// new epoch, and its earlier users are gone.
    pub epoch: u64,
    /// What happened.
    pub event: Event,
}

/// A user as other nodes see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// The user's id on its own node.
    pub uid: u64,
    /// Its nick.
    pub nick: String,
    /// Its user name.
    pub user: String,
    /// Its host as shown.
    pub host: String,
    /// Its realname.
    pub realname: String,
    /// The account it is logged in to.
    #[serde(default)]
    pub account: Option<String>,
    /// Its away message.
    #[serde(default)]
    pub away: Option<String>,
    /// The channels it is in (as spelled), with its status there.
    #[serde(default)]
    pub channels: Vec<Membership>,
    /// Its user modes (`i`, `w`, `o`, `B`), e.g. `iw`.
    #[serde(default)]
    pub modes: String,
    /// When it took its nick (Unix milliseconds): the older claim wins a collision.
    #[serde(default)]
    pub nick_ts: i64,
    /// When it connected (Unix seconds, WHOIS 317).
    #[serde(default)]
    pub signon: i64,
}

/// A user's place in one channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    /// The channel's name.
    pub channel: String,
    /// Channel operator.
    #[serde(default)]
    pub op: bool,
    /// Voiced.
    #[serde(default)]
    pub voice: bool,
}

/// A channel's topic in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicInfo {
    /// The topic.
    pub text: String,
    /// Who set it (`nick!user@host` or a nick).
    pub by: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// One entry of a channel's `+b`, `+e` or `+I` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListEntry {
    /// The normalized mask.
    pub mask: String,
    /// Who set it.
    pub by: String,
    /// When (Unix seconds).
    pub at: i64,
}

/// A channel as a snapshot carries it: everything but its members (they come with the
/// users) and pending invitations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ChannelInfo {
    /// The channel's name.
    pub name: String,
    /// Its creation time (Unix seconds): the older channel's modes win a merge.
    pub created: i64,
    /// The flag modes set, among `imnst` (e.g. `nt`).
    #[serde(default)]
    pub flags: String,
    /// `+k`.
    #[serde(default)]
    pub key: Option<String>,
    /// `+l`.
    #[serde(default)]
    pub limit: Option<usize>,
    /// `+b`.
    #[serde(default)]
    pub bans: Vec<ListEntry>,
    /// `+e`.
    #[serde(default)]
    pub excepts: Vec<ListEntry>,
    /// `+I`.
    #[serde(default)]
    pub invex: Vec<ListEntry>,
    /// The topic.
    #[serde(default)]
    pub topic: Option<TopicInfo>,
}

/// What one node tells the others.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The node is alive (sent every third of the node timeout).
    Alive,
    /// The node (re)joined the cluster: every node answers with a [`Event::Snapshot`].
    Hello,
    /// All users of the node and their channels; users of the node missing from it are
    /// gone.
    Snapshot {
        /// The node's registered users.
        users: Vec<UserInfo>,
        /// The channels its users are in: modes, lists, topic.
        #[serde(default)]
        channels: Vec<ChannelInfo>,
    },
    /// A user completed registration.
    User(UserInfo),
    /// A user's command, to apply as that user: one IRC line (client-only tags kept).
    Cmd {
        /// The user's id on its node.
        uid: u64,
        /// The line, without CR LF.
        line: String,
        /// The message id the node gave a PRIVMSG, NOTICE or TAGMSG: the same on every
        /// node (and in every node's history).
        #[serde(default)]
        msgid: Option<String>,
        /// When the node received the command (Unix milliseconds).
        #[serde(default)]
        at: Option<i64>,
    },
    /// A user joined a channel (with the status its node gave it: the first to join a
    /// new channel is its operator).
    Join {
        /// The user's id on its node.
        uid: u64,
        /// The channel's name.
        channel: String,
        /// Channel operator.
        #[serde(default)]
        op: bool,
        /// Voiced.
        #[serde(default)]
        voice: bool,
        /// The channel's creation time on that node (every node keeps the oldest).
        #[serde(default)]
        created: Option<i64>,
    },
    /// A user logged in to an account after registration (account-notify).
    Account {
        /// The user's id on its node.
        uid: u64,
        /// The account.
        account: Option<String>,
    },
    /// A user's modes changed (`+o` by OPER, `-o`, `+i`, `+w`, `+B`).
    Modes {
        /// The user's id on its node.
        uid: u64,
        /// The modes now, e.g. `iow`.
        modes: String,
    },
    /// A user's displayed host changed (an operator's CHGHOST).
    Host {
        /// The user's id on its node.
        uid: u64,
        /// The new host.
        host: String,
    },
    /// A user lost a nick collision and was renamed by its node to a nick no one can
    /// choose (see [`uid_nick`]).
    Rename {
        /// The user's id on its node.
        uid: u64,
        /// The new nick.
        nick: String,
    },
    /// A user left the network.
    Quit {
        /// The user's id on its node.
        uid: u64,
        /// The quit message.
        reason: String,
    },
}

impl Envelope {
    /// The JSON bytes of the envelope.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// An envelope from JSON bytes (`None` for anything else).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// `name` folded (rfc1459) as one subject token or key: `[a-z0-9-]` kept, every other
/// byte `_xx`.
pub fn token(name: &str) -> String {
    let folded = names::fold(name);
    let mut out = String::with_capacity(folded.len());
    for b in folded.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// The subject of channel `name`'s events.
pub fn channel_subject(name: &str) -> String {
    format!("{ROOT}.chan.{}", token(name))
}

/// The subject of events for the user with `nick` (private messages, invitations).
pub fn user_subject(nick: &str) -> String {
    format!("{ROOT}.user.{}", token(nick))
}

/// The subject of node `node`'s own events of `kind` (`users`, `alive`, `hello`,
/// `snapshot`).
pub fn node_subject(node: &str, kind: &str) -> String {
    format!("{ROOT}.node.{}.{kind}", token(node))
}

/// The claim key of `nick` in [`NICK_BUCKET`].
pub fn nick_key(nick: &str) -> String {
    token(nick)
}

/// The value a claim holds: who owns the nick (`node epoch uid`).
pub fn claim_value(node: &str, epoch: u64, uid: u64) -> String {
    format!("{node} {epoch:x} {uid:x}")
}

/// The node a claim value names.
pub fn claim_node(value: &str) -> Option<&str> {
    value.split(' ').next().filter(|n| !n.is_empty())
}

/// The nick a user who lost a collision gets: a digit, four characters naming its node,
/// its id in base 36 (as InspIRCd renames to UIDs). It starts with a digit, which no
/// client may choose (`432`), so it is free network-wide without a claim.
pub fn uid_nick(node: &str, uid: u64) -> String {
    // FNV-1a: stable across builds and platforms.
    let h = node.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    let mut out = String::new();
    out.push(char::from(b'0' + (h % 10) as u8));
    let mut rest = h / 10;
    for _ in 0..4 {
        out.push(base36((rest % 36) as u8));
        rest /= 36;
    }
    let mut digits = Vec::new();
    let mut n = uid;
    loop {
        digits.push(base36((n % 36) as u8));
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.extend(digits.iter().rev());
    out
}

/// Whether `nick` has the shape of a [`uid_nick`] (what a node may rename a user to):
/// a digit, then letters and digits, at most `NICKLEN`.
pub fn is_uid_nick(nick: &str) -> bool {
    nick.len() <= names::NICKLEN
        && nick.starts_with(|c: char| c.is_ascii_digit())
        && nick.chars().all(|c| c.is_ascii_alphanumeric())
}

fn base36(d: u8) -> char {
    char::from(if d < 10 { b'0' + d } else { b'A' + d - 10 })
}

/// Which of two users holding the same nick keeps it: the one that took it first
/// (`nick_ts`, Unix milliseconds), then the smaller node name, then the smaller id. Every
/// node decides the same from the same two users. `true`: `a` keeps it.
pub fn keeps_nick(a: (i64, &str, u64), b: (i64, &str, u64)) -> bool {
    a <= b
}

/// The subject of node `node`'s history records.
pub fn history_subject(node: &str) -> String {
    format!("{HISTORY_ROOT}.{}", token(node))
}

/// One message of the network's history, as the node that received it stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryRecord {
    /// Its `msgid` (the same on every node).
    pub msgid: String,
    /// When the sender's node received it (Unix milliseconds).
    pub time_ms: i64,
    /// A channel's folded name, for a channel message.
    #[serde(default)]
    pub channel: Option<String>,
    /// For a private message: the parties' keys (`a:account`) and folded nicks.
    #[serde(default)]
    pub direct: Option<[String; 4]>,
    /// `PRIVMSG` or `NOTICE`.
    pub command: String,
    /// The sender's `nick!user@host`.
    pub prefix: String,
    /// The target as sent.
    pub target: String,
    /// The text.
    pub text: String,
    /// The sender's account.
    #[serde(default)]
    pub account: Option<String>,
    /// The client-only tags on the wire.
    #[serde(default)]
    pub client_tags: String,
    /// Sent by a bot.
    #[serde(default)]
    pub bot: bool,
}

impl HistoryRecord {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from JSON bytes (`None` for anything else).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// An account in the network's bucket: its name and the argon2id PHC string of
/// `md5hex(password)`, the format of the server accounts store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRecord {
    /// The account's name as registered.
    pub name: String,
    /// The hash.
    pub phc: String,
    /// The node that wrote it.
    #[serde(default)]
    pub node: String,
}

impl AccountRecord {
    /// The JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// A record from JSON bytes (`None` for anything else).
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

/// The key of account `name` in [`ACCOUNT_BUCKET`]: every byte outside `[a-z0-9-]`
/// written `_xx`, without folding (account names are case-sensitive).
pub fn account_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("_{b:02x}"));
        }
    }
    out
}

/// Where a subject's event applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// A channel's event (token).
    Channel(String),
    /// A user's event (token of the nick).
    User(String),
    /// A node's event.
    Node,
}

/// The route of `subject` (`None` for subjects outside the cluster).
pub fn route(subject: &str) -> Option<Route> {
    let rest = subject.strip_prefix(ROOT)?.strip_prefix('.')?;
    let (kind, rest) = rest.split_once('.')?;
    match kind {
        "chan" => Some(Route::Channel(rest.to_owned())),
        "user" => Some(Route::User(rest.to_owned())),
        "node" => Some(Route::Node),
        _ => None,
    }
}

/// The netsplit quit message when `gone` leaves as seen from `me` (`me gone`, as
/// servers write it).
pub fn split_reason(me: &str, gone: &str) -> String {
    format!("{me} {gone}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_valid_subject_tokens_and_fold_case() {
        assert_eq!(token("#Room"), "_23room");
        assert_eq!(token("Bob[1]"), token("bob{1}"));
        assert_eq!(token("a.b*c>d e"), "a_2eb_2ac_3ed_20e");
        for name in ["#x.y", "nick|away", "#ünï", "a-b"] {
            let t = token(name);
            assert!(
                t.bytes().all(|b| b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || b == b'_'),
                "{t}"
            );
        }
        assert_ne!(token("#a_2e"), token("#a."), "the escape is unambiguous");
    }

    #[test]
    fn subjects_route_back() {
        assert_eq!(channel_subject("#Room"), "sockit.irc.chan._23room");
        assert_eq!(
            route(&channel_subject("#Room")),
            Some(Route::Channel("_23room".into()))
        );
        assert_eq!(route(&user_subject("Bob")), Some(Route::User("bob".into())));
        assert_eq!(route(&node_subject("n1", "alive")), Some(Route::Node));
        assert_eq!(route("other.subject"), None);
        assert_eq!(route("sockit.irc.what.x"), None);
        assert_eq!(route("sockit.irc"), None);
    }

    #[test]
    fn envelopes_round_trip_and_junk_is_none() {
        let user = UserInfo {
            uid: 7,
            nick: "alice".into(),
            user: "a".into(),
            host: "127.0.0.1".into(),
            realname: "Alice".into(),
            account: None,
            away: Some("lunch".into()),
            channels: vec![Membership {
                channel: "#c".into(),
                op: true,
                voice: false,
            }],
            modes: "iw".into(),
            nick_ts: 5,
            signon: 1,
        };
        for event in [
            Event::Alive,
            Event::Hello,
            Event::User(user.clone()),
            Event::Snapshot {
                users: vec![user],
                channels: vec![ChannelInfo {
                    name: "#c".into(),
                    created: 3,
                    flags: "nt".into(),
                    key: Some("k".into()),
                    limit: Some(5),
                    bans: vec![ListEntry {
                        mask: "x!*@*".into(),
                        by: "alice".into(),
                        at: 2,
                    }],
                    excepts: Vec::new(),
                    invex: Vec::new(),
                    topic: Some(TopicInfo {
                        text: "t".into(),
                        by: "alice".into(),
                        at: 1,
                    }),
                }],
            },
            Event::Cmd {
                uid: 7,
                line: "PRIVMSG #c :hi there".into(),
                msgid: Some("abc".into()),
                at: Some(9),
            },
            Event::Account {
                uid: 7,
                account: Some("alice".into()),
            },
            Event::Modes {
                uid: 7,
                modes: "o".into(),
            },
            Event::Host {
                uid: 7,
                host: "cloak".into(),
            },
            Event::Rename {
                uid: 7,
                nick: uid_nick("n1", 7),
            },
            Event::Quit {
                uid: 7,
                reason: "Quit: bye".into(),
            },
            Event::Join {
                uid: 7,
                channel: "#c".into(),
                op: true,
                voice: false,
                created: Some(3),
            },
        ] {
            let env = Envelope {
                node: "n1".into(),
                epoch: 42,
                event,
            };
            assert_eq!(Envelope::decode(&env.encode()), Some(env));
        }
        assert_eq!(Envelope::decode(b"not json"), None);
        assert_eq!(Envelope::decode(b"{\"node\":1}"), None);
        assert_eq!(Envelope::decode(&[0xff, 0x00]), None);
    }

    #[test]
    fn claims_name_their_node() {
        let v = claim_value("node-a", 0x10, 3);
        assert_eq!(v, "node-a 10 3");
        assert_eq!(claim_node(&v), Some("node-a"));
        assert_eq!(claim_node(""), None);
        assert_eq!(nick_key("Bob"), "bob");
        assert_eq!(split_reason("a", "b"), "a b");
    }

    #[test]
    fn uid_nicks_are_unchoosable_and_differ_per_node_and_user() {
        let a = uid_nick("node-a", 1);
        assert!(a.starts_with(|c: char| c.is_ascii_digit()), "{a}");
        assert!(!names::valid_nick(&a), "no client can choose {a}");
        assert!(a.len() <= names::NICKLEN);
        assert!(is_uid_nick(&a));
        for bad in ["", "alice", "1 x", "1:x", &format!("1{}", "A".repeat(40))] {
            assert!(!is_uid_nick(bad), "{bad:?}");
        }
        assert_eq!(a, uid_nick("node-a", 1), "stable");
        assert_ne!(a, uid_nick("node-a", 2));
        assert_ne!(a, uid_nick("node-b", 1));
        assert!(uid_nick("n", u64::MAX).len() <= names::NICKLEN);
        assert!(uid_nick("n", 0)
            .chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()));
    }

    #[test]
    fn the_older_claim_keeps_the_nick_and_ties_break_by_node_then_id() {
        assert!(keeps_nick((1, "b", 9), (2, "a", 1)));
        assert!(!keeps_nick((2, "a", 1), (1, "b", 9)));
        assert!(keeps_nick((1, "a", 9), (1, "b", 1)));
        assert!(keeps_nick((1, "a", 1), (1, "a", 2)));
    }

    #[test]
    fn records_round_trip_and_account_keys_keep_case() {
        let r = HistoryRecord {
            msgid: "m".into(),
            time_ms: 1,
            channel: Some("#c".into()),
            direct: None,
            command: "PRIVMSG".into(),
            prefix: "a!b@c".into(),
            target: "#c".into(),
            text: "hi".into(),
            account: None,
            client_tags: String::new(),
            bot: false,
        };
        assert_eq!(HistoryRecord::decode(&r.encode()), Some(r));
        assert_eq!(HistoryRecord::decode(b"{}"), None);
        let a = AccountRecord {
            name: "Bob".into(),
            phc: "$argon2id$x".into(),
            node: "n".into(),
        };
        assert_eq!(AccountRecord::decode(&a.encode()), Some(a));
        assert_eq!(AccountRecord::decode(b"\xff"), None);
        assert_ne!(account_key("Bob"), account_key("bob"));
        assert_eq!(account_key("a.b"), "a_2eb");
        assert_eq!(history_subject("Node A"), "sockit.history.node_20a");
    }
}
