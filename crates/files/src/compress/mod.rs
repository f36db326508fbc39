//! Optional zstd compression of transfer bodies (`--compress`), decided block by block.
//!
//! A compressed body is cut into blocks of [`BLOCK_RAW`] bytes, each sent as one `block`
//! frame ([`crate::messages::Block`]): a zstd frame when compression pays, the bytes as
//! they are when it does not. Whether it pays is measured, not guessed: the first
//! [`SAMPLE`] bytes of a block are compressed first, and only when they shrink by at
//! least 1/[`MIN_SAVING`] is the whole block compressed (and kept only if the whole block
//! shrinks as much). So incompressible data (media, archives, encrypted files) costs one
//! small trial per block and travels at its own size plus a 30-byte frame header per MiB,
//! and a file that mixes both kinds (a tar of text and images) is compressed where it can
//! be. Per block rather than per file, because one sample of a file says little about the
//! rest of it; per block rather than per network chunk, because zstd needs room to find
//! matches (a 64 KiB window compresses text noticeably worse than 1 MiB).
//!
//! - [`encode_block`] / [`decode_block`]: the pure decision and its inverse, total on any
//!   input (a block that does not decode to exactly its announced length is refused);
//! - [`blocks`]: reading and writing `block` frames on a framed connection.

pub(crate) mod blocks;

use bytes::Bytes;

/// Raw bytes per block (the last block of a body may be shorter).
pub const BLOCK_RAW: usize = 1024 * 1024;
/// Bytes of a block compressed first to decide whether the rest is worth it.
pub const SAMPLE: usize = 64 * 1024;
/// Compression is kept when it saves at least 1/`MIN_SAVING` of the bytes.
pub const MIN_SAVING: usize = 8;
/// The zstd level (zstd's own default: a good ratio at a few hundred MB/s per core).
pub const LEVEL: i32 = 3;

/// One block as it goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Encoded {
    /// The raw bytes it stands for.
    pub raw: u64,
    /// Whether `data` is a zstd frame.
    pub zstd: bool,
    /// The block's body.
    pub data: Bytes,
}

/// Whether `compressed` bytes for `raw` bytes save enough to be worth sending.
fn pays(compressed: usize, raw: usize) -> bool {
    compressed <= raw - raw / MIN_SAVING && compressed < raw
}

/// `data` compressed, when that pays.
fn compressed(data: &[u8]) -> Option<Vec<u8>> {
    zstd::bulk::compress(data, LEVEL)
        .ok()
        .filter(|c| pays(c.len(), data.len()))
}

/// Encodes one block of at most [`BLOCK_RAW`] bytes: compressed when a sample and then
/// the whole block shrink by at least 1/[`MIN_SAVING`], else stored (CPU work: call it on
/// a blocking thread).
pub(crate) fn encode_block(raw: Bytes) -> Encoded {
    let len = raw.len() as u64;
    let stored = |raw: Bytes| Encoded {
        raw: len,
        zstd: false,
        data: raw,
    };
    if raw.is_empty() {
        return stored(raw);
    }
    // A sample decides for a large block; a small one is simply tried whole.
    if raw.len() >= 2 * SAMPLE && compressed(&raw[..SAMPLE]).is_none() {
        return stored(raw);
    }
    match compressed(&raw) {
        Some(c) => Encoded {
            raw: len,
            zstd: true,
            data: Bytes::from(c),
        },
        None => stored(raw),
    }
}

/// Why a block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// The block is not what its frame says.
    #[error("bad block: {0}")]
    Bad(String),
}

/// Decodes one block's body, checked against its frame: a stored block is its `raw`
/// bytes; a zstd block is smaller than `raw` and decompresses to exactly `raw` bytes
/// (never more: the output buffer is `raw` bytes, at most [`BLOCK_RAW`]).
///
/// # Errors
/// [`BlockError::Bad`] for any other body.
pub(crate) fn decode_block(raw: u64, zstd: bool, data: Bytes) -> Result<Bytes, BlockError> {
    if raw == 0 || raw > BLOCK_RAW as u64 {
        return Err(BlockError::Bad(format!(
            "a block stands for 1 to {BLOCK_RAW} bytes, not {raw}"
        )));
    }
    let raw = raw as usize;
    if !zstd {
        if data.len() != raw {
            return Err(BlockError::Bad(format!(
                "a stored block of {raw} bytes has {} bytes",
                data.len()
            )));
        }
        return Ok(data);
    }
    if data.len() >= raw {
        return Err(BlockError::Bad(format!(
            "a zstd block of {raw} bytes must be smaller than that, not {} bytes",
            data.len()
        )));
    }
    let out =
        zstd::bulk::decompress(&data, raw).map_err(|e| BlockError::Bad(format!("zstd: {e}")))?;
    if out.len() != raw {
        return Err(BlockError::Bad(format!(
            "a zstd block of {raw} bytes decompressed to {} bytes",
            out.len()
        )));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(len: usize) -> Bytes {
        let line = b"the quick brown fox jumps over the lazy dog 0123456789\n";
        Bytes::from(line.iter().copied().cycle().take(len).collect::<Vec<u8>>())
    }

    fn random(len: usize, seed: u64) -> Bytes {
        let mut x = seed | 1;
        Bytes::from(
            (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    x as u8
                })
                .collect::<Vec<u8>>(),
        )
    }

    #[test]
    fn text_is_compressed_and_comes_back() {
        let raw = text(BLOCK_RAW);
        let e = encode_block(raw.clone());
        assert!(e.zstd);
        assert!(e.data.len() < BLOCK_RAW / 100, "{}", e.data.len());
        assert_eq!(decode_block(e.raw, e.zstd, e.data).unwrap(), raw);
    }

    #[test]
    fn random_bytes_are_stored_as_they_are() {
        for len in [1, 100, SAMPLE, BLOCK_RAW] {
            let raw = random(len, len as u64);
            let e = encode_block(raw.clone());
            assert!(!e.zstd, "{len}");
            assert_eq!(e.data, raw);
            assert_eq!(decode_block(e.raw, e.zstd, e.data).unwrap(), raw);
        }
    }

    /// A block whose sample is random is stored without trying the rest; one whose
    /// sample compresses but whose rest does not is still stored.
    #[test]
    fn the_sample_decides_and_the_whole_block_confirms() {
        let mut v = random(SAMPLE, 7).to_vec();
        v.extend_from_slice(&text(BLOCK_RAW - SAMPLE));
        assert!(!encode_block(Bytes::from(v)).zstd);
        let mut v = text(SAMPLE).to_vec();
        v.extend_from_slice(&random(BLOCK_RAW - SAMPLE, 8));
        let e = encode_block(Bytes::from(v.clone()));
        assert!(!e.zstd);
        assert_eq!(e.data, v);
    }

    #[test]
    fn bad_blocks_are_refused() {
        let z = encode_block(text(4096));
        assert!(z.zstd);
        for (raw, zstd, data) in [
            (0, false, Bytes::new()),
            (
                BLOCK_RAW as u64 + 1,
                false,
                Bytes::from(vec![0; BLOCK_RAW + 1]),
            ),
            (5, false, Bytes::from_static(b"four")),
            (4, true, Bytes::from_static(b"four")),
            (4096, true, Bytes::from_static(b"not zstd at all")),
            // Decompresses to more than announced.
            (4095, true, z.data.clone()),
            // Decompresses to less than announced.
            (4097, true, z.data.clone()),
            (4096, true, z.data.slice(..z.data.len() - 1)),
        ] {
            assert!(decode_block(raw, zstd, data).is_err(), "{raw} {zstd}");
        }
        assert_eq!(decode_block(4096, true, z.data).unwrap(), text(4096));
    }

    proptest::proptest! {
        #[test]
        fn decoding_any_bytes_never_panics(raw in 0u64..70_000, zstd: bool, data: Vec<u8>) {
            let _ = decode_block(raw, zstd, Bytes::from(data));
        }
    }
}
