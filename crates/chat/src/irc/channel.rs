//! A channel: members (with operator status), topic and the modes we support (+n, +t).

use std::collections::BTreeMap;

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

/// One channel.
#[derive(Debug, Clone)]
pub struct Channel {
    /// The name as first created (case preserved).
    pub name: String,
    /// The topic, if any.
    pub topic: Option<Topic>,
    /// Members by client id; the value says whether the member is an operator. Ordered
    /// by id, i.e. by connection order, so NAMES lists are stable.
    pub members: BTreeMap<ClientId, bool>,
    /// +n: only members may send to the channel.
    pub no_external: bool,
    /// +t: only operators may set the topic.
    pub topic_ops_only: bool,
    /// Creation time (Unix seconds, for 329).
    pub created: i64,
}

impl Channel {
    /// A new channel with `creator` as its operator and the default modes +nt.
    pub fn new(name: &str, creator: ClientId, now: i64) -> Self {
        let mut members = BTreeMap::new();
        members.insert(creator, true);
        Self {
            name: name.to_owned(),
            topic: None,
            members,
            no_external: true,
            topic_ops_only: true,
            created: now,
        }
    }

    /// Whether `id` is a member.
    pub fn has(&self, id: ClientId) -> bool {
        self.members.contains_key(&id)
    }

    /// Whether `id` is an operator here.
    pub fn is_op(&self, id: ClientId) -> bool {
        self.members.get(&id).copied().unwrap_or(false)
    }

    /// The mode string for 324, e.g. `+nt`.
    pub fn modes(&self) -> String {
        let mut m = String::from("+");
        if self.no_external {
            m.push('n');
        }
        if self.topic_ops_only {
            m.push('t');
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creator_is_op_with_default_modes() {
        let mut c = Channel::new("#x", 1, 0);
        c.members.insert(2, false);
        assert!(c.is_op(1));
        assert!(!c.is_op(2));
        assert!(!c.is_op(3));
        assert_eq!(c.modes(), "+nt");
        c.no_external = false;
        assert_eq!(c.modes(), "+t");
    }
}
