//! The real binary syncs trees with a real `sockit serve`: pushed as `HOST:PORT:PATH`,
//! pulled as `:PATH` with `--server`, modes, times, symlinks and empty directories kept,
//! a one-byte edit sent as a small delta; the printed summary and the `--json` summary;
//! `--dry-run` changing nothing; `--delete`; usage errors.

use crate::common::{sockit, SOCKIT};
use sockit_files::meta::{set_symlink_mtime, Mtime};
use sockit_testkit::{
    data,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// 2023-11-14 22:13:20 UTC.
const T: i64 = 1_700_000_000;

/// Size of the large file of the tree.
const BIG: usize = 3 << 20;

fn set_mtime(path: &Path, secs: i64, nsec: u32) {
    let t = Mtime::new(secs, nsec).unwrap();
    set_symlink_mtime(libc::AT_FDCWD, path, t).unwrap();
}

/// One entry of a tree: path, kind, mode (not for symlinks), seconds, nanoseconds, and the
/// content (files) or target (symlinks).
type Entry = (String, &'static str, u32, i64, i64, Vec<u8>);

/// Every entry under `dir`, and `dir` itself as `""`.
fn tree(dir: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
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
    let m = std::fs::metadata(dir).unwrap();
    out.push((
        String::new(),
        "dir",
        m.mode() & 0o7777,
        m.mtime(),
        m.mtime_nsec(),
        Vec::new(),
    ));
    out.sort();
    out
}

/// A tree with a large file, modes, an empty directory and a symlink, all in the past.
fn make_tree(top: &Path) {
    std::fs::create_dir_all(top.join("bin")).unwrap();
    std::fs::create_dir_all(top.join("empty")).unwrap();
    std::fs::write(top.join("big.bin"), data::bytes(BIG, 3)).unwrap();
    std::fs::write(top.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::write(top.join("key"), b"0123456789").unwrap();
    std::os::unix::fs::symlink("bin/tool", top.join("run")).unwrap();
    let mode = |p: &str, m: u32| {
        std::fs::set_permissions(top.join(p), std::fs::Permissions::from_mode(m)).unwrap()
    };
    mode("bin/tool", 0o755);
    mode("key", 0o600);
    mode("empty", 0o700);
    for (i, rel) in ["big.bin", "bin/tool", "key", "run", "empty", "bin", ""]
        .iter()
        .enumerate()
    {
        set_mtime(&top.join(rel), T + 60 * i as i64, 42);
    }
}

fn sync(args: &[&str]) -> std::process::Output {
    let mut cmd = sockit();
    cmd.args(args);
    run(&mut cmd, b"", LIMIT)
}

fn ok(o: &std::process::Output) {
    assert!(o.status.success(), "{}\n{}", stdout(o), stderr(o));
}

fn json(o: &std::process::Output) -> serde_json::Value {
    ok(o);
    serde_json::from_str(stdout(o).trim()).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn sync_pushes_and_pulls_deltas_with_a_summary() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let a = s.addr("framed", "tcp");
    let src = s.path("src");
    make_tree(&src);
    let srv = s.path("root/files/copy");

    // Push, naming the server in the argument (HOST:PORT:PATH).
    let push = sync(&["sync", src.to_str().unwrap(), &format!("{a}:copy")]);
    ok(&push);
    assert_eq!(tree(&srv), tree(&src));
    let err = stderr(&push);
    assert!(
        err.contains(
            "3 files checked: 3 new, 0 updated, 0 unchanged, 0 deleted; 2 directories and 1 symlinks made"
        ),
        "{err}"
    );
    assert!(
        err.contains(&format!("{} bytes of files (", BIG + 20)),
        "{err}"
    );
    assert!(err.contains("bytes on the wire"), "{err}");
    assert!(stdout(&push).is_empty(), "{}", stdout(&push));

    // One byte changed: a small delta, said so in --json.
    let p = src.join("big.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[BIG / 2] ^= 1;
    std::fs::write(&p, &bytes).unwrap();
    set_mtime(&p, T + 1000, 0);
    let v = json(&sync(&[
        "--json",
        "sync",
        src.to_str().unwrap(),
        &format!("{a}:copy"),
    ]));
    assert_eq!(v["changes"], serde_json::json!(["update big.bin"]), "{v}");
    assert_eq!(
        (
            v["files"].as_u64(),
            v["changed"].as_u64(),
            v["same"].as_u64()
        ),
        (Some(3), Some(1), Some(2)),
        "{v}"
    );
    assert_eq!(v["bytes_represented"].as_u64(), Some(BIG as u64), "{v}");
    let wire = v["bytes_on_wire"].as_u64().unwrap();
    assert!(
        wire * 20 < BIG as u64,
        "{wire} bytes on the wire for a 1-byte edit"
    );
    assert_eq!(
        v["delta_bytes"].as_u64().unwrap() + v["signature_bytes"].as_u64().unwrap(),
        wire
    );
    assert_eq!(
        (v["dry_run"].as_bool(), v["deleted"].as_u64()),
        (Some(false), Some(0))
    );
    assert!(v["secs"].as_f64().is_some() && v["bytes_per_sec"].as_u64().is_some());
    assert_eq!(tree(&srv), tree(&src));

    // Pull with --server and :PATH into a new directory, then again after a change.
    let back = s.path("back");
    let v = json(&sync(&[
        "--json",
        "sync",
        "--server",
        &a,
        ":copy",
        back.to_str().unwrap(),
    ]));
    assert_eq!(
        (v["new"].as_u64(), v["symlinks"].as_u64()),
        (Some(3), Some(1)),
        "{v}"
    );
    assert_eq!(tree(&back), tree(&src));
    std::fs::write(srv.join("key"), b"9876543210").unwrap();
    let pull = sync(&["sync", "--server", &a, ":copy", back.to_str().unwrap()]);
    ok(&pull);
    assert!(
        stderr(&pull).contains("3 files checked: 0 new, 1 updated, 2 unchanged, 0 deleted\n"),
        "{}",
        stderr(&pull)
    );
    assert_eq!(tree(&back), tree(&srv));
    assert_eq!(std::fs::read(back.join("key")).unwrap(), b"9876543210");
}

#[test]
fn dry_run_changes_nothing_and_delete_removes() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let a = s.addr("framed", "tcp");
    let src = s.path("src");
    make_tree(&src);
    let srv = s.path("root/files/copy");
    let dest = format!("{a}:copy");
    ok(&sync(&["sync", src.to_str().unwrap(), &dest]));
    let back = s.path("back");
    ok(&sync(&["sync", &dest, back.to_str().unwrap()]));

    std::fs::remove_file(src.join("key")).unwrap();
    std::fs::write(src.join("fresh"), b"new file").unwrap();
    let before = tree(&srv);
    let dry = sync(&["sync", "-n", "--delete", src.to_str().unwrap(), &dest]);
    ok(&dry);
    assert_eq!(stdout(&dry), "new    fresh\ndelete key\n");
    assert!(
        stderr(&dry).contains("(dry run: nothing changed)"),
        "{}",
        stderr(&dry)
    );
    assert_eq!(tree(&srv), before, "--dry-run changed the server's tree");
    let v = json(&sync(&[
        "--json",
        "sync",
        "--dry-run",
        "--delete",
        src.to_str().unwrap(),
        &dest,
    ]));
    assert_eq!(
        (v["dry_run"].as_bool(), v["deleted"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(v["bytes_on_wire"].as_u64(), Some(0));
    assert_eq!(tree(&srv), before);

    // Without --delete the removed file stays; with it, it goes.
    ok(&sync(&["sync", src.to_str().unwrap(), &dest]));
    assert!(srv.join("key").exists() && srv.join("fresh").exists());
    let del = sync(&["sync", "--delete", src.to_str().unwrap(), &dest]);
    ok(&del);
    assert!(stderr(&del).contains(", 1 deleted"), "{}", stderr(&del));
    assert_eq!(tree(&srv), tree(&src));

    // Pulling with --delete removes the local file the server no longer has.
    let pull = sync(&["sync", "-v", "--delete", &dest, back.to_str().unwrap()]);
    ok(&pull);
    assert!(stdout(&pull).contains("delete key"), "{}", stdout(&pull));
    assert_eq!(tree(&back), tree(&src));
}

#[test]
fn sync_needs_exactly_one_remote_side() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    std::fs::create_dir(&a).unwrap();
    let both_local = sync(&[
        "sync",
        a.to_str().unwrap(),
        dir.path().join("b").to_str().unwrap(),
    ]);
    assert_eq!(both_local.status.code(), Some(2), "{}", stderr(&both_local));
    assert!(
        stderr(&both_local).contains("both sides are local"),
        "{}",
        stderr(&both_local)
    );
    let both_remote = sync(&["sync", "h:a", ":b"]);
    assert_eq!(
        both_remote.status.code(),
        Some(2),
        "{}",
        stderr(&both_remote)
    );
    assert!(stderr(&both_remote).contains("both sides are on a server"));
}
