//! Listing a tree (local or remote) with the metadata a sync compares. On the source,
//! entries that cannot be synced are reported, not listed: special files and symlinks
//! leading outside the tree. On the destination they are listed as [`Node::Other`], so a
//! sync can replace or delete them. Names that are not UTF-8 and trees deeper than
//! [`MAX_DEPTH`] are reported on either side. Excluded paths are neither listed nor
//! descended into; they are recorded in [`Tree::excluded`].

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use sockit_wire::ErrorCode;

use super::exclude::Excludes;
use super::plan::{Node, Tree};
use crate::client::{remote_join, FilesClient, FilesClientError};
use crate::meta::{resolve_link_target, Mtime, REPORTED_MODE_BITS};

/// Most directory levels a sync descends.
pub(crate) const MAX_DEPTH: usize = 64;

fn rel_join(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_owned()
    } else {
        format!("{rel}/{name}")
    }
}

fn mtime_of(m: &std::fs::Metadata) -> Mtime {
    Mtime::of(m.mtime(), m.mtime_nsec())
}

/// Which end of the sync a tree is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// What is copied: entries that cannot be copied are reported.
    Source,
    /// What is made equal to the source: every entry is listed, so it can be replaced.
    Destination,
}

impl Role {
    /// What an entry that cannot be synced becomes: reported (source) or listed as
    /// [`Node::Other`] (destination).
    fn unsyncable(self, skipped: &mut Vec<String>, why: String) -> Option<Node> {
        match self {
            Role::Source => {
                skipped.push(why);
                None
            }
            Role::Destination => Some(Node::Other),
        }
    }
}

/// Lists the local tree `top` (missing: an empty tree without a top).
///
/// # Errors
/// A directory that cannot be read.
pub(crate) fn local_tree(
    top: &Path,
    ex: &Excludes,
    role: Role,
    skipped: &mut Vec<String>,
) -> Result<Tree, FilesClientError> {
    let mut tree = Tree::default();
    let meta = match std::fs::metadata(top) {
        Ok(m) if m.is_dir() => m,
        Ok(_) => {
            return Err(FilesClientError::local(
                top,
                std::io::Error::other("is not a directory; sync works on directory trees"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(tree),
        Err(e) => return Err(FilesClientError::local(top, e)),
    };
    tree.top = Some((meta.mode() & REPORTED_MODE_BITS, mtime_of(&meta)));
    let mut stack = vec![(top.to_owned(), String::new(), 0usize)];
    while let Some((dir, rel, depth)) = stack.pop() {
        let rd = std::fs::read_dir(&dir).map_err(|e| FilesClientError::local(&dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| FilesClientError::local(&dir, e))?;
            let path = entry.path();
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                skipped.push(format!("{}: name is not UTF-8", path.display()));
                continue;
            };
            let r = rel_join(&rel, &name);
            let m =
                std::fs::symlink_metadata(&path).map_err(|e| FilesClientError::local(&path, e))?;
            let ft = m.file_type();
            if ex.is_excluded(&r, ft.is_dir()) {
                tree.excluded.insert(r);
                continue;
            }
            let node = if ft.is_symlink() {
                let t = std::fs::read_link(&path).map_err(|e| FilesClientError::local(&path, e))?;
                let checked = match t.to_str() {
                    None => Err("symlink target is not UTF-8".to_owned()),
                    Some(target) => resolve_link_target(&rel, target)
                        .map(|_| target.to_owned())
                        .map_err(|why| why.to_string()),
                };
                match checked {
                    Ok(target) => Node::Symlink {
                        target,
                        mtime: mtime_of(&m),
                    },
                    Err(why) => {
                        match role.unsyncable(skipped, format!("{}: {why}", path.display())) {
                            Some(n) => n,
                            None => continue,
                        }
                    }
                }
            } else if ft.is_dir() {
                if depth + 1 >= MAX_DEPTH {
                    skipped.push(format!(
                        "{}: deeper than {MAX_DEPTH} levels",
                        path.display()
                    ));
                    continue;
                }
                stack.push((path, r.clone(), depth + 1));
                Node::Dir {
                    mode: m.mode() & REPORTED_MODE_BITS,
                    mtime: mtime_of(&m),
                }
            } else if ft.is_file() {
                Node::File {
                    size: m.len(),
                    mtime: mtime_of(&m),
                    mode: m.mode() & REPORTED_MODE_BITS,
                    blake3: None,
                }
            } else {
                let why = format!(
                    "{}: not a regular file, directory or symlink",
                    path.display()
                );
                match role.unsyncable(skipped, why) {
                    Some(n) => n,
                    None => continue,
                }
            };
            tree.entries.insert(r, node);
        }
    }
    Ok(tree)
}

impl FilesClient {
    /// Lists the remote tree `top` (missing: an empty tree without a top).
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub(crate) async fn remote_tree(
        &mut self,
        top: &str,
        ex: &Excludes,
        role: Role,
        skipped: &mut Vec<String>,
    ) -> Result<Tree, FilesClientError> {
        let mut tree = Tree::default();
        match self.stat(top, false).await {
            Ok(st) if st.kind == "dir" => {
                let t = Mtime::new(st.mtime, st.mtime_nsec).unwrap_or_default();
                tree.top = Some((st.mode.unwrap_or(0o755), t));
            }
            Ok(st) => {
                return Err(FilesClientError::Protocol(format!(
                    "{top} on the server is a {}, not a directory; sync works on directory trees",
                    st.kind
                )))
            }
            Err(e) if e.remote_code() == Some(ErrorCode::NotFound) => return Ok(tree),
            Err(e) => return Err(e),
        }
        let mut stack = vec![(String::new(), 0usize)];
        while let Some((rel, depth)) = stack.pop() {
            for e in self.ls(&remote_join(top, &rel)).await? {
                if e.name.is_empty() || e.name.contains('/') || e.name == "." || e.name == ".." {
                    skipped.push(format!("{rel}/{}: unsafe name from server", e.name));
                    continue;
                }
                let r = rel_join(&rel, &e.name);
                if ex.is_excluded(&r, e.kind == "dir") {
                    tree.excluded.insert(r);
                    continue;
                }
                let mtime = Mtime::new(e.mtime, e.mtime_nsec).unwrap_or_default();
                let node = match e.kind.as_str() {
                    "file" => Node::File {
                        size: e.size,
                        mtime,
                        mode: e.mode.unwrap_or(0o644),
                        blake3: None,
                    },
                    "dir" if depth + 1 < MAX_DEPTH => {
                        stack.push((r.clone(), depth + 1));
                        Node::Dir {
                            mode: e.mode.unwrap_or(0o755),
                            mtime,
                        }
                    }
                    "dir" => {
                        skipped.push(format!("{r}: deeper than {MAX_DEPTH} levels"));
                        continue;
                    }
                    "symlink" => match e.target.filter(|t| resolve_link_target(&rel, t).is_ok()) {
                        Some(target) => Node::Symlink { target, mtime },
                        None => {
                            let why = format!("{r}: symlink leading outside the tree");
                            match role.unsyncable(skipped, why) {
                                Some(n) => n,
                                None => continue,
                            }
                        }
                    },
                    other => match role.unsyncable(skipped, format!("{r}: {other}")) {
                        Some(n) => n,
                        None => continue,
                    },
                };
                tree.entries.insert(r, node);
            }
        }
        Ok(tree)
    }
}
