//! MONITOR (IRCv3): a client's list of nicks it is told about when they come online
//! (`730 :nick!user@host`) and go offline (`731 :nick`).
//!
//! `MONITOR + a,b` adds (and answers with their status at once), `- a,b` removes,
//! `C` clears, `L` lists (`732`… `733`), `S` shows the status of every entry. At most
//! [`MONITOR_LIMIT`] nicks (ISUPPORT `MONITOR=100`); adding past it answers
//! `734 me limit nicks :Monitor list is full` with the nicks not added.

use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::names;
use crate::irc::numeric::*;

/// Most nicks on one client's MONITOR list.
pub const MONITOR_LIMIT: usize = 100;

/// Nicks per 730/731/732 line (each at most a nick!user@host).
const PER_LINE: usize = 6;

/// `MONITOR + | - | C | L | S [targets]`.
pub fn monitor(ctx: &mut Ctx<'_>, msg: &Message) {
    let Some(sub) = msg.param(0).filter(|s| !s.is_empty()) else {
        return ctx.need_more_params("MONITOR");
    };
    let targets: Vec<String> = msg
        .param(1)
        .unwrap_or("")
        .split(',')
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .collect();
    match sub {
        "+" => {
            if targets.is_empty() {
                return ctx.need_more_params("MONITOR");
            }
            add(ctx, &targets);
        }
        "-" => {
            if targets.is_empty() {
                return ctx.need_more_params("MONITOR");
            }
            for t in &targets {
                let key = names::fold(t);
                if let Some(c) = ctx.me_mut() {
                    c.monitor.remove(&key);
                }
                if let Some(ws) = ctx.st.watchers.get_mut(&key) {
                    ws.remove(&ctx.id);
                    if ws.is_empty() {
                        ctx.st.watchers.remove(&key);
                    }
                }
            }
        }
        "C" | "c" => ctx.st.clear_monitor(ctx.id),
        "L" | "l" => {
            let list: Vec<String> = ctx
                .me()
                .map(|c| c.monitor.values().cloned().collect())
                .unwrap_or_default();
            for chunk in list.chunks(PER_LINE) {
                ctx.num(RPL_MONLIST, &[&chunk.join(",")]);
            }
            ctx.num(RPL_ENDOFMONLIST, &["End of MONITOR list"]);
        }
        "S" | "s" => {
            let list: Vec<String> = ctx
                .me()
                .map(|c| c.monitor.values().cloned().collect())
                .unwrap_or_default();
            status(ctx, &list);
        }
        _ => ctx.num(
            ERR_UNKNOWNCOMMAND,
            &["MONITOR", "Unknown MONITOR subcommand"],
        ),
    }
}

fn add(ctx: &mut Ctx<'_>, targets: &[String]) {
    let mut added = Vec::new();
    let mut rest = Vec::new();
    for t in targets {
        if !names::valid_nick(t) {
            continue;
        }
        let key = names::fold(t);
        let Some(c) = ctx.me_mut() else { return };
        if c.monitor.contains_key(&key) {
            added.push(t.clone());
        } else if c.monitor.len() >= MONITOR_LIMIT {
            rest.push(t.clone());
        } else {
            c.monitor.insert(key.clone(), t.clone());
            ctx.st.watchers.entry(key).or_default().insert(ctx.id);
            added.push(t.clone());
        }
    }
    if !rest.is_empty() {
        ctx.num(
            ERR_MONLISTFULL,
            &[
                &MONITOR_LIMIT.to_string(),
                &rest.join(","),
                "Monitor list is full",
            ],
        );
    }
    status(ctx, &added);
}

/// 730 for the nicks online (as `nick!user@host`), 731 for the others.
fn status(ctx: &Ctx<'_>, nicks: &[String]) {
    let mut online = Vec::new();
    let mut offline = Vec::new();
    for n in nicks {
        match ctx.st.by_nick(n).and_then(|id| ctx.st.clients.get(&id)) {
            Some(c) if c.registered => online.push(c.prefix()),
            _ => offline.push(n.clone()),
        }
    }
    for chunk in online.chunks(PER_LINE) {
        ctx.num(RPL_MONONLINE, &[&chunk.join(",")]);
    }
    for chunk in offline.chunks(PER_LINE) {
        ctx.num(RPL_MONOFFLINE, &[&chunk.join(",")]);
    }
}
