//! Pipelined requests on one connection: the server answers requests in the order they
//! arrive, so a tree transfer sends many without waiting for each reply, bounded by a
//! window, and reads the replies in order.
//!
//! - [`FilesClient::call_many`]: many one-frame requests (`mkdir`, `symlink`, `setattr`,
//!   `stat`), at most [`WINDOW_REQUESTS`] unanswered;
//! - [`FilesClient::put_small`]: small files in `putmany` batches of at most
//!   [`BATCH_FILES`] files / [`BATCH_BYTES`] bytes, [`BATCHES_IN_FLIGHT`] unanswered (a
//!   window of 64 files or 8 MiB); the next batch is read from disk while one is sent;
//! - [`FilesClient::get_small`]: small files in `getmany` batches, the next request sent
//!   before the current reply is written to disk, each file written atomically (hidden
//!   temporary name, mode and time, fsync, rename; each directory fsynced once per batch).
//!
//! Replies are small (a header each; `getmany` bodies are read as they come), so the
//! replies of a full window fit in the socket buffers and sending can never wait on a
//! server that waits for us to read.

use std::collections::{BTreeSet, VecDeque};
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sockit_wire::header::Message;
use sockit_wire::{ClientError, ErrorCode, FrameError, Header};
use tokio::task::JoinHandle;

use crate::client::features::reply_encoding;
use crate::client::get::part_paths;
use crate::client::{FilesClient, FilesClientError, Progress};
use crate::compress::blocks::{BlockReader, BlockWriter, BlocksError};
use crate::messages::FeaturesReply;
use crate::messages::{
    GetManyFile, GetManyReply, GetManyRequest, ItemError, PutManyFile, PutManyReply,
    PutManyRequest, ZSTD,
};
use crate::meta::{self, Mtime, REPORTED_MODE_BITS};

/// Most one-frame requests sent and not yet answered.
pub const WINDOW_REQUESTS: usize = 32;
/// Files up to this size go in batches; larger ones take the single-file path (streamed,
/// resumable mid-file).
pub const SMALL_FILE: u64 = 1024 * 1024;
/// Most files in one batch.
pub const BATCH_FILES: usize = 32;
/// Most bytes in one batch (a single file over it still forms a batch of its own).
pub const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Batches sent and not yet answered.
pub const BATCHES_IN_FLIGHT: usize = 2;

/// A file of a batched upload.
#[derive(Debug, Clone)]
pub(crate) struct UpFile {
    /// The local file.
    pub local: PathBuf,
    /// Where it goes.
    pub remote: String,
    /// Its size when the tree was walked (for cutting batches).
    pub size: u64,
}

/// A file of a batched download.
#[derive(Debug, Clone)]
pub(crate) struct DownFile {
    /// The remote file.
    pub remote: String,
    /// Where it lands.
    pub local: PathBuf,
    /// Its size as listed (for cutting batches).
    pub size: u64,
}

/// What a batched transfer moved.
#[derive(Debug, Default)]
pub(crate) struct Moved {
    /// Files committed.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Body bytes of the batches on the wire (less than `bytes` when compressed).
    pub wire: u64,
    /// Files the server would not put in a batch (fetch them one by one).
    pub left: Vec<DownFile>,
}

/// The batches this client cuts for one server: [`BATCH_FILES`] files, [`BATCH_BYTES`]
/// bytes and files up to [`SMALL_FILE`] in batches, or less where the server's
/// `features` say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchLimits {
    /// Most files in one batch.
    pub files: usize,
    /// Most bytes in one batch.
    pub bytes: u64,
    /// Files up to this size go in batches.
    pub small_file: u64,
}

impl BatchLimits {
    /// This client's batches within what a server takes.
    pub fn for_server(f: &FeaturesReply) -> Self {
        let files = usize::try_from(f.batch_max_files).unwrap_or(usize::MAX);
        Self {
            files: BATCH_FILES.min(files).max(1),
            bytes: BATCH_BYTES.min(f.batch_max_bytes),
            small_file: SMALL_FILE.min(f.batch_max_bytes),
        }
    }
}

/// Cuts `sizes` into consecutive batches of at most `limits.files` files and
/// `limits.bytes` bytes (a larger file alone).
pub(crate) fn cut_batches(sizes: &[u64], limits: BatchLimits) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut bytes = 0u64;
    for (i, &s) in sizes.iter().enumerate() {
        if i > start && (i - start >= limits.files || bytes + s > limits.bytes) {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += s;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}

fn interrupted(what: &str, files: u64, e: impl std::fmt::Display) -> FilesClientError {
    FilesClientError::Interrupted(format!(
        "{what} interrupted after {files} files were committed ({e}); run again with --resume \
         to continue (committed files are not sent again)"
    ))
}

fn is_connection(e: &ClientError) -> bool {
    matches!(e, ClientError::Frame(_) | ClientError::Closed)
}

fn remote(e: &ItemError) -> FilesClientError {
    ClientError::Remote {
        code: e.code,
        message: e.message.clone(),
    }
    .into()
}

/// Reads the files of a batch (blocking): their bytes back to back, hashed, with their
/// mode and time as the open file reports them.
fn load_batch(
    files: Vec<UpFile>,
    max_bytes: u64,
) -> Result<(Vec<PutManyFile>, Vec<u8>), FilesClientError> {
    let mut body = Vec::with_capacity(files.iter().map(|f| f.size as usize).sum());
    let mut out = Vec::with_capacity(files.len());
    for f in files {
        let mut file =
            std::fs::File::open(&f.local).map_err(|e| FilesClientError::local(&f.local, e))?;
        let m = file
            .metadata()
            .map_err(|e| FilesClientError::local(&f.local, e))?;
        let start = body.len();
        // At most the batch limit: a file that grew past it is cut, and the hash check
        // of a later run sends it again.
        (&mut file)
            .take(max_bytes)
            .read_to_end(&mut body)
            .map_err(|e| FilesClientError::local(&f.local, e))?;
        let data = &body[start..];
        let mtime = Mtime::of(m.mtime(), m.mtime_nsec());
        out.push(PutManyFile {
            path: f.remote,
            size: data.len() as u64,
            blake3: blake3::hash(data).to_hex().to_string(),
            mode: Some(m.mode() & REPORTED_MODE_BITS),
            mtime: Some(mtime.secs),
            mtime_nsec: Some(mtime.nsec),
        });
    }
    Ok((out, body))
}

fn join_failed(e: tokio::task::JoinError) -> FilesClientError {
    FilesClientError::local(
        ".",
        std::io::Error::other(format!("disk thread failed: {e}")),
    )
}

/// Writes the files of one `getmany` reply (blocking), each atomically: verified, into its
/// hidden `.NAME.sockit-part`, mode and time set, fsynced, renamed; then each directory
/// fsynced once. Files the server left out for size are returned for `get`.
fn write_batch(
    files: Vec<DownFile>,
    reply: Vec<GetManyFile>,
    body: Vec<u8>,
) -> Result<Moved, FilesClientError> {
    let mut moved = Moved::default();
    let mut dirs = BTreeSet::new();
    let mut at = 0usize;
    for (f, r) in files.into_iter().zip(reply) {
        if let Some(e) = &r.error {
            if e.code == ErrorCode::TooLarge {
                moved.left.push(f);
                continue;
            }
            return Err(remote(e));
        }
        let end = at + r.size as usize;
        let data = &body[at..end];
        at = end;
        let got = blake3::hash(data);
        if r.blake3.as_deref() != Some(got.to_hex().as_str()) {
            return Err(FilesClientError::Verify(format!(
                "download of {} failed verification: the server announced blake3 {}, the \
                 received data hashes to {}; run the download again",
                f.remote,
                r.blake3.as_deref().unwrap_or("(none)"),
                got.to_hex()
            )));
        }
        let (part, sidecar) = part_paths(&f.local);
        let written = (|| {
            let mut file = std::fs::File::create(&part)?;
            file.write_all(data)?;
            meta::apply_to_file(&file, r.mode, Mtime::new(r.mtime, r.mtime_nsec).ok())?;
            file.sync_all()
        })();
        if let Err(e) = written {
            let _ = std::fs::remove_file(&part);
            return Err(FilesClientError::local(&part, e));
        }
        std::fs::rename(&part, &f.local).map_err(|e| {
            let _ = std::fs::remove_file(&part);
            FilesClientError::local(&f.local, e)
        })?;
        let _ = std::fs::remove_file(&sidecar);
        dirs.insert(f.local.parent().unwrap_or(Path::new(".")).to_owned());
        moved.files += 1;
        moved.bytes += data.len() as u64;
    }
    for dir in dirs {
        std::fs::File::open(&dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| FilesClientError::local(&dir, e))?;
    }
    Ok(moved)
}

impl FilesClient {
    /// This client's batch limits for the server (from its `features`).
    ///
    /// # Errors
    /// The connection failed.
    pub(crate) async fn batch_limits(&mut self) -> Result<BatchLimits, FilesClientError> {
        Ok(BatchLimits::for_server(&self.features().await?))
    }

    /// Whether the server's hello lists `cmd`.
    pub(crate) fn server_has(&self, cmd: &str) -> bool {
        self.client.hello().services.iter().any(|s| s == cmd)
    }

    /// Sends every request of `reqs` (at most [`WINDOW_REQUESTS`] unanswered) and reads
    /// their replies in order. A refusal is that request's `Err`; a connection failure
    /// ends the whole call.
    ///
    /// # Errors
    /// The connection failed.
    pub(crate) async fn call_many<Q: Message, R: Message>(
        &mut self,
        reqs: &[Q],
    ) -> Result<Vec<Result<R, FilesClientError>>, FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        let mut out = Vec::with_capacity(reqs.len());
        let mut sent = 0usize;
        while out.len() < reqs.len() {
            let before = sent;
            while sent < reqs.len() && sent - out.len() < WINDOW_REQUESTS {
                let h = Header::encode(&reqs[sent]).map_err(ClientError::from)?;
                self.client
                    .connection()
                    .feed_header(&h)
                    .await
                    .map_err(ClientError::from)?;
                sent += 1;
            }
            if sent > before {
                self.client
                    .connection()
                    .flush()
                    .await
                    .map_err(ClientError::from)?;
            }
            match self.client.read_response().await {
                Ok(h) => out.push(h.decode::<R>().map_err(|e| ClientError::from(e).into())),
                Err(e @ ClientError::Remote { .. }) => out.push(Err(e.into())),
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Uploads small files in pipelined `putmany` batches. Stops at the first file the
    /// server refuses (what was committed before stays).
    ///
    /// # Errors
    /// A refusal, a local read error, or the connection failing
    /// ([`FilesClientError::Interrupted`]: committed files stay; `--resume` skips them).
    pub(crate) async fn put_small(
        &mut self,
        files: Vec<UpFile>,
        overwrite: bool,
        progress: &mut dyn Progress,
    ) -> Result<Moved, FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        let limits = self.batch_limits().await?;
        let compressed = !files.is_empty() && self.upload_compressed().await?;
        let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
        let mut batches: VecDeque<Vec<UpFile>> = cut_batches(&sizes, limits)
            .into_iter()
            .map(|r| files[r].to_vec())
            .collect();
        let max_bytes = limits.bytes.max(limits.small_file);
        let load = |b: Vec<UpFile>| tokio::task::spawn_blocking(move || load_batch(b, max_bytes));
        let mut next: Option<JoinHandle<_>> = batches.pop_front().map(load);
        let mut pending: VecDeque<Vec<u64>> = VecDeque::new();
        let mut moved = Moved::default();
        while let Some(loading) = next.take() {
            let (entries, body) = loading.await.map_err(join_failed)??;
            next = batches.pop_front().map(load);
            while pending.len() >= BATCHES_IN_FLIGHT {
                self.put_reply(&mut pending, &mut moved).await?;
            }
            let n = entries.len();
            let bytes = body.len() as u64;
            let file_sizes: Vec<u64> = entries.iter().map(|f| f.size).collect();
            let encode = compressed && !body.is_empty();
            let req = PutManyRequest {
                size: if encode { 0 } else { bytes },
                overwrite,
                files: entries,
                encoding: encode.then(|| ZSTD.to_owned()),
                raw_size: encode.then_some(bytes),
            };
            let h = Header::encode(&req).map_err(ClientError::from)?;
            progress.start(&format!("{n} files"), bytes, 0);
            let conn = self.client.connection();
            let sent = async {
                conn.feed_header(&h).await?;
                if encode {
                    let mut blocks = BlockWriter::new();
                    blocks.write(conn, Bytes::from(body)).await?;
                    return blocks.finish(conn).await;
                }
                if !body.is_empty() {
                    conn.feed_body(Bytes::from(body)).await?;
                }
                conn.flush().await.map(|()| bytes)
            }
            .await;
            progress.advance(bytes);
            progress.finish();
            match sent {
                Ok(wire) => moved.wire += wire,
                Err(e) => {
                    self.broken = true;
                    return Err(interrupted("tree upload", moved.files, e));
                }
            }
            pending.push_back(file_sizes);
        }
        while !pending.is_empty() {
            self.put_reply(&mut pending, &mut moved).await?;
        }
        Ok(moved)
    }

    /// Reads the reply to the oldest unanswered `putmany`.
    async fn put_reply(
        &mut self,
        pending: &mut VecDeque<Vec<u64>>,
        moved: &mut Moved,
    ) -> Result<(), FilesClientError> {
        let sizes = pending.pop_front().unwrap_or_default();
        let n = sizes.len();
        let reply = match self.client.read_response().await {
            Ok(h) => h.decode::<PutManyReply>().map_err(ClientError::from)?,
            Err(e) if is_connection(&e) => {
                self.broken = true;
                return Err(interrupted("tree upload", moved.files, e));
            }
            Err(e) => {
                // A refused batch: the replies of later ones are still unread.
                self.broken = !pending.is_empty();
                return Err(e.into());
            }
        };
        if reply.results.len() != n {
            self.broken = true;
            return Err(FilesClientError::Protocol(format!(
                "putmany answered {} results for {n} files",
                reply.results.len()
            )));
        }
        for (r, size) in reply.results.iter().zip(sizes) {
            match r {
                None => {
                    moved.files += 1;
                    moved.bytes += size;
                }
                Some(e) => {
                    self.broken = !pending.is_empty();
                    return Err(remote(e));
                }
            }
        }
        Ok(())
    }

    /// Downloads small files in pipelined `getmany` batches; the next request goes out
    /// before the current reply is written, and the writing of one batch overlaps the
    /// reception of the next. Files the server leaves out of a batch (too large) are
    /// returned in [`Moved::left`].
    ///
    /// # Errors
    /// A refusal, a verification or local write error, or the connection failing
    /// ([`FilesClientError::Interrupted`]: committed files stay).
    pub(crate) async fn get_small(
        &mut self,
        files: Vec<DownFile>,
        progress: &mut dyn Progress,
    ) -> Result<Moved, FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        let limits = self.batch_limits().await?;
        let max_bytes = self.features().await?.batch_max_bytes;
        let sizes: Vec<u64> = files.iter().map(|f| f.size).collect();
        let batches: Vec<Vec<DownFile>> = cut_batches(&sizes, limits)
            .into_iter()
            .map(|r| files[r].to_vec())
            .collect();
        let mut moved = Moved::default();
        let mut sent = 0usize;
        let mut writing: Option<JoinHandle<Result<Moved, FilesClientError>>> = None;
        for (k, batch) in batches.iter().enumerate() {
            let mut flush = false;
            while sent < batches.len() && sent < k + BATCHES_IN_FLIGHT {
                let req = GetManyRequest {
                    paths: batches[sent].iter().map(|f| f.remote.clone()).collect(),
                    compress: self.accepted(),
                };
                let h = Header::encode(&req).map_err(ClientError::from)?;
                if let Err(e) = self.client.connection().feed_header(&h).await {
                    self.broken = true;
                    return Err(interrupted("tree download", moved.files, e));
                }
                sent += 1;
                flush = true;
            }
            if flush {
                if let Err(e) = self.client.connection().flush().await {
                    self.broken = true;
                    return Err(interrupted("tree download", moved.files, e));
                }
            }
            let reply = match self.client.read_response().await {
                Ok(h) => h.decode::<GetManyReply>().map_err(ClientError::from)?,
                Err(e) => {
                    self.broken = true;
                    let done = finish_writer(writing.take(), &mut moved).await;
                    return Err(match (done, is_connection(&e)) {
                        (Err(w), _) => w,
                        (Ok(()), true) => interrupted("tree download", moved.files, e),
                        (Ok(()), false) => e.into(),
                    });
                }
            };
            let announced: u64 = reply.files.iter().map(|f| f.size).sum();
            let body_len = self.client.connection().body_remaining();
            let encoded = match reply_encoding(
                self.compress,
                reply.encoding.as_deref(),
                reply.raw_size,
                body_len,
            ) {
                Ok(e) => e,
                Err(e) => {
                    self.broken = true;
                    return Err(e);
                }
            };
            let body_len = encoded.unwrap_or(body_len);
            let raw_len = encoded.unwrap_or(reply.size);
            if reply.files.len() != batch.len()
                || announced != raw_len
                || body_len != raw_len
                || raw_len > max_bytes
            {
                self.broken = true;
                return Err(FilesClientError::Protocol(format!(
                    "getmany answered {} files and {body_len} bytes for {} files",
                    reply.files.len(),
                    batch.len()
                )));
            }
            progress.start(&format!("{} files", batch.len()), raw_len, 0);
            let conn = self.client.connection();
            let body = match encoded {
                None => conn
                    .read_body_to_vec(max_bytes)
                    .await
                    .map(|b| {
                        let n = b.len() as u64;
                        (b, n)
                    })
                    .map_err(BlocksError::Frame),
                Some(raw) => BlockReader::new(raw).read_all(conn, None).await,
            };
            progress.advance(raw_len);
            progress.finish();
            let body = match body {
                Ok((b, wire)) => {
                    moved.wire += wire;
                    b
                }
                Err(e) => {
                    self.broken = true;
                    let _ = finish_writer(writing.take(), &mut moved).await;
                    let e = match e {
                        BlocksError::Frame(FrameError::Truncated(_)) => {
                            "the server closed the connection".to_owned()
                        }
                        other => other.to_string(),
                    };
                    return Err(interrupted("tree download", moved.files, e));
                }
            };
            if let Err(e) = finish_writer(writing.take(), &mut moved).await {
                self.broken = sent > k;
                return Err(e);
            }
            let (batch, files) = (batch.clone(), reply.files);
            writing = Some(tokio::task::spawn_blocking(move || {
                write_batch(batch, files, body)
            }));
        }
        finish_writer(writing.take(), &mut moved).await?;
        Ok(moved)
    }
}

/// Waits for the writer of the previous batch and adds what it committed.
async fn finish_writer(
    writing: Option<JoinHandle<Result<Moved, FilesClientError>>>,
    moved: &mut Moved,
) -> Result<(), FilesClientError> {
    let Some(w) = writing else { return Ok(()) };
    let m = w.await.map_err(join_failed)??;
    moved.files += m.files;
    moved.bytes += m.bytes;
    moved.left.extend(m.left);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_respect_files_and_bytes() {
        let ours = BatchLimits::for_server(&FeaturesReply::default());
        assert!(cut_batches(&[], ours).is_empty());
        let r = cut_batches(&[1; 70], ours);
        assert_eq!(r, vec![0..32, 32..64, 64..70]);
        let mb = 1024 * 1024;
        let r = cut_batches(&[mb, mb, mb, mb, 1, 5 * mb, 1], ours);
        assert_eq!(r, vec![0..4, 4..5, 5..6, 6..7]);
    }

    /// A server with smaller limits gets smaller batches, and only files that fit one.
    #[test]
    fn batches_follow_the_servers_limits() {
        let small = FeaturesReply {
            batch_max_files: 3,
            batch_max_bytes: 10,
            ..FeaturesReply::default()
        };
        let l = BatchLimits::for_server(&small);
        assert_eq!((l.files, l.bytes, l.small_file), (3, 10, 10));
        assert_eq!(cut_batches(&[1; 7], l), vec![0..3, 3..6, 6..7]);
        assert_eq!(cut_batches(&[6, 6, 4], l), vec![0..1, 1..3]);
    }
}
