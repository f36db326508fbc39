//! The addr file: `sockit serve --addr-file PATH` (and `sockit lab serve`) write it
//! atomically once every listener is bound, as JSON (`{"echo": {"tcp": "127.0.0.1:40123"}}`).
//! A test waits for it instead of sleeping.

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// Longest wait for the file before the test fails (a hang guard, not a speed bound).
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Waits until `child` wrote its addr file at `path` and returns its JSON. Fails with the
/// child's stderr (when piped) if it exits first, and after [`PATIENCE`] without a file.
///
/// The file is written by rename, so a file that exists is complete. The wait polls it
/// every 10 ms, checking between polls that the child still runs.
pub fn wait(path: &Path, child: &mut Child) -> serde_json::Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            return serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("addr file {}: {e}: {text:?}", path.display()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            panic!("the server exited with {status} before writing its addr file: {err}");
        }
        assert!(
            Instant::now() < deadline,
            "no addr file at {} after {PATIENCE:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The address string of `service`'s `proto` endpoint in `addrs` (an addr file's JSON).
pub fn endpoint(addrs: &serde_json::Value, service: &str, proto: &str) -> String {
    addrs[service][proto]
        .as_str()
        .unwrap_or_else(|| panic!("no {service}/{proto} in {addrs}"))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn a_written_file_is_read_and_parsed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("addrs.json");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf '{{\"echo\":{{\"tcp\":\"127.0.0.1:7\"}}}}' > {0}.tmp && mv {0}.tmp {0} && exec cat",
                path.display()
            ))
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        let addrs = wait(&path, &mut child);
        assert_eq!(endpoint(&addrs, "echo", "tcp"), "127.0.0.1:7");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    #[should_panic(expected = "exited with exit status: 3 before writing its addr file: boom")]
    fn a_child_that_exits_first_fails_with_its_stderr() {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new("sh")
            .args(["-c", "echo boom >&2; exit 3"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait(&dir.path().join("never.json"), &mut child);
    }
}
