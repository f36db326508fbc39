//! Content-defined chunks (FastCDC) with BLAKE3 hashes: a file's signature for `sync`.
//!
//! Chunk boundaries depend on the content around them, not on offsets, so an insertion or
//! a deletion moves only the boundaries next to it and every other chunk keeps its hash.
//! A signature is a list of (length, BLAKE3) records; offsets are their running sum.

use std::io::{self, Read};

/// Smallest chunk, in bytes.
pub const MIN_CHUNK: u32 = 2 * 1024;
/// Average chunk (the cut mask's target), in bytes.
pub const AVG_CHUNK: u32 = 8 * 1024;
/// Largest chunk, in bytes.
pub const MAX_CHUNK: u32 = 64 * 1024;
/// Bytes of one signature record on the wire: a 4-byte little-endian length, a 32-byte hash.
pub const RECORD_LEN: usize = 36;

/// One chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its length (at most [`MAX_CHUNK`]).
    pub len: u32,
    /// The BLAKE3 of its bytes.
    pub hash: [u8; 32],
}

/// A file's chunks, its size and its whole-file hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The chunks in file order.
    pub chunks: Vec<Chunk>,
    /// The file's size.
    pub total: u64,
    /// The whole file's BLAKE3.
    pub blake3: blake3::Hash,
}

/// Chunks everything `reader` yields (one sequential pass).
///
/// # Errors
/// A read error.
pub fn signature<R: Read>(reader: R) -> io::Result<Signature> {
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut total = 0u64;
    let cdc = fastcdc::v2020::StreamCDC::new(
        reader,
        MIN_CHUNK as usize,
        AVG_CHUNK as usize,
        MAX_CHUNK as usize,
    );
    for c in cdc {
        let c = c.map_err(|e| match e {
            fastcdc::v2020::Error::IoError(e) => e,
            other => io::Error::other(other.to_string()),
        })?;
        whole.update(&c.data);
        chunks.push(Chunk {
            offset: c.offset,
            len: u32::try_from(c.length).unwrap_or(u32::MAX),
            hash: *blake3::hash(&c.data).as_bytes(),
        });
        total += c.length as u64;
    }
    Ok(Signature {
        chunks,
        total,
        blake3: whole.finalize(),
    })
}

/// The wire form of a chunk list.
pub fn encode(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.len() * RECORD_LEN);
    for c in chunks {
        out.extend_from_slice(&c.len.to_le_bytes());
        out.extend_from_slice(&c.hash);
    }
    out
}

/// Reads a chunk list from its wire form (offsets are the running sum of the lengths).
///
/// # Errors
/// A length that is not a whole number of records, or a record of length 0 or over
/// [`MAX_CHUNK`].
pub fn decode(bytes: &[u8]) -> Result<Vec<Chunk>, String> {
    if !bytes.len().is_multiple_of(RECORD_LEN) {
        return Err(format!(
            "a chunk list is {RECORD_LEN}-byte records; got {} bytes",
            bytes.len()
        ));
    }
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(bytes.len() / RECORD_LEN);
    for rec in bytes.chunks_exact(RECORD_LEN) {
        let (len, hash) = rec.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        if len == 0 || len > MAX_CHUNK {
            return Err(format!("chunk length {len} is not in 1..={MAX_CHUNK}"));
        }
        let mut h = [0u8; 32];
        h.copy_from_slice(hash);
        out.push(Chunk {
            offset,
            len,
            hash: h,
        });
        offset += u64::from(len);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn chunks_cover_the_file_and_roundtrip() {
        let d = data(300_000, 7);
        let s = signature(&d[..]).unwrap();
        assert_eq!(s.total, d.len() as u64);
        assert_eq!(s.blake3, blake3::hash(&d));
        assert_eq!(
            s.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>(),
            s.total
        );
        assert!(s.chunks.len() > 10);
        assert_eq!(decode(&encode(&s.chunks)).unwrap(), s.chunks);
        assert!(signature(&[][..]).unwrap().chunks.is_empty());
    }

    #[test]
    fn an_insertion_keeps_most_chunks() {
        let d = data(400_000, 3);
        let mut e = d.clone();
        e.splice(1000..1000, b"inserted".iter().copied());
        let a = signature(&d[..]).unwrap();
        let b = signature(&e[..]).unwrap();
        let old: std::collections::HashSet<_> = a.chunks.iter().map(|c| c.hash).collect();
        let kept = b.chunks.iter().filter(|c| old.contains(&c.hash)).count();
        assert!(kept + 3 >= b.chunks.len(), "{kept} of {}", b.chunks.len());
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(decode(&[0; 35]).is_err());
        assert!(decode(&[0; 36]).is_err());
        let mut r = vec![0u8; 36];
        r[..4].copy_from_slice(&(MAX_CHUNK + 1).to_le_bytes());
        assert!(decode(&r).is_err());
    }
}
