//! The wire events every node of a chat cluster shares: serde types (JSON on the wire),
//! the NATS subjects they travel on, and the nick-claim keys. Pure: no I/O.
//!
//! Every event travels in an [`Envelope`] naming the node (and its run, the `epoch`) it
//! comes from. Subjects are per channel (`sockit.irc.chan.<token>`), per user
//! (`sockit.irc.user.<token>`, private messages and invitations) and per node
//! (`sockit.irc.node.<node>.<kind>`: users coming, renaming and going, heartbeats,
//! snapshots). A token is a folded name with every byte outside `[a-z0-9-]` written as
//! `_xx` (hex), so any channel or nick is one valid subject token and one valid key.

use serde::{Deserialize, Serialize};

use crate::irc::names;

/// The root of every subject of the cluster.
pub const ROOT: &str = "sockit.irc";

/// What every node subscribes to (one subscription keeps one publisher's order).
pub const ALL: &str = "sockit.irc.>";

/// The JetStream key-value bucket of nick claims.
pub const NICK_BUCKET: &str = "sockit-irc-nicks";

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
    /// The channel's name.
    pub channel: String,
    /// The topic.
    pub topic: String,
    /// Who set it (`nick!user@host` or a nick).
    pub by: String,
    /// When (Unix seconds).
    pub at: i64,
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
        /// The topics of the channels its users are in.
        #[serde(default)]
        topics: Vec<TopicInfo>,
    },
    /// A user completed registration.
    User(UserInfo),
    /// A user's command, to apply as that user: one IRC line (client-only tags kept).
    Cmd {
        /// The user's id on its node.
        uid: u64,
        /// The line, without CR LF.
        line: String,
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
        };
        for event in [
            Event::Alive,
            Event::Hello,
            Event::User(user.clone()),
            Event::Snapshot {
                users: vec![user],
                topics: vec![TopicInfo {
                    channel: "#c".into(),
                    topic: "t".into(),
                    by: "alice".into(),
                    at: 1,
                }],
            },
            Event::Cmd {
                uid: 7,
                line: "PRIVMSG #c :hi there".into(),
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
}
