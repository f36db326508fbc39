//! `sockit chat --plain`: lines from stdin go to the channel, what arrives goes to stdout,
//! one line each (see [`format::plain_line`](super::format::plain_line)). For scripts
//! and pipes: input is read only once registration and the JOIN are complete, and at the
//! end of input the client sends QUIT and waits for the server to close. A `/command`
//! not known here goes to the server as a raw line (`/foo bar` → `FOO bar`), and once
//! joined every reply is printed (`-!- …`, information included). History fetched on
//! join comes first, each line marked `[history HH:MM:SS]` (local time). No reconnect:
//! a dropped connection ends the run.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use crate::client::connection::{server_time, Connection, Event};
use crate::client::format::{describe, plain_line, plain_reply};
use crate::client::input::{self, Input};
use crate::irc::message::Message;
use crate::irc::names;

/// How long to wait for the server to close after QUIT.
const QUIT_WAIT: Duration = Duration::from_secs(5);

/// Why plain mode failed.
#[derive(Debug, thiserror::Error)]
pub enum PlainError {
    /// The server closed the connection before registration completed.
    #[error("the server closed the connection before registration: {0}")]
    NotRegistered(String),
    /// The SASL login was refused.
    #[error("login refused: {0}")]
    Login(String),
    /// Reading stdin or writing stdout failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Runs plain mode until input ends (or /quit) and the server closed; returns the
/// server's closing text, if any.
///
/// # Errors
/// [`PlainError`].
pub async fn run<R, W>(
    mut conn: Connection,
    channel: Option<String>,
    input: R,
    mut output: W,
) -> Result<Option<String>, PlainError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut current: Option<String> = None;
    // Registration, then the JOIN: print what happens meanwhile.
    let mut joined = channel.is_none();
    let mut registered = false;
    while !(registered && joined) {
        let Some(ev) = conn.events.recv().await else {
            return Err(PlainError::NotRegistered("connection lost".into()));
        };
        match ev {
            Event::Registered(_) => {
                registered = true;
                if let Some(c) = &channel {
                    conn.send(Message::new("JOIN", vec![c.clone()])).await?;
                }
            }
            Event::LoginFailed(text) => return Err(PlainError::Login(text)),
            Event::Closed(reason) => {
                return Err(PlainError::NotRegistered(
                    reason.unwrap_or_else(|| "connection closed".into()),
                ))
            }
            Event::Reconnecting { .. } | Event::Targets(_) => {}
            Event::History { target, messages } => {
                history(
                    &mut output,
                    &target,
                    &messages,
                    &conn.nick(),
                    current.as_deref(),
                )
                .await?;
            }
            Event::Message(m) => {
                let wanted = channel.as_deref().unwrap_or("");
                if m.command == "366" && m.param(1).is_some_and(|c| names::eq(c, wanted)) {
                    joined = true;
                    current = m.param(1).map(str::to_owned);
                }
                let is_error = m.command.starts_with('4') || m.command.starts_with('5');
                if registered && is_error && m.command.len() == 3 {
                    // The JOIN failed; go on without a channel.
                    joined = true;
                }
                track_current(&m, &conn.nick(), &mut current);
                show(&mut output, &m, &conn.nick(), current.as_deref(), false).await?;
            }
        }
    }

    let mut lines = BufReader::new(input).lines();
    let mut input_open = true;
    while input_open {
        tokio::select! {
            line = lines.next_line() => match line? {
                None => {
                    input_open = false;
                    conn.send(Message::new("QUIT", vec![])).await.ok();
                }
                Some(l) => match input::parse(&l, current.as_deref()) {
                    Input::Nothing => {}
                    Input::Send(msgs, _) => {
                        for m in msgs {
                            conn.send(m).await?;
                        }
                    }
                    Input::Switch(b) => current = Some(b),
                    Input::Quit(reason) => {
                        input_open = false;
                        conn.send(Message::new("QUIT", reason.into_iter().collect())).await.ok();
                    }
                    Input::Unknown(cmd, rest) => match input::raw(&cmd, &rest) {
                        Ok(m) => conn.send(m).await?,
                        Err(e) => {
                            output.write_all(format!("-!- {e}\n").as_bytes()).await?;
                            output.flush().await?;
                        }
                    },
                    Input::Error(e) => {
                        output.write_all(format!("-!- {e}\n").as_bytes()).await?;
                        output.flush().await?;
                    }
                },
            },
            ev = conn.events.recv() => match ev {
                None | Some(Event::Closed(_)) => return Ok(None),
                Some(Event::LoginFailed(text)) => return Err(PlainError::Login(text)),
                Some(Event::Registered(_) | Event::Reconnecting { .. } | Event::Targets(_)) => {}
                Some(Event::History { target, messages }) => {
                    history(&mut output, &target, &messages, &conn.nick(), current.as_deref()).await?;
                }
                Some(Event::Message(m)) => {
                    track_current(&m, &conn.nick(), &mut current);
                    show(&mut output, &m, &conn.nick(), current.as_deref(), true).await?;
                }
            },
        }
    }
    // After QUIT: print the rest until the server closes (bounded).
    let mut closing = None;
    let _ = tokio::time::timeout(QUIT_WAIT, async {
        while let Some(ev) = conn.events.recv().await {
            match ev {
                Event::Closed(reason) => {
                    closing = reason;
                    break;
                }
                Event::Message(m) => {
                    show(&mut output, &m, &conn.nick(), current.as_deref(), true).await?;
                }
                Event::History { target, messages } => {
                    history(
                        &mut output,
                        &target,
                        &messages,
                        &conn.nick(),
                        current.as_deref(),
                    )
                    .await?;
                }
                Event::LoginFailed(_)
                | Event::Registered(_)
                | Event::Reconnecting { .. }
                | Event::Targets(_) => {}
            }
        }
        Ok::<(), io::Error>(())
    })
    .await;
    Ok(closing)
}

/// Our own JOIN makes that channel current; our own PART/KICK of it clears it.
fn track_current(m: &Message, me: &str, current: &mut Option<String>) {
    let ours = m.source_nick().is_some_and(|n| names::eq(n, me));
    match m.command.as_str() {
        "JOIN" if ours => *current = m.param(0).map(str::to_owned),
        "PART"
            if ours
                && current
                    .as_deref()
                    .zip(m.param(0))
                    .is_some_and(|(c, p)| names::eq(c, p)) =>
        {
            *current = None;
        }
        "KICK" if m.param(1).is_some_and(|n| names::eq(n, me)) => *current = None,
        _ => {}
    }
}

/// Prints `m`; with `replies`, information and otherwise unshown replies too.
async fn show<W: AsyncWrite + Unpin>(
    out: &mut W,
    m: &Message,
    me: &str,
    current: Option<&str>,
    replies: bool,
) -> io::Result<()> {
    let line = describe(m, me)
        .and_then(|s| plain_line(&s, current))
        .or_else(|| replies.then(|| plain_reply(m, me)).flatten());
    if let Some(line) = line {
        out.write_all(line.as_bytes()).await?;
        out.write_all(b"\n").await?;
        out.flush().await?;
    }
    Ok(())
}

/// One history line: `[history HH:MM:SS] ` (the server's time, local) and its plain form.
pub fn history_line(m: &Message, me: &str, current: Option<&str>) -> Option<String> {
    let line = describe(m, me).and_then(|s| plain_line(&s, current))?;
    let time = server_time(m).map_or_else(String::new, |t| {
        format!(" {}", t.with_timezone(&chrono::Local).format("%H:%M:%S"))
    });
    Some(format!("[history{time}] {line}"))
}

async fn history<W: AsyncWrite + Unpin>(
    out: &mut W,
    _target: &str,
    messages: &[Message],
    me: &str,
    current: Option<&str>,
) -> io::Result<()> {
    for m in messages {
        if let Some(line) = history_line(m, me, current) {
            out.write_all(line.as_bytes()).await?;
            out.write_all(b"\n").await?;
        }
    }
    out.flush().await
}
