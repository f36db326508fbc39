//! Deltas: what turns a base file into a new one, as copies of base ranges and literal
//! bytes.
//!
//! The side that has the new file chunks it ([`super::chunks`]) and looks each chunk up in
//! the base's chunk list: a known chunk becomes a copy, an unknown one a literal
//! ([`plan`]). Adjacent copies and literals are merged. On the wire (see `docs/files.md`
//! "sync") an operation is a tag byte and little-endian numbers:
//!
//! - `1`, base offset `u64`, length `u64`: copy that range of the base;
//! - `2`, length `u64`, then that many bytes: literal.
//!
//! The plan is made first (one pass over the new file, which also hashes it), so the
//! delta's exact length is known for the frame header before its first byte is sent;
//! [`Encoder`] then reads the literals again while sending. [`Parser`] is the pure, total,
//! streaming reader of the wire form; [`Applier`] writes the result while hashing it.

use std::collections::HashMap;
use std::io::{self, Read, Write};

use bytes::Bytes;

use super::chunks::{self, Chunk, ChunkParams, Cutter};
use super::output::{Copied, KernelCopy, OutputHash};
pub use super::read_at::ReadAt;
use super::read_at::Window;

/// Tag of a copy operation.
const TAG_COPY: u8 = 1;
/// Tag of a literal operation.
const TAG_LITERAL: u8 = 2;
/// Encoded size of a copy operation.
const COPY_LEN: u64 = 17;
/// Encoded size of a literal operation's header.
const LITERAL_HEAD: u64 = 9;
/// Bytes read from a file at a time while encoding.
const PIECE: usize = 256 * 1024;
/// Bytes of the base read at a time while applying a copy.
const COPY_PIECE: usize = 1 << 20;

/// One operation of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Copy `len` bytes of the base from `base`.
    Copy {
        /// Offset in the base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// Send `len` bytes of the new file from `src` literally.
    Literal {
        /// Offset in the new file.
        src: u64,
        /// Length.
        len: u64,
    },
}

/// A delta's operations, with what they produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The operations in order.
    pub ops: Vec<Op>,
    /// The size of the new file.
    pub total: u64,
    /// The new file's BLAKE3.
    pub blake3: blake3::Hash,
}

impl Plan {
    /// The length of the delta on the wire.
    pub fn encoded_len(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Copy { .. } => COPY_LEN,
                Op::Literal { len, .. } => LITERAL_HEAD + len,
            })
            .sum()
    }

    /// Bytes of the new file sent literally.
    pub fn literal_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Literal { len, .. } => *len,
                Op::Copy { .. } => 0,
            })
            .sum()
    }
}

/// Plans the delta from the base described by `base` (cut with `params`) to the content
/// `new` yields (read into memory first: for tests and small inputs; files go through
/// [`plan_at`]).
///
/// # Errors
/// Reading `new` failed.
pub fn plan<R: Read>(mut new: R, base: &[Chunk], params: ChunkParams) -> io::Result<Plan> {
    let mut data = Vec::new();
    new.read_to_end(&mut data)?;
    plan_at(&data[..], data.len() as u64, base, params, None)
}

/// Plans the delta from the base described by `base` (cut with `params`) to the first
/// `len` bytes of `new`, in one pass that cuts only where the files differ: after a chunk
/// found in the base, the next bytes are first tried as the base's next chunk (one hash,
/// no cut search), which is what they are wherever the files agree. The new file's
/// BLAKE3 is `whole` when the caller knows it, else hashed on a thread of its own.
///
/// # Errors
/// Reading `new` failed.
pub fn plan_at<S: ReadAt + Sync + ?Sized>(
    new: &S,
    len: u64,
    base: &[Chunk],
    params: ChunkParams,
    whole: Option<blake3::Hash>,
) -> io::Result<Plan> {
    let (ops, blake3) =
        chunks::beside_whole_hash(new, len, whole, || plan_ops(new, len, base, params))?;
    Ok(Plan {
        ops,
        total: len,
        blake3,
    })
}

/// The operations of [`plan_at`] (for a caller that hashes the new file itself).
///
/// # Errors
/// Reading `new` failed.
pub fn plan_ops<S: ReadAt + ?Sized>(
    new: &S,
    len: u64,
    base: &[Chunk],
    params: ChunkParams,
) -> io::Result<Vec<Op>> {
    if base.is_empty() {
        return Ok((len > 0)
            .then_some(Op::Literal { src: 0, len })
            .into_iter()
            .collect());
    }
    let known = index(base);
    let cutter = Cutter::new(params);
    let mut w = Window::new(new, len);
    let mut ops = Vec::new();
    let mut at = 0u64;
    // The base chunk the next bytes are expected to be (the one after the last match).
    let mut expected: Option<usize> = None;
    while at < len {
        if let Some((i, c)) = expected.take().and_then(|i| base.get(i).map(|c| (i, c))) {
            let n = u64::from(c.len);
            if at + n <= len && chunks::chunk_hash(w.get(at, c.len as usize)?) == c.hash {
                push(
                    &mut ops,
                    Op::Copy {
                        base: c.offset,
                        len: n,
                    },
                );
                expected = Some(i + 1);
                at += n;
                continue;
            }
        }
        let data = w.get(at, cutter.max())?;
        let n = cutter.cut(data);
        let hash = chunks::chunk_hash(&data[..n]);
        let step = n as u64;
        match known.get(&(hash, n as u32)) {
            Some(&i) => {
                push(
                    &mut ops,
                    Op::Copy {
                        base: base[i].offset,
                        len: step,
                    },
                );
                expected = Some(i + 1);
            }
            None => push(&mut ops, Op::Literal { src: at, len: step }),
        }
        at += step;
    }
    Ok(ops)
}

/// The base's chunks by (hash, length): the first of equal chunks.
fn index(base: &[Chunk]) -> HashMap<(chunks::ChunkHash, u32), usize> {
    base.iter()
        .enumerate()
        .rev()
        .map(|(i, c)| ((c.hash, c.len), i))
        .collect()
}

/// Appends `op`, merged into the last operation where it continues it.
fn push(ops: &mut Vec<Op>, op: Op) {
    match (ops.last_mut(), op) {
        (Some(Op::Copy { base: b, len: l }), Op::Copy { base, len }) if *b + *l == base => {
            *l += len
        }
        (Some(Op::Literal { src: s, len: l }), Op::Literal { src, len }) if *s + *l == src => {
            *l += len
        }
        _ => ops.push(op),
    }
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Produces a plan's wire form in pieces of at most about 256 KiB, reading literals from
/// the new file.
#[derive(Debug)]
pub struct Encoder<S> {
    src: S,
    ops: std::vec::IntoIter<Op>,
    /// A literal still being sent: (offset, bytes left).
    pending: Option<(u64, u64)>,
    /// Bytes of the new file the pieces so far stand for (copies and literals).
    represented: u64,
}

impl<S: ReadAt> Encoder<S> {
    /// An encoder of `plan` over the new file `src`.
    pub fn new(src: S, plan: &Plan) -> Self {
        Self {
            src,
            ops: plan.ops.clone().into_iter(),
            pending: None,
            represented: 0,
        }
    }

    /// Bytes of the new file that the pieces handed out so far stand for (what a progress
    /// bar shows: a copy of 1 MiB is 17 bytes on the wire and 1 MiB of the file).
    pub fn represented(&self) -> u64 {
        self.represented
    }

    /// The next piece of the delta; `None` at the end.
    ///
    /// # Errors
    /// Reading the new file failed (or it shrank).
    pub fn next_piece(&mut self) -> io::Result<Option<Vec<u8>>> {
        let mut out = Vec::new();
        while out.len() < PIECE {
            if let Some((off, left)) = self.pending {
                let n = left.min((PIECE - out.len()) as u64) as usize;
                let at = out.len();
                out.resize(at + n, 0);
                self.src.read_exact_at_(&mut out[at..], off)?;
                self.represented += n as u64;
                let left = left - n as u64;
                self.pending = (left > 0).then_some((off + n as u64, left));
                continue;
            }
            match self.ops.next() {
                None => break,
                Some(Op::Copy { base, len }) => {
                    self.represented += len;
                    out.push(TAG_COPY);
                    out.extend_from_slice(&base.to_le_bytes());
                    out.extend_from_slice(&len.to_le_bytes());
                }
                Some(Op::Literal { src, len }) => {
                    out.push(TAG_LITERAL);
                    out.extend_from_slice(&len.to_le_bytes());
                    self.pending = (len > 0).then_some((src, len));
                }
            }
        }
        Ok((!out.is_empty()).then_some(out))
    }
}

/// A parsed piece of a delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Copy a range of the base.
    Copy {
        /// Offset in the base.
        base: u64,
        /// Length.
        len: u64,
    },
    /// Literal bytes (a literal may arrive in several pieces).
    Literal(&'a [u8]),
}

/// The streaming reader of a delta's wire form: fed arbitrary slices, it hands out whole
/// copies and literal bytes. Total: any input is either pieces or an `InvalidData` error
/// (an unknown tag, or an operation of 0 bytes).
#[derive(Debug, Default)]
pub struct Parser {
    head: [u8; COPY_LEN as usize],
    have: usize,
    literal_left: u64,
}

impl Parser {
    /// Parses `input`, calling `sink` for every piece.
    ///
    /// # Errors
    /// An unknown tag, or whatever `sink` returns.
    pub fn feed<'a>(
        &mut self,
        mut input: &'a [u8],
        mut sink: impl FnMut(Piece<'a>) -> io::Result<()>,
    ) -> io::Result<()> {
        while !input.is_empty() {
            if self.literal_left > 0 {
                let n = usize::try_from(self.literal_left)
                    .unwrap_or(usize::MAX)
                    .min(input.len());
                let (now, rest) = input.split_at(n);
                self.literal_left -= n as u64;
                input = rest;
                sink(Piece::Literal(now))?;
                continue;
            }
            let tag = if self.have == 0 {
                input[0]
            } else {
                self.head[0]
            };
            let need = match tag {
                TAG_COPY => COPY_LEN as usize,
                TAG_LITERAL => LITERAL_HEAD as usize,
                other => return Err(invalid(format!("unknown delta operation {other}"))),
            };
            let n = (need - self.have).min(input.len());
            self.head[self.have..self.have + n].copy_from_slice(&input[..n]);
            self.have += n;
            input = &input[n..];
            if self.have < need {
                continue;
            }
            self.have = 0;
            let num = |at: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.head[at..at + 8]);
                u64::from_le_bytes(b)
            };
            // Every operation produces at least one byte (the encoder never sends an
            // empty one), so a delta cannot make the receiver work without output.
            if self.head[0] == TAG_COPY {
                let len = num(9);
                if len == 0 {
                    return Err(invalid("a delta copy of 0 bytes"));
                }
                sink(Piece::Copy { base: num(1), len })?;
            } else {
                let len = num(1);
                if len == 0 {
                    return Err(invalid("a delta literal of 0 bytes"));
                }
                self.literal_left = len;
            }
        }
        Ok(())
    }

    /// Whether the input so far ends on an operation boundary.
    pub fn is_complete(&self) -> bool {
        self.have == 0 && self.literal_left == 0
    }
}

/// Builds a new file from a base and a delta, hashing what it writes.
#[derive(Debug)]
pub struct Applier<B, W: Write> {
    base: B,
    base_len: u64,
    out: io::BufWriter<W>,
    hashing: OutputHash,
    /// Copies of base ranges inside the kernel, when base and output allow it.
    kernel: Option<KernelCopy>,
    written: u64,
    limit: u64,
    parser: Parser,
}

impl<B: ReadAt, W: Write> Applier<B, W> {
    /// Applies deltas against `base` (`base_len` bytes) into `out`, refusing to write more
    /// than `limit` bytes.
    pub fn new(base: B, base_len: u64, out: W, limit: u64) -> Self {
        Self {
            base,
            base_len,
            out: io::BufWriter::with_capacity(PIECE, out),
            hashing: OutputHash::new(None),
            kernel: None,
            written: 0,
            limit,
            parser: Parser::default(),
        }
    }

    /// Copies base ranges inside the kernel (`copy_file_range`: the bytes do not pass
    /// through this process, and are read again only to be hashed, on the hashing
    /// thread): `base` is the base file and `out` a clone of the output file (sharing its
    /// position). Where the kernel cannot (another file system), copies fall back to
    /// reading and writing.
    pub fn with_kernel_copy(mut self, base: std::fs::File, out: std::fs::File) -> Self {
        let base = std::sync::Arc::new(base);
        self.hashing = OutputHash::new(Some(base.clone()));
        self.kernel = Some(KernelCopy::new(base, out));
        self
    }

    /// Applies the next bytes of the delta.
    ///
    /// # Errors
    /// A malformed delta, a copy past the end of the base, more output than the limit, or
    /// an I/O error.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.feed_bytes(&Bytes::copy_from_slice(bytes))
    }

    /// Applies the next bytes of the delta (literals are handed to the hashing thread
    /// without a copy).
    ///
    /// # Errors
    /// As [`Self::feed`].
    pub fn feed_bytes(&mut self, bytes: &Bytes) -> io::Result<()> {
        let Self {
            base,
            base_len,
            out,
            hashing,
            kernel,
            written,
            limit,
            parser,
        } = self;
        parser.feed(bytes, |piece| {
            let len = match piece {
                Piece::Copy { len, .. } => len,
                Piece::Literal(b) => b.len() as u64,
            };
            if written.saturating_add(len) > *limit {
                return Err(invalid(format!(
                    "the delta produces more than the announced {limit} bytes"
                )));
            }
            match piece {
                Piece::Literal(b) => {
                    out.write_all(b)?;
                    *written += len;
                    hashing.bytes(bytes.slice_ref(b), *written);
                }
                Piece::Copy { base: off, len } => {
                    if off.checked_add(len).is_none_or(|end| end > *base_len) {
                        return Err(invalid(
                            "the delta copies past the end of the base file (did it change?)",
                        ));
                    }
                    if let Some(k) = kernel {
                        out.flush()?;
                        match k.copy(off, len)? {
                            Copied::Done => {
                                *written += len;
                                return hashing.base_range(off, len, *written);
                            }
                            Copied::Unsupported => *kernel = None,
                        }
                    }
                    let mut done = 0u64;
                    while done < len {
                        let n = (len - done).min(COPY_PIECE as u64) as usize;
                        let mut buf = vec![0u8; n];
                        base.read_exact_at_(&mut buf, off + done)?;
                        out.write_all(&buf)?;
                        done += n as u64;
                        *written += n as u64;
                        hashing.bytes(Bytes::from(buf), *written);
                    }
                }
            }
            Ok(())
        })
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Ends the delta: the output, its hash and its length.
    ///
    /// # Errors
    /// The delta stopped mid-operation, or flushing failed.
    pub fn finish(self) -> io::Result<(W, blake3::Hash, u64)> {
        if !self.parser.is_complete() {
            return Err(invalid("the delta ends in the middle of an operation"));
        }
        let out = self.out.into_inner().map_err(|e| e.into_error())?;
        Ok((out, self.hashing.finish()?, self.written))
    }
}

/// The whole wire form of `plan` over `src` (tests and small files).
///
/// # Errors
/// Reading `src` failed.
pub fn encode_all<S: ReadAt>(src: S, plan: &Plan) -> io::Result<Vec<u8>> {
    let mut e = Encoder::new(src, plan);
    let mut out = Vec::new();
    while let Some(p) = e.next_piece()? {
        out.extend_from_slice(&p);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    /// Delta from `base` to `new`, applied in slices of `step` bytes.
    fn roundtrip(base: &[u8], new: &[u8], step: usize) -> (Vec<u8>, Plan, u64) {
        let params = ChunkParams::for_size(base.len() as u64);
        let sig = chunks::signature(base, params).unwrap();
        let plan = plan(new, &sig.chunks, params).unwrap();
        let wire = encode_all(new, &plan).unwrap();
        assert_eq!(wire.len() as u64, plan.encoded_len());
        let mut e = Encoder::new(new, &plan);
        while e.next_piece().unwrap().is_some() {}
        assert_eq!(e.represented(), plan.total);
        let mut a = Applier::new(base, base.len() as u64, Vec::new(), new.len() as u64);
        for s in wire.chunks(step.max(1)) {
            a.feed(s).unwrap();
        }
        let (out, hash, n) = a.finish().unwrap();
        assert_eq!(hash, plan.blake3);
        assert_eq!(n, plan.total);
        (out, plan, wire.len() as u64)
    }

    #[test]
    fn edits_send_little() {
        let base = data(1 << 20, 9);
        let mut mid = base.clone();
        mid[500_000..500_010].copy_from_slice(b"0123456789");
        let mut start = base.clone();
        start.splice(0..0, b"head".iter().copied());
        let mut tail = base.clone();
        tail.extend_from_slice(b"appended tail");
        let trunc = base[..700_000].to_vec();
        for new in [mid, start, tail, trunc] {
            let (out, _, wire) = roundtrip(&base, &new, 4096);
            assert_eq!(out, new);
            assert!(wire < 200 * 1024, "sent {wire} for {}", new.len());
        }
    }

    #[test]
    fn an_unchanged_file_is_one_copy_and_a_large_result_is_hashed_right() {
        // Over the size where the applier hashes on a thread of its own.
        let base = data(12 << 20, 21);
        let (out, plan, wire) = roundtrip(&base, &base, 1 << 20);
        assert_eq!(out, base);
        assert_eq!(
            plan.ops,
            vec![Op::Copy {
                base: 0,
                len: base.len() as u64
            }]
        );
        assert_eq!(wire, COPY_LEN);
        let mut new = base.clone();
        new[6 << 20..(6 << 20) + 5000].fill(7);
        new.truncate((11 << 20) + 3);
        let (out, plan, _) = roundtrip(&base, &new, 300_000);
        assert_eq!(out, new);
        assert!(plan.literal_bytes() < 300_000, "{}", plan.literal_bytes());
    }

    #[test]
    fn copies_made_in_the_kernel_give_the_same_file_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        // Under and over the size where the hash moves to its own thread.
        for size in [300_000usize, 12 << 20] {
            let base = data(size, 8);
            let mut new = base.clone();
            new.splice(size / 3..size / 3 + 1000, data(5000, 9));
            let params = ChunkParams::for_size(size as u64);
            let sig = chunks::signature(&base[..], params).unwrap();
            let plan = plan(&new[..], &sig.chunks, params).unwrap();
            assert!(
                plan.ops.len() >= 3,
                "copies around a literal: {:?}",
                plan.ops
            );
            let wire = encode_all(&new[..], &plan).unwrap();
            let base_path = dir.path().join("base");
            std::fs::write(&base_path, &base).unwrap();
            let out_path = dir.path().join("out");
            let out = std::fs::File::create(&out_path).unwrap();
            let base_file = std::fs::File::open(&base_path).unwrap();
            let mut a = Applier::new(
                base_file.try_clone().unwrap(),
                size as u64,
                out.try_clone().unwrap(),
                new.len() as u64,
            )
            .with_kernel_copy(base_file, out);
            for piece in wire.chunks(70_000) {
                a.feed(piece).unwrap();
            }
            let (_, hash, n) = a.finish().unwrap();
            assert_eq!((hash, n), (blake3::hash(&new), new.len() as u64));
            assert_eq!(std::fs::read(&out_path).unwrap(), new);
        }
    }

    #[test]
    fn empty_base_sends_everything_and_empty_new_sends_nothing() {
        let new = data(100_000, 5);
        let (out, plan, _) = roundtrip(&[], &new, 1000);
        assert_eq!(out, new);
        assert_eq!(plan.literal_bytes(), new.len() as u64);
        let (out, plan, wire) = roundtrip(&new, &[], 7);
        assert!(out.is_empty() && plan.ops.is_empty() && wire == 0);
    }

    #[test]
    fn bad_deltas_are_refused() {
        let base = b"hello world".to_vec();
        let mut a = Applier::new(&base[..], 11, Vec::new(), 100);
        assert!(a.feed(&[9]).is_err());
        let mut a = Applier::new(&base[..], 11, Vec::new(), 100);
        let mut copy = vec![TAG_COPY];
        copy.extend_from_slice(&5u64.to_le_bytes());
        copy.extend_from_slice(&10u64.to_le_bytes());
        assert!(a.feed(&copy).is_err(), "past the end of the base");
        let mut a = Applier::new(&base[..], 11, Vec::new(), 3);
        let mut lit = vec![TAG_LITERAL];
        lit.extend_from_slice(&5u64.to_le_bytes());
        lit.extend_from_slice(b"abcde");
        assert!(a.feed(&lit).is_err(), "over the limit");
        let mut a = Applier::new(&base[..], 11, Vec::new(), 100);
        a.feed(&lit[..4]).unwrap();
        assert!(a.finish().is_err(), "cut mid-operation");
    }

    #[test]
    fn empty_operations_are_refused() {
        let base = b"hello world".to_vec();
        let mut copy = vec![TAG_COPY];
        copy.extend_from_slice(&3u64.to_le_bytes());
        copy.extend_from_slice(&0u64.to_le_bytes());
        let mut a = Applier::new(&base[..], 11, Vec::new(), 100);
        assert!(a.feed(&copy).is_err(), "a copy of nothing");
        let mut lit = vec![TAG_LITERAL];
        lit.extend_from_slice(&0u64.to_le_bytes());
        let mut a = Applier::new(&base[..], 11, Vec::new(), 100);
        assert!(a.feed(&lit).is_err(), "a literal of nothing");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Total: any bytes, in any slicing, are pieces or an error, never a panic.
        #[test]
        fn any_bytes_parse_or_fail(
            bytes in proptest::collection::vec(any::<u8>(), 0..200),
            step in 1usize..40,
        ) {
            let base = b"0123456789".to_vec();
            let mut a = Applier::new(&base[..], 10, Vec::new(), 1000);
            let mut failed = false;
            for s in bytes.chunks(step) {
                if a.feed(s).is_err() {
                    failed = true;
                    break;
                }
            }
            if !failed {
                if let Ok((out, _, n)) = a.finish() {
                    prop_assert_eq!(out.len() as u64, n);
                    prop_assert!(n <= 1000);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn any_edit_roundtrips(
            seed in 1u64..1000,
            len in 0usize..60_000,
            edits in proptest::collection::vec((0usize..60_000, 0usize..3000, proptest::collection::vec(any::<u8>(), 0..200)), 0..4),
            step in 1usize..5000,
        ) {
            let base = data(len, seed);
            let mut new = base.clone();
            for (at, cut, ins) in edits {
                let at = at.min(new.len());
                let end = (at + cut).min(new.len());
                new.splice(at..end, ins);
            }
            let (out, _, _) = roundtrip(&base, &new, step);
            prop_assert_eq!(out, new);
        }
    }
}
