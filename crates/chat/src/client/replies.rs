//! Replies to the user's commands as readable lines for the terminal UI, not raw
//! numerics: the WHOIS block (as irssi shows it), WHOWAS, the topic (`/topic`), channel
//! modes, invitations, WHO rows and the away message of someone we wrote to.
//!
//! ```text
//! bob [~bob@host]
//!  ircname  : Bob
//!  channels : @#room
//!  server   : irc.test [sockit IRC server]
//!  account  : bob
//!  away     : lunch
//!  idle     : 2 mins 5 secs [signon: 2026-12-02 07:30:00]
//! End of WHOIS
//! ```
//!
//! Pure: [`Replies::on_message`] is given the time zone that times are shown in.

use chrono::TimeZone;

use crate::irc::message::Message;

/// Where a reply line goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The buffer the user is looking at (where the command was typed).
    Active,
    /// A channel's buffer (the active one when that channel has none).
    Channel(String),
    /// The query with a nick (the active buffer when none is open).
    Query(String),
}

/// Formatted lines of one reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Where they go.
    pub place: Place,
    /// The lines, in order.
    pub lines: Vec<String>,
}

/// The reply formatter: remembers the WHOIS block in progress (its `301` is a line of
/// the block, otherwise an answer to a private message).
#[derive(Debug, Clone, Default)]
pub struct Replies {
    whois: Option<String>,
}

/// `5 secs`, `1 min 5 secs`, `2 hours 0 mins 7 secs`, `3 days 1 hour 0 mins 0 secs`:
/// the units from the largest non-zero one down.
pub fn duration_words(secs: u64) -> String {
    let units = [
        (secs / 86_400, "day"),
        (secs / 3600 % 24, "hour"),
        (secs / 60 % 60, "min"),
        (secs % 60, "sec"),
    ];
    let first = units.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    units[first..]
        .iter()
        .map(|(n, unit)| {
            let s = if *n == 1 { "" } else { "s" };
            format!("{n} {unit}{s}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Unix seconds (as the server wrote them) as `YYYY-MM-DD HH:MM:SS` in `tz`; the text
/// as given when it is not a time.
fn when<Tz: TimeZone>(unix: &str, tz: &Tz) -> String
where
    Tz::Offset: std::fmt::Display,
{
    unix.parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map_or_else(
            || unix.to_owned(),
            |t| t.with_timezone(tz).format("%Y-%m-%d %H:%M:%S").to_string(),
        )
}

/// One labelled line of the WHOIS block: ` label    : text`.
fn field(label: &str, text: &str) -> String {
    format!(" {label:<8} : {text}")
}

impl Replies {
    /// No WHOIS in progress.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lines for `m` when it is a reply formatted here; `None` for the rest (shown
    /// as before, or not at all). Times are shown in `tz`.
    pub fn on_message<Tz: TimeZone>(&mut self, m: &Message, tz: &Tz) -> Option<Reply>
    where
        Tz::Offset: std::fmt::Display,
    {
        let p = |i: usize| m.param(i).unwrap_or("");
        let active = |lines: Vec<String>| {
            Some(Reply {
                place: Place::Active,
                lines,
            })
        };
        let channel = |c: &str, line: String| {
            Some(Reply {
                place: Place::Channel(c.to_owned()),
                lines: vec![line],
            })
        };
        match m.command.as_str() {
            // WHOIS: me nick user host * :realname
            "311" => {
                self.whois = Some(p(1).to_owned());
                active(vec![
                    format!("{} [{}@{}]", p(1), p(2), p(3)),
                    field("ircname", p(5)),
                ])
            }
            // WHOWAS: the same fields, of someone gone.
            "314" => active(vec![
                format!("{} was [{}@{}]", p(1), p(2), p(3)),
                field("ircname", p(5)),
            ]),
            "319" => active(vec![field("channels", p(2).trim_end())]),
            "312" => active(vec![field("server", &format!("{} [{}]", p(2), p(3)))]),
            "313" => active(vec![field("operator", p(2))]),
            "335" => active(vec![field("bot", p(2))]),
            "330" => active(vec![field("account", p(2))]),
            "671" => active(vec![field("secure", p(2))]),
            "276" => active(vec![field("certfp", p(2))]),
            "338" | "378" => active(vec![field("host", &m.params[2..].join(" "))]),
            "320" => active(vec![field("info", p(2))]),
            // WHOIS idle: me nick seconds signon :text
            "317" => {
                let idle = p(2)
                    .parse::<u64>()
                    .map_or_else(|_| p(2).to_owned(), duration_words);
                active(vec![field(
                    "idle",
                    &format!("{idle} [signon: {}]", when(p(3), tz)),
                )])
            }
            "301" if self.whois.as_deref() == Some(p(1)) => active(vec![field("away", p(2))]),
            "301" => Some(Reply {
                place: Place::Query(p(1).to_owned()),
                lines: vec![format!("{} is away: {}", p(1), p(2))],
            }),
            "318" => {
                self.whois = None;
                active(vec!["End of WHOIS".into()])
            }
            "369" => active(vec!["End of WHOWAS".into()]),
            // TOPIC: 331 no topic, 333 who set it and when.
            "331" => channel(p(1), format!("No topic set for {}", p(1))),
            "333" => {
                let who = p(2).split('!').next().unwrap_or("");
                channel(p(1), format!("Topic set by {who} [{}]", when(p(3), tz)))
            }
            "324" => channel(
                p(1),
                format!("Modes of {}: {}", p(1), m.params[2..].join(" ")),
            ),
            "329" => channel(p(1), format!("Channel {} created {}", p(1), when(p(2), tz))),
            "341" => active(vec![format!("Inviting {} to {}", p(1), p(2))]),
            "221" => active(vec![format!("Your user mode is {}", p(1))]),
            // WHO: me channel user host server nick flags :hops realname
            "352" => {
                let realname = p(7).split_once(' ').map_or("", |(_, r)| r);
                active(vec![format!(
                    "{} {} {} {}@{} ({realname})",
                    p(1),
                    p(5),
                    p(6),
                    p(2),
                    p(3)
                )])
            }
            "315" => active(vec![format!("End of WHO for {}", p(1))]),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(r: &mut Replies, s: &str) -> Vec<String> {
        r.on_message(&Message::parse(s.as_bytes()).unwrap(), &chrono::Utc)
            .map(|r| r.lines)
            .unwrap_or_default()
    }

    #[test]
    fn a_whois_block_reads_as_irssi_shows_it() {
        let mut r = Replies::new();
        let block: Vec<String> = [
            ":srv 311 me bob ~bob 127.0.0.1 * :Bob Builder",
            ":srv 319 me bob :@#room #other ",
            ":srv 312 me bob irc.test :sockit IRC server",
            ":srv 313 me bob :is an IRC operator",
            ":srv 330 me bob bobacct :is logged in as",
            ":srv 301 me bob :lunch",
            ":srv 317 me bob 3725 1764660600 :seconds idle, signon time",
            ":srv 318 me bob :End of /WHOIS list",
        ]
        .iter()
        .flat_map(|l| lines(&mut r, l))
        .collect();
        assert_eq!(
            block,
            [
                "bob [~bob@127.0.0.1]",
                " ircname  : Bob Builder",
                " channels : @#room #other",
                " server   : irc.test [sockit IRC server]",
                " operator : is an IRC operator",
                " account  : bobacct",
                " away     : lunch",
                " idle     : 1 hour 2 mins 5 secs [signon: 2025-12-02 07:30:00]",
                "End of WHOIS",
            ]
        );
        // After the block a 301 answers a private message: it goes to that query.
        let m = Message::parse(b":srv 301 me bob :lunch").unwrap();
        let reply = r.on_message(&m, &chrono::Utc).unwrap();
        assert_eq!(reply.place, Place::Query("bob".into()));
        assert_eq!(reply.lines, ["bob is away: lunch"]);
    }

    #[test]
    fn topic_modes_and_the_rest() {
        let mut r = Replies::new();
        let m = Message::parse(b":srv 333 me #c bob!b@h 1764660600").unwrap();
        let reply = r.on_message(&m, &chrono::Utc).unwrap();
        assert_eq!(reply.place, Place::Channel("#c".into()));
        assert_eq!(reply.lines, ["Topic set by bob [2025-12-02 07:30:00]"]);
        assert_eq!(
            lines(&mut r, ":srv 331 me #c :No topic is set"),
            ["No topic set for #c"]
        );
        assert_eq!(lines(&mut r, ":srv 324 me #c +nt"), ["Modes of #c: +nt"]);
        assert_eq!(lines(&mut r, ":srv 341 me bob #c"), ["Inviting bob to #c"]);
        assert_eq!(
            lines(&mut r, ":srv 352 me #c ~u h srv carol G@ :0 Carol C"),
            ["#c carol G@ ~u@h (Carol C)"]
        );
        assert!(lines(&mut r, ":srv 001 me :Welcome").is_empty());
        // A signon that is not a number is shown as given.
        assert_eq!(
            lines(&mut r, ":srv 317 me bob x y :idle"),
            [" idle     : x [signon: y]"]
        );
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(duration_words(0), "0 secs");
        assert_eq!(duration_words(1), "1 sec");
        assert_eq!(duration_words(65), "1 min 5 secs");
        assert_eq!(duration_words(7200), "2 hours 0 mins 0 secs");
        assert_eq!(duration_words(90_061), "1 day 1 hour 1 min 1 sec");
    }
}
