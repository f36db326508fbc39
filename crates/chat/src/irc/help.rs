//! `HELP [subject]` and its alias `HELPOP` (modern.ircdocs.horse): `704 RPL_HELPSTART`,
//! `705 RPL_HELPTXT` lines and `706 RPL_ENDOFHELP`, or `524 ERR_HELPNOTFOUND` for a subject
//! the server has no text for. The texts are the server's own commands, one entry each.

use crate::irc::commands::Ctx;
use crate::irc::message::Message;
use crate::irc::numeric::{ERR_HELPNOTFOUND, RPL_ENDOFHELP, RPL_HELPSTART, RPL_HELPTXT};

/// One help entry: the command, its syntax, what it does.
type Entry = (&'static str, &'static str, &'static str);

/// Every command a client may send, with its syntax and a line on what it does.
const ENTRIES: &[Entry] = &[
    ("ADMIN", "ADMIN", "Shows who runs this server."),
    (
        "AUTHENTICATE",
        "AUTHENTICATE <mechanism>|<data>",
        "SASL login (PLAIN, EXTERNAL); needs CAP REQ sasl.",
    ),
    (
        "AWAY",
        "AWAY [:<message>]",
        "Marks you away with a message, or back without one.",
    ),
    (
        "CAP",
        "CAP LS [302] | LIST | REQ :<caps> | END",
        "IRCv3 capability negotiation.",
    ),
    (
        "CHATHISTORY",
        "CHATHISTORY LATEST|BEFORE|AFTER|AROUND|BETWEEN|TARGETS <target> ...",
        "Fetches stored messages (draft/chathistory).",
    ),
    (
        "CHGHOST",
        "CHGHOST <nick> <user> <host>",
        "Operators: changes a user's user name and host.",
    ),
    (
        "CS",
        "CS <command> [args] (also CHANSERV, or PRIVMSG ChanServ)",
        "Channel registration: REGISTER, UNREGISTER, AMODE, OP, INFO, HELP.",
    ),
    (
        "HELP",
        "HELP [<subject>]",
        "Shows this help, or the help for one command.",
    ),
    ("INFO", "INFO", "Shows what this server is."),
    (
        "INVITE",
        "INVITE <nick> <channel>",
        "Invites a user into a channel (needed for +i channels).",
    ),
    (
        "ISON",
        "ISON <nick> [<nick> ...]",
        "Tells which of the nicks are online.",
    ),
    (
        "JOIN",
        "JOIN <channel>[,<channel>] [<key>[,<key>]] | JOIN 0",
        "Joins channels (JOIN 0 leaves them all).",
    ),
    (
        "KICK",
        "KICK <channel> <nick> [:<reason>]",
        "Channel operators: removes a user from the channel.",
    ),
    (
        "KILL",
        "KILL <nick> :<reason>",
        "Operators: disconnects a user.",
    ),
    (
        "LIST",
        "LIST [<channel>[,...]] [<filters>]",
        "Lists channels; ELIST filters C, M, N, T, U.",
    ),
    ("LUSERS", "LUSERS", "Counts users, operators and channels."),
    (
        "MARKREAD",
        "MARKREAD <target> [timestamp=<time>]",
        "Gets or sets your read marker (draft/read-marker).",
    ),
    (
        "MODE",
        "MODE <channel>|<nick> [<modes> [<params>]]",
        "Shows or changes channel or user modes.",
    ),
    (
        "MONITOR",
        "MONITOR +|-|C|L|S [<nick>[,...]]",
        "Tells you when nicks come online or go offline.",
    ),
    ("MOTD", "MOTD", "Shows the message of the day."),
    ("NAMES", "NAMES <channel>", "Lists a channel's members."),
    ("NICK", "NICK <nick>", "Sets or changes your nick."),
    (
        "NOTICE",
        "NOTICE <target>[,...] :<text>",
        "Sends a notice (never answered automatically).",
    ),
    (
        "OPER",
        "OPER <name> <password>",
        "Makes you an IRC operator.",
    ),
    (
        "PART",
        "PART <channel>[,...] [:<reason>]",
        "Leaves channels.",
    ),
    (
        "PASS",
        "PASS <password>",
        "The server password or account:password, before NICK/USER.",
    ),
    (
        "PING",
        "PING <token>",
        "The server answers PONG with the token.",
    ),
    ("PONG", "PONG <token>", "Answers the server's PING."),
    (
        "PRIVMSG",
        "PRIVMSG <target>[,...] :<text>",
        "Sends a message to users or channels (@#chan for its operators).",
    ),
    ("QUIT", "QUIT [:<reason>]", "Leaves the server."),
    (
        "REGISTER",
        "REGISTER <account> <email>|* <password>",
        "Creates an account when the server allows it.",
    ),
    ("SETNAME", "SETNAME :<realname>", "Changes your real name."),
    (
        "TAGMSG",
        "TAGMSG <target>",
        "Sends only message tags (typing notices, reactions).",
    ),
    ("TIME", "TIME", "Shows the server's time."),
    (
        "TOPIC",
        "TOPIC <channel> [:<topic>]",
        "Shows or sets a channel's topic.",
    ),
    (
        "USER",
        "USER <user> 0 * :<realname>",
        "Registration: your user name and real name.",
    ),
    (
        "USERHOST",
        "USERHOST <nick> [<nick> ...]",
        "Shows user@host (and away state) of nicks.",
    ),
    (
        "VERIFY",
        "VERIFY <account> <code>",
        "Completes an account registration.",
    ),
    (
        "VERSION",
        "VERSION",
        "Shows the server version and its ISUPPORT tokens.",
    ),
    (
        "WALLOPS",
        "WALLOPS :<text>",
        "Operators: a message to every user with +w.",
    ),
    (
        "WHO",
        "WHO <mask> [%<fields>[,<token>]]",
        "Lists users matching a mask or in a channel (WHOX).",
    ),
    ("WHOIS", "WHOIS <nick>", "Shows who a user is."),
    (
        "WHOWAS",
        "WHOWAS <nick> [<count>]",
        "Shows who used a nick before.",
    ),
];

/// The entry for `subject` (case-insensitive; `CHANSERV` is `CS`).
fn entry(subject: &str) -> Option<&'static Entry> {
    let subject = subject.to_ascii_uppercase();
    let subject = if subject == "CHANSERV" {
        "CS".to_owned()
    } else {
        subject
    };
    ENTRIES.iter().find(|(name, _, _)| *name == subject)
}

/// The lines of help on `subject` (`None`: the index), or `None` when there is none.
pub fn lines(subject: Option<&str>) -> Option<Vec<String>> {
    match subject {
        None => {
            let mut out =
                vec!["sockit IRC server: the commands below; HELP <command> for one.".to_owned()];
            let names: Vec<&str> = ENTRIES.iter().map(|(n, _, _)| *n).collect();
            out.extend(names.chunks(8).map(|row| row.join(" ")));
            Some(out)
        }
        Some(s) => entry(s).map(|(_, syntax, what)| vec![(*syntax).to_owned(), (*what).to_owned()]),
    }
}

/// `HELP [subject]` / `HELPOP [subject]`.
pub fn help(ctx: &mut Ctx<'_>, msg: &Message) {
    let subject = msg
        .params
        .first()
        .map(String::as_str)
        .filter(|s| !s.is_empty());
    // The subject is echoed as given; the index is `*`, as Ergo names it.
    let shown = subject.unwrap_or("*");
    let Some(lines) = lines(subject) else {
        ctx.num(
            ERR_HELPNOTFOUND,
            &[shown, "No help available on this topic"],
        );
        return;
    };
    let mut lines = lines.into_iter();
    let first = lines.next().unwrap_or_default();
    ctx.num(RPL_HELPSTART, &[shown, &first]);
    for line in lines {
        ctx.num(RPL_HELPTXT, &[shown, &line]);
    }
    ctx.num(RPL_ENDOFHELP, &[shown, "End of /HELP"]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dispatched_command_has_help_and_unknown_has_none() {
        for name in ["PRIVMSG", "privmsg", "chanserv", "WHO"] {
            assert!(lines(Some(name)).is_some(), "{name}");
        }
        assert!(lines(Some("THISISNOTACOMMAND")).is_none());
        let index = lines(None).unwrap();
        assert!(index.iter().any(|l| l.contains("PRIVMSG")));
    }

    #[test]
    fn entries_are_sorted_and_unique() {
        let names: Vec<&str> = ENTRIES.iter().map(|(n, _, _)| *n).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(names, sorted);
    }
}
