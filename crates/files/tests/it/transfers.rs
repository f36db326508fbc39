//! The file service over real sockets: round trips, trees, resume both ways, concurrency,
//! truncated bodies, limits.

use crate::common;

use std::time::Duration;

use common::{cut_proxy, Cut, Server};
use sockit_files::client::{GetOptions, NoProgress, Progress, PutOptions};
use sockit_files::{FilesClient, FilesConfig, RelPath};
use sockit_testkit::data;
use sockit_wire::codec::encode_header;
use sockit_wire::{ErrorCode, Header};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PUT_NEW: PutOptions = PutOptions {
    resume: false,
    overwrite: false,
};
const GET: GetOptions = GetOptions { resume: false };

async fn roundtrip(size: usize) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let src = tmp.path().join("src.bin");
    let bytes = data::bytes(size, size as u64);
    std::fs::write(&src, &bytes).unwrap();
    let want = blake3::hash(&bytes).to_hex().to_string();

    let mut c = server.client().await;
    let put = c
        .put(&src, "f.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(put.size, size as u64);
    assert_eq!(put.blake3, want);
    assert_eq!(
        blake3::hash(&std::fs::read(root.join("f.bin")).unwrap())
            .to_hex()
            .to_string(),
        want
    );

    let dst = tmp.path().join("dst.bin");
    let got = c.get("f.bin", &dst, GET, &mut NoProgress).await.unwrap();
    assert_eq!(got.blake3, want);
    assert_eq!(got.size, size as u64);
    let back = std::fs::read(&dst).unwrap();
    assert_eq!(back.len(), size);
    assert!(back == bytes, "downloaded bytes differ");
    // No partial or sidecar is left beside the download.
    let names: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        !names
            .iter()
            .any(|n| n.to_string_lossy().contains("sockit-part")),
        "{names:?}"
    );
    // Nothing but the file (and the hidden staging dir, empty again) in the root.
    let mut in_root: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    in_root.sort();
    assert_eq!(in_root, [".sockit-staging", "f.bin"]);
    assert_eq!(
        std::fs::read_dir(root.join(".sockit-staging"))
            .unwrap()
            .count(),
        0
    );
    let st = c.stat("f.bin", false).await.unwrap();
    assert_eq!(st.size, size as u64);
    assert_eq!(st.partial, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_small_sizes() {
    for size in [0usize, 1, 65535, 65536, (1 << 20) + 7] {
        roundtrip(size).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roundtrip_200_mib() {
    roundtrip(200 << 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_with_recursive_put_and_get() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let src = tmp.path().join("tree");
    for (i, rel) in [
        "a.txt",
        "sub/b.bin",
        "sub/deeper/c.bin",
        "sub/deeper/empty.txt",
        "z/d",
    ]
    .iter()
    .enumerate()
    {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(
            &p,
            data::bytes(
                if rel.contains("empty") {
                    0
                } else {
                    1000 * (i + 1)
                },
                i as u64,
            ),
        )
        .unwrap();
    }
    std::fs::create_dir_all(src.join("emptydir")).unwrap();
    let mut c = server.client().await;
    let up = c
        .put_tree(&src, "copy", PUT_NEW, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(up.files, 5);
    assert_eq!(common::snapshot(&src), common::snapshot(&root.join("copy")));
    let back = tmp.path().join("back");
    let down = c
        .get_tree("copy", &back, GET, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(down.files, 5);
    assert_eq!(common::snapshot(&src), common::snapshot(&back));
    // The staging area never shows up in listings.
    let names: Vec<_> = c
        .ls("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["copy".to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_cut_at_random_point_resumes_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let bytes = data::bytes(8 << 20, 7);
    let src = tmp.path().join("src.bin");
    std::fs::write(&src, &bytes).unwrap();
    let cut = 4096 + (data::random_u64() % (7 << 20)) as usize;
    let proxy = cut_proxy(server.addr, Cut::Upstream, cut).await;
    let mut c = FilesClient::connect(&proxy.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    let err = c
        .put(&src, "big.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap_err();
    drop(c);
    assert!(
        !root.join("big.bin").exists(),
        "cut upload became visible: {err}"
    );
    let mut c = server.client().await;
    // The server may still be writing what arrived: wait (bounded) until the staged size settles.
    let mut staged = 0;
    for _ in 0..500 {
        let st = c.stat("big.bin", false).await.unwrap();
        if !st.uploading {
            staged = st.partial.unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        staged > 0 && staged < bytes.len() as u64,
        "staged {staged} of cut {cut}"
    );
    let r = c
        .put(
            &src,
            "big.bin",
            PutOptions {
                resume: true,
                overwrite: false,
            },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(r.resumed_from, staged);
    assert_eq!(r.sent, bytes.len() as u64 - staged);
    assert!(std::fs::read(root.join("big.bin")).unwrap() == bytes);
    assert_eq!(c.stat("big.bin", false).await.unwrap().partial, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_cut_at_random_point_resumes_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let bytes = data::bytes(8 << 20, 9);
    std::fs::write(root.join("big.bin"), &bytes).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let cut = 4096 + (data::random_u64() % (7 << 20)) as usize;
    let proxy = cut_proxy(server.addr, Cut::Downstream, cut).await;
    let dst = tmp.path().join("big.bin");
    let mut c = FilesClient::connect(&proxy.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    let err = c
        .get("big.bin", &dst, GET, &mut NoProgress)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--resume"), "{err}");
    assert!(
        !dst.exists(),
        "a partial download must not appear under the final name"
    );
    let mut c = server.client().await;
    let r = c
        .get(
            "big.bin",
            &dst,
            GetOptions { resume: true },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert!(
        r.resumed_from > 0 && r.resumed_from < bytes.len() as u64,
        "{r:?}"
    );
    assert!(!r.restarted);
    assert!(std::fs::read(&dst).unwrap() == bytes);
}

/// Records warnings.
#[derive(Default)]
struct Warnings(Vec<String>);

impl Progress for Warnings {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn warn(&mut self, m: &str) {
        self.0.push(m.to_owned());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resumed_download_of_changed_remote_is_detected() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let old = data::bytes(4 << 20, 1);
    std::fs::write(root.join("f.bin"), &old).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let proxy = cut_proxy(server.addr, Cut::Downstream, 1 << 20).await;
    let dst = tmp.path().join("f.bin");
    let mut c = FilesClient::connect(&proxy.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    c.get("f.bin", &dst, GET, &mut NoProgress)
        .await
        .unwrap_err();
    // The remote file is replaced by one of the same size with different content.
    let new = data::bytes(4 << 20, 2);
    let newsrc = tmp.path().join("new.bin");
    std::fs::write(&newsrc, &new).unwrap();
    let mut c = server.client().await;
    c.put(
        &newsrc,
        "f.bin",
        PutOptions {
            resume: false,
            overwrite: true,
        },
        &mut NoProgress,
    )
    .await
    .unwrap();
    let mut warnings = Warnings::default();
    let r = c
        .get("f.bin", &dst, GetOptions { resume: true }, &mut warnings)
        .await
        .unwrap();
    assert!(r.restarted, "{r:?}");
    assert_eq!(r.resumed_from, 0);
    assert!(
        warnings.0.iter().any(|w| w.contains("changed")),
        "{:?}",
        warnings.0
    );
    assert!(
        std::fs::read(&dst).unwrap() == new,
        "old and new versions were merged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_concurrent_uploads_of_4_mib() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let srcdir = tmp.path().join("src");
    std::fs::create_dir(&srcdir).unwrap();
    let mut hashes = Vec::new();
    for i in 0..100u64 {
        let d = data::bytes(4 << 20, 1000 + i);
        hashes.push(blake3::hash(&d));
        std::fs::write(srcdir.join(format!("f{i}")), d).unwrap();
    }
    let mut tasks = Vec::new();
    for i in 0..100u64 {
        let addr = server.addr.to_string();
        let src = srcdir.join(format!("f{i}"));
        tasks.push(tokio::spawn(async move {
            let mut c = FilesClient::connect(&addr, None, Duration::from_secs(30))
                .await
                .unwrap();
            c.put(&src, &format!("f{i}"), PUT_NEW, &mut NoProgress)
                .await
                .unwrap()
        }));
    }
    for (i, t) in tasks.into_iter().enumerate() {
        let r = t.await.unwrap();
        assert_eq!(r.blake3, hashes[i].to_hex().to_string());
        assert_eq!(
            blake3::hash(&std::fs::read(root.join(format!("f{i}"))).unwrap()),
            hashes[i]
        );
    }
}

/// Sends a raw put with a declared size and only `send` bytes of body, then half-closes.
async fn short_put(addr: std::net::SocketAddr, name: &str, declared: u64, send: usize) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let h = Header::request("put")
        .with("filename", name)
        .with("filesize", declared);
    s.write_all(&encode_header(&h).unwrap()).await.unwrap();
    s.write_all(&data::bytes(send, 3)).await.unwrap();
    s.shutdown().await.unwrap();
    // Read until the server closes: it has then handled the truncated body.
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink))
        .await
        .expect("the server closes after a truncated body")
        .expect("a clean close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_shorter_than_declared_is_never_promoted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    short_put(server.addr, "short.bin", 100_000, 40_000).await;
    assert!(!root.join("short.bin").exists());
    let mut c = server.client().await;
    let st = c.stat("short.bin", false).await.unwrap();
    assert_eq!(st.kind, "partial");
    assert_eq!(st.partial, Some(40_000));
    let err = c
        .get("short.bin", &tmp.path().join("x"), GET, &mut NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::NotFound));
    assert!(c.ls("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_upload_of_same_path_is_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    // A first upload that stays open mid-body.
    let mut first = TcpStream::connect(server.addr).await.unwrap();
    let h = Header::request("put")
        .with("filename", "same.bin")
        .with("filesize", 1_000_000u64);
    first.write_all(&encode_header(&h).unwrap()).await.unwrap();
    first.write_all(&data::bytes(1000, 1)).await.unwrap();
    let mut c = server.client().await;
    let mut uploading = false;
    for _ in 0..500 {
        if c.stat("same.bin", false)
            .await
            .map(|s| s.uploading)
            .unwrap_or(false)
        {
            uploading = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(uploading);
    let src = tmp.path().join("s");
    std::fs::write(&src, b"second").unwrap();
    let err = c
        .put(&src, "same.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::Busy), "{err}");
    drop(first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_max_upload_is_too_large_before_any_byte() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let config = FilesConfig {
        max_upload: 1000,
        ..FilesConfig::default()
    };
    let server = Server::start(&root, config).await;
    let src = tmp.path().join("s");
    std::fs::write(&src, data::bytes(5000, 1)).unwrap();
    let mut c = server.client().await;
    let err = c
        .put(&src, "big", PUT_NEW, &mut NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::TooLarge), "{err}");
    assert!(err.to_string().contains("--max-upload"), "{err}");
    assert_eq!(
        server.root.staged_len(&RelPath::parse("big").unwrap()),
        None
    );
    assert_eq!(
        std::fs::read_dir(root.join(".sockit-staging"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exists_unless_overwrite_and_wrong_hash_is_discarded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("keep"), b"original").unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let src = tmp.path().join("s");
    std::fs::write(&src, data::bytes(300_000, 5)).unwrap();
    let mut c = server.client().await;
    let err = c
        .put(&src, "keep", PUT_NEW, &mut NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::Exists));
    assert_eq!(std::fs::read(root.join("keep")).unwrap(), b"original");
    // The connection is still usable after a refusal that came before the body ended.
    let mut c = server.client().await;
    c.put(
        &src,
        "keep",
        PutOptions {
            resume: false,
            overwrite: true,
        },
        &mut NoProgress,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read(root.join("keep")).unwrap(),
        std::fs::read(&src).unwrap()
    );

    // A header hash that does not match the body: refused, nothing promoted or staged.
    let mut raw = server.client().await;
    let body = data::bytes(1000, 8);
    let h = Header::request("put")
        .with("path", "bad")
        .with("size", 1000)
        .with("blake3", blake3::hash(b"something else").to_hex().as_str());
    let err = raw
        .inner()
        .request_with_body(&h, body.into())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("blake3 mismatch"), "{err}");
    assert!(!root.join("bad").exists());
    assert_eq!(
        server.root.staged_len(&RelPath::parse("bad").unwrap()),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mkdir_rm_and_stat() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut c = server.client().await;
    c.mkdir("a/b/c", true).await.unwrap();
    assert!(root.join("a/b/c").is_dir());
    assert_eq!(
        c.mkdir("a", false).await.unwrap_err().remote_code(),
        Some(ErrorCode::Exists)
    );
    std::fs::write(root.join("a/b/f"), b"x").unwrap();
    assert_eq!(
        c.stat("a/b/f", true).await.unwrap().blake3.unwrap(),
        blake3::hash(b"x").to_hex().to_string()
    );
    assert_eq!(c.stat("a", false).await.unwrap().kind, "dir");
    assert_eq!(
        c.rm("a", false).await.unwrap_err().remote_code(),
        Some(ErrorCode::Exists)
    );
    c.rm("a", true).await.unwrap();
    assert!(!root.join("a").exists());
    assert_eq!(
        c.stat("a", false).await.unwrap_err().remote_code(),
        Some(ErrorCode::NotFound)
    );
    assert_eq!(
        c.rm("", true).await.unwrap_err().remote_code(),
        Some(ErrorCode::Denied)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_directory_listing_is_paged() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    for i in 0..3000 {
        std::fs::write(root.join(format!("file-with-a-longish-name-{i:05}")), b"").unwrap();
    }
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut c = server.client().await;
    let entries = c.ls("").await.unwrap();
    assert_eq!(entries.len(), 3000);
    assert_eq!(entries[2999].name, "file-with-a-longish-name-02999");
}
