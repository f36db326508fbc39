//! The classic pcap file format (what `tcpdump -w` writes and Wireshark and `tshark -r`
//! open), with nanosecond timestamps and Ethernet link type.
//!
//! ```text
//! global header (24 bytes): magic a1b23c4d (ns) | version 2.4 | thiszone | sigfigs
//!                           | snaplen | linktype 1 (Ethernet)
//! per frame (16 bytes):     ts_sec | ts_nsec | captured length | length on the wire
//!                           followed by the captured bytes
//! ```
//!
//! Fields are in the writer's byte order; the magic tells a reader which one it is.

use std::io::{self, Write};
use std::path::Path;

use crate::error::{LabError, Result};
use crate::experiments::packets::Frame;

/// Magic of a pcap file with microsecond timestamps.
pub const MAGIC_US: u32 = 0xa1b2_c3d4;
/// Magic of a pcap file with nanosecond timestamps (what [`write`](fn@write) produces).
pub const MAGIC_NS: u32 = 0xa1b2_3c4d;
/// LINKTYPE_ETHERNET: each record starts with an Ethernet header.
pub const LINKTYPE_ETHERNET: u32 = 1;
/// The largest frame a record holds.
pub const SNAPLEN: u32 = 262_144;

/// Why bytes are not a pcap file this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PcapError {
    /// Shorter than the 24-byte global header.
    #[error("not a pcap file: {len} bytes, shorter than the 24-byte header")]
    Short {
        /// The file's length.
        len: usize,
    },
    /// The first four bytes are no pcap magic (pcapng is not read here).
    #[error("not a pcap file: magic {magic:08x}")]
    Magic {
        /// The first four bytes, big-endian.
        magic: u32,
    },
    /// Not Ethernet.
    #[error("pcap link type {linktype}, only Ethernet (1) is read")]
    LinkType {
        /// The file's link type.
        linktype: u32,
    },
    /// A record runs past the end of the file or beyond the snapshot length.
    #[error("record {index} at byte {offset} is truncated")]
    Truncated {
        /// 0-based record number.
        index: usize,
        /// Where it starts.
        offset: usize,
    },
}

/// Writes `frames` as a pcap file (nanosecond timestamps, Ethernet).
///
/// # Errors
/// What the writer reports.
pub fn write(w: &mut dyn Write, frames: &[Frame]) -> io::Result<()> {
    let mut header = Vec::with_capacity(24);
    header.extend(MAGIC_NS.to_le_bytes());
    header.extend(2u16.to_le_bytes());
    header.extend(4u16.to_le_bytes());
    header.extend(0i32.to_le_bytes());
    header.extend(0u32.to_le_bytes());
    header.extend(SNAPLEN.to_le_bytes());
    header.extend(LINKTYPE_ETHERNET.to_le_bytes());
    w.write_all(&header)?;
    for f in frames {
        let data = &f.data[..f.data.len().min(SNAPLEN as usize)];
        let secs = u32::try_from(f.ts_ns / 1_000_000_000).unwrap_or(u32::MAX);
        let nanos = (f.ts_ns % 1_000_000_000) as u32;
        let incl = data.len() as u32;
        let mut rec = Vec::with_capacity(16);
        rec.extend(secs.to_le_bytes());
        rec.extend(nanos.to_le_bytes());
        rec.extend(incl.to_le_bytes());
        rec.extend(f.orig_len.max(incl).to_le_bytes());
        w.write_all(&rec)?;
        w.write_all(data)?;
    }
    w.flush()
}

/// Writes `frames` to the pcap file `path` (created or replaced).
///
/// # Errors
/// [`LabError::File`] when the file cannot be written.
pub fn write_file(path: &Path, frames: &[Frame]) -> Result<()> {
    let file_err = |source| LabError::File {
        path: path.to_path_buf(),
        source,
    };
    let mut f = io::BufWriter::new(std::fs::File::create(path).map_err(file_err)?);
    write(&mut f, frames).map_err(file_err)
}

fn u32_at(b: &[u8], at: usize, le: bool) -> Option<u32> {
    let raw: [u8; 4] = b.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(if le {
        u32::from_le_bytes(raw)
    } else {
        u32::from_be_bytes(raw)
    })
}

/// Reads a pcap file (either byte order, µs or ns timestamps, Ethernet only). The frames
/// come back with `outgoing == false`: pcap does not record direction.
///
/// # Errors
/// [`PcapError`] for anything that is not a whole Ethernet pcap file.
pub fn parse(bytes: &[u8]) -> std::result::Result<Vec<Frame>, PcapError> {
    if bytes.len() < 24 {
        return Err(PcapError::Short { len: bytes.len() });
    }
    let be = u32_at(bytes, 0, false).unwrap_or(0);
    let le = u32_at(bytes, 0, true).unwrap_or(0);
    let (little, nanos) = match (le, be) {
        (MAGIC_US, _) => (true, false),
        (MAGIC_NS, _) => (true, true),
        (_, MAGIC_US) => (false, false),
        (_, MAGIC_NS) => (false, true),
        _ => return Err(PcapError::Magic { magic: be }),
    };
    let linktype = u32_at(bytes, 20, little).unwrap_or(0);
    if linktype != LINKTYPE_ETHERNET {
        return Err(PcapError::LinkType { linktype });
    }
    let mut frames = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        let index = frames.len();
        let truncated = PcapError::Truncated { index, offset: at };
        let field = |i: usize| u32_at(bytes, at + 4 * i, little).ok_or(truncated.clone());
        let (secs, frac, incl, orig) = (field(0)?, field(1)?, field(2)?, field(3)?);
        if incl > SNAPLEN {
            return Err(truncated);
        }
        let start = at + 16;
        let data = bytes
            .get(start..start + incl as usize)
            .ok_or(truncated.clone())?;
        let frac_ns = if nanos {
            u64::from(frac)
        } else {
            u64::from(frac) * 1000
        };
        frames.push(Frame {
            ts_ns: u64::from(secs) * 1_000_000_000 + frac_ns,
            outgoing: false,
            data: data.to_vec(),
            orig_len: orig,
        });
        at = start + incl as usize;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ts_ns: u64, data: &[u8]) -> Frame {
        Frame {
            ts_ns,
            outgoing: false,
            data: data.to_vec(),
            orig_len: data.len() as u32,
        }
    }

    #[test]
    fn round_trip() {
        let frames = vec![frame(1_700_000_000_123_456_789, b"abc"), frame(5, b"")];
        let mut buf = Vec::new();
        write(&mut buf, &frames).unwrap();
        assert_eq!(buf.len(), 24 + 16 + 3 + 16);
        assert_eq!(parse(&buf).unwrap(), frames);
    }

    #[test]
    fn empty_file_has_only_the_header() {
        let mut buf = Vec::new();
        write(&mut buf, &[]).unwrap();
        assert_eq!(&buf[..4], &[0x4d, 0x3c, 0xb2, 0xa1]);
        assert_eq!(parse(&buf).unwrap(), vec![]);
    }

    #[test]
    fn big_endian_microseconds() {
        let mut b = Vec::new();
        for v in [MAGIC_US, 0x0002_0004, 0, 0, 65535, 1] {
            b.extend(u32::to_be_bytes(v));
        }
        for v in [7u32, 500, 2, 60] {
            b.extend(v.to_be_bytes());
        }
        b.extend([1, 2]);
        let f = parse(&b).unwrap();
        assert_eq!(f[0].ts_ns, 7_000_500_000);
        assert_eq!(f[0].orig_len, 60);
        assert_eq!(f[0].data, vec![1, 2]);
    }

    #[test]
    fn truncated_record() {
        let mut buf = Vec::new();
        write(&mut buf, &[frame(1, b"abcdef")]).unwrap();
        buf.truncate(buf.len() - 1);
        assert_eq!(
            parse(&buf),
            Err(PcapError::Truncated {
                index: 0,
                offset: 24
            })
        );
        assert!(matches!(parse(b"pcapng.."), Err(PcapError::Short { .. })));
    }
}
