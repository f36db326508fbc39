//! `ls {path?, offset?}` → `{entries:[{name,kind,size,mtime}], next?}`.
//!
//! Entries are sorted by name. A reply header must fit in 64 KiB, so a large directory is
//! paged: when `next` is present, ask again with `offset: next`.

use std::sync::Arc;

use async_trait::async_trait;
use cap_std::fs::Metadata;
use serde::{Deserialize, Serialize};
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::cmd::{path_arg, u64_arg};
use crate::error::FilesError;
use crate::path::is_reserved;
use crate::root::{blocking, mtime_secs, FilesRoot};

/// Budget for the entries of one reply (the header cap is 64 KiB).
const PAGE_BYTES: usize = 48 * 1024;

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The name (one path component).
    pub name: String,
    /// `file`, `dir`, `symlink` or `other`.
    pub kind: String,
    /// Size in bytes (0 for directories).
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
}

/// The kind of a file as the protocol spells it.
pub fn kind_of(meta: &Metadata) -> &'static str {
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
        let path = path_arg(&req, &["path"], true)?;
        let offset = u64_arg(&req, "offset")?.unwrap_or(0) as usize;
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
                let Ok(meta) = entry.metadata() else { continue };
                // A symlink that resolves inside the root shows as what it points to.
                let meta = if meta.file_type().is_symlink() {
                    dir.metadata(&name).unwrap_or(meta)
                } else {
                    meta
                };
                let kind = kind_of(&meta);
                out.push(Entry {
                    size: if kind == "dir" { 0 } else { meta.len() },
                    mtime: mtime_secs(&meta),
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
            let cost = e.name.len() + 64;
            if used + cost > PAGE_BYTES && !page.is_empty() {
                next = Some(i);
                break;
            }
            used += cost;
            page.push(e);
        }
        let mut reply = Header::ok()
            .with("path", shown.as_string())
            .with(
                "entries",
                serde_json::to_value(&page).map_err(std::io::Error::other)?,
            )
            .with("total", entries.len());
        if let Some(n) = next {
            reply.set("next", n);
        }
        conn.send(&reply).await?;
        Ok(())
    }
}
