//! Streaming between disk and the network on blocking threads, hashing as bytes pass.
//!
//! The async side moves network chunks; blocking threads do the file I/O and the BLAKE3
//! work, connected by small bounded channels, so receiving, hashing and writing overlap on
//! different cores and memory stays bounded (a few batches in flight, never the whole
//! file).
//!
//! A [`DiskSink`] hashes the network's chunks (tens of KiB each, as the socket delivers
//! them) as they arrive and hands them to its writer thread, gathered into batches of up
//! to [`BATCH_BYTES`] (one `writev` each) while the writer is behind: hashing and writing
//! a byte are the two largest costs of receiving it, so they run on different cores. A
//! [`DiskSource`] reads 1 MiB chunks into buffers it reuses (no allocation and no zeroing
//! per chunk) and hashes each while it is still in the cache.

use std::fs::File;
use std::io::{self, IoSlice, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Size of one disk read (and of the chunks a [`DiskSource`] yields).
pub(crate) const READ_CHUNK: usize = 1024 * 1024;
/// A [`DiskSink`] hands chunks to its threads in batches of at least this many bytes
/// (fewer wake-ups of the threads, one `writev` per batch).
pub(crate) const BATCH_BYTES: usize = 1024 * 1024;
/// Batches in flight between the network side and each disk thread.
const CHANNEL_DEPTH: usize = 2;
/// Chunks in flight between a [`DiskSource`] and the network side.
const SOURCE_DEPTH: usize = 2;
/// A sink starts write-back of what it wrote every this many bytes, so the final fsync
/// does not have to push a whole large file at once.
const WRITEBACK_EVERY: u64 = 16 * 1024 * 1024;

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("disk thread failed: {e}"))
}

/// Hashes `len` bytes of `file` from its start (one sequential pass with large reads,
/// positioned reads: the file's cursor is not moved).
///
/// # Errors
/// A read error, or the file being shorter than `len`.
pub(crate) fn hash_prefix(file: &File, len: u64) -> io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; READ_CHUNK.min(usize::try_from(len).unwrap_or(usize::MAX))];
    let mut at = 0u64;
    while at < len {
        let want = usize::try_from(len - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = match file.read_at(&mut buf[..want], at) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being hashed",
            ));
        }
        hasher.update(&buf[..n]);
        at += n as u64;
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

/// Chunks handed to the writer thread together.
type Batch = Vec<Bytes>;

/// Appends chunks to a file on a blocking thread, hashing them on the way in.
///
/// Each chunk is hashed by the caller's task as it is queued, right after the socket
/// copied it into memory and while it is still in that core's cache (hashing the same
/// bytes later on another thread costs half as much again: they have to come back from
/// memory). The writer thread gets each chunk at once while it keeps up, and batches of up
/// to [`BATCH_BYTES`] (one `writev` each) while it is behind.
/// Hashing a chunk of the network's size (at most a few hundred KiB) takes tens of
/// microseconds, as long as the copy out of the socket did.
#[derive(Debug)]
pub(crate) struct DiskSink {
    /// Chunks not yet handed over (less than [`BATCH_BYTES`]).
    pending: Vec<Bytes>,
    /// Their length.
    pending_len: usize,
    write_tx: Option<mpsc::Sender<Batch>>,
    writer: JoinHandle<io::Result<(File, u64)>>,
    /// The hash so far, once the kept prefix is hashed.
    hasher: Option<blake3::Hasher>,
    /// Hashing the kept prefix of a resumed transfer (on a blocking thread).
    prefix: Option<JoinHandle<io::Result<blake3::Hasher>>>,
}

/// Writes every byte of `batch` at the file's cursor.
fn write_batch(mut file: &File, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
    let mut bufs = &mut slices[..];
    while !bufs.is_empty() {
        match file.write_vectored(bufs) {
            Ok(0) => return Err(io::Error::from(io::ErrorKind::WriteZero)),
            Ok(n) => IoSlice::advance_slices(&mut bufs, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl DiskSink {
    /// Starts the writer thread. The first `prefix` bytes of `file` are kept and hashed
    /// first (a resumed transfer); anything after them is cut off, then chunks are
    /// appended.
    pub fn spawn(file: File, prefix: u64) -> Self {
        let (hasher, prefix_job) = if prefix > 0 {
            let job = match file.try_clone() {
                Ok(f) => tokio::task::spawn_blocking(move || hash_prefix(&f, prefix)),
                Err(e) => tokio::task::spawn_blocking(move || Err(e)),
            };
            (None, Some(job))
        } else {
            (Some(blake3::Hasher::new()), None)
        };
        let (write_tx, mut write_rx) = mpsc::channel::<Batch>(CHANNEL_DEPTH);
        let writer = tokio::task::spawn_blocking(move || {
            // The prefix is hashed by position: this cursor is the writer's alone.
            file.set_len(prefix)?;
            (&file).seek(SeekFrom::Start(prefix))?;
            let mut written = 0u64;
            let mut since_writeback = 0u64;
            while let Some(batch) = write_rx.blocking_recv() {
                write_batch(&file, &batch)?;
                let n: u64 = batch.iter().map(|b| b.len() as u64).sum();
                written += n;
                since_writeback += n;
                if since_writeback >= WRITEBACK_EVERY {
                    start_writeback(&file);
                    since_writeback = 0;
                }
            }
            Ok((file, written))
        });
        Self {
            pending: Vec::new(),
            pending_len: 0,
            write_tx: Some(write_tx),
            writer,
            hasher,
            prefix: prefix_job,
        }
    }

    /// The hasher, once the prefix is hashed.
    async fn hasher(&mut self) -> io::Result<&mut blake3::Hasher> {
        if let Some(job) = self.prefix.take() {
            self.hasher = Some(job.await.map_err(join_error)??);
        }
        self.hasher
            .as_mut()
            .ok_or_else(|| io::Error::other("the prefix hash failed"))
    }

    /// Hashes a chunk and queues it (handed to the writer once a batch is full).
    ///
    /// # Errors
    /// The writer stopped, or hashing the prefix failed (the error comes from
    /// [`Self::finish`]).
    pub async fn write(&mut self, chunk: Bytes) -> Result<(), SinkStopped> {
        if self.write_tx.is_none() {
            return Err(SinkStopped);
        }
        self.hasher().await.map_err(|_| SinkStopped)?.update(&chunk);
        self.pending_len += chunk.len();
        self.pending.push(chunk);
        // Batches form only while the writer is behind: an idle writer gets each chunk at
        // once, so the staged file never lags what arrived (`stat` shows it as `partial`).
        let idle = self
            .write_tx
            .as_ref()
            .is_some_and(|t| t.capacity() == t.max_capacity());
        if self.pending_len >= BATCH_BYTES || idle {
            self.hand_over().await?;
        }
        Ok(())
    }

    /// Hands the pending chunks to the writer (call it when no more bytes are ready to
    /// arrive, so what came is on disk while the sender pauses).
    ///
    /// # Errors
    /// The writer stopped.
    pub async fn hand_over(&mut self) -> Result<(), SinkStopped> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let batch = std::mem::take(&mut self.pending);
        self.pending_len = 0;
        match &self.write_tx {
            Some(w) => w.send(batch).await.map_err(|_| SinkStopped),
            None => Err(SinkStopped),
        }
    }

    /// Waits for every queued chunk to be written; with `fsync`, the data also reaches the
    /// disk before this returns.
    ///
    /// # Errors
    /// The first write error (ENOSPC, EIO, ...), or hashing the prefix failing.
    pub async fn finish(mut self, fsync: bool) -> io::Result<SinkDone> {
        // A stopped writer reports its own error below.
        let _ = self.hand_over().await;
        self.write_tx = None;
        let hasher = self.hasher().await.map(|h| h.clone());
        let (file, written) = self.writer.await.map_err(join_error)??;
        let hasher = hasher?;
        let file = if fsync {
            tokio::task::spawn_blocking(move || file.sync_all().map(|()| file))
                .await
                .map_err(join_error)??
        } else {
            file
        };
        Ok(SinkDone {
            hasher,
            written,
            file,
        })
    }
}

/// A disk thread has stopped; call [`DiskSink::finish`] for its error.
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

/// A read buffer that goes back to its [`DiskSource`]'s pool when the last [`Bytes`]
/// made from it is dropped.
struct Pooled {
    buf: Vec<u8>,
    len: usize,
    home: std::sync::mpsc::Sender<Vec<u8>>,
}

impl AsRef<[u8]> for Pooled {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        // The source may be gone already; then the buffer is simply freed.
        let _ = self.home.send(std::mem::take(&mut self.buf));
    }
}

/// A blocking reader thread: a file range out as chunks, optionally hashed.
#[derive(Debug)]
pub(crate) struct DiskSource {
    rx: mpsc::Receiver<io::Result<Bytes>>,
    handle: JoinHandle<Option<blake3::Hasher>>,
}

/// Fills `buf` from `file` (fewer bytes only at the end of the file).
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl DiskSource {
    /// Starts reading `len` bytes of `file` from `offset`. With `hash`, the thread also
    /// hashes the file's first `offset` bytes (without sending them) and everything sent,
    /// so [`Self::finish`] yields the whole file's hash.
    pub fn spawn(mut file: File, offset: u64, len: u64, hash: bool) -> Self {
        let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(SOURCE_DEPTH);
        let handle = tokio::task::spawn_blocking(move || {
            let mut start = || -> io::Result<Option<blake3::Hasher>> {
                let h = if hash {
                    Some(hash_prefix(&file, offset)?)
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
            // Buffers come back here once the network side has sent their bytes.
            let (home, returned) = std::sync::mpsc::channel::<Vec<u8>>();
            let mut left = len;
            while left > 0 {
                let want = usize::try_from(left).unwrap_or(usize::MAX).min(READ_CHUNK);
                let mut buf = returned
                    .try_recv()
                    .unwrap_or_else(|_| vec![0u8; READ_CHUNK]);
                let filled = match read_full(&mut file, &mut buf[..want]) {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return None;
                    }
                };
                if filled == 0 {
                    let _ = tx.blocking_send(Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shrank while it was being sent",
                    )));
                    return None;
                }
                if let Some(h) = hasher.as_mut() {
                    h.update(&buf[..filled]);
                }
                left -= filled as u64;
                let chunk = Bytes::from_owner(Pooled {
                    buf,
                    len: filled,
                    home: home.clone(),
                });
                if tx.blocking_send(Ok(chunk)).is_err() {
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

    /// Many small chunks (as a socket delivers them) land in order and hash as one file,
    /// and a sink with nothing written leaves the prefix alone.
    #[tokio::test]
    async fn sink_batches_small_chunks_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3_000_001u32).map(|i| (i % 253) as u8).collect();
        let file = std::fs::File::create(&path).unwrap();
        let mut sink = DiskSink::spawn(file, 0);
        for piece in data.chunks(65_521) {
            sink.write(Bytes::copy_from_slice(piece)).await.unwrap();
        }
        let done = sink.finish(true).await.unwrap();
        assert_eq!(done.written, data.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), data);
        assert_eq!(done.hasher.finalize(), blake3::hash(&data));

        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let done = DiskSink::spawn(file, 10).finish(false).await.unwrap();
        assert_eq!(done.written, 0);
        assert_eq!(std::fs::read(&path).unwrap(), &data[..10]);
        assert_eq!(done.hasher.finalize(), blake3::hash(&data[..10]));
    }

    /// The source's buffers are reused: every chunk of a long file has the right bytes
    /// although the same few buffers carry them all.
    #[tokio::test]
    async fn source_reuses_buffers_without_mixing_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..(9 * READ_CHUNK as u32 + 7))
            .map(|i| (i / 4096) as u8 ^ (i % 7) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let mut src = DiskSource::spawn(File::open(&path).unwrap(), 0, data.len() as u64, true);
        let mut got = Vec::new();
        while let Some(c) = src.next().await.unwrap() {
            got.extend_from_slice(&c);
        }
        assert_eq!(got, data);
        assert_eq!(src.finish().await.unwrap(), Some(blake3::hash(&data)));
    }
}
