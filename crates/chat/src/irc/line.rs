//! Splitting a byte stream into IRC lines (LF or CRLF), bounded by the line limit.
//!
//! Pure: bytes are pushed in as they arrive and whole lines popped out, so a client that
//! sends a line in many pieces, many lines in one piece, or a line far over the limit is
//! handled without unbounded buffering: the buffer never holds more than one maximal
//! line plus one read.

use std::collections::VecDeque;

/// One item taken from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A line without its CR/LF.
    Text(Vec<u8>),
    /// A line longer than the limit; its bytes were discarded up to the next LF.
    TooLong,
}

/// Accumulates bytes and yields lines.
#[derive(Debug)]
pub struct LineBuffer {
    /// Longest accepted line, line ending included.
    max: usize,
    /// Bytes of the current, unfinished line.
    partial: Vec<u8>,
    /// Set while skipping the rest of an over-long line.
    discarding: bool,
    /// Finished items not yet taken.
    ready: VecDeque<Line>,
}

impl LineBuffer {
    /// A buffer accepting lines up to `max` bytes including CRLF.
    pub fn new(max: usize) -> Self {
        Self {
            max,
            partial: Vec::new(),
            discarding: false,
            ready: VecDeque::new(),
        }
    }

    /// Feeds bytes just read.
    pub fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (chunk, rest, ended) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], &bytes[i + 1..], true),
                None => (bytes, &[][..], false),
            };
            bytes = rest;
            if !self.discarding {
                // The limit counts the CRLF, so the text may use max - 2 bytes.
                if self.partial.len() + chunk.len() > self.max.saturating_sub(2) + 1 {
                    self.partial.clear();
                    self.discarding = true;
                    self.ready.push_back(Line::TooLong);
                } else {
                    self.partial.extend_from_slice(chunk);
                }
            }
            if ended {
                if self.discarding {
                    self.discarding = false;
                } else {
                    let mut line = std::mem::take(&mut self.partial);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if line.len() > self.max.saturating_sub(2) {
                        self.ready.push_back(Line::TooLong);
                    } else {
                        self.ready.push_back(Line::Text(line));
                    }
                }
            }
        }
    }

    /// The next finished line, if any.
    pub fn pop(&mut self) -> Option<Line> {
        self.ready.pop_front()
    }

    /// Bytes of the unfinished line (for tests and diagnostics).
    pub fn pending(&self) -> usize {
        self.partial.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn all(b: &mut LineBuffer) -> Vec<Line> {
        std::iter::from_fn(|| b.pop()).collect()
    }

    fn text(s: &str) -> Line {
        Line::Text(s.as_bytes().to_vec())
    }

    #[test]
    fn crlf_and_lf() {
        let mut b = LineBuffer::new(512);
        b.push(b"NICK a\r\nUSER a 0 * :A\nPING");
        assert_eq!(all(&mut b), vec![text("NICK a"), text("USER a 0 * :A")]);
        b.push(b" x\r");
        assert!(b.pop().is_none());
        b.push(b"\n");
        assert_eq!(all(&mut b), vec![text("PING x")]);
    }

    #[test]
    fn exactly_the_limit() {
        let mut b = LineBuffer::new(512);
        let line = "A".repeat(510);
        b.push(format!("{line}\r\n").as_bytes());
        assert_eq!(all(&mut b), vec![text(&line)]);
    }

    #[test]
    fn over_limit_is_skipped_to_next_line() {
        let mut b = LineBuffer::new(512);
        b.push(&[b'A'; 300]);
        b.push(&[b'A'; 300]);
        assert_eq!(all(&mut b), vec![Line::TooLong]);
        assert_eq!(b.pending(), 0);
        b.push(&[b'A'; 3000]);
        b.push(b"\r\nPING x\n");
        assert_eq!(all(&mut b), vec![text("PING x")]);
    }

    #[test]
    fn one_over_limit_with_crlf() {
        let mut b = LineBuffer::new(512);
        b.push(format!("{}\r\n", "A".repeat(511)).as_bytes());
        assert_eq!(all(&mut b), vec![Line::TooLong]);
    }

    proptest! {
        #[test]
        fn bounded_and_total(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..700), 0..8)) {
            let mut b = LineBuffer::new(512);
            for c in &chunks {
                b.push(c);
                prop_assert!(b.pending() <= 511);
            }
            while let Some(l) = b.pop() {
                if let Line::Text(t) = l {
                    prop_assert!(t.len() <= 510);
                    prop_assert!(!t.contains(&b'\n'));
                }
            }
        }
    }
}
