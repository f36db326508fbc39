//! Positional reads, and a window over them that the chunk cutter and the planner slide
//! along a file.

use std::io;
use std::os::unix::fs::FileExt;

/// Positional reads (a file, or bytes in memory for tests).
pub trait ReadAt {
    /// Fills `buf` from `offset`.
    ///
    /// # Errors
    /// A read error, or the source ending before `buf` is full.
    fn read_exact_at_(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
}

impl ReadAt for std::fs::File {
    fn read_exact_at_(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        FileExt::read_exact_at(self, buf, offset).map_err(|e| {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                io::Error::new(e.kind(), "the file shrank during the transfer")
            } else {
                e
            }
        })
    }
}

impl ReadAt for [u8] {
    fn read_exact_at_(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| eof())?;
        let end = start.checked_add(buf.len()).ok_or_else(eof)?;
        buf.copy_from_slice(self.get(start..end).ok_or_else(eof)?);
        Ok(())
    }
}

impl<T: ReadAt + ?Sized> ReadAt for &T {
    fn read_exact_at_(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        (**self).read_exact_at_(buf, offset)
    }
}

fn eof() -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end")
}

/// Feeds `len` bytes of `src` from `at` to `h`.
///
/// # Errors
/// A read error, or the source ending first.
pub(crate) fn hash_range<S: ReadAt + ?Sized>(
    h: &mut blake3::Hasher,
    src: &S,
    at: u64,
    len: u64,
) -> io::Result<()> {
    let end = at.saturating_add(len);
    let mut w = Window::new(src, end);
    let mut pos = at;
    while pos < end {
        let data = w.get(pos, 1 << 20)?;
        h.update(data);
        pos += data.len() as u64;
    }
    Ok(())
}

/// Bytes read at a time by a [`Window`].
const BLOCK: usize = 4 << 20;

/// A sliding window over `len` bytes of a source, read in large blocks: [`Self::get`]
/// hands out a range as a slice without copying it again, so cutting and hashing run on
/// the bytes where one read put them.
pub(crate) struct Window<'a, S: ?Sized> {
    src: &'a S,
    len: u64,
    buf: Vec<u8>,
    /// Bytes of `buf` holding data.
    filled: usize,
    /// Source offset of `buf[0]`.
    start: u64,
}

impl<'a, S: ReadAt + ?Sized> Window<'a, S> {
    /// A window over the first `len` bytes of `src`.
    pub(crate) fn new(src: &'a S, len: u64) -> Self {
        Self {
            src,
            len,
            buf: Vec::new(),
            filled: 0,
            start: 0,
        }
    }

    /// Bytes `at..at + n`, cut at the end of the source.
    ///
    /// # Errors
    /// A read error.
    pub(crate) fn get(&mut self, at: u64, n: usize) -> io::Result<&[u8]> {
        let at = at.min(self.len);
        let end = at.saturating_add(n as u64).min(self.len);
        let have = self.start + self.filled as u64;
        if at < self.start || end > have {
            if at < self.start || at > have {
                self.filled = 0;
            } else {
                // Keep the bytes still ahead, then read the next block after them.
                let from = (at - self.start) as usize;
                self.buf.copy_within(from..self.filled, 0);
                self.filled -= from;
            }
            self.start = at;
            let want = (end - at).max(BLOCK as u64).min(self.len - at) as usize;
            if self.buf.len() < want {
                self.buf.resize(want, 0);
            }
            let from = self.filled;
            self.src
                .read_exact_at_(&mut self.buf[from..want], at + from as u64)?;
            self.filled = want;
        }
        let from = (at - self.start) as usize;
        Ok(&self.buf[from..from + (end - at) as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_hands_out_the_bytes_asked_for() {
        let data: Vec<u8> = (0..(3 * BLOCK + 12_345)).map(|i| (i % 251) as u8).collect();
        let mut w = Window::new(&data[..], data.len() as u64);
        let mut at = 0u64;
        for n in [1usize, 7, BLOCK - 3, 2 * BLOCK, 100, BLOCK + 1, 99_999_999] {
            let got = w.get(at, n).unwrap().to_vec();
            let end = (at as usize + n).min(data.len());
            assert_eq!(got, data[at as usize..end]);
            at = end as u64 - (n as u64 / 3).min(end as u64 - at);
        }
        assert!(w.get(data.len() as u64, 10).unwrap().is_empty());
        assert_eq!(
            w.get(5, 3).unwrap(),
            &data[5..8],
            "back to an earlier range"
        );
    }
}
