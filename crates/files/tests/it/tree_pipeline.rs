//! Tree transfers without a round trip per file: a tree of 10,000 small files (nested and
//! empty directories, modes, times to the nanosecond, symlinks, one large file on the
//! streaming path) both ways; an upload and a download cut part way, then `--resume`,
//! which sends only what was not committed (committed files keep their inode, and the
//! bytes on the wire show it).

use crate::common::{cut_proxy, Cut, Server};

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sockit_files::client::{GetOptions, NoProgress, PutOptions};
use sockit_files::meta::{set_symlink_mtime, Mtime};
use sockit_files::{FilesClient, FilesClientError, FilesConfig};
use sockit_testkit::data;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PAST: i64 = 1_200_000_000;

fn set_mtime(path: &Path, secs: i64, nsec: u32) {
    let t = Mtime::new(secs, nsec).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_symlink() {
        set_symlink_mtime(libc::AT_FDCWD, path, t).unwrap();
    } else {
        let f = std::fs::File::open(path).unwrap();
        f.set_times(std::fs::FileTimes::new().set_modified(t.to_system_time().unwrap()))
            .unwrap();
    }
}

/// Path → (kind, mode, mtime s, mtime ns, content or target), staging names left out.
type Tree = BTreeMap<String, (&'static str, u32, i64, i64, Vec<u8>)>;

fn tree(dir: &Path) -> Tree {
    let mut out = Tree::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            if rel.starts_with(".sockit") {
                continue;
            }
            let m = std::fs::symlink_metadata(&p).unwrap();
            let v = if m.is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                let t = t.to_string_lossy().into_owned().into_bytes();
                ("symlink", 0, m.mtime(), m.mtime_nsec(), t)
            } else if m.is_dir() {
                stack.push(p.clone());
                ("dir", m.mode() & 0o7777, m.mtime(), m.mtime_nsec(), vec![])
            } else {
                let c = std::fs::read(&p).unwrap();
                ("file", m.mode() & 0o7777, m.mtime(), m.mtime_nsec(), c)
            };
            out.insert(rel, v);
        }
    }
    out
}

/// `files` small files spread over nested directories (`d00/s0/...`), two empty
/// directories, a symlink per directory, one file over the batch threshold, varied modes
/// and past times (set deepest first).
fn make_tree(src: &Path, files: usize, size: impl Fn(usize) -> usize) {
    std::fs::create_dir_all(src.join("empty/empty-too")).unwrap();
    for i in 0..files {
        let dir = src.join(format!("d{:02}/s{}", i % 50, (i / 50) % 4));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(format!("f{i:05}"));
        std::fs::write(&p, data::bytes(size(i), i as u64)).unwrap();
        let mode = [0o644, 0o600, 0o755, 0o444][i % 4];
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    for d in 0..50.min(files) {
        std::os::unix::fs::symlink("s0", src.join(format!("d{d:02}/link"))).unwrap();
    }
    std::fs::set_permissions(src.join("empty"), std::fs::Permissions::from_mode(0o750)).unwrap();
    let mut all: Vec<String> = tree(src).into_keys().collect();
    all.sort_by_key(|p| std::cmp::Reverse(p.matches('/').count()));
    for (i, rel) in all.iter().enumerate() {
        set_mtime(&src.join(rel), PAST + i as i64, 1_000 + i as u32);
    }
}

fn inodes(dir: &Path, names: &[String]) -> Vec<u64> {
    names
        .iter()
        .map(|n| std::fs::metadata(dir.join(n)).unwrap().ino())
        .collect()
}

/// Files under `dir` whose content equals the source's (complete ones).
fn complete_files(dir: &Path, src: &Tree) -> Vec<String> {
    src.iter()
        .filter(|(rel, v)| {
            v.0 == "file" && std::fs::read(dir.join(rel)).ok().as_ref() == Some(&v.4)
        })
        .map(|(rel, _)| rel.clone())
        .collect()
}

/// A proxy for one connection that counts the bytes of each direction.
struct Counted {
    addr: std::net::SocketAddr,
    up: Arc<AtomicU64>,
    down: Arc<AtomicU64>,
}

async fn counting_proxy(upstream: std::net::SocketAddr) -> Counted {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (up, down) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (u, d) = (up.clone(), down.clone());
    tokio::spawn(async move {
        let (client, _) = listener.accept().await.unwrap();
        let server = TcpStream::connect(upstream).await.unwrap();
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        let a = pump(&mut cr, &mut sw, u);
        let b = pump(&mut sr, &mut cw, d);
        tokio::join!(a, b);
    });
    Counted { addr, up, down }
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    count: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let _ = to.shutdown().await;
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
                count.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }
}

async fn connect(addr: std::net::SocketAddr) -> FilesClient {
    FilesClient::connect(&addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_small_files_round_trip_with_metadata() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, root, dst) = (
        tmp.path().join("src"),
        tmp.path().join("root"),
        tmp.path().join("dst"),
    );
    std::fs::create_dir_all(&root).unwrap();
    make_tree(&src, 10_000, |i| i % 700);
    // One file over the batch threshold goes the streaming way.
    let big = src.join("d00/big.bin");
    std::fs::write(&big, data::bytes(1_500_000, 9)).unwrap();
    set_mtime(&big, PAST - 5, 5);
    set_mtime(&src.join("d00"), PAST - 4, 4);
    set_mtime(&src, PAST - 3, 3);
    let want = tree(&src);
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut c = server.client().await;
    let put = PutOptions::default();
    let r = c.put_tree(&src, "t", put, &mut NoProgress).await.unwrap();
    assert_eq!((r.files, r.symlinks, r.unchanged), (10_001, 50, 0));
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(
        tree(&root.join("t")),
        want,
        "the server's copy differs from the source"
    );
    let r = c
        .get_tree("t", &dst, GetOptions::default(), &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((r.files, r.symlinks), (10_001, 50));
    assert_eq!(
        tree(&dst),
        want,
        "the downloaded copy differs from the source"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_tree_put_resumes_without_resending_committed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, root) = (tmp.path().join("src"), tmp.path().join("root"));
    std::fs::create_dir_all(&root).unwrap();
    const N: usize = 400;
    make_tree(&src, N, |_| 4096);
    let want = tree(&src);
    let server = Server::start(&root, FilesConfig::default()).await;
    // Cut the upload after 40% of its bytes.
    let proxy = cut_proxy(server.addr, Cut::Upstream, N * 4096 * 2 / 5).await;
    let mut c = connect(proxy).await;
    let e = c
        .put_tree(&src, "t", PutOptions::default(), &mut NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(e, FilesClientError::Interrupted(_)), "{e}");
    assert!(e.to_string().contains("--resume"), "{e}");
    let done = complete_files(&root.join("t"), &want);
    assert!(
        !done.is_empty() && done.len() < N,
        "{} committed",
        done.len()
    );
    let before = inodes(&root.join("t"), &done);

    let proxy = counting_proxy(server.addr).await;
    let mut c = connect(proxy.addr).await;
    let opts = PutOptions {
        resume: true,
        overwrite: false,
    };
    let r = c.put_tree(&src, "t", opts, &mut NoProgress).await.unwrap();
    // The server finishes a batch whose body it received whole even after the connection
    // is gone, so a few more files than seen above may have been committed meanwhile.
    assert!(
        r.unchanged >= done.len() as u64 && r.unchanged < N as u64,
        "{r:?}"
    );
    assert_eq!(r.files + r.unchanged, N as u64);
    assert_eq!(tree(&root.join("t")), want);
    assert_eq!(
        inodes(&root.join("t"), &done),
        before,
        "committed files were written again"
    );
    let sent = proxy.up.load(Ordering::Relaxed);
    let left = r.files * 4096;
    assert!(
        sent < left + 300 * N as u64,
        "{sent} bytes sent for {left} bytes of files not yet committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_tree_get_resumes_without_fetching_committed_files() {
    let tmp = tempfile::tempdir().unwrap();
    let (root, dst) = (tmp.path().join("root"), tmp.path().join("dst"));
    const N: usize = 400;
    make_tree(&root.join("t"), N, |_| 4096);
    let want = tree(&root.join("t"));
    let server = Server::start(&root, FilesConfig::default()).await;
    let proxy = cut_proxy(server.addr, Cut::Downstream, N * 4096 * 2 / 5).await;
    let mut c = connect(proxy).await;
    let e = c
        .get_tree("t", &dst, GetOptions::default(), &mut NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(e, FilesClientError::Interrupted(_)), "{e}");
    let done = complete_files(&dst, &want);
    assert!(
        !done.is_empty() && done.len() < N,
        "{} committed",
        done.len()
    );
    let before = inodes(&dst, &done);

    let proxy = counting_proxy(server.addr).await;
    let mut c = connect(proxy.addr).await;
    let r = c
        .get_tree("t", &dst, GetOptions { resume: true }, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(r.unchanged, done.len() as u64);
    assert_eq!(r.files, (N - done.len()) as u64);
    assert_eq!(tree(&dst), want);
    assert_eq!(
        inodes(&dst, &done),
        before,
        "committed files were written again"
    );
    let received = proxy.down.load(Ordering::Relaxed);
    let left = ((N - done.len()) * 4096) as u64;
    assert!(
        received < left + 400 * N as u64,
        "{received} bytes received for {left} bytes of files not yet fetched"
    );
}
