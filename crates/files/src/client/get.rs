//! Downloading one file: into `.NAME.sockit-part` beside the destination, verified, given
//! the server's permission bits and modification time, renamed.
//!
//! The partial file has a sidecar `.NAME.sockit-part.json` recording which remote version
//! it belongs to (size and BLAKE3), written before the first body byte. `--resume` asks the
//! server for the current hash first: if the remote file changed, the partial is thrown
//! away and the download restarts from 0 (the caller is warned) instead of splicing two
//! versions together. Without a sidecar the prefix is trusted but the whole-file hash still
//! catches a mismatch at the end.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sockit_wire::FrameError;

use crate::client::features::reply_encoding;
use crate::client::{FilesClient, FilesClientError, Progress};
use crate::compress::blocks::{BlocksError, BodyReader};
use crate::disk::DiskSink;
use crate::messages::{GetReply, GetRequest};
use crate::meta::{self, Mtime};

/// How to download.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetOptions {
    /// Continue a partial download left by an interrupted `get`.
    pub resume: bool,
}

/// What a download did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetReport {
    /// Where the file landed.
    pub local: PathBuf,
    /// Its size.
    pub size: u64,
    /// Bytes of the file that came over the network this time.
    pub received: u64,
    /// Body bytes on the wire (less than `received` when compressed).
    pub wire: u64,
    /// Where this transfer started (non-zero when resumed).
    pub resumed_from: u64,
    /// Whether a partial download was discarded because the remote file changed.
    pub restarted: bool,
    /// The verified BLAKE3, hex.
    pub blake3: String,
}

/// The sidecar of a partial download.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct PartMeta {
    remote: String,
    total: u64,
    blake3: String,
}

/// The partial file and sidecar paths for a destination.
pub fn part_paths(local: &Path) -> (PathBuf, PathBuf) {
    let dir = local.parent().unwrap_or(Path::new("."));
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    (
        dir.join(format!(".{name}.sockit-part")),
        dir.join(format!(".{name}.sockit-part.json")),
    )
}

fn read_meta(path: &Path) -> Option<PartMeta> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

fn remove_part(part: &Path, meta: &Path) {
    let _ = std::fs::remove_file(part);
    let _ = std::fs::remove_file(meta);
}

impl FilesClient {
    /// Downloads `remote` to `local` (a file path; its directory must exist).
    ///
    /// # Errors
    /// The server refused, the connection failed (the partial is kept for `--resume`), a
    /// local write failed, or the hash did not match (the partial is removed).
    pub async fn get(
        &mut self,
        remote: &str,
        local: &Path,
        opts: GetOptions,
        progress: &mut dyn Progress,
    ) -> Result<GetReport, FilesClientError> {
        let (part, meta_path) = part_paths(local);
        let mut offset = 0u64;
        let mut restarted = false;
        let mut expected_meta = None;
        if opts.resume {
            if let Ok(m) = std::fs::metadata(&part) {
                offset = m.len();
                if let Some(meta) = read_meta(&meta_path) {
                    let now = self.stat(remote, true).await?;
                    if now.blake3.as_deref() != Some(meta.blake3.as_str())
                        || meta.remote != remote
                        || offset > now.size
                    {
                        progress.warn(&format!(
                            "{remote} changed on the server since the interrupted download; starting over"
                        ));
                        restarted = true;
                        offset = 0;
                    } else {
                        expected_meta = Some(meta);
                    }
                }
            }
        }
        let req = GetRequest {
            path: remote.to_owned(),
            offset,
            compress: self.accepted(),
        };
        let reply: GetReply = self.call(&req).await?;
        let total = reply.total;
        let mode = reply.mode;
        // An old server sends whole seconds only, and no mode.
        let mtime = Mtime::new(reply.mtime, reply.mtime_nsec).ok();
        let hash_hex = reply.blake3;
        let expected = blake3::Hash::from_hex(&hash_hex).map_err(|_| {
            FilesClientError::Protocol("get reply `blake3` is not 64 hex digits".into())
        })?;
        let body = self.client.connection().body_remaining();
        let encoded = reply_encoding(
            self.compress,
            reply.encoding.as_deref(),
            reply.raw_size,
            body,
        )
        .inspect_err(|_| self.broken = true)?;
        let announced = encoded.unwrap_or(body);
        if announced != total - offset.min(total) {
            self.broken = true;
            return Err(FilesClientError::Protocol(format!(
                "get reply announces {announced} bytes from offset {offset} of {total}"
            )));
        }
        let mut body = BodyReader::new(encoded);
        if let Some(meta) = &expected_meta {
            if meta.blake3 != hash_hex {
                // Changed between our stat and the get: drop this body, start over.
                let conn = self.client.connection();
                while body.next(conn, None).await.map_err(blocks_err)?.is_some() {}
                remove_part(&part, &meta_path);
                progress.warn(&format!(
                    "{remote} changed on the server during resume; starting over"
                ));
                return Box::pin(self.get(remote, local, GetOptions { resume: false }, progress))
                    .await
                    .map(|r| GetReport {
                        restarted: true,
                        ..r
                    });
            }
        }
        let meta = PartMeta {
            remote: remote.to_owned(),
            total,
            blake3: hash_hex.clone(),
        };
        let meta_json = serde_json::to_vec(&meta)
            .map_err(std::io::Error::other)
            .map_err(|e| FilesClientError::local(&meta_path, e))?;
        std::fs::write(&meta_path, meta_json)
            .map_err(|e| FilesClientError::local(&meta_path, e))?;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(offset == 0)
            .open(&part)
            .map_err(|e| FilesClientError::local(&part, e))?;
        let name = local
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        progress.start(&name, total, offset);
        let mut sink = DiskSink::spawn(file, offset);
        let mut received = 0u64;
        let result = loop {
            match body.next(self.client.connection(), None).await {
                Ok(Some(chunk)) => {
                    let n = chunk.len() as u64;
                    if sink.write(chunk).await.is_err() {
                        break Err(None);
                    }
                    received += n;
                    progress.advance(n);
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Some(e)),
            }
        };
        progress.finish();
        match result {
            Ok(()) => {}
            Err(None) => {
                // The local write failed (disk full, ...); the connection still owes us bytes.
                self.broken = true;
                let e = sink
                    .finish(false)
                    .await
                    .err()
                    .unwrap_or_else(|| std::io::Error::other("local writer stopped"));
                return Err(FilesClientError::local(&part, e));
            }
            Err(Some(e)) => {
                let _ = sink.finish(true).await;
                self.broken = true;
                let why = match e {
                    BlocksError::Frame(FrameError::Truncated(_)) => {
                        "the server closed the connection".to_owned()
                    }
                    other => other.to_string(),
                };
                return Err(FilesClientError::Interrupted(format!(
                    "download of {remote} interrupted after {} of {total} bytes: {why}; run again with --resume to continue",
                    offset + received
                )));
            }
        }
        let done = sink
            .finish(true)
            .await
            .map_err(|e| FilesClientError::local(&part, e))?;
        let got = done.hasher.finalize();
        if got != expected {
            drop(done.file);
            remove_part(&part, &meta_path);
            return Err(FilesClientError::Verify(format!(
                "download of {remote} failed verification: server announced blake3 {hash_hex}, received data hashes to {}; the partial file was removed, run the download again",
                got.to_hex()
            )));
        }
        // The server's mode and time go on the verified file before it takes its name.
        meta::apply_to_file(&done.file, mode, mtime)
            .map_err(|e| FilesClientError::local(&part, e))?;
        drop(done.file);
        std::fs::rename(&part, local).map_err(|e| FilesClientError::local(local, e))?;
        let _ = std::fs::remove_file(&meta_path);
        Ok(GetReport {
            local: local.to_owned(),
            size: total,
            wire: body.wire().unwrap_or(received),
            received,
            resumed_from: offset,
            restarted,
            blake3: hash_hex,
        })
    }
}

fn blocks_err(e: BlocksError) -> FilesClientError {
    match e {
        BlocksError::Frame(e) => sockit_wire::ClientError::from(e).into(),
        BlocksError::Bad(e) => FilesClientError::Protocol(e.to_string()),
    }
}
