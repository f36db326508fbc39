//! IRC messages: a total parser and a serializer that never exceeds the line limit.
//!
//! ```text
//! message = [ "@" tags SPACE ] [ ":" prefix SPACE ] command *( SPACE param ) [ SPACE ":" trailing ]
//! command = 1*letter / 3digit
//! ```
//!
//! The parser takes one line without its line ending (the [`line`](super::line) module
//! splits the byte stream) and never panics: invalid UTF-8 is replaced (U+FFFD), runs of
//! spaces separate parameters as ircds accept them, and anything that is not a message is
//! a typed [`ParseError`]. The serializer puts a `:` before the last parameter when it
//! needs one, replaces CR, LF and NUL (which would split or end the line) by spaces, and
//! truncates the last parameter at a character boundary so a line is at most
//! [`MAX_LINE`] bytes with its CRLF.

use std::fmt;

/// The longest line, CRLF included (RFC 1459 §2.3).
pub const MAX_LINE: usize = 512;

/// One IRC message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// IRCv3 message tags as received (without the `@`), if any; read them with
    /// [`Tags::parse`](crate::irc::tags::Tags::parse).
    pub tags: Option<String>,
    /// The source (`server` or `nick!user@host`), without the `:`.
    pub prefix: Option<String>,
    /// The command, upper-cased (`PRIVMSG`, `001`).
    pub command: String,
    /// The parameters; the last one may contain spaces.
    pub params: Vec<String>,
}

/// Why a line is not an IRC message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line is empty or only spaces (clients may send these; they are ignored).
    #[error("empty line")]
    Empty,
    /// Tags or a prefix with nothing after them.
    #[error("no command after the tags or prefix")]
    NoCommand,
    /// The command is neither three digits nor a word of ASCII letters, digits, `_`, `-`.
    #[error("invalid command `{0}`")]
    BadCommand(String),
}

impl Message {
    /// A message without tags or prefix.
    pub fn new(command: impl Into<String>, params: Vec<String>) -> Self {
        Self {
            tags: None,
            prefix: None,
            command: command.into(),
            params,
        }
    }

    /// The same message with a prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Parameter `i`, if present.
    pub fn param(&self, i: usize) -> Option<&str> {
        self.params.get(i).map(String::as_str)
    }

    /// The nick part of the prefix (`nick` of `nick!user@host`), if any.
    pub fn source_nick(&self) -> Option<&str> {
        let p = self.prefix.as_deref()?;
        Some(p.split(['!', '@']).next().unwrap_or(p))
    }

    /// Parses one line (without CR/LF). Total: every input gives a message or an error.
    ///
    /// # Errors
    /// [`ParseError`] when the line holds no command or an invalid one.
    pub fn parse(line: &[u8]) -> Result<Message, ParseError> {
        let text = String::from_utf8_lossy(line);
        let mut rest: &str = text.trim_end_matches(['\r', '\n']);
        rest = rest.trim_start_matches(' ');
        if rest.is_empty() {
            return Err(ParseError::Empty);
        }
        let mut tags = None;
        if let Some(t) = rest.strip_prefix('@') {
            let (t, r) = split_word(t);
            tags = Some(t.to_owned());
            rest = r;
        }
        let mut prefix = None;
        if let Some(p) = rest.strip_prefix(':') {
            let (p, r) = split_word(p);
            prefix = Some(p.to_owned());
            rest = r;
        }
        let (command, mut rest) = split_word(rest);
        if command.is_empty() {
            return Err(ParseError::NoCommand);
        }
        // Letters or three digits, as the grammar says; like Ergo and InspIRCd, words with
        // digits, `_` or `-` are taken too, so an unknown one is answered 421.
        let all_digits = command.bytes().all(|b| b.is_ascii_digit());
        let valid = if all_digits {
            command.len() == 3
        } else {
            command
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-'))
        };
        if !valid {
            return Err(ParseError::BadCommand(command.chars().take(32).collect()));
        }
        let mut params = Vec::new();
        while !rest.is_empty() {
            if let Some(trailing) = rest.strip_prefix(':') {
                params.push(trailing.to_owned());
                break;
            }
            let (p, r) = split_word(rest);
            params.push(p.to_owned());
            rest = r;
        }
        Ok(Message {
            tags,
            prefix,
            command: command.to_ascii_uppercase(),
            params,
        })
    }

    /// The wire form with CRLF, at most [`MAX_LINE`] bytes.
    pub fn to_line(&self) -> Vec<u8> {
        let mut out = String::with_capacity(64);
        if let Some(t) = &self.tags {
            out.push('@');
            push_word(&mut out, t);
            out.push(' ');
        }
        if let Some(p) = &self.prefix {
            out.push(':');
            push_word(&mut out, p);
            out.push(' ');
        }
        push_word(&mut out, &self.command);
        let n = self.params.len();
        for (i, p) in self.params.iter().enumerate() {
            out.push(' ');
            let last = i + 1 == n;
            if last {
                let needs_colon =
                    p.is_empty() || p.starts_with(':') || p.contains([' ', '\r', '\n', '\0']);
                if needs_colon {
                    out.push(':');
                }
                push_clean(&mut out, p);
            } else {
                // A middle parameter cannot hold a space or start with ':'.
                if p.is_empty() || p.starts_with(':') {
                    out.push('*');
                }
                push_word(&mut out, p);
            }
        }
        let limit = MAX_LINE - 2;
        if out.len() > limit {
            let mut cut = limit;
            while !out.is_char_boundary(cut) {
                cut -= 1;
            }
            out.truncate(cut);
        }
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(b"\r\n");
        bytes
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let line = self.to_line();
        f.write_str(String::from_utf8_lossy(&line[..line.len() - 2]).as_ref())
    }
}

/// Splits off the first space-delimited word and skips the spaces after it.
fn split_word(s: &str) -> (&str, &str) {
    match s.find(' ') {
        Some(i) => (&s[..i], s[i..].trim_start_matches(' ')),
        None => (s, ""),
    }
}

/// Appends `s` with characters that would break the line replaced by spaces.
fn push_clean(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| match c {
        '\r' | '\n' | '\0' => ' ',
        c => c,
    }));
}

/// Appends `s` as one word: spaces and line breakers become `_`.
fn push_word(out: &mut String, s: &str) {
    out.extend(s.chars().map(|c| match c {
        ' ' | '\r' | '\n' | '\0' => '_',
        c => c,
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Message {
        Message::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn simple() {
        let m = p("NICK alice");
        assert_eq!(m.command, "NICK");
        assert_eq!(m.params, vec!["alice"]);
        assert_eq!(m.prefix, None);
    }

    #[test]
    fn prefix_and_trailing() {
        let m = p(":a!b@c PRIVMSG #x :hello there :)");
        assert_eq!(m.prefix.as_deref(), Some("a!b@c"));
        assert_eq!(m.source_nick(), Some("a"));
        assert_eq!(m.params, vec!["#x", "hello there :)"]);
    }

    #[test]
    fn lowercase_command_and_extra_spaces() {
        let m = p("  privmsg   #x    hi  ");
        assert_eq!(m.command, "PRIVMSG");
        assert_eq!(m.params, vec!["#x", "hi"]);
    }

    #[test]
    fn empty_trailing() {
        let m = p("JOIN :");
        assert_eq!(m.params, vec![""]);
        assert_eq!(m.to_line(), b"JOIN :\r\n");
    }

    #[test]
    fn tags_kept() {
        let m = p("@time=x;a=b :srv NOTICE * :hi");
        assert_eq!(m.tags.as_deref(), Some("time=x;a=b"));
        assert_eq!(m.command, "NOTICE");
    }

    #[test]
    fn errors() {
        assert_eq!(Message::parse(b""), Err(ParseError::Empty));
        assert_eq!(Message::parse(b"   \r"), Err(ParseError::Empty));
        assert_eq!(Message::parse(b":prefix"), Err(ParseError::NoCommand));
        assert_eq!(Message::parse(b"@tags"), Err(ParseError::NoCommand));
        assert!(matches!(
            Message::parse(b"PRIV.MSG x"),
            Err(ParseError::BadCommand(_))
        ));
        assert!(matches!(
            Message::parse("PRIVMSG\u{e9} x".as_bytes()),
            Err(ParseError::BadCommand(_))
        ));
        assert_eq!(
            Message::parse(b"NONEXISTENT_COMMAND x").unwrap().command,
            "NONEXISTENT_COMMAND"
        );
        assert!(matches!(
            Message::parse(b"1234"),
            Err(ParseError::BadCommand(_))
        ));
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let m = Message::parse(b"PRIVMSG #x :caf\xe9").unwrap();
        assert_eq!(m.params[1], "caf\u{fffd}");
    }

    #[test]
    fn serialize_needs_colon() {
        let m = Message::new("PRIVMSG", vec!["#x".into(), ":)".into()]);
        assert_eq!(m.to_line(), b"PRIVMSG #x ::)\r\n");
        let m = Message::new("PONG", vec!["srv".into(), "tok".into()]).with_prefix("srv");
        assert_eq!(m.to_line(), b":srv PONG srv tok\r\n");
    }

    #[test]
    fn serialize_strips_line_breaks() {
        let m = Message::new("PRIVMSG", vec!["#x".into(), "a\r\nQUIT".into()]);
        assert_eq!(m.to_line(), b"PRIVMSG #x :a  QUIT\r\n");
    }

    #[test]
    fn serialize_truncates_at_char_boundary() {
        let m = Message::new("PRIVMSG", vec!["#x".into(), "é".repeat(600)]);
        let line = m.to_line();
        assert!(line.len() <= MAX_LINE);
        assert!(line.ends_with(b"\r\n"));
        assert!(std::str::from_utf8(&line).is_ok());
    }

    fn word() -> impl Strategy<Value = String> {
        "[A-Za-z0-9#&!@._\\[\\]{}|^-][A-Za-z0-9#&!@:._\\[\\]{}|^-]{0,15}"
    }

    proptest! {
        #[test]
        fn parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            if let Ok(m) = Message::parse(&bytes) {
                let line = m.to_line();
                prop_assert!(line.len() <= MAX_LINE);
                prop_assert!(line.ends_with(b"\r\n"));
                prop_assert!(!line[..line.len() - 2].iter().any(|&b| b == b'\r' || b == b'\n' || b == 0));
            }
        }

        #[test]
        fn round_trip(
            prefix in proptest::option::of(word()),
            command in "[A-Z]{1,10}|[0-9]{3}",
            middle in proptest::collection::vec(word(), 0..5),
            trailing in proptest::option::of("[^\r\n\0]{0,80}"),
        ) {
            let mut params = middle;
            if let Some(t) = trailing { params.push(t); }
            let m = Message { tags: None, prefix, command, params };
            let line = m.to_line();
            let parsed = Message::parse(&line[..line.len() - 2]).unwrap();
            prop_assert_eq!(parsed, m);
        }
    }
}
