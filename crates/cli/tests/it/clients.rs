//! Clients as a new user meets them: the wrong port is named for what it is, `get` does
//! not overwrite without `--force`, `keygen` makes its directory and says an error once.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    process::{run, stderr},
    serve::Serve,
};
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_framed_client_at_the_greet_port_says_what_answered() {
    let s = Serve::start(SOCKIT, &["--only", "greet"]);
    let addr = s.addr("greet", "tcp");
    let o = run(sockit().args(["ping", "--server", &addr]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains(&format!("{addr} is not a framed server: it sent `Welcome!")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn time_at_the_daytime_port_is_not_read_as_a_date() {
    let s = Serve::start(SOCKIT, &["--only", "daytime"]);
    let addr = s.addr("daytime", "tcp");
    let o = run(sockit().args(["time", "--server", &addr]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    assert!(
        stderr(&o).contains(&format!("{addr} is not an RFC 868 time server: it sent `")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn get_keeps_an_existing_local_file_unless_forced() {
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("files")).unwrap();
    std::fs::write(root.path().join("files/report.txt"), b"from the server\n").unwrap();
    let s = Serve::start_in(SOCKIT, root.path(), &["--only", "framed"]);
    let addr = s.addr("framed", "tcp");
    let local = s.dir.path().join("report.txt");
    std::fs::write(&local, b"mine\n").unwrap();

    let o = run(
        sockit()
            .args(["get", "--server", &addr, "report.txt"])
            .arg(&local),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    assert!(stderr(&o).contains("--force"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&local).unwrap(), b"mine\n");

    let o = run(
        sockit()
            .args(["get", "--force", "--server", &addr, "report.txt"])
            .arg(&local),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert_eq!(std::fs::read(&local).unwrap(), b"from the server\n");
}

#[test]
fn keygen_makes_the_directory_and_says_an_error_once() {
    let home = tempfile::tempdir().unwrap();
    let key = home.path().join("config/sockit/server.key");
    let o = run(sockit().arg("keygen").arg(&key), b"", LIMIT);
    assert!(o.status.success(), "{o:?}");
    let text = std::fs::read_to_string(&key).unwrap();
    assert_eq!(text.trim().len(), 64, "a 256-bit key in hex: {text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::fs::metadata(key.parent().unwrap()).unwrap();
        assert_eq!(dir.permissions().mode() & 0o777, 0o700);
    }

    let again = run(sockit().arg("keygen").arg(&key), b"", LIMIT);
    assert_eq!(again.status.code(), Some(1), "{again:?}");
    let err = stderr(&again);
    assert_eq!(err.matches("File exists").count(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        text,
        "the key was kept"
    );
}
