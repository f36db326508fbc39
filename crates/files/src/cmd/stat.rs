//! `stat {path, hash?}` → `{stat:{path,kind,size,mtime,blake3?,partial?,uploading?}}`.
//!
//! The fields sit in a nested `stat` object because a top-level `size` would announce a
//! body (see `docs/files.md`). `blake3` is included when the server already knows it, or
//! computed when `hash: true`. `partial` is the size of a staged (running or interrupted)
//! upload of the path; a path with only a staged upload has `kind: "partial"`.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::cmd::ls::kind_of;
use crate::cmd::{bool_arg, path_arg};
use crate::disk::hash_prefix;
use crate::error::FilesError;
use crate::root::{blocking, mtime_secs, FilesRoot};

/// What `stat` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatInfo {
    /// The path, canonical spelling.
    pub path: String,
    /// `file`, `dir`, `symlink`, `other`, or `partial` (only a staged upload exists).
    pub kind: String,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds since the epoch.
    pub mtime: i64,
    /// Whole-file BLAKE3, hex.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blake3: Option<String>,
    /// Bytes staged by an interrupted or running upload of this path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial: Option<u64>,
    /// Whether an upload of this path is running now.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub uploading: bool,
}

/// The `stat` command.
#[derive(Debug)]
pub struct Stat {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for Stat {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let path = path_arg(&req, &["path", "filename"], false)?;
        let want_hash = bool_arg(&req, "hash")?;
        let info = blocking(&self.root, move |root| {
            let partial = root.staged_len(&path);
            let uploading = root.is_uploading(&path);
            let meta = match root.dir().metadata(path.to_path()) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && partial.is_some() => {
                    return Ok(StatInfo {
                        path: path.as_string(),
                        kind: "partial".into(),
                        size: partial.unwrap_or(0),
                        mtime: 0,
                        blake3: None,
                        partial,
                        uploading,
                    })
                }
                Err(e) => return Err(FilesError::io(&path, e)),
            };
            let kind = kind_of(&meta);
            let mut blake3 = None;
            if kind == "file" {
                let key = FilesRoot::file_key(&path, &meta);
                blake3 = root.hashes().get(&key).map(|h| h.to_hex().to_string());
                if blake3.is_none() && want_hash {
                    let mut file = root
                        .dir()
                        .open(path.to_path())
                        .map_err(|e| FilesError::io(&path, e))?
                        .into_std();
                    let m = file.metadata().map_err(|e| FilesError::io(&path, e))?;
                    let h = hash_prefix(&mut file, m.len())
                        .map_err(|e| FilesError::io(&path, e))?
                        .finalize();
                    root.hashes().insert(key, h);
                    blake3 = Some(h.to_hex().to_string());
                }
            }
            Ok(StatInfo {
                path: path.as_string(),
                kind: kind.into(),
                size: if kind == "dir" { 0 } else { meta.len() },
                mtime: mtime_secs(&meta),
                blake3,
                partial,
                uploading,
            })
        })
        .await?;
        let stat = serde_json::to_value(&info).map_err(std::io::Error::other)?;
        conn.send(&Header::ok().with("stat", stat)).await?;
        Ok(())
    }
}
