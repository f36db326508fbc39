//! Full disks and errors: an upload that runs out of space frees it again (or keeps it
//! with `keep_partial`), the next put succeeds, the staging area can live outside the
//! served tree but only on the same mount, and no error a client sees holds a server path.
//!
//! These tests mount small tmpfs filesystems, so they need root (CI runs as root); without
//! it they fail saying so.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::Server;
use sockit_files::client::{NoProgress, PutOptions};
use sockit_files::{FilesConfig, FilesRoot};
use sockit_testkit::data;
use sockit_wire::{Client, ClientError, ErrorCode, Header};

const PUT_NEW: PutOptions = PutOptions {
    resume: false,
    overwrite: false,
};

/// A mount on a fresh temporary directory, lazily unmounted when dropped (also when the
/// test fails), then the directory is removed.
struct Mount {
    point: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Mount {
    /// A tmpfs of `size` (e.g. `30m`).
    fn tmpfs(size: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let point = dir.path().to_owned();
        run_mount(&[
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "tmpfs",
            path_str(&point),
        ]);
        Mount {
            point,
            _dir: Some(dir),
        }
    }

    /// `from` bind-mounted on `onto` (an existing empty directory).
    fn bind(from: &Path, onto: &Path) -> Mount {
        run_mount(&["--bind", path_str(from), path_str(onto)]);
        Mount {
            point: onto.to_owned(),
            _dir: None,
        }
    }

    fn path(&self) -> &Path {
        &self.point
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Lazy: the server's tasks may still hold directory descriptors for a moment.
        let _ = Command::new("umount").arg("-l").arg(&self.point).status();
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

fn run_mount(args: &[&str]) {
    match Command::new("mount").args(args).output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "needs root to mount tmpfs (mount {args:?} failed: {}); run the tests as root",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("needs root to mount tmpfs (cannot run `mount`: {e}); install util-linux and run as root"),
    }
}

/// `ROOT/files` (served) and `ROOT/state/staging` inside `base`, the layout `sockit serve`
/// uses.
fn split_layout(base: &Path) -> (PathBuf, PathBuf) {
    let files = base.join("files");
    std::fs::create_dir_all(&files).unwrap();
    (files, base.join("state").join("staging"))
}

fn staged(staging: &Path) -> Vec<(String, u64)> {
    std::fs::read_dir(staging)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            (
                e.file_name().to_string_lossy().into_owned(),
                e.metadata().unwrap().len(),
            )
        })
        .collect()
}

fn assert_no_server_path(message: &str, base: &Path) {
    let canon = base.canonicalize().unwrap();
    for p in [base, canon.as_path()] {
        assert!(
            !message.contains(path_str(p)),
            "error sent to the client holds the server path {}: {message}",
            p.display()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_removes_the_partial_and_the_next_put_succeeds() {
    let fs = Mount::tmpfs("30m");
    let (files, staging) = split_layout(fs.path());
    let server = Server::start_split(&files, &staging, FilesConfig::default()).await;
    let local = tempfile::tempdir().unwrap();
    let big = local.path().join("big.bin");
    std::fs::write(&big, data::bytes(50 << 20, 1)).unwrap();

    let mut c = server.client().await;
    let err = c
        .put(&big, "big.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::TooLarge), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("no space left on the server"), "{msg}");
    assert!(msg.contains("the partial upload was removed"), "{msg}");
    assert_no_server_path(&msg, fs.path());
    assert!(!files.join("big.bin").exists());
    // The disk is not left full: nothing is staged, nothing remains under the name.
    let mut c = server.client().await;
    let st = c.stat("big.bin", false).await.unwrap_err();
    assert_eq!(st.remote_code(), Some(ErrorCode::NotFound), "{st}");
    assert_eq!(staged(&staging), vec![]);

    // The next put that fits succeeds, byte for byte.
    let ok = local.path().join("ok.bin");
    let bytes = data::bytes(10 << 20, 2);
    std::fs::write(&ok, &bytes).unwrap();
    let r = c
        .put(&ok, "ok.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap();
    assert_eq!(r.size, 10 << 20);
    assert!(std::fs::read(files.join("ok.bin")).unwrap() == bytes);
    assert_eq!(staged(&staging), vec![]);

    // A client that sends the whole body anyway keeps a usable connection: the server
    // drains the rest after its refusal.
    let mut raw = Client::connect(&server.addr.to_string(), None, Duration::from_secs(30))
        .await
        .unwrap();
    let body = bytes::Bytes::from(data::bytes(25 << 20, 3));
    let h = Header::request("put")
        .with("path", "also-too-big.bin")
        .with("size", body.len());
    match raw.request_with_body(&h, body).await {
        Err(ClientError::Remote { code, message }) => {
            assert_eq!(code, ErrorCode::TooLarge, "{message}");
            assert!(message.contains("no space left"), "{message}");
        }
        other => panic!("25 MiB into 20 MiB of free space: {other:?}"),
    }
    raw.request(&Header::request("ping")).await.unwrap();
    assert_eq!(staged(&staging), vec![]);
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enospc_with_keep_partial_keeps_it_until_removed() {
    let fs = Mount::tmpfs("30m");
    let (files, staging) = split_layout(fs.path());
    let config = FilesConfig {
        keep_partial: true,
        ..FilesConfig::default()
    };
    let server = Server::start_split(&files, &staging, config).await;
    let local = tempfile::tempdir().unwrap();
    let big = local.path().join("big.bin");
    std::fs::write(&big, data::bytes(50 << 20, 4)).unwrap();

    let mut c = server.client().await;
    let err = c
        .put(&big, "big.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap_err();
    assert_eq!(err.remote_code(), Some(ErrorCode::TooLarge), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("was kept (--keep-partial)"), "{msg}");
    assert_no_server_path(&msg, fs.path());
    let kept = staged(&staging);
    assert_eq!(kept.len(), 1, "{kept:?}");
    assert!(kept[0].1 > 20 << 20, "most of the 30 MiB is kept: {kept:?}");
    let mut c = server.client().await;
    let st = c.stat("big.bin", false).await.unwrap();
    assert_eq!(st.kind, "partial");
    assert_eq!(st.partial, Some(kept[0].1));

    // `rm` drops the partial; then there is room again.
    c.rm("big.bin", false).await.unwrap();
    assert_eq!(staged(&staging), vec![]);
    let ok = local.path().join("ok.bin");
    let bytes = data::bytes(10 << 20, 5);
    std::fs::write(&ok, &bytes).unwrap();
    c.put(&ok, "ok.bin", PUT_NEW, &mut NoProgress)
        .await
        .unwrap();
    assert!(std::fs::read(files.join("ok.bin")).unwrap() == bytes);
    drop(server);
}

#[test]
fn open_split_refuses_two_filesystems_and_two_mounts() {
    let fs = Mount::tmpfs("4m");
    let (files, _) = split_layout(fs.path());
    let elsewhere = tempfile::tempdir().unwrap();
    let err = FilesRoot::open_split(
        &files,
        &elsewhere.path().join("staging"),
        FilesConfig::default(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("different filesystems"), "{err}");
    assert!(err.to_string().contains("atomic rename"), "{err}");

    // The same filesystem through a second mount (a bind mount): rename fails there too.
    std::fs::create_dir(fs.path().join("state")).unwrap();
    let onto = tempfile::tempdir().unwrap();
    let bind = Mount::bind(&fs.path().join("state"), onto.path());
    let err = FilesRoot::open_split(&files, &bind.path().join("staging"), FilesConfig::default())
        .unwrap_err();
    assert!(err.to_string().contains("different mounts"), "{err}");

    // Staging inside the served tree is refused; beside it, it works.
    let err =
        FilesRoot::open_split(&files, &files.join("staging"), FilesConfig::default()).unwrap_err();
    assert!(err.to_string().contains("inside the served"), "{err}");
    FilesRoot::open_split(
        &files,
        &fs.path().join("state/staging"),
        FilesConfig::default(),
    )
    .unwrap();
    drop(bind);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_split_moves_legacy_staged_uploads() {
    let tmp = tempfile::tempdir().unwrap();
    let (files, staging) = split_layout(tmp.path());
    // What an older server left: a half-uploaded `r.bin` in the root's hidden staging dir.
    let bytes = data::bytes(300_000, 9);
    let name = FilesRoot::staging_name(&sockit_files::RelPath::parse("r.bin").unwrap());
    std::fs::create_dir(files.join(".sockit-staging")).unwrap();
    std::fs::write(files.join(".sockit-staging").join(&name), &bytes[..100_000]).unwrap();

    let server = Server::start_split(&files, &staging, FilesConfig::default()).await;
    assert!(!files.join(".sockit-staging").exists());
    assert_eq!(staged(&staging), vec![(name, 100_000)]);
    let local = tmp.path().join("r.bin");
    std::fs::write(&local, &bytes).unwrap();
    let mut c = server.client().await;
    let r = c
        .put(
            &local,
            "r.bin",
            PutOptions {
                resume: true,
                overwrite: false,
            },
            &mut NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(r.resumed_from, 100_000);
    assert!(std::fs::read(files.join("r.bin")).unwrap() == bytes);
    // Only the file is served: neither staging name is listed.
    let names: Vec<_> = c
        .ls("")
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(names, vec!["r.bin".to_owned()]);
}

/// Every kind of refusal a client can provoke, collected with its code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_error_holds_a_server_path() {
    let fs = Mount::tmpfs("4m");
    let (files, staging) = split_layout(fs.path());
    let outside = fs.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"s").unwrap();
    std::fs::create_dir_all(files.join("adir/sub")).unwrap();
    std::fs::write(files.join("afile"), b"x").unwrap();
    std::os::unix::fs::symlink(&outside, files.join("escape")).unwrap();
    std::os::unix::fs::symlink("loop", files.join("loop")).unwrap();
    let server = Server::start_split(&files, &staging, FilesConfig::default()).await;
    let mut c = Client::connect(&server.addr.to_string(), None, Duration::from_secs(30))
        .await
        .unwrap();

    let long = "a".repeat(300);
    let req = |cmd: &str, path: &str| Header::request(cmd).with("path", path);
    let cases: Vec<(&str, Header, Option<Vec<u8>>, ErrorCode)> = vec![
        (
            "not found",
            req("get", "missing"),
            None,
            ErrorCode::NotFound,
        ),
        (
            "stat not found",
            req("stat", "no/such"),
            None,
            ErrorCode::NotFound,
        ),
        (
            "escape",
            req("get", "escape/secret"),
            None,
            ErrorCode::Denied,
        ),
        ("escape ls", req("ls", "escape"), None, ErrorCode::Denied),
        ("symlink loop", req("get", "loop"), None, ErrorCode::Denied),
        (
            "dir as file",
            req("get", "adir"),
            None,
            ErrorCode::BadRequest,
        ),
        (
            "put onto a dir",
            req("put", "adir").with("size", 3),
            Some(b"abc".to_vec()),
            ErrorCode::BadRequest,
        ),
        (
            "file as dir",
            req("ls", "afile"),
            None,
            ErrorCode::BadRequest,
        ),
        (
            "under a file",
            req("get", "afile/x"),
            None,
            ErrorCode::BadRequest,
        ),
        (
            "missing parent",
            req("put", "nodir/x").with("size", 3),
            Some(b"abc".to_vec()),
            ErrorCode::NotFound,
        ),
        ("rm non-empty", req("rm", "adir"), None, ErrorCode::Exists),
        ("long get", req("get", &long), None, ErrorCode::Denied),
        (
            "long stat",
            req("stat", &format!("adir/{long}")),
            None,
            ErrorCode::Denied,
        ),
        ("long mkdir", req("mkdir", &long), None, ErrorCode::Denied),
        (
            "long put",
            req("put", &long).with("size", 3),
            Some(b"abc".to_vec()),
            ErrorCode::Denied,
        ),
        (
            "absolute",
            req("get", path_str(&outside.join("secret"))),
            None,
            ErrorCode::Denied,
        ),
        (
            "disk full",
            req("put", "full.bin").with("size", 6 << 20),
            Some(data::bytes(6 << 20, 7)),
            ErrorCode::TooLarge,
        ),
    ];
    let mut seen = Vec::new();
    for (what, h, body, want) in cases {
        let r = match body {
            Some(b) => c.request_with_body(&h, b.into()).await,
            None => c.request(&h).await,
        };
        match r {
            Err(ClientError::Remote { code, message }) => {
                assert_eq!(code, want, "{what}: {message}");
                assert!(!message.is_empty(), "{what}");
                assert_no_server_path(&message, fs.path());
                seen.push(format!("{what}: {message}"));
            }
            other => panic!("{what}: expected an error reply, got {other:?}"),
        }
    }
    assert!(
        seen.iter()
            .any(|m| m.contains("nodir does not exist; create it")),
        "{seen:#?}"
    );
    assert!(
        seen.iter().any(|m| m.contains("no space left")),
        "{seen:#?}"
    );
    assert_eq!(staged(&staging), vec![]);
    drop(server);
}
