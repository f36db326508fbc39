//! `ls {path?, offset?}` → `{entries:[{name,kind,size,mtime,mtime_nsec,mode,target?}], next?}`.
//!
//! Every entry is described itself (`lstat`): a symlink is `kind: "symlink"` with its
//! `target` as text, never resolved or followed. Entries are sorted by name. A reply header must fit in 64 KiB, so a large directory is
//! paged: when `next` is present, ask again with `offset: next`.

use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::Metadata;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::cmd::rel_path;
use crate::error::FilesError;
pub use crate::messages::Entry;
use crate::messages::{LsReply, LsRequest};
use crate::path::is_reserved;
use crate::root::{blocking, mode_of, mtime_of, FilesRoot};

/// Budget for the entries of one reply (the header cap is 64 KiB).
const PAGE_BYTES: usize = 48 * 1024;

/// The kind of a file as the protocol spells it.
pub(crate) fn kind_of(meta: &Metadata) -> &'static str {
    let t = meta.file_type();
    if t.is_file() {
        "file"
    } else if t.is_dir() {
        "dir"
    } else if t.is_symlink() {
        "symlink"
    } else {
        "other"
    }
}

/// The target of the symlink `name` in `dir`, as text. Reading a link follows nothing, so
/// a target leading outside the root is read as it is. `None` when the target is not UTF-8,
/// or is absolute: an absolute target is a server path, which no reply reveals (and such a
/// link is never followed, nor transferred by `get -r`).
pub(crate) fn link_target(
    dir: &cap_std::fs::Dir,
    name: impl AsRef<std::path::Path>,
) -> Option<String> {
    dir.read_link_contents(name)
        .ok()
        .and_then(|t| t.into_os_string().into_string().ok())
        .filter(|t| !t.starts_with('/'))
}

/// The `ls` command.
#[derive(Debug)]
pub struct Ls {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for Ls {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let req: LsRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        let offset = usize::try_from(req.offset).unwrap_or(usize::MAX);
        let shown = path.clone();
        let entries = blocking(&self.root, move |root| {
            let dir = root
                .dir()
                .open_dir(path.to_path())
                .map_err(|e| FilesError::io(&path, e))?;
            let mut out = Vec::new();
            for entry in dir.entries().map_err(|e| FilesError::io(&path, e))? {
                let entry = entry.map_err(|e| FilesError::io(&path, e))?;
                let Ok(name) = entry.file_name().into_string() else {
                    continue; // not UTF-8: the protocol cannot name it
                };
                if path.is_root() && is_reserved(&name) {
                    continue;
                }
                // The entry itself, never what a symlink points to.
                let Ok(meta) = dir.symlink_metadata(&name) else {
                    continue;
                };
                let kind = kind_of(&meta);
                let target = if kind == "symlink" {
                    link_target(&dir, &name)
                } else {
                    None
                };
                let mtime = mtime_of(&meta);
                out.push(Entry {
                    size: if kind == "dir" { 0 } else { meta.len() },
                    mtime: mtime.secs,
                    mtime_nsec: mtime.nsec,
                    mode: Some(mode_of(&meta)),
                    target,
                    kind: kind.to_owned(),
                    name,
                });
            }
            out.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(out)
        })
        .await?;
        let mut page = Vec::new();
        let mut used = 0;
        let mut next = None;
        for (i, e) in entries.iter().enumerate().skip(offset) {
            // The entry as it goes out, and its comma.
            let cost = serde_json::to_string(e).map_or(usize::MAX / 2, |j| j.len() + 1);
            if used + cost > PAGE_BYTES && !page.is_empty() {
                next = Some(i);
                break;
            }
            used += cost;
            page.push(e.clone());
        }
        let reply = LsReply {
            path: shown.as_string(),
            total: entries.len() as u64,
            entries: page,
            next: next.map(|n| n as u64),
        };
        conn.send(&Header::reply(&reply)?).await?;
        Ok(())
    }
}
