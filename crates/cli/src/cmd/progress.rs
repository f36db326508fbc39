//! The transfer progress bar: rate and ETA on stderr, only when stderr is a terminal.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sockit_files::Progress;

/// The line a finished transfer prints on stderr:
/// `N bytes → TARGET (resumed at M), blake3 H verified`.
pub fn done_line(size: u64, target: &str, resumed_from: u64, blake3: &str) -> String {
    let resumed = if resumed_from > 0 {
        format!(" (resumed at {resumed_from})")
    } else {
        String::new()
    };
    format!("{size} bytes → {target}{resumed}, blake3 {blake3} verified")
}

/// Draws an indicatif bar per transfer (or nothing when stderr is not a terminal / -q).
#[derive(Debug)]
pub struct Bar {
    enabled: bool,
    bar: Option<ProgressBar>,
}

impl Bar {
    /// A bar that draws only if stderr is a terminal and output is not quieted.
    pub fn new(quiet: bool) -> Self {
        Self {
            enabled: !quiet && std::io::stderr().is_terminal(),
            bar: None,
        }
    }
}

impl Progress for Bar {
    fn start(&mut self, name: &str, total: u64, done: u64) {
        if !self.enabled {
            return;
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{msg:20!} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.set_message(name.to_owned());
        bar.set_position(done);
        bar.reset_eta();
        self.bar = Some(bar);
    }

    fn advance(&mut self, n: u64) {
        if let Some(b) = &self.bar {
            b.inc(n);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }

    fn warn(&mut self, message: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("sockit: {message}")),
            None => eprintln!("sockit: {message}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::done_line;

    #[test]
    fn done_line_mentions_resume_only_when_resumed() {
        assert_eq!(
            done_line(10, "a.bin", 0, "ab12"),
            "10 bytes → a.bin, blake3 ab12 verified"
        );
        assert_eq!(
            done_line(10, "a.bin", 4, "ab12"),
            "10 bytes → a.bin (resumed at 4), blake3 ab12 verified"
        );
    }
}
