//! The terminal UI's model: buffers (status, channels, queries) with their scrollback,
//! topic and nick list, who is away, the input line with its history and nick
//! completion, and key handling. Pure (no terminal), so it is unit-tested;
//! [`chat`](super::chat) draws it and sends the [`Request`]s it makes (a query's
//! history when its window opens, a WHO for the away state of a channel just joined).

use std::collections::{BTreeMap, VecDeque};

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use sockit_chat::client::connection::msgid;
use sockit_chat::client::format::{describe, Kind};
use sockit_chat::client::presence::{Change, Presence};
use sockit_chat::client::replies::{Place, Replies};
use sockit_chat::irc::message::Message;
use sockit_chat::irc::names;

/// Lines kept per buffer.
const SCROLLBACK: usize = 2000;
/// Input lines remembered.
const HISTORY: usize = 200;
/// The status buffer's name.
pub const STATUS: &str = "(status)";

/// One shown line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViewLine {
    /// `HH:MM:SS`: the server's time (server-time) in local time, else when it arrived.
    pub time: String,
    /// Who said it.
    pub nick: Option<String>,
    /// The text.
    pub text: String,
    /// How to style it.
    pub kind: Kind,
    /// It names us (our nick as a word): shown highlighted.
    pub mention: bool,
    /// Fetched history (chathistory): shown dim, not logged.
    pub history: bool,
    /// The server's id of the message (`msgid`): a history line already shown live is
    /// not shown twice.
    pub msgid: Option<String>,
}

/// Something the view needs sent to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// The history of a query window that just opened (`CHATHISTORY LATEST nick`).
    History(String),
    /// `WHO #channel` for the away state of its members (with `away-notify`); the
    /// replies update the nick list and are not shown.
    Who(String),
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
    /// A line naming us arrived while another buffer was shown.
    pub mentioned: bool,
    /// Lines scrolled up from the newest (0: following the newest line).
    pub scroll: usize,
    /// The channel's topic.
    pub topic: Option<String>,
    /// The channel's members: folded nick → (prefix such as `@`, nick as written).
    pub nicks: BTreeMap<String, (String, String)>,
    /// Where fetched history goes: before our last JOIN line in a channel, before the
    /// first line in a query.
    history_at: Option<usize>,
}

impl Buffer {
    fn new(name: &str) -> Buffer {
        Buffer {
            name: name.to_owned(),
            lines: VecDeque::new(),
            unread: false,
            mentioned: false,
            scroll: 0,
            topic: None,
            nicks: BTreeMap::new(),
            history_at: (!names::is_channel(name)).then_some(0),
        }
    }

    /// The members, operators first, then voiced, then the rest, each by name.
    pub fn members(&self) -> Vec<(String, String)> {
        let rank = |prefix: &str| match prefix.chars().next() {
            Some('~') => 0,
            Some('&') => 1,
            Some('@') => 2,
            Some('%') => 3,
            Some('+') => 4,
            _ => 5,
        };
        let mut m: Vec<(String, String)> = self.nicks.values().cloned().collect();
        m.sort_by_key(|(prefix, nick)| (rank(prefix), nick.to_lowercase()));
        m
    }

    fn add_nick(&mut self, with_prefix: &str) {
        let nick = with_prefix.trim_start_matches(['~', '&', '@', '%', '+']);
        if nick.is_empty() {
            return;
        }
        let prefix = &with_prefix[..with_prefix.len() - nick.len()];
        self.nicks
            .insert(names::fold(nick), (prefix.to_owned(), nick.to_owned()));
    }

    fn remove_nick(&mut self, nick: &str) -> bool {
        self.nicks.remove(&names::fold(nick)).is_some()
    }
}

/// An in-progress Tab completion: where the word starts and the candidates cycled through.
#[derive(Debug, Clone)]
struct Completion {
    start: usize,
    candidates: Vec<String>,
    next: usize,
}

/// Whether `text` names `nick` as a word (case-insensitively, as IRC folds nicks).
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let folded = names::fold(text);
    let want = names::fold(nick);
    let word = |c: char| c.is_alphanumeric() || "-_[]{}\\`^|".contains(c);
    folded.match_indices(&want).any(|(i, m)| {
        let before = folded[..i].chars().next_back();
        let after = folded[i + m.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
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
    completion: Option<Completion>,
    /// Rows of the message area, for paging (set by the drawing side).
    pub page: usize,
    /// Lines added since the last [`View::take_log`], when logging is on.
    log: Option<Vec<(String, ViewLine)>>,
    /// Our nick.
    pub nick: String,
    /// The server address (status bar).
    pub server: String,
    /// Who is away (the nick list dims them), and whether we are.
    pub presence: Presence,
    replies: Replies,
    requests: Vec<Request>,
    /// Channels whose automatic WHO is under way (its replies are not shown).
    quiet_who: Vec<String>,
    /// The server sends `away-notify`: a WHO after each join gives who is away already.
    pub away_notify: bool,
}

impl View {
    /// A view with only the status buffer.
    pub fn new(server: &str, nick: &str) -> Self {
        Self {
            buffers: vec![Buffer::new(STATUS)],
            active: 0,
            input: Vec::new(),
            cursor: 0,
            history: Vec::new(),
            history_pos: None,
            completion: None,
            page: 20,
            log: None,
            nick: nick.into(),
            server: server.into(),
            presence: Presence::new(),
            replies: Replies::new(),
            requests: Vec::new(),
            quiet_who: Vec::new(),
            away_notify: false,
        }
    }

    /// The requests made since the last call, in order.
    pub fn take_requests(&mut self) -> Vec<Request> {
        std::mem::take(&mut self.requests)
    }

    /// Opens the buffer `name` without showing it (a query window opening asks for its
    /// history).
    pub fn open(&mut self, name: &str) {
        self.index(name);
    }

    /// Notes a message we send (the reason of `/away` for the 306 that confirms it).
    pub fn sent(&mut self, m: &Message) {
        self.presence.sent(m);
    }

    /// The buffers where a line about `nick` belongs: the channels it is in and its query.
    fn buffers_of(&self, nick: &str) -> Vec<usize> {
        let key = names::fold(nick);
        (1..self.buffers.len())
            .filter(|&i| {
                let b = &self.buffers[i];
                if names::is_channel(&b.name) {
                    b.nicks.contains_key(&key)
                } else {
                    names::eq(&b.name, nick)
                }
            })
            .collect()
    }

    /// An open buffer by name.
    fn find(&self, name: &str) -> Option<usize> {
        self.buffers.iter().position(|b| names::eq(&b.name, name))
    }

    /// The active channel or query (`None` in the status buffer).
    pub fn target(&self) -> Option<&str> {
        (self.active > 0).then(|| self.buffers[self.active].name.as_str())
    }

    fn index(&mut self, name: &str) -> usize {
        if let Some(i) = self.buffers.iter().position(|b| names::eq(&b.name, name)) {
            return i;
        }
        self.buffers.push(Buffer::new(name));
        if !names::is_channel(name) && names::valid_nick(name) {
            self.requests.push(Request::History(name.to_owned()));
        }
        self.buffers.len() - 1
    }

    /// Keeps every line added to a channel or query for [`View::take_log`].
    pub fn keep_log(&mut self) {
        self.log = Some(Vec::new());
    }

    /// The lines added to channels and queries since the last call (buffer name, line).
    pub fn take_log(&mut self) -> Vec<(String, ViewLine)> {
        self.log.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Scrolls the active buffer `rows` lines up (negative: down), within its lines.
    pub fn scroll_by(&mut self, rows: isize) {
        let b = &mut self.buffers[self.active];
        let max = b.lines.len().saturating_sub(1);
        b.scroll = (b.scroll as isize + rows).clamp(0, max as isize) as usize;
    }

    /// Shows `name` (opening it if needed).
    pub fn switch(&mut self, name: &str) {
        let i = self.index(name);
        self.show(i);
    }

    fn show(&mut self, i: usize) {
        self.active = i;
        self.buffers[i].unread = false;
        self.buffers[i].mentioned = false;
    }

    fn push(&mut self, i: usize, mut line: ViewLine) {
        line.mention = matches!(line.kind, Kind::Chat | Kind::Action | Kind::Notice)
            && line
                .nick
                .as_deref()
                .is_some_and(|n| !names::eq(n, &self.nick))
            && mentions(&line.text, &self.nick);
        let logged = i > 0 && !line.history && line.kind != Kind::Reply;
        if let Some(log) = self.log.as_mut().filter(|_| logged) {
            log.push((self.buffers[i].name.clone(), line.clone()));
        }
        let b = &mut self.buffers[i];
        let mention = line.mention;
        // Someone going away or coming back is not news enough to mark a buffer.
        let news = line.kind != Kind::Presence;
        b.lines.push_back(line);
        while b.lines.len() > SCROLLBACK {
            b.lines.pop_front();
            b.history_at = b.history_at.and_then(|j| j.checked_sub(1));
        }
        if b.scroll > 0 {
            // Reading the past: keep the same lines on screen.
            b.scroll = (b.scroll + 1).min(b.lines.len().saturating_sub(1));
        }
        if i != self.active && news {
            b.unread = true;
            b.mentioned |= mention;
        }
    }

    /// Keeps topics and nick lists up to date from what the server says.
    fn track(&mut self, m: &Message) {
        let from = m.source_nick().unwrap_or("").to_owned();
        let p = |i: usize| m.param(i).unwrap_or("");
        match m.command.as_str() {
            "353" => {
                let i = self.index(p(2));
                for n in m.params.last().map(String::as_str).unwrap_or("").split(' ') {
                    // userhost-in-names gives nick!user@host.
                    self.buffers[i].add_nick(n.split('!').next().unwrap_or(n));
                }
            }
            "332" => {
                let i = self.index(p(1));
                self.buffers[i].topic = Some(p(2).to_owned());
            }
            "TOPIC" => {
                let i = self.index(p(0));
                self.buffers[i].topic = Some(p(1).to_owned()).filter(|t| !t.is_empty());
            }
            "JOIN" => {
                let i = self.index(p(0));
                if names::eq(&from, &self.nick) {
                    // (Re)joined: the names that follow are the whole list.
                    self.buffers[i].nicks.clear();
                }
                self.buffers[i].add_nick(&from);
            }
            "PART" => {
                if let Some(b) = self.buffers.iter_mut().find(|b| names::eq(&b.name, p(0))) {
                    b.remove_nick(&from);
                }
            }
            "KICK" => {
                if let Some(b) = self.buffers.iter_mut().find(|b| names::eq(&b.name, p(0))) {
                    b.remove_nick(p(1));
                }
            }
            "QUIT" => {
                for b in &mut self.buffers {
                    b.remove_nick(&from);
                }
            }
            "NICK" => {
                for b in &mut self.buffers {
                    if let Some((prefix, _)) = b.nicks.remove(&names::fold(&from)) {
                        b.nicks.insert(names::fold(p(0)), (prefix, p(0).to_owned()));
                    }
                }
            }
            "MODE" if names::is_channel(p(0)) => {
                let Some(b) = self.buffers.iter_mut().find(|b| names::eq(&b.name, p(0))) else {
                    return;
                };
                let mut adding = true;
                let mut args = m.params.iter().skip(2);
                for c in p(1).chars() {
                    match c {
                        '+' => adding = true,
                        '-' => adding = false,
                        'o' | 'v' => {
                            let Some(nick) = args.next() else { break };
                            let key = names::fold(nick);
                            if let Some(entry) = b.nicks.get_mut(&key) {
                                let mark = if c == 'o' { '@' } else { '+' };
                                entry.0.retain(|x| x != mark);
                                if adding {
                                    entry.0.insert(0, mark);
                                }
                                let mut marks: Vec<char> = entry.0.chars().collect();
                                marks.sort_by_key(|m| "@+".find(*m).unwrap_or(9));
                                entry.0 = marks.into_iter().collect();
                            }
                        }
                        // Modes with a parameter that is not a member.
                        'b' | 'e' | 'I' | 'k' => {
                            args.next();
                        }
                        'l' if adding => {
                            args.next();
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
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
                mention: false,
                history: false,
                msgid: None,
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
                mention: false,
                history: false,
                msgid: None,
            },
        );
    }

    /// Adds a line of `kind` without a nick to buffer `i`.
    fn status_line(&mut self, i: usize, time: &str, text: String, kind: Kind) {
        self.push(
            i,
            ViewLine {
                time: time.into(),
                nick: None,
                text,
                kind,
                mention: false,
                history: false,
                msgid: None,
            },
        );
    }

    /// Takes in history fetched for `target` (each message with its time), oldest
    /// first: the lines go before our JOIN line in a channel, before the first line in a
    /// query (or at the end), marked history; a line already shown (same `msgid`) is
    /// left out. History does not mark a buffer unread: it is old news.
    pub fn on_history(&mut self, target: &str, messages: &[(String, Message)]) {
        let i = self.index(target);
        let at = self.buffers[i].history_at;
        let mut added = Vec::new();
        for (time, m) in messages {
            let Some(s) = describe(m, &self.nick) else {
                continue;
            };
            let id = msgid(m);
            // Without msgids (another server): the same nick and text shown live.
            let seen = self.buffers[i].lines.iter().any(|l| match (&id, &l.msgid) {
                (Some(_), _) => l.msgid == id,
                (None, None) => !l.history && l.nick == s.nick && l.text == s.text,
                (None, Some(_)) => false,
            });
            if seen {
                continue;
            }
            added.push(ViewLine {
                time: time.clone(),
                nick: s.nick,
                text: s.text,
                kind: s.kind,
                mention: false,
                history: true,
                msgid: id,
            });
        }
        if added.is_empty() {
            return;
        }
        let b = &mut self.buffers[i];
        let n = added.len();
        let at = at.unwrap_or(b.lines.len()).min(b.lines.len());
        for (k, l) in added.into_iter().enumerate() {
            b.lines.insert(at + k, l);
        }
        b.history_at = b.history_at.map(|j| j + n);
        while b.lines.len() > SCROLLBACK {
            b.lines.pop_front();
            b.history_at = b.history_at.and_then(|j| j.checked_sub(1));
        }
    }

    /// Takes in a server message received at `time`.
    pub fn on_message(&mut self, time: &str, m: &Message) {
        let ours = m.source_nick().is_some_and(|n| names::eq(n, &self.nick));
        let from = m.source_nick().unwrap_or("").to_owned();
        // Lines about a user go to each channel it is in and to its query (found before
        // a QUIT or NICK changes the nick lists).
        let spread = matches!(m.command.as_str(), "QUIT" | "NICK" | "AWAY") && !from.is_empty();
        let fan = if spread {
            self.buffers_of(&from)
        } else {
            Vec::new()
        };
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
        let change = self.presence.on_message(m, &self.nick);
        self.track(m);
        let p1 = m.param(1).unwrap_or("");
        let quiet = self.quiet_who.iter().position(|c| names::eq(c, p1));
        match (m.command.as_str(), quiet) {
            ("352", Some(_)) => return,
            ("315", Some(k)) => {
                self.quiet_who.remove(k);
                return;
            }
            _ => {}
        }
        if let Some(c @ (Change::OwnAway(_) | Change::OwnBack)) = &change {
            let i = self.active;
            self.status_line(i, time, c.text(), Kind::Reply);
            return;
        }
        if let Some(r) = self.replies.on_message(m, &chrono::Local) {
            let i = match &r.place {
                Place::Active => None,
                Place::Channel(name) | Place::Query(name) => self.find(name),
            }
            .unwrap_or(self.active);
            for line in r.lines {
                self.status_line(i, time, line, Kind::Reply);
            }
            return;
        }
        let Some(s) = describe(m, &self.nick) else {
            return;
        };
        if spread {
            if fan.is_empty() && m.command == "AWAY" {
                return;
            }
            let msgid = msgid(m);
            for i in if fan.is_empty() {
                vec![self.active]
            } else {
                fan
            } {
                self.push(
                    i,
                    ViewLine {
                        time: time.into(),
                        nick: s.nick.clone(),
                        text: s.text.clone(),
                        kind: s.kind,
                        mention: false,
                        history: false,
                        msgid: msgid.clone(),
                    },
                );
            }
            return;
        }
        let i = match (&s.buffer, s.kind) {
            (_, Kind::Info) => 0,
            (Some(b), _) => {
                let i = self.index(b);
                if m.command == "JOIN" && ours {
                    self.show(i);
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
                mention: false,
                history: false,
                msgid: msgid(m),
            },
        );
        if m.command == "JOIN" && ours && i > 0 {
            self.buffers[i].history_at = Some(self.buffers[i].lines.len() - 1);
            if self.away_notify {
                let chan = self.buffers[i].name.clone();
                self.quiet_who.push(chan.clone());
                self.requests.push(Request::Who(chan));
            }
        }
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
        if key.code != KeyCode::Tab {
            self.completion = None;
        }
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
                    self.show(i);
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
            KeyCode::End if ctrl => self.buffers[self.active].scroll = 0,
            KeyCode::End => self.cursor = self.input.len(),
            KeyCode::Up => self.history_step(-1),
            KeyCode::Down => self.history_step(1),
            KeyCode::PageUp => self.scroll_by(self.page.max(2) as isize - 1),
            KeyCode::PageDown => self.scroll_by(1 - self.page.max(2) as isize),
            KeyCode::Tab => self.complete(),
            KeyCode::BackTab => self.cycle(-1),
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
        let i = (self.active as isize + step).rem_euclid(n) as usize;
        self.show(i);
    }

    /// Tab: completes the word before the cursor to a member's nick (then `: ` at the start
    /// of the line, as irssi does); Tab again cycles through the other matches.
    fn complete(&mut self) {
        let c = match self.completion.take() {
            Some(c) => c,
            None => {
                let start = self.input[..self.cursor]
                    .iter()
                    .rposition(|c| c.is_whitespace())
                    .map_or(0, |i| i + 1);
                let word: String = self.input[start..self.cursor].iter().collect();
                if word.is_empty() {
                    return;
                }
                let folded = names::fold(&word);
                let mut candidates: Vec<String> = self.buffers[self.active]
                    .nicks
                    .values()
                    .map(|(_, n)| n.clone())
                    .filter(|n| names::fold(n).starts_with(&folded) && !names::eq(n, &self.nick))
                    .collect();
                candidates.sort_by_key(|n| n.to_lowercase());
                if candidates.is_empty() {
                    return;
                }
                Completion {
                    start,
                    candidates,
                    next: 0,
                }
            }
        };
        let nick = &c.candidates[c.next % c.candidates.len()];
        let suffix = if c.start == 0 { ": " } else { " " };
        let replacement: Vec<char> = format!("{nick}{suffix}").chars().collect();
        let end = self.cursor;
        self.input.splice(c.start..end, replacement.iter().copied());
        self.cursor = c.start + replacement.len();
        self.completion = Some(Completion {
            next: c.next + 1,
            ..c
        });
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

    fn joined(v: &mut View) {
        v.on_message("12:00:00", &msg(":srv 001 me :Welcome"));
        v.on_message("12:00:01", &msg(":me!u@h JOIN #c"));
        v.on_message(
            "12:00:01",
            &msg(":srv 353 me = #c :@me +Bob bobby carol alice!a@h"),
        );
        v.on_message("12:00:01", &msg(":srv 332 me #c :the topic"));
    }

    #[test]
    fn names_topic_and_member_changes_are_tracked() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        let b = &v.buffers[v.active];
        assert_eq!(b.topic.as_deref(), Some("the topic"));
        let members: Vec<String> = b.members().into_iter().map(|(p, n)| p + &n).collect();
        assert_eq!(members, ["@me", "+Bob", "alice", "bobby", "carol"]);
        v.on_message("12:00:02", &msg(":dave!u@h JOIN #c"));
        v.on_message("12:00:02", &msg(":carol!u@h PART #c"));
        v.on_message("12:00:02", &msg(":bobby!u@h NICK robert"));
        v.on_message("12:00:02", &msg(":me!u@h MODE #c +o-v alice Bob"));
        v.on_message("12:00:02", &msg(":me!u@h TOPIC #c :new topic"));
        let b = &v.buffers[v.active];
        let members: Vec<String> = b.members().into_iter().map(|(p, n)| p + &n).collect();
        assert_eq!(members, ["@alice", "@me", "Bob", "dave", "robert"]);
        assert_eq!(b.topic.as_deref(), Some("new topic"));
        v.on_message("12:00:03", &msg(":dave!u@h QUIT :bye"));
        assert!(!v.buffers[v.active].nicks.contains_key("dave"));
    }

    #[test]
    fn tab_completes_nicks_and_cycles() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        for c in "bo".chars() {
            v.on_key(key(KeyCode::Char(c)));
        }
        v.on_key(key(KeyCode::Tab));
        assert_eq!(v.input.iter().collect::<String>(), "Bob: ");
        v.on_key(key(KeyCode::Tab));
        assert_eq!(v.input.iter().collect::<String>(), "bobby: ");
        v.on_key(key(KeyCode::Tab));
        assert_eq!(v.input.iter().collect::<String>(), "Bob: ");
        // Mid-line: a space, not `: `; our own nick is never offered.
        for c in "hi al".chars() {
            v.on_key(key(KeyCode::Char(c)));
        }
        v.on_key(key(KeyCode::Tab));
        assert_eq!(v.input.iter().collect::<String>(), "Bob: hi alice ");
        v.input.clear();
        v.cursor = 0;
        v.on_key(key(KeyCode::Char('m')));
        v.on_key(key(KeyCode::Tab));
        assert_eq!(v.input.iter().collect::<String>(), "m");
    }

    #[test]
    fn lines_naming_us_are_mentions_and_mark_their_buffer() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        v.on_message("12:00:02", &msg(":bob!u@h PRIVMSG #c :hey me, look"));
        v.on_message("12:00:02", &msg(":bob!u@h PRIVMSG #c :meme time"));
        let lines: Vec<bool> = v.buffers[1].lines.iter().map(|l| l.mention).collect();
        assert_eq!(lines[lines.len() - 2..], [true, false]);
        v.switch(STATUS);
        v.on_message("12:00:03", &msg(":bob!u@h PRIVMSG #c :ME?"));
        assert!(v.buffers[1].mentioned && v.buffers[1].unread);
        v.on_key(key(KeyCode::Char('n')));
        v.on_key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL));
        assert!(!v.buffers[1].mentioned, "showing a buffer clears its mark");
        assert!(mentions("ping (me)!", "me") && !mentions("some", "me") && !mentions("[me]", "me"));
    }

    #[test]
    fn page_up_scrolls_back_and_new_lines_keep_the_view() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        for i in 0..50 {
            v.on_message("12:00:02", &msg(&format!(":bob!u@h PRIVMSG #c :line {i}")));
        }
        v.page = 10;
        v.on_key(key(KeyCode::PageUp));
        assert_eq!(v.buffers[1].scroll, 9);
        v.on_message("12:00:03", &msg(":bob!u@h PRIVMSG #c :newer"));
        assert_eq!(v.buffers[1].scroll, 10, "the same lines stay on screen");
        v.on_key(key(KeyCode::PageDown));
        assert_eq!(v.buffers[1].scroll, 1);
        v.on_key(key(KeyCode::PageDown));
        assert_eq!(v.buffers[1].scroll, 0);
        for _ in 0..20 {
            v.on_key(key(KeyCode::PageUp));
        }
        assert_eq!(v.buffers[1].scroll, v.buffers[1].lines.len() - 1);
        v.on_key(KeyEvent::new(KeyCode::End, KeyModifiers::CONTROL));
        assert_eq!(v.buffers[1].scroll, 0);
    }

    #[test]
    fn history_goes_before_the_join_dim_and_unlogged() {
        let mut v = View::new("srv", "me");
        v.keep_log();
        joined(&mut v);
        v.on_message("12:00:05", &msg(":bob!u@h PRIVMSG #c :live"));
        v.on_history(
            "#c",
            &[
                ("09:00:00".into(), msg(":bob!u@h PRIVMSG #c :old one")),
                ("09:00:01".into(), msg(":carol!u@h PRIVMSG #c :old two")),
            ],
        );
        let lines: Vec<(&str, &str, bool)> = v.buffers[1]
            .lines
            .iter()
            .map(|l| (l.time.as_str(), l.text.as_str(), l.history))
            .collect();
        assert_eq!(lines[0], ("09:00:00", "old one", true));
        assert_eq!(lines[1], ("09:00:01", "old two", true));
        assert_eq!(lines[2], ("12:00:01", "me has joined #c", false));
        assert_eq!(lines.last().unwrap(), &("12:00:05", "live", false));
        let log = v.take_log();
        assert!(log.iter().all(|(_, l)| !l.history), "{log:?}");
        assert!(log.iter().any(|(_, l)| l.text == "live"));
    }

    #[test]
    fn each_line_keeps_the_time_it_was_given() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        v.on_message("03:04:05", &msg(":bob!u@h PRIVMSG #c :hi"));
        assert_eq!(v.buffers[1].lines.back().unwrap().time, "03:04:05");
    }

    #[test]
    fn a_rejoin_replaces_the_nick_list() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        v.on_message("12:00:09", &msg(":me!u@h JOIN #c"));
        v.on_message("12:00:09", &msg(":srv 353 me = #c :@me dave"));
        let members: Vec<String> = v.buffers[1]
            .members()
            .into_iter()
            .map(|(p, n)| p + &n)
            .collect();
        assert_eq!(members, ["@me", "dave"]);
    }

    #[test]
    fn logging_collects_channel_lines_only() {
        let mut v = View::new("srv", "me");
        v.keep_log();
        joined(&mut v);
        v.on_message("12:00:02", &msg(":bob!u@h PRIVMSG #c :hi"));
        let log = v.take_log();
        assert!(log.iter().all(|(b, _)| b == "#c"), "{log:?}");
        assert!(log.iter().any(|(_, l)| l.text == "hi"));
        assert!(v.take_log().is_empty());
    }

    fn texts(b: &Buffer) -> Vec<String> {
        b.lines.iter().map(|l| l.text.clone()).collect()
    }

    #[test]
    fn away_changes_show_in_shared_channels_and_mark_the_nick_list() {
        let mut v = View::new("srv", "me");
        v.away_notify = true;
        joined(&mut v);
        assert_eq!(v.take_requests(), [Request::Who("#c".into())]);
        // The automatic WHO marks who is away already and shows nothing.
        let before = v.buffers[1].lines.len();
        v.on_message("12:00:01", &msg(":srv 352 me #c ~a h srv alice G :0 A"));
        v.on_message("12:00:01", &msg(":srv 352 me #c ~c h srv carol H :0 C"));
        v.on_message("12:00:01", &msg(":srv 315 me #c :End of /WHO list"));
        assert_eq!(v.buffers[1].lines.len(), before);
        assert!(
            v.buffers[0].lines.len() <= 1,
            "nothing in the status buffer"
        );
        assert!(v.presence.is_away("alice") && !v.presence.is_away("carol"));
        // A second channel shared with carol, and a query with bob (not in #d).
        v.on_message("12:00:02", &msg(":me!u@h JOIN #d"));
        v.on_message("12:00:02", &msg(":srv 353 me = #d :me carol"));
        v.on_message("12:00:02", &msg(":bob!u@h PRIVMSG me :hi"));
        v.on_message("12:00:03", &msg(":carol!u@h AWAY :lunch"));
        for name in ["#c", "#d"] {
            let b = &v.buffers[v.find(name).unwrap()];
            let last = b.lines.back().unwrap();
            assert_eq!(
                (last.text.as_str(), last.kind),
                ("carol is away: lunch", Kind::Presence)
            );
        }
        let q = v.find("bob").unwrap();
        assert!(!texts(&v.buffers[q]).iter().any(|t| t.contains("carol")));
        let d = v.find("#d").unwrap();
        v.switch("#c");
        v.buffers[d].unread = false;
        v.on_message("12:00:03", &msg(":carol!u@h AWAY :still lunch"));
        assert!(!v.buffers[d].unread, "an away line is not news");
        assert!(v.presence.is_away("carol"));
        v.on_message("12:00:04", &msg(":carol!u@h AWAY"));
        assert_eq!(
            v.buffers[1].lines.back().unwrap().text,
            "carol is back",
            "in #c"
        );
        assert!(!v.presence.is_away("carol"));
        // Someone sharing nothing with us: no line anywhere.
        let count: usize = v.buffers.iter().map(|b| b.lines.len()).sum();
        v.on_message("12:00:05", &msg(":zed!u@h AWAY :x"));
        assert_eq!(
            v.buffers.iter().map(|b| b.lines.len()).sum::<usize>(),
            count
        );
        // A quit shows in each channel the nick was in.
        v.on_message("12:00:06", &msg(":carol!u@h QUIT :bye"));
        for name in ["#c", "#d"] {
            let b = &v.buffers[v.find(name).unwrap()];
            assert_eq!(b.lines.back().unwrap().text, "carol has quit (bye)");
        }
    }

    #[test]
    fn our_away_is_confirmed_with_the_reason_and_shown_in_the_status_bar_state() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        v.sent(&Message::new("AWAY", vec!["brb".into()]));
        v.on_message(
            "12:00:02",
            &msg(":srv 306 me :You have been marked as being away"),
        );
        let last = v.buffers[1].lines.back().unwrap();
        assert_eq!(
            (last.text.as_str(), last.kind),
            ("You are now marked as away: brb", Kind::Reply)
        );
        assert_eq!(v.presence.own(), Some("brb"));
        v.on_message(
            "12:00:03",
            &msg(":srv 305 me :You are no longer marked as being away"),
        );
        assert_eq!(
            v.buffers[1].lines.back().unwrap().text,
            "You are no longer marked as away"
        );
        assert_eq!(v.presence.own(), None);
    }

    #[test]
    fn a_whois_block_goes_to_the_active_buffer_unlogged() {
        let mut v = View::new("srv", "me");
        v.keep_log();
        joined(&mut v);
        v.take_log();
        for l in [
            ":srv 311 me bob ~bob h * :Bob",
            ":srv 319 me bob :#c",
            ":srv 312 me bob irc.test :sockit IRC server",
            ":srv 301 me bob :lunch",
            ":srv 318 me bob :End of /WHOIS list",
        ] {
            v.on_message("12:00:02", &msg(l));
        }
        let t = texts(&v.buffers[1]);
        assert_eq!(
            t[t.len() - 6..],
            [
                "bob [~bob@h]",
                " ircname  : Bob",
                " channels : #c",
                " server   : irc.test [sockit IRC server]",
                " away     : lunch",
                "End of WHOIS",
            ]
        );
        assert!(v.take_log().is_empty(), "replies are not logged");
        // The topic asked with /topic: in the channel.
        v.switch(STATUS);
        v.on_message("12:00:03", &msg(":srv 331 me #c :No topic is set"));
        assert_eq!(
            v.buffers[1].lines.back().unwrap().text,
            "No topic set for #c"
        );
    }

    #[test]
    fn a_query_opening_asks_for_its_history_and_shows_it_first_once() {
        let mut v = View::new("srv", "me");
        joined(&mut v);
        v.take_requests();
        // An incoming private message opens the query.
        v.on_message("12:00:05", &msg("@msgid=m3 :bob!u@h PRIVMSG me :newest"));
        assert_eq!(v.take_requests(), [Request::History("bob".into())]);
        let q = v.find("bob").unwrap();
        v.on_history(
            "bob",
            &[
                ("09:00:00".into(), msg("@msgid=m1 :bob!u@h PRIVMSG me :old")),
                (
                    "09:00:01".into(),
                    msg("@msgid=m2 :me!u@h PRIVMSG bob :my old"),
                ),
                (
                    "12:00:05".into(),
                    msg("@msgid=m3 :bob!u@h PRIVMSG me :newest"),
                ),
            ],
        );
        let lines: Vec<(&str, bool)> = v.buffers[q]
            .lines
            .iter()
            .map(|l| (l.text.as_str(), l.history))
            .collect();
        assert_eq!(lines, [("old", true), ("my old", true), ("newest", false)]);
        // Without msgids: the same nick and text already shown live.
        v.on_message("12:00:06", &msg(":bob!u@h PRIVMSG me :plain"));
        v.on_history(
            "bob",
            &[("12:00:06".into(), msg(":bob!u@h PRIVMSG me :plain"))],
        );
        let q = v.find("bob").unwrap();
        assert_eq!(
            v.buffers[q]
                .lines
                .iter()
                .filter(|l| l.text == "plain")
                .count(),
            1
        );
        // /query and open (TARGETS) ask too; a channel or an open query does not.
        v.switch("carol");
        v.open("dave");
        v.open("bob");
        v.switch("#c");
        assert_eq!(
            v.take_requests(),
            [
                Request::History("carol".into()),
                Request::History("dave".into())
            ]
        );
        let d = v.find("dave").unwrap();
        assert!(!v.buffers[d].unread && v.target() == Some("#c"));
        v.on_history(
            "dave",
            &[("09:00:00".into(), msg(":dave!u@h PRIVMSG me :earlier"))],
        );
        assert!(!v.buffers[d].unread, "history is old news");
    }
}
