//! `stat {path, hash?}` →
//! `{stat:{path,kind,size,mtime,mtime_nsec,mode,target?,blake3?,partial?,uploading?}}`.
//!
//! The path itself is described (`lstat`): a symlink is `kind: "symlink"` with its target
//! as text; directories above it are resolved inside the root as usual.
//! The fields sit in a nested `stat` object because a top-level `size` would announce a
//! body (see `docs/files.md`). `blake3` is included when the server already knows it, or
//! computed when `hash: true`. `partial` is the size of a staged (running or interrupted)
//! upload of the path; a path with only a staged upload has `kind: "partial"`.

use std::sync::Arc;

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::cmd::ls::{kind_of, link_target};
use crate::cmd::rel_path;
use crate::disk::hash_prefix;
use crate::error::FilesError;
pub use crate::messages::StatInfo;
use crate::messages::{StatReply, StatRequest};
use crate::root::{blocking, mode_of, mtime_of, FilesRoot};

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
        let req: StatRequest = req.decode()?;
        let path = rel_path(&req.path)?;
        let want_hash = req.hash;
        let info = blocking(&self.root, move |root| {
            let partial = root.staged_len(&path);
            let uploading = root.is_uploading(&path);
            let meta = match root.dir().symlink_metadata(path.to_path()) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && partial.is_some() => {
                    return Ok(StatInfo {
                        path: path.as_string(),
                        kind: "partial".into(),
                        size: partial.unwrap_or(0),
                        mtime: 0,
                        mtime_nsec: 0,
                        mode: None,
                        target: None,
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
                    let file = root
                        .dir()
                        .open(path.to_path())
                        .map_err(|e| FilesError::io(&path, e))?
                        .into_std();
                    let m = file.metadata().map_err(|e| FilesError::io(&path, e))?;
                    let h = hash_prefix(&file, m.len())
                        .map_err(|e| FilesError::io(&path, e))?
                        .finalize();
                    root.hashes().insert(key, h);
                    blake3 = Some(h.to_hex().to_string());
                }
            }
            let target = if kind == "symlink" {
                link_target(root.dir(), path.to_path())
            } else {
                None
            };
            let mtime = mtime_of(&meta);
            Ok(StatInfo {
                path: path.as_string(),
                kind: kind.into(),
                size: if kind == "dir" { 0 } else { meta.len() },
                mtime: mtime.secs,
                mtime_nsec: mtime.nsec,
                mode: Some(mode_of(&meta)),
                target,
                blake3,
                partial,
                uploading,
            })
        })
        .await?;
        conn.send(&Header::reply(&StatReply { stat: info })?)
            .await?;
        Ok(())
    }
}
