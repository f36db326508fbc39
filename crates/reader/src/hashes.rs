//! The three hashes the catalog keeps per book: MD5 (the course client's cache key),
//! KOReader's partial MD5 (the kosync document id) and BLAKE3 (ETags, cache keys).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use md5::{Digest, Md5};

use crate::error::{ReaderError, Result};

/// Whole-file hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHashes {
    /// MD5 of the whole file, lowercase hex.
    pub md5: String,
    /// BLAKE3 of the whole file, lowercase hex.
    pub blake3: String,
    /// KOReader's partial MD5, lowercase hex.
    pub partial_md5: String,
    /// Bytes hashed.
    pub size: u64,
}

/// Hashes a file in one streaming pass (plus the few partial-MD5 samples).
///
/// # Errors
/// The file cannot be read.
pub fn hash_file(path: &Path) -> Result<FileHashes> {
    let mut f = File::open(path).map_err(|e| ReaderError::io(path, e))?;
    let mut md5 = Md5::new();
    let mut b3 = blake3::Hasher::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| ReaderError::io(path, e))?;
        if n == 0 {
            break;
        }
        md5.update(&buf[..n]);
        b3.update(&buf[..n]);
        size += n as u64;
    }
    Ok(FileHashes {
        md5: hex::encode(md5.finalize()),
        blake3: b3.finalize().to_hex().to_string(),
        partial_md5: partial_md5(&mut f, size).map_err(|e| ReaderError::io(path, e))?,
        size,
    })
}

/// KOReader's `util.partialMD5`: MD5 over 1024-byte samples at offsets 0 and
/// `1024 << 2i` for i in 0..=10, stopping at the first offset at or past the end.
///
/// (In KOReader the loop starts at i = -1, and LuaJIT's `lshift(1024, -2)` is 0.)
///
/// # Errors
/// Seek or read errors.
pub fn partial_md5<R: Read + Seek>(r: &mut R, size: u64) -> std::io::Result<String> {
    let mut md5 = Md5::new();
    let mut sample = vec![0u8; 1024];
    let offsets = std::iter::once(0u64).chain((0..=10).map(|i| 1024u64 << (2 * i)));
    for offset in offsets {
        if offset >= size {
            break;
        }
        r.seek(SeekFrom::Start(offset))?;
        let want = usize::try_from((size - offset).min(1024)).unwrap_or(1024);
        r.read_exact(&mut sample[..want])?;
        md5.update(&sample[..want]);
    }
    Ok(hex::encode(md5.finalize()))
}

/// MD5 of a byte string, lowercase hex (kosync keys, Basic-auth checks).
pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn empty() {
        let mut c = Cursor::new(Vec::new());
        assert_eq!(
            partial_md5(&mut c, 0).unwrap(),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }

    #[test]
    fn small_file_is_whole_md5() {
        let data = b"hello world".to_vec();
        let mut c = Cursor::new(data.clone());
        assert_eq!(
            partial_md5(&mut c, data.len() as u64).unwrap(),
            md5_hex(&data)
        );
    }

    #[test]
    fn samples_at_the_koreader_offsets() {
        let data: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut expect = Vec::new();
        for off in [0usize, 1024, 4096, 16384] {
            expect.extend_from_slice(&data[off..(off + 1024).min(data.len())]);
        }
        let mut c = Cursor::new(data.clone());
        assert_eq!(
            partial_md5(&mut c, data.len() as u64).unwrap(),
            md5_hex(&expect)
        );
    }
}
