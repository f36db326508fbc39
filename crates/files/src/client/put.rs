//! Uploading one file: stream it while hashing, then `commit` the hash. The request
//! carries the file's permission bits and modification time; the server sets them before
//! the file appears under its name.
//!
//! The file is read once: a blocking thread reads 1 MiB chunks, hashes them and hands them
//! to the socket; the hash goes in a `commit` frame after the body (`trailer: true`), so
//! the server promotes the upload only if both sides hashed the same bytes. With `resume`,
//! the server's staged size (from `stat`) is the starting offset; the local prefix is
//! hashed but not sent. If the staged prefix turns out not to match the local file (the
//! server reports a hash mismatch), the upload restarts once from 0.
//!
//! A resumed upload right after an interrupted one can find the name still claimed by the
//! old connection (the server frees it when it notices that connection is gone). So with
//! `resume`, a `busy` name is retried a few times with backoff ([`BUSY_RETRY_WAITS`]: five
//! tries over 3 s) before the error is reported.

use std::path::Path;
use std::time::Duration;

use futures::FutureExt;
use sockit_wire::connection::{BoxedStream, Connection};
use sockit_wire::{ClientError, ErrorCode, Header, Incoming};

use crate::client::{FilesClient, FilesClientError, Progress};
use crate::compress::blocks::BodyWriter;
use crate::disk::DiskSource;
use crate::messages::{Commit, PutReply, PutRequest, ZSTD};
use crate::meta::{Mtime, REPORTED_MODE_BITS};
use std::os::unix::fs::MetadataExt;

/// The waits between the tries of a resumed upload whose name is still `busy` (held by an
/// earlier connection the server has not yet seen die): five tries over 3 s in all.
pub const BUSY_RETRY_WAITS: [Duration; 4] = [
    Duration::from_millis(200),
    Duration::from_millis(400),
    Duration::from_millis(800),
    Duration::from_millis(1600),
];

/// A reply that arrived while a request body is still being sent (a refusal: `exists`,
/// disk full, ...), checked without waiting; `None` when nothing has arrived. The caller
/// stops sending; the server still expects the rest of the body, so the connection cannot
/// be used for another request.
pub(crate) fn early_refusal(conn: &mut Connection<BoxedStream>) -> Option<FilesClientError> {
    let early = conn.read_header().now_or_never()?;
    Some(match early {
        Err(e) => ClientError::from(e).into(),
        Ok(Some(Incoming::Header(h))) => match h.as_error() {
            Some((code, message)) => ClientError::Remote { code, message }.into(),
            None => FilesClientError::Protocol(format!("unexpected {h:?} during an upload")),
        },
        Ok(Some(Incoming::Invalid(e))) => FilesClientError::Protocol(e.to_string()),
        Ok(None) => ClientError::Closed.into(),
    })
}

/// How to upload.
#[derive(Debug, Clone, Copy, Default)]
pub struct PutOptions {
    /// Continue an interrupted upload from what the server has staged.
    pub resume: bool,
    /// Replace an existing remote file.
    pub overwrite: bool,
}

/// What an upload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutReport {
    /// The remote path as the server stored it.
    pub remote: String,
    /// The file's size.
    pub size: u64,
    /// Bytes sent this time.
    pub sent: u64,
    /// Where this transfer started (non-zero when resumed).
    pub resumed_from: u64,
    /// Whether a staged prefix was found not to match and the upload started over.
    pub restarted: bool,
    /// The verified BLAKE3, hex.
    pub blake3: String,
    /// Body bytes on the wire (less than `sent` when compressed).
    pub wire: u64,
}

impl FilesClient {
    /// Uploads `local` to `remote` (a file path on the server).
    ///
    /// # Errors
    /// The server refused (`exists`, `busy`, `too_large`, `denied`, disk full, hash
    /// mismatch), the connection failed (the server keeps what arrived for `resume`), or
    /// the local file could not be read.
    pub async fn put(
        &mut self,
        local: &Path,
        remote: &str,
        opts: PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<PutReport, FilesClientError> {
        let meta = std::fs::metadata(local).map_err(|e| FilesClientError::local(local, e))?;
        if meta.is_dir() {
            return Err(FilesClientError::local(
                local,
                std::io::Error::other("is a directory; use put -r for directory trees"),
            ));
        }
        let size = meta.len();
        let mut waits = BUSY_RETRY_WAITS.iter();
        let mut tries = 1u32;
        loop {
            let offset = if opts.resume {
                match self.stat(remote, false).await {
                    Ok(st) if st.uploading => {
                        busy_wait(&mut waits, &mut tries, remote, progress).await?;
                        continue;
                    }
                    Ok(st) => st.partial.filter(|&p| p <= size).unwrap_or(0),
                    Err(e) if e.remote_code() == Some(ErrorCode::NotFound) => 0,
                    Err(e) => return Err(e),
                }
            } else {
                0
            };
            let first = self
                .put_from(local, remote, size, offset, opts, progress)
                .await;
            return match first {
                Err(e)
                    if opts.resume && !self.broken && e.remote_code() == Some(ErrorCode::Busy) =>
                {
                    // Claimed between our stat and our put; the connection is still in step.
                    busy_wait(&mut waits, &mut tries, remote, progress).await?;
                    continue;
                }
                Err(FilesClientError::Client(ClientError::Remote { code, message }))
                    if offset > 0
                        && code == ErrorCode::BadRequest
                        && message.contains("blake3 mismatch") =>
                {
                    progress.warn(&format!(
                        "the server's partial upload of {remote} does not match {}; starting over",
                        local.display()
                    ));
                    let r = self
                        .put_from(local, remote, size, 0, opts, progress)
                        .await?;
                    Ok(PutReport {
                        restarted: true,
                        ..r
                    })
                }
                other => other,
            };
        }
    }

    async fn put_from(
        &mut self,
        local: &Path,
        remote: &str,
        size: u64,
        offset: u64,
        opts: PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<PutReport, FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        let file = std::fs::File::open(local).map_err(|e| FilesClientError::local(local, e))?;
        let meta = file
            .metadata()
            .map_err(|e| FilesClientError::local(local, e))?;
        let mtime = Mtime::of(meta.mtime(), meta.mtime_nsec());
        let len = size - offset;
        let compressed = len > 0 && self.upload_compressed().await?;
        let req = Header::encode(&PutRequest {
            path: remote.to_owned(),
            size: (!compressed).then_some(len),
            encoding: compressed.then(|| ZSTD.to_owned()),
            raw_size: compressed.then_some(len),
            offset,
            overwrite: opts.overwrite,
            trailer: true,
            mode: Some(meta.mode() & REPORTED_MODE_BITS),
            mtime: Some(mtime.secs),
            mtime_nsec: Some(mtime.nsec),
            ..PutRequest::default()
        })
        .map_err(ClientError::from)?;
        let conn = self.client.connection();
        conn.send(&req).await.map_err(ClientError::from)?;
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        progress.start(&name, size, offset);
        let mut source = DiskSource::spawn(file, offset, len, true);
        let mut body = BodyWriter::new(compressed);
        let mut sent = 0u64;
        let mut wire = 0u64;
        let outcome: Result<(), FilesClientError> = async {
            loop {
                let chunk = match source.next().await {
                    Ok(Some(c)) => c,
                    Ok(None) => break,
                    Err(e) => return Err(FilesClientError::local(local, e)),
                };
                let n = chunk.len() as u64;
                body.write(conn, chunk).await.map_err(ClientError::from)?;
                sent += n;
                progress.advance(n);
                // A refusal can arrive while we send (exists, disk full, ...): stop early.
                if let Some(e) = early_refusal(conn) {
                    return Err(e);
                }
            }
            // The last block, and the flush.
            wire = body.finish(conn).await.map_err(ClientError::from)?;
            Ok(())
        }
        .await;
        progress.finish();
        if let Err(e) = outcome {
            if sent < len || compressed {
                // The server still expects body bytes: this connection cannot be reused.
                self.broken = true;
            }
            if let FilesClientError::Client(ClientError::Frame(_) | ClientError::Closed) = e {
                return Err(FilesClientError::Interrupted(format!(
                    "upload of {} interrupted after {} of {size} bytes ({e}); run again with --resume to continue",
                    local.display(),
                    offset + sent
                )));
            }
            return Err(e);
        }
        let hash = source
            .finish()
            .await
            .map_err(|e| FilesClientError::local(local, e))?
            .ok_or_else(|| FilesClientError::local(local, std::io::Error::other("hash missing")))?;
        let commit = Commit {
            blake3: hash.to_hex().to_string(),
        };
        let PutReply { stored } = self.call(&commit).await?;
        let server_hash = stored.blake3;
        if server_hash != hash.to_hex().as_str() {
            return Err(FilesClientError::Verify(format!(
                "server stored {remote} with blake3 {server_hash}, expected {}",
                hash.to_hex()
            )));
        }
        Ok(PutReport {
            remote: stored.path,
            size,
            sent,
            resumed_from: offset,
            restarted: false,
            blake3: hash.to_hex().to_string(),
            wire,
        })
    }
}

/// Waits before the next try of a resumed upload whose name is `busy`, or, when the tries
/// are used up, says so.
async fn busy_wait(
    waits: &mut std::slice::Iter<'_, Duration>,
    tries: &mut u32,
    remote: &str,
    progress: &mut dyn Progress,
) -> Result<(), FilesClientError> {
    match waits.next() {
        Some(wait) => {
            progress.warn(&format!(
                "{remote} is still being uploaded by another connection (an interrupted \
                 earlier put?); trying again in {:.1} s",
                wait.as_secs_f64()
            ));
            tokio::time::sleep(*wait).await;
            *tries += 1;
            Ok(())
        }
        None => {
            let total: Duration = BUSY_RETRY_WAITS.iter().sum();
            Err(ClientError::Remote {
                code: ErrorCode::Busy,
                message: format!(
                    "an upload of {remote} is still in progress on the server after {tries} tries \
                     over {:.0} s. If it is an interrupted earlier put, the server frees the name \
                     once it notices that connection is gone (at the latest after its idle \
                     timeout); run `put --resume` again then",
                    total.as_secs_f64()
                ),
            }
            .into())
        }
    }
}
