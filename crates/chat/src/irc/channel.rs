//! A channel: members (with their status), topic, modes, the ban list, invitations and,
//! for a registered channel, its registration (founder and AMODE list).

use std::collections::{BTreeMap, BTreeSet};

/// A client's id inside the server (unique for the server's life).
pub type ClientId = u64;

/// A channel topic and who set it when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// The text.
    pub text: String,
    /// The setter's nick (for 333).
    pub set_by: String,
    /// When it was set (Unix seconds, for 333).
    pub set_at: i64,
}

/// A member's status in a channel.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Member {
    /// `+o`: channel operator (`@`).
    pub op: bool,
    /// `+v`: voice (`+`), may speak in a `+m` channel.
    pub voice: bool,
}

impl Member {
    /// An operator.
    pub fn op() -> Self {
        Self {
            op: true,
            voice: false,
        }
    }

    /// The prefixes shown in NAMES/WHO: every one with `multi_prefix`, else the highest.
    pub fn prefixes(self, multi_prefix: bool) -> String {
        let mut s = String::new();
        if self.op {
            s.push('@');
        }
        if self.voice && (multi_prefix || !self.op) {
            s.push('+');
        }
        s
    }
}

/// A ban: the mask, who set it and when (for 367).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The `nick!user@host` mask (`*` and `?` wildcards).
    pub mask: String,
    /// Who set it (`nick!user@host`).
    pub set_by: String,
    /// When (Unix seconds).
    pub set_at: i64,
}

/// A status ChanServ gives an account's users when they join (`AMODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Amode {
    /// `+v`: voice.
    Voice,
    /// `+o`: operator.
    Op,
}

impl Amode {
    /// The mode letter (`o`, `v`).
    pub fn letter(self) -> char {
        match self {
            Self::Op => 'o',
            Self::Voice => 'v',
        }
    }

    /// The amode of a mode letter.
    pub fn from_letter(c: char) -> Option<Self> {
        match c {
            'o' => Some(Self::Op),
            'v' => Some(Self::Voice),
            _ => None,
        }
    }
}

/// A registered channel's registration (ChanServ `REGISTER`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registration {
    /// The founder's account.
    pub founder: String,
    /// When it was registered (Unix seconds).
    pub registered_at: i64,
    /// Account → the status its users get on JOIN.
    pub amodes: BTreeMap<String, Amode>,
}

impl Registration {
    /// The status ChanServ gives a user logged in to `account` when it joins: `+o` for
    /// the founder, else its AMODE.
    pub fn status_of(&self, account: &str) -> Option<Amode> {
        if self.founder == account {
            Some(Amode::Op)
        } else {
            self.amodes.get(account).copied()
        }
    }
}

/// One channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The name as first created (case preserved).
    pub name: String,
    /// The topic, if any.
    pub topic: Option<Topic>,
    /// Members by client id with their status. Ordered by id, i.e. by connection order,
    /// so NAMES lists are stable.
    pub members: BTreeMap<ClientId, Member>,
    /// +n: only members may send to the channel.
    pub no_external: bool,
    /// +t: only operators may set the topic.
    pub topic_ops_only: bool,
    /// +i: only invited clients may join.
    pub invite_only: bool,
    /// +m: only operators and voiced members may speak.
    pub moderated: bool,
    /// +s: the channel is hidden from LIST, WHOIS and NAMES of non-members.
    pub secret: bool,
    /// +k: the key needed to join.
    pub key: Option<String>,
    /// +l: the most members.
    pub limit: Option<usize>,
    /// +b: the ban list.
    pub bans: Vec<Ban>,
    /// +e: ban exceptions (a matching client is not banned).
    pub excepts: Vec<Ban>,
    /// +I: invite exceptions (a matching client joins past +i).
    pub invex: Vec<Ban>,
    /// Clients invited (by INVITE) who have not joined yet.
    pub invited: BTreeSet<ClientId>,
    /// Creation time (Unix seconds, for 329).
    pub created: i64,
    /// Its registration, when registered with ChanServ (kept while empty, saved on
    /// every change).
    pub registration: Option<Registration>,
}

impl Channel {
    /// A new channel with `creator` as its operator and the default modes +nt.
    pub fn new(name: &str, creator: ClientId, now: i64) -> Self {
        let mut members = BTreeMap::new();
        members.insert(creator, Member::op());
        Self {
            name: name.to_owned(),
            topic: None,
            members,
            no_external: true,
            topic_ops_only: true,
            invite_only: false,
            moderated: false,
            secret: false,
            key: None,
            limit: None,
            bans: Vec::new(),
            excepts: Vec::new(),
            invex: Vec::new(),
            invited: BTreeSet::new(),
            created: now,
            registration: None,
        }
    }

    /// A copy of what a registered channel keeps across restarts: everything but its
    /// members and pending invitations.
    pub fn persistent(&self) -> Self {
        Self {
            name: self.name.clone(),
            topic: self.topic.clone(),
            members: BTreeMap::new(),
            no_external: self.no_external,
            topic_ops_only: self.topic_ops_only,
            invite_only: self.invite_only,
            moderated: self.moderated,
            secret: self.secret,
            key: self.key.clone(),
            limit: self.limit,
            bans: self.bans.clone(),
            excepts: self.excepts.clone(),
            invex: self.invex.clone(),
            invited: BTreeSet::new(),
            created: self.created,
            registration: self.registration.clone(),
        }
    }

    /// Whether the channel is registered.
    pub fn is_registered(&self) -> bool {
        self.registration.is_some()
    }

    /// Whether `id` is a member.
    pub fn has(&self, id: ClientId) -> bool {
        self.members.contains_key(&id)
    }

    /// Whether `id` is an operator here.
    pub fn is_op(&self, id: ClientId) -> bool {
        self.members.get(&id).is_some_and(|m| m.op)
    }

    /// Whether `id` is voiced or an operator (may speak when +m).
    pub fn is_voiced(&self, id: ClientId) -> bool {
        self.members.get(&id).is_some_and(|m| m.op || m.voice)
    }

    /// The mode string for 324, e.g. `+klnt`, with the arguments shown to `member`s
    /// (the key is hidden from others, as ircds do).
    pub fn modes(&self, member: bool) -> Vec<String> {
        let mut m = String::from("+");
        let mut args = Vec::new();
        if self.invite_only {
            m.push('i');
        }
        if let Some(k) = &self.key {
            m.push('k');
            args.push(if member { k.clone() } else { "*".into() });
        }
        if let Some(l) = self.limit {
            m.push('l');
            args.push(l.to_string());
        }
        if self.moderated {
            m.push('m');
        }
        if self.no_external {
            m.push('n');
        }
        if self.secret {
            m.push('s');
        }
        if self.topic_ops_only {
            m.push('t');
        }
        let mut out = vec![m];
        out.extend(args);
        out
    }

    /// Whether the `nick!user@host` `mask` of a client is banned here (matched by a ban
    /// and by no exception).
    pub fn is_banned(&self, mask: &str) -> bool {
        self.bans.iter().any(|b| mask_matches(&b.mask, mask))
            && !self.excepts.iter().any(|b| mask_matches(&b.mask, mask))
    }

    /// Whether the `nick!user@host` `mask` of a client matches an invite exception.
    pub fn is_invex(&self, mask: &str) -> bool {
        self.invex.iter().any(|b| mask_matches(&b.mask, mask))
    }

    /// The list of list mode `b`, `e` or `I`.
    pub fn list_mut(&mut self, mode: char) -> Option<&mut Vec<Ban>> {
        match mode {
            'b' => Some(&mut self.bans),
            'e' => Some(&mut self.excepts),
            'I' => Some(&mut self.invex),
            _ => None,
        }
    }

    /// The list of list mode `b`, `e` or `I`.
    pub fn list(&self, mode: char) -> &[Ban] {
        match mode {
            'e' => &self.excepts,
            'I' => &self.invex,
            _ => &self.bans,
        }
    }
}

/// Normalizes a ban mask as ircds do: `nick` → `nick!*@*`, `user@host` → `*!user@host`,
/// `nick!user` → `nick!user@*`.
pub fn normalize_mask(mask: &str) -> String {
    let (nick, rest) = match mask.split_once('!') {
        Some((n, r)) => (n, Some(r)),
        None => ("", None),
    };
    match (rest, mask.contains('@')) {
        (Some(r), true) => {
            let (u, h) = r.split_once('@').unwrap_or((r, "*"));
            format!("{}!{}@{}", or_star(nick), or_star(u), or_star(h))
        }
        (Some(r), false) => format!("{}!{}@*", or_star(nick), or_star(r)),
        (None, true) => {
            let (u, h) = mask.split_once('@').unwrap_or((mask, "*"));
            format!("*!{}@{}", or_star(u), or_star(h))
        }
        (None, false) => format!("{}!*@*", or_star(mask)),
    }
}

fn or_star(s: &str) -> &str {
    if s.is_empty() {
        "*"
    } else {
        s
    }
}

/// Whether `text` matches the glob `mask` (`*` any run, `?` one character), under
/// rfc1459 casemapping.
pub fn mask_matches(mask: &str, text: &str) -> bool {
    let m: Vec<char> = crate::irc::names::fold(mask).chars().collect();
    let t: Vec<char> = crate::irc::names::fold(text).chars().collect();
    // Iterative glob matching with one backtrack point: linear in practice, never
    // exponential.
    let (mut mi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if mi < m.len() && (m[mi] == '?' || m[mi] == t[ti]) {
            mi += 1;
            ti += 1;
        } else if mi < m.len() && m[mi] == '*' {
            star = Some((mi, ti));
            mi += 1;
        } else if let Some((sm, st)) = star {
            mi = sm + 1;
            ti = st + 1;
            star = Some((sm, st + 1));
        } else {
            return false;
        }
    }
    m[mi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_is_op_with_default_modes() {
        let mut c = Channel::new("#x", 1, 0);
        c.members.insert(2, Member::default());
        assert!(c.is_op(1));
        assert!(!c.is_op(2));
        assert!(!c.is_op(3));
        assert_eq!(c.modes(true), vec!["+nt"]);
        c.no_external = false;
        c.key = Some("k".into());
        c.limit = Some(5);
        assert_eq!(c.modes(true), vec!["+klt", "k", "5"]);
        assert_eq!(c.modes(false), vec!["+klt", "*", "5"]);
    }

    #[test]
    fn prefixes() {
        let both = Member {
            op: true,
            voice: true,
        };
        assert_eq!(both.prefixes(true), "@+");
        assert_eq!(both.prefixes(false), "@");
        assert_eq!(Member::default().prefixes(true), "");
    }

    #[test]
    fn masks() {
        assert_eq!(normalize_mask("bob"), "bob!*@*");
        assert_eq!(normalize_mask("*@1.2.3.4"), "*!*@1.2.3.4");
        assert_eq!(normalize_mask("bob!u"), "bob!u@*");
        assert_eq!(normalize_mask("a!b@c"), "a!b@c");
        assert_eq!(normalize_mask("!@"), "*!*@*");
        assert!(mask_matches("*!*@127.0.0.1", "Bob!bob@127.0.0.1"));
        assert!(mask_matches("BOB[1]!*@*", "bob{1}!x@y"));
        assert!(mask_matches("b?b!*@*", "bob!x@y"));
        assert!(!mask_matches("bob!*@*", "bobby!x@y"));
        assert!(mask_matches("*a*a*a*", "aaaa"));
        assert!(!mask_matches(&"*a".repeat(30), &"a".repeat(29)));
    }
}
