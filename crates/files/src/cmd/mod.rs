//! The file commands of the framed service, one module each, and [`register`] to add them
//! to a [`CommandTable`].

pub mod block;
pub mod features;
pub mod get;
pub mod link;
pub mod ls;
pub mod many;
pub mod mkdir;
pub mod put;
pub mod rm;
pub mod stat;
pub mod sync;

use std::sync::Arc;

use sockit_wire::framed::{CommandError, CommandTable, ServerConnection};
use sockit_wire::header::ErrorReply;

use crate::error::FilesError;
use crate::messages::ZSTD;
use crate::path::RelPath;
use crate::root::FilesRoot;

/// Adds `ls`, `stat`, `get`, `put`, `rm`, `mkdir`, `symlink`, `setattr`, the tree
/// batches `putmany`, `getmany`, the delta sync commands `sync_sig`, `sync_pull`,
/// `sync_patch`, and `features` and `block` (compressed bodies) over `root` to `table`.
pub fn register(table: &mut CommandTable, root: Arc<FilesRoot>) {
    table.register(
        "features",
        Arc::new(features::Features { root: root.clone() }),
    );
    table.register("block", Arc::new(block::StrayBlock));
    table.register("ls", Arc::new(ls::Ls { root: root.clone() }));
    table.register("stat", Arc::new(stat::Stat { root: root.clone() }));
    table.register("get", Arc::new(get::Get { root: root.clone() }));
    table.register("put", Arc::new(put::Put { root: root.clone() }));
    table.register("rm", Arc::new(rm::Rm { root: root.clone() }));
    table.register("mkdir", Arc::new(mkdir::Mkdir { root: root.clone() }));
    table.register("symlink", Arc::new(link::Symlink { root: root.clone() }));
    table.register("putmany", Arc::new(many::PutMany { root: root.clone() }));
    table.register("getmany", Arc::new(many::GetMany { root: root.clone() }));
    table.register("setattr", Arc::new(link::Setattr { root: root.clone() }));
    sync::register(table, root);
}

/// The request's path, parsed and confined.
///
/// # Errors
/// A denied path.
pub(crate) fn rel_path(path: &str) -> Result<RelPath, FilesError> {
    Ok(RelPath::parse(path)?)
}

/// How a request's body comes: `None` as the frame's own body, `Some(raw_size)` as
/// `block` frames of zstd (only when this server offers compression, and then the frame
/// itself announces no body).
///
/// # Errors
/// An `encoding` this server does not accept (`unsupported`), or one without `raw_size`
/// or beside a body of the frame's own (`bad_request`).
pub(crate) fn request_encoding(
    root: &FilesRoot,
    encoding: Option<&str>,
    raw_size: Option<u64>,
    body: u64,
) -> Result<Option<u64>, FilesError> {
    let Some(codec) = encoding else {
        return Ok(None);
    };
    if codec != ZSTD || !root.config().compress {
        return Err(FilesError::Unsupported(format!(
            "this server does not accept the body encoding {codec:?} (ask `features`)"
        )));
    }
    match raw_size {
        Some(raw) if body == 0 => Ok(Some(raw)),
        _ => Err(FilesError::BadRequest(
            "an encoded body needs `raw_size` and comes as block frames, not as a body".into(),
        )),
    }
}

/// Whether a reply's body goes as zstd blocks: the client accepts zstd and this server
/// offers compression.
pub(crate) fn reply_compressed(root: &FilesRoot, accepted: &[String]) -> bool {
    root.config().compress && accepted.iter().any(|c| c == ZSTD)
}

/// Sends an error at once, before the request's body is consumed (the rest of the body
/// is skipped when the next request is read). A client streaming a large body can see
/// the refusal early and stop; one that never reads replies loses nothing.
///
/// # Errors
/// The connection failed.
pub(crate) async fn reply_now(
    conn: &mut ServerConnection,
    err: FilesError,
) -> Result<(), CommandError> {
    tracing::debug!(error = %err, "file command refused");
    conn.send(&ErrorReply::new(err.code(), err.to_string()).to_header())
        .await?;
    Ok(())
}
