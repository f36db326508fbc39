//! IRCv3 capabilities the server offers (`CAP LS`), as a compact set each connection
//! keeps in its [`ClientHandle`](super::state::ClientHandle), so whoever queues a line
//! for a client can shape it (tags, extended JOIN) for that client's capabilities.

use std::fmt;

/// One capability the server implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[allow(clippy::enum_variant_names)] // `CapNotify` is the IRCv3 name `cap-notify`
pub enum Cap {
    /// `account-notify`: `ACCOUNT` when a neighbour logs in or out.
    AccountNotify,
    /// `account-tag`: `account=` on messages from logged-in users.
    AccountTag,
    /// `away-notify`: `AWAY` when a neighbour goes away or comes back.
    AwayNotify,
    /// `batch`: related lines grouped by `BATCH +id type` … `BATCH -id`.
    Batch,
    /// `cap-notify`: `CAP NEW`/`CAP DEL` (implied by `CAP LS 302`).
    CapNotify,
    /// `chghost`: `CHGHOST user host` when a neighbour's user or host changes.
    Chghost,
    /// `draft/account-registration`: `REGISTER` creates an account (offered only when
    /// the account policy allows it).
    AccountRegistration,
    /// `draft/chathistory`: `CHATHISTORY` (history is answered without it too).
    Chathistory,
    /// `draft/read-marker`: `MARKREAD` after JOIN and on other sessions' updates.
    ReadMarker,
    /// `echo-message`: a client's own PRIVMSG/NOTICE/TAGMSG come back to it.
    EchoMessage,
    /// `extended-join`: `JOIN #c account :realname`.
    ExtendedJoin,
    /// `invite-notify`: channel members see INVITEs.
    InviteNotify,
    /// `labeled-response`: the `label` tag of a command comes back on its response.
    LabeledResponse,
    /// `message-tags`: client-only tags, `msgid`, TAGMSG.
    MessageTags,
    /// `multi-prefix`: every status prefix in NAMES and WHO (`@+nick`).
    MultiPrefix,
    /// `sasl`: AUTHENTICATE (offered only with an account policy).
    Sasl,
    /// `server-time`: `time=` on every line.
    ServerTime,
    /// `setname`: `SETNAME` changes the realname.
    Setname,
    /// `userhost-in-names`: `nick!user@host` in NAMES.
    UserhostInNames,
}

impl Cap {
    /// Every capability, in the order `CAP LS` lists them.
    pub const ALL: [Cap; 19] = [
        Cap::AccountNotify,
        Cap::AccountTag,
        Cap::AwayNotify,
        Cap::Batch,
        Cap::CapNotify,
        Cap::Chghost,
        Cap::AccountRegistration,
        Cap::Chathistory,
        Cap::ReadMarker,
        Cap::EchoMessage,
        Cap::ExtendedJoin,
        Cap::InviteNotify,
        Cap::LabeledResponse,
        Cap::MessageTags,
        Cap::MultiPrefix,
        Cap::Sasl,
        Cap::ServerTime,
        Cap::Setname,
        Cap::UserhostInNames,
    ];

    /// The capability's name.
    pub fn name(self) -> &'static str {
        match self {
            Cap::AccountNotify => "account-notify",
            Cap::AccountTag => "account-tag",
            Cap::AwayNotify => "away-notify",
            Cap::Batch => "batch",
            Cap::CapNotify => "cap-notify",
            Cap::Chghost => "chghost",
            Cap::AccountRegistration => "draft/account-registration",
            Cap::Chathistory => "draft/chathistory",
            Cap::ReadMarker => "draft/read-marker",
            Cap::EchoMessage => "echo-message",
            Cap::ExtendedJoin => "extended-join",
            Cap::InviteNotify => "invite-notify",
            Cap::LabeledResponse => "labeled-response",
            Cap::MessageTags => "message-tags",
            Cap::MultiPrefix => "multi-prefix",
            Cap::Sasl => "sasl",
            Cap::ServerTime => "server-time",
            Cap::Setname => "setname",
            Cap::UserhostInNames => "userhost-in-names",
        }
    }

    /// The capability named `name` (case-insensitive), if the server implements it.
    pub fn from_name(name: &str) -> Option<Cap> {
        Cap::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

impl fmt::Display for Cap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of capabilities (a bit per [`Cap`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u32);

impl CapSet {
    /// Whether `cap` is in the set.
    pub fn has(self, cap: Cap) -> bool {
        self.0 & cap.bit() != 0
    }

    /// The set with `cap` added or removed.
    pub fn with(self, cap: Cap, on: bool) -> CapSet {
        if on {
            CapSet(self.0 | cap.bit())
        } else {
            CapSet(self.0 & !cap.bit())
        }
    }

    /// The capabilities in the set, in [`Cap::ALL`] order.
    pub fn iter(self) -> impl Iterator<Item = Cap> {
        Cap::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

/// Splits `items` into lines of at most `budget` bytes (items separated by spaces); an
/// empty list is one empty line. Used for multiline `CAP LS`/`CAP LIST`.
pub fn split_list(items: &[String], budget: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for item in items {
        let cur = lines.last_mut().expect("never empty");
        if !cur.is_empty() && cur.len() + 1 + item.len() > budget {
            lines.push(item.clone());
        } else {
            if !cur.is_empty() {
                cur.push(' ');
            }
            cur.push_str(item);
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_sets() {
        for c in Cap::ALL {
            assert_eq!(Cap::from_name(c.name()), Some(c));
            assert_eq!(Cap::from_name(&c.name().to_uppercase()), Some(c));
        }
        assert_eq!(Cap::from_name("draft/event-playback"), None);
        let s = CapSet::default()
            .with(Cap::ServerTime, true)
            .with(Cap::Sasl, true);
        assert!(s.has(Cap::ServerTime) && !s.has(Cap::EchoMessage));
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Cap::Sasl, Cap::ServerTime]
        );
        assert!(!s.with(Cap::Sasl, false).has(Cap::Sasl));
    }

    #[test]
    fn split_long_lists() {
        let items: Vec<String> = (0..50).map(|i| format!("vendor.example/cap-{i}")).collect();
        let lines = split_list(&items, 100);
        assert!(lines.len() > 5);
        assert!(lines.iter().all(|l| l.len() <= 100));
        let joined: Vec<String> = lines
            .iter()
            .flat_map(|l| l.split(' ').map(str::to_owned))
            .collect();
        assert_eq!(joined, items);
        assert_eq!(split_list(&[], 100), vec![String::new()]);
    }
}
