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
        Self::start_with(files, |_, _| {})
    }

    /// A server with every file command, then `change` applied to its table (to put a
    /// misbehaving command in place of one).
    pub fn start_with(
        files: Arc<FilesRoot>,
        change: impl FnOnce(&mut CommandTable, &Arc<FilesRoot>),
    ) -> Server {
        let mut table = CommandTable::new();
        sockit_files::cmd::register(&mut table, files.clone());
        change(&mut table, &files);
        Self::serve_table(files, table)
    }

    /// A server as it was before `features` and compression: the same file commands
    /// without `features` and `block` (so its hello offers no compression), with
    /// compression off (so `get` ignores a client's `compress`).
    pub async fn start_without_compression(root: &Path) -> Server {
        use sockit_files::cmd::*;
        let config = FilesConfig {
            compress: false,
            ..FilesConfig::default()
        };
        let root = FilesRoot::open(root, config).unwrap();
        let mut table = CommandTable::new();
        let r = || root.clone();
        table.register("ls", Arc::new(ls::Ls { root: r() }));
        table.register("stat", Arc::new(stat::Stat { root: r() }));
        table.register("get", Arc::new(get::Get { root: r() }));
        table.register("put", Arc::new(put::Put { root: r() }));
        table.register("rm", Arc::new(rm::Rm { root: r() }));
        table.register("mkdir", Arc::new(mkdir::Mkdir { root: r() }));
        table.register("symlink", Arc::new(link::Symlink { root: r() }));
        table.register("setattr", Arc::new(link::Setattr { root: r() }));
        table.register("putmany", Arc::new(many::PutMany { root: r() }));
        table.register("getmany", Arc::new(many::GetMany { root: r() }));
        sync::register(&mut table, r());
        Self::serve_table(root, table)
    }

    fn serve_table(files: Arc<FilesRoot>, table: CommandTable) -> Server {
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

/// Bytes a [`counting_proxy`] moved each way, over all its connections.
#[derive(Debug, Default)]
pub struct Counted {
    /// Client → server.
    pub up: std::sync::atomic::AtomicU64,
    /// Server → client.
    pub down: std::sync::atomic::AtomicU64,
}

impl Counted {
    /// (client → server, server → client) so far.
    pub fn get(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (self.up.load(Relaxed), self.down.load(Relaxed))
    }
}

/// A proxy that forwards every connection to `upstream` and counts the bytes each way:
/// what a transfer really cost on the wire (frames and all).
pub async fn counting_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Counted>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let counted = Arc::new(Counted::default());
    let c = counted.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let c = c.clone();
            tokio::spawn(async move {
                let server = TcpStream::connect(upstream).await.unwrap();
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = count_pump(&mut cr, &mut sw, &c.up);
                let down = count_pump(&mut sr, &mut cw, &c.down);
                tokio::join!(up, down);
            });
        }
    });
    (addr, counted)
}

async fn count_pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    count: &std::sync::atomic::AtomicU64,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Counted before it is forwarded: once the receiver has it, the count includes it.
        count.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
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
