//! PRIVMSG, NOTICE and AWAY.

use std::time::Instant;

use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::*;

/// Most targets of one PRIVMSG/NOTICE (ISUPPORT `MAXTARGETS`).
const MAX_TARGETS: usize = 4;

/// PRIVMSG/NOTICE target[,target] :text. NOTICE never gets an error reply (RFC 2812 §3.3.2).
pub fn privmsg(ctx: &mut Ctx<'_>, msg: &Message) {
    let notice = msg.command == "NOTICE";
    let Some(targets) = msg.param(0).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.num(
                ERR_NORECIPIENT,
                &[&format!("No recipient given ({})", msg.command)],
            );
        }
        return;
    };
    let Some(text) = msg.param(1).filter(|t| !t.is_empty()) else {
        if !notice {
            ctx.num(ERR_NOTEXTTOSEND, &["No text to send"]);
        }
        return;
    };
    let prefix = ctx.prefix();
    if let Some(me) = ctx.me_mut() {
        me.last_spoke = Instant::now();
    }
    for target in targets
        .split(',')
        .filter(|t| !t.is_empty())
        .take(MAX_TARGETS)
    {
        let out = Message::new(
            msg.command.clone(),
            vec![target.to_owned(), text.to_owned()],
        )
        .with_prefix(prefix.clone());
        if names::is_channel(target) {
            let Some(ch) = ctx.st.channels.get(&names::fold(target)) else {
                if !notice {
                    ctx.num(ERR_NOSUCHCHANNEL, &[target, "No such channel"]);
                }
                continue;
            };
            if ch.no_external && !ch.has(ctx.id) {
                if !notice {
                    ctx.num(ERR_CANNOTSENDTOCHAN, &[&ch.name, "Cannot send to channel"]);
                }
                continue;
            }
            ctx.st.to_channel(ch, &out, Some(ctx.id));
        } else {
            let Some(c) = ctx
                .st
                .by_nick(target)
                .and_then(|id| ctx.st.clients.get(&id))
            else {
                if !notice {
                    ctx.num(ERR_NOSUCHNICK, &[target, "No such nick/channel"]);
                }
                continue;
            };
            c.handle.send_msg(&out);
            if let (false, Some(away)) = (notice, &c.away) {
                ctx.num(RPL_AWAY, &[c.nick_or_star(), away]);
            }
        }
    }
}

/// AWAY [:message].
pub fn away(ctx: &mut Ctx<'_>, msg: &Message) {
    let text = msg
        .param(0)
        .filter(|t| !t.is_empty())
        .map(|t| t.chars().take(200).collect::<String>());
    let now_away = text.is_some();
    if let Some(me) = ctx.me_mut() {
        me.away = text;
    }
    if now_away {
        ctx.num(RPL_NOWAWAY, &["You have been marked as being away"]);
    } else {
        ctx.num(RPL_UNAWAY, &["You are no longer marked as being away"]);
    }
}
