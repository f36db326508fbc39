//! Whole directory trees (`get -r`, `put -r`): walk one side, mirror directories, transfer
//! each file with the single-file code, recreate symlinks as symlinks, and finally give each
//! directory its mode and time (deepest first, after its contents, as rsync does, so a
//! read-only directory can still be filled and a directory's time is not changed again by
//! what is put inside it). Stops at the first failing file (what arrived so far stays, and
//! `--resume` continues).
//!
//! A symlink is transferred only when its target stays inside the tree
//! ([`resolve_link_target`]: relative, leading `..` only, never above the top), the rule the
//! server enforces for its root; others are skipped and reported. A download never writes
//! through a local symlink: a directory that is a symlink on the local side is skipped.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use sockit_wire::ErrorCode;

use crate::client::get::GetOptions;
use crate::client::put::PutOptions;
use crate::client::{remote_join, Entry, FilesClient, FilesClientError, Progress};
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
    /// Symlinks recreated as symlinks.
    pub symlinks: u64,
    /// Entries skipped (symlinks leading outside the tree, special files), with why.
    pub skipped: Vec<String>,
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
fn make_local_link(path: &Path, target: &str, mtime: Mtime) -> Result<(), FilesClientError> {
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

impl FilesClient {
    /// Uploads the local directory `local` as the remote directory `remote`.
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
        let mut report = TreeReport::default();
        // Directories in the order created; their attributes are set in reverse at the end.
        let mut made: Vec<(String, std::fs::Metadata)> = Vec::new();
        let mut stack: Vec<(PathBuf, String, String, usize)> =
            vec![(local.to_owned(), remote.to_owned(), String::new(), 0)];
        let mut links_known = true;
        while let Some((dir, rdir, rel, depth)) = stack.pop() {
            self.mkdir(&rdir, true).await?;
            report.dirs += 1;
            let dmeta = std::fs::metadata(&dir).map_err(|e| FilesClientError::local(&dir, e))?;
            made.push((rdir.clone(), dmeta));
            let mut entries: Vec<_> = std::fs::read_dir(&dir)
                .map_err(|e| FilesClientError::local(&dir, e))?
                .collect::<Result<_, _>>()
                .map_err(|e| FilesClientError::local(&dir, e))?;
            entries.sort_by_key(|e| e.file_name());
            for entry in entries {
                let path = entry.path();
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    report
                        .skipped
                        .push(format!("{}: name is not UTF-8", path.display()));
                    continue;
                };
                // The entry itself: a symlink is sent as a symlink, never followed.
                let meta = std::fs::symlink_metadata(&path)
                    .map_err(|e| FilesClientError::local(&path, e))?;
                let rpath = remote_join(&rdir, &name);
                let ft = meta.file_type();
                if ft.is_symlink() {
                    let target =
                        std::fs::read_link(&path).map_err(|e| FilesClientError::local(&path, e))?;
                    let Some(target) = target.to_str() else {
                        report
                            .skipped
                            .push(format!("{}: symlink target is not UTF-8", path.display()));
                        continue;
                    };
                    if let Err(why) = resolve_link_target(&rel, target) {
                        report.skipped.push(format!("{}: {why}", path.display()));
                        continue;
                    }
                    if !links_known {
                        report.skipped.push(format!(
                            "{}: the server does not create symlinks",
                            path.display()
                        ));
                        continue;
                    }
                    let mtime = Mtime::of(meta.mtime(), meta.mtime_nsec());
                    match self
                        .symlink(&rpath, target, opts.overwrite, Some(mtime))
                        .await
                    {
                        Ok(()) => report.symlinks += 1,
                        Err(e) if is_unknown(&e) => {
                            links_known = false;
                            report.skipped.push(format!(
                                "{}: the server does not create symlinks",
                                path.display()
                            ));
                        }
                        Err(e) => return Err(e),
                    }
                } else if ft.is_dir() {
                    if depth + 1 >= MAX_DEPTH {
                        report.skipped.push(format!(
                            "{}: deeper than {MAX_DEPTH} levels",
                            path.display()
                        ));
                    } else {
                        stack.push((path, rpath, rel_join(&rel, &name), depth + 1));
                    }
                } else if ft.is_file() {
                    let r = self.put(&path, &rpath, opts, progress).await?;
                    report.files += 1;
                    report.bytes += r.size;
                } else {
                    report
                        .skipped
                        .push(format!("{}: not a regular file", path.display()));
                }
            }
        }
        for (rdir, m) in made.iter().rev() {
            let mode = Some(m.mode() & REPORTED_MODE_BITS);
            let mtime = Some(Mtime::of(m.mtime(), m.mtime_nsec()));
            match self.setattr(rdir, mode, mtime).await {
                Ok(()) => {}
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

    /// Downloads the remote directory `remote` as the local directory `local`.
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
                    "dir" if depth + 1 < MAX_DEPTH => stack.push((
                        rpath,
                        lpath,
                        rel_join(&rel, &entry.name),
                        depth + 1,
                        (entry.mode, mtime),
                    )),
                    "dir" => report
                        .skipped
                        .push(format!("{rpath}: deeper than {MAX_DEPTH} levels")),
                    "file" => {
                        let r = self.get(&rpath, &lpath, opts, progress).await?;
                        report.files += 1;
                        report.bytes += r.size;
                    }
                    "symlink" => self.get_link(&entry, &rel, &rpath, &lpath, &mut report)?,
                    other => report.skipped.push(format!("{rpath}: {other}")),
                }
            }
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
