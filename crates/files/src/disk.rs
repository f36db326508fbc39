//! Streaming between disk and the network on blocking threads, hashing as bytes pass.
//!
//! The async side moves network chunks; a dedicated blocking thread does the file I/O and
//! the BLAKE3 work, connected by a small bounded channel, so receiving, hashing and writing
//! overlap on different cores and memory stays bounded (a few chunks in flight, never the
//! whole file).

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Size of one disk read (and of the chunks a [`DiskSource`] yields).
pub(crate) const READ_CHUNK: usize = 1024 * 1024;
/// Chunks in flight between the network side and the disk thread.
const CHANNEL_DEPTH: usize = 16;
/// A sink starts write-back of what it wrote every this many bytes, so the final fsync
/// does not have to push a whole large file at once.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("disk thread failed: {e}"))
}

/// Hashes `len` bytes of `file` from its start (one sequential pass with large reads).
///
/// # Errors
/// A read error, or the file being shorter than `len`.
pub(crate) fn hash_prefix(file: &mut File, len: u64) -> io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut left = len;
    while left > 0 {
        let want = usize::try_from(left).unwrap_or(usize::MAX).min(buf.len());
        let n = file.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being hashed",
            ));
        }
        hasher.update(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher)
}

/// What a finished [`DiskSink`] hands back.
#[derive(Debug)]
pub(crate) struct SinkDone {
    /// The hash of the prefix plus everything written.
    pub hasher: blake3::Hasher,
    /// Bytes written by this sink (not counting the prefix).
    pub written: u64,
    /// The file, positioned at its end.
    pub file: File,
}

/// A blocking writer thread: chunks in, appended to a file and hashed.
#[derive(Debug)]
pub(crate) struct DiskSink {
    tx: Option<mpsc::Sender<Bytes>>,
    handle: JoinHandle<io::Result<SinkDone>>,
}

impl DiskSink {
    /// Starts the thread. The first `prefix` bytes of `file` are kept and hashed first (a
    /// resumed transfer); anything after them is cut off, then chunks are appended.
    pub fn spawn(mut file: File, prefix: u64) -> Self {
        let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH);
        let handle = tokio::task::spawn_blocking(move || {
            let mut hasher = if prefix > 0 {
                hash_prefix(&mut file, prefix)?
            } else {
                blake3::Hasher::new()
            };
            file.set_len(prefix)?;
            file.seek(SeekFrom::Start(prefix))?;
            let mut written = 0u64;
            let mut since_writeback = 0u64;
            while let Some(chunk) = rx.blocking_recv() {
                hasher.update(&chunk);
                file.write_all(&chunk)?;
                written += chunk.len() as u64;
                since_writeback += chunk.len() as u64;
                if since_writeback >= WRITEBACK_EVERY {
                    start_writeback(&file);
                    since_writeback = 0;
                }
            }
            Ok(SinkDone {
                hasher,
                written,
                file,
            })
        });
        Self {
            tx: Some(tx),
            handle,
        }
    }

    /// Queues a chunk.
    ///
    /// # Errors
    /// The writer thread stopped (its error comes from [`Self::finish`]).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), SinkStopped> {
        match &self.tx {
            Some(tx) => tx.send(chunk).await.map_err(|_| SinkStopped),
            None => Err(SinkStopped),
        }
    }

    /// Waits for every queued chunk to be written; with `fsync`, the data also reaches the
    /// disk before this returns.
    ///
    /// # Errors
    /// The first write error (ENOSPC, EIO, ...).
    pub async fn finish(mut self, fsync: bool) -> io::Result<SinkDone> {
        self.tx = None;
        let done = self.handle.await.map_err(join_error)??;
        if fsync {
            let file = done.file;
            let file = tokio::task::spawn_blocking(move || file.sync_all().map(|()| file))
                .await
                .map_err(join_error)??;
            return Ok(SinkDone { file, ..done });
        }
        Ok(done)
    }
}

/// The writer thread has stopped; call [`DiskSink::finish`] for its error.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("disk writer stopped")]
pub(crate) struct SinkStopped;

/// Asks the kernel to start writing back dirty pages of `file` now (Linux), so a large
/// file's final fsync has little left to do.
fn start_writeback(file: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range only reads the descriptor we own; failure is harmless.
        unsafe {
            libc::sync_file_range(file.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// A blocking reader thread: a file range out as chunks, optionally hashed.
#[derive(Debug)]
pub(crate) struct DiskSource {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    handle: JoinHandle<Option<blake3::Hasher>>,
}

impl DiskSource {
    /// Starts reading `len` bytes of `file` from `offset`. With `hash`, the thread also
    /// hashes the file's first `offset` bytes (without sending them) and everything sent,
    /// so [`Self::finish`] yields the whole file's hash.
    pub fn spawn(mut file: File, offset: u64, len: u64, hash: bool) -> Self {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(4);
        let handle = tokio::task::spawn_blocking(move || {
            let mut start = || -> io::Result<Option<blake3::Hasher>> {
                let h = if hash {
                    Some(hash_prefix(&mut file, offset)?)
                } else {
                    None
                };
                file.seek(SeekFrom::Start(offset))?;
                Ok(h)
            };
            let mut hasher = match start() {
                Ok(h) => h,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return None;
                }
            };
            let mut left = len;
            while left > 0 {
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
                let mut buf = vec![0u8; want];
                let mut filled = 0;
                while filled < want {
                    match file.read(&mut buf[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => {
                            let _ = tx.blocking_send(Err(e));
                            return None;
                        }
                    }
                }
                if filled == 0 {
                    let _ = tx.blocking_send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while it was being sent",
                    )));
                    return None;
                }
                buf.truncate(filled);
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf);
                }
                left -= filled as u64;
                if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                    return None;
                }
            }
            hasher
        });
        Self { rx, handle }
    }

    /// The next chunk; `None` once the range is done.
    ///
    /// # Errors
    /// A read error, or the file shrinking under us.
    pub async fn next(&mut self) -> io::Result<Option<Bytes>> {
        self.rx.recv().await.transpose()
    }

    /// The whole file's hash (when hashing was asked for and every chunk was taken).
    ///
    /// # Errors
    /// The thread failed.
    pub async fn finish(self) -> io::Result<Option<blake3::Hash>> {
        drop(self.rx);
        Ok(self.handle.await.map_err(join_error)?.map(|h| h.finalize()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sink_resumes_after_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello garbage").unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut sink = DiskSink::spawn(file, 5);
        sink.write(Bytes::from_static(b" world")).await.unwrap();
        let done = sink.finish(true).await.unwrap();
        assert_eq!(done.written, 6);
        assert_eq!(std::fs::read(&path).unwrap(), b"hello world");
        assert_eq!(done.hasher.finalize(), blake3::hash(b"hello world"));
    }

    #[tokio::test]
    async fn source_hashes_whole_file_from_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let mut src =
            DiskSource::spawn(File::open(&path).unwrap(), 10, data.len() as u64 - 10, true);
        let mut got = Vec::new();
        while let Some(c) = src.next().await.unwrap() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, &data[10..]);
        assert_eq!(src.finish().await.unwrap(), Some(blake3::hash(&data)));
    }

    #[tokio::test]
    async fn source_reports_shrunk_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let mut src = DiskSource::spawn(File::open(&path).unwrap(), 0, 10, false);
        assert_eq!(
            src.next().await.unwrap().unwrap(),
            Bytes::from_static(b"abc")
        );
        assert!(src.next().await.is_err());
    }
}
