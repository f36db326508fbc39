//! The six TFTP packet kinds: pure parse and serialize, no I/O.
//!
//! ```text
//!  RRQ/WRQ  | 01/02 | filename | 0 | mode | 0 | opt1 | 0 | value1 | 0 | ...
//!  DATA     | 03    | block    | data (0..=blksize bytes)
//!  ACK      | 04    | block    |
//!  ERROR    | 05    | code     | message | 0 |
//!  OACK     | 06    | opt1 | 0 | value1 | 0 | ...
//! ```
//! Every field is big-endian; opcode, block and code are 16 bits.
//!
//! [`Packet::parse`] is total: any byte string gives a [`Packet`] borrowing from the input
//! or a [`ParseError`], never a panic. It is lenient where deployed peers are sloppy
//! (trailing NUL padding after a request, an ERROR message without its final NUL, bytes
//! after an ACK) and strict where a wrong guess would corrupt a transfer.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

/// A TFTP opcode, the first two bytes of every packet.
#[repr(u16)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Read request (RFC 1350).
    Rrq = 1,
    /// Write request (RFC 1350).
    Wrq = 2,
    /// A data block (RFC 1350).
    Data = 3,
    /// Acknowledgment of a data block, or of a WRQ (block 0) (RFC 1350).
    Ack = 4,
    /// An error; ends the transfer (RFC 1350).
    Error = 5,
    /// Option acknowledgment (RFC 2347).
    Oack = 6,
}

impl TryFrom<u16> for Opcode {
    type Error = ParseError;

    fn try_from(value: u16) -> Result<Self, ParseError> {
        Ok(match value {
            1 => Opcode::Rrq,
            2 => Opcode::Wrq,
            3 => Opcode::Data,
            4 => Opcode::Ack,
            5 => Opcode::Error,
            6 => Opcode::Oack,
            other => return Err(ParseError::UnknownOpcode(other)),
        })
    }
}

/// The transfer mode named in a request (RFC 1350). `mail` is obsolete and refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Bytes as they are (`octet`, also spelled `binary` by old clients' UI, never on the wire).
    #[default]
    Octet,
    /// Text: line ends travel as CR LF and a bare CR as CR NUL.
    Netascii,
}

impl Mode {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Octet => "octet",
            Mode::Netascii => "netascii",
        }
    }

    /// Parses a mode name, case-insensitively as RFC 1350 says.
    pub fn from_name(name: &str) -> Option<Mode> {
        if name.eq_ignore_ascii_case("octet") {
            Some(Mode::Octet)
        } else if name.eq_ignore_ascii_case("netascii") {
            Some(Mode::Netascii)
        } else {
            None
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An ERROR packet's code (RFC 1350, 2347). Codes outside 0–8 are kept as [`ErrorCode::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 0: not defined, see the message.
    NotDefined,
    /// 1: file not found.
    FileNotFound,
    /// 2: access violation.
    AccessViolation,
    /// 3: disk full or allocation exceeded.
    DiskFull,
    /// 4: illegal TFTP operation.
    IllegalOperation,
    /// 5: unknown transfer ID.
    UnknownTid,
    /// 6: file already exists.
    FileExists,
    /// 7: no such user.
    NoSuchUser,
    /// 8: option negotiation refused (RFC 2347).
    OptionNegotiation,
    /// Any other code a peer may send.
    Other(u16),
}

impl ErrorCode {
    /// The numeric code on the wire.
    pub fn as_u16(self) -> u16 {
        match self {
            ErrorCode::NotDefined => 0,
            ErrorCode::FileNotFound => 1,
            ErrorCode::AccessViolation => 2,
            ErrorCode::DiskFull => 3,
            ErrorCode::IllegalOperation => 4,
            ErrorCode::UnknownTid => 5,
            ErrorCode::FileExists => 6,
            ErrorCode::NoSuchUser => 7,
            ErrorCode::OptionNegotiation => 8,
            ErrorCode::Other(code) => code,
        }
    }

    /// The code for a number on the wire.
    pub fn from_u16(code: u16) -> ErrorCode {
        match code {
            0 => ErrorCode::NotDefined,
            1 => ErrorCode::FileNotFound,
            2 => ErrorCode::AccessViolation,
            3 => ErrorCode::DiskFull,
            4 => ErrorCode::IllegalOperation,
            5 => ErrorCode::UnknownTid,
            6 => ErrorCode::FileExists,
            7 => ErrorCode::NoSuchUser,
            8 => ErrorCode::OptionNegotiation,
            other => ErrorCode::Other(other),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorCode::NotDefined => "not defined",
            ErrorCode::FileNotFound => "file not found",
            ErrorCode::AccessViolation => "access violation",
            ErrorCode::DiskFull => "disk full",
            ErrorCode::IllegalOperation => "illegal TFTP operation",
            ErrorCode::UnknownTid => "unknown transfer ID",
            ErrorCode::FileExists => "file already exists",
            ErrorCode::NoSuchUser => "no such user",
            ErrorCode::OptionNegotiation => "option negotiation refused",
            ErrorCode::Other(_) => "unknown error code",
        };
        write!(f, "{} ({text})", self.as_u16())
    }
}

/// One `name`/`value` option pair as it appears on the wire (RFC 2347), borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawOption<'a> {
    /// Option name; compared case-insensitively.
    pub name: &'a str,
    /// Option value, a decimal number for every option this crate knows.
    pub value: &'a str,
}

/// A read or write request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    /// The file name as the client sent it (may contain `\` or `/` separators).
    pub filename: &'a str,
    /// The transfer mode.
    pub mode: Mode,
    /// The options (RFC 2347) in the order sent.
    pub options: Vec<RawOption<'a>>,
}

/// A parsed TFTP packet borrowing its payload from the datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet<'a> {
    /// Read request.
    Rrq(Request<'a>),
    /// Write request.
    Wrq(Request<'a>),
    /// A data block; `data` is shorter than the block size only in the last block.
    Data {
        /// Block number (wraps from 65535 to 0 on long transfers).
        block: u16,
        /// The payload.
        data: &'a [u8],
    },
    /// Acknowledgment of `block`.
    Ack {
        /// The acknowledged block number.
        block: u16,
    },
    /// An error; the transfer ends.
    Error {
        /// The error code.
        code: ErrorCode,
        /// A human-readable message.
        message: &'a str,
    },
    /// Option acknowledgment.
    Oack {
        /// The options the server accepted, with the values it chose.
        options: Vec<RawOption<'a>>,
    },
}

/// Why a datagram is not a valid TFTP packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the packet kind needs.
    #[error("packet too short: {len} bytes")]
    TooShort {
        /// The datagram length.
        len: usize,
    },
    /// The opcode is not 1–6.
    #[error("unknown opcode {0}")]
    UnknownOpcode(u16),
    /// A string field is not NUL-terminated.
    #[error("{field} is not NUL-terminated")]
    Unterminated {
        /// Which field.
        field: &'static str,
    },
    /// A string field is not UTF-8.
    #[error("{field} is not valid UTF-8")]
    NotUtf8 {
        /// Which field.
        field: &'static str,
    },
    /// The mode is not `octet` or `netascii`.
    #[error("unsupported transfer mode {0:?}")]
    UnsupportedMode(String),
    /// An option name without a value.
    #[error("option {0:?} has no value")]
    OptionWithoutValue(String),
}

/// Splits a NUL-terminated string off the front of `input`.
fn parse_nul_str<'a>(
    input: &'a [u8],
    field: &'static str,
) -> Result<(&'a str, &'a [u8]), ParseError> {
    let end = input
        .iter()
        .position(|&b| b == 0)
        .ok_or(ParseError::Unterminated { field })?;
    let text = std::str::from_utf8(&input[..end]).map_err(|_| ParseError::NotUtf8 { field })?;
    Ok((text, &input[end + 1..]))
}

/// Parses option pairs until the input ends (trailing NUL padding is ignored).
fn parse_options(mut rest: &[u8]) -> Result<Vec<RawOption<'_>>, ParseError> {
    let mut options = Vec::new();
    while !rest.iter().all(|&b| b == 0) {
        let (name, after_name) = parse_nul_str(rest, "option name")?;
        if after_name.is_empty() {
            return Err(ParseError::OptionWithoutValue(name.to_owned()));
        }
        let (value, after_value) = parse_nul_str(after_name, "option value")?;
        options.push(RawOption { name, value });
        rest = after_value;
    }
    Ok(options)
}

fn parse_request(body: &[u8]) -> Result<Request<'_>, ParseError> {
    let (filename, rest) = parse_nul_str(body, "filename")?;
    let (mode_name, rest) = parse_nul_str(rest, "mode")?;
    let mode =
        Mode::from_name(mode_name).ok_or_else(|| ParseError::UnsupportedMode(mode_name.into()))?;
    let options = parse_options(rest)?;
    Ok(Request {
        filename,
        mode,
        options,
    })
}

fn read_u16(bytes: &[u8]) -> Option<u16> {
    match bytes {
        [hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

impl<'a> Packet<'a> {
    /// Parses one datagram.
    ///
    /// # Errors
    /// A [`ParseError`] saying what is wrong; never panics, whatever the bytes.
    pub fn parse(datagram: &'a [u8]) -> Result<Packet<'a>, ParseError> {
        let too_short = ParseError::TooShort {
            len: datagram.len(),
        };
        let opcode = Opcode::try_from(read_u16(datagram).ok_or(too_short.clone())?)?;
        let body = &datagram[2..];
        Ok(match opcode {
            Opcode::Rrq => Packet::Rrq(parse_request(body)?),
            Opcode::Wrq => Packet::Wrq(parse_request(body)?),
            Opcode::Data => Packet::Data {
                block: read_u16(body).ok_or(too_short)?,
                data: &body[2..],
            },
            Opcode::Ack => Packet::Ack {
                block: read_u16(body).ok_or(too_short)?,
            },
            Opcode::Error => {
                let code = ErrorCode::from_u16(read_u16(body).ok_or(too_short)?);
                let text = &body[2..];
                // Some peers omit the final NUL; take the message up to a NUL or the end.
                let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
                let message =
                    std::str::from_utf8(&text[..end]).map_err(|_| ParseError::NotUtf8 {
                        field: "error message",
                    })?;
                Packet::Error { code, message }
            }
            Opcode::Oack => Packet::Oack {
                options: parse_options(body)?,
            },
        })
    }

    /// The opcode of this packet.
    pub fn opcode(&self) -> Opcode {
        match self {
            Packet::Rrq(_) => Opcode::Rrq,
            Packet::Wrq(_) => Opcode::Wrq,
            Packet::Data { .. } => Opcode::Data,
            Packet::Ack { .. } => Opcode::Ack,
            Packet::Error { .. } => Opcode::Error,
            Packet::Oack { .. } => Opcode::Oack,
        }
    }

    /// Appends the wire form of this packet to `buf`.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.opcode() as u16);
        match self {
            Packet::Rrq(request) | Packet::Wrq(request) => {
                put_str(buf, request.filename);
                put_str(buf, request.mode.as_str());
                put_options(buf, &request.options);
            }
            Packet::Data { block, data } => {
                buf.put_u16(*block);
                buf.put_slice(data);
            }
            Packet::Ack { block } => buf.put_u16(*block),
            Packet::Error { code, message } => {
                buf.put_u16(code.as_u16());
                put_str(buf, message);
            }
            Packet::Oack { options } => put_options(buf, options),
        }
    }

    /// The wire form of this packet.
    pub fn to_bytes(&self) -> Bytes {
        let mut buf = BytesMut::new();
        self.encode(&mut buf);
        buf.freeze()
    }
}

/// Writes `text` and its NUL terminator. An embedded NUL would end the field early on the
/// peer's side, so the text is cut at the first NUL.
fn put_str(buf: &mut BytesMut, text: &str) {
    let bytes = text.as_bytes();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    buf.put_slice(&bytes[..end]);
    buf.put_u8(0);
}

fn put_options(buf: &mut BytesMut, options: &[RawOption<'_>]) {
    for option in options {
        put_str(buf, option.name);
        put_str(buf, option.value);
    }
}

/// The 4-byte header of a DATA packet for `block`, for senders that read the payload
/// straight into the packet buffer.
pub fn data_header(block: u16) -> [u8; 4] {
    let [hi, lo] = block.to_be_bytes();
    [0, Opcode::Data as u8, hi, lo]
}

/// An encoded ACK for `block`.
pub fn ack_bytes(block: u16) -> Bytes {
    Packet::Ack { block }.to_bytes()
}

/// An encoded ERROR packet.
pub fn error_bytes(code: ErrorCode, message: &str) -> Bytes {
    Packet::Error { code, message }.to_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn roundtrip(bytes: &[u8]) -> Packet<'_> {
        let packet = Packet::parse(bytes).expect("parses");
        assert_eq!(packet.to_bytes().as_ref(), bytes, "re-encodes byte-exact");
        packet
    }

    #[test]
    fn rrq_plain() {
        let p = roundtrip(b"\x00\x01file.bin\x00octet\x00");
        assert_eq!(
            p,
            Packet::Rrq(Request {
                filename: "file.bin",
                mode: Mode::Octet,
                options: vec![]
            })
        );
    }

    #[test]
    fn wrq_with_options() {
        let p = roundtrip(b"\x00\x02a/b\x00netascii\x00blksize\x001468\x00tsize\x000\x00");
        let Packet::Wrq(req) = p else {
            panic!("not a WRQ")
        };
        assert_eq!(req.mode, Mode::Netascii);
        assert_eq!(
            req.options,
            vec![
                RawOption {
                    name: "blksize",
                    value: "1468"
                },
                RawOption {
                    name: "tsize",
                    value: "0"
                }
            ]
        );
    }

    #[test]
    fn mode_is_case_insensitive() {
        let p = Packet::parse(b"\x00\x01f\x00OcTeT\x00").unwrap();
        assert!(matches!(
            p,
            Packet::Rrq(Request {
                mode: Mode::Octet,
                ..
            })
        ));
    }

    #[test]
    fn mail_mode_refused() {
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00mail\x00"),
            Err(ParseError::UnsupportedMode("mail".into()))
        );
    }

    #[test]
    fn trailing_nul_padding_ignored() {
        let p = Packet::parse(b"\x00\x01f\x00octet\x00\x00\x00\x00").unwrap();
        assert!(matches!(p, Packet::Rrq(ref r) if r.options.is_empty()));
    }

    #[test]
    fn option_without_value() {
        assert_eq!(
            Packet::parse(b"\x00\x01f\x00octet\x00blksize\x00"),
            Err(ParseError::OptionWithoutValue("blksize".into()))
        );
    }

    #[test]
    fn unterminated_filename() {
        assert_eq!(
            Packet::parse(b"\x00\x01file"),
            Err(ParseError::Unterminated { field: "filename" })
        );
    }

    #[test]
    fn unterminated_mode() {
        assert_eq!(
            Packet::parse(b"\x00\x01file\x00octet"),
            Err(ParseError::Unterminated { field: "mode" })
        );
    }

    #[test]
    fn data_block() {
        let p = roundtrip(b"\x00\x03\xff\xffhello");
        assert_eq!(
            p,
            Packet::Data {
                block: 65535,
                data: b"hello"
            }
        );
    }

    #[test]
    fn empty_data_block() {
        let p = roundtrip(b"\x00\x03\x00\x01");
        assert_eq!(
            p,
            Packet::Data {
                block: 1,
                data: b""
            }
        );
    }

    #[test]
    fn ack() {
        assert_eq!(roundtrip(b"\x00\x04\x00\x00"), Packet::Ack { block: 0 });
    }

    #[test]
    fn ack_too_short() {
        assert_eq!(
            Packet::parse(b"\x00\x04\x00"),
            Err(ParseError::TooShort { len: 3 })
        );
    }

    #[test]
    fn error_packet() {
        let p = roundtrip(b"\x00\x05\x00\x01File not found\x00");
        assert_eq!(
            p,
            Packet::Error {
                code: ErrorCode::FileNotFound,
                message: "File not found"
            }
        );
    }

    #[test]
    fn error_without_final_nul() {
        let p = Packet::parse(b"\x00\x05\x00\x08no").unwrap();
        assert_eq!(
            p,
            Packet::Error {
                code: ErrorCode::OptionNegotiation,
                message: "no"
            }
        );
    }

    #[test]
    fn error_unknown_code_kept() {
        let p = roundtrip(b"\x00\x05\x00\x2a\x00");
        assert_eq!(
            p,
            Packet::Error {
                code: ErrorCode::Other(42),
                message: ""
            }
        );
    }

    #[test]
    fn oack() {
        let p = roundtrip(b"\x00\x06blksize\x001468\x00windowsize\x0016\x00");
        let Packet::Oack { options } = p else {
            panic!("not an OACK")
        };
        assert_eq!(options.len(), 2);
        assert_eq!(options[1].value, "16");
    }

    #[test]
    fn empty_oack() {
        assert_eq!(roundtrip(b"\x00\x06"), Packet::Oack { options: vec![] });
    }

    #[test]
    fn unknown_opcode() {
        assert_eq!(
            Packet::parse(b"\x00\x07xx"),
            Err(ParseError::UnknownOpcode(7))
        );
    }

    #[test]
    fn empty() {
        assert_eq!(Packet::parse(b""), Err(ParseError::TooShort { len: 0 }));
    }

    #[test]
    fn one_byte() {
        assert_eq!(Packet::parse(b"\x00"), Err(ParseError::TooShort { len: 1 }));
    }

    #[test]
    fn non_utf8_filename() {
        assert_eq!(
            Packet::parse(b"\x00\x01\xff\x00octet\x00"),
            Err(ParseError::NotUtf8 { field: "filename" })
        );
    }

    #[test]
    fn data_header_matches_encoder() {
        let mut buf = BytesMut::new();
        Packet::Data {
            block: 0x1234,
            data: b"",
        }
        .encode(&mut buf);
        assert_eq!(&buf[..], &data_header(0x1234));
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9._/\\\\-]{0,40}"
    }

    fn options() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec(("[a-z]{1,10}", "[0-9]{1,6}"), 0..5)
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Packet::parse(&bytes);
        }

        #[test]
        fn never_panics_with_valid_opcode(op in 0u8..8, rest in proptest::collection::vec(any::<u8>(), 0..100)) {
            let mut bytes = vec![0, op];
            bytes.extend(rest);
            let _ = Packet::parse(&bytes);
        }

        #[test]
        fn request_roundtrip(file in name(), netascii in any::<bool>(), write in any::<bool>(), opts in options()) {
            let req = Request {
                filename: &file,
                mode: if netascii { Mode::Netascii } else { Mode::Octet },
                options: opts.iter().map(|(n, v)| RawOption { name: n, value: v }).collect(),
            };
            let packet = if write { Packet::Wrq(req) } else { Packet::Rrq(req) };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }

        #[test]
        fn data_roundtrip(block in any::<u16>(), data in proptest::collection::vec(any::<u8>(), 0..2000)) {
            let packet = Packet::Data { block, data: &data };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }

        #[test]
        fn ack_roundtrip(block in any::<u16>()) {
            let packet = Packet::Ack { block };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }

        #[test]
        fn error_roundtrip(code in any::<u16>(), message in "[ -~]{0,60}") {
            let packet = Packet::Error { code: ErrorCode::from_u16(code), message: &message };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }

        #[test]
        fn oack_roundtrip(opts in options()) {
            let packet = Packet::Oack {
                options: opts.iter().map(|(n, v)| RawOption { name: n, value: v }).collect(),
            };
            let bytes = packet.to_bytes();
            prop_assert_eq!(Packet::parse(&bytes), Ok(packet));
        }
    }
}
