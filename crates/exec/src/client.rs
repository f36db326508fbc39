//! The client side of `exec`: send the request, then read output frames and write stdin
//! frames at the same time (so neither side can block the other), until the exit frame.
//!
//! The exchange runs over its own reader and writer halves of the connection, so the
//! [`Client`] is consumed: after `exec` the connection is closed.

use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sockit_wire::header::{Message, MessageError};
use sockit_wire::{Client, ClientError, ErrorCode, Frame, FrameCodec, FrameError, Header};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::{FramedRead, FramedWrite};

use crate::messages::{Exit, Keepalive, Output, Started, Stdin, Stream};
pub use crate::request::RemoteExit;
use crate::request::{ExecRequest, ExitFrame};

/// How often the client tells a quiet server it is still there.
const KEEPALIVE: Duration = Duration::from_secs(30);
/// Largest stdin frame body.
const STDIN_CHUNK: usize = 64 * 1024;

/// An exec failure.
#[derive(Debug, thiserror::Error)]
pub enum ExecClientError {
    /// The server refused or the connection failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Writing the output locally failed.
    #[error("cannot write the command's output locally: {0}")]
    Local(std::io::Error),
    /// The server sent something that is not part of the exec exchange.
    #[error("unexpected frame from server: {0}")]
    Protocol(String),
}

/// A server frame that is not the message expected is a protocol error.
impl From<MessageError> for ExecClientError {
    fn from(e: MessageError) -> Self {
        match e {
            MessageError::Decode { .. } => Self::Protocol(e.to_string()),
            MessageError::Encode { .. } => Self::Client(e.into()),
        }
    }
}

impl From<FrameError> for ExecClientError {
    fn from(e: FrameError) -> Self {
        Self::Client(ClientError::Frame(e))
    }
}

/// Runs `request` on the server; output goes to `stdout`/`stderr` as it arrives, `stdin`
/// (when given, and when `request.stdin` is set) is forwarded until its end. Returns the
/// exit frame: how the command ended and which containment held it.
///
/// # Errors
/// The server refused (`denied`, `busy`, `not_found`, ...), or the connection broke.
pub async fn run_remote<I, O, E>(
    mut client: Client,
    request: &ExecRequest,
    stdin: Option<I>,
    stdout: &mut O,
    stderr: &mut E,
) -> Result<ExitFrame, ExecClientError>
where
    I: AsyncRead + Unpin,
    O: AsyncWrite + Unpin,
    E: AsyncWrite + Unpin,
{
    let conn = client.connection();
    if conn.read_buffer_len() != 0 {
        return Err(ExecClientError::Protocol(
            "unread data before exec; use a fresh connection".into(),
        ));
    }
    let (rd, wr) = tokio::io::split(conn.stream_mut());
    let mut reader = FramedRead::with_capacity(rd, FrameCodec::new(), 128 * 1024);
    let mut writer = FramedWrite::new(wr, FrameCodec::new());
    writer.send(&request.to_header()).await?;
    next_header(&mut reader).await?.decode::<Started>()?;
    let keepalive = Header::encode(&Keepalive {})?;
    let forward = async {
        if let (Some(mut input), true) = (stdin, request.stdin) {
            let mut buf = vec![0u8; STDIN_CHUNK];
            loop {
                // An unreadable stdin ends like an empty one.
                let n: usize = input.read(&mut buf).await.unwrap_or_default();
                let Ok(h) = Header::encode(&Stdin { size: n as u64 }) else {
                    break;
                };
                let sent = if n == 0 {
                    writer.send(&h).await
                } else {
                    match writer.feed(&h).await {
                        Ok(()) => writer.send(Bytes::copy_from_slice(&buf[..n])).await,
                        Err(e) => Err(e),
                    }
                };
                if sent.is_err() || n == 0 {
                    break;
                }
            }
        }
        let mut tick = tokio::time::interval(KEEPALIVE);
        tick.tick().await;
        loop {
            tick.tick().await;
            if writer.send(&keepalive).await.is_err() {
                // The reader sees the broken connection and reports it.
                std::future::pending::<()>().await;
            }
        }
    };
    let receive = async {
        loop {
            let h = next_header(&mut reader).await?;
            if h.cmd() == Exit::CMD {
                return Ok(ExitFrame::parse(&h));
            }
            // Anything else must be output: `stdout` or `stderr`.
            match h.decode::<Output>() {
                Ok(out) => {
                    let to_stdout = out.cmd == Stream::Stdout;
                    let mut left = h.body_len().map_err(FrameError::from)?;
                    while left > 0 {
                        match reader.next().await {
                            Some(Ok(Frame::Body(b))) => {
                                left = left.saturating_sub(b.len() as u64);
                                let w = if to_stdout {
                                    stdout.write_all(&b).await
                                } else {
                                    stderr.write_all(&b).await
                                };
                                w.map_err(ExecClientError::Local)?;
                            }
                            Some(Err(e)) => return Err(e.into()),
                            _ => return Err(FrameError::Truncated("output frame").into()),
                        }
                    }
                    let f = if to_stdout {
                        stdout.flush().await
                    } else {
                        stderr.flush().await
                    };
                    f.map_err(ExecClientError::Local)?;
                }
                Err(_) => return Err(ExecClientError::Protocol(format!("{h:?}"))),
            }
        }
    };
    tokio::select! {
        r = receive => r,
        () = forward => unreachable!("forwarding never ends on its own"),
    }
}

/// Reads the next header; an error response becomes [`ClientError::Remote`].
async fn next_header<R: AsyncRead + Unpin>(
    reader: &mut FramedRead<R, FrameCodec>,
) -> Result<Header, ExecClientError> {
    match reader.next().await {
        None => Err(ClientError::Closed.into()),
        Some(Err(e)) => Err(e.into()),
        Some(Ok(Frame::Invalid(e))) => Err(ExecClientError::Protocol(e.to_string())),
        Some(Ok(Frame::Body(_))) => Err(ExecClientError::Protocol("stray body bytes".into())),
        Some(Ok(Frame::Header(h))) => match h.as_error() {
            Some((code, message)) => Err(ClientError::Remote { code, message }.into()),
            None => Ok(h),
        },
    }
}

/// Whether an error is the server refusing exec (disabled or not authenticated).
pub fn is_denied(e: &ExecClientError) -> bool {
    matches!(
        e,
        ExecClientError::Client(ClientError::Remote {
            code: ErrorCode::Denied,
            ..
        })
    )
}
