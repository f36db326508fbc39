//! `mkdir {path, parents?}` → ok. With `parents`, missing parents are created and an
//! existing directory is fine (like `mkdir -p`); without, an existing path is `exists`.

use std::sync::Arc;

use async_trait::async_trait;
use sockit_wire::framed::{Command, CommandError, ServerConnection, Session};
use sockit_wire::Header;

use crate::cmd::rel_path;
use crate::error::FilesError;
use crate::messages::{MkdirRequest, PathReply};
use crate::root::{blocking, FilesRoot};

/// The `mkdir` command.
#[derive(Debug)]
pub struct Mkdir {
    /// The data root.
    pub root: Arc<FilesRoot>,
}

#[async_trait]
impl Command for Mkdir {
    async fn run(
        &self,
        req: Header,
        conn: &mut ServerConnection,
        _session: &Session,
    ) -> Result<(), CommandError> {
        let MkdirRequest { path, parents } = req.decode()?;
        let path = rel_path(&path)?;
        if path.is_root() {
            if parents {
                conn.send(&Header::reply(&PathReply::default())?).await?;
                return Ok(());
            }
            return Err(FilesError::Exists(path).into());
        }
        let shown = path.as_string();
        blocking(&self.root, move |root| {
            let r = if parents {
                root.dir().create_dir_all(path.to_path())
            } else {
                root.dir().create_dir(path.to_path())
            };
            match r {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    Err(FilesError::Exists(path))
                }
                Err(e) => Err(FilesError::io(&path, e)),
            }
        })
        .await?;
        conn.send(&Header::reply(&PathReply { path: shown })?)
            .await?;
        Ok(())
    }
}
