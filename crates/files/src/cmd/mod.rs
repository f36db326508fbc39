//! The file commands of the framed service, one module each, and [`register`] to add them
//! to a [`CommandTable`].

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
use crate::path::RelPath;
use crate::root::FilesRoot;

/// Adds `ls`, `stat`, `get`, `put`, `rm`, `mkdir`, `symlink`, `setattr`, the tree
/// batches `putmany`, `getmany` and the delta sync commands `sync_sig`, `sync_pull`,
/// `sync_patch` over `root` to `table`.
pub fn register(table: &mut CommandTable, root: Arc<FilesRoot>) {
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
