//! Fuzzes the IRC line splitter and message parser: no input may panic, and whatever
//! parses must serialize to one line of at most 512 bytes that, unless cut to fit,
//! parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sockit_chat::irc::line::{Line, LineBuffer};
use sockit_chat::irc::message::{Message, MAX_LINE};

fuzz_target!(|data: &[u8]| {
    let mut lines = LineBuffer::new(MAX_LINE);
    lines.push(data);
    let mut items: Vec<Vec<u8>> = Vec::new();
    while let Some(l) = lines.pop() {
        if let Line::Text(t) = l {
            items.push(t);
        }
    }
    items.push(data.to_vec());
    for item in items {
        if let Ok(m) = Message::parse(&item) {
            let wire = m.to_line();
            assert!(wire.len() <= MAX_LINE);
            assert!(wire.ends_with(b"\r\n"));
            if wire.len() < MAX_LINE {
                // Not truncated: the line must parse again.
                let again = Message::parse(&wire[..wire.len() - 2]);
                assert!(again.is_ok(), "{m:?} -> {wire:?}");
            }
        }
    }
});
