//! Metadata through a real server: permission bits and modification times (to the
//! nanosecond) on put/get and in ls/stat, trees with nested and empty directories and
//! symlinks both ways, symlinks that would leave the tree refused, and requests without
//! the new fields (older clients) still served as before.

use crate::common::{set_mode, set_mtime, tree, Meta, Server};

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use sockit_files::client::{GetOptions, NoProgress, PutOptions};
use sockit_files::messages::{GetReply, LsReply, StatReply};
use sockit_files::meta::Mtime;
use sockit_files::FilesConfig;
use sockit_testkit::data;
use sockit_wire::{Client, ClientError, ErrorCode, Header};

const PUT_NEW: PutOptions = PutOptions {
    resume: false,
    overwrite: false,
};
const GET: GetOptions = GetOptions { resume: false };

/// 2001-09-09 01:46:40 UTC and some nanoseconds: clearly not "now".
const PAST: i64 = 1_000_000_000;

/// A source tree: nested and empty directories, files with several modes, symlinks
/// inside the tree (to a file, to a directory, dangling) and ones that leave it, every
/// entry with a fixed past time. Returns the names of the symlinks that must not travel.
fn make_tree(src: &Path) -> Vec<&'static str> {
    std::fs::create_dir_all(src.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(src.join("empty")).unwrap();
    std::fs::create_dir_all(src.join("sub/empty-too")).unwrap();
    std::fs::create_dir_all(src.join("locked")).unwrap();
    for (rel, mode, size) in [
        ("run.sh", 0o755, 100),
        ("secret.key", 0o600, 32),
        ("sub/data.bin", 0o640, 70_000),
        ("sub/deeper/ro.txt", 0o444, 5),
        ("locked/inside.txt", 0o644, 9),
    ] {
        let p = src.join(rel);
        std::fs::write(&p, data::bytes(size, size as u64)).unwrap();
        set_mode(&p, mode);
    }
    for (link, target) in [
        ("sub/to-run", "../run.sh"),
        ("to-sub", "sub"),
        ("sub/deeper/up-two", "../../secret.key"),
        ("dangling", "not-there"),
        ("sub/escapes", "../../outside"),
        ("absolute", "/etc/passwd"),
        ("inner-dotdot", "sub/../run.sh"),
    ] {
        std::os::unix::fs::symlink(target, src.join(link)).unwrap();
    }
    set_mode(&src.join("sub"), 0o750);
    set_mode(&src.join("empty"), 0o700);
    // Set times deepest first, so setting one does not change its parent's again.
    let mut all = tree(src);
    all.sort_by_key(|e| std::cmp::Reverse(e.0.matches('/').count()));
    for (i, (rel, ..)) in all.iter().enumerate() {
        set_mtime(
            &src.join(rel),
            PAST + i as i64 * 3600,
            123_456_789 + i as u32,
        );
    }
    set_mtime(src, PAST - 7, 1);
    // A read-only directory last: filling it on the other side needs its mode set after.
    set_mode(&src.join("locked"), 0o555);
    vec!["sub/escapes", "absolute", "inner-dotdot"]
}

fn without(mut t: Vec<Meta>, names: &[&str]) -> Vec<Meta> {
    t.retain(|e| !names.contains(&e.0.as_str()));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trees_keep_modes_times_empty_dirs_and_symlinks_both_ways() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let src = tmp.path().join("src");
    let refused = make_tree(&src);
    let mut c = server.client().await;

    let up = c
        .put_tree(&src, "copy", PUT_NEW, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((up.files, up.symlinks), (5, 4), "{up:?}");
    assert_eq!(up.skipped.len(), 3, "{:?}", up.skipped);
    for name in &refused {
        assert!(
            up.skipped.iter().any(|s| s.contains(name)),
            "{name} not reported: {:?}",
            up.skipped
        );
    }
    let want = without(tree(&src), &refused);
    assert_eq!(tree(&root.join("copy")), want);
    let top = std::fs::metadata(root.join("copy")).unwrap();
    assert_eq!((top.mtime(), top.mtime_nsec()), (PAST - 7, 1));

    let back = tmp.path().join("back");
    let down = c
        .get_tree("copy", &back, GET, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((down.files, down.symlinks), (5, 4), "{down:?}");
    assert!(down.skipped.is_empty(), "{:?}", down.skipped);
    assert_eq!(tree(&back), want);
    let top = std::fs::metadata(&back).unwrap();
    assert_eq!((top.mtime(), top.mtime_nsec()), (PAST - 7, 1));
    // Nothing of the transfer is left beside the files.
    assert!(!tree(&back)
        .iter()
        .any(|e| e.0.contains("sockit-part") || e.0.contains("sockit-link")));

    // So the temporary directories can be removed.
    for d in [&src, &root.join("copy"), &back] {
        set_mode(&d.join("locked"), 0o755);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_files_keep_mode_and_time_and_ls_stat_show_them() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let src = tmp.path().join("tool");
    std::fs::write(&src, b"#!/bin/sh\necho hi\n").unwrap();
    set_mode(&src, 0o750);
    set_mtime(&src, PAST, 987_654_321);
    let mut c = server.client().await;
    c.put(&src, "tool", PUT_NEW, &mut NoProgress).await.unwrap();
    let m = std::fs::metadata(root.join("tool")).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o750);
    assert_eq!((m.mtime(), m.mtime_nsec()), (PAST, 987_654_321));

    let st = c.stat("tool", false).await.unwrap();
    assert_eq!(
        (st.mode, st.mtime, st.mtime_nsec),
        (Some(0o750), PAST, 987_654_321)
    );
    std::os::unix::fs::symlink("tool", root.join("link")).unwrap();
    let st = c.stat("link", false).await.unwrap();
    assert_eq!(
        (st.kind.as_str(), st.target.as_deref()),
        ("symlink", Some("tool"))
    );
    let ls = c.ls("").await.unwrap();
    let names: Vec<_> = ls
        .iter()
        .map(|e| {
            (
                e.name.as_str(),
                e.kind.as_str(),
                e.target.as_deref(),
                e.mode,
            )
        })
        .collect();
    assert_eq!(
        names,
        [
            ("link", "symlink", Some("tool"), Some(0o777)),
            ("tool", "file", None, Some(0o750))
        ]
    );

    // get applies them to the downloaded file, replacing an existing one's.
    let dst = tmp.path().join("dst");
    std::fs::write(&dst, b"old").unwrap();
    set_mode(&dst, 0o666);
    c.get("tool", &dst, GET, &mut NoProgress).await.unwrap();
    let m = std::fs::metadata(&dst).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o750);
    assert_eq!((m.mtime(), m.mtime_nsec()), (PAST, 987_654_321));
    // A single-file get of a symlink inside the root downloads what it points to.
    let via = tmp.path().join("via");
    c.get("link", &via, GET, &mut NoProgress).await.unwrap();
    assert_eq!(std::fs::read(&via).unwrap(), b"#!/bin/sh\necho hi\n");
    assert!(!std::fs::symlink_metadata(&via).unwrap().is_symlink());
}

fn code(r: Result<(), sockit_files::FilesClientError>) -> ErrorCode {
    r.unwrap_err().remote_code().expect("a server refusal")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_creates_only_symlinks_that_stay_inside() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("d/e")).unwrap();
    std::fs::write(root.join("f"), b"f").unwrap();
    std::os::unix::fs::symlink("d", root.join("dl")).unwrap();
    std::os::unix::fs::symlink("../..", root.join("d/out")).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut c = server.client().await;
    let t = Some(Mtime::new(PAST, 5).unwrap());

    for (path, target) in [
        ("l1", "../x"),
        ("d/e/l2", "../../../x"),
        ("l3", "/etc/passwd"),
        ("l4", "d/../../x"),
        ("dl/l5", "../f"),   // its directory is a symlink
        ("l6", "d/out/etc"), // through a link that leaves the root
        ("l7", ".sockit-staging/x"),
    ] {
        let r = c.symlink(path, target, false, t).await;
        let e = r.unwrap_err();
        assert_eq!(
            e.remote_code(),
            Some(ErrorCode::Denied),
            "{path} -> {target}: {e}"
        );
        let named = if path == "dl/l5" { "`dl`" } else { target };
        assert!(e.to_string().contains(named), "{e}");
        assert!(
            std::fs::symlink_metadata(root.join(path)).is_err(),
            "{path}"
        );
    }
    c.symlink("d/e/ok", "../../f", false, t).await.unwrap();
    let link = root.join("d/e/ok");
    assert_eq!(std::fs::read_link(&link).unwrap(), Path::new("../../f"));
    let m = std::fs::symlink_metadata(&link).unwrap();
    assert_eq!((m.mtime(), m.mtime_nsec()), (PAST, 5));
    // Existing names: refused without overwrite, replaced with it; a directory never.
    assert_eq!(
        code(c.symlink("d/e/ok", "../../d", false, None).await),
        ErrorCode::Exists
    );
    c.symlink("f", "d", true, None).await.unwrap();
    assert_eq!(std::fs::read_link(root.join("f")).unwrap(), Path::new("d"));
    assert_eq!(
        code(c.symlink("d", "f", true, None).await),
        ErrorCode::BadRequest
    );
    assert_eq!(
        code(c.symlink("nodir/l", "x", false, None).await),
        ErrorCode::NotFound
    );

    // setattr: modes and times of directories; a symlink's own time only.
    c.setattr("d", Some(0o701), Some(Mtime::new(PAST, 9).unwrap()))
        .await
        .unwrap();
    let m = std::fs::metadata(root.join("d")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
        (0o701, PAST, 9)
    );
    c.setattr("dl", Some(0o600), Some(Mtime::new(PAST + 1, 0).unwrap()))
        .await
        .unwrap();
    let m = std::fs::symlink_metadata(root.join("dl")).unwrap();
    assert_eq!(m.mtime(), PAST + 1);
    assert_eq!(
        std::fs::metadata(root.join("d")).unwrap().mode() & 0o7777,
        0o701
    );
    // Set-id bits are reported but never applied.
    c.setattr("d", Some(0o4755), None).await.unwrap();
    assert_eq!(
        std::fs::metadata(root.join("d")).unwrap().mode() & 0o7777,
        0o755
    );
    assert_eq!(
        code(c.setattr("d", Some(0o100644), None).await),
        ErrorCode::BadRequest
    );
    assert_eq!(code(c.setattr("gone", None, t).await), ErrorCode::NotFound);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_tree_never_recreates_a_link_that_leaves_the_destination() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir_all(root.join("t/sub")).unwrap();
    std::fs::write(root.join("t/sub/f"), b"f").unwrap();
    // Placed on the server by other means: the server lists them, never follows them.
    std::os::unix::fs::symlink("../../../etc", root.join("t/sub/escape")).unwrap();
    std::os::unix::fs::symlink("/etc", root.join("t/abs")).unwrap();
    std::os::unix::fs::symlink("sub/f", root.join("t/fine")).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut c = server.client().await;
    let back = tmp.path().join("back");
    let r = c.get_tree("t", &back, GET, &mut NoProgress).await.unwrap();
    assert_eq!((r.files, r.symlinks), (1, 1), "{r:?}");
    assert_eq!(r.skipped.len(), 2, "{:?}", r.skipped);
    assert!(std::fs::symlink_metadata(back.join("sub/escape")).is_err());
    assert!(std::fs::symlink_metadata(back.join("abs")).is_err());
    assert_eq!(
        std::fs::read_link(back.join("fine")).unwrap(),
        Path::new("sub/f")
    );
    // A local directory that is a symlink is not written through.
    let back2 = tmp.path().join("back2");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&back2).unwrap();
    std::fs::create_dir_all(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, back2.join("sub")).unwrap();
    let r = c.get_tree("t", &back2, GET, &mut NoProgress).await.unwrap();
    assert!(
        r.skipped.iter().any(|s| s.contains("not followed")),
        "{:?}",
        r.skipped
    );
    assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
}

fn header(json: &str) -> Header {
    serde_json::from_str(json).unwrap()
}

/// Requests as older clients send them (no mode, no times) are served as before, and the
/// new fields are errors only when malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_without_the_new_fields_still_work() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let server = Server::start(&root, FilesConfig::default()).await;
    let mut c = Client::connect(&server.addr.to_string(), None, Duration::from_secs(10))
        .await
        .unwrap();
    let before = std::time::SystemTime::now() - Duration::from_secs(2);
    let put = c
        .request_with_body(
            &header(r#"{"cmd":"put","filename":"old.txt","filesize":5}"#),
            bytes::Bytes::from_static(b"hello"),
        )
        .await
        .unwrap();
    assert!(put.as_error().is_none(), "{put:?}");
    let m = std::fs::metadata(root.join("old.txt")).unwrap();
    assert!(
        m.modified().unwrap() >= before,
        "an old client's upload gets the current time"
    );
    let mode = m.mode() & 0o777;
    let stat: StatReply = c
        .request(&header(r#"{"cmd":"stat","path":"old.txt"}"#))
        .await
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(stat.stat.mode, Some(mode));
    let get: GetReply = c
        .request(&header(r#"{"cmd":"get","filename":"old.txt"}"#))
        .await
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!((get.size, get.mode), (5, Some(mode)));
    assert_eq!(get.mtime, m.mtime());
    c.connection().discard_body().await.unwrap();
    let ls: LsReply = c
        .request(&header(r#"{"cmd":"ls"}"#))
        .await
        .unwrap()
        .decode()
        .unwrap();
    assert_eq!(ls.entries[0].name, "old.txt");
    // Malformed new fields: bad_request, and the connection stays usable.
    for json in [
        r#"{"cmd":"put","path":"x","size":0,"mode":70000}"#,
        r#"{"cmd":"put","path":"x","size":0,"mtime":1,"mtime_nsec":1000000000}"#,
        r#"{"cmd":"put","path":"x","size":0,"mode":"0755"}"#,
    ] {
        match c.request(&header(json)).await {
            Err(ClientError::Remote {
                code: ErrorCode::BadRequest,
                ..
            }) => {}
            other => panic!("{json}: {other:?}"),
        }
    }
    assert!(!root.join("x").exists());
    c.ping().await.unwrap();
    // A time before 1970 is kept too.
    c.request_with_body(
        &header(r#"{"cmd":"put","path":"y","size":1,"mtime":-86400,"mtime_nsec":5,"mode":384}"#),
        bytes::Bytes::from_static(b"y"),
    )
    .await
    .unwrap();
    let m = std::fs::metadata(root.join("y")).unwrap();
    assert_eq!(
        (m.mtime(), m.mtime_nsec(), m.mode() & 0o777),
        (-86400, 5, 0o600)
    );
    assert!(m.modified().unwrap() < UNIX_EPOCH);
}

/// A server with only the commands older servers had (no `symlink`, no `setattr`): a new
/// client's tree upload still stores every file, and reports what it could not keep.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_client_with_an_older_server_skips_what_it_cannot_keep() {
    use sockit_files::cmd::{get, ls, mkdir, put, stat};
    use sockit_runtime::server::{bind_tcp, serve_tcp, Limits};
    use sockit_testkit::net::{Running, LOOPBACK_ANY};
    use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
    use std::sync::Arc;

    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let files = sockit_files::FilesRoot::open(&root, FilesConfig::default()).unwrap();
    let mut table = CommandTable::new();
    table.register(
        "ls",
        Arc::new(ls::Ls {
            root: files.clone(),
        }),
    );
    table.register(
        "stat",
        Arc::new(stat::Stat {
            root: files.clone(),
        }),
    );
    table.register(
        "get",
        Arc::new(get::Get {
            root: files.clone(),
        }),
    );
    table.register(
        "put",
        Arc::new(put::Put {
            root: files.clone(),
        }),
    );
    table.register("mkdir", Arc::new(mkdir::Mkdir { root: files }));
    let service = Arc::new(FramedService::new(table, FramedConfig::default()));
    let listener = bind_tcp(LOOPBACK_ANY, 64).unwrap();
    let addr = listener.local_addr().unwrap();
    let _running = Running::spawn(addr, |token| {
        serve_tcp(listener, service, Limits::default(), token)
    });
    let mut c =
        sockit_files::FilesClient::connect(&addr.to_string(), None, Duration::from_secs(10))
            .await
            .unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("d")).unwrap();
    std::fs::write(src.join("d/f"), b"f").unwrap();
    std::os::unix::fs::symlink("d/f", src.join("l")).unwrap();
    std::os::unix::fs::symlink("f", src.join("d/l2")).unwrap();
    let r = c
        .put_tree(&src, "t", PUT_NEW, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!((r.files, r.symlinks), (1, 0), "{r:?}");
    assert_eq!(r.skipped.len(), 3, "{:?}", r.skipped);
    assert!(r
        .skipped
        .iter()
        .any(|s| s.contains("does not create symlinks")));
    assert!(r.skipped.iter().any(|s| s.contains("does not set them")));
    assert_eq!(std::fs::read(root.join("t/d/f")).unwrap(), b"f");
}
