//! A stream wrapper that enforces the runtime's timeouts on every service uniformly.
//!
//! - **first byte**: until the peer has sent its first byte, a pending read fails after
//!   the handshake timeout (a client that connects and sends nothing is dropped);
//! - **idle**: afterwards, a pending read fails when nothing moved in either direction for
//!   the idle timeout;
//! - **write**: a write that makes no progress for the write timeout fails (a peer that
//!   stops reading cannot pin the server's buffers forever).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Timeouts applied by a [`GuardedStream`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// How long a new connection may stay silent before its first byte.
    pub first_byte: Duration,
    /// How long a connection may be idle (no bytes either way) while the server waits to read.
    pub idle: Duration,
    /// How long one write may make no progress.
    pub write: Duration,
}

/// A stream with read/idle/write deadlines.
#[derive(Debug)]
pub struct GuardedStream<S> {
    inner: S,
    timeouts: StreamTimeouts,
    /// When the last byte moved either way (or the connection opened).
    last_activity: Instant,
    got_first_byte: bool,
    read_timer: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    /// When the current stalled write started waiting; `None` while writes progress.
    write_deadline: Option<Instant>,
}

impl<S> GuardedStream<S> {
    /// Wraps `inner`; the first-byte clock starts now.
    pub fn new(inner: S, timeouts: StreamTimeouts) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timeouts,
            last_activity: now,
            got_first_byte: false,
            read_timer: Box::pin(tokio::time::sleep_until(now)),
            read_deadline: None,
            write_timer: Box::pin(tokio::time::sleep_until(now)),
            write_deadline: None,
        }
    }

    /// The wrapped stream.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped stream, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Whether the peer has sent at least one byte.
    pub fn got_first_byte(&self) -> bool {
        self.got_first_byte
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<S: AsyncRead + Unpin> AsyncRead for GuardedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.got_first_byte = true;
                    this.last_activity = Instant::now();
                }
                this.read_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let (deadline, what) = if this.got_first_byte {
                    (this.last_activity + this.timeouts.idle, "idle timeout")
                } else {
                    (
                        this.last_activity + this.timeouts.first_byte,
                        "no data before the handshake timeout",
                    )
                };
                if this.read_deadline != Some(deadline) {
                    this.read_timer.as_mut().reset(deadline);
                    this.read_deadline = Some(deadline);
                }
                match this.read_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out(what))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> GuardedStream<S> {
    fn after_write<T>(
        &mut self,
        cx: &mut Context<'_>,
        res: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        match res {
            Poll::Ready(r) => {
                self.write_deadline = None;
                self.last_activity = Instant::now();
                Poll::Ready(r)
            }
            Poll::Pending => {
                if self.write_deadline.is_none() {
                    let deadline = Instant::now() + self.timeouts.write;
                    self.write_timer.as_mut().reset(deadline);
                    self.write_deadline = Some(deadline);
                }
                match self.write_timer.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        Poll::Ready(Err(timed_out("write timeout: peer is not reading")))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for GuardedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, res)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, res)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_flush(cx);
        self.after_write(cx, res)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let res = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.after_write(cx, res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn timeouts(ms: u64) -> StreamTimeouts {
        StreamTimeouts {
            first_byte: Duration::from_millis(ms),
            idle: Duration::from_millis(ms * 3),
            write: Duration::from_millis(ms),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn silent_peer_hits_first_byte_timeout() {
        let (a, _b) = tokio::io::duplex(64);
        let mut g = GuardedStream::new(a, timeouts(100));
        let mut buf = [0u8; 8];
        let err = g.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("handshake"));
    }

    #[tokio::test(start_paused = true)]
    async fn idle_after_first_byte() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut g = GuardedStream::new(a, timeouts(100));
        b.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
        let start = Instant::now();
        let err = g.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("idle"));
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_write_times_out() {
        let (a, _b) = tokio::io::duplex(16);
        let mut g = GuardedStream::new(a, timeouts(100));
        let err = g.write_all(&[0u8; 1024]).await.unwrap_err();
        assert!(err.to_string().contains("write timeout"));
    }
}
