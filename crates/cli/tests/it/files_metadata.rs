//! The real binary keeps metadata: `put -r` / `get -r` of a tree with modes, times, an
//! empty directory and symlinks, `ls -l` and `stat` showing them, `--json` carrying them.

use crate::common::{sockit, SOCKIT};
use sockit_files::meta::{set_symlink_mtime, Mtime};
use sockit_testkit::{
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

/// 2023-11-14 22:13:20 UTC.
const T: i64 = 1_700_000_000;

fn set_mtime(path: &Path, secs: i64, nsec: u32) {
    let t = Mtime::new(secs, nsec).unwrap();
    if std::fs::symlink_metadata(path).unwrap().is_symlink() {
        set_symlink_mtime(libc::AT_FDCWD, path, t).unwrap();
    } else {
        std::fs::File::open(path)
            .unwrap()
            .set_times(std::fs::FileTimes::new().set_modified(t.to_system_time().unwrap()))
            .unwrap();
    }
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn sockit_utc(args: &[&str]) -> std::process::Output {
    let mut cmd = sockit();
    cmd.env("TZ", "UTC").args(args);
    run(&mut cmd, b"", LIMIT)
}

#[test]
fn trees_keep_metadata_and_ls_l_shows_it() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let a = s.addr("framed", "tcp");
    let tree = s.path("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    std::fs::create_dir_all(tree.join("empty")).unwrap();
    std::fs::write(tree.join("bin/tool"), b"#!/bin/sh\n").unwrap();
    std::fs::write(tree.join("key"), b"0123456789").unwrap();
    std::os::unix::fs::symlink("bin/tool", tree.join("run")).unwrap();
    std::os::unix::fs::symlink("../../outside", tree.join("bin/escape")).unwrap();
    set_mode(&tree.join("bin/tool"), 0o755);
    set_mode(&tree.join("key"), 0o600);
    set_mode(&tree.join("empty"), 0o700);
    for (i, rel) in ["bin/tool", "key", "run", "bin/escape", "empty", "bin"]
        .iter()
        .enumerate()
    {
        set_mtime(&tree.join(rel), T + 60 * i as i64, 42);
    }

    let put = sockit_utc(&["--server", &a, "put", "-r", tree.to_str().unwrap(), "copy"]);
    assert!(put.status.success(), "{}", stderr(&put));
    assert!(stderr(&put).contains("skipped"), "{}", stderr(&put));
    assert!(stderr(&put).contains("bin/escape"), "{}", stderr(&put));

    let ls = sockit_utc(&["--server", &a, "ls", "-l", "copy"]);
    assert!(ls.status.success(), "{}", stderr(&ls));
    let lines: Vec<_> = stdout(&ls).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert!(lines[0].starts_with("drwx"), "{lines:?}");
    assert!(lines[0].ends_with(" 2023-11-14 22:18 bin/"), "{lines:?}");
    assert!(lines[1].starts_with("drwx------ "), "{lines:?}");
    assert!(lines[1].ends_with(" 2023-11-14 22:17 empty/"), "{lines:?}");
    assert!(lines[2].starts_with("-rw------- 10 "), "{lines:?}");
    assert!(lines[2].ends_with(" 2023-11-14 22:14 key"), "{lines:?}");
    assert!(lines[3].starts_with("lrwxrwxrwx  8 "), "{lines:?}");
    assert!(
        lines[3].ends_with(" 2023-11-14 22:15 run -> bin/tool"),
        "{lines:?}"
    );
    let ls = sockit_utc(&["--server", &a, "ls", "-l", "copy/bin"]);
    assert_eq!(
        stdout(&ls).trim(),
        "-rwxr-xr-x 10 2023-11-14 22:13 tool",
        "{}",
        stderr(&ls)
    );

    let st = sockit_utc(&["--server", &a, "stat", "copy/key"]);
    let text = stdout(&st);
    assert!(text.contains("mode:    0600 (-rw-------)"), "{text}");
    assert!(
        text.contains("mtime:   2023-11-14T22:14:20.000000042+00:00"),
        "{text}"
    );
    let st = sockit_utc(&["--server", &a, "stat", "copy/run"]);
    assert!(stdout(&st).contains("kind:    symlink"), "{}", stdout(&st));
    assert!(stdout(&st).contains("target:  bin/tool"), "{}", stdout(&st));

    let ls = sockit_utc(&["--server", &a, "--json", "ls", "copy"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&ls).trim()).unwrap();
    assert_eq!(v[2]["name"], "key");
    assert_eq!(v[2]["mode"], 0o600);
    assert_eq!(v[2]["mtime"], T + 60);
    assert_eq!(v[2]["mtime_nsec"], 42);
    assert_eq!(v[3]["kind"], "symlink");
    assert_eq!(v[3]["target"], "bin/tool");
    let st = sockit_utc(&["--server", &a, "--json", "stat", "copy/bin/tool"]);
    let v: serde_json::Value = serde_json::from_str(stdout(&st).trim()).unwrap();
    assert_eq!(
        (v["mode"].as_u64(), v["mtime"].as_i64()),
        (Some(0o755), Some(T))
    );

    let back = s.path("back");
    let get = sockit_utc(&["--server", &a, "get", "-r", "copy", back.to_str().unwrap()]);
    assert!(get.status.success(), "{}", stderr(&get));
    assert!(stderr(&get).contains("1 symlinks"), "{}", stderr(&get));
    let m = std::fs::metadata(back.join("bin/tool")).unwrap();
    assert_eq!(
        (m.mode() & 0o7777, m.mtime(), m.mtime_nsec()),
        (0o755, T, 42)
    );
    let m = std::fs::metadata(back.join("key")).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o600, T + 60));
    let m = std::fs::metadata(back.join("empty")).unwrap();
    assert!(m.is_dir());
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o700, T + 240));
    assert_eq!(std::fs::read_dir(back.join("empty")).unwrap().count(), 0);
    let m = std::fs::metadata(back.join("bin")).unwrap();
    assert_eq!(m.mtime(), T + 300);
    assert_eq!(
        std::fs::read_link(back.join("run")).unwrap(),
        Path::new("bin/tool")
    );
    let m = std::fs::symlink_metadata(back.join("run")).unwrap();
    assert_eq!(m.mtime(), T + 120);
    assert!(std::fs::symlink_metadata(back.join("bin/escape")).is_err());

    // A single-file get keeps mode and time too, and the JSON summary of a tree says what
    // travelled.
    let one = s.path("one");
    let get = sockit_utc(&[
        "--server",
        &a,
        "get",
        "copy/bin/tool",
        one.to_str().unwrap(),
    ]);
    assert!(get.status.success(), "{}", stderr(&get));
    let m = std::fs::metadata(&one).unwrap();
    assert_eq!((m.mode() & 0o7777, m.mtime()), (0o755, T));
    let again = s.path("again");
    let get = sockit_utc(&[
        "--server",
        &a,
        "--json",
        "get",
        "-r",
        "copy",
        again.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(stdout(&get).trim()).unwrap();
    assert_eq!(
        (v["files"].as_u64(), v["symlinks"].as_u64()),
        (Some(2), Some(1)),
        "{v}"
    );
}
