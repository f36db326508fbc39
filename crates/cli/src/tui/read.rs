//! The full-screen terminal reader (ratatui): the library list with its search field, a
//! book in pages that fit the terminal, the go-to prompt, bookmarks and help. This module
//! does the I/O of [`read_view`](super::read_view) (the model): it runs its
//! [`Effect`]s (listing pages, full-text search, loading a book, saving the position and
//! the bookmarks), feeds the answers back, and draws it.
//!
//! The terminal is restored on every way out: a normal exit, an error, and a panic
//! (ratatui's panic hook). Position saves go through one task, in order, so a late
//! answer never overwrites a newer position; quitting waits for them.
//!
//! Keys: see [`HELP_LIBRARY`] and [`HELP_BOOK`].

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{Event as TermEvent, KeyEventKind};
use ratatui::layout::{Constraint, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};
use ratatui::Frame;
use sockit_reader::client::Client;
use sockit_reader::http::api_types::{BookList, BooksQuery, Number, PutProgress, SearchResults};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::read_list::{book_row, snippet_parts, Entry};
use super::read_marks::MarkStore;
use super::read_pages::{cells, fit, Area, Pages};
use super::read_view::{text_area, App, Effect, Opened, Overlay, Screen, PER_PAGE, SEARCH_LIMIT};

/// How long quitting waits for the last position save.
const QUIT_WAIT: Duration = Duration::from_secs(15);

/// The keys of the library list.
pub const HELP_LIBRARY: &[(&str, &str)] = &[
    ("↑ ↓  j k", "move"),
    ("PgUp PgDn Home End", "move by a screen, to the ends"),
    ("Enter", "open the book (or the text match)"),
    ("/", "search: titles and authors, and the books' text"),
    ("Esc", "clear the search; quit"),
    ("r", "reload the list"),
    ("q  Ctrl-C", "quit"),
    ("?", "this help"),
];

/// The keys of an open book.
pub const HELP_BOOK: &[(&str, &str)] = &[
    ("PgDn → ↓ Space", "next page"),
    ("PgUp ← ↑ Backspace", "previous page"),
    ("Home End", "first, last page"),
    ("g", "go to a page (type its number, Enter)"),
    ("b", "bookmark this page"),
    ("B", "list bookmarks (Enter go, d delete)"),
    ("q  Esc", "back to the library (saves the position)"),
    ("Ctrl-C", "quit"),
    ("?", "this help"),
];

/// What the reader needs to start.
pub struct Options {
    /// The API client (credentials and TLS set).
    pub client: Client,
    /// The server, for the title bar.
    pub server: String,
    /// The first listing page, fetched before the screen opened.
    pub first: BookList,
    /// The title/author filter (and full-text query) to start with.
    pub query: Option<String>,
    /// Where bookmarks are kept.
    pub marks: MarkStore,
}

/// Answers to effects.
enum Done {
    List(u64, Result<BookList, String>),
    Search(u64, Result<SearchResults, String>),
    Progress(u64, usize, usize),
    Opened(u64, Box<Result<Opened, String>>),
    Saved(Result<(), String>),
}

/// Runs the reader on the terminal until the user quits.
///
/// # Errors
/// The terminal could not be set up or drawn.
pub async fn run(opts: Options) -> io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = ui_loop(&mut terminal, opts).await;
    ratatui::try_restore()?;
    let saved = result?;
    if !saved {
        eprintln!(
            "sockit read: the last reading position may not be saved: the server did not \
             answer within {} s",
            QUIT_WAIT.as_secs()
        );
    }
    Ok(())
}

/// Runs until the user quits; `Ok(false)` when the last position saves did not finish.
async fn ui_loop(terminal: &mut ratatui::DefaultTerminal, opts: Options) -> io::Result<bool> {
    let Options {
        client,
        server,
        first,
        query,
        marks,
    } = opts;
    let marks_file = marks.file().map(|p| p.display().to_string());
    let size = terminal.size()?;
    let mut app = App::new(
        &server,
        first,
        query,
        (usize::from(size.width), usize::from(size.height)),
    );

    let (key_reader, mut keys) = super::keys::KeyReader::start();

    let (done_tx, mut done) = mpsc::unbounded_channel();
    let (save_tx, save_rx) = mpsc::unbounded_channel();
    let saver = tokio::spawn(save_positions(client.clone(), save_rx, done_tx.clone()));
    let mut loader: Option<JoinHandle<()>> = None;

    let result = 'ui: loop {
        for e in app.take_effects() {
            match e {
                Effect::Quit => break 'ui Ok(()),
                Effect::List { gen, query, page } => {
                    let (c, tx) = (client.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let q = BooksQuery {
                            q: query,
                            page: Some(Number(page)),
                            per_page: Some(Number(PER_PAGE)),
                            ..BooksQuery::default()
                        };
                        let r = c.list_books(&q).await.map_err(|e| e.to_string());
                        let _ = tx.send(Done::List(gen, r));
                    });
                }
                Effect::Search { gen, query } => {
                    let (c, tx) = (client.clone(), done_tx.clone());
                    tokio::spawn(async move {
                        let r = c
                            .search(&query, SEARCH_LIMIT, 0)
                            .await
                            .map_err(|e| e.to_string());
                        let _ = tx.send(Done::Search(gen, r));
                    });
                }
                Effect::Open { gen, id, book } => {
                    if let Some(l) = loader.take() {
                        l.abort();
                    }
                    let (c, tx, m) = (client.clone(), done_tx.clone(), marks.clone());
                    let ptx = tx.clone();
                    let progress: super::read_load::OnProgress = Arc::new(move |d, t| {
                        let _ = ptx.send(Done::Progress(gen, d, t));
                    });
                    loader = Some(tokio::spawn(async move {
                        let r = super::read_load::open(c, id, book.map(|b| *b), m, progress).await;
                        let _ = tx.send(Done::Opened(gen, Box::new(r)));
                    }));
                }
                Effect::CancelOpen => {
                    if let Some(l) = loader.take() {
                        l.abort();
                    }
                }
                Effect::Save { id, progress } => {
                    let _ = save_tx.send((id, progress));
                }
                Effect::SaveMarks {
                    document,
                    marks: list,
                } => {
                    // A small local file: written before the next key is read, so
                    // saves never overtake each other.
                    let r = marks.save(&document, &list).map_err(|e| e.to_string());
                    app.on_marks_saved(r);
                }
            }
        }
        if let Err(e) = terminal.draw(|f| draw(f, &app, marks_file.as_deref())) {
            break Err(e);
        }
        let deadline = app.deadline();
        tokio::select! {
            ev = keys.recv() => match ev {
                Some(TermEvent::Key(k)) if k.kind == KeyEventKind::Press => {
                    app.on_key(k, Instant::now());
                }
                Some(TermEvent::Resize(w, h)) => app.resize((usize::from(w), usize::from(h))),
                Some(_) => {}
                None => break Ok(()),
            },
            d = done.recv() => match d {
                Some(Done::List(gen, r)) => app.on_list(gen, r),
                Some(Done::Search(gen, r)) => app.on_search(gen, r),
                Some(Done::Progress(gen, d, t)) => app.on_progress(gen, d, t),
                Some(Done::Opened(gen, r)) => app.on_opened(gen, *r),
                Some(Done::Saved(r)) => app.on_saved(r),
                None => {}
            },
            () = sleep_until(deadline), if deadline.is_some() => {}
        }
        app.tick(Instant::now());
    };
    key_reader.stop();
    if let Some(l) = loader.take() {
        l.abort();
    }
    // The last saves: sent in order, waited for (bounded: the server may be gone), with
    // "saving…" on the screen meanwhile.
    let _ = terminal.draw(|f| draw(f, &app, marks_file.as_deref()));
    drop(save_tx);
    let saved = tokio::time::timeout(QUIT_WAIT, saver).await.is_ok();
    result.map(|()| saved)
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await;
    }
}

/// Sends position saves one at a time, in order; of several waiting for the same book
/// only the newest is sent.
async fn save_positions(
    client: Client,
    mut rx: mpsc::UnboundedReceiver<(i64, PutProgress)>,
    done: mpsc::UnboundedSender<Done>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(more) = rx.try_recv() {
            batch.push(more);
        }
        let mut latest: Vec<(i64, PutProgress)> = Vec::new();
        for (id, p) in batch {
            latest.retain(|(i, _)| *i != id);
            latest.push((id, p));
        }
        for (id, p) in latest {
            let r = client
                .put_progress(id, &p)
                .await
                .map(drop)
                .map_err(|e| e.to_string());
            let _ = done.send(Done::Saved(r));
        }
    }
}

/// The style of title and status bars.
fn bar() -> Style {
    Style::default().bg(Color::Blue).fg(Color::White)
}

/// A bar of `width` cells: `left`, and `right` against the right edge (cut first).
fn bar_line(left: &str, right: &str, width: usize) -> String {
    let right = fit(right, width.saturating_sub(cells(left).min(width / 2)));
    let room = width.saturating_sub(cells(&right));
    let left = fit(left, room);
    let pad = room.saturating_sub(cells(&left));
    format!("{left}{}{right}", " ".repeat(pad))
}

/// Draws the model (`marks_file`: where bookmarks are kept, for the help).
fn draw(f: &mut Frame, app: &App, marks_file: Option<&str>) {
    let area = f.area();
    match &app.screen {
        Screen::Library => draw_library(f, app, area),
        Screen::Loading(l) => {
            let [_, middle, _, footer] = Layout::vertical([
                Constraint::Percentage(45),
                Constraint::Length(1),
                Constraint::Min(0),
                Constraint::Length(1),
            ])
            .areas(area);
            let what = if l.total > 0 {
                format!("Opening {} … {}/{}", l.title, l.done, l.total)
            } else {
                format!("Opening {} …", l.title)
            };
            let width = usize::from(area.width);
            f.render_widget(
                Paragraph::new(fit(&what, width)).alignment(ratatui::layout::Alignment::Center),
                middle,
            );
            f.render_widget(
                Paragraph::new(bar_line(" Esc cancels", "", width)).style(bar()),
                footer,
            );
        }
        Screen::Book(_) => draw_book(f, app, area),
    }
    match &app.overlay {
        Some(Overlay::Help) => {
            let (keys, note) = if matches!(app.screen, Screen::Book(_)) {
                let note = marks_file.map(|p| format!("bookmarks: {p}"));
                (HELP_BOOK, note)
            } else {
                (HELP_LIBRARY, None)
            };
            draw_help(f, keys, note.as_deref(), area);
        }
        Some(Overlay::Marks(selected)) => draw_marks(f, app, *selected, area),
        Some(Overlay::GoTo(_)) | None => {}
    }
}

/// A note wrapped to `width` cells, at most `rows` rows (the last one cut).
fn wrapped(note: &str, width: usize, rows: usize) -> Vec<String> {
    let pages = Pages::new(
        note,
        &[],
        Area {
            width,
            height: rows,
        },
    );
    let mut out: Vec<String> = pages
        .rows(0)
        .iter()
        .map(|&(s, e)| note.get(s..e).unwrap_or("").to_owned())
        .collect();
    if pages.len() > 1 {
        if let Some(last) = out.last_mut() {
            *last = fit(&format!("{last} …"), width);
        }
    }
    out
}

fn draw_library(f: &mut Frame, app: &App, area: Rect) {
    let width = usize::from(area.width);
    // A long note (an error) gets up to three rows.
    let note = match (&app.library.input, &app.message) {
        (None, Some(m)) => Some(wrapped(m, width.saturating_sub(2), 3)),
        _ => None,
    };
    let footer_rows = note.as_ref().map_or(1, |n| n.len().max(1)) as u16;
    let [title, list, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(footer_rows),
    ])
    .areas(area);
    let lib = &app.library;
    let books = match lib.total {
        1 => "1 book".to_owned(),
        n => format!("{n} books"),
    };
    let count = match &lib.query {
        Some(q) => format!("“{q}”: {books} "),
        None => format!("{books} "),
    };
    f.render_widget(
        Paragraph::new(bar_line(
            &format!(" sockit read · {}", app.server),
            &count,
            width,
        ))
        .style(bar()),
        title,
    );

    let entries = lib.entries();
    let rows = usize::from(list.height);
    let mut lines: Vec<Line> = Vec::new();
    if entries.is_empty() {
        let note = match &lib.query {
            Some(q) => format!(" no title or author matches “{q}”"),
            None => " the library is empty".to_owned(),
        };
        lines.push(Line::styled(note, Style::default().fg(Color::DarkGray)));
    }
    for (i, e) in entries.iter().enumerate().skip(lib.top).take(rows) {
        let selected = i == lib.selected;
        let style = if selected {
            Style::default().add_modifier(Modifier::REVERSED)
        } else {
            Style::default()
        };
        let line = match *e {
            Entry::Book(b) => {
                let (left, right) = book_row(&lib.books[b]);
                Line::styled(bar_line(&left, &right, width), style)
            }
            Entry::Header => Line::styled(
                fit(&format!(" ── {} ──", lib.header()), width),
                Style::default()
                    .fg(Color::Cyan)
                    .add_modifier(Modifier::BOLD),
            ),
            Entry::Hit(h) => {
                let hit = &lib.hits[h];
                let head = format!("   {} {} · {}: ", hit.unit, hit.location, hit.title);
                let mut spans = vec![Span::styled(fit(&head, width), style.fg(Color::Yellow))];
                let mut used = cells(&head);
                for (text, marked) in snippet_parts(&hit.snippet) {
                    if used >= width {
                        break;
                    }
                    let t = fit(&text, width - used);
                    used += cells(&t);
                    let s = if marked {
                        style.add_modifier(Modifier::BOLD).fg(Color::LightYellow)
                    } else {
                        style
                    };
                    spans.push(Span::styled(t, s));
                }
                if selected && used < width {
                    spans.push(Span::styled(" ".repeat(width - used), style));
                }
                Line::from(spans)
            }
        };
        lines.push(line);
    }
    f.render_widget(Paragraph::new(lines), list);

    match &lib.input {
        Some(typed) => {
            let prompt = " / ";
            let room = width.saturating_sub(cells(prompt) + 1);
            // Show the end of a long query.
            let mut shown: String = typed.clone();
            while cells(&shown) > room {
                shown.remove(0);
            }
            f.render_widget(
                Paragraph::new(format!("{prompt}{shown}")).style(bar()),
                footer,
            );
            let x = footer.x + (cells(prompt) + cells(&shown)) as u16;
            f.set_cursor_position(Position::new(
                x.min(footer.right().saturating_sub(1)),
                footer.y,
            ));
        }
        None => {
            let hint = " ↑↓ move · Enter open · / search · ? help · q quit";
            let lines: Vec<Line> = match note {
                Some(rows) => rows
                    .iter()
                    .map(|r| Line::raw(bar_line(&format!(" {r}"), "", width)))
                    .collect(),
                None => vec![Line::raw(bar_line(hint, "", width))],
            };
            f.render_widget(Paragraph::new(lines).style(bar()), footer);
        }
    }
}

fn draw_book(f: &mut Frame, app: &App, area: Rect) {
    let Screen::Book(r) = &app.screen else {
        return;
    };
    let size = (usize::from(area.width), usize::from(area.height));
    let text_size = text_area(size);
    let margin = (size.0.saturating_sub(text_size.width) / 2) as u16;
    let [body, status] = Layout::vertical([Constraint::Min(1), Constraint::Length(1)]).areas(area);
    let text_rect = Rect {
        x: body.x + margin,
        width: (text_size.width as u16).min(body.width),
        ..body
    };
    let text = r.text.text();
    let lines: Vec<Line> = r
        .pages
        .rows(r.page)
        .iter()
        .map(|&(s, e)| Line::raw(text.get(s..e).unwrap_or("")))
        .collect();
    f.render_widget(Paragraph::new(lines), text_rect);

    let width = usize::from(area.width);
    if let Some(Overlay::GoTo(typed)) = &app.overlay {
        let prompt = format!(" Go to page (1–{}): ", r.pages.len());
        f.render_widget(
            Paragraph::new(bar_line(
                &format!("{prompt}{typed}"),
                "Enter go · Esc cancel ",
                width,
            ))
            .style(bar()),
            status,
        );
        let x = status.x + (cells(&prompt) + typed.len()) as u16;
        f.set_cursor_position(Position::new(
            x.min(status.right().saturating_sub(1)),
            status.y,
        ));
        return;
    }
    if let Some(line) = app.book_status(width) {
        f.render_widget(Paragraph::new(line).style(bar()), status);
    }
}

/// A box of `w`×`h` cells in the middle of `area`.
fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// Clears `rect` and a column on each side of it: a wide (CJK) character under the box's
/// edge would otherwise still cover the border's cell.
fn clear_box(f: &mut Frame, rect: Rect) {
    let area = f.area();
    let x = rect.x.saturating_sub(1).max(area.x);
    let right = (rect.right() + 1).min(area.right());
    f.render_widget(
        Clear,
        Rect {
            x,
            width: right - x,
            ..rect
        },
    );
}

fn draw_help(f: &mut Frame, keys: &[(&str, &str)], note: Option<&str>, area: Rect) {
    let key_w = keys.iter().map(|(k, _)| cells(k)).max().unwrap_or(0);
    let mut lines: Vec<Line> = keys
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::styled(
                    format!(" {k}{} ", " ".repeat(key_w - cells(k))),
                    Style::default()
                        .fg(Color::Yellow)
                        .add_modifier(Modifier::BOLD),
                ),
                Span::raw(what.to_string()),
            ])
        })
        .collect();
    // " KEY  what " inside the borders.
    let what_w = keys.iter().map(|(_, w)| cells(w)).max().unwrap_or(0);
    let mut w = (key_w + what_w + 5) as u16;
    if let Some(n) = note {
        let inner = usize::from(area.width.saturating_sub(2));
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            fit(&format!(" {n}"), inner),
            Style::default().fg(Color::DarkGray),
        ));
        w = w.max((cells(n) + 4).min(usize::from(u16::MAX)) as u16);
    }
    let rect = centered(area, w.max(30), lines.len() as u16 + 2);
    clear_box(f, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" keys (any key closes) "),
        ),
        rect,
    );
}

fn draw_marks(f: &mut Frame, app: &App, selected: usize, area: Rect) {
    let Screen::Book(r) = &app.screen else {
        return;
    };
    let w = area.width.min(70);
    let h = (r.marks.len() as u16 + 2)
        .min(area.height.saturating_sub(2))
        .max(3);
    let rect = centered(area, w, h);
    let inner = usize::from(w.saturating_sub(2));
    let rows = usize::from(h.saturating_sub(2));
    let top = selected.saturating_sub(rows.saturating_sub(1));
    let lines: Vec<Line> = r
        .marks
        .iter()
        .enumerate()
        .skip(top)
        .take(rows)
        .map(|(i, m)| {
            let page = r.page_of_mark(m) + 1;
            let unit = match r.text.kind() {
                super::read_text::UnitKind::Chapter => format!("ch. {} · ", m.unit),
                super::read_text::UnitKind::PdfPage => format!("PDF p. {} · ", m.unit),
                super::read_text::UnitKind::TxtPage => String::new(),
            };
            let text = fit(&format!(" {unit}p. {page}  {}", m.label), inner);
            let style = if i == selected {
                Style::default().add_modifier(Modifier::REVERSED)
            } else {
                Style::default()
            };
            let pad = inner.saturating_sub(cells(&text));
            Line::styled(format!("{text}{}", " ".repeat(pad)), style)
        })
        .collect();
    clear_box(f, rect);
    f.render_widget(
        Paragraph::new(lines).block(
            Block::default()
                .borders(Borders::ALL)
                .title(" bookmarks · Enter go · d delete · Esc close "),
        ),
        rect,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_fill_the_width_with_the_right_part_at_the_edge() {
        let l = bar_line(" left", "right ", 20);
        assert_eq!(cells(&l), 20);
        assert!(l.ends_with("right "));
        // Too narrow: both parts cut, never wider than the bar.
        let l = bar_line(" 山庙故事 · page 2/18 · 5%", "saved · ? help ", 16);
        assert!(cells(&l) <= 16, "{l:?}");
    }
}
