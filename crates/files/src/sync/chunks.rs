//! Content-defined chunks (FastCDC) with BLAKE3 hashes: a file's signature for `sync`.
//!
//! Chunk boundaries depend on the content around them, not on offsets, so an insertion or
//! a deletion moves only the boundaries next to it and every other chunk keeps its hash.
//! A signature is a list of (length, truncated BLAKE3) records; offsets are their running
//! sum. The chunk size grows with the base file ([`ChunkParams::for_size`]), as rsync's
//! block size does, so the list of a large file stays small.

use std::io::{self, Read};

/// Smallest average chunk a list may announce (also the one for small files), in bytes.
pub const MIN_AVG: u32 = 8 * 1024;
/// Largest average chunk a list may announce, in bytes.
pub const MAX_AVG: u32 = 1024 * 1024;
/// Bytes of a chunk's hash on the wire: BLAKE3 cut to 128 bits. A false match would be
/// caught by the whole-file BLAKE3 every delta is checked against.
pub const HASH_LEN: usize = 16;
/// Bytes of one signature record on the wire: a 4-byte little-endian length, the hash.
pub const RECORD_LEN: usize = 4 + HASH_LEN;

/// How a file is cut: the average chunk, with the smallest a quarter of it and the
/// largest eight times it. The side that chunks the base chooses it from the base's size
/// and says it on the wire, so the other side cuts its file alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkParams {
    avg: u32,
}

impl ChunkParams {
    /// The parameters for a base of `size` bytes: an average of about twice the square
    /// root of the size (rsync's block is the square root), a power of two from
    /// [`MIN_AVG`] to [`MAX_AVG`]. So the list grows with the square root of the file,
    /// not with the file: a 1 GiB file has about 16,000 chunks of 64 KiB.
    pub fn for_size(size: u64) -> Self {
        let root = (size as f64).sqrt() * 2.0;
        let avg = (root as u64)
            .clamp(u64::from(MIN_AVG), u64::from(MAX_AVG))
            .next_power_of_two()
            .min(u64::from(MAX_AVG));
        Self { avg: avg as u32 }
    }

    /// The parameters a peer announced as `avg`.
    ///
    /// # Errors
    /// `avg` is not a power of two from [`MIN_AVG`] to [`MAX_AVG`].
    pub fn from_avg(avg: u32) -> Result<Self, String> {
        if avg.is_power_of_two() && (MIN_AVG..=MAX_AVG).contains(&avg) {
            Ok(Self { avg })
        } else {
            Err(format!(
                "chunk_avg {avg} is not a power of two from {MIN_AVG} to {MAX_AVG}"
            ))
        }
    }

    /// The average chunk (what goes on the wire as `chunk_avg`).
    pub fn avg(self) -> u32 {
        self.avg
    }

    /// The smallest chunk (but the last).
    pub fn min(self) -> u32 {
        self.avg / 4
    }

    /// The largest chunk.
    pub fn max(self) -> u32 {
        self.avg * 8
    }
}

impl Default for ChunkParams {
    fn default() -> Self {
        Self { avg: MIN_AVG }
    }
}

/// A chunk's hash as it travels: the first [`HASH_LEN`] bytes of its BLAKE3.
pub type ChunkHash = [u8; HASH_LEN];

/// One chunk of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Where it starts in the file.
    pub offset: u64,
    /// Its length (at most the parameters' `max`).
    pub len: u32,
    /// Its hash.
    pub hash: ChunkHash,
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

fn chunk_hash(data: &[u8]) -> ChunkHash {
    let mut h = [0u8; HASH_LEN];
    h.copy_from_slice(&blake3::hash(data).as_bytes()[..HASH_LEN]);
    h
}

/// Chunks everything `reader` yields with `params` (one sequential pass).
///
/// # Errors
/// A read error.
pub fn signature<R: Read>(reader: R, params: ChunkParams) -> io::Result<Signature> {
    let mut whole = blake3::Hasher::new();
    let mut chunks = Vec::new();
    let mut total = 0u64;
    let cdc = fastcdc::v2020::StreamCDC::new(
        reader,
        params.min() as usize,
        params.avg() as usize,
        params.max() as usize,
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
            hash: chunk_hash(&c.data),
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

/// Reads a chunk list cut with `params` from its wire form (offsets are the running sum
/// of the lengths).
///
/// # Errors
/// A length that is not a whole number of records, or a record of length 0 or over the
/// parameters' largest chunk.
pub fn decode(bytes: &[u8], params: ChunkParams) -> Result<Vec<Chunk>, String> {
    if !bytes.len().is_multiple_of(RECORD_LEN) {
        return Err(format!(
            "a chunk list is {RECORD_LEN}-byte records; got {} bytes",
            bytes.len()
        ));
    }
    let max = params.max();
    let mut offset = 0u64;
    let mut out = Vec::with_capacity(bytes.len() / RECORD_LEN);
    for rec in bytes.chunks_exact(RECORD_LEN) {
        let (len, hash) = rec.split_at(4);
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]);
        if len == 0 || len > max {
            return Err(format!("chunk length {len} is not in 1..={max}"));
        }
        let mut h = [0u8; HASH_LEN];
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
        let s = signature(&d[..], ChunkParams::default()).unwrap();
        assert_eq!(s.total, d.len() as u64);
        assert_eq!(s.blake3, blake3::hash(&d));
        assert_eq!(
            s.chunks.iter().map(|c| u64::from(c.len)).sum::<u64>(),
            s.total
        );
        assert!(s.chunks.len() > 10);
        assert_eq!(
            decode(&encode(&s.chunks), ChunkParams::default()).unwrap(),
            s.chunks
        );
        assert!(signature(&[][..], ChunkParams::default())
            .unwrap()
            .chunks
            .is_empty());
    }

    #[test]
    fn an_insertion_keeps_most_chunks() {
        let d = data(400_000, 3);
        let mut e = d.clone();
        e.splice(1000..1000, b"inserted".iter().copied());
        let a = signature(&d[..], ChunkParams::default()).unwrap();
        let b = signature(&e[..], ChunkParams::default()).unwrap();
        let old: std::collections::HashSet<_> = a.chunks.iter().map(|c| c.hash).collect();
        let kept = b.chunks.iter().filter(|c| old.contains(&c.hash)).count();
        assert!(kept + 3 >= b.chunks.len(), "{kept} of {}", b.chunks.len());
    }

    #[test]
    fn bad_lists_are_refused() {
        let p = ChunkParams::default();
        assert!(decode(&[0; RECORD_LEN - 1], p).is_err());
        assert!(decode(&[0; RECORD_LEN], p).is_err());
        let mut r = vec![0u8; RECORD_LEN];
        r[..4].copy_from_slice(&(p.max() + 1).to_le_bytes());
        assert!(decode(&r, p).is_err());
        r[..4].copy_from_slice(&p.max().to_le_bytes());
        assert!(decode(&r, p).is_ok());
    }

    #[test]
    fn chunks_grow_with_the_square_root_of_the_file() {
        assert_eq!(ChunkParams::for_size(0).avg(), MIN_AVG);
        assert_eq!(ChunkParams::for_size(10 << 20).avg(), MIN_AVG);
        assert_eq!(ChunkParams::for_size(1 << 30).avg(), 64 * 1024);
        assert_eq!(ChunkParams::for_size(4 << 30).avg(), 128 * 1024);
        assert_eq!(ChunkParams::for_size(u64::MAX).avg(), MAX_AVG);
        // A 1 GiB file's list is a few hundred KB, not megabytes.
        let list = (1u64 << 30) / u64::from(ChunkParams::for_size(1 << 30).avg());
        assert!(list * RECORD_LEN as u64 <= 400_000);
        let mut last = 0;
        for shift in 0..64 {
            let avg = ChunkParams::for_size(1u64 << shift).avg();
            assert!(avg >= last && ChunkParams::from_avg(avg).is_ok());
            last = avg;
        }
    }

    #[test]
    fn announced_parameters_are_checked() {
        for bad in [0, 1, 4096, 12 * 1024, MAX_AVG * 2, u32::MAX] {
            assert!(ChunkParams::from_avg(bad).is_err(), "{bad}");
        }
        for good in [MIN_AVG, 64 * 1024, MAX_AVG] {
            assert_eq!(ChunkParams::from_avg(good).unwrap().avg(), good);
        }
    }
}
