//! `get {path, offset?}` →
//! `{filename, path, size, filesize, total, offset, blake3, mtime, mtime_nsec, mode}` + the
//! file's bytes from `offset`. A symlink (inside the root) is followed: its target's bytes
//! and metadata are sent.
//!
//! `size` (= `filesize`) is the body length, `total - offset`; `blake3` is the hash of the
//! whole file, so a resumed download is verified end to end. The hash comes from the
//! root's hash cache (recorded when the file was uploaded), or is computed once on the
//! first `get` of a file that arrived by other means. The body is read from disk by a
//! blocking thread in 1 MiB chunks and written straight to the socket; with `compress:
//! ["zstd"]` (and compression on), as zstd `block` frames where compression pays.

use std::sync::Arc;

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::{FrameError, Header};

use crate::cmd::{rel_path, reply_compressed};
use crate::compress::blocks::BodyWriter;
use crate::disk::{hash_prefix, DiskSource};
use crate::error::FilesError;
use crate::messages::{GetReply, GetRequest, ZSTD};
use crate::path::RelPath;
use crate::root::{blocking, mode_of, mtime_of, FilesRoot};

/// Opens the regular file `p` for reading (a symlink inside the root is followed), with
/// its metadata.
///
/// # Errors
/// Not found, denied, a directory or a special file (`bad_request`).
pub(crate) fn open_regular(
    root: &FilesRoot,
    p: &RelPath,
) -> Result<(std::fs::File, cap_std::fs::Metadata), FilesError> {
    // Non-blocking, so that opening a FIFO in the tree cannot park a thread until
    // someone writes to it; only regular files are then read.
    let mut options = cap_std::fs::OpenOptions::new();
    options.read(true);
    cap_std::fs::OpenOptionsExt::custom_flags(&mut options, libc::O_NONBLOCK);
    let file = root
        .dir()
        .open_with(p.to_path(), &options)
        .map_err(|e| FilesError::io(p, e))?;
    let meta = file.metadata().map_err(|e| FilesError::io(p, e))?;
    if meta.is_dir() {
        return Err(FilesError::BadRequest(format!(
            "{p} is a directory; use get -r for directory trees"
        )));
    }
    if !meta.is_file() {
        return Err(FilesError::BadRequest(format!(
            "{p} is not a regular file (a FIFO, socket or device); only files are sent"
        )));
    }
    Ok((file.into_std(), meta))
}

/// The `get` command.
#[derive(Debug)]
pub struct Get {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for Get {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        let req: GetRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        let offset = req.offset;
        let p = path.clone();
        let (file, total, hash, mtime, mode) = blocking(&self.root, move |root| {
            let (file, meta) = open_regular(root, &p)?;
            if offset > meta.len() {
                return Err(FilesError::BadRequest(format!(
                    "offset {offset} is past the end of {p} ({} bytes); the file changed, download it again",
                    meta.len()
                )));
            }
            let key = FilesRoot::file_key(&p, &meta);
            let hash = match root.hashes().get(&key) {
                Some(h) => h,
                None => {
                    let h = hash_prefix(&file, meta.len())
                        .map_err(|e| FilesError::io(&p, e))?
                        .finalize();
                    root.hashes().insert(key, h);
                    h
                }
            };
            Ok((file, meta.len(), hash, mtime_of(&meta), mode_of(&meta)))
        })
        .await?;
        let len = total - offset;
        // A compressed body goes as block frames: the reply itself then announces none.
        let compress = reply_compressed(&self.root, &req.compress) && len > 0;
        let body_len = if compress { 0 } else { len };
        let reply = GetReply {
            filename: path.file_name().unwrap_or("").to_owned(),
            path: path.as_string(),
            size: body_len,
            filesize: body_len,
            total,
            offset,
            blake3: hash.to_hex().to_string(),
            mtime: mtime.secs,
            mtime_nsec: mtime.nsec,
            mode: Some(mode),
            encoding: compress.then(|| ZSTD.to_owned()),
            raw_size: compress.then_some(len),
        };
        conn.send(&Header::reply(&reply)?).await?;
        let started = std::time::Instant::now();
        let mut source = DiskSource::spawn(file, offset, len, false);
        let mut body = BodyWriter::new(compress);
        loop {
            let chunk = match source.next().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    // The header promised `len` bytes we cannot deliver: the stream is out of
                    // sync, so the connection must close (the client sees a short body).
                    tracing::warn!(peer = %session.peer, %path, error = %e, "get aborted");
                    return Err(FrameError::Io(e).into());
                }
            };
            body.write(conn, chunk).await?;
        }
        let wire = body.finish(conn).await?;
        let _ = source.finish().await;
        tracing::info!(peer = %session.peer, %path, bytes = len, wire, offset, secs = started.elapsed().as_secs_f64(), "get done");
        Ok(())
    }
}
