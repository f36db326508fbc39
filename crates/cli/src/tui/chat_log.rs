//! Per-channel logs of the terminal client, as irssi's autolog writes them: one file per
//! channel or query, `DIR/SERVER/NAME.log`, a line per message with its date and time.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use sockit_chat::client::format::Kind;
use sockit_chat::irc::names;

use super::chat_view::ViewLine;

/// Open log files under one directory.
#[derive(Debug)]
pub struct ChatLog {
    dir: PathBuf,
    files: HashMap<String, File>,
    failed: bool,
}

/// A name made safe as one path component (no separators, no leading dot).
fn component(name: &str) -> String {
    let safe: String = names::fold(name)
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || "#&+-_".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if safe.is_empty() {
        "_".into()
    } else {
        safe
    }
}

/// One log line: `YYYY-MM-DD HH:MM:SS <nick> text` (`* nick text` for actions, `-!- text`
/// for events).
pub fn format_line(date: &str, l: &ViewLine) -> String {
    let nick = l.nick.as_deref().unwrap_or("");
    let body = match l.kind {
        Kind::Chat => format!("<{nick}> {}", l.text),
        Kind::Action => format!("* {nick} {}", l.text),
        Kind::Notice => format!("-{nick}- {}", l.text),
        Kind::Event | Kind::Error | Kind::Presence | Kind::Reply => format!("-!- {}", l.text),
        Kind::Info => l.text.clone(),
    };
    format!("{date} {} {body}", l.time)
}

impl ChatLog {
    /// Logs under `dir/SERVER/` (created when the first line is written).
    pub fn new(dir: &Path, server: &str) -> ChatLog {
        ChatLog {
            dir: dir.join(component(server)),
            files: HashMap::new(),
            failed: false,
        }
    }

    /// Appends `lines` (buffer name, line) to their files. A log that cannot be written
    /// is reported once on stderr and then left alone: chatting goes on.
    pub fn write(&mut self, lines: &[(String, ViewLine)]) {
        if self.failed || lines.is_empty() {
            return;
        }
        let date = chrono::Local::now().format("%Y-%m-%d").to_string();
        for (buffer, line) in lines {
            if let Err(e) = self.append(buffer, &format_line(&date, line)) {
                self.failed = true;
                eprintln!("sockit: chat log in {} stopped: {e}", self.dir.display());
                return;
            }
        }
    }

    fn append(&mut self, buffer: &str, text: &str) -> std::io::Result<()> {
        let key = component(buffer);
        if !self.files.contains_key(&key) {
            std::fs::create_dir_all(&self.dir)?;
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(format!("{key}.log")))?;
            self.files.insert(key.clone(), file);
        }
        match self.files.get_mut(&key) {
            Some(f) => writeln!(f, "{text}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(nick: &str, text: &str, kind: Kind) -> ViewLine {
        ViewLine {
            time: "12:00:01".into(),
            nick: Some(nick.into()),
            text: text.into(),
            kind,
            mention: false,
            history: false,
            msgid: None,
        }
    }

    #[test]
    fn names_become_one_safe_component() {
        assert_eq!(component("#Rust"), "#rust");
        assert_eq!(component("../etc"), "___etc");
        assert_eq!(component("127.0.0.1:6667"), "127_0_0_1_6667");
        assert_eq!(component(""), "_");
    }

    #[test]
    fn lines_go_to_one_file_per_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let mut log = ChatLog::new(dir.path(), "srv:6667");
        log.write(&[
            ("#c".into(), line("bob", "hi", Kind::Chat)),
            ("#c".into(), line("bob", "waves", Kind::Action)),
            ("alice".into(), line("alice", "psst", Kind::Chat)),
        ]);
        let c = std::fs::read_to_string(dir.path().join("srv_6667/#c.log")).unwrap();
        let lines: Vec<&str> = c.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[0].ends_with(" 12:00:01 <bob> hi"), "{c}");
        assert!(lines[1].ends_with(" 12:00:01 * bob waves"), "{c}");
        let q = std::fs::read_to_string(dir.path().join("srv_6667/alice.log")).unwrap();
        assert!(q.ends_with("<alice> psst\n"), "{q}");
    }
}
