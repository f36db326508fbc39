//! NTS-KE records (RFC 8915 §4): the messages a client and a server exchange over TLS
//! before any NTP packet is sent.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-----------------------------+-------------------------------+
//! |C|         Record Type         |          Body Length          |
//! +-+-----------------------------+-------------------------------+
//! .                                                               .
//! .                     Record Body (Body Length octets)          .
//! .                                                               .
//! +---------------------------------------------------------------+
//! ```
//!
//! A message is a sequence of records ending with End of Message. Decoding is total: any
//! bytes give records or a [`RecordError`], and a message is bounded by [`Limits`] before
//! anything is allocated for it.

use tokio::io::{AsyncRead, AsyncReadExt};

/// Record type: End of Message (critical, empty body).
pub const END_OF_MESSAGE: u16 = 0;
/// Record type: NTS Next Protocol Negotiation (critical, u16 protocol ids).
pub const NEXT_PROTOCOL: u16 = 1;
/// Record type: Error (critical, u16 error code).
pub const ERROR: u16 = 2;
/// Record type: Warning (critical, u16 warning code).
pub const WARNING: u16 = 3;
/// Record type: AEAD Algorithm Negotiation (u16 algorithm ids).
pub const AEAD_ALGORITHM: u16 = 4;
/// Record type: New Cookie for NTPv4 (never critical, opaque body).
pub const NEW_COOKIE: u16 = 5;
/// Record type: NTPv4 Server Negotiation (ASCII host name or address).
pub const SERVER_NEGOTIATION: u16 = 6;
/// Record type: NTPv4 Port Negotiation (u16 port).
pub const PORT_NEGOTIATION: u16 = 7;

/// Next protocol id of NTPv4.
pub const PROTOCOL_NTPV4: u16 = 0;
/// AEAD algorithm id of AEAD_AES_SIV_CMAC_256 (RFC 5297), the one every NTS peer has.
pub const AEAD_AES_SIV_CMAC_256: u16 = 15;

/// Error code: the peer sent a critical record this implementation does not know.
pub const ERROR_UNRECOGNIZED_CRITICAL: u16 = 0;
/// Error code: the request was malformed or incomplete.
pub const ERROR_BAD_REQUEST: u16 = 1;
/// Error code: the server could not answer for a reason of its own.
pub const ERROR_INTERNAL: u16 = 2;

/// The critical bit of the first 16-bit word.
const CRITICAL: u16 = 0x8000;
/// Bytes of a record header.
const HEADER_LEN: usize = 4;

/// One NTS-KE record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// End of Message.
    EndOfMessage,
    /// The protocols offered (client) or chosen (server; empty: none acceptable).
    NextProtocol(Vec<u16>),
    /// An error code (`ERROR_*`).
    Error(u16),
    /// A warning code.
    Warning(u16),
    /// The AEAD algorithms offered (client) or chosen (server; empty: none acceptable).
    AeadAlgorithm(Vec<u16>),
    /// A cookie for NTPv4 requests.
    NewCookie(Vec<u8>),
    /// The NTP server to use instead of the NTS-KE server's address.
    Server(String),
    /// The NTP port to use instead of 123.
    Port(u16),
    /// A record type this implementation does not know; ignored unless critical.
    Unknown {
        /// Whether the critical bit was set.
        critical: bool,
        /// The 15-bit record type.
        record_type: u16,
        /// The body.
        body: Vec<u8>,
    },
}

/// How much one message may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes of records, End of Message included.
    pub max_bytes: usize,
    /// Most records, End of Message included.
    pub max_records: usize,
}

/// The server's bound on a client request: real clients send four records in under
/// 40 bytes (next protocol, AEAD list, perhaps one private record, end).
pub const REQUEST_LIMITS: Limits = Limits {
    max_bytes: 1024,
    max_records: 32,
};

/// The client's bound on a server response: eight cookies of a few hundred bytes at
/// most, plus the negotiation records.
pub const RESPONSE_LIMITS: Limits = Limits {
    max_bytes: 16 * 1024,
    max_records: 64,
};

/// Why a message could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The message is longer than allowed.
    #[error("NTS-KE message longer than {limit} bytes")]
    TooLong {
        /// The limit.
        limit: usize,
    },
    /// The message has more records than allowed.
    #[error("NTS-KE message has more than {limit} records")]
    TooManyRecords {
        /// The limit.
        limit: usize,
    },
    /// A known record has a body that does not fit its type.
    #[error("NTS-KE record type {record_type}: {reason}")]
    Malformed {
        /// The record type.
        record_type: u16,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A record body to encode does not fit the 16-bit length.
    #[error("NTS-KE record body of {len} bytes is longer than 65535")]
    BodyTooLong {
        /// The body's length.
        len: usize,
    },
    /// The connection ended before End of Message.
    #[error("NTS-KE message ended before its End of Message record")]
    Truncated,
    /// Reading the message failed.
    #[error("NTS-KE read failed: {0}")]
    Io(String),
}

impl Record {
    /// The 15-bit record type.
    pub fn record_type(&self) -> u16 {
        match self {
            Record::EndOfMessage => END_OF_MESSAGE,
            Record::NextProtocol(_) => NEXT_PROTOCOL,
            Record::Error(_) => ERROR,
            Record::Warning(_) => WARNING,
            Record::AeadAlgorithm(_) => AEAD_ALGORITHM,
            Record::NewCookie(_) => NEW_COOKIE,
            Record::Server(_) => SERVER_NEGOTIATION,
            Record::Port(_) => PORT_NEGOTIATION,
            Record::Unknown { record_type, .. } => *record_type & !CRITICAL,
        }
    }

    /// Whether the record is sent with the critical bit: always for the types RFC 8915
    /// says MUST be critical, never for New Cookie (MUST NOT), and set for the
    /// negotiation records (MAY) so a peer that does not understand them fails loudly
    /// instead of silently using the wrong server, port or algorithm.
    pub fn critical(&self) -> bool {
        match self {
            Record::NewCookie(_) => false,
            Record::Unknown { critical, .. } => *critical,
            _ => true,
        }
    }

    /// Appends the record's wire form to `out`.
    ///
    /// # Errors
    /// The body is longer than 65535 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), RecordError> {
        let body: Vec<u8> = match self {
            Record::EndOfMessage => Vec::new(),
            Record::NextProtocol(ids) | Record::AeadAlgorithm(ids) => {
                ids.iter().flat_map(|id| id.to_be_bytes()).collect()
            }
            Record::Error(code) | Record::Warning(code) | Record::Port(code) => {
                code.to_be_bytes().to_vec()
            }
            Record::NewCookie(bytes) => bytes.clone(),
            Record::Server(name) => name.as_bytes().to_vec(),
            Record::Unknown { body, .. } => body.clone(),
        };
        let len =
            u16::try_from(body.len()).map_err(|_| RecordError::BodyTooLong { len: body.len() })?;
        let word = self.record_type() | if self.critical() { CRITICAL } else { 0 };
        out.extend_from_slice(&word.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Decodes one record from its header word and body.
    fn decode(word: u16, body: &[u8]) -> Result<Record, RecordError> {
        let critical = word & CRITICAL != 0;
        let record_type = word & !CRITICAL;
        let malformed = |reason| RecordError::Malformed {
            record_type,
            reason,
        };
        let u16_list = |body: &[u8]| -> Result<Vec<u16>, RecordError> {
            if !body.len().is_multiple_of(2) {
                return Err(malformed("body is not a list of 16-bit ids"));
            }
            Ok(body
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect())
        };
        let one_u16 = |body: &[u8]| -> Result<u16, RecordError> {
            match body {
                [a, b] => Ok(u16::from_be_bytes([*a, *b])),
                _ => Err(malformed("body is not one 16-bit value")),
            }
        };
        Ok(match record_type {
            END_OF_MESSAGE if body.is_empty() => Record::EndOfMessage,
            END_OF_MESSAGE => return Err(malformed("End of Message has a body")),
            NEXT_PROTOCOL => Record::NextProtocol(u16_list(body)?),
            ERROR => Record::Error(one_u16(body)?),
            WARNING => Record::Warning(one_u16(body)?),
            AEAD_ALGORITHM => Record::AeadAlgorithm(u16_list(body)?),
            NEW_COOKIE => Record::NewCookie(body.to_vec()),
            SERVER_NEGOTIATION => match std::str::from_utf8(body) {
                Ok(name) if body.is_ascii() => Record::Server(name.to_owned()),
                _ => return Err(malformed("server name is not ASCII")),
            },
            PORT_NEGOTIATION => Record::Port(one_u16(body)?),
            _ => Record::Unknown {
                critical,
                record_type,
                body: body.to_vec(),
            },
        })
    }
}

/// Encodes records as one message, appending End of Message if the last one is not.
///
/// # Errors
/// A record body is longer than 65535 bytes.
pub fn encode_message(records: &[Record]) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    for record in records {
        record.encode(&mut out)?;
    }
    if records.last() != Some(&Record::EndOfMessage) {
        Record::EndOfMessage.encode(&mut out)?;
    }
    Ok(out)
}

/// Decodes the message at the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (and what is buffered is within the
/// limits), or the records before End of Message and the bytes the message used (End of
/// Message included; bytes after it are left to the caller).
///
/// # Errors
/// The message breaks `limits` or holds a malformed known record.
pub fn decode_message(
    buf: &[u8],
    limits: Limits,
) -> Result<Option<(Vec<Record>, usize)>, RecordError> {
    let mut records = Vec::new();
    let mut at = 0usize;
    loop {
        if records.len() >= limits.max_records {
            return Err(RecordError::TooManyRecords {
                limit: limits.max_records,
            });
        }
        let Some(header) = buf.get(at..at + HEADER_LEN) else {
            return need_more(buf, limits);
        };
        let word = u16::from_be_bytes([header[0], header[1]]);
        let len = usize::from(u16::from_be_bytes([header[2], header[3]]));
        let end = at + HEADER_LEN + len;
        if end > limits.max_bytes {
            return Err(RecordError::TooLong {
                limit: limits.max_bytes,
            });
        }
        let Some(body) = buf.get(at + HEADER_LEN..end) else {
            return need_more(buf, limits);
        };
        let record = Record::decode(word, body)?;
        at = end;
        if record == Record::EndOfMessage {
            return Ok(Some((records, at)));
        }
        records.push(record);
    }
}

fn need_more(buf: &[u8], limits: Limits) -> Result<Option<(Vec<Record>, usize)>, RecordError> {
    if buf.len() >= limits.max_bytes {
        Err(RecordError::TooLong {
            limit: limits.max_bytes,
        })
    } else {
        Ok(None)
    }
}

/// Reads one message from `reader`, never buffering more than `limits.max_bytes`.
///
/// # Errors
/// The peer closed before End of Message, the read failed, or the message is invalid.
pub async fn read_message<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: Limits,
) -> Result<Vec<Record>, RecordError> {
    let mut buf = Vec::with_capacity(512.min(limits.max_bytes));
    let mut chunk = [0u8; 1024];
    loop {
        if let Some((records, _)) = decode_message(&buf, limits)? {
            return Ok(records);
        }
        let room = (limits.max_bytes - buf.len()).min(chunk.len());
        let n = reader
            .read(&mut chunk[..room])
            .await
            .map_err(|e| RecordError::Io(e.to_string()))?;
        if n == 0 {
            return Err(RecordError::Truncated);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chrony_style_request() {
        // Next protocol NTPv4, AEAD 15 and 30 (critical), a private non-critical record,
        // End of Message.
        let wire = b"\x80\x01\x00\x02\x00\x00\
                     \x80\x04\x00\x04\x00\x0f\x00\x1e\
                     \x04\x00\x00\x00\
                     \x80\x00\x00\x00";
        let (records, used) = decode_message(wire, REQUEST_LIMITS).unwrap().unwrap();
        assert_eq!(used, wire.len());
        assert_eq!(
            records,
            vec![
                Record::NextProtocol(vec![0]),
                Record::AeadAlgorithm(vec![15, 30]),
                Record::Unknown {
                    critical: false,
                    record_type: 1024,
                    body: vec![]
                },
            ]
        );
    }

    #[test]
    fn encode_sets_critical_bits() {
        let wire = encode_message(&[
            Record::NextProtocol(vec![0]),
            Record::NewCookie(vec![1, 2, 3, 4]),
            Record::Port(4123),
        ])
        .unwrap();
        assert_eq!(
            wire,
            b"\x80\x01\x00\x02\x00\x00\
              \x00\x05\x00\x04\x01\x02\x03\x04\
              \x80\x07\x00\x02\x10\x1b\
              \x80\x00\x00\x00"
        );
    }

    #[test]
    fn incomplete_needs_more() {
        let wire = encode_message(&[Record::AeadAlgorithm(vec![15])]).unwrap();
        for cut in 0..wire.len() {
            assert_eq!(decode_message(&wire[..cut], REQUEST_LIMITS), Ok(None));
        }
    }

    #[test]
    fn end_of_message_with_body() {
        assert!(matches!(
            decode_message(b"\x80\x00\x00\x01\x00", REQUEST_LIMITS),
            Err(RecordError::Malformed { record_type: 0, .. })
        ));
    }

    #[test]
    fn odd_protocol_list() {
        assert!(matches!(
            decode_message(
                b"\x80\x01\x00\x03\x00\x00\x00\x80\x00\x00\x00",
                REQUEST_LIMITS
            ),
            Err(RecordError::Malformed { record_type: 1, .. })
        ));
    }

    #[test]
    fn too_long() {
        // One record announcing a 2000-byte body is refused before it arrives.
        assert_eq!(
            decode_message(b"\x00\x05\x07\xd0", REQUEST_LIMITS),
            Err(RecordError::TooLong { limit: 1024 })
        );
    }

    #[test]
    fn too_many_records() {
        let many = vec![Record::Warning(1); 40];
        let wire = encode_message(&many).unwrap();
        assert_eq!(
            decode_message(&wire, REQUEST_LIMITS),
            Err(RecordError::TooManyRecords { limit: 32 })
        );
    }

    #[test]
    fn body_too_long_to_encode() {
        let huge = Record::NewCookie(vec![0; 70_000]);
        assert_eq!(
            huge.encode(&mut Vec::new()),
            Err(RecordError::BodyTooLong { len: 70_000 })
        );
    }

    #[tokio::test]
    async fn read_message_stops_at_end() {
        let mut wire = encode_message(&[Record::NextProtocol(vec![0])]).unwrap();
        wire.extend_from_slice(b"trailing");
        let records = read_message(&mut wire.as_slice(), REQUEST_LIMITS)
            .await
            .unwrap();
        assert_eq!(records, vec![Record::NextProtocol(vec![0])]);
    }

    #[tokio::test]
    async fn read_message_truncated() {
        let wire = b"\x80\x01\x00\x02\x00";
        assert_eq!(
            read_message(&mut wire.as_slice(), REQUEST_LIMITS).await,
            Err(RecordError::Truncated)
        );
    }

    #[tokio::test]
    async fn read_message_endless_stream_is_bounded() {
        // A peer that streams unknown records forever is cut off at the byte limit.
        let wire: Vec<u8> = std::iter::repeat_n(b"\x00\x09\x00\x04abcd".as_slice(), 1000)
            .flatten()
            .copied()
            .collect();
        let limits = Limits {
            max_bytes: 1024,
            max_records: 10_000,
        };
        assert_eq!(
            read_message(&mut wire.as_slice(), limits).await,
            Err(RecordError::TooLong { limit: 1024 })
        );
    }
}
