//! `sockit account`: accounts are added, listed and removed in ROOT/state/accounts.db,
//! the password is read from stdin, and only an argon2id hash is stored.

use crate::common::sockit;
use sockit_testkit::process::run;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(60);

fn account(root: &std::path::Path, args: &[&str], stdin: &[u8]) -> std::process::Output {
    let mut c = sockit();
    c.arg("account").arg("--root").arg(root).args(args);
    run(&mut c, stdin, LIMIT)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn add_list_passwd_remove() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let out = account(root, &["add", "alice"], b"correct horse\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("added account alice"));
    let out = account(root, &["add", "bob"], b"battery staple\n");
    assert!(out.status.success(), "{}", text(&out.stderr));

    let out = account(root, &["list"], b"");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "alice\nbob\n");

    // Taken names, bad names and an empty password are refused, and say why.
    let out = account(root, &["add", "alice"], b"x\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("already exists"),
        "{}",
        text(&out.stderr)
    );
    let out = account(root, &["add", "a:b"], b"x\n");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("colon"), "{}", text(&out.stderr));
    let out = account(root, &["add", "carol"], b"\n");
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("no password"),
        "{}",
        text(&out.stderr)
    );

    // Only argon2id hashes on disk, in a private file.
    let db = root.join("state/accounts.db");
    let bytes = std::fs::read(&db).unwrap();
    let hay = String::from_utf8_lossy(&bytes);
    assert!(!hay.contains("correct horse") && !hay.contains("battery staple"));
    assert_eq!(hay.matches("$argon2id$v=19$m=19456,t=2,p=1$").count(), 2);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&db).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    let out = account(root, &["passwd", "alice"], b"new one\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = account(root, &["passwd", "nobody"], b"x\n");
    assert!(!out.status.success());

    let out = account(root, &["remove", "alice"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = account(root, &["remove", "alice"], b"");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no account alice"));
    let out = account(root, &["list"], b"");
    assert_eq!(text(&out.stdout), "bob\n");
}
