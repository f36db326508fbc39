//! `--compress`: compressible data crosses the wire in far fewer bytes than its size,
//! random data is sent as it is (never expanded), every round trip is byte-identical
//! (single files, trees, `sync` both ways), a server that does not offer compression (an
//! older one, or one with it turned off) still serves a compressing client, and a
//! malformed or unwanted encoded body is refused. Bytes on the wire are counted by a
//! proxy between client and server.

use std::path::Path;
use std::time::Duration;

use sockit_files::client::{GetOptions, NoProgress, PutOptions};
use sockit_files::messages::{Block, Commit, PutRequest, ZSTD};
use sockit_files::sync::{Side, SyncOptions};
use sockit_files::{FilesClient, FilesConfig};
use sockit_testkit::data;
use sockit_wire::{ErrorCode, Header};

use crate::common::{counting_proxy, snapshot, Server};

/// `len` bytes of a server log (what `--compress` is for): compresses to a few percent.
fn text(len: usize, seed: u64) -> Vec<u8> {
    let levels = ["INFO", "INFO", "INFO", "DEBUG", "WARN"];
    let mut rng = data::Rng::new(seed);
    let mut out = Vec::with_capacity(len + 128);
    let mut n = 0u64;
    while out.len() < len {
        n += 1;
        let line = format!(
            "2026-12-02T21:{:02}:{:02}Z {} sockit::files: put done peer=127.0.0.1:{} path=d{}/f{n}.bin bytes={}\n",
            (n / 60) % 60,
            n % 60,
            levels[rng.below(levels.len() as u64) as usize],
            40000 + rng.below(8),
            rng.below(4),
            4096 * (1 + rng.below(4)),
        );
        out.extend_from_slice(line.as_bytes());
    }
    out.truncate(len);
    out
}

async fn client_via(addr: std::net::SocketAddr, compress: bool) -> FilesClient {
    let mut c = FilesClient::connect(&addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    c.set_compress(compress);
    c
}

const OVERWRITE: PutOptions = PutOptions {
    resume: false,
    overwrite: true,
};

/// Puts `bytes` as `name` and gets it back, with compression; returns the proxy's counts
/// of the put (client → server) and of the get (server → client).
async fn round_trip(
    server: &Server,
    root: &Path,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> (u64, u64) {
    let (addr, counted) = counting_proxy(server.addr).await;
    let src = dir.join(format!("{name}.src"));
    std::fs::write(&src, bytes).unwrap();
    let mut c = client_via(addr, true).await;
    let (up0, _) = counted.get();
    let r = c.put(&src, name, OVERWRITE, &mut NoProgress).await.unwrap();
    assert_eq!(r.sent, bytes.len() as u64);
    let (up1, down1) = counted.get();
    let dst = dir.join(format!("{name}.dst"));
    let g = c
        .get(name, &dst, GetOptions { resume: false }, &mut NoProgress)
        .await
        .unwrap();
    let (_, down2) = counted.get();
    data::assert_same(name, &std::fs::read(&dst).unwrap(), bytes);
    data::assert_same(name, &std::fs::read(root.join(name)).unwrap(), bytes);
    assert_eq!(g.received, bytes.len() as u64);
    // The reports' body bytes agree with what the proxy saw (frames on top).
    assert!(r.wire <= up1 - up0 && g.wire <= down2 - down1);
    (up1 - up0, down2 - down1)
}

#[tokio::test]
async fn compressible_data_goes_in_far_fewer_bytes_and_comes_back_identical() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let bytes = text(8 << 20, 1);
    let (up, down) = round_trip(&server, &root, tmp.path(), "text.log", &bytes).await;
    assert!(up < bytes.len() as u64 / 10, "put: {up} bytes on the wire");
    assert!(
        down < bytes.len() as u64 / 10,
        "get: {down} bytes on the wire"
    );
}

#[tokio::test]
async fn random_data_is_sent_as_it_is_not_expanded() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let bytes = data::bytes(5 << 20, 2);
    let (up, down) = round_trip(&server, &root, tmp.path(), "random.bin", &bytes).await;
    let size = bytes.len() as u64;
    // Stored blocks: the bytes themselves plus a small frame header per MiB (and the
    // requests and replies, a few hundred bytes).
    assert!((size..size + 4096).contains(&up), "put: {up} for {size}");
    assert!(
        (size..size + 4096).contains(&down),
        "get: {down} for {size}"
    );
}

/// A file of random and compressible parts: the compressible MiBs shrink, the random ones
/// go as they are, and the file comes back whole.
#[tokio::test]
async fn mixed_data_is_compressed_where_it_pays() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut bytes = data::bytes(2 << 20, 3);
    bytes.extend_from_slice(&text(4 << 20, 4));
    bytes.extend_from_slice(&data::bytes((1 << 20) + 17, 5));
    let (up, down) = round_trip(&server, &root, tmp.path(), "mixed.bin", &bytes).await;
    let random = (3 << 20) + 17;
    for n in [up, down] {
        assert!(
            n >= random && n < random + (1 << 20),
            "{n} bytes on the wire"
        );
    }
}

#[tokio::test]
async fn a_tree_with_compress_round_trips_in_fewer_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let src = tmp.path().join("src");
    let mut size = 0u64;
    for d in 0..4 {
        let dir = src.join(format!("d{d}"));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..50 {
            let b = text(4096 + f * 10, (d * 100 + f) as u64);
            size += b.len() as u64;
            std::fs::write(dir.join(format!("f{f}.txt")), b).unwrap();
        }
    }
    let big = text(3 << 20, 9);
    size += big.len() as u64;
    std::fs::write(src.join("big.log"), &big).unwrap();
    std::fs::create_dir(src.join("empty")).unwrap();
    let (addr, counted) = counting_proxy(server.addr).await;
    let mut c = client_via(addr, true).await;
    let up = c
        .put_tree(&src, "t", OVERWRITE, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((up.files, up.bytes), (201, size));
    assert!(up.wire < size / 5, "{} of {size}", up.wire);
    let (sent, _) = counted.get();
    assert!(
        sent < size / 4,
        "put -r: {sent} bytes on the wire for {size}"
    );
    let dst = tmp.path().join("dst");
    let down = c
        .get_tree("t", &dst, GetOptions { resume: false }, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((down.files, down.bytes), (201, size));
    let (_, received) = counted.get();
    assert!(
        received < size / 4,
        "get -r: {received} bytes on the wire for {size}"
    );
    assert_eq!(snapshot(&dst), snapshot(&src));
    assert_eq!(snapshot(&root.join("t")), snapshot(&src));
}

#[tokio::test]
async fn sync_with_compress_sends_less_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let a = tmp.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let bytes = text(4 << 20, 11);
    std::fs::write(a.join("log.txt"), &bytes).unwrap();
    let opts = SyncOptions::default();
    let mut c = client_via(server.addr, true).await;
    let up = c
        .sync(
            &Side::Local(a.clone()),
            &Side::Remote("copy".into()),
            &opts,
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(up.bytes_represented, bytes.len() as u64);
    assert!(up.bytes_on_wire < bytes.len() as u64 / 10, "{up:?}");
    let b = tmp.path().join("b");
    let down = c
        .sync(
            &Side::Remote("copy".into()),
            &Side::Local(b.clone()),
            &opts,
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert!(down.bytes_on_wire < bytes.len() as u64 / 10, "{down:?}");
    assert_eq!(snapshot(&b), snapshot(&a));
}

/// A compressing client against a server that offers no compression (one from before it,
/// and one started with it turned off): everything works, raw, byte for byte.
#[tokio::test]
async fn a_server_without_compression_still_serves_a_compress_client() {
    let tmp = tempfile::tempdir().unwrap();
    let (old_root, off_root) = (tmp.path().join("old"), tmp.path().join("off"));
    std::fs::create_dir(&old_root).unwrap();
    std::fs::create_dir(&off_root).unwrap();
    let old = Server::start_without_compression(&old_root).await;
    let off = Server::start(
        &off_root,
        FilesConfig {
            compress: false,
            ..FilesConfig::default()
        },
    )
    .await;
    let bytes = text(2 << 20, 12);
    for (label, server, root) in [
        ("older server", &old, &old_root),
        ("--no-compress", &off, &off_root),
    ] {
        let (up, down) = round_trip(server, root, tmp.path(), "t.txt", &bytes).await;
        let size = bytes.len() as u64;
        assert!(
            up >= size && down >= size,
            "{label}: {up} / {down} for {size}"
        );
        let src = tmp.path().join("tree");
        std::fs::create_dir_all(src.join("d")).unwrap();
        std::fs::write(src.join("d/x.txt"), text(5000, 13)).unwrap();
        let mut c = client_via(server.addr, true).await;
        c.put_tree(&src, "tree", OVERWRITE, &mut NoProgress)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let back = tmp.path().join(format!("back-{}", label.len()));
        c.get_tree("tree", &back, GetOptions { resume: false }, &mut NoProgress)
            .await
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert_eq!(snapshot(&back), snapshot(&src), "{label}");
    }
}

/// Sends a `put` with `encoding` and the given blocks by hand; returns the reply.
async fn hand_put(server: &Server, blocks: &[(Block, Vec<u8>)], raw_size: u64) -> Header {
    let mut c =
        sockit_wire::Client::connect(&server.addr.to_string(), None, Duration::from_secs(10))
            .await
            .unwrap();
    let req = PutRequest {
        path: "hand.bin".into(),
        encoding: Some(ZSTD.into()),
        raw_size: Some(raw_size),
        blake3: Some(
            blake3::hash(&vec![b'a'; raw_size as usize])
                .to_hex()
                .to_string(),
        ),
        ..PutRequest::default()
    };
    let conn = c.connection();
    conn.send(&Header::encode(&req).unwrap()).await.unwrap();
    for (b, body) in blocks {
        let h = Header::encode(b).unwrap();
        conn.send_with_body(&h, body.clone().into()).await.unwrap();
    }
    let reply = c.read_response().await;
    match reply {
        Ok(h) => h,
        Err(sockit_wire::ClientError::Remote { code, message }) => Header::error(code, message),
        Err(e) => panic!("{e}"),
    }
}

#[tokio::test]
async fn a_block_that_lies_about_its_size_is_refused_and_nothing_is_stored() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let z = zstd_frame(&vec![b'a'; 1000]);
    // Claims 2000 bytes, decompresses to 1000.
    let lie = Block {
        raw: 2000,
        zstd: true,
        size: z.len() as u64,
    };
    let reply = hand_put(&server, &[(lie, z.clone())], 2000).await;
    assert_eq!(
        reply.as_error().map(|e| e.0),
        Some(ErrorCode::BadRequest),
        "{reply:?}"
    );
    assert!(!root.join("hand.bin").exists());
    // The honest block is stored.
    let ok = Block {
        raw: 1000,
        zstd: true,
        size: z.len() as u64,
    };
    let reply = hand_put(&server, &[(ok, z)], 1000).await;
    assert!(reply.as_error().is_none(), "{reply:?}");
    assert_eq!(
        std::fs::read(root.join("hand.bin")).unwrap(),
        vec![b'a'; 1000]
    );
}

/// A server with compression off refuses an encoded upload with `unsupported` at once, and
/// answers the next request on the same connection (the blocks it did not want are read
/// and dropped).
#[tokio::test]
async fn an_unwanted_encoding_is_refused_and_the_connection_stays_in_step() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(
        &root,
        FilesConfig {
            compress: false,
            ..FilesConfig::default()
        },
    )
    .await;
    let mut c =
        sockit_wire::Client::connect(&server.addr.to_string(), None, Duration::from_secs(10))
            .await
            .unwrap();
    let raw = vec![b'b'; 3000];
    let req = PutRequest {
        path: "x.bin".into(),
        encoding: Some(ZSTD.into()),
        raw_size: Some(raw.len() as u64),
        trailer: true,
        ..PutRequest::default()
    };
    let z = zstd_frame(&raw);
    let conn = c.connection();
    conn.send(&Header::encode(&req).unwrap()).await.unwrap();
    let block = Block {
        raw: raw.len() as u64,
        zstd: true,
        size: z.len() as u64,
    };
    conn.send_with_body(&Header::encode(&block).unwrap(), z.into())
        .await
        .unwrap();
    let commit = Commit {
        blake3: blake3::hash(&raw).to_hex().to_string(),
    };
    conn.send(&Header::encode(&commit).unwrap()).await.unwrap();
    match c.read_response().await {
        Err(sockit_wire::ClientError::Remote { code, .. }) => {
            assert_eq!(code, ErrorCode::Unsupported)
        }
        other => panic!("{other:?}"),
    }
    c.ping().await.unwrap();
    assert!(!root.join("x.bin").exists());
}

fn zstd_frame(raw: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(raw, 3).unwrap()
}
