//! Nick and channel names: rfc1459 casemapping and validation.
//!
//! rfc1459 casemapping treats `[]\~` as the lower case of `{}|^` besides ASCII letters
//! (announced as `CASEMAPPING=rfc1459` in 005), so `Bob[1]` and `bob{1}` are one nick.

/// Longest nick (ISUPPORT `NICKLEN`).
pub const NICKLEN: usize = 30;
/// Longest channel name, `#` included (ISUPPORT `CHANNELLEN`).
pub const CHANNELLEN: usize = 50;
/// Longest topic (ISUPPORT `TOPICLEN`).
pub const TOPICLEN: usize = 390;
/// Longest kick reason (ISUPPORT `KICKLEN`).
pub const KICKLEN: usize = 255;

/// Folds one character by rfc1459 rules.
fn fold_char(c: char) -> char {
    match c {
        'A'..='Z' => c.to_ascii_lowercase(),
        '[' => '{',
        ']' => '}',
        '\\' => '|',
        '~' => '^',
        c => c,
    }
}

/// The rfc1459 case-folded form of a nick or channel name (the key for lookups).
pub fn fold(name: &str) -> String {
    name.chars().map(fold_char).collect()
}

/// Whether two names are equal under rfc1459 casemapping.
pub fn eq(a: &str, b: &str) -> bool {
    a.chars().map(fold_char).eq(b.chars().map(fold_char))
}

fn is_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

/// Whether `nick` is a valid nickname: 1..=[`NICKLEN`] characters, a letter or special
/// first, then letters, digits, specials or `-` (RFC 2812 §2.3.1).
pub fn valid_nick(nick: &str) -> bool {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    nick.len() <= NICKLEN
        && (first.is_ascii_alphabetic() || is_special(first))
        && chars.all(|c| c.is_ascii_alphanumeric() || is_special(c) || c == '-')
}

/// Whether `name` is a valid channel name: `#` then 1.. characters, at most
/// [`CHANNELLEN`] bytes, none of space, comma, BEL, NUL, CR, LF or `:`.
pub fn valid_channel(name: &str) -> bool {
    name.len() >= 2
        && name.len() <= CHANNELLEN
        && name.starts_with('#')
        && !name
            .chars()
            .any(|c| matches!(c, ' ' | ',' | '\x07' | '\0' | '\r' | '\n' | ':'))
}

/// Whether a target names a channel (by its first character, ISUPPORT `CHANTYPES=#`).
pub fn is_channel(target: &str) -> bool {
    target.starts_with('#')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1459_folding() {
        assert_eq!(fold("Bob[1]~\\"), "bob{1}^|");
        assert!(eq("ALICE{}", "alice[]"));
        assert!(!eq("alice", "alicE_"));
    }

    #[test]
    fn nicks() {
        for ok in [
            "a",
            "Alice",
            "[x]",
            "bob-2",
            "_z",
            "`q",
            "a".repeat(30).as_str(),
        ] {
            assert!(valid_nick(ok), "{ok}");
        }
        for bad in [
            "",
            "1abc",
            "-a",
            "a b",
            "a,b",
            "a!b",
            "a@b",
            "#c",
            "é",
            &"a".repeat(31),
        ] {
            assert!(!valid_nick(bad), "{bad}");
        }
    }

    #[test]
    fn channels() {
        assert!(valid_channel("#rust"));
        assert!(valid_channel("#a-b.c"));
        for bad in [
            "",
            "#",
            "rust",
            "&x",
            "#a b",
            "#a,b",
            "#a\x07",
            &format!("#{}", "x".repeat(50)),
        ] {
            assert!(!valid_channel(bad), "{bad:?}");
        }
    }
}
