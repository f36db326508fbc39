//! The NTP packet (RFC 5905 §7.3) and its extension fields (RFC 7822): pure parsing and
//! writing, total on any bytes.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |LI | VN  |Mode |    Stratum    |     Poll      |   Precision   |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                   Root Delay (16.16 seconds)                  |
//! |                Root Dispersion (16.16 seconds)                |
//! |                          Reference ID                         |
//! |                 Reference Timestamp (32.32, 64)               |
//! |                   Origin Timestamp (64)                       |
//! |                   Receive Timestamp (64)                      |
//! |                   Transmit Timestamp (64)                     |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  48 bytes
//! |        Field Type             |        Length (>= 16)         |
//! |                 Value, zero-padded to 4 bytes                 |  0 or more
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          legacy MAC: Key ID (32) + digest (128 or 160)        |  optional
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

/// Length of the fixed NTP header.
pub const HEADER_LEN: usize = 48;

/// Mode 0, reserved (NTPv1 requests carry it).
pub const MODE_RESERVED: u8 = 0;
/// Mode 1, symmetric active.
pub const MODE_SYMMETRIC_ACTIVE: u8 = 1;
/// Mode 2, symmetric passive.
pub const MODE_SYMMETRIC_PASSIVE: u8 = 2;
/// Mode 3, client: a request to a server.
pub const MODE_CLIENT: u8 = 3;
/// Mode 4, server: the answer to a client.
pub const MODE_SERVER: u8 = 4;
/// Mode 5, broadcast.
pub const MODE_BROADCAST: u8 = 5;
/// Mode 6, NTP control messages (`ntpq`); never answered here.
pub const MODE_CONTROL: u8 = 6;
/// Mode 7, private (`ntpdc`, the old monlist amplifier); never answered here.
pub const MODE_PRIVATE: u8 = 7;

/// Leap indicator 0: no leap second announced.
pub const LEAP_NONE: u8 = 0;
/// Leap indicator 1: the last minute of the day has 61 seconds.
pub const LEAP_INSERT: u8 = 1;
/// Leap indicator 2: the last minute of the day has 59 seconds.
pub const LEAP_DELETE: u8 = 2;
/// Leap indicator 3: alarm, the clock is not synchronized.
pub const LEAP_UNSYNCHRONIZED: u8 = 3;

/// Length of a legacy symmetric-key MAC with a 128-bit digest (key id + MD5).
pub const MAC_LEN_MD5: usize = 20;
/// Length of a legacy symmetric-key MAC with a 160-bit digest (key id + SHA-1).
pub const MAC_LEN_SHA1: usize = 24;

/// Smallest extension field written (RFC 7822).
pub const MIN_EXTENSION_FIELD_LEN: usize = 16;

/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
const NTP_TO_UNIX_SECONDS: i128 = 2_208_988_800;
const NANOS_PER_SECOND: i128 = 1_000_000_000;
/// One second in 32.32 fixed point.
const UNITS_PER_SECOND: i128 = 1 << 32;

/// Why bytes are not an NTP packet.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PacketError {
    /// Fewer bytes than the 48-byte header.
    #[error("{len} bytes is shorter than the {HEADER_LEN}-byte NTP header")]
    TooShort {
        /// Bytes received.
        len: usize,
    },
    /// Fewer than 4 bytes left where an extension field header should start.
    #[error("{remaining} stray bytes at offset {offset}, too few for an extension field")]
    Truncated {
        /// Offset of the stray bytes in the packet.
        offset: usize,
        /// How many bytes are left.
        remaining: usize,
    },
    /// An extension field length below 4 or not a multiple of 4.
    #[error("extension field at offset {offset} has invalid length {length}")]
    BadExtensionLength {
        /// Offset of the field in the packet.
        offset: usize,
        /// The length it states.
        length: usize,
    },
    /// An extension field longer than what is left of the packet.
    #[error(
        "extension field at offset {offset} of length {length} overruns the {remaining} bytes left"
    )]
    ExtensionOverrun {
        /// Offset of the field in the packet.
        offset: usize,
        /// The length it states.
        length: usize,
        /// Bytes left from its offset to the end of the packet.
        remaining: usize,
    },
}

/// An NTP timestamp (RFC 5905 §6): seconds since 1900 in the high 32 bits, the fraction
/// of a second in the low 32. It names a time only within a 136-year era; use
/// [`NtpTimestamp::to_system`] with a nearby reference to pick the era.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NtpTimestamp(pub u64);

impl NtpTimestamp {
    /// The zero timestamp, which NTP reads as "unknown" or "not set".
    pub const ZERO: NtpTimestamp = NtpTimestamp(0);

    /// The timestamp of `time` (modulo the era: 2036-02-07 wraps to era 1, seconds 0).
    /// The fraction is truncated; [`NtpTimestamp::to_system`] gives the nanosecond back.
    pub fn from_system(time: SystemTime) -> Self {
        Self(units_since_ntp_epoch(time) as u64)
    }

    /// The time this timestamp names in the era that puts it nearest `reference`
    /// (within 68 years of it), so timestamps after 2036 convert correctly given a
    /// reference near them. Times SystemTime cannot hold give `reference` itself.
    pub fn to_system(self, reference: SystemTime) -> SystemTime {
        let reference_units = units_since_ntp_epoch(reference);
        let diff = self.0.wrapping_sub(reference_units as u64) as i64;
        units_to_system(reference_units + i128::from(diff)).unwrap_or(reference)
    }

    /// Seconds from `earlier` to `self`, signed, assuming they are within 68 years of
    /// each other (NTP's arithmetic across era boundaries, RFC 5905 §6).
    pub fn seconds_since(self, earlier: NtpTimestamp) -> f64 {
        self.0.wrapping_sub(earlier.0) as i64 as f64 / UNITS_PER_SECOND as f64
    }

    /// The whole seconds field.
    pub fn seconds(self) -> u32 {
        (self.0 >> 32) as u32
    }

    /// The fraction field (units of 2^-32 s).
    pub fn fraction(self) -> u32 {
        self.0 as u32
    }
}

/// `time` in 32.32 fixed point since the NTP epoch, on an unbounded (era-less) scale.
fn units_since_ntp_epoch(time: SystemTime) -> i128 {
    let unix_nanos = match time.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    let nanos = unix_nanos + NTP_TO_UNIX_SECONDS * NANOS_PER_SECOND;
    let seconds = nanos.div_euclid(NANOS_PER_SECOND);
    let sub = nanos.rem_euclid(NANOS_PER_SECOND);
    seconds * UNITS_PER_SECOND + sub * UNITS_PER_SECOND / NANOS_PER_SECOND
}

/// The inverse of [`units_since_ntp_epoch`], rounding the fraction to the nearest
/// nanosecond; `None` when SystemTime cannot hold the result.
fn units_to_system(units: i128) -> Option<SystemTime> {
    let seconds = units.div_euclid(UNITS_PER_SECOND);
    let fraction = units.rem_euclid(UNITS_PER_SECOND);
    let sub = (fraction * NANOS_PER_SECOND + UNITS_PER_SECOND / 2) / UNITS_PER_SECOND;
    let unix_nanos = (seconds - NTP_TO_UNIX_SECONDS) * NANOS_PER_SECOND + sub;
    let magnitude = unix_nanos.unsigned_abs();
    let duration = Duration::new(
        u64::try_from(magnitude / NANOS_PER_SECOND as u128).ok()?,
        (magnitude % NANOS_PER_SECOND as u128) as u32,
    );
    if unix_nanos >= 0 {
        UNIX_EPOCH.checked_add(duration)
    } else {
        UNIX_EPOCH.checked_sub(duration)
    }
}

/// NTP's short format (RFC 5905 §6): unsigned 16.16 fixed-point seconds, used for root
/// delay and root dispersion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NtpShort(pub u32);

impl NtpShort {
    /// The value nearest above `duration` (rounded up, so that an error bound is never
    /// understated), saturating at 65535.99998 s.
    pub fn from_duration(duration: Duration) -> Self {
        Self::from_seconds(duration.as_secs_f64())
    }

    /// As [`NtpShort::from_duration`], from seconds; negative and NaN give 0.
    pub fn from_seconds(seconds: f64) -> Self {
        let units = (seconds * 65536.0).ceil();
        if units.is_nan() || units <= 0.0 {
            Self(0)
        } else if units >= f64::from(u32::MAX) {
            Self(u32::MAX)
        } else {
            Self(units as u32)
        }
    }

    /// The value in seconds.
    pub fn to_seconds(self) -> f64 {
        f64::from(self.0) / 65536.0
    }

    /// The value as a duration.
    pub fn to_duration(self) -> Duration {
        Duration::from_secs_f64(self.to_seconds())
    }
}

/// The 48-byte NTP header, every field decoded but not judged: `leap` is 0..=3,
/// `version` and `mode` 0..=7, the rest as sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Leap indicator ([`LEAP_NONE`] .. [`LEAP_UNSYNCHRONIZED`]).
    pub leap: u8,
    /// Version number (4 for NTPv4).
    pub version: u8,
    /// Association mode ([`MODE_CLIENT`], [`MODE_SERVER`], ...).
    pub mode: u8,
    /// Stratum: 0 is a Kiss-o'-Death (the reference id is then its code), 1 a primary
    /// server, 2..=15 secondary, 16 unsynchronized.
    pub stratum: u8,
    /// Poll exponent: log2 of the interval between messages in seconds.
    pub poll: i8,
    /// Precision exponent: log2 of the sender clock's precision in seconds.
    pub precision: i8,
    /// Round-trip delay to the reference clock.
    pub root_delay: NtpShort,
    /// Error bound relative to the reference clock.
    pub root_dispersion: NtpShort,
    /// ASCII code of the reference (stratum 0 and 1), else the upstream server's IPv4
    /// address or a hash of its IPv6 address.
    pub reference_id: [u8; 4],
    /// When the clock was last set or corrected.
    pub reference_ts: NtpTimestamp,
    /// The request's transmit timestamp echoed by a server (T1).
    pub origin_ts: NtpTimestamp,
    /// When the request arrived at the server (T2).
    pub receive_ts: NtpTimestamp,
    /// When the packet left its sender (T3 in a reply, T1 or a cookie in a request).
    pub transmit_ts: NtpTimestamp,
}

impl Header {
    /// A header with every field zero.
    pub const ZERO: Header = Header {
        leap: 0,
        version: 0,
        mode: 0,
        stratum: 0,
        poll: 0,
        precision: 0,
        root_delay: NtpShort(0),
        root_dispersion: NtpShort(0),
        reference_id: [0; 4],
        reference_ts: NtpTimestamp::ZERO,
        origin_ts: NtpTimestamp::ZERO,
        receive_ts: NtpTimestamp::ZERO,
        transmit_ts: NtpTimestamp::ZERO,
    };

    /// Decodes the first 48 bytes of `packet`; anything after them (extension fields, a
    /// MAC) is left to [`parse_extension_fields`].
    ///
    /// # Errors
    /// [`PacketError::TooShort`] when `packet` has fewer than 48 bytes.
    pub fn parse(packet: &[u8]) -> Result<Header, PacketError> {
        let Some(bytes) = packet.first_chunk::<HEADER_LEN>() else {
            return Err(PacketError::TooShort { len: packet.len() });
        };
        let u32_at =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let ts_at =
            |i: usize| NtpTimestamp((u64::from(u32_at(i)) << 32) | u64::from(u32_at(i + 4)));
        Ok(Header {
            leap: bytes[0] >> 6,
            version: (bytes[0] >> 3) & 0x07,
            mode: bytes[0] & 0x07,
            stratum: bytes[1],
            poll: bytes[2] as i8,
            precision: bytes[3] as i8,
            root_delay: NtpShort(u32_at(4)),
            root_dispersion: NtpShort(u32_at(8)),
            reference_id: [bytes[12], bytes[13], bytes[14], bytes[15]],
            reference_ts: ts_at(16),
            origin_ts: ts_at(24),
            receive_ts: ts_at(32),
            transmit_ts: ts_at(40),
        })
    }

    /// Appends the 48-byte encoding to `out` (`leap`, `version` and `mode` are masked
    /// to their 2, 3 and 3 bits).
    pub fn write(&self, out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN);
        out.push(((self.leap & 0x03) << 6) | ((self.version & 0x07) << 3) | (self.mode & 0x07));
        out.push(self.stratum);
        out.push(self.poll as u8);
        out.push(self.precision as u8);
        out.extend_from_slice(&self.root_delay.0.to_be_bytes());
        out.extend_from_slice(&self.root_dispersion.0.to_be_bytes());
        out.extend_from_slice(&self.reference_id);
        for ts in [
            self.reference_ts,
            self.origin_ts,
            self.receive_ts,
            self.transmit_ts,
        ] {
            out.extend_from_slice(&ts.0.to_be_bytes());
        }
    }

    /// The 48-byte encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_LEN);
        self.write(&mut out);
        out
    }

    /// The Kiss-o'-Death code (`RATE`, `DENY`, `NTSN`, ...) when this is a KoD
    /// (stratum 0, RFC 5905 §7.4).
    pub fn kiss_code(&self) -> Option<[u8; 4]> {
        (self.stratum == 0).then_some(self.reference_id)
    }
}

/// One extension field (RFC 7822), borrowed from the packet it came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionField<'a> {
    /// The field type (e.g. NTS's Unique Identifier, 0x0104).
    pub field_type: u16,
    /// The value: every byte after the 4-byte field header, padding included.
    pub value: &'a [u8],
    /// Where the field (its header) starts in the whole packet, so that a caller can
    /// take the bytes before it as associated data (NTS authenticates
    /// `packet[..offset]` of its Authenticator field).
    pub offset: usize,
}

/// The extension fields after the 48-byte header of `packet`, in order.
///
/// Each field's length counts its 4-byte header, and must be at least 4, a multiple of 4
/// and within the packet. A legacy symmetric-key MAC (key id and digest, 20 or 24 bytes)
/// may follow the fields or stand alone; it is not returned as a field. As in chrony,
/// exactly 20 or 24 bytes left are read as that MAC, never as a field: a last field of
/// those sizes would be ambiguous, so senders make the last field longer.
///
/// # Errors
/// [`PacketError::TooShort`] without a header; [`PacketError::Truncated`],
/// [`PacketError::BadExtensionLength`] or [`PacketError::ExtensionOverrun`] when the
/// bytes after it are neither fields nor a MAC.
pub fn parse_extension_fields(packet: &[u8]) -> Result<Vec<ExtensionField<'_>>, PacketError> {
    if packet.len() < HEADER_LEN {
        return Err(PacketError::TooShort { len: packet.len() });
    }
    let mut fields = Vec::new();
    let mut offset = HEADER_LEN;
    loop {
        let remaining = packet.len() - offset;
        if remaining == 0 || remaining == MAC_LEN_MD5 || remaining == MAC_LEN_SHA1 {
            return Ok(fields);
        }
        let Some(head) = packet[offset..].first_chunk::<4>() else {
            return Err(PacketError::Truncated { offset, remaining });
        };
        let field_type = u16::from_be_bytes([head[0], head[1]]);
        let length = usize::from(u16::from_be_bytes([head[2], head[3]]));
        if length < 4 || length % 4 != 0 {
            return Err(PacketError::BadExtensionLength { offset, length });
        }
        if length > remaining {
            return Err(PacketError::ExtensionOverrun {
                offset,
                length,
                remaining,
            });
        }
        fields.push(ExtensionField {
            field_type,
            value: &packet[offset + 4..offset + length],
            offset,
        });
        offset += length;
    }
}

/// The length [`write_extension_field`] gives a field with a `value_len`-byte value: the
/// value padded to a multiple of 4, plus the 4-byte header, at least 16 bytes.
pub fn extension_field_len(value_len: usize) -> usize {
    (4 + value_len.div_ceil(4) * 4).max(MIN_EXTENSION_FIELD_LEN)
}

/// Appends an extension field to `out`: the type, the length, then `value` padded with
/// zeros to a multiple of 4 bytes and the whole field to at least 16 (RFC 7822).
///
/// # Panics
/// When the field would be longer than the 16-bit length can say (a value over 65,528
/// bytes, far beyond any UDP datagram): a caller bug, never a property of received bytes.
pub fn write_extension_field(out: &mut Vec<u8>, field_type: u16, value: &[u8]) {
    let length = extension_field_len(value.len());
    let length_field = u16::try_from(length).expect("extension field value over 65,528 bytes");
    out.reserve(length);
    out.extend_from_slice(&field_type.to_be_bytes());
    out.extend_from_slice(&length_field.to_be_bytes());
    out.extend_from_slice(value);
    out.resize(out.len() + length - 4 - value.len(), 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(unix_seconds: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(unix_seconds, nanos)
    }

    #[test]
    fn unix_epoch_is_ntp_2208988800() {
        let ts = NtpTimestamp::from_system(UNIX_EPOCH);
        assert_eq!(ts.seconds(), 2_208_988_800);
        assert_eq!(ts.fraction(), 0);
    }

    #[test]
    fn half_a_second_is_half_the_fraction() {
        let ts = NtpTimestamp::from_system(at(0, 500_000_000));
        assert_eq!(ts.fraction(), 1 << 31);
    }

    #[test]
    fn era_1_starts_2036_02_07() {
        // 2036-02-07T06:28:16Z is 2^32 seconds after 1900.
        let rollover = at(2_085_978_496, 0);
        let ts = NtpTimestamp::from_system(rollover);
        assert_eq!(ts, NtpTimestamp::ZERO);
        assert_eq!(ts.to_system(at(2_085_978_000, 0)), rollover);
        let before = at(2_085_978_495, 0);
        assert_eq!(
            NtpTimestamp::from_system(before).to_system(rollover),
            before
        );
    }

    #[test]
    fn seconds_since_crosses_the_era() {
        let a = NtpTimestamp::from_system(at(2_085_978_495, 0));
        let b = NtpTimestamp::from_system(at(2_085_978_497, 0));
        assert_eq!(b.seconds_since(a), 2.0);
        assert_eq!(a.seconds_since(b), -2.0);
    }

    #[test]
    fn short_rounds_up_and_saturates() {
        assert_eq!(NtpShort::from_duration(Duration::from_secs(1)).0, 1 << 16);
        assert_eq!(NtpShort::from_seconds(1e-9).0, 1);
        assert_eq!(NtpShort::from_seconds(-1.0).0, 0);
        assert_eq!(NtpShort::from_seconds(f64::NAN).0, 0);
        assert_eq!(NtpShort::from_seconds(1e9).0, u32::MAX);
        assert_eq!(NtpShort(3 << 15).to_duration(), Duration::from_millis(1500));
    }

    #[test]
    fn header_bytes() {
        let mut bytes = [0u8; 48];
        bytes[0] = 0b11_100_011; // LI 3, v4, client
        bytes[1] = 2;
        bytes[2] = 0xfa; // poll -6
        bytes[3] = 0xe9; // precision -23
        bytes[12..16].copy_from_slice(b"LOCL");
        bytes[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let h = Header::parse(&bytes).unwrap();
        assert_eq!(
            (h.leap, h.version, h.mode, h.stratum),
            (3, 4, MODE_CLIENT, 2)
        );
        assert_eq!((h.poll, h.precision), (-6, -23));
        assert_eq!(&h.reference_id, b"LOCL");
        assert_eq!(h.transmit_ts, NtpTimestamp(0x0102_0304_0506_0708));
        assert_eq!(h.to_bytes(), bytes);
    }

    #[test]
    fn header_needs_48_bytes() {
        assert_eq!(
            Header::parse(&[0; 47]),
            Err(PacketError::TooShort { len: 47 })
        );
        assert!(Header::parse(&[0; 60]).is_ok());
    }

    #[test]
    fn kiss_code_only_at_stratum_0() {
        let mut h = Header::ZERO;
        h.reference_id = *b"RATE";
        assert_eq!(h.kiss_code(), Some(*b"RATE"));
        h.stratum = 1;
        assert_eq!(h.kiss_code(), None);
    }

    #[test]
    fn no_fields() {
        assert_eq!(parse_extension_fields(&[0; 48]), Ok(vec![]));
    }

    #[test]
    fn field_offsets_and_values() {
        let mut p = vec![0; 48];
        write_extension_field(&mut p, 0x0104, &[7; 32]);
        write_extension_field(&mut p, 0x0204, b"abc");
        let fields = parse_extension_fields(&p).unwrap();
        assert_eq!(fields.len(), 2);
        assert_eq!((fields[0].field_type, fields[0].offset), (0x0104, 48));
        assert_eq!(fields[0].value, &[7; 32]);
        assert_eq!((fields[1].field_type, fields[1].offset), (0x0204, 84));
        assert_eq!(fields[1].value, b"abc\0\0\0\0\0\0\0\0\0");
    }

    #[test]
    fn short_values_pad_to_16() {
        let mut out = Vec::new();
        write_extension_field(&mut out, 1, &[]);
        assert_eq!(out, [0, 1, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(extension_field_len(13), 20);
    }

    #[test]
    fn legacy_mac_alone_or_after_fields() {
        for mac in [MAC_LEN_MD5, MAC_LEN_SHA1] {
            let mut p = vec![0; 48];
            p.resize(48 + mac, 0xab);
            assert_eq!(parse_extension_fields(&p), Ok(vec![]));
            let mut p = vec![0; 48];
            write_extension_field(&mut p, 9, &[1; 40]);
            p.resize(p.len() + mac, 0xab);
            assert_eq!(parse_extension_fields(&p).unwrap().len(), 1);
        }
    }

    #[test]
    fn stray_bytes() {
        let p = [0; 50];
        assert_eq!(
            parse_extension_fields(&p),
            Err(PacketError::Truncated {
                offset: 48,
                remaining: 2
            })
        );
    }

    #[test]
    fn bad_lengths() {
        let mut p = vec![0; 48];
        p.extend_from_slice(&[0, 1, 0, 2, 0, 0, 0, 0]);
        assert_eq!(
            parse_extension_fields(&p),
            Err(PacketError::BadExtensionLength {
                offset: 48,
                length: 2
            })
        );
        let mut p = vec![0; 48];
        p.extend_from_slice(&[0, 1, 0, 18, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_extension_fields(&p),
            Err(PacketError::BadExtensionLength {
                offset: 48,
                length: 18
            })
        );
        let mut p = vec![0; 48];
        p.extend_from_slice(&[0, 1, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            parse_extension_fields(&p),
            Err(PacketError::ExtensionOverrun {
                offset: 48,
                length: 32,
                remaining: 16
            })
        );
    }

    #[test]
    fn minimal_4_byte_field_parses() {
        let mut p = vec![0; 48];
        p.extend_from_slice(&[0, 5, 0, 4]);
        let fields = parse_extension_fields(&p).unwrap();
        assert_eq!(fields[0].value, &[] as &[u8]);
    }

    fn arb_header() -> impl Strategy<Value = Header> {
        (
            (
                0u8..4,
                0u8..8,
                0u8..8,
                any::<u8>(),
                any::<i8>(),
                any::<i8>(),
            ),
            (any::<u32>(), any::<u32>(), any::<[u8; 4]>()),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        )
            .prop_map(
                |(
                    (leap, version, mode, stratum, poll, precision),
                    (rd, rdisp, refid),
                    (a, b, c, d),
                )| Header {
                    leap,
                    version,
                    mode,
                    stratum,
                    poll,
                    precision,
                    root_delay: NtpShort(rd),
                    root_dispersion: NtpShort(rdisp),
                    reference_id: refid,
                    reference_ts: NtpTimestamp(a),
                    origin_ts: NtpTimestamp(b),
                    receive_ts: NtpTimestamp(c),
                    transmit_ts: NtpTimestamp(d),
                },
            )
    }

    proptest! {
        #[test]
        fn parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = Header::parse(&bytes);
            if let Ok(fields) = parse_extension_fields(&bytes) {
                for f in fields {
                    prop_assert!(f.offset >= HEADER_LEN && f.offset + 4 + f.value.len() <= bytes.len());
                }
            }
        }

        #[test]
        fn header_round_trips(h in arb_header(), tail in proptest::collection::vec(any::<u8>(), 0..40)) {
            let mut bytes = h.to_bytes();
            prop_assert_eq!(bytes.len(), HEADER_LEN);
            bytes.extend_from_slice(&tail);
            prop_assert_eq!(Header::parse(&bytes), Ok(h));
        }

        #[test]
        fn timestamp_round_trips_to_the_nanosecond(secs in 0u64..8_000_000_000, nanos in 0u32..1_000_000_000, skew in -2_000_000_000i64..2_000_000_000) {
            let t = at(secs, nanos);
            let reference = if skew >= 0 { t + Duration::from_secs(skew as u64) } else { t - Duration::from_secs(skew.unsigned_abs()) };
            prop_assert_eq!(NtpTimestamp::from_system(t).to_system(reference), t);
        }

        #[test]
        fn raw_timestamp_round_trips(raw in any::<u64>()) {
            let ts = NtpTimestamp(raw);
            let back = NtpTimestamp::from_system(ts.to_system(SystemTime::now()));
            // the nanosecond rounding moves the fraction by at most 3 units
            prop_assert!(back.seconds_since(ts).abs() <= 3.0 / 4_294_967_296.0);
        }

        #[test]
        fn fields_round_trip(values in proptest::collection::vec((any::<u16>(), proptest::collection::vec(any::<u8>(), 0..64)), 0..6)) {
            let mut p = vec![0; HEADER_LEN];
            let mut offsets = Vec::new();
            for (t, v) in &values {
                offsets.push(p.len());
                write_extension_field(&mut p, *t, v);
            }
            // a lone field of exactly 20 or 24 bytes at the end would be read as a MAC
            let last_is_mac_sized = values.last().map(|(_, v)| {
                let len = extension_field_len(v.len());
                len == MAC_LEN_MD5 || len == MAC_LEN_SHA1
            }).unwrap_or(false);
            prop_assume!(!last_is_mac_sized);
            let fields = parse_extension_fields(&p).unwrap();
            prop_assert_eq!(fields.len(), values.len());
            for ((f, (t, v)), offset) in fields.iter().zip(&values).zip(offsets) {
                prop_assert_eq!(f.field_type, *t);
                prop_assert_eq!(f.offset, offset);
                prop_assert_eq!(&f.value[..v.len()], &v[..]);
                prop_assert!(f.value[v.len()..].iter().all(|&b| b == 0));
            }
        }
    }
}
