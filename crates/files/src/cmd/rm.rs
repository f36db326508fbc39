//! `rm {path, recursive?}` → ok. A directory needs `recursive` unless it is empty; the root
//! itself cannot be removed. A staged upload of the path is discarded too.

use std::sync::Arc;

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::{ErrorCode, Header};

use crate::cmd::rel_path;
use crate::error::FilesError;
use crate::messages::{PathReply, RmRequest};
use crate::root::{blocking, FilesRoot};

/// The `rm` command.
#[derive(Debug)]
pub struct Rm {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for Rm {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let RmRequest { path, recursive } = req.decode()?;
        let path = rel_path(&path)?;
        if path.is_root() {
            return Err(CommandError::reply(
                ErrorCode::Denied,
                "the data root itself cannot be removed",
            ));
        }
        let shown = path.as_string();
        blocking(&self.root, move |root| {
            if root.is_uploading(&path) {
                return Err(FilesError::Busy(path));
            }
            let meta = match root.dir().symlink_metadata(path.to_path()) {
                Ok(m) => m,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if root.staged_len(&path).is_some() {
                        root.discard_staging(&path);
                        return Ok(());
                    }
                    return Err(FilesError::io(&path, e));
                }
                Err(e) => return Err(FilesError::io(&path, e)),
            };
            let r = if meta.is_dir() {
                if recursive {
                    root.dir().remove_dir_all(path.to_path())
                } else {
                    root.dir().remove_dir(path.to_path())
                }
            } else {
                root.dir().remove_file(path.to_path())
            };
            r.map_err(|e| FilesError::io(&path, e))?;
            root.discard_staging(&path);
            root.hashes().forget(&path);
            Ok(())
        })
        .await?;
        conn.send(&Header::reply(&PathReply { path: shown })?)
            .await?;
        Ok(())
    }
}
