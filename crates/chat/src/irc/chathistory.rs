//! `CHATHISTORY` (IRCv3 `draft/chathistory`): stored PRIVMSG and NOTICE replayed in a
//! `chathistory` batch with their original `time`, `msgid`, `account` and client tags.
//!
//! ```text
//! CHATHISTORY LATEST  <target> <* | ref> <limit>
//! CHATHISTORY BEFORE  <target> <ref> <limit>
//! CHATHISTORY AFTER   <target> <ref> <limit>
//! CHATHISTORY AROUND  <target> <ref> <limit>
//! CHATHISTORY BETWEEN <target> <ref> <ref> <limit>
//! CHATHISTORY TARGETS <timestamp=…> <timestamp=…> <limit>
//! ref = timestamp=YYYY-MM-DDThh:mm:ss.sssZ | msgid=ID
//! ```
//!
//! A channel's history is open to its members; a nick's is the conversation of the
//! asking user (its account, or this connection when not logged in) with that nick.
//! Errors are standard replies: `FAIL CHATHISTORY NEED_MORE_PARAMS|UNKNOWN_COMMAND|
//! INVALID_PARAMS|INVALID_TARGET …`. The store is asked outside the state lock
//! ([`Outcome::History`]); [`reply`] then sends the batch.

use crate::irc::caps::Cap;
use crate::irc::channel::ClientId;
use crate::irc::commands::{Ctx, Outcome};
use crate::irc::history::{
    Bound, Entry, Place, Query, Request, Response, Scope, Selector, TargetsQuery,
};
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::server::with_tag;
use crate::irc::state::{format_ms, parse_time, tagged_line, Line, Outgoing};
use crate::irc::tags::Tags;

/// Most messages one `CHATHISTORY` returns (ISUPPORT `CHATHISTORY`); a larger limit is
/// lowered to it.
pub const CHATHISTORY_MAX: usize = 100;

/// The ISUPPORT tokens of chat history.
pub fn isupport() -> [String; 2] {
    [
        format!("CHATHISTORY={CHATHISTORY_MAX}"),
        "MSGREFTYPES=timestamp,msgid".into(),
    ]
}

/// A `CHATHISTORY` waiting for the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryCall {
    /// The subcommand, upper case.
    pub sub: String,
    /// The target as the client wrote it (the batch parameter).
    pub target: String,
    /// What to ask the store.
    pub request: Request,
}

const RETRIEVE_FAILED: &str = "Messages could not be retrieved";

/// Parses `timestamp=…` or `msgid=…`.
fn parse_ref(text: &str) -> Option<Bound> {
    if let Some(t) = text.strip_prefix("timestamp=") {
        return parse_time(t).map(Bound::Time);
    }
    text.strip_prefix("msgid=")
        .filter(|id| !id.is_empty())
        .map(|id| Bound::Msgid(id.to_owned()))
}

/// A positive limit, lowered to [`CHATHISTORY_MAX`].
fn parse_limit(text: &str) -> Option<usize> {
    text.parse::<usize>()
        .ok()
        .filter(|n| *n > 0)
        .map(|n| n.min(CHATHISTORY_MAX))
}

/// `CHATHISTORY sub …` (see the module documentation).
pub fn chathistory(ctx: &mut Ctx<'_>, msg: &Message) -> Outcome {
    let Some(sub) = msg.param(0).filter(|s| !s.is_empty()) else {
        ctx.fail("CHATHISTORY", "NEED_MORE_PARAMS", &[], "Missing parameters");
        return Outcome::Continue;
    };
    let sub = sub.to_ascii_uppercase();
    let need = match sub.as_str() {
        "LATEST" | "BEFORE" | "AFTER" | "AROUND" | "TARGETS" => 4,
        "BETWEEN" => 5,
        _ => {
            ctx.fail("CHATHISTORY", "UNKNOWN_COMMAND", &[&sub], "Unknown command");
            return Outcome::Continue;
        }
    };
    if msg.params.len() < need {
        ctx.fail(
            "CHATHISTORY",
            "NEED_MORE_PARAMS",
            &[&sub],
            "Missing parameters",
        );
        return Outcome::Continue;
    }
    let p = &msg.params;
    let invalid = |ctx: &Ctx<'_>, what: &str| {
        ctx.fail("CHATHISTORY", "INVALID_PARAMS", &[&sub], what);
        Outcome::Continue
    };
    let Some(limit) = parse_limit(&p[need - 1]) else {
        return invalid(ctx, "Invalid limit");
    };
    if sub == "TARGETS" {
        let times = (
            p[1].strip_prefix("timestamp=").and_then(parse_time),
            p[2].strip_prefix("timestamp=").and_then(parse_time),
        );
        let (Some(from_ms), Some(to_ms)) = times else {
            return invalid(ctx, "Invalid timestamp");
        };
        let channels = ctx
            .me()
            .map(|c| c.channels.iter().cloned().collect())
            .unwrap_or_default();
        let me = ctx.st.party_key(ctx.id);
        return Outcome::History(HistoryCall {
            sub,
            target: String::new(),
            request: Request::Targets(TargetsQuery {
                channels,
                me,
                from_ms,
                to_ms,
                limit,
            }),
        });
    }
    let target = p[1].clone();
    let refs: Option<Selector> = match sub.as_str() {
        "LATEST" if p[2] == "*" => Some(Selector::Latest(None)),
        "LATEST" => parse_ref(&p[2]).map(|b| Selector::Latest(Some(b))),
        "BEFORE" => parse_ref(&p[2]).map(Selector::Before),
        "AFTER" => parse_ref(&p[2]).map(Selector::After),
        "AROUND" => parse_ref(&p[2]).map(Selector::Around),
        _ => parse_ref(&p[2])
            .zip(parse_ref(&p[3]))
            .map(|(a, b)| Selector::Between(a, b)),
    };
    let Some(selector) = refs else {
        return invalid(ctx, "Invalid message reference");
    };
    let Some(scope) = scope_for(ctx, &target) else {
        ctx.fail(
            "CHATHISTORY",
            "INVALID_TARGET",
            &[&sub, &target],
            RETRIEVE_FAILED,
        );
        return Outcome::Continue;
    };
    Outcome::History(HistoryCall {
        sub,
        target,
        request: Request::Messages(Query {
            scope,
            selector,
            limit,
        }),
    })
}

/// Whose history `target` names for the sender: a channel it is in, or its conversation
/// with a nick.
fn scope_for(ctx: &mut Ctx<'_>, target: &str) -> Option<Scope> {
    if names::is_channel(target) {
        let key = names::fold(target);
        let member = ctx
            .st
            .channels
            .get(&key)
            .is_some_and(|ch| ch.members.contains_key(&ctx.id));
        return member.then_some(Scope::Channel(key));
    }
    if !names::valid_nick(target) {
        return None;
    }
    Some(Scope::Direct {
        me: ctx.st.party_key(ctx.id),
        other: names::fold(target),
    })
}

/// A server line for the sender (with `time` for `server-time`, `batch` when in one).
fn server_line(ctx: &Ctx<'_>, batch: Option<&str>, msg: Message) -> Option<Line> {
    let caps = ctx.me()?.caps();
    let mut tags = Tags::new();
    if let Some(b) = batch {
        tags.insert("batch", b);
    }
    if caps.has(Cap::ServerTime) {
        tags.insert("time", crate::irc::state::server_time());
    }
    Some(tagged_line(&tags, &msg.with_prefix(ctx.cfg.name.clone())))
}

/// Sends the answer of the store to a [`HistoryCall`]: the messages in a `chathistory`
/// batch, or the targets in a `draft/chathistory-targets` batch (the batch lines only
/// for a client with `batch`).
pub fn reply(ctx: &mut Ctx<'_>, call: &HistoryCall, resp: Response) -> Outcome {
    let Some(me) = ctx.me() else {
        return Outcome::Continue;
    };
    let handle = me.handle.clone();
    let caps = me.caps();
    let batch = caps.has(Cap::Batch).then(|| ctx.st.next_batch("ch"));
    let (kind, extra) = match &resp {
        Response::Messages(_) => ("chathistory", Some(call.target.clone())),
        Response::Targets(_) => ("draft/chathistory-targets", None),
    };
    if let Some(b) = &batch {
        let mut params = vec![format!("+{b}"), kind.to_owned()];
        params.extend(extra);
        if let Some(l) = server_line(ctx, None, Message::new("BATCH", params)) {
            handle.send(l);
        }
    }
    match resp {
        Response::Messages(entries) => {
            for e in entries {
                let Some(line) = replay(&e).line(caps) else {
                    continue;
                };
                handle.send(match &batch {
                    Some(b) => with_tag(&line, &format!("batch={b}")),
                    None => line,
                });
            }
        }
        Response::Targets(targets) => {
            for (target, ms) in targets {
                let name = if names::is_channel(&target) {
                    ctx.st
                        .channels
                        .get(&target)
                        .map_or(target.clone(), |ch| ch.name.clone())
                } else {
                    target
                };
                let m = Message::new("CHATHISTORY", vec!["TARGETS".into(), name, format_ms(ms)]);
                if let Some(l) = server_line(ctx, batch.as_deref(), m) {
                    handle.send(l);
                }
            }
        }
    }
    if let Some(b) = &batch {
        if let Some(l) = server_line(ctx, None, Message::new("BATCH", vec![format!("-{b}")])) {
            handle.send(l);
        }
    }
    Outcome::Continue
}

/// A stored message as it was delivered.
fn replay(e: &Entry) -> Outgoing {
    let msg = Message::new(e.command.clone(), vec![e.target.clone(), e.text.clone()])
        .with_prefix(e.prefix.clone());
    Outgoing::new(msg)
        .at_ms(e.time_ms)
        .msgid(e.msgid.clone())
        .account(e.account.clone())
        .bot(e.bot)
        .client_tags(Tags::parse(&e.client_tags))
}

/// What [`record`] stores: one delivered PRIVMSG or NOTICE.
#[derive(Debug)]
pub struct Delivered<'a> {
    /// `PRIVMSG` or `NOTICE`.
    pub command: &'a str,
    /// The target as sent.
    pub target: &'a str,
    /// The text.
    pub text: &'a str,
    /// The message id it was delivered with.
    pub msgid: &'a str,
    /// When the server received it (Unix milliseconds).
    pub time_ms: i64,
    /// The client-only tags relayed with it.
    pub client_tags: &'a Tags,
    /// The recipient, for a private message (`None`: the channel `target`).
    pub to: Option<ClientId>,
}

/// Stores a delivered message in the history (without waiting, see
/// [`History::store`](crate::irc::history::History::store)).
pub fn record(ctx: &mut Ctx<'_>, d: &Delivered<'_>) {
    let place = match d.to {
        None => Place::Channel(names::fold(d.target)),
        Some(to) => {
            let from = ctx.st.party_key(ctx.id);
            let to_key = ctx.st.party_key(to);
            let to_nick = ctx
                .st
                .clients
                .get(&to)
                .map_or(d.target.to_owned(), |c| c.nick_or_star().to_owned());
            Place::Direct {
                from,
                from_nick: names::fold(&ctx.nick()),
                to: to_key,
                to_nick: names::fold(&to_nick),
            }
        }
    };
    let Some(me) = ctx.me() else { return };
    let entry = Entry {
        seq: 0,
        time_ms: d.time_ms,
        msgid: d.msgid.to_owned(),
        place,
        command: d.command.to_owned(),
        prefix: me.prefix(),
        target: d.target.to_owned(),
        text: d.text.to_owned(),
        account: me.account.clone(),
        client_tags: d.client_tags.to_wire(),
        bot: me.is_bot(),
    };
    if ctx.st.cluster.publishes(ctx.id) {
        // The network's history: every node can read it (cluster/history.rs).
        crate::irc::cluster::publish_record(ctx.st, &entry);
    }
    ctx.history.store(entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_and_limits() {
        assert_eq!(
            parse_ref("timestamp=2024-01-02T03:04:05.678Z"),
            Some(Bound::Time(1_704_164_645_678))
        );
        assert_eq!(parse_ref("msgid=abc"), Some(Bound::Msgid("abc".into())));
        for bad in ["msgid=", "timestamp=yesterday", "abc", "*", ""] {
            assert_eq!(parse_ref(bad), None, "{bad}");
        }
        assert_eq!(parse_limit("5"), Some(5));
        assert_eq!(parse_limit("100000"), Some(CHATHISTORY_MAX));
        for bad in ["0", "-1", "x", ""] {
            assert_eq!(parse_limit(bad), None, "{bad}");
        }
    }
}
