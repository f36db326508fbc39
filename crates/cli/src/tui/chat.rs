//! The ratatui terminal UI: a channel list on the left, the channel's topic on top, the
//! active buffer's messages (timestamps, nicks in stable colours, long lines wrapped under
//! their text, lines naming us highlighted) with the member list on the right (away
//! members dimmed), a status bar and the input line. Someone going away or coming back is
//! a dim line in each channel it shares with us; WHOIS, `/topic` and other replies are
//! readable lines where the command was typed; a query window fetches its history when
//! it opens, and on connect the private conversations of the last days open again.
//!
//! Keys: Enter sends, Up/Down walk the input history, Tab completes a nick (again: the
//! next match), PgUp/PgDn or the mouse wheel scroll back and forth (Ctrl-End: to the
//! newest), Ctrl-N/Ctrl-P, Shift-Tab or Alt-1..9 switch buffers, Ctrl-U clears to the
//! cursor, Ctrl-C (or Ctrl-D on an empty line) quits.

use std::io;

use ratatui::crossterm::event::{
    DisableMouseCapture, EnableMouseCapture, Event as TermEvent, KeyEventKind, MouseEventKind,
};
use ratatui::crossterm::execute;
use ratatui::layout::{Constraint, Layout, Position};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph};
use ratatui::Frame;

use super::chat_log::ChatLog;
use super::chat_view::{KeyAction, Request, View, ViewLine};
use sockit_chat::client::connection::{server_time, Connection, Event};
use sockit_chat::client::format::Kind;
use sockit_chat::client::history::recent_queries;
use sockit_chat::client::input::{self, Input};
use sockit_chat::irc::message::Message;

/// Nick colours (a nick always gets the same one).
const PALETTE: [Color; 8] = [
    Color::Cyan,
    Color::Green,
    Color::Yellow,
    Color::Magenta,
    Color::LightBlue,
    Color::LightRed,
    Color::LightGreen,
    Color::LightMagenta,
];

/// The colour of a nick.
pub fn nick_colour(nick: &str) -> Color {
    let h = nick.bytes().fold(5381u32, |h, b| {
        h.wrapping_mul(33) ^ u32::from(b.to_ascii_lowercase())
    });
    PALETTE[(h as usize) % PALETTE.len()]
}

fn now() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// The time to show for `m`: its server-time tag in the zone `tz`, `HH:MM:SS`; `None`
/// without a valid tag.
pub fn tagged_time<Tz: chrono::TimeZone>(m: &Message, tz: &Tz) -> Option<String>
where
    Tz::Offset: std::fmt::Display,
{
    server_time(m).map(|t| t.with_timezone(tz).format("%H:%M:%S").to_string())
}

/// The time to show for `m`: the server's (local time), else now.
fn time_of(m: &Message) -> String {
    tagged_time(m, &chrono::Local).unwrap_or_else(now)
}

/// Runs the UI on the terminal until the user quits or the connection ends.
///
/// # Errors
/// The terminal could not be set up or drawn, or the SASL login was refused.
pub async fn run(
    mut conn: Connection,
    server: &str,
    channel: Option<String>,
    log: Option<ChatLog>,
) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let _ = execute!(io::stdout(), EnableMouseCapture);
    let result = ui_loop(&mut terminal, &mut conn, server, channel, log).await;
    let _ = execute!(io::stdout(), DisableMouseCapture);
    ratatui::try_restore()?;
    result
}

async fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    conn: &mut Connection,
    server: &str,
    channel: Option<String>,
    mut log: Option<ChatLog>,
) -> io::Result<()> {
    let mut view = View::new(server, &conn.nick());
    if log.is_some() {
        view.keep_log();
    }
    view.note(
        &now(),
        &format!("connecting to {server} as {}", conn.nick()),
        Kind::Info,
    );

    let (key_reader, mut keys) = super::keys::KeyReader::start();

    let mut closed = false;
    let mut quitting = false;
    let mut registrations = 0u32;
    let result = loop {
        if let Some(log) = log.as_mut() {
            log.write(&view.take_log());
        }
        if !closed {
            send_requests(&mut view, conn).await;
        }
        if let Err(e) = terminal.draw(|f| draw(f, &mut view)) {
            break Err(e);
        }
        tokio::select! {
            ev = keys.recv() => {
                let k = match ev {
                    Some(TermEvent::Key(k)) => k,
                    Some(TermEvent::Mouse(m)) => {
                        match m.kind {
                            MouseEventKind::ScrollUp => view.scroll_by(3),
                            MouseEventKind::ScrollDown => view.scroll_by(-3),
                            _ => {}
                        }
                        continue;
                    }
                    _ => continue,
                };
                if k.kind != KeyEventKind::Press {
                    continue;
                }
                match view.on_key(k) {
                    KeyAction::None => {}
                    KeyAction::Quit if closed || quitting => break Ok(()),
                    KeyAction::Quit => {
                        quitting = true;
                        let _ = conn.send(Message::new("QUIT", vec!["Leaving".into()])).await;
                    }
                    KeyAction::Submit(line) => match input::parse(&line, view.target()) {
                        Input::Nothing => {}
                        Input::Send(msgs, own) => {
                            // A query this opens fetches its history before our line.
                            if let Some((target, _, _)) = &own {
                                view.open(target);
                                send_requests(&mut view, conn).await;
                            }
                            for m in msgs {
                                view.sent(&m);
                                let _ = conn.send(m).await;
                            }
                            // With echo-message the server sends our lines back.
                            if let Some((target, text, action)) =
                                own.filter(|_| !conn.has_cap("echo-message"))
                            {
                                view.own(&now(), &target, &text, action);
                            }
                        }
                        Input::Unknown(cmd, _) => view.note(
                            &now(),
                            &format!("unknown command /{cmd} (try /join /part /msg /query /me /notice /nick /topic /whois /away /mode /kick /invite /quote /quit)"),
                            Kind::Error,
                        ),
                        Input::Switch(b) => view.switch(&b),
                        Input::Quit(reason) if !closed => {
                            quitting = true;
                            let reason = reason.unwrap_or_else(|| "Leaving".into());
                            let _ = conn.send(Message::new("QUIT", vec![reason])).await;
                        }
                        Input::Quit(_) => break Ok(()),
                        Input::Error(e) => view.note(&now(), &e, Kind::Error),
                    },
                }
            }
            ev = conn.events.recv(), if !closed => match ev {
                Some(Event::Registered(nick)) => {
                    view.nick = nick;
                    view.away_notify = conn.has_cap("away-notify");
                    registrations += 1;
                    if registrations > 1 {
                        // The connection joins its channels again by itself.
                        view.note(&now(), &format!("reconnected as {}", view.nick), Kind::Info);
                    } else {
                        if let Some(c) = &channel {
                            let _ = conn.send(Message::new("JOIN", vec![c.clone()])).await;
                        }
                        // Reopen the recent private conversations (first connect only).
                        let _ = conn.fetch_targets().await;
                    }
                }
                Some(Event::Targets(targets)) => {
                    for nick in recent_queries(&targets, &view.nick) {
                        view.open(&nick);
                    }
                }
                Some(Event::Message(m)) => view.on_message(&time_of(&m), &m),
                Some(Event::History { target, messages }) => {
                    let lines: Vec<(String, Message)> =
                        messages.into_iter().map(|m| (time_of(&m), m)).collect();
                    view.on_history(&target, &lines);
                }
                Some(Event::LoginFailed(text)) => {
                    break Err(io::Error::other(format!("login refused: {text}")));
                }
                Some(Event::Reconnecting { reason, delay, attempt }) => view.note(
                    &now(),
                    &format!(
                        "disconnected ({reason}); reconnecting in {} s (attempt {attempt}; Ctrl-C leaves)",
                        delay.as_secs()
                    ),
                    Kind::Error,
                ),
                None | Some(Event::Closed(_)) => {
                    closed = true;
                    if quitting {
                        break Ok(());
                    }
                    view.note(&now(), "disconnected; press Ctrl-C to leave", Kind::Error);
                }
            },
        }
    };
    key_reader.stop();
    result
}

/// Sends what the view asked for: a query's history, a WHO for away states.
async fn send_requests(view: &mut View, conn: &Connection) {
    for r in view.take_requests() {
        let _ = match r {
            Request::History(target) => conn.fetch_history(&target).await.map(drop),
            Request::Who(channel) => conn.send(Message::new("WHO", vec![channel])).await,
        };
    }
}

/// Width of a string in terminal cells (CJK and emoji take two).
fn cells(s: &str) -> usize {
    unicode_width::UnicodeWidthStr::width(s)
}

/// The styled pieces of one line: its prefix (time and nick, repeated as indentation on
/// wrapped rows) and its text.
fn pieces(l: &ViewLine) -> (Vec<Span<'static>>, Vec<Span<'static>>) {
    let mut prefix = vec![Span::styled(
        format!("{} ", l.time),
        Style::default().fg(Color::DarkGray),
    )];
    if l.history {
        // Fetched history: all of it dim, nick colours too.
        let (prefix, text) = plain_pieces(l);
        let dim = Style::default()
            .fg(Color::DarkGray)
            .add_modifier(Modifier::DIM);
        return (
            vec![Span::styled(format!("{} {prefix}", l.time), dim)],
            vec![Span::styled(text, dim)],
        );
    }
    let nick = l.nick.as_deref().unwrap_or("");
    let nick_style = Style::default()
        .fg(nick_colour(nick))
        .add_modifier(Modifier::BOLD);
    let text_style = if l.mention {
        Style::default()
            .fg(Color::LightYellow)
            .add_modifier(Modifier::BOLD)
    } else {
        Style::default()
    };
    let text = match l.kind {
        Kind::Chat => {
            prefix.push(Span::styled(format!("<{nick}> "), nick_style));
            Span::styled(l.text.clone(), text_style)
        }
        Kind::Action => {
            prefix.push(Span::styled(format!("* {nick} "), nick_style));
            Span::styled(l.text.clone(), text_style)
        }
        Kind::Notice => {
            prefix.push(Span::styled(format!("-{nick}- "), nick_style));
            Span::styled(l.text.clone(), text_style)
        }
        Kind::Event => {
            prefix.push(Span::styled("-!- ", Style::default().fg(Color::Blue)));
            Span::styled(l.text.clone(), Style::default().fg(Color::Blue))
        }
        Kind::Error => {
            prefix.push(Span::styled("-!- ", Style::default().fg(Color::Red)));
            Span::styled(l.text.clone(), Style::default().fg(Color::Red))
        }
        Kind::Presence => {
            let dim = Style::default()
                .fg(Color::DarkGray)
                .add_modifier(Modifier::DIM);
            prefix.push(Span::styled("-!- ", dim));
            Span::styled(l.text.clone(), dim)
        }
        Kind::Reply => {
            prefix.push(Span::styled("-!- ", Style::default().fg(Color::Blue)));
            Span::raw(l.text.clone())
        }
        Kind::Info => Span::raw(l.text.clone()),
    };
    (prefix, vec![text])
}

/// The nick part and text of a line without styles.
fn plain_pieces(l: &ViewLine) -> (String, String) {
    let nick = l.nick.as_deref().unwrap_or("");
    let prefix = match l.kind {
        Kind::Chat => format!("<{nick}> "),
        Kind::Action => format!("* {nick} "),
        Kind::Notice => format!("-{nick}- "),
        Kind::Event | Kind::Error | Kind::Presence | Kind::Reply => "-!- ".into(),
        Kind::Info => String::new(),
    };
    (prefix, l.text.clone())
}

/// One line wrapped to `width` cells: the first row carries the prefix, the others are
/// indented by its width (at most half the width), so the text stands in one column.
/// Rows break after a space where one is on the row; a word longer than a row is cut.
pub fn wrap(l: &ViewLine, width: usize) -> Vec<Line<'static>> {
    let (prefix, text) = pieces(l);
    let width = width.max(2);
    let prefix_cells: usize = prefix.iter().map(|s| cells(&s.content)).sum();
    let indent = if prefix_cells * 2 <= width {
        prefix_cells
    } else {
        0
    };
    let room = width - indent;
    let mut rows: Vec<Line<'static>> = Vec::new();
    let mut row: Vec<Span<'static>> = prefix;
    let mut used = prefix_cells;
    for span in text {
        let mut chunk = String::new();
        // Words with their trailing spaces: "one ", "two ", "three".
        for word in span.content.split_inclusive(' ') {
            let w = cells(word.trim_end_matches(' '));
            if used + w > width && used > indent && w <= room {
                row.push(Span::styled(std::mem::take(&mut chunk), span.style));
                rows.push(Line::from(std::mem::take(&mut row)));
                row.push(Span::raw(" ".repeat(indent)));
                used = indent;
            }
            for c in word.chars() {
                let cw = unicode_width::UnicodeWidthChar::width(c).unwrap_or(0);
                if used + cw > width && c != ' ' {
                    row.push(Span::styled(std::mem::take(&mut chunk), span.style));
                    rows.push(Line::from(std::mem::take(&mut row)));
                    row.push(Span::raw(" ".repeat(indent)));
                    used = indent;
                }
                if used + cw <= width {
                    chunk.push(c);
                    used += cw;
                }
            }
        }
        row.push(Span::styled(chunk, span.style));
    }
    rows.push(Line::from(row));
    rows
}

fn draw(f: &mut Frame, view: &mut View) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(18), Constraint::Min(20)]).areas(f.area());
    let channel = view.active > 0 && !view.buffers[view.active].nicks.is_empty();
    let [topic_area, middle, status, input] = Layout::vertical([
        Constraint::Length(u16::from(channel)),
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(right);
    let [messages, members] = Layout::horizontal([
        Constraint::Min(10),
        Constraint::Length(if channel { 16 } else { 0 }),
    ])
    .areas(middle);
    view.page = usize::from(messages.height);

    let items: Vec<ListItem> = view
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut style = Style::default();
            if i == view.active {
                style = style.add_modifier(Modifier::REVERSED);
            } else if b.mentioned {
                style = style.fg(Color::LightMagenta).add_modifier(Modifier::BOLD);
            } else if b.unread {
                style = style.fg(Color::Yellow).add_modifier(Modifier::BOLD);
            }
            ListItem::new(format!("{} {}", i + 1, b.name)).style(style)
        })
        .collect();
    f.render_widget(
        List::new(items).block(Block::default().borders(Borders::RIGHT).title("channels")),
        left,
    );

    let buf = &view.buffers[view.active];
    if channel {
        let topic = buf.topic.as_deref().unwrap_or("(no topic)");
        f.render_widget(
            Paragraph::new(format!(" {topic}"))
                .style(Style::default().bg(Color::Blue).fg(Color::White)),
            topic_area,
        );
        let names: Vec<ListItem> = buf
            .members()
            .into_iter()
            .map(|(prefix, nick)| {
                let style = if view.presence.is_away(&nick) {
                    Style::default()
                        .fg(Color::DarkGray)
                        .add_modifier(Modifier::DIM)
                } else {
                    Style::default().fg(nick_colour(&nick))
                };
                ListItem::new(format!("{prefix}{nick}")).style(style)
            })
            .collect();
        f.render_widget(
            List::new(names).block(
                Block::default()
                    .borders(Borders::LEFT)
                    .title(format!("{} nicks", buf.nicks.len())),
            ),
            members,
        );
    }

    // The newest rows that fit, `scroll` lines up from the end.
    let height = usize::from(messages.height);
    let width = usize::from(messages.width);
    let mut rows: Vec<Line> = Vec::new();
    for l in buf.lines.iter().rev().skip(buf.scroll) {
        let mut wrapped = wrap(l, width);
        wrapped.extend(rows);
        rows = wrapped;
        if rows.len() >= height {
            break;
        }
    }
    let skip = rows.len().saturating_sub(height);
    let rows: Vec<Line> = rows.into_iter().skip(skip).collect();
    f.render_widget(Paragraph::new(rows), messages);

    let more = if buf.scroll > 0 {
        format!(" -- more below ({}) --", buf.scroll)
    } else {
        String::new()
    };
    let away = if view.presence.own().is_some() {
        " (away)"
    } else {
        ""
    };
    let status_text = format!(
        " [{}{away}] [{}] {}{more} ",
        view.nick, buf.name, view.server
    );
    f.render_widget(
        Paragraph::new(status_text).style(Style::default().bg(Color::Blue).fg(Color::White)),
        status,
    );

    let shown: String = view.input.iter().collect();
    let prompt = "> ";
    // Keep the cursor visible on long input by scrolling the line.
    let width = input.width.saturating_sub(prompt.len() as u16 + 1) as usize;
    let start = view.cursor.saturating_sub(width);
    let visible: String = shown.chars().skip(start).take(width).collect();
    f.render_widget(Paragraph::new(format!("{prompt}{visible}")), input);
    let x = input.x + prompt.len() as u16 + (view.cursor - start) as u16;
    f.set_cursor_position(Position::new(x, input.y));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(l: &Line) -> String {
        l.spans.iter().map(|s| s.content.as_ref()).collect()
    }

    #[test]
    fn long_lines_wrap_under_their_text() {
        let l = ViewLine {
            time: "12:00:00".into(),
            nick: Some("bob".into()),
            text: "one two three four five six seven".into(),
            kind: Kind::Chat,
            mention: false,
            history: false,
            msgid: None,
        };
        let rows: Vec<String> = wrap(&l, 30).iter().map(text).collect();
        assert_eq!(rows[0], "12:00:00 <bob> one two three ");
        assert_eq!(rows[1], "               four five six ");
        assert_eq!(rows[2], "               seven");
        assert!(rows.iter().all(|r| cells(r) <= 30), "{rows:?}");
        assert_eq!(
            rows.concat().replace(' ', ""),
            "12:00:00<bob>onetwothreefourfivesixseven"
        );
        // A word longer than a row is cut, not lost.
        let l = ViewLine {
            text: "x".repeat(40),
            ..l
        };
        let rows: Vec<String> = wrap(&l, 30).iter().map(text).collect();
        assert_eq!(rows.concat().matches('x').count(), 40, "{rows:?}");
        assert!(rows.iter().all(|r| cells(r) <= 30), "{rows:?}");
    }

    #[test]
    fn history_lines_are_dim_and_wrap_the_same() {
        let l = ViewLine {
            time: "09:00:00".into(),
            nick: Some("bob".into()),
            text: "one two three four five six seven".into(),
            kind: Kind::Chat,
            mention: false,
            history: true,
            msgid: None,
        };
        let rows = wrap(&l, 30);
        assert_eq!(text(&rows[0]), "09:00:00 <bob> one two three ");
        assert_eq!(text(&rows[1]), "               four five six ");
        assert!(rows
            .iter()
            .flat_map(|r| r.spans.iter())
            .filter(|s| !s.content.trim().is_empty())
            .all(|s| s.style.add_modifier.contains(Modifier::DIM)));
    }

    #[test]
    fn server_time_is_shown_converted_to_the_zone() {
        let m = Message::parse(b"@time=2026-01-02T03:04:05.678Z :a!b@c PRIVMSG #c :hi").unwrap();
        assert_eq!(tagged_time(&m, &chrono::Utc).as_deref(), Some("03:04:05"));
        let east = chrono::FixedOffset::east_opt(2 * 3600).unwrap();
        assert_eq!(tagged_time(&m, &east).as_deref(), Some("05:04:05"));
        let plain = Message::parse(b":a!b@c PRIVMSG #c :hi").unwrap();
        assert_eq!(tagged_time(&plain, &chrono::Utc), None);
    }

    #[test]
    fn wide_characters_count_two_cells() {
        let l = ViewLine {
            time: "12:00:00".into(),
            nick: Some("李".into()),
            text: "你好你好你好你好".into(),
            kind: Kind::Chat,
            mention: false,
            history: false,
            msgid: None,
        };
        for row in wrap(&l, 24) {
            assert!(cells(&text(&row)) <= 24, "{:?}", text(&row));
        }
    }
}
