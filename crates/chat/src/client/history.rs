//! Chat history requests (IRCv3 `draft/chathistory`) and which private conversations to
//! reopen on connect, as pure functions; the connection sends them and collects the
//! answers ([`Event::History`](super::Event::History),
//! [`Event::Targets`](super::Event::Targets)).
//!
//! The rule for reopening: `CHATHISTORY TARGETS` over the last [`RECENT_DAYS`] days,
//! then a query window for each nick among the answers (not channels, not ourselves),
//! at most [`MAX_REOPENED`], the most recent first; each window then fetches its own
//! history like any query that opens.

use chrono::{DateTime, SecondsFormat, Utc};

use crate::irc::message::Message;
use crate::irc::names;

/// How far back `CHATHISTORY TARGETS` looks on connect.
pub const RECENT_DAYS: i64 = 7;

/// Most query windows opened on connect.
pub const MAX_REOPENED: usize = 10;

/// Most targets asked of the server (it may lower it).
pub const TARGETS_LIMIT: usize = 50;

/// A chathistory timestamp: `timestamp=YYYY-MM-DDThh:mm:ss.sssZ`.
pub fn timestamp(t: DateTime<Utc>) -> String {
    format!(
        "timestamp={}",
        t.to_rfc3339_opts(SecondsFormat::Millis, true)
    )
}

/// `CHATHISTORY LATEST target * limit`: the newest lines of a channel or conversation.
pub fn latest(target: &str, limit: usize) -> Message {
    Message::new(
        "CHATHISTORY",
        vec![
            "LATEST".into(),
            target.to_owned(),
            "*".into(),
            limit.to_string(),
        ],
    )
}

/// `CHATHISTORY TARGETS` from [`RECENT_DAYS`] before `now` to a minute after it (room
/// for a server clock a little ahead of ours).
pub fn recent_targets(now: DateTime<Utc>) -> Message {
    let from = now - chrono::Duration::days(RECENT_DAYS);
    let to = now + chrono::Duration::minutes(1);
    Message::new(
        "CHATHISTORY",
        vec![
            "TARGETS".into(),
            timestamp(from),
            timestamp(to),
            TARGETS_LIMIT.to_string(),
        ],
    )
}

/// One `CHATHISTORY TARGETS name timestamp` line: (name, its latest message time).
pub fn target_line(m: &Message) -> Option<(String, String)> {
    if m.command != "CHATHISTORY" || !m.param(0)?.eq_ignore_ascii_case("TARGETS") {
        return None;
    }
    let name = m.param(1).filter(|n| !n.is_empty())?;
    let time = m.param(2).unwrap_or("");
    let time = time.strip_prefix("timestamp=").unwrap_or(time);
    Some((name.to_owned(), time.to_owned()))
}

/// The nicks whose query windows to open from TARGETS answers (name, latest time): valid
/// nicks other than `me`, each once, the most recent first, at most [`MAX_REOPENED`].
pub fn recent_queries(targets: &[(String, String)], me: &str) -> Vec<String> {
    let mut nicks: Vec<&(String, String)> = targets
        .iter()
        .filter(|(n, _)| !names::is_channel(n) && names::valid_nick(n) && !names::eq(n, me))
        .collect();
    // RFC 3339 times in UTC sort as text.
    nicks.sort_by(|a, b| b.1.cmp(&a.1));
    let mut out: Vec<String> = Vec::new();
    for (n, _) in nicks {
        if !out.iter().any(|o| names::eq(o, n)) {
            out.push(n.clone());
        }
        if out.len() == MAX_REOPENED {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests() {
        assert_eq!(latest("bob", 50).to_string(), "CHATHISTORY LATEST bob * 50");
        let now = DateTime::parse_from_rfc3339("2026-12-02T07:30:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            recent_targets(now).to_string(),
            "CHATHISTORY TARGETS timestamp=2026-11-25T07:30:00.000Z timestamp=2026-12-02T07:31:00.000Z 50"
        );
    }

    #[test]
    fn targets_lines_and_the_reopening_rule() {
        let m = Message::parse(b":srv CHATHISTORY TARGETS bob 2026-12-01T10:00:00.000Z").unwrap();
        assert_eq!(
            target_line(&m),
            Some(("bob".into(), "2026-12-01T10:00:00.000Z".into()))
        );
        assert_eq!(
            target_line(&Message::parse(b":srv CHATHISTORY LATEST bob").unwrap()),
            None
        );
        let t = |n: &str, d: u32| (n.to_owned(), format!("2026-12-{d:02}T10:00:00.000Z"));
        let targets = [
            t("#room", 9),
            t("carol", 2),
            t("bob", 5),
            t("Me", 8),
            t("BOB", 1),
            t("0bad", 9),
        ];
        assert_eq!(recent_queries(&targets, "me"), ["bob", "carol"]);
        let many: Vec<(String, String)> = (1..=20).map(|d| t(&format!("n{d}"), d)).collect();
        let open = recent_queries(&many, "me");
        assert_eq!(open.len(), MAX_REOPENED);
        assert_eq!(open[0], "n20");
    }
}
