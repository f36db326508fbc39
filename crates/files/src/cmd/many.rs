//! `putmany` and `getmany`: many small files in one request or reply body, for tree
//! transfers (`put -r`, `get -r`) that send several batches back to back.
//!
//! `putmany {size, overwrite, files:[{path,size,blake3,mode?,mtime?,mtime_nsec?}]}` + the
//! files' bytes back to back → `{results:[null | {code,message}]}`. The body (at most
//! `--batch-max-bytes`) is read into memory first, so a connection that drops mid-body
//! changes nothing. Each file is then checked (path, hash of its bytes against its
//! `blake3`, `--max-upload`, a running upload of it is `busy`), written to its own staging
//! file, given its mode and time, fsynced and moved into place as `put` does; the parent
//! directories are fsynced once per batch (not once per file) before the reply, so every
//! file reported as committed is durable under its name. A failing file does not stop the
//! others; its entry says why.
//!
//! `getmany {paths:[...]}` → `{size, files:[{size,blake3,mtime,mtime_nsec,mode} |
//! {error}]}` + the files' bytes back to back. Each file is read whole and hashed as read
//! (so bytes and hash always agree); once the reply holds `--batch-max-bytes`, further
//! files are answered `too_large` (the client fetches them with `get`).

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::{ErrorCode, FrameError, Header};

use crate::cmd::get::open_regular;
use crate::cmd::put::check_parent;
use crate::cmd::{rel_path, reply_compressed, reply_now, request_encoding};
use crate::compress::blocks::{BlockReader, BlockWriter, BlocksError};
use crate::error::FilesError;
use crate::messages::{
    GetManyFile, GetManyReply, GetManyRequest, ItemError, PutManyFile, PutManyReply,
    PutManyRequest, ZSTD,
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

/// Checks one file of a batch (the bytes `start..end` of the body) and claims its path;
/// its bytes are checked against its hash when it is committed.
fn check_item(
    root: &Arc<FilesRoot>,
    f: &PutManyFile,
    (index, start, end): (usize, usize, usize),
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
    let guard = root.claim_upload(&path)?;
    Ok(Item {
        index,
        path,
        start,
        end,
        hash: expected,
        mode,
        mtime,
        _guard: guard,
    })
}

/// Writes one file to a fresh staging file, with its mode and time, and fsyncs it;
/// returns the staged file's metadata (the same inode, size and time the file has once
/// placed).
fn stage(root: &FilesRoot, item: &Item, data: &[u8]) -> Result<std::fs::Metadata, FilesError> {
    let written = root.create_staging(&item.path).and_then(|mut file| {
        file.write_all(data)?;
        meta::apply_to_file(&file, item.mode, item.mtime)?;
        file.sync_all()?;
        file.metadata()
    });
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
/// directory fsync, which the batch does once per directory): a rename, or without
/// `overwrite` a hard link that fails if the name exists, then the staging name removed.
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

/// The refusal for a name that is taken: a directory there is `bad_request` (as for
/// `put`), anything else `exists`.
fn taken(parent: &cap_std::fs::Dir, name: &str, path: &RelPath) -> FilesError {
    match parent.symlink_metadata(name) {
        Ok(m) if m.is_dir() => {
            FilesError::BadRequest(format!("{path} is a directory; put the file inside it"))
        }
        _ => FilesError::Exists(path.clone()),
    }
}

/// Moves a staged file to its name in `parent` (its directory, opened beneath the root)
/// with one `renameat2`: `RENAME_NOREPLACE` unless `overwrite`, so an existing name is
/// never replaced without it. The directory handle is opened once per batch, so no path
/// is resolved again per file. A filesystem without `RENAME_NOREPLACE` falls back to
/// [`place`].
fn place_in(
    root: &FilesRoot,
    parent: &cap_std::fs::Dir,
    path: &RelPath,
    overwrite: bool,
) -> Result<(), FilesError> {
    use std::os::fd::AsRawFd;
    let name = path.file_name().unwrap_or("");
    let (Ok(from), Ok(to)) = (
        std::ffi::CString::new(FilesRoot::staging_name(path)),
        std::ffi::CString::new(name),
    ) else {
        return Err(FilesError::BadRequest(format!("{path}: NUL in a name")));
    };
    let flags = if overwrite { 0 } else { libc::RENAME_NOREPLACE };
    // SAFETY: both descriptors are open directories we hold, both names NUL-terminated;
    // a plain name (no `/`, never `..`: RelPath refuses them) resolves inside `parent`.
    let r = unsafe {
        libc::renameat2(
            root.staging().as_raw_fd(),
            from.as_ptr(),
            parent.as_raw_fd(),
            to.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    match e.raw_os_error() {
        Some(libc::EEXIST | libc::EISDIR) => {
            root.discard_staging(path);
            Err(taken(parent, name, path))
        }
        Some(libc::EINVAL | libc::ENOSYS) => place(root, path, overwrite),
        _ => Err(FilesError::io(path, e)),
    }
}

/// Commits the checked files of a batch: stage, fsync and place each, then fsync each
/// parent directory once. Each parent is opened (and so checked) once per batch. Returns
/// each item's outcome.
fn commit_all(
    root: &FilesRoot,
    body: &[u8],
    items: Vec<Item>,
    overwrite: bool,
) -> Vec<(usize, Result<(), FilesError>)> {
    let mut out = Vec::with_capacity(items.len());
    // `None`: the directory could not be opened (each of its files says why).
    let mut parents: BTreeMap<RelPath, Option<cap_std::fs::Dir>> = BTreeMap::new();
    let mut placed: BTreeMap<RelPath, Vec<usize>> = BTreeMap::new();
    for item in items {
        let data = &body[item.start..item.end];
        let parent_path = item.path.parent().unwrap_or_else(RelPath::root);
        let parent = parents
            .entry(parent_path.clone())
            .or_insert_with(|| open_parent(root, &item.path).ok());
        let actual = blake3::hash(data);
        let r = match parent {
            _ if actual != item.hash => Err(FilesError::HashMismatch {
                path: item.path.clone(),
                expected: item.hash.to_hex().to_string(),
                actual: actual.to_hex().to_string(),
            }),
            None => Err(open_parent(root, &item.path).err().unwrap_or_else(|| {
                FilesError::io(
                    &parent_path,
                    std::io::Error::other("the directory appeared during the batch; send again"),
                )
            })),
            Some(dir) => stage(root, &item, data)
                .and_then(|meta| place_in(root, dir, &item.path, overwrite).map(|()| meta)),
        };
        let r = r.map(|meta| {
            let meta = cap_std::fs::Metadata::from_just_metadata(meta);
            root.hashes()
                .insert(FilesRoot::file_key(&item.path, &meta), item.hash);
            placed.entry(parent_path).or_default().push(out.len());
        });
        out.push((item.index, r));
    }
    // The new names survive a crash only once their directories are on disk.
    for (parent, indices) in placed {
        let synced = match parents.get(&parent) {
            Some(Some(dir)) => dir.open(".").and_then(|d| d.sync_all()),
            _ => Ok(()),
        };
        if let Err(e) = synced {
            tracing::warn!(%parent, error = %e, "directory fsync after a batch failed");
            for i in indices {
                out[i].1 = Err(FilesError::io(
                    &parent,
                    std::io::Error::other(e.to_string()),
                ));
            }
        }
    }
    out
}

/// Opens the directory that will hold `path` (checked as `put` checks it).
fn open_parent(root: &FilesRoot, path: &RelPath) -> Result<cap_std::fs::Dir, FilesError> {
    let parent = path.parent().unwrap_or_else(RelPath::root);
    let opened = if parent.is_root() {
        root.dir().try_clone()
    } else {
        root.dir().open_dir(parent.to_path())
    };
    // The error says why in the words `put` uses.
    opened.map_err(|e| match check_parent(root, path) {
        Err(why) => why,
        Ok(()) => FilesError::io(&parent, e),
    })
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
        let encoded = request_encoding(
            &self.root,
            req.encoding.as_deref(),
            req.raw_size,
            conn.body_remaining(),
        )?;
        let len = encoded.unwrap_or(conn.body_remaining());
        let (max_files, max_bytes) = {
            let c = self.root.config();
            (c.batch_max_files, c.batch_max_bytes)
        };
        if req.files.len() > max_files {
            return Err(CommandError::reply(
                ErrorCode::BadRequest,
                format!("putmany takes at most {max_files} files on this server"),
            ));
        }
        if len > max_bytes {
            return Err(CommandError::reply(
                ErrorCode::TooLarge,
                format!("a putmany body holds at most {max_bytes} bytes on this server"),
            ));
        }
        let sum = req
            .files
            .iter()
            .try_fold(0u64, |a, f| a.checked_add(f.size));
        // An encoded batch's `size` is 0 (its blocks are frames of their own).
        let size_ok = req.size == if encoded.is_some() { 0 } else { len };
        if sum != Some(len) || !size_ok {
            return Err(CommandError::reply(
                ErrorCode::BadRequest,
                "putmany: `size` must be the sum of the files' sizes",
            ));
        }
        // Nothing is written before the whole body is in: a dropped connection changes
        // nothing.
        let body = match encoded {
            None => conn.read_body_to_vec(max_bytes).await?,
            Some(raw) => match BlockReader::new(raw)
                .read_all(conn, Some(&session.clock))
                .await
            {
                Ok((body, _)) => body,
                Err(BlocksError::Frame(e)) => return Err(e.into()),
                Err(BlocksError::Bad(e)) => {
                    // The stream cannot be trusted after a malformed block.
                    let e = FilesError::BadRequest(format!("putmany: {e}"));
                    reply_now(conn, e).await?;
                    return Err(FrameError::Io(std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        "malformed block in a putmany",
                    ))
                    .into());
                }
            },
        };
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
            match check_item(&self.root, f, (index, start, end)) {
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
    let max_bytes = root.config().batch_max_bytes;
    let files = paths
        .iter()
        .map(|path| {
            let room = max_bytes.saturating_sub(body.len() as u64);
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
        let max_files = self.root.config().batch_max_files;
        if req.paths.len() > max_files {
            return Err(CommandError::reply(
                ErrorCode::BadRequest,
                format!("getmany takes at most {max_files} paths on this server"),
            ));
        }
        let compress = reply_compressed(&self.root, &req.compress);
        let paths = req.paths;
        let count = paths.len();
        let (files, body) = blocking(&self.root, move |root| Ok(read_all(root, &paths))).await?;
        let bytes = body.len();
        let compress = compress && !body.is_empty();
        let reply = GetManyReply {
            size: if compress { 0 } else { bytes as u64 },
            files,
            encoding: compress.then(|| ZSTD.to_owned()),
            raw_size: compress.then_some(bytes as u64),
        };
        let header = Header::reply(&reply)?;
        let wire = if body.is_empty() {
            conn.send(&header).await?;
            0
        } else if compress {
            conn.send(&header).await?;
            let mut blocks = BlockWriter::new();
            blocks.write(conn, Bytes::from(body)).await?;
            blocks.finish(conn).await?
        } else {
            conn.send_with_body(&header, Bytes::from(body)).await?;
            bytes as u64
        };
        tracing::debug!(peer = %session.peer, files = count, bytes, wire, "getmany done");
        Ok(())
    }
}
