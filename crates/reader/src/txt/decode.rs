//! Bytes of a `.txt` file → UTF-8 text: a BOM decides first, then a UTF-16 heuristic
//! (text without a BOM whose every other byte is NUL), then chardetng's guess; the bytes
//! are decoded with encoding_rs. Binary data is refused rather than shown as mojibake.

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE};

use crate::error::{ReaderError, Result};

/// How many bytes chardetng looks at (it converges long before this).
const DETECT_PREFIX: usize = 1 << 20;

/// Decoded text and what it was decoded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text, BOM removed, CRLF line endings turned into LF.
    pub text: String,
    /// The encoding's WHATWG name (`UTF-8`, `GBK`, `Big5`, `Shift_JIS`, `UTF-16LE`, ...).
    pub encoding: &'static str,
}

/// Picks the encoding of `bytes`; returns it and the BOM length to skip.
pub fn detect(bytes: &[u8]) -> (&'static Encoding, usize) {
    if let Some((enc, bom)) = Encoding::for_bom(bytes) {
        return (enc, bom);
    }
    if let Some(enc) = utf16_without_bom(bytes) {
        return (enc, 0);
    }
    let prefix = &bytes[..bytes.len().min(DETECT_PREFIX)];
    let mut det = chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny);
    det.feed(prefix, prefix.len() == bytes.len());
    (det.guess(None, chardetng::Utf8Detection::Allow), 0)
}

/// UTF-16 without a BOM: in a sample of mostly-ASCII or CJK text, NULs sit on one parity.
fn utf16_without_bom(bytes: &[u8]) -> Option<&'static Encoding> {
    let sample = &bytes[..bytes.len().min(4096) & !1];
    if sample.len() < 4 {
        return None;
    }
    let pairs = sample.len() / 2;
    let even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let odd = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&b| b == 0)
        .count();
    if odd * 10 >= pairs * 3 && even * 50 < pairs {
        Some(UTF_16LE)
    } else if even * 10 >= pairs * 3 && odd * 50 < pairs {
        Some(UTF_16BE)
    } else {
        None
    }
}

/// Decodes a text file's bytes; `name` is used in errors.
///
/// # Errors
/// [`ReaderError::Empty`] for no bytes, [`ReaderError::NotText`] when the bytes are binary
/// (NULs or control characters, or many undecodable sequences).
pub fn decode(name: &str, bytes: &[u8]) -> Result<Decoded> {
    if bytes.is_empty() {
        return Err(ReaderError::Empty(name.to_owned()));
    }
    let (enc, bom) = detect(bytes);
    let (text, _had_errors) = enc.decode_without_bom_handling(&bytes[bom..]);
    if looks_binary(&text) {
        return Err(ReaderError::NotText(name.to_owned()));
    }
    let text = if text.contains('\r') {
        text.replace("\r\n", "\n")
    } else {
        text.into_owned()
    };
    Ok(Decoded {
        text,
        encoding: enc.name(),
    })
}

/// A text file's bytes re-encoded as UTF-8 for a download (`?utf8=1`): the detected
/// encoding decoded as [`decode`] does, the BOM dropped, line endings kept as they are.
/// Returns the UTF-8 bytes and the encoding they came from.
///
/// # Errors
/// [`ReaderError::NotText`] for binary data (an empty file is empty text).
pub fn to_utf8(name: &str, bytes: &[u8]) -> Result<(Vec<u8>, &'static str)> {
    if bytes.is_empty() {
        return Ok((Vec::new(), encoding_rs::UTF_8.name()));
    }
    let (enc, bom) = detect(bytes);
    let (text, _had_errors) = enc.decode_without_bom_handling(&bytes[bom..]);
    if looks_binary(&text) {
        return Err(ReaderError::NotText(name.to_owned()));
    }
    Ok((text.into_owned().into_bytes(), enc.name()))
}

/// True when more than 1% of the characters are replacement characters or control
/// characters other than tab, newline, carriage return and form feed (or any NUL).
fn looks_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut bad = 0usize;
    for c in text.chars() {
        total += 1;
        if c == '\0' {
            return true;
        }
        if c == '\u{FFFD}' || (c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c')) {
            bad += 1;
        }
    }
    bad * 100 > total
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "第一章\n从前有一座山，山里有一座庙。\n";

    #[test]
    fn utf8_and_bom() {
        assert_eq!(decode("a", SAMPLE.as_bytes()).unwrap().text, SAMPLE);
        let mut bom = b"\xEF\xBB\xBF".to_vec();
        bom.extend_from_slice(SAMPLE.as_bytes());
        let d = decode("a", &bom).unwrap();
        assert_eq!((d.text.as_str(), d.encoding), (SAMPLE, "UTF-8"));
    }

    #[test]
    fn utf16_without_bom_is_found() {
        let le: Vec<u8> = "hello, world\n"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        assert_eq!(decode("a", &le).unwrap().encoding, "UTF-16LE");
        let be: Vec<u8> = "hello, world\n"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(decode("a", &be).unwrap().text, "hello, world\n");
    }

    #[test]
    fn to_utf8_keeps_line_endings_and_drops_the_bom() {
        let text = "从前有一座山，山里有一座庙。\r\n庙里有个老和尚。\n".repeat(4);
        let (gbk, _, _) = encoding_rs::GBK.encode(&text);
        assert_eq!(
            to_utf8("g", &gbk).unwrap(),
            (text.as_bytes().to_vec(), "GBK")
        );
        let mut le = vec![0xFF, 0xFE];
        le.extend("hi\r\n".encode_utf16().flat_map(u16::to_le_bytes));
        assert_eq!(to_utf8("u", &le).unwrap(), (b"hi\r\n".to_vec(), "UTF-16LE"));
        assert_eq!(to_utf8("e", b"").unwrap().0, b"");
        assert!(matches!(
            to_utf8("z", b"abc\0\x01def"),
            Err(ReaderError::NotText(_))
        ));
    }

    #[test]
    fn empty() {
        assert!(matches!(decode("e.txt", b""), Err(ReaderError::Empty(_))));
    }

    #[test]
    fn binary_garbage() {
        let junk: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(matches!(
            decode("g.txt", &junk),
            Err(ReaderError::NotText(_))
        ));
        assert!(matches!(
            decode("z.txt", b"abc\0\x01\x02\x03def"),
            Err(ReaderError::NotText(_))
        ));
    }
}
