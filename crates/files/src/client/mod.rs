//! The client side of the file service: what `sockit ls/stat/get/put/rm/mkdir` call.
//!
//! Transfers stream between disk and socket on a blocking thread, hash as they go, and are
//! verified end to end: a download lands in a hidden `.NAME.sockit-part` file next to its
//! destination and is renamed into place only when its BLAKE3 matches the server's; an
//! upload sends its hash in a `commit` frame after the body, and the server promotes it
//! only if its own hash agrees.
//!
//! Permission bits and modification times travel with every file (`put` sends them,
//! `get` applies the server's before its rename); trees also keep directories' (set after
//! their contents), empty directories and symlinks (as symlinks, only when they stay
//! inside the tree).

mod batch;
pub(crate) mod features;
mod get;
pub(crate) mod put;
pub(crate) mod tree;

use std::path::PathBuf;
use std::time::Duration;

use sockit_wire::header::Message;
use sockit_wire::{Client, ClientError, ErrorCode, Key};

pub use crate::messages::{Entry, StatInfo};
use crate::messages::{
    LsReply, LsRequest, MkdirRequest, PathReply, RmRequest, SetattrRequest, StatReply, StatRequest,
    SymlinkRequest,
};
use crate::meta::Mtime;
pub use get::{GetOptions, GetReport};
pub use put::{PutOptions, PutReport};
pub use tree::TreeReport;

/// A file-service client failure.
#[derive(Debug, thiserror::Error)]
pub enum FilesClientError {
    /// The connection or the server failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Local {
        /// The local path.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// What arrived does not hash to what the server announced.
    #[error("{0}")]
    Verify(String),
    /// The transfer stopped part way; what arrived is kept for `--resume`.
    #[error("{0}")]
    Interrupted(String),
    /// The server answered something this client does not understand.
    #[error("unexpected reply from server: {0}")]
    Protocol(String),
    /// An earlier transfer on this connection was abandoned mid-body.
    #[error("the connection is out of step after an abandoned transfer; reconnect")]
    Broken,
}

impl FilesClientError {
    /// Wraps a local I/O error with its path.
    pub fn local(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Local {
            path: path.into(),
            source,
        }
    }

    /// The server's error code, when the server refused.
    pub fn remote_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Client(ClientError::Remote { code, .. }) => Some(*code),
            _ => None,
        }
    }
}

/// Progress of one transfer (the CLI draws a bar; tests and scripts use [`NoProgress`]).
pub trait Progress: Send {
    /// A transfer of `name` starts: `total` bytes, of which `done` are already there.
    fn start(&mut self, name: &str, total: u64, done: u64);
    /// `n` more bytes moved.
    fn advance(&mut self, n: u64);
    /// The transfer ended (successfully or not).
    fn finish(&mut self);
    /// A note for the user (e.g. "remote file changed; restarting").
    fn warn(&mut self, message: &str);
}

/// Reports nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn warn(&mut self, _: &str) {}
}

/// A connected file-service client.
#[derive(Debug)]
pub struct FilesClient {
    client: Client,
    /// Set when a transfer stopped mid-body: the server still expects bytes.
    pub(crate) broken: bool,
    /// What the server offers, once asked.
    pub(crate) features: Option<crate::messages::FeaturesReply>,
    /// `--compress`: compress where the server takes it and where it pays.
    pub(crate) compress: bool,
}

impl FilesClient {
    /// Wraps a connected client.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            broken: false,
            features: None,
            compress: false,
        }
    }

    /// Connects and authenticates.
    ///
    /// # Errors
    /// Connection, handshake or timeout errors.
    pub async fn connect(
        addr: &str,
        key: Option<&Key>,
        timeout: Duration,
    ) -> Result<Self, FilesClientError> {
        Ok(Self::new(Client::connect(addr, key, timeout).await?))
    }

    /// The underlying framed client.
    pub fn inner(&mut self) -> &mut Client {
        &mut self.client
    }

    /// Sends a typed request and reads its typed reply.
    pub(crate) async fn call<Q: Message, R: Message>(
        &mut self,
        req: &Q,
    ) -> Result<R, FilesClientError> {
        if self.broken {
            return Err(FilesClientError::Broken);
        }
        Ok(self.client.call(req).await?)
    }

    /// Lists a directory (every page).
    ///
    /// # Errors
    /// The server refused (`not_found`, `denied`, ...) or the connection failed.
    pub async fn ls(&mut self, path: &str) -> Result<Vec<Entry>, FilesClientError> {
        let mut out = Vec::new();
        let mut offset = 0u64;
        // Each page holds at least one entry, so this ends; the cap guards a broken server.
        for _ in 0..1_000_000 {
            let req = LsRequest {
                path: path.to_owned(),
                offset,
            };
            let reply: LsReply = self.call(&req).await?;
            out.extend(reply.entries);
            match reply.next {
                Some(n) if n > offset => offset = n,
                _ => return Ok(out),
            }
        }
        Err(FilesClientError::Protocol("ls never ended".into()))
    }

    /// Stats a path; with `hash`, the server computes the BLAKE3 if it does not know it.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn stat(&mut self, path: &str, hash: bool) -> Result<StatInfo, FilesClientError> {
        let req = StatRequest {
            path: path.to_owned(),
            hash,
        };
        let reply: StatReply = self.call(&req).await?;
        Ok(reply.stat)
    }

    /// Creates a directory (`parents`: like `mkdir -p`).
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn mkdir(&mut self, path: &str, parents: bool) -> Result<(), FilesClientError> {
        let req = MkdirRequest {
            path: path.to_owned(),
            parents,
        };
        self.call::<_, PathReply>(&req).await.map(|_| ())
    }

    /// Creates the symlink `remote` pointing to `target` (text, relative to the link's
    /// directory), with its own modification time `mtime`. The server refuses (`denied`) a
    /// target that would lead outside its root.
    ///
    /// # Errors
    /// The server refused (`denied`, `exists`, `unknown_command` from servers that predate
    /// symlinks) or the connection failed.
    pub async fn symlink(
        &mut self,
        remote: &str,
        target: &str,
        overwrite: bool,
        mtime: Option<Mtime>,
    ) -> Result<(), FilesClientError> {
        let req = SymlinkRequest {
            path: remote.to_owned(),
            target: target.to_owned(),
            overwrite,
            mtime: mtime.map(|t| t.secs),
            mtime_nsec: mtime.map(|t| t.nsec),
        };
        self.call::<_, PathReply>(&req).await.map(|_| ())
    }

    /// Sets the permission bits and/or modification time of an existing remote path.
    ///
    /// # Errors
    /// The server refused (`unknown_command` from servers that predate it) or the
    /// connection failed.
    pub async fn setattr(
        &mut self,
        remote: &str,
        mode: Option<u32>,
        mtime: Option<Mtime>,
    ) -> Result<(), FilesClientError> {
        let req = SetattrRequest {
            path: remote.to_owned(),
            mode,
            mtime: mtime.map(|t| t.secs),
            mtime_nsec: mtime.map(|t| t.nsec),
        };
        self.call::<_, PathReply>(&req).await.map(|_| ())
    }

    /// Removes a file or (with `recursive`) a directory tree.
    ///
    /// # Errors
    /// The server refused or the connection failed.
    pub async fn rm(&mut self, path: &str, recursive: bool) -> Result<(), FilesClientError> {
        let req = RmRequest {
            path: path.to_owned(),
            recursive,
        };
        self.call::<_, PathReply>(&req).await.map(|_| ())
    }
}

/// The last component of a remote path (`""` for the root).
pub fn remote_basename(remote: &str) -> &str {
    remote
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or("")
}

/// Joins remote path components with `/`.
pub fn remote_join(dir: &str, name: &str) -> String {
    let dir = dir.trim_end_matches('/');
    if dir.is_empty() || dir == "." {
        name.to_owned()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basenames() {
        assert_eq!(remote_basename("a/b.txt"), "b.txt");
        assert_eq!(remote_basename("a/dir/"), "dir");
        assert_eq!(remote_basename("x"), "x");
        assert_eq!(remote_join("", "x"), "x");
        assert_eq!(remote_join("d/", "x"), "d/x");
    }
}
