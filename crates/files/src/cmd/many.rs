//! `putmany` and `getmany`: many small files in one request or reply body, for tree
//! transfers (`put -r`, `get -r`) that send several batches back to back.
//!
//! `putmany {size, overwrite, files:[{path,size,blake3,mode?,mtime?,mtime_nsec?}]}` + the
//! files' bytes back to back → `{results:[null | {code,message}]}`. The body (at most
//! [`BATCH_MAX_BYTES`]) is read into memory first, so a connection that drops mid-body
//! changes nothing. Each file is then checked (path, hash of its bytes against its
//! `blake3`, `--max-upload`, a running upload of it is `busy`), written to its own staging
//! file, given its mode and time, fsynced and moved into place as `put` does; the parent
//! directories are fsynced once per batch (not once per file) before the reply, so every
//! file reported as committed is durable under its name. A failing file does not stop the
//! others; its entry says why.
//!
//! `getmany {paths:[...]}` → `{size, files:[{size,blake3,mtime,mtime_nsec,mode} |
//! {error}]}` + the files' bytes back to back. Each file is read whole and hashed as read
//! (so bytes and hash always agree); once the reply holds [`BATCH_MAX_BYTES`], further
//! files are answered `too_large` (the client fetches them with `get`).

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::{ErrorCode, Header};

use crate::cmd::get::open_regular;
use crate::cmd::put::{check_name, check_parent};
use crate::cmd::rel_path;
use crate::error::FilesError;
use crate::messages::{
    GetManyFile, GetManyReply, GetManyRequest, ItemError, PutManyFile, PutManyReply,
    PutManyRequest, BATCH_MAX_BYTES, BATCH_MAX_FILES,
};
use crate::meta::{self, Mtime};
use crate::path::RelPath;
use crate::root::{blocking, mode_of, mtime_of, FilesRoot, UploadGuard};

/// The `putmany` command.
#[derive(Debug)]
pub struct PutMany {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

/// The `getmany` command.
#[derive(Debug)]
pub struct GetMany {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

fn item_error(e: &FilesError) -> ItemError {
    ItemError::new(e.code(), &e.to_string())
}

/// One checked file of a `putmany`, holding its path's upload claim.
struct Item {
    index: usize,
    path: RelPath,
    start: usize,
    end: usize,
    hash: blake3::Hash,
    mode: Option<u32>,
    mtime: Option<Mtime>,
    _guard: UploadGuard,
}

/// Checks one file of a batch (the bytes `start..end` of `body`) and claims its path.
fn check_item(
    root: &Arc<FilesRoot>,
    f: &PutManyFile,
    (index, start, end): (usize, usize, usize),
    body: &[u8],
) -> Result<Item, FilesError> {
    let path = rel_path(&f.path)?;
    if path.is_root() {
        return Err(FilesError::BadRequest(
            "put needs a file name, not the root".into(),
        ));
    }
    let expected = blake3::Hash::from_hex(&f.blake3)
        .map_err(|_| FilesError::BadRequest("`blake3` must be 64 hex digits".into()))?;
    let mode = f
        .mode
        .map(meta::check_mode)
        .transpose()
        .map_err(FilesError::BadRequest)?;
    let mtime = match (f.mtime, f.mtime_nsec) {
        (None, None) => None,
        (s, n) => Some(Mtime::new(s.unwrap_or(0), n.unwrap_or(0)).map_err(FilesError::BadRequest)?),
    };
    let limit = root.config().max_upload;
    if f.size > limit {
        return Err(FilesError::TooLarge {
            size: f.size,
            limit,
        });
    }
    let actual = blake3::hash(&body[start..end]);
    if actual != expected {
        return Err(FilesError::HashMismatch {
            path,
            expected: expected.to_hex().to_string(),
            actual: actual.to_hex().to_string(),
        });
    }
    let guard = root.claim_upload(&path)?;
    Ok(Item {
        index,
        path,
        start,
        end,
        hash: actual,
        mode,
        mtime,
        _guard: guard,
    })
}

/// Writes one file to its staging file, with its mode and time, and fsyncs it; returns
/// the staged file's metadata (the same inode, size and time the file has once placed).
fn stage(root: &FilesRoot, item: &Item, data: &[u8]) -> Result<std::fs::Metadata, FilesError> {
    let mut file = root.open_staging(&item.path, 0)?;
    let written = file
        .set_len(0)
        .and_then(|()| file.write_all(data))
        .and_then(|()| meta::apply_to_file(&file, item.mode, item.mtime))
        .and_then(|()| file.sync_all())
        .and_then(|()| file.metadata());
    written.map_err(|e| {
        if FilesError::is_no_space(&e) {
            let quota = e.raw_os_error() == Some(libc::EDQUOT);
            let kept = root.after_no_space(&item.path);
            FilesError::NoSpace {
                path: item.path.clone(),
                quota,
                kept,
            }
        } else {
            root.discard_staging(&item.path);
            FilesError::io(&item.path, e)
        }
    })
}

/// Moves a staged file into place (as [`FilesRoot`]'s promotion for `put`, without the
/// directory fsync, which the batch does once per directory).
fn place(root: &FilesRoot, path: &RelPath, overwrite: bool) -> Result<(), FilesError> {
    let name = FilesRoot::staging_name(path);
    let target = path.to_path();
    if overwrite {
        return root
            .staging()
            .rename(&name, root.dir(), &target)
            .map_err(|e| FilesError::io(path, e));
    }
    match root.staging().hard_link(&name, root.dir(), &target) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            root.discard_staging(path);
            return Err(FilesError::Exists(path.clone()));
        }
        Err(e) => return Err(FilesError::io(path, e)),
    }
    root.discard_staging(path);
    Ok(())
}

/// Commits the checked files of a batch: stage, fsync and place each, then fsync each
/// parent directory once. Returns each item's outcome.
fn commit_all(
    root: &FilesRoot,
    body: &[u8],
    items: Vec<Item>,
    overwrite: bool,
) -> Vec<(usize, Result<(), FilesError>)> {
    let mut out = Vec::with_capacity(items.len());
    let mut parents = BTreeSet::new();
    let mut placed = Vec::new();
    for item in items {
        let data = &body[item.start..item.end];
        let parent = item.path.parent().unwrap_or_else(RelPath::root);
        // Each directory is checked once per batch.
        let r = check_name(root, &item.path, overwrite)
            .and_then(|()| {
                if parents.contains(&parent) {
                    Ok(())
                } else {
                    check_parent(root, &item.path)
                }
            })
            .and_then(|()| stage(root, &item, data))
            .and_then(|meta| place(root, &item.path, overwrite).map(|()| meta));
        let r = r.map(|meta| {
            let meta = cap_std::fs::Metadata::from_just_metadata(meta);
            root.hashes()
                .insert(FilesRoot::file_key(&item.path, &meta), item.hash);
            parents.insert(parent);
            placed.push(out.len());
        });
        out.push((item.index, r));
    }
    // The new names survive a crash only once their directories are on disk.
    for parent in parents {
        let synced = root
            .dir()
            .open_dir(parent.to_path())
            .and_then(|d| d.open(".")?.sync_all());
        if let Err(e) = synced {
            tracing::warn!(%parent, error = %e, "directory fsync after a batch failed");
            for &i in &placed {
                if out[i].1.is_ok() {
                    out[i].1 = Err(FilesError::io(
                        &parent,
                        std::io::Error::other(e.to_string()),
                    ));
                }
            }
            break;
        }
    }
    out
}

#[async_trait]
impl Command for PutMany {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        let req: PutManyRequest = req.decode()?;
        let len = conn.body_remaining();
        if req.files.len() > BATCH_MAX_FILES {
            return Err(CommandError::reply(
                ErrorCode::BadRequest,
                format!("putmany takes at most {BATCH_MAX_FILES} files"),
            ));
        }
        if len > BATCH_MAX_BYTES {
            return Err(CommandError::reply(
                ErrorCode::TooLarge,
                format!("a putmany body holds at most {BATCH_MAX_BYTES} bytes"),
            ));
        }
        let sum = req
            .files
            .iter()
            .try_fold(0u64, |a, f| a.checked_add(f.size));
        if sum != Some(len) || req.size != len {
            return Err(CommandError::reply(
                ErrorCode::BadRequest,
                "putmany: `size` must be the sum of the files' sizes",
            ));
        }
        // Nothing is written before the whole body is in: a dropped connection changes
        // nothing.
        let body = conn.read_body_to_vec(BATCH_MAX_BYTES).await?;
        let started = std::time::Instant::now();
        let mut results: Vec<Option<ItemError>> = vec![None; req.files.len()];
        let mut items = Vec::with_capacity(req.files.len());
        let mut at = 0usize;
        for (index, f) in req.files.iter().enumerate() {
            // Sizes sum to the body length, which fits in memory: no overflow.
            let start = at;
            let end = at
                + usize::try_from(f.size)
                    .unwrap_or(usize::MAX)
                    .min(body.len() - at);
            at = end;
            match check_item(&self.root, f, (index, start, end), &body) {
                Ok(item) => items.push(item),
                Err(e) => results[index] = Some(item_error(&e)),
            }
        }
        let n = items.len();
        let overwrite = req.overwrite;
        let outcomes = blocking(&self.root, move |root| {
            Ok(commit_all(root, &body, items, overwrite))
        })
        .await?;
        let mut stored = 0usize;
        for (index, r) in outcomes {
            match r {
                Ok(()) => stored += 1,
                Err(e) => results[index] = Some(item_error(&e)),
            }
        }
        tracing::info!(peer = %session.peer, files = req.files.len(), checked = n, stored, bytes = len, secs = started.elapsed().as_secs_f64(), "putmany done");
        conn.send(&Header::reply(&PutManyReply { results })?)
            .await?;
        Ok(())
    }
}

/// Reads one file of a `getmany` whole, if it fits in what is left of the batch.
fn read_item(
    root: &FilesRoot,
    path: &str,
    room: u64,
    body: &mut Vec<u8>,
) -> Result<GetManyFile, FilesError> {
    let p = rel_path(path)?;
    let (file, meta) = open_regular(root, &p)?;
    if meta.len() > room {
        return Err(FilesError::TooLarge {
            size: meta.len(),
            limit: room,
        });
    }
    let start = body.len();
    // At most the size seen at open: a file growing meanwhile sends its first bytes, all
    // hashed as sent.
    file.take(meta.len())
        .read_to_end(body)
        .map_err(|e| FilesError::io(&p, e))?;
    let data = &body[start..];
    let mtime = mtime_of(&meta);
    Ok(GetManyFile {
        size: data.len() as u64,
        blake3: Some(blake3::hash(data).to_hex().to_string()),
        mtime: mtime.secs,
        mtime_nsec: mtime.nsec,
        mode: Some(mode_of(&meta)),
        error: None,
    })
}

fn read_all(root: &FilesRoot, paths: &[String]) -> (Vec<GetManyFile>, Vec<u8>) {
    let mut body = Vec::new();
    let files = paths
        .iter()
        .map(|path| {
            let room = BATCH_MAX_BYTES.saturating_sub(body.len() as u64);
            read_item(root, path, room, &mut body).unwrap_or_else(|e| {
                let error = match e {
                    FilesError::TooLarge { .. } => ItemError::new(
                        ErrorCode::TooLarge,
                        "the batch is full; fetch this file with get",
                    ),
                    e => item_error(&e),
                };
                GetManyFile {
                    error: Some(error),
                    ..GetManyFile::default()
                }
            })
        })
        .collect();
    (files, body)
}

#[async_trait]
impl Command for GetMany {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        session: &Session,
    ) -> Result<(), CommandError> {
        let req: GetManyRequest = req.decode()?;
        if req.paths.len() > BATCH_MAX_FILES {
            return Err(CommandError::reply(
                ErrorCode::BadRequest,
                format!("getmany takes at most {BATCH_MAX_FILES} paths"),
            ));
        }
        let paths = req.paths;
        let count = paths.len();
        let (files, body) = blocking(&self.root, move |root| Ok(read_all(root, &paths))).await?;
        let reply = GetManyReply {
            size: body.len() as u64,
            files,
        };
        let bytes = body.len();
        let header = Header::reply(&reply)?;
        if body.is_empty() {
            conn.send(&header).await?;
        } else {
            conn.send_with_body(&header, Bytes::from(body)).await?;
        }
        tracing::debug!(peer = %session.peer, files = count, bytes, "getmany done");
        Ok(())
    }
}
