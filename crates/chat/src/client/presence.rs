//! Who is away: a pure tracker fed every server message and every AWAY we send.
//!
//! Others' state comes from `AWAY` (IRCv3 `away-notify`: sent when a user sharing a
//! channel goes away or comes back), the `G`/`H` flag of WHO replies (352, the state of
//! members already away when we joined) and `301` (the away message, in a WHOIS or in
//! answer to a private message). Ours comes from `306`/`305`, with the reason of the
//! last `AWAY` we sent (the numerics do not carry it).

use std::collections::HashMap;

use crate::irc::message::Message;
use crate::irc::names;

/// A change worth a line in the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// `nick` went away (with its message, when it gave one).
    Away {
        /// Who.
        nick: String,
        /// The away message.
        message: Option<String>,
    },
    /// `nick` came back.
    Back {
        /// Who.
        nick: String,
    },
    /// We are marked away (306), with the reason we gave.
    OwnAway(Option<String>),
    /// We are no longer marked away (305).
    OwnBack,
}

impl Change {
    /// The line to show: `bob is away: lunch`, `bob is back`, `You are now marked as
    /// away: brb`, `You are no longer marked as away`.
    pub fn text(&self) -> String {
        match self {
            Change::Away {
                nick,
                message: Some(m),
            } => format!("{nick} is away: {m}"),
            Change::Away {
                nick,
                message: None,
            } => format!("{nick} is away"),
            Change::Back { nick } => format!("{nick} is back"),
            Change::OwnAway(Some(r)) => format!("You are now marked as away: {r}"),
            Change::OwnAway(None) => "You are now marked as away".into(),
            Change::OwnBack => "You are no longer marked as away".into(),
        }
    }
}

/// Away state of the users we know of, and ours.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    /// Folded nick → away message (empty when only a WHO flag said so).
    away: HashMap<String, String>,
    own: Option<String>,
    /// The reason of the last `AWAY` we sent, waiting for 306.
    asked: Option<String>,
}

impl Presence {
    /// Nobody known to be away.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether `nick` is known to be away.
    pub fn is_away(&self, nick: &str) -> bool {
        self.away.contains_key(&names::fold(nick))
    }

    /// The away message of `nick`, if it is away and gave one.
    pub fn message(&self, nick: &str) -> Option<&str> {
        self.away
            .get(&names::fold(nick))
            .map(String::as_str)
            .filter(|m| !m.is_empty())
    }

    /// Our away reason, when the server marked us away (an empty one when we gave none).
    pub fn own(&self) -> Option<&str> {
        self.own.as_deref()
    }

    /// Notes a message we send: `AWAY [reason]` gives the reason 306 will confirm.
    pub fn sent(&mut self, m: &Message) {
        if m.command.eq_ignore_ascii_case("AWAY") {
            self.asked = m.param(0).filter(|r| !r.is_empty()).map(str::to_owned);
        }
    }

    /// Takes in a server message (our nick is `me`); returns the change to show, if any.
    /// WHO flags and 301 update the state silently (the UI shows those replies itself).
    pub fn on_message(&mut self, m: &Message, me: &str) -> Option<Change> {
        let from = m.source_nick().unwrap_or("");
        let p = |i: usize| m.param(i).unwrap_or("");
        match m.command.as_str() {
            "AWAY" if from.is_empty() => None,
            "AWAY" => {
                let message = m.param(0).filter(|t| !t.is_empty()).map(str::to_owned);
                if names::eq(from, me) {
                    // A server echoing our own state (another session of our account).
                    self.own.clone_from(&message);
                    return Some(match message {
                        Some(r) => Change::OwnAway(Some(r)),
                        None => Change::OwnBack,
                    });
                }
                let key = names::fold(from);
                match message {
                    Some(text) => {
                        self.away.insert(key, text.clone());
                        Some(Change::Away {
                            nick: from.to_owned(),
                            message: Some(text),
                        })
                    }
                    None => {
                        self.away.remove(&key);
                        Some(Change::Back {
                            nick: from.to_owned(),
                        })
                    }
                }
            }
            "306" => {
                let reason = self.asked.take();
                self.own = Some(reason.clone().unwrap_or_default());
                Some(Change::OwnAway(reason))
            }
            "305" => {
                self.asked = None;
                self.own = None;
                Some(Change::OwnBack)
            }
            // RPL_WHOREPLY: me channel user host server nick flags :hops realname
            "352" if !p(5).is_empty() => {
                let key = names::fold(p(5));
                match p(6).chars().next() {
                    Some('G') => {
                        self.away.entry(key).or_default();
                    }
                    Some('H') => {
                        self.away.remove(&key);
                    }
                    _ => {}
                }
                None
            }
            // RPL_AWAY: me nick :message
            "301" if !p(1).is_empty() => {
                self.away.insert(names::fold(p(1)), p(2).to_owned());
                None
            }
            "QUIT" if !from.is_empty() => {
                self.away.remove(&names::fold(from));
                None
            }
            "NICK" if !from.is_empty() => {
                if let Some(text) = self.away.remove(&names::fold(from)) {
                    self.away.insert(names::fold(p(0)), text);
                }
                None
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &str) -> Message {
        Message::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn away_notify_marks_and_unmarks_others() {
        let mut p = Presence::new();
        let c = p.on_message(&msg(":bob!b@h AWAY :lunch"), "me").unwrap();
        assert_eq!(c.text(), "bob is away: lunch");
        assert!(p.is_away("BOB"));
        assert_eq!(p.message("bob"), Some("lunch"));
        let c = p.on_message(&msg(":bob!b@h AWAY"), "me").unwrap();
        assert_eq!(c.text(), "bob is back");
        assert!(!p.is_away("bob"));
    }

    #[test]
    fn who_flags_and_301_update_silently() {
        let mut p = Presence::new();
        let who = ":srv 352 me #c ~u h srv carol G :0 Carol";
        assert_eq!(p.on_message(&msg(who), "me"), None);
        assert!(p.is_away("carol"));
        assert_eq!(p.message("carol"), None, "WHO gives no message");
        assert_eq!(
            p.on_message(&msg(":srv 301 me carol :gone fishing"), "me"),
            None
        );
        assert_eq!(p.message("carol"), Some("gone fishing"));
        // Another WHO keeps the message; H clears.
        p.on_message(&msg(who), "me");
        assert_eq!(p.message("carol"), Some("gone fishing"));
        p.on_message(&msg(":srv 352 me #c ~u h srv carol H@ :0 Carol"), "me");
        assert!(!p.is_away("carol"));
    }

    #[test]
    fn nick_changes_and_quits_carry_the_state() {
        let mut p = Presence::new();
        p.on_message(&msg(":bob!b@h AWAY :out"), "me");
        p.on_message(&msg(":bob!b@h NICK robert"), "me");
        assert!(!p.is_away("bob") && p.message("robert") == Some("out"));
        p.on_message(&msg(":robert!b@h QUIT :bye"), "me");
        assert!(!p.is_away("robert"));
    }

    #[test]
    fn our_own_state_comes_from_305_and_306_with_the_reason_we_sent() {
        let mut p = Presence::new();
        p.sent(&Message::new("AWAY", vec!["brb".into()]));
        let c = p
            .on_message(
                &msg(":srv 306 me :You have been marked as being away"),
                "me",
            )
            .unwrap();
        assert_eq!(c, Change::OwnAway(Some("brb".into())));
        assert_eq!(c.text(), "You are now marked as away: brb");
        assert_eq!(p.own(), Some("brb"));
        p.sent(&Message::new("AWAY", vec![]));
        let c = p
            .on_message(
                &msg(":srv 305 me :You are no longer marked as being away"),
                "me",
            )
            .unwrap();
        assert_eq!(c.text(), "You are no longer marked as away");
        assert_eq!(p.own(), None);
        // 306 without a reason of ours (another client set it).
        let c = p.on_message(&msg(":srv 306 me :away"), "me").unwrap();
        assert_eq!(c.text(), "You are now marked as away");
        assert_eq!(p.own(), Some(""));
    }
}
