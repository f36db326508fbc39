//! Content-defined chunks (FastCDC) with XXH3-128 hashes: a file's signature for `sync`.
//!
//! Chunk boundaries depend on the content around them, not on offsets, so an insertion or
//! a deletion moves only the boundaries next to it and every other chunk keeps its hash.
//! A signature is a list of (length, XXH3-128) records; offsets are their running
//! sum. The chunk size grows with the base file ([`ChunkParams::for_size`]), as rsync's
//! block size does, so the list of a large file stays small.

use std::io::{self, Read};

use super::read_at::{hash_range, ReadAt, Window};

/// Smallest average chunk a list may announce (also the one for small files), in bytes.
pub const MIN_AVG: u32 = 8 * 1024;
/// Largest average chunk a list may announce, in bytes.
pub const MAX_AVG: u32 = 1024 * 1024;
/// Bytes of a chunk's hash on the wire: its XXH3-128 (rsync's block sum too). A false
/// match, by accident or crafted, is caught by the whole-file BLAKE3 every result is
/// checked against, and the file is then sent whole.
pub const HASH_LEN: usize = 16;
/// Bytes of one signature record on the wire: a 4-byte little-endian length, the hash.
pub const RECORD_LEN: usize = 4 + HASH_LEN;

/// How a file is cut: the average chunk, with the smallest half of it and the
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
        self.avg / 2
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

/// A chunk's hash as it travels: its XXH3-128, little-endian.
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

/// The hash of a chunk's bytes: XXH3-128, little-endian. A non-cryptographic hash is
/// enough here (a chunk hash only proposes a copy; the whole-file BLAKE3 decides), and
/// it costs a small part of BLAKE3's time on every byte both sides read.
pub(crate) fn chunk_hash(data: &[u8]) -> ChunkHash {
    xxhash_rust::xxh3::xxh3_128(data).to_le_bytes()
}

/// Files at least this large are cut on several threads.
const PARALLEL_MIN: u64 = 16 << 20;
/// Most threads one file is cut on.
const MAX_THREADS: usize = 4;

/// FastCDC's cut search with fixed parameters (normalization level 1, as
/// `fastcdc::v2020::FastCDC::new` uses, so the cuts are FastCDC's).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cutter {
    min: usize,
    avg: usize,
    max: usize,
    mask_s: u64,
    mask_l: u64,
}

impl Cutter {
    /// The cutter for `params`.
    pub(crate) fn new(params: ChunkParams) -> Self {
        let (mask_s, mask_l) = fastcdc::v2020::select_masks(
            params.avg() as usize,
            fastcdc::v2020::Normalization::Level1,
        );
        Self {
            min: params.min() as usize,
            avg: params.avg() as usize,
            max: params.max() as usize,
            mask_s,
            mask_l,
        }
    }

    /// The largest chunk: how many bytes [`Self::cut`] may look at.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The length of the chunk that starts `data` (`data` holds at least the largest
    /// chunk's bytes, or all that is left of the file).
    pub(crate) fn cut(&self, data: &[u8]) -> usize {
        if data.len() <= self.min {
            return data.len();
        }
        let (_, n) = fastcdc::v2020::cut(
            data,
            self.min,
            self.avg,
            self.max,
            self.mask_s,
            self.mask_l,
            self.mask_s << 1,
            self.mask_l << 1,
        );
        n.clamp(1, data.len())
    }
}

/// Cuts `src` (`len` bytes) from `from`, which must be a cut point (0, or the end of a
/// chunk), until a chunk ends at or past `until` or `stop` says so for a chunk's end.
fn cut_run<S: ReadAt + ?Sized>(
    src: &S,
    len: u64,
    from: u64,
    until: u64,
    cutter: Cutter,
    mut stop: impl FnMut(u64) -> bool,
) -> io::Result<Vec<Chunk>> {
    let mut w = Window::new(src, len);
    let mut out = Vec::new();
    let mut at = from;
    while at < len.min(until.max(from + 1)) {
        let data = w.get(at, cutter.max())?;
        let n = cutter.cut(data);
        out.push(Chunk {
            offset: at,
            len: n as u32,
            hash: chunk_hash(&data[..n]),
        });
        at += n as u64;
        if stop(at) {
            break;
        }
    }
    Ok(out)
}

/// The whole-file BLAKE3 of the first `len` bytes of `src`.
///
/// # Errors
/// A read error.
pub fn whole_hash<S: ReadAt + ?Sized>(src: &S, len: u64) -> io::Result<blake3::Hash> {
    let mut h = blake3::Hasher::new();
    hash_range(&mut h, src, 0, len)?;
    Ok(h.finalize())
}

/// Runs `work` beside the whole-file BLAKE3 of `src`'s first `len` bytes, which is
/// `whole` when the caller knows it (the server's hash cache), else hashed on a thread of
/// its own.
///
/// # Errors
/// What `work` returns, or a read error of the hash.
pub(crate) fn beside_whole_hash<S: ReadAt + Sync + ?Sized, T>(
    src: &S,
    len: u64,
    whole: Option<blake3::Hash>,
    work: impl FnOnce() -> io::Result<T>,
) -> io::Result<(T, blake3::Hash)> {
    std::thread::scope(|s| {
        let hasher = match whole {
            Some(h) => Err(h),
            None => Ok(s.spawn(|| whole_hash(src, len))),
        };
        let done = work()?;
        let hash = match hasher {
            Err(known) => known,
            Ok(t) => t
                .join()
                .map_err(|_| io::Error::other("the hashing thread panicked"))??,
        };
        Ok((done, hash))
    })
}

/// Cuts `src` (`len` bytes) into chunks with `params`: the same cuts as one pass from the
/// start, made on several threads for a large file (each thread cuts a stretch; a stretch
/// is joined to the one before where their cut chains meet, which content-defined cuts do
/// within a few chunks).
///
/// # Errors
/// A read error.
pub fn chunks_at<S: ReadAt + Sync + ?Sized>(
    src: &S,
    len: u64,
    params: ChunkParams,
) -> io::Result<Vec<Chunk>> {
    let threads = if len < PARALLEL_MIN {
        1
    } else {
        std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(MAX_THREADS)
    };
    chunks_on(src, len, params, threads)
}

/// The chunks of [`chunks_at`] with the whole-file hash ([`beside_whole_hash`]).
///
/// # Errors
/// A read error.
pub fn signature_at<S: ReadAt + Sync + ?Sized>(
    src: &S,
    len: u64,
    params: ChunkParams,
    whole: Option<blake3::Hash>,
) -> io::Result<Signature> {
    let (chunks, blake3) = beside_whole_hash(src, len, whole, || chunks_at(src, len, params))?;
    Ok(Signature {
        chunks,
        total: len,
        blake3,
    })
}

/// [`chunks_at`] on `threads` threads.
fn chunks_on<S: ReadAt + Sync + ?Sized>(
    src: &S,
    len: u64,
    params: ChunkParams,
    threads: usize,
) -> io::Result<Vec<Chunk>> {
    let cutter = Cutter::new(params);
    let threads = threads.max(1);
    let parts = std::thread::scope(|s| {
        let stretches: Vec<_> = (0..threads as u64)
            .map(|k| {
                let from = len * k / threads as u64;
                let until = len * (k + 1) / threads as u64;
                s.spawn(move || cut_run(src, len, from, until, cutter, |_| false))
            })
            .collect();
        stretches
            .into_iter()
            .map(|t| {
                t.join()
                    .map_err(|_| io::Error::other("a cutting thread panicked"))?
            })
            .collect::<io::Result<Vec<_>>>()
    })?;
    join_stretches(src, len, cutter, parts)
}

/// Joins stretches cut independently into the chunks of one pass from the start: after
/// the chunks so far, cutting goes on until a chunk ends where one of the next stretch's
/// chunks starts (from there both chains cut alike), or the file ends.
fn join_stretches<S: ReadAt + ?Sized>(
    src: &S,
    len: u64,
    cutter: Cutter,
    parts: Vec<Vec<Chunk>>,
) -> io::Result<Vec<Chunk>> {
    let mut parts = parts.into_iter();
    let mut out = parts.next().unwrap_or_default();
    for next in parts {
        let end = out.last().map_or(0, |c| c.offset + u64::from(c.len));
        let starts_at = |at: u64| next.binary_search_by_key(&at, |c| c.offset).ok();
        let meet = match starts_at(end) {
            Some(i) => Some(i),
            None if next.last().is_some_and(|c| c.offset > end) => {
                let bridge = cut_run(src, len, end, len, cutter, |at| starts_at(at).is_some())?;
                let at = bridge.last().map_or(end, |c| c.offset + u64::from(c.len));
                out.extend(bridge);
                starts_at(at)
            }
            // The chunks so far already reach past this stretch's last start.
            None => None,
        };
        if let Some(i) = meet {
            out.extend_from_slice(&next[i..]);
        }
    }
    // A stretch whose chain never met the one before leaves the rest uncut.
    let end = out.last().map_or(0, |c| c.offset + u64::from(c.len));
    if end < len {
        out.extend(cut_run(src, len, end, len, cutter, |_| false)?);
    }
    Ok(out)
}

/// Chunks everything `reader` yields with `params` (reads it all into memory first;
/// for tests and small inputs: files go through [`signature_at`]).
///
/// # Errors
/// A read error.
pub fn signature<R: Read>(mut reader: R, params: ChunkParams) -> io::Result<Signature> {
    let mut data = Vec::new();
    reader.read_to_end(&mut data)?;
    signature_at(&data[..], data.len() as u64, params, None)
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
    fn the_cuts_are_fastcdc_s_on_any_number_of_threads() {
        let p = ChunkParams::default();
        let mut zeros_then_noise = vec![0u8; 200_000];
        zeros_then_noise.extend(data(150_000, 4));
        for d in [data(600_000, 11), vec![0u8; 300_000], zeros_then_noise] {
            let reference: Vec<(u64, u32)> = fastcdc::v2020::FastCDC::new(
                &d,
                p.min() as usize,
                p.avg() as usize,
                p.max() as usize,
            )
            .map(|c| (c.offset as u64, c.length as u32))
            .collect();
            for threads in 1..=5 {
                let chunks = chunks_on(&d[..], d.len() as u64, p, threads).unwrap();
                let cuts: Vec<(u64, u32)> = chunks.iter().map(|c| (c.offset, c.len)).collect();
                assert_eq!(cuts, reference, "{threads} threads");
                for c in &chunks {
                    let at = c.offset as usize;
                    assert_eq!(c.hash, chunk_hash(&d[at..at + c.len as usize]));
                }
            }
            let s = signature_at(&d[..], d.len() as u64, p, None).unwrap();
            assert_eq!(s.blake3, blake3::hash(&d));
        }
        let known = blake3::hash(b"told");
        let s = signature_at(&b"tiny"[..], 4, p, Some(known)).unwrap();
        assert_eq!((s.blake3, s.chunks.len()), (known, 1));
        assert_eq!(chunks_on(&b"tiny"[..], 4, p, 2).unwrap().len(), 1);
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
