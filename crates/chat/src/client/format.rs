//! Turning server messages into what the user sees, shared by both front ends.

use crate::irc::message::Message;
use crate::irc::names;

/// The kind of a shown line (front ends style each differently).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Someone said something.
    Chat,
    /// `/me` — a CTCP ACTION.
    Action,
    /// A NOTICE.
    Notice,
    /// Joins, parts, quits, nick changes, kicks, topics, modes.
    Event,
    /// An error numeric or ERROR.
    Error,
    /// Server information (welcome, MOTD, ...).
    Info,
    /// Someone went away or came back (`away-notify`): a dim status line.
    Presence,
    /// A reply to a command of ours, formatted (a WHOIS block, a topic, ...).
    Reply,
}

/// One line to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// The buffer it belongs to: a channel, a query nick, or `None` for the status/active
    /// buffer.
    pub buffer: Option<String>,
    /// Who said it (chat, action, notice).
    pub nick: Option<String>,
    /// The text.
    pub text: String,
    /// How to style it.
    pub kind: Kind,
}

fn shown(buffer: Option<&str>, nick: Option<&str>, text: String, kind: Kind) -> Option<Shown> {
    Some(Shown {
        buffer: buffer.map(str::to_owned),
        nick: nick.map(str::to_owned),
        text,
        kind,
    })
}

/// Removes IRC formatting codes we do not render (bold, colour, ...), keeping the text.
fn strip_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x03' => {
                // Colour: up to two digits, optionally ",NN".
                for _ in 0..2 {
                    if chars.peek().is_some_and(char::is_ascii_digit) {
                        chars.next();
                    }
                }
                if chars.peek() == Some(&',') {
                    chars.next();
                    for _ in 0..2 {
                        if chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                        }
                    }
                }
            }
            c if (c as u32) < 0x20 => {}
            c => out.push(c),
        }
    }
    out
}

/// What to show for `m`, given our nick `me`; `None` for messages shown as nothing
/// (ends of lists, CTCP requests other than ACTION, ...).
pub fn describe(m: &Message, me: &str) -> Option<Shown> {
    let from = m.source_nick().unwrap_or("");
    let from_server = m.prefix.as_deref().is_some_and(|p| !p.contains('!'));
    let p = |i: usize| m.param(i).unwrap_or("");
    let last = m.params.last().map(String::as_str).unwrap_or("");
    match m.command.as_str() {
        "PRIVMSG" | "NOTICE" => {
            let target = p(0);
            let buffer = if names::is_channel(target) {
                Some(target)
            } else if names::eq(from, me) {
                // Our own line coming back (echo-message): the query it went to.
                Some(target)
            } else if from_server || m.prefix.is_none() {
                None
            } else {
                Some(from)
            };
            let text = p(1);
            if let Some(ctcp) = text.strip_prefix('\x01') {
                let ctcp = ctcp.trim_end_matches('\x01');
                let action = ctcp.strip_prefix("ACTION ")?;
                return shown(buffer, Some(from), strip_controls(action), Kind::Action);
            }
            let kind = if m.command == "NOTICE" {
                Kind::Notice
            } else {
                Kind::Chat
            };
            shown(buffer, Some(from), strip_controls(text), kind)
        }
        "JOIN" => shown(
            Some(p(0)),
            None,
            format!("{from} has joined {}", p(0)),
            Kind::Event,
        ),
        "PART" => {
            let reason = m.param(1).map(|r| format!(" ({r})")).unwrap_or_default();
            shown(
                Some(p(0)),
                None,
                format!("{from} has left {}{reason}", p(0)),
                Kind::Event,
            )
        }
        "QUIT" => shown(
            None,
            None,
            format!("{from} has quit ({})", p(0)),
            Kind::Event,
        ),
        "NICK" => {
            let text = if names::eq(from, me) || names::eq(p(0), me) {
                format!("you are now known as {}", p(0))
            } else {
                format!("{from} is now known as {}", p(0))
            };
            shown(None, None, text, Kind::Event)
        }
        "KICK" => shown(
            Some(p(0)),
            None,
            format!("{} was kicked from {} by {from} ({})", p(1), p(0), p(2)),
            Kind::Event,
        ),
        "TOPIC" => shown(
            Some(p(0)),
            None,
            format!(
                "{from} changed the topic of {} to: {}",
                p(0),
                strip_controls(p(1))
            ),
            Kind::Event,
        ),
        "MODE" => shown(
            names::is_channel(p(0)).then(|| p(0)),
            None,
            format!("mode {} [{}] by {from}", p(0), m.params[1..].join(" ")),
            Kind::Event,
        ),
        "332" => shown(
            Some(p(1)),
            None,
            format!("Topic for {}: {}", p(1), strip_controls(p(2))),
            Kind::Event,
        ),
        "353" => shown(
            Some(p(2)),
            None,
            format!("Users on {}: {}", p(2), p(3)),
            Kind::Event,
        ),
        "AWAY" if !from.is_empty() => {
            let text = match m.param(0).filter(|t| !t.is_empty()) {
                Some(t) => format!("{from} is away: {}", strip_controls(t)),
                None => format!("{from} is back"),
            };
            shown(None, None, text, Kind::Presence)
        }
        "ERROR" => shown(
            None,
            None,
            format!("server closed the link: {}", p(0)),
            Kind::Event,
        ),
        "PONG" | "CAP" | "315" | "318" | "321" | "323" | "329" | "333" | "366" | "368" | "347"
        | "349" | "376" | "375" => None,
        c if c.len() == 3 && (c.starts_with('4') || c.starts_with('5')) => {
            // What the error is about: the parameters between our nick and the text.
            let subject = match m.params.get(1..m.params.len().saturating_sub(1)) {
                Some(about) if !about.is_empty() => format!("{}: ", about.join(" ")),
                _ => String::new(),
            };
            shown(None, None, format!("{subject}{last} ({c})"), Kind::Error)
        }
        c if c.len() == 3 && c.bytes().all(|b| b.is_ascii_digit()) => {
            let text = if m.params.len() > 2 {
                m.params[1..].join(" ")
            } else {
                last.to_owned()
            };
            shown(None, None, strip_controls(&text), Kind::Info)
        }
        _ => None,
    }
}

/// One line for `--plain` output: `<nick> text` in the current channel, `[#c] <nick>
/// text` elsewhere, `*nick* text` for private messages, `* nick action`, `-nick- notice`,
/// `-!- event`. `None` for information lines (plain mode stays quiet).
pub fn plain_line(s: &Shown, current: Option<&str>) -> Option<String> {
    let here = match (&s.buffer, current) {
        (Some(b), Some(c)) => names::eq(b, c),
        (None, _) => true,
        _ => false,
    };
    let tag = match &s.buffer {
        Some(b) if !here && names::is_channel(b) => format!("[{b}] "),
        _ => String::new(),
    };
    let nick = s.nick.as_deref().unwrap_or("");
    let private = s.buffer.as_deref().is_some_and(|b| !names::is_channel(b));
    Some(match s.kind {
        Kind::Chat if private => format!("*{nick}* {}", s.text),
        Kind::Chat => format!("{tag}<{nick}> {}", s.text),
        Kind::Action => format!("{tag}* {nick} {}", s.text),
        Kind::Notice if nick.is_empty() => format!("-!- {}", s.text),
        Kind::Notice => format!("{tag}-{nick}- {}", s.text),
        Kind::Event | Kind::Presence | Kind::Reply => format!("{tag}-!- {}", s.text),
        Kind::Error => format!("-!- error: {}", s.text),
        Kind::Info => return None,
    })
}

/// A `--plain` line for a reply [`describe`] shows as information or as nothing, for
/// replies to commands the user typed: `-!- text` (numerics without our nick, other
/// commands as `COMMAND params`). `None` for protocol plumbing (CAP, BATCH,
/// AUTHENTICATE) and for CTCP requests.
pub fn plain_reply(m: &Message, me: &str) -> Option<String> {
    match m.command.as_str() {
        "CAP" | "BATCH" | "AUTHENTICATE" | "PRIVMSG" | "NOTICE" | "PING" => return None,
        _ => {}
    }
    if let Some(s) = describe(m, me) {
        return (s.kind == Kind::Info).then(|| format!("-!- {}", s.text));
    }
    let numeric = m.command.len() == 3 && m.command.bytes().all(|b| b.is_ascii_digit());
    let text = if numeric {
        m.params.get(1..).unwrap_or_default().join(" ")
    } else {
        let mut words = vec![m.command.clone()];
        words.extend(m.params.iter().cloned());
        words.join(" ")
    };
    Some(format!("-!- {}", strip_controls(&text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(line: &str) -> Shown {
        describe(&Message::parse(line.as_bytes()).unwrap(), "me").unwrap()
    }

    #[test]
    fn chat_lines() {
        let s = d(":alice!a@h PRIVMSG #c :hello \x02there\x02");
        assert_eq!(s.buffer.as_deref(), Some("#c"));
        assert_eq!(plain_line(&s, Some("#c")).unwrap(), "<alice> hello there");
        assert_eq!(
            plain_line(&s, Some("#d")).unwrap(),
            "[#c] <alice> hello there"
        );
        let s = d(":alice!a@h PRIVMSG me :psst");
        assert_eq!(s.buffer.as_deref(), Some("alice"));
        assert_eq!(plain_line(&s, Some("#c")).unwrap(), "*alice* psst");
        let s = d(":alice!a@h PRIVMSG #c :\x01ACTION waves\x01");
        assert_eq!(plain_line(&s, Some("#c")).unwrap(), "* alice waves");
        assert!(describe(
            &Message::parse(b":a!a@h PRIVMSG me :\x01VERSION\x01").unwrap(),
            "me"
        )
        .is_none());
    }

    #[test]
    fn events_and_errors() {
        assert_eq!(
            plain_line(&d(":bob!b@h JOIN #c"), Some("#c")).unwrap(),
            "-!- bob has joined #c"
        );
        assert_eq!(
            plain_line(&d(":srv 401 me ghost :No such nick/channel"), None).unwrap(),
            "-!- error: ghost: No such nick/channel (401)"
        );
        assert_eq!(
            d(":srv 443 me bob #c :is already on channel").text,
            "bob #c: is already on channel (443)"
        );
        assert_eq!(plain_line(&d(":srv 001 me :Welcome"), None), None);
        assert_eq!(d(":bob!b@h NICK me").text, "you are now known as me");
        assert_eq!(
            plain_line(&d(":bob!b@h AWAY :out to \x02lunch"), None).unwrap(),
            "-!- bob is away: out to lunch"
        );
        let back = d(":bob!b@h AWAY");
        assert_eq!(
            (back.text.as_str(), back.kind),
            ("bob is back", Kind::Presence)
        );
    }

    #[test]
    fn our_echoed_private_lines_belong_to_the_query() {
        assert_eq!(d(":me!u@h PRIVMSG bob :hi").buffer.as_deref(), Some("bob"));
    }

    #[test]
    fn replies_for_plain_mode() {
        let r = |l: &str| plain_reply(&Message::parse(l.as_bytes()).unwrap(), "me");
        assert_eq!(
            r(":srv 311 me bob b h * :Bob").as_deref(),
            Some("-!- bob b h * Bob")
        );
        assert_eq!(
            r(":srv 318 me bob :End of /WHOIS list").as_deref(),
            Some("-!- bob End of /WHOIS list")
        );
        assert_eq!(r(":srv PONG srv :x").as_deref(), Some("-!- PONG srv x"));
        assert_eq!(
            r(":srv FAIL CHATHISTORY INVALID_TARGET #x :no").as_deref(),
            Some("-!- FAIL CHATHISTORY INVALID_TARGET #x no")
        );
        assert_eq!(r(":srv CAP me ACK :batch"), None);
        assert_eq!(r(":bob!b@h PRIVMSG #c :hi"), None, "shown by plain_line");
        assert_eq!(r(":bob!b@h JOIN #c"), None, "shown by plain_line");
    }
}
