//! The network's message history: a JetStream stream every node writes and reads.
//!
//! The node that receives a PRIVMSG or NOTICE from a local user stores it in its own
//! history (SQLite or memory, as on a single server) and publishes it as a
//! [`HistoryRecord`] on `sockit.history.<node>`; the stream
//! [`HISTORY_STREAM`](events::HISTORY_STREAM) keeps them (as many days and messages as
//! the history's own limits). Every node follows the stream with a durable consumer of
//! its own (`history-<node>`), so JetStream remembers how far it read: a node that was
//! cut off, restarted, or joins for the first time reads what it missed and stores it.
//! The local store is the cache CHATHISTORY reads; it keeps one copy per `msgid`, and a
//! message has the same `msgid` on every node, so the copy a node stored while it
//! replayed the message live and the one it reads from the stream are one.
//!
//! What goes in: channel messages, and private messages between two logged-in users (an
//! account is the same on every node). Private messages of users without an account stay
//! on their nodes (their history belongs to one connection).

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::irc::history::{Entry, Place};
use crate::irc::server::IrcServer;
use crate::irc::state::State;

use super::events::{self, HistoryRecord};
use super::jetstream;
use super::link::{history_followed, Link};

/// The record of a stored message, if it belongs in the network's history.
pub fn record_of(e: &Entry) -> Option<HistoryRecord> {
    let (channel, direct) = match &e.place {
        Place::Channel(c) => (Some(c.clone()), None),
        Place::Direct {
            from,
            from_nick,
            to,
            to_nick,
        } if from.starts_with("a:") && to.starts_with("a:") => (
            None,
            Some([from.clone(), from_nick.clone(), to.clone(), to_nick.clone()]),
        ),
        Place::Direct { .. } => return None,
    };
    Some(HistoryRecord {
        msgid: e.msgid.clone(),
        time_ms: e.time_ms,
        channel,
        direct,
        command: e.command.clone(),
        prefix: e.prefix.clone(),
        target: e.target.clone(),
        text: e.text.clone(),
        account: e.account.clone(),
        client_tags: e.client_tags.clone(),
        bot: e.bot,
    })
}

/// The entry to store for a record (`None` for a record that names no place).
pub fn entry_of(r: HistoryRecord) -> Option<Entry> {
    let place = match (r.channel, r.direct) {
        (Some(c), _) => Place::Channel(c),
        (None, Some([from, from_nick, to, to_nick])) => Place::Direct {
            from,
            from_nick,
            to,
            to_nick,
        },
        (None, None) => return None,
    };
    if !matches!(r.command.as_str(), "PRIVMSG" | "NOTICE") || r.msgid.is_empty() {
        return None;
    }
    Some(Entry {
        seq: 0,
        time_ms: r.time_ms,
        msgid: r.msgid,
        place,
        command: r.command,
        prefix: r.prefix,
        target: r.target,
        text: r.text,
        account: r.account,
        client_tags: r.client_tags,
        bot: r.bot,
    })
}

/// Publishes local message `entry` to the network's history (a cluster node only).
pub fn publish_record(st: &State, entry: &Entry) {
    let Some(link) = st.cluster.link.as_ref() else {
        return;
    };
    if let Some(r) = record_of(entry) {
        link.publish_raw(events::history_subject(link.node()), r.encode());
    }
}

/// Follows the history stream until `shutdown`, storing every record in the local
/// history (once per `msgid`); after an error (NATS gone, no JetStream) it starts
/// again a second later from where its consumer is. The node counts as following it
/// ([`IrcServer::cluster_ready`]) once it stored what was pending at its first start.
pub async fn follow(
    server: IrcServer,
    client: async_nats::Client,
    link: Arc<Link>,
    shutdown: CancellationToken,
) {
    let js = async_nats::jetstream::new(client);
    let limits = server.config().history.as_ref().map_or(
        (
            crate::irc::history::DEFAULT_MAX_DAYS,
            crate::irc::history::DEFAULT_MAX_MESSAGES,
        ),
        |h| (h.max_days, h.max_messages),
    );
    let durable = format!("history-{}", events::token(link.node()));
    loop {
        let run = async {
            let subject = format!("{}.>", events::HISTORY_ROOT);
            let stream = jetstream::history_stream(
                &js,
                events::HISTORY_STREAM,
                &subject,
                limits.0,
                limits.1,
            )
            .await?;
            let consumer = stream
                .get_or_create_consumer(
                    &durable,
                    pull::Config {
                        durable_name: Some(durable.clone()),
                        deliver_policy: DeliverPolicy::All,
                        ack_policy: AckPolicy::Explicit,
                        ..Default::default()
                    },
                )
                .await?;
            // Caught up once what was pending when it (re)started is stored.
            let mut behind = consumer.cached_info().num_pending;
            if behind == 0 {
                history_followed(&link);
            }
            let mut messages = consumer.messages().await?;
            while let Some(m) = messages.next().await {
                let m = m?;
                if let Some(entry) = HistoryRecord::decode(&m.payload).and_then(entry_of) {
                    server.history().store(entry);
                }
                m.ack().await?;
                if behind > 0 {
                    behind -= 1;
                    if behind == 0 {
                        history_followed(&link);
                    }
                }
            }
            Ok::<(), async_nats::Error>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = run => if let Err(e) = r {
                tracing::debug!(error = %e, "chat cluster: history stream interrupted");
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(place: Place) -> Entry {
        Entry {
            seq: 3,
            time_ms: 10,
            msgid: "m1".into(),
            place,
            command: "PRIVMSG".into(),
            prefix: "a!u@h".into(),
            target: "#c".into(),
            text: "hi".into(),
            account: Some("a".into()),
            client_tags: "+x=1".into(),
            bot: false,
        }
    }

    #[test]
    fn channel_messages_and_account_conversations_round_trip() {
        for place in [
            Place::Channel("#c".into()),
            Place::Direct {
                from: "a:alice".into(),
                from_nick: "alice".into(),
                to: "a:bob".into(),
                to_nick: "bob".into(),
            },
        ] {
            let e = entry(place);
            let back = entry_of(record_of(&e).unwrap()).unwrap();
            assert_eq!(back, Entry { seq: 0, ..e });
        }
    }

    #[test]
    fn conversations_without_accounts_stay_home() {
        let e = entry(Place::Direct {
            from: "s:1:2".into(),
            from_nick: "x".into(),
            to: "a:bob".into(),
            to_nick: "bob".into(),
        });
        assert_eq!(record_of(&e), None);
    }

    #[test]
    fn records_without_a_place_or_of_other_commands_are_dropped() {
        let mut r = record_of(&entry(Place::Channel("#c".into()))).unwrap();
        r.command = "TAGMSG".into();
        assert_eq!(entry_of(r.clone()), None);
        r.command = "PRIVMSG".into();
        r.channel = None;
        assert_eq!(entry_of(r), None);
    }
}
