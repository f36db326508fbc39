//! Fuzzes the IRCv3 tag parser: no input may panic; whatever parses serializes to tag
//! data without spaces or line breaks that parses back to the same tags (NUL, which has
//! no escape and never goes on the wire, dropped from values), escaping round-trips any
//! value but NUL, and the size check is total.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit_chat::irc::tags::{check_size, escape, unescape, valid_key, Tags};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let tags = Tags::parse(&text);
    let mut expected = Tags::new();
    for (k, v) in tags.iter() {
        assert!(valid_key(k), "{k:?}");
        expected.insert(k, v.replace('\0', ""));
    }
    let wire = tags.to_wire();
    assert!(!wire.contains([' ', '\r', '\n', '\0']), "{wire:?}");
    assert_eq!(Tags::parse(&wire), expected, "{text:?} -> {wire:?}");
    assert_eq!(unescape(&escape(&text)), text.replace('\0', ""));
    let _ = check_size(data, 510);
});
