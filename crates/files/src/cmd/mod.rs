//! The file commands of the framed service, one module each, and [`register`] to add them
//! to a [`CommandTable`].

pub mod get;
pub mod ls;
pub mod mkdir;
pub mod put;
pub mod rm;
pub mod stat;

use std::sync::Arc;

use sockit_wire::framed::{CommandError, CommandTable, ServerConnection};
use sockit_wire::Header;

use crate::error::FilesError;
use crate::path::RelPath;
use crate::root::FilesRoot;

/// Adds `ls`, `stat`, `get`, `put`, `rm` and `mkdir` over `root` to `table`.
pub fn register(table: &mut CommandTable, root: Arc<FilesRoot>) {
    table.register("ls", Arc::new(ls::Ls { root: root.clone() }));
    table.register("stat", Arc::new(stat::Stat { root: root.clone() }));
    table.register("get", Arc::new(get::Get { root: root.clone() }));
    table.register("put", Arc::new(put::Put { root: root.clone() }));
    table.register("rm", Arc::new(rm::Rm { root: root.clone() }));
    table.register("mkdir", Arc::new(mkdir::Mkdir { root }));
}

/// The request's path: the first of `keys` present, parsed and confined.
///
/// # Errors
/// A missing or non-string path (`bad_request`), or a denied one.
pub fn path_arg(req: &Header, keys: &[&str], default_root: bool) -> Result<RelPath, FilesError> {
    for key in keys {
        match req.get(key) {
            None => continue,
            Some(v) => {
                let s = v.as_str().ok_or_else(|| {
                    FilesError::BadRequest(format!("`{key}` must be a string path"))
                })?;
                return Ok(RelPath::parse(s)?);
            }
        }
    }
    if default_root {
        return Ok(RelPath::root());
    }
    Err(FilesError::BadRequest(format!(
        "request needs `{}`",
        keys.join("` or `")
    )))
}

/// An optional non-negative integer field.
///
/// # Errors
/// The field is present but not a non-negative integer.
pub fn u64_arg(req: &Header, key: &str) -> Result<Option<u64>, FilesError> {
    match req.get(key) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(v) => v.as_u64().map(Some).ok_or_else(|| {
            FilesError::BadRequest(format!("`{key}` must be a non-negative integer"))
        }),
    }
}

/// An optional boolean field (absent is false).
///
/// # Errors
/// The field is present but not a boolean.
pub fn bool_arg(req: &Header, key: &str) -> Result<bool, FilesError> {
    match req.get(key) {
        None | Some(serde_json::Value::Null) => Ok(false),
        Some(v) => v
            .as_bool()
            .ok_or_else(|| FilesError::BadRequest(format!("`{key}` must be true or false"))),
    }
}

/// Sends an error at once, before the request's body is consumed (the rest of the body
/// is skipped when the next request is read). A client streaming a large body can see
/// the refusal early and stop; one that never reads replies loses nothing.
///
/// # Errors
/// The connection failed.
pub async fn reply_now(conn: &mut ServerConnection, err: FilesError) -> Result<(), CommandError> {
    tracing::debug!(error = %err, "file command refused");
    conn.send(&Header::error(err.code(), err.to_string()))
        .await?;
    Ok(())
}
