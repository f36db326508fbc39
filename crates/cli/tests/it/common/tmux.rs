//! A private tmux server for driving terminal programs (the chat UI, irssi) in tests.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sockit_testkit::peer;

/// How long a screen may take to show what a test waits for (a hang guard).
const WAIT: Duration = Duration::from_secs(20);

/// A private tmux server (its own socket), killed on drop.
pub struct Tmux {
    socket: String,
    /// `capture-pane -J`: wrapped lines joined back into one.
    join_wrapped: bool,
}

impl Tmux {
    /// Runs `cmd` in a 160×40 session; the screen is read as shown.
    pub fn start(name: &str, cmd: &str) -> Tmux {
        Self::start_with(name, cmd, ("160", "40"), false)
    }

    /// Runs `cmd` in a 200×50 session; the screen is read with wrapped lines joined.
    pub fn start_wide(name: &str, cmd: &str) -> Tmux {
        Self::start_with(name, cmd, ("200", "50"), true)
    }

    fn start_with(name: &str, cmd: &str, (cols, rows): (&str, &str), join_wrapped: bool) -> Tmux {
        let socket = format!("sockit-test-{}-{name}", std::process::id());
        let t = Tmux {
            socket,
            join_wrapped,
        };
        let ok = t
            .cmd(&["new-session", "-d", "-s", "t", "-x", cols, "-y", rows, cmd])
            .status()
            .expect("tmux is needed (scripts/test.sh installs it)")
            .success();
        assert!(ok, "tmux new-session failed");
        t
    }

    /// A tmux command on this server.
    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(peer::require("tmux", "tmux"));
        c.args(["-L", &self.socket]).args(args);
        c
    }

    /// Types `text`, then Enter.
    pub fn keys(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap()
            .success());
        assert!(self
            .cmd(&["send-keys", "-t", "t", "Enter"])
            .status()
            .unwrap()
            .success());
    }

    /// Presses a named key (tmux names: `PPage`, `NPage`, `Tab`, `C-End`).
    pub fn press(&self, key: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "t", key])
            .status()
            .unwrap()
            .success());
    }

    /// Types `text` without pressing Enter.
    pub fn type_text(&self, text: &str) {
        assert!(self
            .cmd(&["send-keys", "-t", "t", "-l", text])
            .status()
            .unwrap()
            .success());
    }

    /// Polls the screen until `pred` holds (bounded).
    pub fn wait_until(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {what}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The screen's text.
    pub fn screen(&self) -> String {
        let join: &[&str] = if self.join_wrapped { &["-J"] } else { &[] };
        let out = self
            .cmd(&["capture-pane", "-p"])
            .args(join)
            .args(["-t", "t"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Polls the screen until it contains `text` (bounded).
    pub fn wait_for(&self, text: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let s = self.screen();
            if s.contains(text) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "screen never showed {text:?}:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the session still runs.
    pub fn alive(&self) -> bool {
        self.cmd(&["has-session", "-t", "t"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.cmd(&["kill-server"]).stderr(Stdio::null()).status();
    }
}
