//! A snapshot's channel joined to the local one (pure). The rules are those of TS-based
//! ircds, so that every node ends with the same channel whatever order the snapshots
//! come in:
//!
//! - The older channel (smaller creation time) wins: its modes, key, limit and lists
//!   replace the younger one's, and its creation time is kept.
//! - Channels of the same age are merged: flag modes (`imnst`) set on either side stay
//!   set, the larger key and limit win, the `+b`/`+e`/`+I` lists are the union.
//! - The topic set last wins (then the larger text and setter), whatever the ages; a
//!   topic beats none.
//!
//! [`merge`] changes the local channel and returns what local members must be told:
//! the mode changes (sent as `MODE` lines from the server) and whether the topic changed.

use crate::irc::channel::{Ban, Channel, Topic};
use crate::irc::names;

use super::events::{ChannelInfo, ListEntry};

/// One mode change a merge made: `+`/`-`, the letter, its argument.
pub type Change = (bool, char, Option<String>);

/// What a merge changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Merged {
    /// Mode changes, in the order `MODE` lines show them.
    pub modes: Vec<Change>,
    /// The topic changed.
    pub topic: bool,
}

/// The flag modes of `ch` as letters.
fn flags_of(ch: &Channel) -> [(char, bool); 5] {
    [
        ('i', ch.invite_only),
        ('m', ch.moderated),
        ('n', ch.no_external),
        ('s', ch.secret),
        ('t', ch.topic_ops_only),
    ]
}

/// Sets flag `c` of `ch`.
fn set_flag(ch: &mut Channel, c: char, on: bool) {
    match c {
        'i' => ch.invite_only = on,
        'm' => ch.moderated = on,
        'n' => ch.no_external = on,
        's' => ch.secret = on,
        _ => ch.topic_ops_only = on,
    }
}

fn ban_of(e: &ListEntry) -> Ban {
    Ban {
        mask: e.mask.clone(),
        set_by: e.by.clone(),
        set_at: e.at,
    }
}

/// Joins `remote` into `local` (see the module documentation).
pub fn merge(local: &mut Channel, remote: &ChannelInfo) -> Merged {
    let mut out = Merged::default();
    if remote.created <= local.created {
        let replace = remote.created < local.created;
        local.created = remote.created;
        for (c, on) in flags_of(local) {
            let want = remote.flags.contains(c) || (on && !replace);
            if want != on {
                set_flag(local, c, want);
                if !want && c == 'i' {
                    local.invited.clear();
                }
                out.modes.push((want, c, None));
            }
        }
        let key = if replace {
            remote.key.clone()
        } else {
            local.key.clone().max(remote.key.clone())
        };
        if key != local.key {
            match &key {
                Some(k) => out.modes.push((true, 'k', Some(k.clone()))),
                None => out.modes.push((false, 'k', Some("*".into()))),
            }
            local.key = key;
        }
        let limit = if replace {
            remote.limit
        } else {
            local.limit.max(remote.limit)
        };
        if limit != local.limit {
            match limit {
                Some(n) => out.modes.push((true, 'l', Some(n.to_string()))),
                None => out.modes.push((false, 'l', None)),
            }
            local.limit = limit;
        }
        for (mode, theirs) in [
            ('b', &remote.bans),
            ('e', &remote.excepts),
            ('I', &remote.invex),
        ] {
            let Some(list) = local.list_mut(mode) else {
                continue;
            };
            if replace {
                let mut kept = Vec::new();
                for b in list.drain(..) {
                    if theirs.iter().any(|t| names::eq(&t.mask, &b.mask)) {
                        kept.push(b);
                    } else {
                        out.modes.push((false, mode, Some(b.mask)));
                    }
                }
                *list = kept;
            }
            for t in theirs {
                if !list.iter().any(|b| names::eq(&b.mask, &t.mask)) {
                    list.push(ban_of(t));
                    out.modes.push((true, mode, Some(t.mask.clone())));
                }
            }
        }
    }
    if let Some(t) = &remote.topic {
        let theirs = (t.at, t.text.as_str(), t.by.as_str());
        let newer = local
            .topic
            .as_ref()
            .is_none_or(|l| theirs > (l.set_at, l.text.as_str(), l.set_by.as_str()));
        if newer {
            local.topic = Some(Topic {
                text: t.text.clone(),
                set_by: t.by.clone(),
                set_at: t.at,
            });
            out.topic = true;
        }
    }
    out
}

/// The `MODE` lines' parameters for `changes` (`+ik-l`, then the arguments), at most
/// four changes with an argument per line (`MODES=4`).
pub fn mode_lines(changes: &[Change]) -> Vec<Vec<String>> {
    let mut lines = Vec::new();
    let mut modes = String::new();
    let mut args = Vec::new();
    let mut sign = None;
    for (add, c, arg) in changes {
        if arg.is_some() && args.len() == crate::irc::channel_cmds::MAX_MODES {
            let mut line = vec![std::mem::take(&mut modes)];
            line.append(&mut args);
            lines.push(line);
            sign = None;
        }
        if sign != Some(*add) {
            modes.push(if *add { '+' } else { '-' });
            sign = Some(*add);
        }
        modes.push(*c);
        if let Some(a) = arg {
            args.push(a.clone());
        }
    }
    if !modes.is_empty() {
        let mut line = vec![modes];
        line.append(&mut args);
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::irc::cluster::events::TopicInfo;

    fn remote(created: i64) -> ChannelInfo {
        ChannelInfo {
            name: "#c".into(),
            created,
            flags: "nt".into(),
            ..ChannelInfo::default()
        }
    }

    fn entry(mask: &str) -> ListEntry {
        ListEntry {
            mask: mask.into(),
            by: "op".into(),
            at: 1,
        }
    }

    #[test]
    fn the_older_channel_replaces_modes_key_limit_and_lists() {
        let mut local = Channel::new("#c", 1, 100);
        local.key = Some("mine".into());
        local.bans.push(ban_of(&entry("old!*@*")));
        let mut r = remote(50);
        r.flags = "imnt".into();
        r.limit = Some(5);
        r.bans = vec![entry("new!*@*")];
        let m = merge(&mut local, &r);
        assert_eq!(local.created, 50);
        assert!(local.invite_only && local.moderated);
        assert_eq!(local.key, None);
        assert_eq!(local.limit, Some(5));
        assert_eq!(local.bans.len(), 1);
        assert_eq!(local.bans[0].mask, "new!*@*");
        assert_eq!(
            m.modes,
            vec![
                (true, 'i', None),
                (true, 'm', None),
                (false, 'k', Some("*".into())),
                (true, 'l', Some("5".into())),
                (false, 'b', Some("old!*@*".into())),
                (true, 'b', Some("new!*@*".into())),
            ]
        );
        assert_eq!(
            mode_lines(&m.modes),
            vec![vec!["+im-k+l-b+b", "*", "5", "old!*@*", "new!*@*"]]
        );
    }

    #[test]
    fn a_younger_channel_changes_nothing_but_a_newer_topic() {
        let mut local = Channel::new("#c", 1, 10);
        let mut r = remote(20);
        r.flags = "i".into();
        r.key = Some("k".into());
        r.topic = Some(TopicInfo {
            text: "later".into(),
            by: "bob".into(),
            at: 30,
        });
        let m = merge(&mut local, &r);
        assert!(m.modes.is_empty());
        assert!(m.topic);
        assert_eq!(local.created, 10);
        assert!(!local.invite_only && local.key.is_none());
        assert_eq!(local.topic.as_ref().unwrap().text, "later");
        // An older topic does not replace a newer one.
        r.topic = Some(TopicInfo {
            text: "earlier".into(),
            by: "bob".into(),
            at: 5,
        });
        assert!(!merge(&mut local, &r).topic);
        assert_eq!(local.topic.as_ref().unwrap().text, "later");
    }

    #[test]
    fn channels_of_one_age_merge_both_ways_to_the_same_channel() {
        let mut a = Channel::new("#c", 1, 10);
        a.invite_only = true;
        a.key = Some("aaa".into());
        a.limit = Some(3);
        a.bans.push(ban_of(&entry("x!*@*")));
        let mut b = Channel::new("#c", 2, 10);
        b.moderated = true;
        b.key = Some("bbb".into());
        b.limit = Some(7);
        b.excepts.push(ban_of(&entry("y!*@*")));
        b.bans.push(ban_of(&entry("X!*@*")));
        let info = |ch: &Channel| {
            let list = |l: &[Ban]| l.iter().map(|b| entry(&b.mask)).collect::<Vec<ListEntry>>();
            let flags = flags_of(ch)
                .iter()
                .filter(|(_, on)| *on)
                .map(|(c, _)| *c)
                .collect();
            ChannelInfo {
                name: ch.name.clone(),
                created: ch.created,
                flags,
                key: ch.key.clone(),
                limit: ch.limit,
                bans: list(&ch.bans),
                excepts: list(&ch.excepts),
                invex: list(&ch.invex),
                topic: None,
            }
        };
        let (ia, ib) = (info(&a), info(&b));
        merge(&mut a, &ib);
        merge(&mut b, &ia);
        for ch in [&a, &b] {
            assert!(ch.invite_only && ch.moderated && ch.no_external && ch.topic_ops_only);
            assert_eq!(ch.key.as_deref(), Some("bbb"));
            assert_eq!(ch.limit, Some(7));
            assert_eq!(ch.bans.len(), 1, "X!*@* and x!*@* are one mask");
            assert_eq!(ch.excepts.len(), 1);
        }
        // Merging again changes nothing.
        assert_eq!(merge(&mut a, &ib), Merged::default());
    }

    #[test]
    fn mode_lines_keep_four_arguments_a_line() {
        let changes: Vec<Change> = (0..6)
            .map(|i| (true, 'b', Some(format!("m{i}!*@*"))))
            .collect();
        let lines = mode_lines(&changes);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0][0], "+bbbb");
        assert_eq!(lines[0].len(), 5);
        assert_eq!(lines[1], vec!["+bb", "m4!*@*", "m5!*@*"]);
    }
}
