//! Child processes in tests: run one with a time limit, wait for one to exit, read its
//! output line by line as it comes.

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Runs `cmd` with `input` on stdin and its output captured; kills it (SIGKILL) if it
/// still runs after `limit` (a hang guard: the output then shows a signal exit).
pub fn run(cmd: &mut Command, input: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let pid = child.id() as i32;
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
            // SAFETY: signal 0 only checks that the pid exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                return;
            }
        }
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    });
    let out = child.wait_with_output().expect("wait for the child");
    let _ = feeder.join();
    let _ = watchdog.join();
    out
}

/// Waits for `child` to exit, up to `limit`; `None` if it still runs then.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait on a child") {
            return Some(status);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Sends signal `sig` (e.g. `libc::SIGTERM`) to `child`.
pub fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// An output's stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// An output's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Lines of a child's output stream as they arrive, read on a thread (so the child never
/// blocks on a full pipe).
pub struct OutputLines {
    rx: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl OutputLines {
    /// Reads `stream` on a thread until its end.
    pub fn of(stream: impl std::io::Read + Send + 'static) -> OutputLines {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stream).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        OutputLines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for a line containing `needle` (up to `limit`, then fails with what came).
    pub fn wait_for(&mut self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "no line with {needle:?} within {limit:?}; got:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Every line, once the stream has ended (the process exited): all seen so far and
    /// the rest (each further line waited for up to 30 s).
    pub fn rest(&mut self) -> String {
        while let Ok(line) = self.rx.recv_timeout(Duration::from_secs(30)) {
            self.seen.push(line);
        }
        self.seen.join("\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_feeds_stdin_and_captures_both_streams() {
        let o = run(
            Command::new("sh").args(["-c", "cat; echo err >&2"]),
            b"hello",
            Duration::from_secs(60),
        );
        assert!(o.status.success(), "{o:?}");
        assert_eq!(stdout(&o), "hello");
        assert_eq!(stderr(&o), "err\n");
    }

    #[test]
    fn run_kills_a_command_past_its_limit() {
        use std::os::unix::process::ExitStatusExt;
        let o = run(
            Command::new("sh").args(["-c", "exec sleep 600"]),
            b"",
            Duration::from_millis(50),
        );
        assert_eq!(o.status.signal(), Some(libc::SIGKILL));
    }

    #[test]
    fn output_lines_waits_for_a_line_and_keeps_the_rest() {
        let mut child = Command::new("sh")
            .args(["-c", "echo one; echo two; echo three"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = OutputLines::of(child.stdout.take().unwrap());
        assert_eq!(lines.wait_for("tw", Duration::from_secs(60)), "two");
        assert_eq!(lines.rest(), "one\ntwo\nthree");
        let status = wait_child(&mut child, Duration::from_secs(60)).expect("sh exits");
        assert!(status.success());
    }
}
