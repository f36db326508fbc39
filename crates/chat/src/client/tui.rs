//! The ratatui terminal UI: a channel list on the left, the active buffer's messages
//! (timestamps, nicks in stable colours) and a status bar, and the input line.
//!
//! Keys: Enter sends, Up/Down walk the input history, Ctrl-N/Ctrl-P, Tab or Alt-1..9
//! switch buffers, Ctrl-U clears to the cursor, Ctrl-C (or Ctrl-D on an empty line)
//! quits.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ratatui::crossterm::event::{self, Event as TermEvent, KeyEventKind};
use ratatui::layout::{Constraint, Layout, Position};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph};
use ratatui::Frame;
use tokio::sync::mpsc;

use crate::client::connection::{Connection, Event};
use crate::client::format::Kind;
use crate::client::input::{self, Input};
use crate::client::view::{KeyAction, View};
use crate::irc::message::Message;

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

/// Runs the UI on the terminal until the user quits or the connection ends.
///
/// # Errors
/// The terminal could not be set up or drawn.
pub async fn run(mut conn: Connection, server: &str, channel: Option<String>) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = ui_loop(&mut terminal, &mut conn, server, channel).await;
    ratatui::try_restore()?;
    result
}

async fn ui_loop(
    terminal: &mut ratatui::DefaultTerminal,
    conn: &mut Connection,
    server: &str,
    channel: Option<String>,
) -> io::Result<()> {
    let mut view = View::new(server, &conn.nick());
    view.note(
        &now(),
        &format!("connecting to {server} as {}", conn.nick()),
        Kind::Info,
    );

    // Terminal events come from a blocking thread.
    let (key_tx, mut keys) = mpsc::channel(64);
    let stop = Arc::new(AtomicBool::new(false));
    let stop_reader = stop.clone();
    let reader = std::thread::spawn(move || {
        while !stop_reader.load(Ordering::Relaxed) {
            match event::poll(Duration::from_millis(100)) {
                Ok(true) => match event::read() {
                    Ok(ev) => {
                        if key_tx.blocking_send(ev).is_err() {
                            return;
                        }
                    }
                    Err(_) => return,
                },
                Ok(false) => {}
                Err(_) => return,
            }
        }
    });

    let mut closed = false;
    let mut quitting = false;
    let result = loop {
        if let Err(e) = terminal.draw(|f| draw(f, &view)) {
            break Err(e);
        }
        tokio::select! {
            ev = keys.recv() => {
                let Some(TermEvent::Key(k)) = ev else { continue };
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
                            for m in msgs {
                                let _ = conn.send(m).await;
                            }
                            if let Some((target, text, action)) = own {
                                view.own(&now(), &target, &text, action);
                            }
                        }
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
                    if let Some(c) = &channel {
                        let _ = conn.send(Message::new("JOIN", vec![c.clone()])).await;
                    }
                }
                Some(Event::Message(m)) => view.on_message(&now(), &m),
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
    stop.store(true, Ordering::Relaxed);
    let _ = reader.join();
    result
}

fn draw(f: &mut Frame, view: &View) {
    let [left, right] =
        Layout::horizontal([Constraint::Length(18), Constraint::Min(20)]).areas(f.area());
    let [messages, status, input] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(right);

    let items: Vec<ListItem> = view
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut style = Style::default();
            if i == view.active {
                style = style.add_modifier(Modifier::REVERSED);
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
    let height = messages.height as usize;
    let skip = buf.lines.len().saturating_sub(height);
    let lines: Vec<Line> = buf
        .lines
        .iter()
        .skip(skip)
        .map(|l| {
            let mut spans = vec![Span::styled(
                format!("{} ", l.time),
                Style::default().fg(Color::DarkGray),
            )];
            let nick = l.nick.as_deref().unwrap_or("");
            let nick_style = Style::default()
                .fg(nick_colour(nick))
                .add_modifier(Modifier::BOLD);
            match l.kind {
                Kind::Chat => {
                    spans.push(Span::styled(format!("<{nick}> "), nick_style));
                    spans.push(Span::raw(l.text.clone()));
                }
                Kind::Action => {
                    spans.push(Span::styled(format!("* {nick} "), nick_style));
                    spans.push(Span::raw(l.text.clone()));
                }
                Kind::Notice => {
                    spans.push(Span::styled(format!("-{nick}- "), nick_style));
                    spans.push(Span::raw(l.text.clone()));
                }
                Kind::Event => spans.push(Span::styled(
                    format!("-!- {}", l.text),
                    Style::default().fg(Color::Blue),
                )),
                Kind::Error => spans.push(Span::styled(
                    format!("-!- {}", l.text),
                    Style::default().fg(Color::Red),
                )),
                Kind::Info => spans.push(Span::raw(l.text.clone())),
            }
            Line::from(spans)
        })
        .collect();
    f.render_widget(Paragraph::new(lines), messages);

    let status_text = format!(" [{}] [{}] {} ", view.nick, buf.name, view.server);
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
