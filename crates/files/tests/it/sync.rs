//! `sync` through a real server, both ways: after edits in the middle, at the start, at the
//! end, an appended tail, a truncation and a rename the destination equals the source byte
//! for byte and in metadata (modes, times to the nanosecond, symlinks, empty
//! directories), and a small edit of a large file costs a small fraction of it on the
//! wire; `--delete`, `--dry-run`, `--exclude` and `--checksum`; and a property test over
//! random trees and random edits.

use std::path::{Path, PathBuf};

use proptest::prelude::*;
use sockit_files::client::NoProgress;
use sockit_files::sync::{Side, SyncOptions, SyncReport};
use sockit_files::FilesConfig;
use sockit_testkit::data;

use crate::common::{set_mode, set_mtime, tree_with_top, Server};

/// 2001-09-09 01:46:40 UTC: clearly not "now".
const PAST: i64 = 1_000_000_000;

/// Size of the large file whose small edits must cost little.
const BIG: usize = 4 << 20;

/// A server with its served tree and staging area apart, and a local scratch directory.
struct Env {
    dir: tempfile::TempDir,
    server: Server,
}

impl Env {
    async fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        for d in ["files", "staging", "local"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
        }
        let server = Server::start_split(
            &dir.path().join("files"),
            &dir.path().join("staging"),
            FilesConfig::default(),
        )
        .await;
        Env { dir, server }
    }

    /// A path on the server's disk (what a remote path names).
    fn remote(&self, rel: &str) -> PathBuf {
        self.dir.path().join("files").join(rel)
    }

    /// A local path.
    fn local(&self, rel: &str) -> PathBuf {
        self.dir.path().join("local").join(rel)
    }

    async fn sync(&self, src: Side, dst: Side, opts: &SyncOptions) -> SyncReport {
        let mut c = self.server.client().await;
        c.sync(&src, &dst, opts, &mut NoProgress)
            .await
            .unwrap_or_else(|e| panic!("sync {src:?} → {dst:?}: {e}"))
    }

    /// Local `a` → remote `copy`, then remote `copy` → local `b`; both copies must equal
    /// `a`. Returns the two reports.
    async fn both_ways(&self, opts: &SyncOptions) -> (SyncReport, SyncReport) {
        let up = self
            .sync(
                Side::Local(self.local("a")),
                Side::Remote("copy".into()),
                opts,
            )
            .await;
        assert_eq!(
            tree_with_top(&self.remote("copy")),
            tree_with_top(&self.local("a")),
            "pushed copy"
        );
        let down = self
            .sync(
                Side::Remote("copy".into()),
                Side::Local(self.local("b")),
                opts,
            )
            .await;
        assert_eq!(
            tree_with_top(&self.local("b")),
            tree_with_top(&self.local("a")),
            "pulled copy"
        );
        (up, down)
    }
}

fn delete() -> SyncOptions {
    SyncOptions {
        delete: true,
        ..SyncOptions::default()
    }
}

/// Sets every entry's time under `top` (deepest first, so a directory keeps its own) and
/// the top's, each a different time in the past.
fn fix_times(top: &Path) {
    let mut all = crate::common::tree(top);
    all.sort_by_key(|e| std::cmp::Reverse(e.0.matches('/').count()));
    for (i, (rel, ..)) in all.iter().enumerate() {
        set_mtime(
            &top.join(rel),
            PAST + i as i64 * 3600,
            100_000_000 + i as u32,
        );
    }
    set_mtime(top, PAST - 7, 1);
}

/// A tree with everything a sync keeps: a large file, small files with several modes,
/// nested and empty directories, symlinks to a file, a directory and nothing.
fn make_tree(top: &Path) {
    std::fs::create_dir_all(top.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(top.join("empty")).unwrap();
    std::fs::write(top.join("big.bin"), data::bytes(BIG, 1)).unwrap();
    for (rel, mode, size) in [
        ("run.sh", 0o755, 100),
        ("secret", 0o600, 32),
        ("sub/data", 0o640, 70_000),
        ("sub/deeper/ro", 0o444, 5),
        ("zero", 0o644, 0),
    ] {
        let p = top.join(rel);
        std::fs::write(&p, data::bytes(size, size as u64 + 7)).unwrap();
        set_mode(&p, mode);
    }
    for (link, target) in [
        ("sub/to-run", "../run.sh"),
        ("to-sub", "sub"),
        ("dangling", "not-there"),
    ] {
        std::os::unix::fs::symlink(target, top.join(link)).unwrap();
    }
    set_mode(&top.join("empty"), 0o700);
    set_mode(&top.join("sub"), 0o750);
    fix_times(top);
}

/// Rewrites `big.bin` with `edit` applied and gives it (and its directory) new times.
fn edit_big(top: &Path, edit: impl FnOnce(&mut Vec<u8>)) {
    let p = top.join("big.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    edit(&mut bytes);
    std::fs::write(&p, bytes).unwrap();
    set_mtime(&p, PAST + 999_999, 5);
    set_mtime(top, PAST + 999_998, 6);
}

/// Syncs the tree, edits the large file, syncs again both ways: the copies equal the
/// source, only the large file changed, and its delta is a small fraction of it.
async fn small_edit_costs_little(edit: impl FnOnce(&mut Vec<u8>)) {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    let (first, _) = env.both_ways(&SyncOptions::default()).await;
    assert_eq!((first.files, first.new, first.changed), (6, 6, 0));
    assert_eq!((first.dirs, first.symlinks), (3, 3));
    edit_big(&env.local("a"), edit);
    let (up, down) = env.both_ways(&SyncOptions::default()).await;
    for r in [&up, &down] {
        assert_eq!((r.files, r.new, r.changed, r.same), (6, 0, 1, 5), "{r:?}");
        assert_eq!(r.changes, ["update big.bin"]);
        let size = std::fs::metadata(env.local("a/big.bin")).unwrap().len();
        assert_eq!(r.bytes_represented, size);
        assert_eq!(r.bytes_on_wire, r.delta_bytes + r.signature_bytes);
        assert!(
            r.bytes_on_wire * 20 < size,
            "{} bytes on the wire for a small edit of {size} bytes",
            r.bytes_on_wire
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_byte_changed_in_the_middle() {
    small_edit_costs_little(|b| b[BIG / 2] ^= 0xff).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_inserted_at_the_start() {
    small_edit_costs_little(|b| {
        b.splice(0..0, b"a new first line\n".iter().copied());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_changed_at_the_end() {
    small_edit_costs_little(|b| {
        let n = b.len();
        b[n - 3..].copy_from_slice(b"END");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_appended() {
    small_edit_costs_little(|b| b.extend_from_slice(&data::bytes(10_000, 99))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncation() {
    small_edit_costs_little(|b| b.truncate(BIG / 3)).await;
}

/// A large base cut into larger chunks than a small source would be: the source is cut
/// again with the base's parameters, so the part they share is still copied, both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_cut_to_a_fraction_of_its_size_is_still_a_small_delta() {
    let env = Env::new().await;
    let a = env.local("a");
    std::fs::create_dir_all(&a).unwrap();
    let big = data::bytes(40 << 20, 11);
    std::fs::write(a.join("f.bin"), &big).unwrap();
    set_mtime(&a.join("f.bin"), PAST, 0);
    env.both_ways(&SyncOptions::default()).await;
    std::fs::write(a.join("f.bin"), &big[..6 << 20]).unwrap();
    set_mtime(&a.join("f.bin"), PAST + 1, 0);
    let (up, down) = env.both_ways(&SyncOptions::default()).await;
    for r in [&up, &down] {
        assert_eq!((r.changed, r.bytes_represented), (1, 6 << 20), "{r:?}");
        assert!(
            r.delta_bytes < (6 << 20) / 50,
            "{} delta bytes for a truncation of a 40 MiB file to 6 MiB",
            r.delta_bytes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_copies_from_the_old_name() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    env.both_ways(&delete()).await;
    let a = env.local("a");
    std::fs::rename(a.join("big.bin"), a.join("sub/moved.bin")).unwrap();
    set_mtime(&a.join("sub"), PAST + 5, 0);
    set_mtime(&a, PAST + 6, 0);
    let (up, down) = env.both_ways(&delete()).await;
    for r in [&up, &down] {
        assert_eq!(
            r.changes,
            ["new    sub/moved.bin (from big.bin)", "delete big.bin"]
        );
        assert_eq!((r.new, r.deleted), (1, 1));
        assert!(r.bytes_on_wire * 20 < BIG as u64, "{r:?}");
    }
}

/// What a progress bar was told.
#[derive(Default)]
struct Recorded {
    starts: Vec<u64>,
    advances: Vec<u64>,
    finishes: usize,
}

impl sockit_files::Progress for Recorded {
    fn start(&mut self, _: &str, total: u64, done: u64) {
        assert_eq!(done, 0);
        self.starts.push(total);
    }
    fn advance(&mut self, n: u64) {
        self.advances.push(n);
    }
    fn finish(&mut self) {
        self.finishes += 1;
    }
    fn warn(&mut self, message: &str) {
        panic!("unexpected warning {message}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_progress_bar_covers_the_whole_tree() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    let sent: u64 = crate::common::tree(&env.local("a"))
        .iter()
        .filter(|e| e.1 == "file")
        .map(|e| e.5.len() as u64)
        .sum();
    for (src, dst) in [
        (Side::Local(env.local("a")), Side::Remote("copy".into())),
        (Side::Remote("copy".into()), Side::Local(env.local("b"))),
    ] {
        let mut bar = Recorded::default();
        let mut c = env.server.client().await;
        c.sync(&src, &dst, &SyncOptions::default(), &mut bar)
            .await
            .unwrap();
        assert_eq!(bar.starts, [sent]);
        assert_eq!(bar.advances.iter().sum::<u64>(), sent);
        assert_eq!(bar.finishes, 1);
        // The large file moves the bar while it is sent, not only once it is done.
        assert!(
            bar.advances.iter().all(|&n| n < BIG as u64),
            "{:?}",
            bar.advances
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_directory_is_filled_and_keeps_its_mode() {
    let env = Env::new().await;
    let a = env.local("a");
    std::fs::create_dir_all(a.join("locked")).unwrap();
    std::fs::write(a.join("locked/inside"), b"first").unwrap();
    fix_times(&a);
    set_mode(&a.join("locked"), 0o555);
    env.both_ways(&delete()).await;
    // A change inside it, and a new file: its mode is lifted for the writes and back after.
    set_mode(&a.join("locked"), 0o755);
    std::fs::write(a.join("locked/inside"), b"second").unwrap();
    std::fs::write(a.join("locked/more"), b"more").unwrap();
    set_mode(&a.join("locked"), 0o555);
    let (up, down) = env.both_ways(&delete()).await;
    for r in [&up, &down] {
        assert_eq!(r.changes, ["update locked/inside", "new    locked/more"]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unchanged_tree_sends_nothing() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    env.both_ways(&SyncOptions::default()).await;
    let (up, down) = env.both_ways(&SyncOptions::default()).await;
    for r in [&up, &down] {
        assert!(r.changes.is_empty(), "{r:?}");
        assert_eq!((r.same, r.bytes_on_wire, r.bytes_represented), (6, 0, 0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_removes_what_the_source_lacks_and_only_with_the_flag() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    env.both_ways(&SyncOptions::default()).await;
    let a = env.local("a");
    std::fs::remove_file(a.join("secret")).unwrap();
    std::fs::remove_dir_all(a.join("sub")).unwrap();
    std::fs::remove_file(a.join("dangling")).unwrap();
    set_mtime(&a, PAST + 1, 0);
    // Without --delete the extra entries stay.
    let r = env
        .sync(
            Side::Local(a.clone()),
            Side::Remote("copy".into()),
            &SyncOptions::default(),
        )
        .await;
    assert_eq!(r.deleted, 0);
    assert!(env.remote("copy/secret").exists() && env.remote("copy/sub/data").exists());
    let (up, down) = env.both_ways(&delete()).await;
    assert_eq!(up.deleted, 3, "{up:?}");
    // Deepest and last first; a directory goes with everything in it.
    assert_eq!(
        up.changes,
        ["delete sub/", "delete secret", "delete dangling"]
    );
    // The pulled copy had them too: removed the same way.
    assert_eq!(down.deleted, 3, "{down:?}");
    assert!(!env.local("b/sub").exists() && !env.local("b/secret").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_and_changes_nothing() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    env.both_ways(&SyncOptions::default()).await;
    let a = env.local("a");
    edit_big(&a, |b| b[10] ^= 1);
    std::fs::write(a.join("fresh"), b"new file").unwrap();
    std::fs::remove_file(a.join("secret")).unwrap();
    set_mode(&a.join("run.sh"), 0o700);
    let before_remote = tree_with_top(&env.remote("copy"));
    let before_local = tree_with_top(&env.local("b"));
    let dry = SyncOptions {
        dry_run: true,
        delete: true,
        ..SyncOptions::default()
    };
    let up = env
        .sync(Side::Local(a.clone()), Side::Remote("copy".into()), &dry)
        .await;
    assert!(up.dry_run);
    assert_eq!(
        up.changes,
        ["update big.bin", "new    fresh", "delete secret"]
    );
    assert_eq!((up.new, up.changed, up.deleted), (1, 1, 1));
    assert_eq!(up.bytes_on_wire, 0);
    assert_eq!(up.bytes_represented, BIG as u64 + 8);
    assert_eq!(tree_with_top(&env.remote("copy")), before_remote);
    // Pull the other way: nothing local changes either.
    std::fs::write(env.remote("copy/remote-only"), b"x").unwrap();
    let before_remote = tree_with_top(&env.remote("copy"));
    let down = env
        .sync(
            Side::Remote("copy".into()),
            Side::Local(env.local("b")),
            &dry,
        )
        .await;
    assert_eq!(down.changes, ["new    remote-only"]);
    assert_eq!(tree_with_top(&env.local("b")), before_local);
    assert_eq!(tree_with_top(&env.remote("copy")), before_remote);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_paths_are_neither_sent_nor_deleted() {
    let env = Env::new().await;
    let a = env.local("a");
    std::fs::create_dir_all(a.join("build/obj")).unwrap();
    std::fs::create_dir_all(a.join("src")).unwrap();
    std::fs::write(a.join("src/main.c"), b"int main;").unwrap();
    std::fs::write(a.join("src/main.o"), b"object").unwrap();
    std::fs::write(a.join("build/obj/x.o"), b"object").unwrap();
    std::fs::write(a.join("build/log"), b"log").unwrap();
    let opts = SyncOptions {
        delete: true,
        exclude: vec!["*.o".into(), "/build/".into()],
        ..SyncOptions::default()
    };
    let r = env
        .sync(Side::Local(a.clone()), Side::Remote("copy".into()), &opts)
        .await;
    assert_eq!(r.changes, ["mkdir  src/", "new    src/main.c"]);
    assert!(!env.remote("copy/build").exists() && !env.remote("copy/src/main.o").exists());
    // Excluded files on the destination survive --delete, and so do the directories
    // holding them; the rest of such a directory goes.
    std::fs::create_dir_all(env.remote("copy/old")).unwrap();
    std::fs::write(env.remote("copy/old/keep.o"), b"mine").unwrap();
    std::fs::write(env.remote("copy/old/drop.txt"), b"gone").unwrap();
    std::fs::write(env.remote("copy/src/local.o"), b"mine").unwrap();
    let r = env
        .sync(Side::Local(a.clone()), Side::Remote("copy".into()), &opts)
        .await;
    assert_eq!(r.changes, ["delete old/drop.txt"]);
    assert_eq!(
        std::fs::read(env.remote("copy/old/keep.o")).unwrap(),
        b"mine"
    );
    assert_eq!(
        std::fs::read(env.remote("copy/src/local.o")).unwrap(),
        b"mine"
    );
    // The same pulling: nothing excluded arrives.
    let r = env
        .sync(
            Side::Remote("copy".into()),
            Side::Local(env.local("b")),
            &opts,
        )
        .await;
    assert_eq!(
        r.changes,
        ["mkdir  old/", "mkdir  src/", "new    src/main.c"]
    );
    assert!(!env.local("b/old/keep.o").exists() && !env.local("b/src/local.o").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checksum_catches_a_change_that_keeps_size_and_time() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    env.both_ways(&SyncOptions::default()).await;
    let a = env.local("a");
    let p = a.join("sub/data");
    let (t, tn) = {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(&p).unwrap();
        (m.mtime(), m.mtime_nsec() as u32)
    };
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[1000] ^= 0x55;
    std::fs::write(&p, &bytes).unwrap();
    set_mtime(&p, t, tn);
    set_mtime(&a.join("sub"), PAST + 3, 0);
    // By size and time the file looks the same: it is not sent.
    let r = env
        .sync(
            Side::Local(a.clone()),
            Side::Remote("copy".into()),
            &SyncOptions::default(),
        )
        .await;
    assert_eq!((r.changed, r.same), (0, 6));
    assert_ne!(std::fs::read(env.remote("copy/sub/data")).unwrap(), bytes);
    let sums = SyncOptions {
        checksum: true,
        ..SyncOptions::default()
    };
    let (up, down) = env.both_ways(&sums).await;
    assert_eq!(up.changes, ["update sub/data"]);
    assert_eq!(down.changes, ["update sub/data"]);
    assert_eq!(std::fs::read(env.remote("copy/sub/data")).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_that_change_are_replaced() {
    let env = Env::new().await;
    make_tree(&env.local("a"));
    env.both_ways(&delete()).await;
    let a = env.local("a");
    // A file becomes a directory, a directory a file, a symlink a file.
    std::fs::remove_file(a.join("secret")).unwrap();
    std::fs::create_dir(a.join("secret")).unwrap();
    std::fs::write(a.join("secret/inside"), b"in").unwrap();
    std::fs::remove_dir_all(a.join("empty")).unwrap();
    std::fs::write(a.join("empty"), b"now a file").unwrap();
    std::fs::remove_file(a.join("to-sub")).unwrap();
    std::fs::write(a.join("to-sub"), b"was a link").unwrap();
    let (up, down) = env.both_ways(&delete()).await;
    for r in [&up, &down] {
        assert_eq!(r.deleted, 0, "{r:?}");
        assert!(
            r.changes.contains(&"delete empty/ (replaced)".to_string()),
            "{r:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symlink_loop_is_reported_and_the_rest_synced() {
    let env = Env::new().await;
    let a = env.local("a");
    std::fs::create_dir(&a).unwrap();
    std::fs::write(a.join("file"), b"data").unwrap();
    std::os::unix::fs::symlink("y", a.join("x")).unwrap();
    std::os::unix::fs::symlink("x", a.join("y")).unwrap();
    std::os::unix::fs::symlink("x", a.join("z")).unwrap();
    let r = env
        .sync(
            Side::Local(a.clone()),
            Side::Remote("copy".into()),
            &SyncOptions::default(),
        )
        .await;
    // `x` and `y` are made while the other is missing (dangling is fine); `z` would
    // resolve through the loop, which the server refuses.
    assert_eq!(r.changes, ["new    file", "link   x -> y", "link   y -> x"]);
    assert_eq!(r.symlinks, 2);
    assert_eq!(r.skipped.len(), 1, "{:?}", r.skipped);
    assert!(
        r.skipped[0].starts_with("z: the server refused"),
        "{:?}",
        r.skipped
    );
    assert_eq!(std::fs::read(env.remote("copy/file")).unwrap(), b"data");
}

/// `sync_patch {path, base?, total, blake3, data_size}` + `delta` as a raw request.
async fn patch(
    c: &mut sockit_wire::Client,
    path: &str,
    base: Option<&str>,
    result: &[u8],
    delta: &[u8],
) -> Result<sockit_wire::Header, sockit_wire::ClientError> {
    let mut h = sockit_wire::Header::request("sync_patch")
        .with("path", path)
        .with("total", result.len())
        .with("blake3", blake3::hash(result).to_hex().to_string())
        .with("data_size", delta.len());
    if let Some(b) = base {
        h = h.with("base", b);
    }
    c.request_with_body(&h, bytes::Bytes::copy_from_slice(delta))
        .await
}

fn literal(bytes: &[u8]) -> Vec<u8> {
    let mut d = vec![2u8];
    d.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
    d.extend_from_slice(bytes);
    d
}

fn copy(base: u64, len: u64) -> Vec<u8> {
    let mut d = vec![1u8];
    d.extend_from_slice(&base.to_le_bytes());
    d.extend_from_slice(&len.to_le_bytes());
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_refuses_bad_patches_and_changes_nothing() {
    use sockit_wire::{ClientError, ErrorCode};
    let dir = tempfile::tempdir().unwrap();
    let (files, staging) = (dir.path().join("files"), dir.path().join("staging"));
    std::fs::create_dir_all(files.join("d")).unwrap();
    std::fs::write(files.join("base"), b"hello world").unwrap();
    let config = FilesConfig {
        max_upload: 1000,
        ..FilesConfig::default()
    };
    let server = Server::start_split(&files, &staging, config).await;
    let mut c = sockit_wire::Client::connect(
        &server.addr.to_string(),
        None,
        std::time::Duration::from_secs(10),
    )
    .await
    .unwrap();
    let code = |r: Result<sockit_wire::Header, ClientError>| match r {
        Err(ClientError::Remote { code, message }) => (code, message),
        other => panic!("expected a refusal, got {other:?}"),
    };
    let before = tree_with_top(&files);
    // An unknown operation, a copy past the end of the base, an empty literal.
    let (k, m) = code(patch(&mut c, "new", Some("base"), b"x", &[9, 0, 0]).await);
    assert_eq!(k, ErrorCode::BadRequest, "{m}");
    assert!(m.contains("unknown delta operation"), "{m}");
    let (k, m) = code(patch(&mut c, "new", Some("base"), b"hello", &copy(8, 5)).await);
    assert_eq!(k, ErrorCode::BadRequest, "{m}");
    assert!(m.contains("past the end of the base"), "{m}");
    let (k, _) = code(patch(&mut c, "new", None, b"", &literal(b"")).await);
    assert_eq!(k, ErrorCode::BadRequest);
    // A result that is not what the header announced.
    let (k, m) = code(patch(&mut c, "new", Some("base"), b"hello", &copy(0, 4)).await);
    assert_eq!(k, ErrorCode::BadRequest, "{m}");
    assert!(m.contains("blake3 mismatch"), "{m}");
    // Over --max-upload, onto a directory, into a missing directory, the root.
    let big = vec![7u8; 1001];
    let (k, _) = code(patch(&mut c, "new", None, &big, &literal(&big)).await);
    assert_eq!(k, ErrorCode::TooLarge);
    let (k, m) = code(patch(&mut c, "d", None, b"x", &literal(b"x")).await);
    assert_eq!(k, ErrorCode::BadRequest, "{m}");
    let (k, _) = code(patch(&mut c, "no/such", None, b"x", &literal(b"x")).await);
    assert_eq!(k, ErrorCode::NotFound);
    let (k, _) = code(patch(&mut c, "", None, b"x", &literal(b"x")).await);
    assert_eq!(k, ErrorCode::BadRequest);
    // Nothing changed, nothing is left staged, and the connection still works.
    assert_eq!(tree_with_top(&files), before);
    assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0);
    let mut delta = copy(6, 5);
    delta.extend(literal(b", hello"));
    let ok = patch(&mut c, "new", Some("base"), b"world, hello", &delta)
        .await
        .unwrap();
    let stored = ok.decode::<sockit_files::messages::PutReply>().unwrap();
    assert_eq!(stored.stored.size, 12);
    assert_eq!(std::fs::read(files.join("new")).unwrap(), b"world, hello");
}

#[test]
fn a_sync_with_both_sides_local_is_refused() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let env = Env::new().await;
        let mut c = env.server.client().await;
        let e = c
            .sync(
                &Side::Local(env.local("a")),
                &Side::Local(env.local("b")),
                &SyncOptions::default(),
                &mut NoProgress,
            )
            .await
            .unwrap_err();
        assert!(matches!(e, sockit_files::sync::SyncError::Usage(_)), "{e}");
    });
}

/// One entry of a random tree: where (a directory index, a name index) and what.
#[derive(Debug, Clone)]
enum Make {
    File { size: usize, seed: u64, mode: u32 },
    Dir,
    Link { target: usize },
}

/// One random edit of the source.
#[derive(Debug, Clone)]
enum Edit {
    /// Replace `cut` bytes at a fraction of the file by `insert`.
    Splice {
        at: f64,
        cut: usize,
        insert: Vec<u8>,
    },
    Remove,
    Rename {
        name: usize,
    },
    Chmod {
        mode: u32,
    },
    Touch {
        secs: i64,
    },
    ToDir,
    ToFile {
        size: usize,
    },
    Relink {
        target: usize,
    },
}

const DIRS: [&str; 4] = ["", "x", "x/y", "z"];
const NAMES: [&str; 5] = ["a", "b", "c d", "e.o", "f"];
/// Symlinks have names of their own and point to [`NAMES`], so no link points to a link
/// (a loop is refused by the server: `a_symlink_loop_is_reported_and_the_rest_synced`).
const LINKS: [&str; 2] = ["l", "m n"];
const MODES: [u32; 4] = [0o644, 0o600, 0o755, 0o444];

fn make_strategy() -> impl Strategy<Value = Make> {
    prop_oneof![
        4 => (0usize..20_000, any::<u64>(), 0usize..MODES.len())
            .prop_map(|(size, seed, m)| Make::File { size, seed, mode: MODES[m] }),
        1 => Just(Make::Dir),
        1 => (0usize..NAMES.len()).prop_map(|target| Make::Link { target }),
    ]
}

fn edit_strategy() -> impl Strategy<Value = Edit> {
    prop_oneof![
        4 => (0.0f64..1.0, 0usize..3000, proptest::collection::vec(any::<u8>(), 0..300))
            .prop_map(|(at, cut, insert)| Edit::Splice { at, cut, insert }),
        1 => Just(Edit::Remove),
        1 => (0usize..NAMES.len()).prop_map(|name| Edit::Rename { name }),
        1 => (0usize..MODES.len()).prop_map(|m| Edit::Chmod { mode: MODES[m] }),
        1 => (0i64..1000).prop_map(|s| Edit::Touch { secs: PAST + 10_000_000 + s }),
        1 => Just(Edit::ToDir),
        1 => (0usize..5000).prop_map(|size| Edit::ToFile { size }),
        1 => (0usize..NAMES.len()).prop_map(|target| Edit::Relink { target }),
    ]
}

/// Builds a random tree under `top` (entries that would clash with one already there are
/// left out), with past times.
fn build(top: &Path, makes: &[(usize, usize, Make)]) {
    std::fs::create_dir_all(top).unwrap();
    for (d, n, m) in makes {
        let dir = top.join(DIRS[*d]);
        let name = match m {
            Make::Link { .. } => LINKS[n % LINKS.len()],
            _ => NAMES[*n],
        };
        let p = dir.join(name);
        if std::fs::create_dir_all(&dir).is_err() || std::fs::symlink_metadata(&p).is_ok() {
            continue;
        }
        match m {
            Make::File { size, seed, mode } => {
                std::fs::write(&p, data::bytes(*size, *seed)).unwrap();
                set_mode(&p, *mode);
            }
            Make::Dir => std::fs::create_dir(&p).unwrap(),
            Make::Link { target } => std::os::unix::fs::symlink(NAMES[*target], &p).unwrap(),
        }
    }
    fix_times(top);
}

/// Applies `edits` to the entries of `top` (each picks an entry by index), the way
/// programs change files: content edits and new files get the time of now.
fn apply(top: &Path, edits: &[(usize, Edit)]) {
    for (i, edit) in edits {
        let all = crate::common::tree(top);
        if all.is_empty() {
            return;
        }
        let (rel, kind, ..) = &all[i % all.len()];
        let p = top.join(rel);
        match (edit, *kind) {
            (Edit::Splice { at, cut, insert }, "file") => {
                let mut b = std::fs::read(&p).unwrap();
                let start = ((b.len() as f64) * at) as usize;
                let end = (start + cut).min(b.len());
                b.splice(start..end, insert.iter().copied());
                std::fs::write(&p, b).unwrap();
            }
            (Edit::Remove, "dir") => std::fs::remove_dir_all(&p).unwrap(),
            (Edit::Remove, _) => std::fs::remove_file(&p).unwrap(),
            (Edit::Rename { name }, "file") => {
                let to = p.with_file_name(format!("{}-moved", NAMES[*name]));
                if std::fs::symlink_metadata(&to).is_err() {
                    std::fs::rename(&p, to).unwrap();
                }
            }
            (Edit::Chmod { mode }, "file") => set_mode(&p, *mode),
            // Directories stay writable and searchable by their owner.
            (Edit::Chmod { mode }, "dir") => set_mode(&p, *mode | 0o700),
            (Edit::Touch { secs }, _) => set_mtime(&p, *secs, 42),
            (Edit::ToDir, "file" | "symlink") => {
                std::fs::remove_file(&p).unwrap();
                std::fs::create_dir(&p).unwrap();
                std::fs::write(p.join("inner"), b"inner file").unwrap();
            }
            (Edit::ToFile { size }, "dir" | "symlink") => {
                if *kind == "dir" {
                    std::fs::remove_dir_all(&p).unwrap();
                } else {
                    std::fs::remove_file(&p).unwrap();
                }
                std::fs::write(&p, data::bytes(*size, *size as u64)).unwrap();
            }
            (Edit::Relink { target }, "symlink") => {
                std::fs::remove_file(&p).unwrap();
                std::os::unix::fs::symlink(NAMES[*target], &p).unwrap();
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20))]
    /// For random trees and random edits, a sync (either way, by size and time or by
    /// checksum) makes the destination equal to the source byte for byte and in
    /// metadata, after the first sync and after the edits.
    #[test]
    fn sync_makes_the_destination_equal_the_source(
        makes in proptest::collection::vec(
            (0usize..DIRS.len(), 0usize..NAMES.len(), make_strategy()), 1..14),
        edits in proptest::collection::vec((any::<usize>(), edit_strategy()), 0..8),
        pull in any::<bool>(),
        checksum in any::<bool>(),
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let env = Env::new().await;
            let (src_dir, src, dst_dir, dst) = if pull {
                (env.remote("src"), Side::Remote("src".into()), env.local("dst"), Side::Local(env.local("dst")))
            } else {
                (env.local("src"), Side::Local(env.local("src")), env.remote("dst"), Side::Remote("dst".into()))
            };
            let opts = SyncOptions { delete: true, checksum, ..SyncOptions::default() };
            build(&src_dir, &makes);
            env.sync(src.clone(), dst.clone(), &opts).await;
            assert_eq!(tree_with_top(&dst_dir), tree_with_top(&src_dir), "first sync");
            apply(&src_dir, &edits);
            env.sync(src.clone(), dst.clone(), &opts).await;
            assert_eq!(tree_with_top(&dst_dir), tree_with_top(&src_dir), "after {edits:?}");
            let again = env.sync(src, dst, &opts).await;
            assert!(again.changes.is_empty(), "a second sync changed {:?}", again.changes);
        });
    }
}
