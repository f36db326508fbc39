//! IRCv3 message tags: parsing, escaping and the size limits (ircv3.net `message-tags`).
//!
//! ```text
//! tags = tag *( ";" tag )
//! tag  = key [ "=" escaped-value ]
//! key  = [ "+" ] [ vendor "/" ] 1*( letter / digit / "-" )
//! ```
//!
//! [`Tags::parse`] is total: it takes any text (the part of a line between `@` and the
//! first space) and keeps the well-formed tags, the last occurrence of a key winning, a
//! key with an empty value being the same as one without. [`Tags::to_wire`] escapes the
//! values (`;` `\:`, space `\s`, `\` `\\`, CR `\r`, LF `\n`), so
//! `parse(to_wire(tags)) == tags` for every set of well-formed keys and any values.

/// Most bytes of tag data a client may send (between `@` and the space).
pub const MAX_CLIENT_TAG_DATA: usize = 4094;

/// Most bytes of tag data the server adds to a message.
pub const MAX_SERVER_TAG_DATA: usize = 510;

/// The whole tag section of a line, `@` and the trailing space included
/// (`@` + 510 + `;` + 4094 + space).
pub const MAX_TAG_SECTION: usize = 1 + MAX_SERVER_TAG_DATA + 1 + MAX_CLIENT_TAG_DATA + 1;

/// A set of message tags, in the order they were added; keys are unique.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tags(Vec<(String, String)>);

/// Whether `key` is a well-formed tag key.
pub fn valid_key(key: &str) -> bool {
    let body = key.strip_prefix('+').unwrap_or(key);
    let (vendor, name) = match body.rsplit_once('/') {
        Some((v, n)) => (Some(v), n),
        None => (None, body),
    };
    let name_ok = !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let vendor_ok = vendor.is_none_or(|v| {
        !v.is_empty()
            && v.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'))
    });
    name_ok && vendor_ok
}

/// Escapes a tag value for the wire.
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            // NUL can never be on the wire; it has no escape, so it is dropped.
            '\0' => {}
            c => out.push(c),
        }
    }
    out
}

/// Unescapes a tag value from the wire (a lone trailing `\` is dropped, `\x` for any
/// other `x` is `x`).
pub fn unescape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

impl Tags {
    /// No tags.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses tag data (without the `@`). Total: malformed tags are skipped.
    pub fn parse(data: &str) -> Self {
        let mut tags = Tags::new();
        for tag in data.split(';') {
            let (key, value) = match tag.split_once('=') {
                Some((k, v)) => (k, unescape(v)),
                None => (tag, String::new()),
            };
            if valid_key(key) {
                tags.insert(key, value);
            }
        }
        tags
    }

    /// Sets `key` to `value` (an empty value is a tag without a value); a key already
    /// present moves to the end with the new value. Ill-formed keys are ignored.
    pub fn insert(&mut self, key: &str, value: impl Into<String>) {
        if !valid_key(key) {
            return;
        }
        self.0.retain(|(k, _)| k != key);
        let value: String = value.into();
        self.0.push((key.to_owned(), value.replace('\0', "")));
    }

    /// The value of `key` (`Some("")` for a tag without a value).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether there are no tags.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The tags as `(key, unescaped value)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Only the client-only tags (keys starting with `+`), which the server relays.
    pub fn client_only(&self) -> Tags {
        Tags(
            self.0
                .iter()
                .filter(|(k, _)| k.starts_with('+'))
                .cloned()
                .collect(),
        )
    }

    /// The wire form (without `@`): `key=escaped;key2`.
    pub fn to_wire(&self) -> String {
        let mut out = String::new();
        for (k, v) in &self.0 {
            if !out.is_empty() {
                out.push(';');
            }
            out.push_str(k);
            if !v.is_empty() {
                out.push('=');
                out.push_str(&escape(v));
            }
        }
        out
    }
}

/// How a received line fails the size limits, if it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Oversize {
    /// More than [`MAX_CLIENT_TAG_DATA`] bytes of tag data.
    Tags,
    /// More than 510 bytes (512 with CRLF) after the tags.
    Rest,
}

/// Checks a received line (without CR/LF) against the limits: tag data at most
/// [`MAX_CLIENT_TAG_DATA`] bytes, the rest at most `max_rest` bytes.
pub fn check_size(line: &[u8], max_rest: usize) -> Result<(), Oversize> {
    let start = line.iter().position(|&b| b != b' ').unwrap_or(line.len());
    let line = &line[start..];
    let rest = if line.first() == Some(&b'@') {
        let end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
        if end - 1 > MAX_CLIENT_TAG_DATA {
            return Err(Oversize::Tags);
        }
        let after = &line[end..];
        let skip = after.iter().position(|&b| b != b' ').unwrap_or(after.len());
        &after[skip..]
    } else {
        line
    };
    if rest.len() > max_rest {
        Err(Oversize::Rest)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spec_examples() {
        let t = Tags::parse("aaa=bbb;ccc;example.com/ddd=eee");
        assert_eq!(t.get("aaa"), Some("bbb"));
        assert_eq!(t.get("ccc"), Some(""));
        assert_eq!(t.get("example.com/ddd"), Some("eee"));
        let t = Tags::parse("+example=raw+:=,escaped\\:\\s\\\\");
        assert_eq!(t.get("+example"), Some("raw+:=,escaped; \\"));
        assert_eq!(t.to_wire(), "+example=raw+:=,escaped\\:\\s\\\\");
    }

    #[test]
    fn odd_input() {
        assert_eq!(unescape("test\\"), "test");
        assert_eq!(unescape("a\\bc"), "abc");
        let t = Tags::parse("a=1;a=2;;=x;b c;+;/x;v/=1;ok=");
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![("a", "2"), ("ok", "")]);
        assert!(Tags::parse("").is_empty());
    }

    #[test]
    fn client_only_and_insert() {
        let mut t = Tags::parse("+a=1;time=x;+b");
        assert_eq!(t.client_only().to_wire(), "+a=1;+b");
        t.insert("bad key", "v");
        t.insert("msgid", "m\0id");
        assert_eq!(t.get("msgid"), Some("mid"));
        assert_eq!(t.get("bad key"), None);
    }

    #[test]
    fn sizes() {
        let tags = format!("@{} PRIVMSG #a :x", "a".repeat(MAX_CLIENT_TAG_DATA));
        assert_eq!(check_size(tags.as_bytes(), 510), Ok(()));
        let tags = format!("@{} PRIVMSG #a :x", "a".repeat(MAX_CLIENT_TAG_DATA + 1));
        assert_eq!(check_size(tags.as_bytes(), 510), Err(Oversize::Tags));
        let long = format!("@a=1 PRIVMSG #a :{}", "x".repeat(500));
        assert_eq!(check_size(long.as_bytes(), 510), Err(Oversize::Rest));
        assert_eq!(check_size(b"", 510), Ok(()));
        assert_eq!(check_size(b"@", 510), Ok(()));
    }

    fn key() -> impl Strategy<Value = String> {
        "\\+?([a-z0-9.-]{1,10}/)?[A-Za-z0-9-]{1,12}"
    }

    proptest! {
        #[test]
        fn round_trip(pairs in proptest::collection::vec((key(), "\\PC{0,20}|[; \\\\\r\n=]{0,8}"), 0..8)) {
            let mut tags = Tags::new();
            for (k, v) in &pairs {
                tags.insert(k, v.as_str());
            }
            prop_assert_eq!(Tags::parse(&tags.to_wire()), tags.clone());
            let wire = tags.to_wire();
            prop_assert!(!wire.contains([' ', '\r', '\n', '\0']));
        }

        #[test]
        fn parse_is_total(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let text = String::from_utf8_lossy(&bytes);
            let tags = Tags::parse(&text);
            prop_assert_eq!(Tags::parse(&tags.to_wire()), tags);
            let _ = check_size(&bytes, 510);
        }
    }
}
