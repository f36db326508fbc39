//! A [`Connection`] reads and writes frames over any byte stream.

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::Framed;

use crate::codec::{Frame, FrameCodec, FrameError, HeaderError};
use crate::header::Header;

/// What [`Connection::read_header`] got.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A well-formed header; read its body with [`Connection::read_body_chunk`].
    Header(Header),
    /// A correctly framed but unusable header; answer `bad_request` and go on.
    Invalid(HeaderError),
}

pub use sockit_runtime::stream::{AsyncStream, BoxedStream};

/// A framed connection.
pub struct Connection<S> {
    framed: Framed<S, FrameCodec>,
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("body_remaining", &self.framed.codec().body_remaining())
            .finish()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Wraps a stream with a 128 KiB read buffer.
    pub fn new(stream: S) -> Self {
        Self::with_codec(stream, FrameCodec::new())
    }

    /// Wraps a stream with a given codec (e.g. a smaller header cap).
    pub fn with_codec(stream: S, codec: FrameCodec) -> Self {
        Self {
            framed: Framed::with_capacity(stream, codec, 128 * 1024),
        }
    }

    /// Reads the next header. `Ok(None)` is a clean end of stream between frames.
    ///
    /// If the previous frame's body was not fully read, the rest is discarded first.
    ///
    /// # Errors
    /// A framing error (the stream can no longer be trusted) or an I/O error.
    pub async fn read_header(&mut self) -> Result<Option<Incoming>, FrameError> {
        self.discard_body().await?;
        match self.framed.next().await {
            None => Ok(None),
            Some(Err(e)) => Err(e),
            Some(Ok(Frame::Header(h))) => Ok(Some(Incoming::Header(h))),
            Some(Ok(Frame::Invalid(e))) => Ok(Some(Incoming::Invalid(e))),
            Some(Ok(Frame::Body(_))) => {
                unreachable!("the codec yields body chunks only after a header")
            }
        }
    }

    /// Bytes received and not yet decoded (what a peer that speaks another protocol
    /// sent, once decoding failed).
    pub fn unread(&self) -> &[u8] {
        self.framed.read_buffer()
    }

    /// Bytes of the current body not yet read.
    pub fn body_remaining(&self) -> u64 {
        self.framed.codec().body_remaining()
    }

    /// Reads the next chunk of the current body; `Ok(None)` once the body is complete.
    ///
    /// # Errors
    /// The peer closed the connection mid-body, or an I/O error.
    pub async fn read_body_chunk(&mut self) -> Result<Option<Bytes>, FrameError> {
        if self.body_remaining() == 0 {
            return Ok(None);
        }
        match self.framed.next().await {
            Some(Ok(Frame::Body(b))) => Ok(Some(b)),
            Some(Err(e)) => Err(e),
            None => Err(FrameError::Truncated("body")),
            Some(Ok(_)) => unreachable!("a header cannot start inside a body"),
        }
    }

    /// Reads the whole current body into memory, refusing more than `limit` bytes.
    ///
    /// # Errors
    /// The body is over `limit` (it is discarded), or a read error.
    pub async fn read_body_to_vec(&mut self, limit: u64) -> Result<Vec<u8>, FrameError> {
        let len = self.body_remaining();
        if len > limit {
            self.discard_body().await?;
            return Err(FrameError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("body of {len} bytes is over the limit of {limit}"),
            )));
        }
        let mut out = Vec::with_capacity(len as usize);
        while let Some(chunk) = self.read_body_chunk().await? {
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Reads and drops the rest of the current body.
    ///
    /// # Errors
    /// A read error or the peer closing mid-body.
    pub async fn discard_body(&mut self) -> Result<(), FrameError> {
        while self.read_body_chunk().await?.is_some() {}
        Ok(())
    }

    /// Sends a header and flushes.
    ///
    /// # Errors
    /// An I/O error, or a header over the cap.
    pub async fn send(&mut self, header: &Header) -> Result<(), FrameError> {
        self.framed.send(header).await
    }

    /// Sends a header followed by a body given in memory (the header must announce the
    /// body's length), then flushes.
    ///
    /// # Errors
    /// An I/O error, or a header over the cap.
    pub async fn send_with_body(&mut self, header: &Header, body: Bytes) -> Result<(), FrameError> {
        self.framed.feed(header).await?;
        self.framed.send(body).await
    }

    /// Queues a header without flushing.
    ///
    /// # Errors
    /// An I/O error, or a header over the cap.
    pub async fn feed_header(&mut self, header: &Header) -> Result<(), FrameError> {
        self.framed.feed(header).await
    }

    /// Queues a body chunk without flushing (large buffers are written through).
    ///
    /// # Errors
    /// An I/O error.
    pub async fn feed_body(&mut self, chunk: Bytes) -> Result<(), FrameError> {
        self.framed.feed(chunk).await
    }

    /// Flushes queued frames.
    ///
    /// # Errors
    /// An I/O error.
    pub async fn flush(&mut self) -> Result<(), FrameError> {
        SinkExt::<&Header>::flush(&mut self.framed).await
    }

    /// The underlying stream, for zero-copy paths. Read buffering state is kept by the
    /// connection: only use this between frames or after [`Self::read_buffer_len`] is 0.
    pub fn stream_mut(&mut self) -> &mut S {
        self.framed.get_mut()
    }

    /// The number of already-received bytes buffered in the connection.
    pub fn read_buffer_len(&self) -> usize {
        self.framed.read_buffer().len()
    }

    /// Gives back the stream (dropping buffered data).
    pub fn into_inner(self) -> S {
        self.framed.into_inner()
    }
}
