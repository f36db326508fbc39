//! `block` frames on a framed connection: [`BlockWriter`] turns raw bytes into blocks
//! (compressing on a blocking thread, one block ahead of the socket), [`BlockReader`]
//! reads blocks and yields the raw bytes, checking every frame.

use bytes::{Bytes, BytesMut};
use sockit_runtime::guarded::RequestClock;
use sockit_wire::connection::{BoxedStream, Connection};
use sockit_wire::header::Message;
use sockit_wire::{FrameError, Header, Incoming};
use tokio::task::JoinHandle;

use super::{decode_block, encode_block, BlockError, Encoded, BLOCK_RAW};
use crate::messages::Block;

/// A failure while blocks are read or written.
#[derive(Debug, thiserror::Error)]
pub enum BlocksError {
    /// The connection failed (or closed mid-stream).
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A frame that is not a well-formed block of this stream.
    #[error(transparent)]
    Bad(#[from] BlockError),
}

fn join_failed(e: tokio::task::JoinError) -> FrameError {
    FrameError::Io(std::io::Error::other(format!(
        "compression thread failed: {e}"
    )))
}

/// Sends raw bytes as `block` frames of [`BLOCK_RAW`] bytes each (the last may be
/// shorter). Each block is encoded on a blocking thread while the one before it is sent.
#[derive(Debug, Default)]
pub(crate) struct BlockWriter {
    /// Raw bytes not yet a whole block.
    pending: BytesMut,
    /// The block being encoded.
    in_flight: Option<JoinHandle<Encoded>>,
    /// Body bytes of the blocks sent so far (what the transfer cost on the wire, frame
    /// headers aside).
    wire: u64,
}

impl BlockWriter {
    /// A writer with nothing sent.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes raw bytes; every whole block among them is encoded and sent.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn write(
        &mut self,
        conn: &mut Connection<BoxedStream>,
        data: Bytes,
    ) -> Result<(), FrameError> {
        if self.pending.is_empty() && data.len() == BLOCK_RAW {
            // A whole block as it came from the disk: no copy.
            return self.start(conn, data).await;
        }
        let mut data = &data[..];
        while !data.is_empty() {
            let take = (BLOCK_RAW - self.pending.len()).min(data.len());
            self.pending.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.pending.len() == BLOCK_RAW {
                let block = self.pending.split().freeze();
                self.start(conn, block).await?;
            }
        }
        Ok(())
    }

    /// Starts encoding `block` after sending the one encoded before it.
    async fn start(
        &mut self,
        conn: &mut Connection<BoxedStream>,
        block: Bytes,
    ) -> Result<(), FrameError> {
        self.send_in_flight(conn).await?;
        self.in_flight = Some(tokio::task::spawn_blocking(move || encode_block(block)));
        Ok(())
    }

    async fn send_in_flight(
        &mut self,
        conn: &mut Connection<BoxedStream>,
    ) -> Result<(), FrameError> {
        let Some(job) = self.in_flight.take() else {
            return Ok(());
        };
        let e = job.await.map_err(join_failed)?;
        let frame = Block {
            raw: e.raw,
            zstd: e.zstd,
            size: e.data.len() as u64,
        };
        let h = Header::encode(&frame).map_err(|e| FrameError::Io(std::io::Error::other(e)))?;
        self.wire += e.data.len() as u64;
        conn.send_with_body(&h, e.data).await
    }

    /// Sends what is left (the last, shorter block) and flushes; returns the body bytes
    /// sent in all.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn finish(mut self, conn: &mut Connection<BoxedStream>) -> Result<u64, FrameError> {
        if !self.pending.is_empty() {
            let block = self.pending.split().freeze();
            self.start(conn, block).await?;
        }
        self.send_in_flight(conn).await?;
        conn.flush().await?;
        Ok(self.wire)
    }
}

/// Reads the `block` frames of one encoded body, `raw_size` bytes in all.
#[derive(Debug)]
pub(crate) struct BlockReader {
    /// Raw bytes still to come.
    left: u64,
    /// Body bytes of the blocks read so far.
    wire: u64,
}

impl BlockReader {
    /// A reader of blocks standing for `raw_size` bytes.
    pub fn new(raw_size: u64) -> Self {
        Self {
            left: raw_size,
            wire: 0,
        }
    }

    /// Body bytes of the blocks read so far.
    pub fn wire(&self) -> u64 {
        self.wire
    }

    /// The raw bytes of the next block; `None` once `raw_size` bytes came. On a server,
    /// `clock` hears of every block frame (a whole frame, like a request, and its body
    /// streaming in), so a long compressed upload is not taken for an idle connection.
    ///
    /// # Errors
    /// The connection failed or closed ([`BlocksError::Frame`]); a frame that is not a
    /// block, or a block that is malformed or goes past `raw_size` ([`BlocksError::Bad`]).
    pub async fn next(
        &mut self,
        conn: &mut Connection<BoxedStream>,
        clock: Option<&RequestClock>,
    ) -> Result<Option<Bytes>, BlocksError> {
        if self.left == 0 {
            return Ok(None);
        }
        let bad = |m: String| BlocksError::Bad(BlockError::Bad(m));
        let h = match conn.read_header().await? {
            None => return Err(FrameError::Truncated("block").into()),
            Some(Incoming::Invalid(e)) => return Err(bad(e.to_string())),
            Some(Incoming::Header(h)) => h,
        };
        if h.cmd() != Block::CMD {
            return Err(bad(format!(
                "expected a block frame, got {}",
                h.cmd().unwrap_or("a frame without `cmd`")
            )));
        }
        let b: Block = h.decode().map_err(|e| bad(e.to_string()))?;
        let size = conn.body_remaining();
        if b.size != size {
            return Err(bad(format!(
                "block `size` {} is not its body length {size}",
                b.size
            )));
        }
        if b.raw > self.left {
            return Err(bad(format!(
                "a block of {} bytes goes past the {} bytes still to come",
                b.raw, self.left
            )));
        }
        if b.raw == 0 || b.raw > BLOCK_RAW as u64 || size > b.raw {
            return Err(bad(format!(
                "a block stands for 1 to {BLOCK_RAW} bytes and is no longer than that"
            )));
        }
        if let Some(c) = clock {
            c.request_complete();
            c.set_streaming(true);
        }
        let body = conn.read_body_to_vec(b.raw).await;
        if let Some(c) = clock {
            c.set_streaming(false);
        }
        let body = Bytes::from(body?);
        self.wire += body.len() as u64;
        let raw = if b.zstd {
            tokio::task::spawn_blocking(move || decode_block(b.raw, true, body))
                .await
                .map_err(join_failed)??
        } else {
            decode_block(b.raw, false, body)?
        };
        self.left -= b.raw;
        Ok(Some(raw))
    }

    /// Reads every remaining block into memory (a batch body, at most `raw_size` bytes).
    ///
    /// # Errors
    /// As [`Self::next`].
    pub async fn read_all(
        mut self,
        conn: &mut Connection<BoxedStream>,
        clock: Option<&RequestClock>,
    ) -> Result<(Vec<u8>, u64), BlocksError> {
        let mut out = Vec::with_capacity(usize::try_from(self.left).unwrap_or(0));
        while let Some(b) = self.next(conn, clock).await? {
            out.extend_from_slice(&b);
        }
        Ok((out, self.wire))
    }
}

/// Reads and drops `block` frames until a frame that is not one; returns that frame's
/// header (`None` at the end of the stream). For the rest of a refused upload.
///
/// # Errors
/// The connection failed.
pub(crate) async fn skip_blocks(
    conn: &mut Connection<BoxedStream>,
) -> Result<Option<Incoming>, FrameError> {
    loop {
        match conn.read_header().await? {
            Some(Incoming::Header(h)) if h.cmd() == Block::CMD => conn.discard_body().await?,
            other => return Ok(other),
        }
    }
}

/// Where a body's bytes come from: the frame's own body, or `block` frames.
#[derive(Debug)]
pub(crate) enum BodyReader {
    /// The frame's body, as the socket delivers it.
    Raw,
    /// Block frames standing for a known number of bytes.
    Blocks(BlockReader),
}

impl BodyReader {
    /// Raw for `None`, blocks standing for `raw_size` bytes for `Some(raw_size)`.
    pub fn new(encoded: Option<u64>) -> Self {
        match encoded {
            None => Self::Raw,
            Some(raw) => Self::Blocks(BlockReader::new(raw)),
        }
    }

    /// The next bytes of the body; `None` at its end.
    ///
    /// # Errors
    /// As [`BlockReader::next`]; a raw body cut short is [`BlocksError::Frame`].
    pub async fn next(
        &mut self,
        conn: &mut Connection<BoxedStream>,
        clock: Option<&RequestClock>,
    ) -> Result<Option<Bytes>, BlocksError> {
        match self {
            Self::Raw => Ok(conn.read_body_chunk().await?),
            Self::Blocks(b) => b.next(conn, clock).await,
        }
    }

    /// Body bytes of the blocks read so far (`None` for a raw body).
    pub fn wire(&self) -> Option<u64> {
        match self {
            Self::Raw => None,
            Self::Blocks(b) => Some(b.wire()),
        }
    }
}

/// Where a body's bytes go: straight onto the stream after a frame that announced them,
/// or as `block` frames.
#[derive(Debug)]
pub(crate) enum BodyWriter {
    /// Written as they are (the frame announced their length).
    Raw {
        /// Bytes written.
        sent: u64,
    },
    /// Block frames.
    Blocks(BlockWriter),
}

impl BodyWriter {
    /// Blocks when `compress`, else raw.
    pub fn new(compress: bool) -> Self {
        if compress {
            Self::Blocks(BlockWriter::new())
        } else {
            Self::Raw { sent: 0 }
        }
    }

    /// Sends bytes of the body.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn write(
        &mut self,
        conn: &mut Connection<BoxedStream>,
        data: Bytes,
    ) -> Result<(), FrameError> {
        match self {
            Self::Raw { sent } => {
                use tokio::io::AsyncWriteExt;
                conn.stream_mut().write_all(&data).await?;
                *sent += data.len() as u64;
                Ok(())
            }
            Self::Blocks(b) => b.write(conn, data).await,
        }
    }

    /// Sends what is left and flushes; returns the body bytes on the wire.
    ///
    /// # Errors
    /// The connection failed.
    pub async fn finish(self, conn: &mut Connection<BoxedStream>) -> Result<u64, FrameError> {
        match self {
            Self::Raw { sent } => {
                use tokio::io::AsyncWriteExt;
                conn.stream_mut().flush().await?;
                Ok(sent)
            }
            Self::Blocks(b) => b.finish(conn).await,
        }
    }
}
