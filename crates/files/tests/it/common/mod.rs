//! A file server on a free loopback port, a proxy that cuts a connection part way, and
//! snapshots of a tree (bytes only, or with metadata).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sockit_files::meta::{set_symlink_mtime, Mtime};
use sockit_files::{FilesClient, FilesConfig, FilesRoot};
use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
use sockit_testkit::net::{Running, LOOPBACK_ANY};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running in-process file server.
pub struct Server {
    pub addr: SocketAddr,
    pub root: Arc<FilesRoot>,
    _running: Running,
}

impl Server {
    pub async fn start(root: &Path, config: FilesConfig) -> Server {
        Self::serve(FilesRoot::open(root, config).unwrap())
    }

    /// A server whose served tree and staging area are separate directories.
    pub async fn start_split(files: &Path, staging: &Path, config: FilesConfig) -> Server {
        Self::serve(FilesRoot::open_split(files, staging, config).unwrap())
    }

    fn serve(files: Arc<FilesRoot>) -> Server {
        let mut table = CommandTable::new();
        sockit_files::cmd::register(&mut table, files.clone());
        let service = Arc::new(FramedService::new(table, FramedConfig::default()));
        let listener = bind_tcp(LOOPBACK_ANY, 1024).unwrap();
        let addr = listener.local_addr().unwrap();
        Server {
            addr,
            root: files,
            _running: Running::spawn(addr, |token| {
                serve_tcp(listener, service, Limits::default(), token)
            }),
        }
    }

    pub async fn client(&self) -> FilesClient {
        FilesClient::connect(&self.addr.to_string(), None, Duration::from_secs(10))
            .await
            .unwrap()
    }
}

/// Which direction a [`cut_proxy`] cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    /// Client → server (an upload).
    Upstream,
    /// Server → client (a download).
    Downstream,
}

/// A proxy for one connection that forwards everything, except that after `after` bytes
/// in the `cut` direction it closes both sides (a connection dropped mid-transfer).
pub async fn cut_proxy(upstream: SocketAddr, cut: Cut, after: usize) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let (up_limit, down_limit) = match cut {
            Cut::Upstream => (Some(after), None),
            Cut::Downstream => (None, Some(after)),
        };
        tokio::select! {
            _ = pump(&mut cr, &mut sw, up_limit) => {}
            _ = pump(&mut sr, &mut cw, down_limit) => {}
        }
        // Dropping all halves closes both connections.
    });
    addr
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    limit: Option<usize>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut moved = 0usize;
    loop {
        let want = match limit {
            Some(l) if moved >= l => return,
            Some(l) => (l - moved).min(buf.len()),
            None => buf.len(),
        };
        let n = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => {
                if limit.is_none() {
                    // Keep the other direction running until it finishes or is cut.
                    std::future::pending::<()>().await;
                }
                return;
            }
            Ok(n) => n,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        moved += n;
    }
}

/// Every file under `dir` (relative path → bytes), for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>, bool)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let mut entries: Vec<_> = std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let ft = e.file_type().unwrap();
            if ft.is_dir() {
                out.push((rel, Vec::new(), true));
                stack.push(p);
            } else if ft.is_symlink() {
                out.push((
                    rel,
                    std::fs::read_link(&p)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned()
                        .into_bytes(),
                    false,
                ));
            } else {
                out.push((rel, std::fs::read(&p).unwrap(), false));
            }
        }
    }
    out
}

/// Sets the modification time of `path` itself (a symlink's own time, not its target's).
pub fn set_mtime(path: &Path, secs: i64, nsec: u32) {
    let t = Mtime::new(secs, nsec).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_symlink() {
        set_symlink_mtime(libc::AT_FDCWD, path, t).unwrap();
    } else {
        let f = std::fs::File::open(path).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(t.to_system_time().unwrap()))
            .unwrap();
    }
}

/// Sets the permission bits of `path`.
pub fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// One entry of a tree as metadata: path, kind, mode (not for symlinks), mtime, and the
/// content (files) or target (symlinks).
pub type Meta = (String, &'static str, u32, i64, i64, Vec<u8>);

/// Every entry under `dir` with its metadata, sorted by path (top-level `.sockit*` names,
/// an older server's staging area, left out).
pub fn tree(dir: &Path) -> Vec<Meta> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".sockit") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let (kind, mode, content) = if m.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                ("symlink", 0, t.to_string_lossy().into_owned().into_bytes())
            } else if m.is_dir() {
                stack.push(p.clone());
                ("dir", m.mode() & 0o7777, Vec::new())
            } else {
                ("file", m.mode() & 0o7777, std::fs::read(&p).unwrap())
            };
            out.push((rel, kind, mode, m.mtime(), m.mtime_nsec(), content));
        }
    }
    out.sort();
    out
}

/// [`tree`] with the top directory itself first (as `""`: its mode and time).
pub fn tree_with_top(dir: &Path) -> Vec<Meta> {
    let m = std::fs::metadata(dir).unwrap();
    let top = (
        String::new(),
        "dir",
        m.mode() & 0o7777,
        m.mtime(),
        m.mtime_nsec(),
        Vec::new(),
    );
    std::iter::once(top).chain(tree(dir)).collect()
}
