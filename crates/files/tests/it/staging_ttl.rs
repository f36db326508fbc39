//! docs/files.md: "Staged uploads untouched for `--staging-ttl` (default 7 days) are
//! deleted at start." Two interrupted uploads are left staged; one is aged past the TTL
//! before the server starts again. The stale one is gone (not even `stat` knows it),
//! the other still resumes.

use crate::common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use common::Server;
use sockit_files::client::{Progress, PutOptions, StatInfo};
use sockit_files::{FilesClient, FilesConfig, FilesRoot, RelPath};
use sockit_testkit::data;
use sockit_wire::codec::encode_header;
use sockit_wire::{ErrorCode, Header};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How long a test waits for the server to reach a state before it fails.
const PATIENCE: Duration = Duration::from_secs(30);
const TTL: Duration = Duration::from_secs(3600);
const STAGED: usize = 64 * 1024;

struct Quiet;

impl Progress for Quiet {
    fn start(&mut self, _: &str, _: u64, _: u64) {}
    fn advance(&mut self, _: u64) {}
    fn finish(&mut self) {}
    fn warn(&mut self, _: &str) {}
}

fn config() -> FilesConfig {
    FilesConfig {
        staging_ttl: TTL,
        ..FilesConfig::default()
    }
}

/// Sends the first `STAGED` bytes of an upload of `bytes` to `name`, then drops the
/// connection; returns once the server shows the staged, no longer running upload.
async fn interrupted_upload(server: &Server, c: &mut FilesClient, name: &str, bytes: &[u8]) {
    let mut raw = TcpStream::connect(server.addr).await.unwrap();
    let h = Header::request("put")
        .with("path", name)
        .with("size", bytes.len())
        .with("trailer", true);
    raw.write_all(&encode_header(&h).unwrap()).await.unwrap();
    raw.write_all(&bytes[..STAGED]).await.unwrap();
    raw.flush().await.unwrap();
    wait_for_stat(c, name, |st| st.partial == Some(STAGED as u64)).await;
    drop(raw);
    wait_for_stat(c, name, |st| {
        !st.uploading && st.partial == Some(STAGED as u64)
    })
    .await;
}

/// Asks the server for `stat` until `ok` holds (no sleeping: each try is a round trip).
async fn wait_for_stat(c: &mut FilesClient, name: &str, ok: impl Fn(&StatInfo) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(st) = c.stat(name, false).await {
            if ok(&st) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "{name} never reached the state");
        tokio::task::yield_now().await;
    }
}

fn staging_file(staging: &Path, name: &str) -> std::path::PathBuf {
    staging.join(FilesRoot::staging_name(&RelPath::parse(name).unwrap()))
}

/// Sets a staged file's modification time `age` into the past.
fn age(path: &Path, age: Duration) {
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(SystemTime::now() - age).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn staged_uploads_older_than_the_ttl_are_removed_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&files).unwrap();
    let stale = data::bytes(STAGED * 4, 1);
    let recent = data::bytes(STAGED * 4, 2);

    let server = Server::start_split(&files, &staging, config()).await;
    let mut c = server.client().await;
    interrupted_upload(&server, &mut c, "stale.bin", &stale).await;
    interrupted_upload(&server, &mut c, "recent.bin", &recent).await;
    drop(c);
    drop(server);

    // One is older than the TTL, the other younger (but not new).
    age(&staging_file(&staging, "stale.bin"), TTL * 2);
    age(&staging_file(&staging, "recent.bin"), TTL / 2);

    let server = Server::start_split(&files, &staging, config()).await;
    assert!(
        !staging_file(&staging, "stale.bin").exists(),
        "the stale staged upload is deleted at start"
    );
    let mut c = server.client().await;
    let err = c.stat("stale.bin", false).await.unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::NotFound), "{err}");
    let st = c.stat("recent.bin", false).await.unwrap();
    assert_eq!(st.kind, "partial");
    assert_eq!(st.partial, Some(STAGED as u64));

    // The one kept still resumes to the whole file.
    let local = tmp.path().join("recent.bin");
    std::fs::write(&local, &recent).unwrap();
    let options = PutOptions {
        resume: true,
        overwrite: false,
    };
    c.put(&local, "recent.bin", options, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(std::fs::read(files.join("recent.bin")).unwrap(), recent);
}

#[tokio::test]
async fn the_default_ttl_keeps_a_day_old_staged_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let files = tmp.path().join("files");
    let staging = tmp.path().join("staging");
    std::fs::create_dir(&files).unwrap();
    std::fs::create_dir(&staging).unwrap();
    let day_old = staging_file(&staging, "day.bin");
    let week_old = staging_file(&staging, "week.bin");
    std::fs::write(&day_old, data::bytes(100, 3)).unwrap();
    std::fs::write(&week_old, data::bytes(100, 4)).unwrap();
    age(&day_old, Duration::from_secs(24 * 3600));
    age(&week_old, Duration::from_secs(8 * 24 * 3600));

    let _root = FilesRoot::open_split(&files, &staging, FilesConfig::default()).unwrap();
    assert!(day_old.exists(), "a day-old staged upload is kept");
    assert!(!week_old.exists(), "an 8-day-old staged upload is removed");
}
