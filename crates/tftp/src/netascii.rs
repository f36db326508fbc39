//! Netascii (RFC 764 as used by RFC 1350): the local text form (lines end in LF) travels
//! with lines ending in CR LF and a bare CR sent as CR NUL.
//!
//! Both directions stream: a block boundary may fall between CR and its partner byte.

/// Converts local text to netascii. Stateless: every input byte maps on its own.
pub(crate) fn encode(input: &[u8], out: &mut Vec<u8>) {
    for &byte in input {
        match byte {
            b'\n' => out.extend_from_slice(b"\r\n"),
            b'\r' => out.extend_from_slice(b"\r\0"),
            other => out.push(other),
        }
    }
}

/// Converts netascii back to local text, carrying a CR across calls.
#[derive(Debug, Default, Clone)]
pub(crate) struct Decoder {
    /// A CR was the last byte of the previous chunk; its meaning depends on the next byte.
    pending_cr: bool,
}

impl Decoder {
    /// A decoder at the start of a stream.
    pub fn new() -> Decoder {
        Decoder::default()
    }

    /// Decodes one chunk, appending local text to `out`.
    ///
    /// CR LF becomes LF, CR NUL becomes CR; a CR followed by anything else is kept as
    /// is (lenient with peers that send bare CRs).
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) {
        for &byte in input {
            if self.pending_cr {
                self.pending_cr = false;
                match byte {
                    b'\n' => out.push(b'\n'),
                    0 => out.push(b'\r'),
                    b'\r' => {
                        out.push(b'\r');
                        self.pending_cr = true;
                    }
                    other => out.extend_from_slice(&[b'\r', other]),
                }
            } else if byte == b'\r' {
                self.pending_cr = true;
            } else {
                out.push(byte);
            }
        }
    }

    /// Ends the stream: a trailing lone CR is kept.
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        if std::mem::take(&mut self.pending_cr) {
            out.push(b'\r');
        }
    }
}

/// The netascii length of local text (what `tsize` would be in netascii mode).
#[cfg(test)]
fn encoded_len(input: &[u8]) -> usize {
    input.len() + input.iter().filter(|&&b| b == b'\n' || b == b'\r').count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn enc(input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(input, &mut out);
        out
    }

    #[test]
    fn lf_becomes_crlf() {
        assert_eq!(enc(b"a\nb\n"), b"a\r\nb\r\n");
    }

    #[test]
    fn bare_cr_becomes_cr_nul() {
        assert_eq!(enc(b"a\rb"), b"a\r\0b");
    }

    #[test]
    fn decode_split_across_chunks() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.decode(b"line\r", &mut out);
        d.decode(b"\nnext\r", &mut out);
        d.decode(b"\0", &mut out);
        d.finish(&mut out);
        assert_eq!(out, b"line\nnext\r");
    }

    #[test]
    fn trailing_cr_kept() {
        let mut d = Decoder::new();
        let mut out = Vec::new();
        d.decode(b"x\r", &mut out);
        d.finish(&mut out);
        assert_eq!(out, b"x\r");
    }

    proptest! {
        #[test]
        fn roundtrip_any_split(data in proptest::collection::vec(any::<u8>(), 0..400), split in 0usize..400) {
            let wire = enc(&data);
            prop_assert_eq!(wire.len(), encoded_len(&data));
            let split = split.min(wire.len());
            let mut d = Decoder::new();
            let mut out = Vec::new();
            d.decode(&wire[..split], &mut out);
            d.decode(&wire[split..], &mut out);
            d.finish(&mut out);
            prop_assert_eq!(out, data);
        }
    }
}
