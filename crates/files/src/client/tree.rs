//! Whole directory trees (`get -r`, `put -r`): walk one side, mirror directories, transfer
//! each file with the single-file code. Stops at the first failure (what arrived so far
//! stays, and `--resume` continues).

use std::path::{Path, PathBuf};

use crate::client::get::GetOptions;
use crate::client::put::PutOptions;
use crate::client::{remote_join, FilesClient, FilesClientError, Progress};

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
    /// Entries skipped (symlinks to directories, special files), with why.
    pub skipped: Vec<String>,
}

impl FilesClient {
    /// Uploads the local directory `local` as the remote directory `remote`.
    ///
    /// # Errors
    /// The first failing file or directory.
    pub async fn put_tree(
        &mut self,
        local: &Path,
        remote: &str,
        opts: PutOptions,
        progress: &mut dyn Progress,
    ) -> Result<TreeReport, FilesClientError> {
        let mut report = TreeReport::default();
        let mut stack: Vec<(PathBuf, String, usize)> =
            vec![(local.to_owned(), remote.to_owned(), 0)];
        while let Some((dir, rdir, depth)) = stack.pop() {
            self.mkdir(&rdir, true).await?;
            report.dirs += 1;
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
                let link = entry
                    .file_type()
                    .map_err(|e| FilesClientError::local(&path, e))?
                    .is_symlink();
                let meta =
                    std::fs::metadata(&path).map_err(|e| FilesClientError::local(&path, e))?;
                let rpath = remote_join(&rdir, &name);
                if meta.is_dir() {
                    if link {
                        report
                            .skipped
                            .push(format!("{}: symlink to a directory", path.display()));
                    } else if depth + 1 >= MAX_DEPTH {
                        report.skipped.push(format!(
                            "{}: deeper than {MAX_DEPTH} levels",
                            path.display()
                        ));
                    } else {
                        stack.push((path, rpath, depth + 1));
                    }
                } else if meta.is_file() {
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
        Ok(report)
    }

    /// Downloads the remote directory `remote` as the local directory `local`.
    ///
    /// # Errors
    /// The first failing file or directory.
    pub async fn get_tree(
        &mut self,
        remote: &str,
        local: &Path,
        opts: GetOptions,
        progress: &mut dyn Progress,
    ) -> Result<TreeReport, FilesClientError> {
        let mut report = TreeReport::default();
        let mut stack: Vec<(String, PathBuf, usize)> =
            vec![(remote.to_owned(), local.to_owned(), 0)];
        while let Some((rdir, dir, depth)) = stack.pop() {
            std::fs::create_dir_all(&dir).map_err(|e| FilesClientError::local(&dir, e))?;
            report.dirs += 1;
            for entry in self.ls(&rdir).await? {
                if entry.name.contains('/') || entry.name == ".." || entry.name == "." {
                    report
                        .skipped
                        .push(format!("{rdir}/{}: unsafe name from server", entry.name));
                    continue;
                }
                let rpath = remote_join(&rdir, &entry.name);
                let lpath = dir.join(&entry.name);
                match entry.kind.as_str() {
                    "dir" if depth + 1 < MAX_DEPTH => stack.push((rpath, lpath, depth + 1)),
                    "dir" => report
                        .skipped
                        .push(format!("{rpath}: deeper than {MAX_DEPTH} levels")),
                    "file" => {
                        let r = self.get(&rpath, &lpath, opts, progress).await?;
                        report.files += 1;
                        report.bytes += r.size;
                    }
                    other => report.skipped.push(format!("{rpath}: {other}")),
                }
            }
        }
        Ok(report)
    }
}
