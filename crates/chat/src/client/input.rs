//! What the user typed: plain text goes to the current channel, `/commands` do the rest.
//!
//! | input | effect |
//! |---|---|
//! | `text` | PRIVMSG to the current channel or query |
//! | `/join #c` | JOIN |
//! | `/part [#c] [reason]` | PART (the current channel by default) |
//! | `/msg nick text` | PRIVMSG to anyone |
//! | `/me text` | CTCP ACTION to the current target |
//! | `/nick new` | NICK |
//! | `/topic [text]` | TOPIC of the current channel |
//! | `/away [reason]`, `/back` | AWAY (marked away, or back) |
//! | `/notice target text` | NOTICE |
//! | `/mode [target] [±modes args]` | MODE (`/mode +o bob` in a channel: that channel) |
//! | `/kick nick [reason]` | KICK from the current channel |
//! | `/invite nick [#c]` | INVITE (to the current channel by default) |
//! | `/names`, `/who`, `/whois nick`, `/list` | the queries |
//! | `/quote LINE` (`/raw`) | a raw IRC line |
//! | `/quit [reason]` | QUIT |
//! | `/other args` | unknown: `--plain` sends `OTHER args` raw |
//! | `//text` | text starting with `/` |

use crate::irc::message::Message;
use crate::irc::names;

/// What one input line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Nothing (an empty line).
    Nothing,
    /// Messages to send, and the buffer to show them in if they are our own chat text
    /// (target, text, is_action).
    Send(Vec<Message>, Option<(String, String, bool)>),
    /// Switch to (or open) a buffer.
    Switch(String),
    /// Quit with this message.
    Quit(Option<String>),
    /// A mistake to show the user.
    Error(String),
    /// A `/command` not known here (command as typed, the rest of the line): the
    /// terminal UI says so, `--plain` sends it as a raw line (see [`raw`]).
    Unknown(String, String),
}

/// The raw line for an unknown `/command`: `/foo bar baz` → `FOO bar baz`.
///
/// # Errors
/// The result is not an IRC message (the command is not letters or three digits).
pub fn raw(cmd: &str, rest: &str) -> Result<Message, String> {
    let line = format!("{} {rest}", cmd.to_ascii_uppercase());
    Message::parse(line.trim_end().as_bytes()).map_err(|e| format!("/{cmd}: {e}"))
}

/// The CTCP ACTION form of `/me text`.
pub fn action(text: &str) -> String {
    format!("\x01ACTION {text}\x01")
}

/// Parses one input line; `current` is the active channel or query, if any.
pub fn parse(line: &str, current: Option<&str>) -> Input {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Input::Nothing;
    }
    let say = |target: Option<&str>, text: &str, is_action: bool| match target {
        None => Input::Error("no channel: /join #channel first".into()),
        Some(t) => {
            let body = if is_action {
                action(text)
            } else {
                text.to_owned()
            };
            Input::Send(
                vec![Message::new("PRIVMSG", vec![t.to_owned(), body])],
                Some((t.to_owned(), text.to_owned(), is_action)),
            )
        }
    };
    let Some(cmdline) = line.strip_prefix('/') else {
        return say(current, line, false);
    };
    if cmdline.starts_with('/') {
        return say(current, cmdline, false);
    }
    let (cmd, rest) = cmdline.split_once(' ').unwrap_or((cmdline, ""));
    let rest = rest.trim();
    let one = |c: &str, p: Vec<String>| Input::Send(vec![Message::new(c, p)], None);
    match cmd.to_ascii_lowercase().as_str() {
        "join" | "j" => {
            let Some(chan) = rest.split(' ').next().filter(|c| !c.is_empty()) else {
                return Input::Error("usage: /join #channel".into());
            };
            let chan = if names::is_channel(chan) {
                chan.to_owned()
            } else {
                format!("#{chan}")
            };
            one("JOIN", vec![chan])
        }
        "part" | "leave" => {
            let (chan, reason) = match rest.split_once(' ') {
                Some((c, r)) if names::is_channel(c) => (Some(c), Some(r)),
                None if names::is_channel(rest) => (Some(rest), None),
                _ => (
                    current.filter(|c| names::is_channel(c)),
                    Some(rest).filter(|r| !r.is_empty()),
                ),
            };
            let Some(chan) = chan else {
                return Input::Error("usage: /part [#channel] [reason]".into());
            };
            let mut p = vec![chan.to_owned()];
            p.extend(reason.map(str::to_owned));
            one("PART", p)
        }
        "msg" | "query" => match rest.split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => say(Some(to), text, false),
            _ if cmd.eq_ignore_ascii_case("query") && !rest.is_empty() => {
                Input::Switch(rest.to_owned())
            }
            _ => Input::Error("usage: /msg nick text".into()),
        },
        "me" => say(current, rest, true),
        "nick" => match rest {
            "" => Input::Error("usage: /nick newnick".into()),
            n => one("NICK", vec![n.to_owned()]),
        },
        "topic" => match current.filter(|c| names::is_channel(c)) {
            None => Input::Error("/topic works in a channel".into()),
            Some(c) if rest.is_empty() => one("TOPIC", vec![c.to_owned()]),
            Some(c) => one("TOPIC", vec![c.to_owned(), rest.to_owned()]),
        },
        "names" | "who" => match (rest, current) {
            ("", Some(c)) => one(&cmd.to_ascii_uppercase(), vec![c.to_owned()]),
            ("", None) => Input::Error(format!("usage: /{cmd} #channel")),
            (c, _) => one(&cmd.to_ascii_uppercase(), vec![c.to_owned()]),
        },
        "whois" => match rest.split(' ').next().filter(|n| !n.is_empty()) {
            Some(nick) => one("WHOIS", vec![nick.to_owned()]),
            None => Input::Error("usage: /whois nick".into()),
        },
        "away" => match rest {
            "" => one("AWAY", vec![]),
            reason => one("AWAY", vec![reason.to_owned()]),
        },
        "back" => one("AWAY", vec![]),
        "notice" => match rest.split_once(' ') {
            Some((to, text)) if !text.trim().is_empty() => {
                one("NOTICE", vec![to.to_owned(), text.to_owned()])
            }
            _ => Input::Error("usage: /notice target text".into()),
        },
        "mode" => {
            let words: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
            match (words.first(), current) {
                // `/mode +o bob` in a channel means that channel.
                (Some(w), Some(c)) if w.starts_with(['+', '-']) => {
                    let mut p = vec![c.to_owned()];
                    p.extend(words);
                    one("MODE", p)
                }
                (Some(_), _) => one("MODE", words),
                (None, Some(c)) => one("MODE", vec![c.to_owned()]),
                (None, None) => Input::Error("usage: /mode [target] [+-modes [args]]".into()),
            }
        }
        "kick" => match (
            current.filter(|c| names::is_channel(c)),
            rest.split_once(' '),
        ) {
            (None, _) => Input::Error("/kick works in a channel".into()),
            (Some(_), _) if rest.is_empty() => Input::Error("usage: /kick nick [reason]".into()),
            (Some(c), Some((nick, reason))) => one(
                "KICK",
                vec![c.to_owned(), nick.to_owned(), reason.to_owned()],
            ),
            (Some(c), None) => one("KICK", vec![c.to_owned(), rest.to_owned()]),
        },
        "invite" => match rest.split_once(' ') {
            Some((nick, chan)) => one("INVITE", vec![nick.to_owned(), chan.trim().to_owned()]),
            None if !rest.is_empty() => match current.filter(|c| names::is_channel(c)) {
                Some(c) => one("INVITE", vec![rest.to_owned(), c.to_owned()]),
                None => Input::Error("usage: /invite nick [#channel]".into()),
            },
            None => Input::Error("usage: /invite nick [#channel]".into()),
        },
        "list" => one("LIST", vec![]),
        "quote" | "raw" => match Message::parse(rest.as_bytes()) {
            Ok(m) => Input::Send(vec![m], None),
            Err(e) => Input::Error(format!("/quote: {e}")),
        },
        "quit" | "exit" => Input::Quit(Some(rest.to_owned()).filter(|r| !r.is_empty())),
        "window" | "win" | "go" => Input::Switch(rest.to_owned()),
        _ => Input::Unknown(cmd.to_owned(), rest.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sent(i: Input) -> Vec<String> {
        match i {
            Input::Send(m, _) => m.iter().map(ToString::to_string).collect(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn text_goes_to_current() {
        assert_eq!(
            sent(parse("hi there", Some("#c"))),
            vec!["PRIVMSG #c :hi there"]
        );
        assert!(matches!(parse("hi", None), Input::Error(_)));
        assert_eq!(parse("  ", Some("#c")), Input::Nothing);
        assert_eq!(
            sent(parse("//slash", Some("#c"))),
            vec!["PRIVMSG #c /slash"]
        );
    }

    #[test]
    fn commands() {
        assert_eq!(sent(parse("/join rust", None)), vec!["JOIN #rust"]);
        assert_eq!(sent(parse("/part", Some("#c"))), vec!["PART #c"]);
        assert_eq!(
            sent(parse("/part #d bye now", Some("#c"))),
            vec!["PART #d :bye now"]
        );
        assert_eq!(sent(parse("/part bye", Some("#c"))), vec!["PART #c bye"]);
        assert_eq!(
            sent(parse("/msg bob hello you", None)),
            vec!["PRIVMSG bob :hello you"]
        );
        assert_eq!(
            sent(parse("/me waves", Some("#c"))),
            vec!["PRIVMSG #c :\x01ACTION waves\x01"]
        );
        assert_eq!(sent(parse("/nick z", None)), vec!["NICK z"]);
        assert_eq!(
            sent(parse("/topic new topic", Some("#c"))),
            vec!["TOPIC #c :new topic"]
        );
        assert_eq!(sent(parse("/quote MODE #c b", None)), vec!["MODE #c b"]);
        assert_eq!(parse("/quit gone", None), Input::Quit(Some("gone".into())));
        assert_eq!(parse("/QUIT", None), Input::Quit(None));
        assert_eq!(parse("/query bob", None), Input::Switch("bob".into()));
        assert_eq!(
            parse("/frob a b", None),
            Input::Unknown("frob".into(), "a b".into())
        );
        assert_eq!(raw("frob", "a :b c").unwrap().to_string(), "FROB a :b c");
        assert_eq!(raw("frob", "").unwrap().to_string(), "FROB");
        assert!(raw("fr.b", "x").is_err());
        assert!(matches!(parse("/msg bob", None), Input::Error(_)));
    }

    #[test]
    fn away_notice_mode_kick_invite() {
        assert_eq!(sent(parse("/away lunch", None)), vec!["AWAY lunch"]);
        assert_eq!(sent(parse("/away", None)), vec!["AWAY"]);
        assert_eq!(sent(parse("/back", None)), vec!["AWAY"]);
        assert_eq!(
            sent(parse("/notice bob hi there", None)),
            vec!["NOTICE bob :hi there"]
        );
        assert_eq!(
            sent(parse("/mode +o bob", Some("#c"))),
            vec!["MODE #c +o bob"]
        );
        assert_eq!(sent(parse("/mode", Some("#c"))), vec!["MODE #c"]);
        assert_eq!(sent(parse("/mode me +i", None)), vec!["MODE me +i"]);
        assert_eq!(
            sent(parse("/kick bob be nice", Some("#c"))),
            vec!["KICK #c bob :be nice"]
        );
        assert_eq!(sent(parse("/kick bob", Some("#c"))), vec!["KICK #c bob"]);
        assert!(matches!(parse("/kick bob", None), Input::Error(_)));
        assert_eq!(
            sent(parse("/invite bob", Some("#c"))),
            vec!["INVITE bob #c"]
        );
        assert_eq!(sent(parse("/invite bob #d", None)), vec!["INVITE bob #d"]);
        assert_eq!(sent(parse("/whois bob", None)), vec!["WHOIS bob"]);
        assert!(matches!(parse("/whois", None), Input::Error(_)));
        assert_eq!(
            sent(parse("/quote PRIVMSG #c :raw line", None)),
            vec!["PRIVMSG #c :raw line"]
        );
        assert!(matches!(parse("/quote", None), Input::Error(_)));
    }
}
