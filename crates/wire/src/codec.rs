//! The frame codec: `u32` little-endian header length, JSON header, streamed body.
//!
//! ```text
//! +----------------+----------------------+---------------------------+
//! | n: u32 LE      | n bytes: JSON object | body: header.size bytes   |
//! +----------------+----------------------+---------------------------+
//! ```
//!
//! Decoding yields [`Frame::Header`] once per frame, then the body as a sequence of
//! [`Frame::Body`] chunks (never buffered whole). A header that was framed correctly but is
//! not a JSON object yields [`Frame::Invalid`], so the connection can answer and go on;
//! errors that leave the stream position unknown are returned as [`FrameError`] and end
//! the stream.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::header::{BodyLenError, Header};

/// The default and largest allowed header length: 64 KiB.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Size of the length prefix.
const LEN_PREFIX: usize = 4;

/// One decoded item of the stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A frame header; its body (if any) follows as [`Frame::Body`] chunks.
    Header(Header),
    /// A chunk of the current frame's body.
    Body(Bytes),
    /// A correctly framed header whose content is not a usable JSON object. Its body length
    /// is unknown and taken as 0, so the stream stays in sync.
    Invalid(HeaderError),
}

/// Why a correctly framed header could not be used (the stream is still in sync).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// The header bytes are not UTF-8.
    #[error("header is not valid UTF-8")]
    InvalidUtf8,
    /// The header is not JSON.
    #[error("header is not valid JSON: {0}")]
    InvalidJson(String),
    /// The header is JSON but not an object.
    #[error("header must be a JSON object, got {0}")]
    NotObject(&'static str),
}

/// Errors after which the stream can no longer be trusted.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix is zero.
    #[error("header length is 0; a header must hold a JSON object")]
    ZeroLength,
    /// The length prefix, read as a signed 32-bit integer, is negative.
    #[error("header length is negative ({0} as a signed 32-bit integer)")]
    NegativeLength(i32),
    /// The length prefix is over the cap.
    #[error("header length {len} is over the limit of {max} bytes")]
    TooLong {
        /// The announced length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The body length key is not a non-negative integer.
    #[error(transparent)]
    BodyLen(#[from] BodyLenError),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame ({0})")]
    Truncated(&'static str),
    /// A header to send does not fit the cap.
    #[error("header to send is {len} bytes, over the limit of {max}")]
    EncodeTooLong {
        /// Encoded length.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// An I/O error of the underlying stream.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// Whether this is an I/O error of the kind `kind`.
    pub fn is_io_kind(&self, kind: std::io::ErrorKind) -> bool {
        matches!(self, Self::Io(e) if e.kind() == kind)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Header,
    Body { remaining: u64 },
}

/// The tokio-util codec for sockit frames.
#[derive(Debug, Clone)]
pub struct FrameCodec {
    max_header: usize,
    state: State,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::new()
    }
}

impl FrameCodec {
    /// A codec with the default 64 KiB header cap.
    pub fn new() -> Self {
        Self::with_max_header(MAX_HEADER_LEN)
    }

    /// A codec with a smaller header cap (it is never raised over [`MAX_HEADER_LEN`] + 0:
    /// DESIGN.md allows 1 ≤ n ≤ 65536).
    pub fn with_max_header(max_header: usize) -> Self {
        Self {
            max_header: max_header.clamp(1, MAX_HEADER_LEN),
            state: State::Header,
        }
    }

    /// Bytes of the current frame's body not yet decoded (0 between frames).
    pub fn body_remaining(&self) -> u64 {
        match self.state {
            State::Header => 0,
            State::Body { remaining } => remaining,
        }
    }

    /// Tells the codec that `n` body bytes were consumed from the stream directly (bypassing
    /// [`Decoder::decode`], e.g. by a zero-copy path).
    pub fn consume_body(&mut self, n: u64) {
        if let State::Body { remaining } = self.state {
            let left = remaining.saturating_sub(n);
            self.state = if left == 0 {
                State::Header
            } else {
                State::Body { remaining: left }
            };
        }
    }

    fn decode_header(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if src.len() < LEN_PREFIX {
            return Ok(None);
        }
        let raw = u32::from_le_bytes([src[0], src[1], src[2], src[3]]);
        if raw == 0 {
            return Err(FrameError::ZeroLength);
        }
        if raw > i32::MAX as u32 {
            return Err(FrameError::NegativeLength(raw as i32));
        }
        let len = raw as usize;
        if len > self.max_header {
            return Err(FrameError::TooLong {
                len,
                max: self.max_header,
            });
        }
        if src.len() < LEN_PREFIX + len {
            src.reserve(LEN_PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(LEN_PREFIX);
        let bytes = src.split_to(len);
        match parse_header(&bytes) {
            Ok(header) => {
                let body = header.body_len()?;
                if body > 0 {
                    self.state = State::Body { remaining: body };
                }
                Ok(Some(Frame::Header(header)))
            }
            Err(e) => Ok(Some(Frame::Invalid(e))),
        }
    }
}

/// Parses header bytes into a JSON object (pure; never panics).
pub fn parse_header(bytes: &[u8]) -> Result<Header, HeaderError> {
    let text = std::str::from_utf8(bytes).map_err(|_| HeaderError::InvalidUtf8)?;
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| HeaderError::InvalidJson(e.to_string()))?;
    match value {
        serde_json::Value::Object(map) => Ok(Header(map)),
        serde_json::Value::Null => Err(HeaderError::NotObject("null")),
        serde_json::Value::Bool(_) => Err(HeaderError::NotObject("a boolean")),
        serde_json::Value::Number(_) => Err(HeaderError::NotObject("a number")),
        serde_json::Value::String(_) => Err(HeaderError::NotObject("a string")),
        serde_json::Value::Array(_) => Err(HeaderError::NotObject("an array")),
    }
}

impl Decoder for FrameCodec {
    type Item = Frame;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        match self.state {
            State::Header => self.decode_header(src),
            State::Body { remaining } => {
                if src.is_empty() {
                    return Ok(None);
                }
                let take = usize::try_from(remaining)
                    .unwrap_or(usize::MAX)
                    .min(src.len());
                let chunk = src.split_to(take).freeze();
                self.consume_body(take as u64);
                Ok(Some(Frame::Body(chunk)))
            }
        }
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if let Some(frame) = self.decode(src)? {
            return Ok(Some(frame));
        }
        match self.state {
            State::Body { .. } => Err(FrameError::Truncated("body")),
            State::Header if src.is_empty() => Ok(None),
            State::Header => Err(FrameError::Truncated("header")),
        }
    }
}

impl Encoder<&Header> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, header: &Header, dst: &mut BytesMut) -> Result<(), FrameError> {
        let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
        if json.len() > self.max_header {
            return Err(FrameError::EncodeTooLong {
                len: json.len(),
                max: self.max_header,
            });
        }
        dst.reserve(LEN_PREFIX + json.len());
        dst.put_u32_le(json.len() as u32);
        dst.extend_from_slice(&json);
        Ok(())
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = FrameError;

    fn encode(&mut self, chunk: Bytes, dst: &mut BytesMut) -> Result<(), FrameError> {
        dst.extend_from_slice(&chunk);
        Ok(())
    }
}

/// Encodes one header into a new buffer (length prefix included).
///
/// # Errors
/// The header is over [`MAX_HEADER_LEN`] once encoded.
pub fn encode_header(header: &Header) -> Result<BytesMut, FrameError> {
    let mut buf = BytesMut::new();
    FrameCodec::new().encode(header, &mut buf)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn raw(len: u32, payload: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32_le(len);
        b.extend_from_slice(payload);
        b
    }

    fn frame_bytes(header: &Header, body: &[u8]) -> Vec<u8> {
        let mut b = encode_header(header).unwrap().to_vec();
        b.extend_from_slice(body);
        b
    }

    /// Decodes everything in `input` fed in pieces of the given sizes, joining body chunks.
    fn decode_in_pieces(input: &[u8], cuts: &[usize]) -> Vec<(Header, Vec<u8>)> {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        let mut out: Vec<(Header, Vec<u8>)> = Vec::new();
        let mut start = 0;
        let mut bounds: Vec<usize> = cuts.iter().copied().filter(|&c| c < input.len()).collect();
        bounds.push(input.len());
        for end in bounds {
            if end < start {
                continue;
            }
            buf.extend_from_slice(&input[start..end]);
            start = end;
            while let Some(frame) = codec.decode(&mut buf).unwrap() {
                match frame {
                    Frame::Header(h) => out.push((h, Vec::new())),
                    Frame::Body(b) => out.last_mut().unwrap().1.extend_from_slice(&b),
                    Frame::Invalid(e) => panic!("unexpected invalid header {e}"),
                }
            }
        }
        assert!(codec.decode_eof(&mut buf).unwrap().is_none());
        out
    }

    #[test]
    fn split_at_every_byte_boundary() {
        let h = Header::request("put")
            .with("filename", "a.txt")
            .with("size", 5);
        let input = frame_bytes(&h, b"hello");
        let whole = decode_in_pieces(&input, &[]);
        assert_eq!(whole, vec![(h.clone(), b"hello".to_vec())]);
        for cut in 0..=input.len() {
            assert_eq!(decode_in_pieces(&input, &[cut]), whole, "cut at {cut}");
        }
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(decode_in_pieces(&input, &every), whole);
    }

    #[test]
    fn sticky_frames_in_one_read() {
        let a = Header::request("ping");
        let b = Header::request("put").with("filesize", 3);
        let c = Header::request("bye");
        let mut input = frame_bytes(&a, b"");
        input.extend(frame_bytes(&b, b"xyz"));
        input.extend(frame_bytes(&c, b""));
        let got = decode_in_pieces(&input, &[]);
        assert_eq!(got, vec![(a, vec![]), (b, b"xyz".to_vec()), (c, vec![])]);
    }

    #[test]
    fn zero_length() {
        let mut b = raw(0, b"");
        assert!(matches!(
            FrameCodec::new().decode(&mut b),
            Err(FrameError::ZeroLength)
        ));
    }

    #[test]
    fn negative_as_i32() {
        let mut b = raw((-5i32) as u32, b"{}");
        assert!(matches!(
            FrameCodec::new().decode(&mut b),
            Err(FrameError::NegativeLength(-5))
        ));
    }

    #[test]
    fn oversized_is_rejected_before_buffering() {
        let mut b = raw(MAX_HEADER_LEN as u32 + 1, b"{");
        assert!(matches!(
            FrameCodec::new().decode(&mut b),
            Err(FrameError::TooLong { len, .. }) if len == MAX_HEADER_LEN + 1
        ));
        let mut b = raw(100, b"{}");
        assert!(matches!(
            FrameCodec::with_max_header(10).decode(&mut b),
            Err(FrameError::TooLong { len: 100, max: 10 })
        ));
    }

    #[test]
    fn max_length_is_accepted() {
        let pad = "x".repeat(MAX_HEADER_LEN - r#"{"cmd":"ping","p":""}"#.len());
        let h = Header::request("ping").with("p", pad);
        let mut b = encode_header(&h).unwrap();
        assert_eq!(b.len(), 4 + MAX_HEADER_LEN);
        assert_eq!(
            FrameCodec::new().decode(&mut b).unwrap(),
            Some(Frame::Header(h))
        );
    }

    #[test]
    fn non_object_json() {
        for (payload, what) in [
            (&b"[1,2]"[..], "an array"),
            (b"\"cmd\"", "a string"),
            (b"42", "a number"),
            (b"null", "null"),
            (b"true", "a boolean"),
        ] {
            let mut b = raw(payload.len() as u32, payload);
            let mut codec = FrameCodec::new();
            assert_eq!(
                codec.decode(&mut b).unwrap(),
                Some(Frame::Invalid(HeaderError::NotObject(what)))
            );
            assert_eq!(codec.body_remaining(), 0);
        }
    }

    #[test]
    fn invalid_json_keeps_stream_in_sync() {
        let mut b = raw(5, b"{nope");
        b.extend(frame_bytes(&Header::request("ping"), b""));
        let mut codec = FrameCodec::new();
        assert!(matches!(
            codec.decode(&mut b).unwrap(),
            Some(Frame::Invalid(HeaderError::InvalidJson(_)))
        ));
        assert_eq!(
            codec.decode(&mut b).unwrap(),
            Some(Frame::Header(Header::request("ping")))
        );
    }

    #[test]
    fn invalid_utf8() {
        let mut b = raw(4, b"{\xff}\xfe");
        assert_eq!(
            FrameCodec::new().decode(&mut b).unwrap(),
            Some(Frame::Invalid(HeaderError::InvalidUtf8))
        );
    }

    #[test]
    fn negative_body_length_is_fatal() {
        let payload = br#"{"cmd":"put","size":-3}"#;
        let mut b = raw(payload.len() as u32, payload);
        assert!(matches!(
            FrameCodec::new().decode(&mut b),
            Err(FrameError::BodyLen(_))
        ));
    }

    #[test]
    fn eof_mid_frame() {
        let mut b = raw(10, b"{\"a\"");
        let mut codec = FrameCodec::new();
        assert!(codec.decode(&mut b).unwrap().is_none());
        assert!(matches!(
            codec.decode_eof(&mut b),
            Err(FrameError::Truncated("header"))
        ));
        let mut b =
            BytesMut::from(&frame_bytes(&Header::request("put").with("size", 9), b"abc")[..]);
        let mut codec = FrameCodec::new();
        assert!(matches!(
            codec.decode(&mut b).unwrap(),
            Some(Frame::Header(_))
        ));
        assert!(matches!(
            codec.decode(&mut b).unwrap(),
            Some(Frame::Body(_))
        ));
        assert!(matches!(
            codec.decode_eof(&mut b),
            Err(FrameError::Truncated("body"))
        ));
    }

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            ".{0,20}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn roundtrip_any_header_and_body(
            fields in prop::collection::btree_map("[a-z_]{1,8}", json_value(), 0..6),
            body in prop::collection::vec(any::<u8>(), 0..2000),
            cuts in prop::collection::vec(0usize..3000, 0..6),
        ) {
            let mut header = Header(fields.into_iter()
                .filter(|(k, _)| !["size", "filesize", "data_size"].contains(&k.as_str()))
                .collect());
            header.set("size", body.len() as u64);
            let input = frame_bytes(&header, &body);
            let mut cuts = cuts;
            cuts.sort_unstable();
            let got = decode_in_pieces(&input, &cuts);
            prop_assert_eq!(got, vec![(header, body)]);
        }

        #[test]
        fn decoding_any_bytes_never_panics(input in prop::collection::vec(any::<u8>(), 0..300)) {
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::from(&input[..]);
            while let Ok(Some(_)) = codec.decode(&mut buf) {}
            let _ = codec.decode_eof(&mut buf);
        }
    }
}
