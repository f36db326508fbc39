//! The terminal UI's model: buffers (status, channels, queries), the input line with its
//! history, and key handling. Pure (no terminal), so it is unit-tested; [`tui`](super::tui)
//! draws it.

use std::collections::VecDeque;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::client::format::{describe, Kind};
use crate::irc::message::Message;
use crate::irc::names;

/// Lines kept per buffer.
const SCROLLBACK: usize = 2000;
/// Input lines remembered.
const HISTORY: usize = 200;
/// The status buffer's name.
pub const STATUS: &str = "(status)";

/// One shown line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewLine {
    /// `HH:MM:SS` when it arrived.
    pub time: String,
    /// Who said it.
    pub nick: Option<String>,
    /// The text.
    pub text: String,
    /// How to style it.
    pub kind: Kind,
}

/// A channel, a query, or the status buffer.
#[derive(Debug, Clone)]
pub struct Buffer {
    /// Its name.
    pub name: String,
    /// Its lines, oldest first.
    pub lines: VecDeque<ViewLine>,
    /// Something arrived while another buffer was shown.
    pub unread: bool,
}

/// What a key press asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyAction {
    /// Nothing beyond redrawing.
    None,
    /// The user entered this line.
    Submit(String),
    /// Ctrl-C: leave.
    Quit,
}

/// The whole UI state.
#[derive(Debug)]
pub struct View {
    /// Buffers; index 0 is the status buffer.
    pub buffers: Vec<Buffer>,
    /// The shown buffer.
    pub active: usize,
    /// The input line.
    pub input: Vec<char>,
    /// Cursor position in `input` (characters).
    pub cursor: usize,
    history: Vec<String>,
    history_pos: Option<usize>,
    /// Our nick.
    pub nick: String,
    /// The server address (status bar).
    pub server: String,
}

impl View {
    /// A view with only the status buffer.
    pub fn new(server: &str, nick: &str) -> Self {
        Self {
            buffers: vec![Buffer {
                name: STATUS.into(),
                lines: VecDeque::new(),
                unread: false,
            }],
            active: 0,
            input: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            history_pos: None,
            nick: nick.into(),
            server: server.into(),
        }
    }

    /// The active channel or query (`None` in the status buffer).
    pub fn target(&self) -> Option<&str> {
        (self.active > 0).then(|| self.buffers[self.active].name.as_str())
    }

    fn index(&mut self, name: &str) -> usize {
        if let Some(i) = self.buffers.iter().position(|b| names::eq(&b.name, name)) {
            return i;
        }
        self.buffers.push(Buffer {
            name: name.to_owned(),
            lines: VecDeque::new(),
            unread: false,
        });
        self.buffers.len() - 1
    }

    /// Shows `name` (opening it if needed).
    pub fn switch(&mut self, name: &str) {
        self.active = self.index(name);
        self.buffers[self.active].unread = false;
    }

    fn push(&mut self, i: usize, line: ViewLine) {
        let b = &mut self.buffers[i];
        b.lines.push_back(line);
        while b.lines.len() > SCROLLBACK {
            b.lines.pop_front();
        }
        if i != self.active {
            b.unread = true;
        }
    }

    /// Adds a line of our own (what we said) to `target`.
    pub fn own(&mut self, time: &str, target: &str, text: &str, action: bool) {
        let i = self.index(target);
        let nick = self.nick.clone();
        self.push(
            i,
            ViewLine {
                time: time.into(),
                nick: Some(nick),
                text: text.into(),
                kind: if action { Kind::Action } else { Kind::Chat },
            },
        );
    }

    /// Adds a note (errors of our own, connection news) to the active buffer.
    pub fn note(&mut self, time: &str, text: &str, kind: Kind) {
        let i = self.active;
        self.push(
            i,
            ViewLine {
                time: time.into(),
                nick: None,
                text: text.into(),
                kind,
            },
        );
    }

    /// Takes in a server message received at `time`.
    pub fn on_message(&mut self, time: &str, m: &Message) {
        let ours = m.source_nick().is_some_and(|n| names::eq(n, &self.nick));
        match m.command.as_str() {
            "001" => {
                if let Some(n) = m.param(0) {
                    self.nick = n.to_owned();
                }
            }
            "NICK" if ours => {
                if let Some(n) = m.param(0) {
                    self.nick = n.to_owned();
                }
            }
            _ => {}
        }
        let Some(s) = describe(m, &self.nick) else {
            return;
        };
        let i = match (&s.buffer, s.kind) {
            (_, Kind::Info) => 0,
            (Some(b), _) => {
                let i = self.index(b);
                if m.command == "JOIN" && ours {
                    self.active = i;
                    self.buffers[i].unread = false;
                }
                i
            }
            (None, _) => self.active,
        };
        self.push(
            i,
            ViewLine {
                time: time.into(),
                nick: s.nick,
                text: s.text,
                kind: s.kind,
            },
        );
        let left = (m.command == "PART" && ours)
            || (m.command == "KICK" && m.param(1).is_some_and(|n| names::eq(n, &self.nick)));
        if left && i > 0 {
            self.buffers.remove(i);
            if self.active >= i {
                self.active = self.active.saturating_sub(1).min(self.buffers.len() - 1);
            }
        }
    }

    /// Handles a key press.
    pub fn on_key(&mut self, key: KeyEvent) -> KeyAction {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c') if ctrl => return KeyAction::Quit,
            KeyCode::Char('d') if ctrl && self.input.is_empty() => return KeyAction::Quit,
            KeyCode::Char('n') if ctrl => self.cycle(1),
            KeyCode::Char('p') if ctrl => self.cycle(-1),
            KeyCode::Char('u') if ctrl => {
                self.input.drain(..self.cursor);
                self.cursor = 0;
            }
            KeyCode::Char(d @ '0'..='9') if alt => {
                let n = d.to_digit(10).unwrap_or(0) as usize;
                let i = if n == 0 { 9 } else { n - 1 };
                if i < self.buffers.len() {
                    self.active = i;
                    self.buffers[i].unread = false;
                }
            }
            KeyCode::Char(c) if !ctrl => {
                self.input.insert(self.cursor, c);
                self.cursor += 1;
            }
            KeyCode::Backspace if self.cursor > 0 => {
                self.cursor -= 1;
                self.input.remove(self.cursor);
            }
            KeyCode::Delete if self.cursor < self.input.len() => {
                self.input.remove(self.cursor);
            }
            KeyCode::Left => self.cursor = self.cursor.saturating_sub(1),
            KeyCode::Right => self.cursor = (self.cursor + 1).min(self.input.len()),
            KeyCode::Home => self.cursor = 0,
            KeyCode::End => self.cursor = self.input.len(),
            KeyCode::Up => self.history_step(-1),
            KeyCode::Down => self.history_step(1),
            KeyCode::PageDown | KeyCode::Tab => self.cycle(1),
            KeyCode::PageUp | KeyCode::BackTab => self.cycle(-1),
            KeyCode::Enter => {
                let line: String = self.input.drain(..).collect();
                self.cursor = 0;
                self.history_pos = None;
                if line.trim().is_empty() {
                    return KeyAction::None;
                }
                if self.history.last() != Some(&line) {
                    self.history.push(line.clone());
                    if self.history.len() > HISTORY {
                        self.history.remove(0);
                    }
                }
                return KeyAction::Submit(line);
            }
            _ => {}
        }
        KeyAction::None
    }

    fn cycle(&mut self, step: isize) {
        let n = self.buffers.len() as isize;
        self.active = (self.active as isize + step).rem_euclid(n) as usize;
        self.buffers[self.active].unread = false;
    }

    fn history_step(&mut self, step: isize) {
        if self.history.is_empty() {
            return;
        }
        let last = self.history.len() as isize - 1;
        let pos = match self.history_pos {
            None if step < 0 => last,
            None => return,
            Some(p) => p as isize + step,
        };
        if pos > last {
            self.history_pos = None;
            self.input.clear();
        } else {
            let pos = pos.max(0) as usize;
            self.history_pos = Some(pos);
            self.input = self.history[pos].chars().collect();
        }
        self.cursor = self.input.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(c: KeyCode) -> KeyEvent {
        KeyEvent::new(c, KeyModifiers::NONE)
    }

    fn typed(v: &mut View, s: &str) -> KeyAction {
        for c in s.chars() {
            v.on_key(key(KeyCode::Char(c)));
        }
        v.on_key(key(KeyCode::Enter))
    }

    fn msg(s: &str) -> Message {
        Message::parse(s.as_bytes()).unwrap()
    }

    #[test]
    fn input_history_and_editing() {
        let mut v = View::new("srv", "me");
        assert_eq!(typed(&mut v, "hello"), KeyAction::Submit("hello".into()));
        assert_eq!(
            typed(&mut v, "/join #c"),
            KeyAction::Submit("/join #c".into())
        );
        v.on_key(key(KeyCode::Up));
        v.on_key(key(KeyCode::Up));
        assert_eq!(v.input.iter().collect::<String>(), "hello");
        v.on_key(key(KeyCode::Down));
        assert_eq!(v.input.iter().collect::<String>(), "/join #c");
        v.on_key(key(KeyCode::Down));
        assert!(v.input.is_empty());
        for c in "abc".chars() {
            v.on_key(key(KeyCode::Char(c)));
        }
        v.on_key(key(KeyCode::Left));
        v.on_key(key(KeyCode::Backspace));
        assert_eq!(v.input.iter().collect::<String>(), "ac");
        assert_eq!(
            v.on_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            KeyAction::Quit
        );
    }

    #[test]
    fn own_join_opens_and_shows_the_channel() {
        let mut v = View::new("srv", "me");
        v.on_message("12:00:00", &msg(":srv 001 me :Welcome"));
        assert_eq!(v.buffers[0].lines.len(), 1);
        v.on_message("12:00:01", &msg(":me!u@h JOIN #c"));
        assert_eq!(v.target(), Some("#c"));
        v.on_message("12:00:02", &msg(":bob!u@h PRIVMSG #c :hi"));
        let last = v.buffers[1].lines.back().unwrap();
        assert_eq!(last.nick.as_deref(), Some("bob"));
        assert_eq!(last.text, "hi");
        v.on_message("12:00:03", &msg(":bob!u@h PRIVMSG me :psst"));
        assert!(v.buffers[2].unread, "a query opens unread");
        v.on_message("12:00:04", &msg(":me!u@h PART #c"));
        assert_eq!(v.buffers.len(), 2);
        assert_eq!(v.buffers[1].name, "bob");
    }
}
