//! PRIVMSG, NOTICE, TAGMSG, AWAY and SETNAME.
//!
//! A message carries the sender's client-only tags (`+key`, when the sender enabled
//! `message-tags`) and a fresh `msgid` to recipients with `message-tags`, `time=` to those
//! with `server-time` and `account=` to those with `account-tag`; a sender with
//! `echo-message` gets its own message back, with the same `msgid`. TAGMSG goes only to
//! clients with `message-tags`. A PRIVMSG to `ChanServ` is a command for the service
//! ([`chanserv`]).

use std::time::Instant;

use crate::irc::caps::Cap;
use crate::irc::channel_cmds::may_speak;
use crate::irc::chanserv;
use crate::irc::chathistory::{record, Delivered};
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::*;
use crate::irc::tags::Tags;

/// Most targets of one PRIVMSG/NOTICE/TAGMSG (ISUPPORT `MAXTARGETS`).
const MAX_TARGETS: usize = 4;

/// Longest away message (ISUPPORT `AWAYLEN`).
pub const AWAYLEN: usize = 200;

/// Longest realname (ISUPPORT `NAMELEN`).
pub const NAMELEN: usize = 100;

/// `PRIVMSG`/`NOTICE target[,target] :text`, `TAGMSG target[,target]`. NOTICE never gets an
/// error reply (RFC 2812 §3.3.2). `@#chan` / `+#chan` (STATUSMSG) reach only the
/// channel's operators / voiced members.
pub fn privmsg(ctx: &mut Ctx<'_>, msg: &Message) {
    let notice = msg.command == "NOTICE";
    let tagmsg = msg.command == "TAGMSG";
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.num(
                ERR_NORECIPIENT,
                &[&format!("No recipient given ({})", msg.command)],
            );
        }
        return;
    };
    let text = msg.param(1).unwrap_or("");
    if text.is_empty() && !tagmsg {
        if !notice {
            ctx.num(ERR_NOTEXTTOSEND, &["No text to send"]);
        }
        return;
    }
    let Some(me) = ctx.me() else { return };
    let echo = me.has(Cap::EchoMessage);
    let client_tags = match (&msg.tags, me.has(Cap::MessageTags)) {
        (Some(t), true) => Tags::parse(t).client_only(),
        _ => Tags::new(),
    };
    let mask = me.prefix();
    let targets: Vec<String> = targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_TARGETS)
        .map(str::to_owned)
        .collect();
    if let Some(me) = ctx.me_mut() {
        if !tagmsg {
            me.last_spoke = Instant::now();
        }
    }
    for target in targets {
        let mut params = vec![target.clone()];
        if !tagmsg {
            params.push(text.to_owned());
        }
        // A remote user's message keeps the id and time its own node gave it.
        let (msgid, time_ms) = match ctx.st.cluster.take_stamp() {
            Some(s) if !s.msgid.is_empty() => (s.msgid, s.at),
            _ => (ctx.st.next_msgid(), chrono::Utc::now().timestamp_millis()),
        };
        let stamp = crate::irc::cluster::Stamp {
            msgid: msgid.clone(),
            at: time_ms,
        };
        ctx.st.cluster.note_sent(ctx.id, &target, stamp);
        let mut out = ctx
            .out(Message::new(msg.command.clone(), params))
            .at_ms(time_ms)
            .msgid(msgid.clone())
            .client_tags(client_tags.clone());
        // PRIVMSG and NOTICE are kept for CHATHISTORY (not TAGMSG, not STATUSMSG).
        let delivered = |to| Delivered {
            command: &msg.command,
            target: &target,
            text,
            msgid: &msgid,
            time_ms,
            client_tags: &client_tags,
            to,
        };
        if tagmsg {
            out = out.tags_only();
        }
        let (status, chan) = match target.strip_prefix(['@', '+']) {
            Some(rest) if names::is_channel(rest) => (target.chars().next(), rest),
            _ => (None, target.as_str()),
        };
        if chanserv::addressed(ctx, &target) {
            // A command for the service (a NOTICE or TAGMSG gets no answer, as in Ergo).
            if !notice && !tagmsg {
                chanserv::privmsg(ctx, text);
            }
        } else if names::is_channel(chan) {
            let Some(ch) = ctx.st.channels.get(&names::fold(chan)) else {
                if !notice {
                    ctx.num(ERR_NOSUCHCHANNEL, &[chan, "No such channel"]);
                }
                continue;
            };
            if !may_speak(ch, ctx.id, &mask) {
                if !notice {
                    ctx.num(ERR_CANNOTSENDTOCHAN, &[&ch.name, "Cannot send to channel"]);
                }
                continue;
            }
            for (id, m) in &ch.members {
                let wanted = match status {
                    Some('@') => m.op,
                    Some(_) => m.op || m.voice,
                    None => true,
                };
                if *id != ctx.id && wanted {
                    if let Some(c) = ctx.st.clients.get(id) {
                        c.handle.send_out(&out);
                    }
                }
            }
            if status.is_none() && !tagmsg {
                record(ctx, &delivered(None));
            }
        } else {
            let Some((tid, c)) = ctx
                .st
                .by_nick(&target)
                .and_then(|id| Some((id, ctx.st.clients.get(&id)?)))
            else {
                if !notice {
                    ctx.num(ERR_NOSUCHNICK, &[&target, "No such nick/channel"]);
                }
                continue;
            };
            if tid == ctx.id {
                // To itself: a side effect, never part of a labeled response.
                c.handle.send_out_uncaptured(&out);
            } else {
                c.handle.send_out(&out);
            }
            if let (false, false, Some(away)) = (notice, tagmsg, &c.away) {
                ctx.num(RPL_AWAY, &[c.nick_or_star(), away]);
            }
            if !tagmsg {
                record(ctx, &delivered(Some(tid)));
            }
        }
        if echo {
            if let Some(me) = ctx.me() {
                me.handle.send_out(&out);
            }
        }
    }
}

/// `AWAY [:message]`: 306/305, and `AWAY` to neighbours with `away-notify`.
pub fn away(ctx: &mut Ctx<'_>, msg: &Message) {
    let text = msg
        .param(0)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(AWAYLEN).collect::<String>());
    let now_away = text.is_some();
    if let Some(me) = ctx.me_mut() {
        me.away = text.clone();
    }
    if now_away {
        ctx.num(RPL_NOWAWAY, &["You have been marked as being away"]);
    } else {
        ctx.num(RPL_UNAWAY, &["You are no longer marked as being away"]);
    }
    let out = ctx.out(Message::new("AWAY", text.into_iter().collect()));
    ctx.st
        .to_neighbours_with(ctx.id, Cap::AwayNotify, &out, false);
}

/// SETNAME :realname (IRCv3 `setname`): the new realname goes to the client and its
/// neighbours with `setname`; an empty or over-long one is `FAIL SETNAME INVALID_REALNAME`.
pub fn setname(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(name) = msg.param(0) else {
        return ctx.need_more_params("SETNAME");
    };
    if name.is_empty() || name.chars().count() > NAMELEN {
        return ctx.fail("SETNAME", "INVALID_REALNAME", &[], "Realname is not valid");
    }
    let name = name.to_owned();
    if let Some(me) = ctx.me_mut() {
        me.realname = name.clone();
    }
    let out = ctx.out(Message::new("SETNAME", vec![name]));
    ctx.st.to_neighbours_with(ctx.id, Cap::Setname, &out, true);
}
