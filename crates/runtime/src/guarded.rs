//! A stream wrapper that enforces the runtime's timeouts on every service uniformly, in a
//! way trickled bytes cannot stretch.
//!
//! - **first request**: until the protocol reports its first whole request on the
//!   stream's [`RequestClock`] (a frame header, a line, an HTTP request head, a finished
//!   IRC registration), a pending read fails once the handshake timeout has passed since
//!   the connection opened. Bytes that arrive do not extend it, so a client that trickles
//!   a request one byte at a time is dropped like one that sends nothing;
//! - **idle**: afterwards, a pending read fails once the idle timeout has passed since the
//!   latest of: the last whole request, the last write that made progress (the server is
//!   still answering, e.g. a long download), and, only while the protocol says a request
//!   body is streaming in, the last byte received;
//! - **write**: a write that makes no progress for the write timeout fails (a peer that
//!   stops reading cannot pin the server's buffers forever).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
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

/// A cloneable handle on a [`GuardedStream`]'s deadlines, given to the protocol code so it
/// can say when a whole request has arrived (cheap: an `Arc` of atomics).
#[derive(Debug, Clone)]
pub struct RequestClock {
    inner: Arc<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    /// Origin of the millisecond counters below.
    origin: Instant,
    /// Milliseconds from `origin` to the last whole request, plus one (0: none yet).
    last_request: AtomicU64,
    /// Whether a request body is streaming in (received bytes count as progress).
    streaming: AtomicBool,
}

impl Default for RequestClock {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestClock {
    /// A clock starting now with no request seen (for tests and streams outside the
    /// runtime).
    pub fn new() -> Self {
        Self {
            inner: Arc::new(ClockState {
                origin: Instant::now(),
                last_request: AtomicU64::new(0),
                streaming: AtomicBool::new(false),
            }),
        }
    }

    /// A whole request arrived (a frame header, a line, an HTTP request head, a finished
    /// IRC registration and every later complete IRC line): idle time counts from now.
    pub fn request_complete(&self) {
        let ms = u64::try_from(self.inner.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.inner
            .last_request
            .store(ms.saturating_add(1), Ordering::Relaxed);
    }

    /// While `on`, a request body is streaming in: received bytes count as progress.
    pub fn set_streaming(&self, on: bool) {
        self.inner.streaming.store(on, Ordering::Relaxed);
    }

    /// Whether the protocol has reported a whole request yet.
    pub fn seen_request(&self) -> bool {
        self.inner.last_request.load(Ordering::Relaxed) != 0
    }

    fn last_request(&self) -> Option<Instant> {
        match self.inner.last_request.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(self.inner.origin + Duration::from_millis(ms - 1)),
        }
    }

    fn streaming(&self) -> bool {
        self.inner.streaming.load(Ordering::Relaxed)
    }
}

/// A stream with first-request, idle and write deadlines.
#[derive(Debug)]
pub struct GuardedStream<S> {
    inner: S,
    timeouts: StreamTimeouts,
    /// When the connection opened (the first-request deadline counts from here).
    opened: Instant,
    /// When the last write made progress, or a body byte arrived while streaming.
    last_progress: Instant,
    got_first_byte: bool,
    clock: RequestClock,
    read_timer: Pin<Box<Sleep>>,
    read_deadline: Option<Instant>,
    write_timer: Pin<Box<Sleep>>,
    /// When the current stalled write started waiting; `None` while writes progress.
    write_deadline: Option<Instant>,
}

impl<S> GuardedStream<S> {
    /// Wraps `inner` with a fresh [`RequestClock`]; the first-request deadline starts now.
    pub fn new(inner: S, timeouts: StreamTimeouts) -> Self {
        Self::with_clock(inner, timeouts, RequestClock::new())
    }

    /// Wraps `inner`, reporting requests on `clock`; the first-request deadline starts now.
    pub fn with_clock(inner: S, timeouts: StreamTimeouts, clock: RequestClock) -> Self {
        let now = Instant::now();
        Self {
            inner,
            timeouts,
            opened: now,
            last_progress: now,
            got_first_byte: false,
            clock,
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

    /// The handle the protocol reports whole requests on.
    pub fn clock(&self) -> RequestClock {
        self.clock.clone()
    }

    /// The read deadline now, and what its expiry is called.
    fn read_deadline(&self) -> (Instant, &'static str) {
        match self.clock.last_request() {
            None => (
                self.opened + self.timeouts.first_byte,
                if self.got_first_byte {
                    "no complete request before the handshake timeout"
                } else {
                    "no data before the handshake timeout"
                },
            ),
            Some(req) => (
                req.max(self.last_progress) + self.timeouts.idle,
                "idle timeout",
            ),
        }
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
                    if this.clock.streaming() {
                        this.last_progress = Instant::now();
                    }
                }
                this.read_deadline = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                // The deadline moves when the protocol reports a request or a write
                // progresses (possibly from the other half of a split stream), so it is
                // recomputed on every poll and once more when the timer fires.
                loop {
                    let (deadline, what) = this.read_deadline();
                    if this.read_deadline != Some(deadline) {
                        this.read_timer.as_mut().reset(deadline);
                        this.read_deadline = Some(deadline);
                    }
                    match this.read_timer.as_mut().poll(cx) {
                        Poll::Ready(()) if this.read_deadline().0 > deadline => continue,
                        Poll::Ready(()) => return Poll::Ready(Err(timed_out(what))),
                        Poll::Pending => return Poll::Pending,
                    }
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
                self.last_progress = Instant::now();
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
    async fn idle_counts_from_the_last_request() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut g = GuardedStream::new(a, timeouts(100));
        let clock = g.clock();
        b.write_all(b"x").await.unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(g.read(&mut buf).await.unwrap(), 1);
        clock.request_complete();
        let start = Instant::now();
        let err = g.read(&mut buf).await.unwrap_err();
        assert!(err.to_string().contains("idle"));
        assert!(start.elapsed() >= Duration::from_millis(300));
    }

    #[tokio::test(start_paused = true)]
    async fn trickled_bytes_do_not_extend_the_first_request_deadline() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut g = GuardedStream::new(a, timeouts(100));
        tokio::spawn(async move {
            for _ in 0..100 {
                tokio::time::sleep(Duration::from_millis(30)).await;
                if b.write_all(b"x").await.is_err() {
                    return;
                }
            }
        });
        let start = Instant::now();
        let mut buf = [0u8; 8];
        let err = loop {
            match g.read(&mut buf).await {
                Ok(0) => panic!("unexpected EOF"),
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("no complete request"), "{err}");
        // Dropped at the handshake deadline, not when the trickle ends 3 s later.
        assert!(start.elapsed() < Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn trickled_bytes_do_not_extend_idle_but_a_streaming_body_does() {
        let (a, mut b) = tokio::io::duplex(64);
        let mut g = GuardedStream::new(a, timeouts(100));
        let clock = g.clock();
        clock.request_complete();
        let writer = tokio::spawn(async move {
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if b.write_all(b"x").await.is_err() {
                    return;
                }
            }
        });
        let mut buf = [0u8; 8];
        let start = Instant::now();
        // Not streaming: the idle deadline (300 ms after the request) holds.
        let err = loop {
            match g.read(&mut buf).await {
                Ok(_) => continue,
                Err(e) => break e,
            }
        };
        assert!(err.to_string().contains("idle"));
        assert!(start.elapsed() < Duration::from_millis(400));
        writer.abort();

        // Streaming: the same trickle keeps the connection alive.
        let (a, mut b) = tokio::io::duplex(64);
        let mut g = GuardedStream::new(a, timeouts(100));
        let clock = g.clock();
        clock.request_complete();
        clock.set_streaming(true);
        tokio::spawn(async move {
            for _ in 0..40 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                b.write_all(b"x").await.unwrap();
            }
        });
        let mut got = 0;
        while got < 40 {
            got += g.read(&mut buf).await.unwrap();
        }
    }

    #[tokio::test(start_paused = true)]
    async fn writes_that_progress_keep_a_connection_out_of_idle() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let g = GuardedStream::new(a, timeouts(100));
        g.clock().request_complete();
        let (mut r, mut w) = tokio::io::split(g);
        tokio::spawn(async move {
            for _ in 0..20 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                w.write_all(b"y").await.unwrap();
            }
        });
        let mut buf = [0u8; 8];
        let reader = tokio::spawn(async move { r.read(&mut buf).await.map(|_| ()) });
        // 2 s of answers, then silence: the read fails 300 ms after the last write.
        let mut sink = [0u8; 32];
        let mut got = 0;
        while got < 20 {
            got += b.read(&mut sink).await.unwrap();
        }
        let started = Instant::now();
        let err = reader.await.unwrap().unwrap_err();
        assert!(err.to_string().contains("idle"));
        assert!(started.elapsed() >= Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn stalled_write_times_out() {
        let (a, _b) = tokio::io::duplex(16);
        let mut g = GuardedStream::new(a, timeouts(100));
        let err = g.write_all(&[0u8; 1024]).await.unwrap_err();
        assert!(err.to_string().contains("write timeout"));
    }
}
