//! `MARKREAD` (IRCv3 `draft/read-marker`): how far a user has read each channel and
//! conversation.
//!
//! ```text
//! C: MARKREAD #chan                                     get
//! S: :srv MARKREAD #chan timestamp=2024-01-02T03:04:05.678Z   (or `*`: none yet)
//! C: MARKREAD #chan timestamp=2024-01-02T03:04:05.678Z  set
//! S: :srv MARKREAD #chan timestamp=…                    the marker afterwards
//! ```
//!
//! A marker only moves forward; an older timestamp answers the current one. When it
//! moves, the account's other connections with `draft/read-marker` get the new value
//! too. Markers of an account live in the history store (kept across restarts with
//! SQLite); a client not logged in has markers for its connection only, as Ergo does.
//! A client with the capability gets the channel's `MARKREAD` when it joins, after the
//! topic and before the names.

use crate::irc::caps::Cap;
use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::state::{format_ms, parse_time};

/// `MARKREAD target [timestamp=…]`.
pub fn markread(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(target) = msg.param(0).filter(|t| !t.is_empty()).map(str::to_owned) else {
        return ctx.fail("MARKREAD", "NEED_MORE_PARAMS", &[], "Missing parameters");
    };
    if !names::is_channel(&target) && !names::valid_nick(&target) {
        return ctx.fail("MARKREAD", "INVALID_PARAMS", &[&target], "Invalid target");
    }
    let key = names::fold(&target);
    let Some(arg) = msg.param(1) else {
        let value = marker_text(get(ctx, &key));
        ctx.send(&ctx.from_server("MARKREAD", vec![target, value]));
        return;
    };
    let Some(ms) = arg.strip_prefix("timestamp=").and_then(parse_time) else {
        return ctx.fail("MARKREAD", "INVALID_PARAMS", &[arg], "Invalid timestamp");
    };
    let account = ctx.me().and_then(|c| c.account.clone());
    let now = match &account {
        Some(a) => ctx.history.set_marker(a, &key, ms),
        None => match ctx.me_mut() {
            Some(c) => {
                let cur = c.markers.entry(key.clone()).or_insert(ms);
                *cur = (*cur).max(ms);
                *cur
            }
            None => return,
        },
    };
    let value = marker_text(Some(now));
    let line = ctx.from_server("MARKREAD", vec![target, value]);
    ctx.send(&line);
    if now != ms {
        return;
    }
    // It moved: the account's other connections follow.
    let Some(account) = account else { return };
    for (id, c) in &ctx.st.clients {
        if *id != ctx.id
            && c.registered
            && c.account.as_deref() == Some(account.as_str())
            && c.has(Cap::ReadMarker)
        {
            c.handle.send_msg(&line);
        }
    }
}

/// The sender's marker on `key` (a folded target).
fn get(ctx: &Ctx<'_>, key: &str) -> Option<i64> {
    let me = ctx.me()?;
    match &me.account {
        Some(a) => ctx.history.marker(a, key),
        None => me.markers.get(key).copied(),
    }
}

fn marker_text(ms: Option<i64>) -> String {
    match ms {
        Some(ms) => format!("timestamp={}", format_ms(ms)),
        None => "*".into(),
    }
}

/// After a JOIN: the channel's `MARKREAD` for a client with `draft/read-marker`.
pub fn on_join(ctx: &Ctx<'_>, name: &str) {
    if !ctx.me().is_some_and(|c| c.has(Cap::ReadMarker)) {
        return;
    }
    let value = marker_text(get(ctx, &names::fold(name)));
    ctx.send(&ctx.from_server("MARKREAD", vec![name.to_owned(), value]));
}
