//! Whole directory trees (`get -r`, `put -r`): walk one side, mirror directories, transfer
//! small files in pipelined batches ([`crate::client::batch`]: many files in flight on one
//! connection, no round trip per file) and large ones with the single-file code, recreate
//! symlinks as symlinks, and finally give each
//! directory its mode and time (deepest first, after its contents, as rsync does, so a
//! read-only directory can still be filled and a directory's time is not changed again by
//! what is put inside it). Stops at the first failing file (what arrived so far stays, and
//! `--resume` continues: files the other side already has with the same size, time and
//! BLAKE3 are skipped, an interrupted large file resumes mid-file).
//!
//! A symlink is transferred only when its target stays inside the tree
//! ([`resolve_link_target`]: relative, leading `..` only, never above the top), the rule the
//! server enforces for its root; others are skipped and reported. A download never writes
//! through a local symlink: a directory that is a symlink on the local side is skipped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use std::collections::{HashMap, HashSet};

use sockit_wire::ErrorCode;

use crate::client::batch::{DownFile, UpFile};
use crate::client::get::GetOptions;
use crate::client::put::PutOptions;
use crate::client::{remote_join, Entry, FilesClient, FilesClientError, Progress};
use crate::messages::{
    MkdirRequest, PathReply, SetattrRequest, StatReply, StatRequest, SymlinkRequest,
};
use crate::meta::{self, resolve_link_target, Mtime, REPORTED_MODE_BITS};

/// Most directory levels a tree transfer descends (guards against loops).
const MAX_DEPTH: usize = 64;

/// What a tree transfer did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeReport {
    /// Files transferred.
    pub files: u64,
    /// Directories created.
    pub dirs: u64,
    /// Bytes of the files transferred.
    pub bytes: u64,
    /// Body bytes of the files on the wire (less than `bytes` with compression).
    pub wire: u64,
    /// Symlinks recreated as symlinks.
    pub symlinks: u64,
    /// Entries skipped (symlinks leading outside the tree, special files), with why.
    pub skipped: Vec<String>,
    /// Files not sent because the other side already had them (`--resume`: same size,
    /// modification time and BLAKE3).
    pub unchanged: u64,
}

/// A directory's mode and time, set once its contents are in.
type Attrs = (Option<u32>, Option<Mtime>);

/// `rel` (a `/`-separated path inside the tree) joined with `name`.
fn rel_join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

/// Whether a server said it does not know a command (an older server).
fn is_unknown(e: &FilesClientError) -> bool {
    e.remote_code() == Some(ErrorCode::UnknownCommand)
}

/// Replaces (or creates) the local symlink `path` with one pointing to `target`: made
/// under a hidden temporary name beside it, then renamed over it.
pub(crate) fn make_local_link(
    path: &Path,
    target: &str,
    mtime: Mtime,
) -> Result<(), FilesClientError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.sockit-link"));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(target, &tmp).map_err(|e| FilesClientError::local(&tmp, e))?;
    // Best effort: a filesystem without symlink times keeps the link anyway.
    let _ = meta::set_symlink_mtime(libc::AT_FDCWD, &tmp, mtime);
    if let Err(e) = std::fs::rename(&tmp, path) {
        let _ = std::fs::remove_file(&tmp);
        return Err(FilesClientError::local(path, e));
    }
    Ok(())
}

/// Gives the local directory `dir` its mode and time.
fn set_local_dir(
    dir: &Path,
    mode: Option<u32>,
    mtime: Option<Mtime>,
) -> Result<(), FilesClientError> {
    let f = std::fs::File::open(dir).map_err(|e| FilesClientError::local(dir, e))?;
    meta::apply_to_file(&f, mode, mtime).map_err(|e| FilesClientError::local(dir, e))
}

/// A local tree, walked before anything is sent.
#[derive(Default)]
struct LocalPlan {
    /// Remote directories in the order created (parents first), with their local metadata.
    dirs: Vec<(String, std::fs::Metadata)>,
    /// Regular files.
    files: Vec<UpFile>,
    /// Symlinks to recreate: local path (for messages), remote path, target, own time.
    links: Vec<(PathBuf, String, String, Mtime)>,
    skipped: Vec<String>,
}

/// Walks `local` depth-first (at most [`MAX_DEPTH`] levels), as `put -r` sends it.
fn walk_local(local: &Path, remote: &str) -> Result<LocalPlan, FilesClientError> {
    let mut plan = LocalPlan::default();
    let mut stack: Vec<(PathBuf, String, String, usize)> =
        vec![(local.to_owned(), remote.to_owned(), String::new(), 0)];
    while let Some((dir, rdir, rel, depth)) = stack.pop() {
        let dmeta = std::fs::metadata(&dir).map_err(|e| FilesClientError::local(&dir, e))?;
        plan.dirs.push((rdir.clone(), dmeta));
        let mut entries: Vec<_> = std::fs::read_dir(&dir)
            .map_err(|e| FilesClientError::local(&dir, e))?
            .collect::<Result<_, _>>()
            .map_err(|e| FilesClientError::local(&dir, e))?;
        entries.sort_by_key(|e| e.file_name());
        let mut subdirs = Vec::new();
        for entry in entries {
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                plan.skipped
                    .push(format!("{}: name is not UTF-8", path.display()));
                continue;
            };
            // The entry itself: a symlink is sent as a symlink, never followed.
            let meta =
                std::fs::symlink_metadata(&path).map_err(|e| FilesClientError::local(&path, e))?;
            let rpath = remote_join(&rdir, &name);
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target =
                    std::fs::read_link(&path).map_err(|e| FilesClientError::local(&path, e))?;
                let Some(target) = target.to_str() else {
                    plan.skipped
                        .push(format!("{}: symlink target is not UTF-8", path.display()));
                    continue;
                };
                if let Err(why) = resolve_link_target(&rel, target) {
                    plan.skipped.push(format!("{}: {why}", path.display()));
                    continue;
                }
                let mtime = Mtime::of(meta.mtime(), meta.mtime_nsec());
                plan.links.push((path, rpath, target.to_owned(), mtime));
            } else if ft.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    plan.skipped.push(format!(
                        "{}: deeper than {MAX_DEPTH} levels",
                        path.display()
                    ));
                } else {
                    subdirs.push((path, rpath, rel_join(&rel, &name), depth + 1));
                }
            } else if ft.is_file() {
                plan.files.push(UpFile {
                    local: path,
                    remote: rpath,
                    size: meta.len(),
                });
            } else {
                plan.skipped
                    .push(format!("{}: not a regular file", path.display()));
            }
        }
        // Popped in name order.
        stack.extend(subdirs.into_iter().rev());
    }
    Ok(plan)
}

/// The BLAKE3 of a local file, hex (blocking).
fn local_hash(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = blake3::Hasher::new();
    std::io::copy(&mut f, &mut h)?;
    Ok(h.finalize().to_hex().to_string())
}

/// Of `candidates` (remote path, local path), the indexes whose two files have the same
/// BLAKE3 (one pipelined `stat --hash` per candidate; the local side hashed meanwhile).
async fn same_hashes(
    client: &mut FilesClient,
    candidates: &[(String, PathBuf)],
) -> Result<Vec<bool>, FilesClientError> {
    if candidates.is_empty() {
        return Ok(Vec::new());
    }
    let locals: Vec<PathBuf> = candidates.iter().map(|c| c.1.clone()).collect();
    let hashing = tokio::task::spawn_blocking(move || {
        locals
            .iter()
            .map(|p| local_hash(p).ok())
            .collect::<Vec<_>>()
    });
    let reqs: Vec<StatRequest> = candidates
        .iter()
        .map(|c| StatRequest {
            path: c.0.clone(),
            hash: true,
        })
        .collect();
    let remote = client.call_many::<_, StatReply>(&reqs).await?;
    let local = hashing.await.map_err(|e| {
        FilesClientError::local(
            ".",
            std::io::Error::other(format!("hash thread failed: {e}")),
        )
    })?;
    Ok(remote
        .into_iter()
        .zip(local)
        .map(|(r, l)| match (r, l) {
            (Ok(r), Some(l)) => r.stat.blake3.as_deref() == Some(l.as_str()),
            _ => false,
        })
        .collect())
}

/// Whether a listed entry and a local file have the same size and modification time.
fn same_size_and_time(e: &Entry, m: &std::fs::Metadata) -> bool {
    e.kind == "file"
        && e.size == m.len()
        && e.mtime == m.mtime()
        && i64::from(e.mtime_nsec) == m.mtime_nsec()
}

impl FilesClient {
    /// Uploads the local directory `local` as the remote directory `remote`: directories,
    /// symlinks and directory attributes as pipelined requests, small files in pipelined
    /// `putmany` batches (one directory fsync per batch on the server), files over
    /// [`crate::client::batch::SMALL_FILE`] one by one on the streaming path. With `resume`, files whose remote
    /// copy has the same size, time and BLAKE3 are skipped (counted in
    /// [`TreeReport::unchanged`]), and an interrupted large file continues where it
    /// stopped.
    ///
    /// # Errors
    /// The first failing file, symlink or directory.
    pub async fn put_tree(
        &mut self,
        local: &Path,
        remote: &str,
        opts: PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<TreeReport, FilesClientError> {
        let plan = walk_local(local, remote)?;
        let mut report = TreeReport {
            skipped: plan.skipped,
            ..TreeReport::default()
        };
        let mkdirs: Vec<MkdirRequest> = plan
            .dirs
            .iter()
            .map(|(d, _)| MkdirRequest {
                path: d.clone(),
                parents: true,
            })
            .collect();
        for r in self.call_many::<_, PathReply>(&mkdirs).await? {
            r?;
            report.dirs += 1;
        }
        let mut files = plan.files;
        if opts.resume {
            files = self
                .drop_unchanged_remote(&plan.dirs, files, &mut report)
                .await?;
        }
        let batched = self.server_has("putmany");
        let small_max = self.batch_limits().await?.small_file;
        let (small, big): (Vec<UpFile>, Vec<UpFile>) = files
            .into_iter()
            .partition(|f| batched && f.size <= small_max);
        let moved = self.put_small(small, opts.overwrite, progress).await?;
        report.files += moved.files;
        report.bytes += moved.bytes;
        report.wire += moved.wire;
        for f in big {
            let r = self.put(&f.local, &f.remote, opts, progress).await?;
            report.files += 1;
            report.bytes += r.size;
            report.wire += r.wire;
        }
        let links: Vec<SymlinkRequest> = plan
            .links
            .iter()
            .map(|(_, rpath, target, mtime)| SymlinkRequest {
                path: rpath.clone(),
                target: target.clone(),
                overwrite: opts.overwrite,
                mtime: Some(mtime.secs),
                mtime_nsec: Some(mtime.nsec),
            })
            .collect();
        let made = self.call_many::<_, PathReply>(&links).await?;
        for ((path, ..), r) in plan.links.iter().zip(made) {
            match r {
                Ok(_) => report.symlinks += 1,
                Err(e) if is_unknown(&e) => report.skipped.push(format!(
                    "{}: the server does not create symlinks",
                    path.display()
                )),
                Err(e) => return Err(e),
            }
        }
        let attrs: Vec<SetattrRequest> = plan
            .dirs
            .iter()
            .rev()
            .map(|(rdir, m)| {
                let mtime = Mtime::of(m.mtime(), m.mtime_nsec());
                SetattrRequest {
                    path: rdir.clone(),
                    mode: Some(m.mode() & REPORTED_MODE_BITS),
                    mtime: Some(mtime.secs),
                    mtime_nsec: Some(mtime.nsec),
                }
            })
            .collect();
        for r in self.call_many::<_, PathReply>(&attrs).await? {
            match r {
                Ok(_) => {}
                Err(e) if is_unknown(&e) => {
                    report
                        .skipped
                        .push("directory modes and times: the server does not set them".to_owned());
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(report)
    }

    /// Of `files`, those that still need sending: a remote file with the same size, time
    /// and BLAKE3 is counted as unchanged instead.
    async fn drop_unchanged_remote(
        &mut self,
        dirs: &[(String, std::fs::Metadata)],
        files: Vec<UpFile>,
        report: &mut TreeReport,
    ) -> Result<Vec<UpFile>, FilesClientError> {
        let mut listed: HashMap<String, Entry> = HashMap::new();
        for (rdir, _) in dirs {
            for e in self.ls(rdir).await? {
                listed.insert(remote_join(rdir, &e.name), e);
            }
        }
        let mut candidates = Vec::new();
        let mut which = Vec::new();
        for (i, f) in files.iter().enumerate() {
            let Some(e) = listed.get(&f.remote) else {
                continue;
            };
            let Ok(m) = std::fs::symlink_metadata(&f.local) else {
                continue;
            };
            if same_size_and_time(e, &m) {
                candidates.push((f.remote.clone(), f.local.clone()));
                which.push(i);
            }
        }
        let same = same_hashes(self, &candidates).await?;
        let skip: HashSet<usize> = which
            .into_iter()
            .zip(same)
            .filter_map(|(i, s)| s.then_some(i))
            .collect();
        report.unchanged += skip.len() as u64;
        Ok(files
            .into_iter()
            .enumerate()
            .filter_map(|(i, f)| (!skip.contains(&i)).then_some(f))
            .collect())
    }

    /// Downloads the remote directory `remote` as the local directory `local`: the tree is
    /// listed first (directories and symlinks made as it goes), then small files come in
    /// pipelined `getmany` batches (each written atomically), files over [`crate::client::batch::SMALL_FILE`]
    /// one by one on the streaming path. With `resume`, local files with the same size,
    /// time and BLAKE3 as the remote ones are skipped, and an interrupted large download
    /// continues from its partial file.
    ///
    /// # Errors
    /// The first failing file, symlink or directory.
    pub async fn get_tree(
        &mut self,
        remote: &str,
        local: &Path,
        opts: GetOptions,
        progress: &mut dyn Progress,
    ) -> Result<TreeReport, FilesClientError> {
        let mut report = TreeReport::default();
        let top = self.stat(remote, false).await?;
        // A top that is a symlink to a directory lends the tree nothing of its own.
        let top_attrs = if top.kind == "dir" {
            (top.mode, Mtime::new(top.mtime, top.mtime_nsec).ok())
        } else {
            (None, None)
        };
        let mut made: Vec<(PathBuf, Option<u32>, Option<Mtime>)> = Vec::new();
        let mut files: Vec<(DownFile, Entry)> = Vec::new();
        let mut stack: Vec<(String, PathBuf, String, usize, Attrs)> = vec![(
            remote.to_owned(),
            local.to_owned(),
            String::new(),
            0,
            top_attrs,
        )];
        while let Some((rdir, dir, rel, depth, attrs)) = stack.pop() {
            if depth == 0 {
                std::fs::create_dir_all(&dir).map_err(|e| FilesClientError::local(&dir, e))?;
            } else {
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        let m = std::fs::symlink_metadata(&dir)
                            .map_err(|e| FilesClientError::local(&dir, e))?;
                        if !m.is_dir() {
                            report.skipped.push(format!(
                                "{rdir}: {} exists and is not a directory (a symlink is not followed)",
                                dir.display()
                            ));
                            continue;
                        }
                    }
                    Err(e) => return Err(FilesClientError::local(&dir, e)),
                }
            }
            report.dirs += 1;
            made.push((dir.clone(), attrs.0, attrs.1));
            let mut subdirs = Vec::new();
            for entry in self.ls(&rdir).await? {
                if entry.name.contains('/') || entry.name == ".." || entry.name == "." {
                    report
                        .skipped
                        .push(format!("{rdir}/{}: unsafe name from server", entry.name));
                    continue;
                }
                let rpath = remote_join(&rdir, &entry.name);
                let lpath = dir.join(&entry.name);
                let mtime = Mtime::new(entry.mtime, entry.mtime_nsec).ok();
                match entry.kind.as_str() {
                    "dir" if depth + 1 < MAX_DEPTH => subdirs.push((
                        rpath,
                        lpath,
                        rel_join(&rel, &entry.name),
                        depth + 1,
                        (entry.mode, mtime),
                    )),
                    "dir" => report
                        .skipped
                        .push(format!("{rpath}: deeper than {MAX_DEPTH} levels")),
                    "file" => files.push((
                        DownFile {
                            remote: rpath,
                            local: lpath,
                            size: entry.size,
                        },
                        entry,
                    )),
                    "symlink" => self.get_link(&entry, &rel, &rpath, &lpath, &mut report)?,
                    other => report.skipped.push(format!("{rpath}: {other}")),
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        if opts.resume {
            let mut candidates = Vec::new();
            let mut which = Vec::new();
            for (i, (f, e)) in files.iter().enumerate() {
                if let Ok(m) = std::fs::symlink_metadata(&f.local) {
                    if m.is_file() && same_size_and_time(e, &m) {
                        candidates.push((f.remote.clone(), f.local.clone()));
                        which.push(i);
                    }
                }
            }
            let same = same_hashes(self, &candidates).await?;
            let skip: HashSet<usize> = which
                .into_iter()
                .zip(same)
                .filter_map(|(i, s)| s.then_some(i))
                .collect();
            report.unchanged += skip.len() as u64;
            files = files
                .into_iter()
                .enumerate()
                .filter_map(|(i, f)| (!skip.contains(&i)).then_some(f))
                .collect();
        }
        let batched = self.server_has("getmany");
        let small_max = self.batch_limits().await?.small_file;
        let (small, mut big): (Vec<DownFile>, Vec<DownFile>) = files
            .into_iter()
            .map(|(f, _)| f)
            .partition(|f| batched && f.size <= small_max);
        let moved = self.get_small(small, progress).await?;
        report.files += moved.files;
        report.bytes += moved.bytes;
        report.wire += moved.wire;
        big.extend(moved.left);
        for f in big {
            let r = self.get(&f.remote, &f.local, opts, progress).await?;
            report.files += 1;
            report.bytes += r.size;
            report.wire += r.wire;
        }
        for (dir, mode, mtime) in made.iter().rev() {
            set_local_dir(dir, *mode, *mtime)?;
        }
        Ok(report)
    }

    /// Recreates the remote symlink `entry` (in the tree directory `rel`) at `lpath`, or
    /// reports why not.
    fn get_link(
        &mut self,
        entry: &Entry,
        rel: &str,
        rpath: &str,
        lpath: &Path,
        report: &mut TreeReport,
    ) -> Result<(), FilesClientError> {
        let Some(target) = entry.target.as_deref() else {
            report.skipped.push(format!(
                "{rpath}: symlink whose target the server does not show (absolute or not UTF-8)"
            ));
            return Ok(());
        };
        if let Err(why) = resolve_link_target(rel, target) {
            report.skipped.push(format!("{rpath}: {why}"));
            return Ok(());
        }
        if std::fs::symlink_metadata(lpath).is_ok_and(|m| m.is_dir()) {
            report.skipped.push(format!(
                "{rpath}: {} is a directory; a symlink cannot replace it",
                lpath.display()
            ));
            return Ok(());
        }
        let mtime = Mtime::new(entry.mtime, entry.mtime_nsec).unwrap_or_default();
        make_local_link(lpath, target, mtime)?;
        report.symlinks += 1;
        Ok(())
    }
}
