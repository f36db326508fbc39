//! Received DATA payloads into a writer, netascii-decoded when the mode says so.

use crate::netascii::Decoder;
use crate::packets::Mode;
use std::io;
use tokio::io::{AsyncWrite, AsyncWriteExt};

/// Writes payloads in order; call [`BlockSink::finish`] after the last one.
#[derive(Debug)]
pub(crate) struct BlockSink<W> {
    writer: W,
    decoder: Option<Decoder>,
    scratch: Vec<u8>,
    /// Local bytes written (after netascii decoding).
    written: u64,
    /// Most local bytes accepted; past it writes fail.
    limit: u64,
}

impl<W: AsyncWrite + Unpin> BlockSink<W> {
    /// A sink writing to `writer`.
    pub fn new(writer: W, mode: Mode) -> BlockSink<W> {
        BlockSink {
            writer,
            decoder: (mode == Mode::Netascii).then(Decoder::new),
            scratch: Vec::new(),
            written: 0,
            limit: u64::MAX,
        }
    }

    /// Refuses to write more than `limit` local bytes.
    pub fn with_limit(mut self, limit: u64) -> BlockSink<W> {
        self.limit = limit;
        self
    }

    fn check_limit(&self, more: usize) -> io::Result<()> {
        if self.written.saturating_add(more as u64) > self.limit {
            return Err(io::Error::other(format!(
                "upload larger than the limit of {} bytes",
                self.limit
            )));
        }
        Ok(())
    }

    /// Writes one payload.
    ///
    /// # Errors
    /// The writer's error.
    pub async fn write(&mut self, payload: &[u8]) -> io::Result<()> {
        match &mut self.decoder {
            None => {
                self.check_limit(payload.len())?;
                self.writer.write_all(payload).await?;
                self.written += payload.len() as u64;
            }
            Some(decoder) => {
                self.scratch.clear();
                decoder.decode(payload, &mut self.scratch);
                self.check_limit(self.scratch.len())?;
                self.writer.write_all(&self.scratch).await?;
                self.written += self.scratch.len() as u64;
            }
        }
        Ok(())
    }

    /// Flushes what is left and returns the writer.
    ///
    /// # Errors
    /// The writer's error.
    pub async fn finish(mut self) -> io::Result<W> {
        if let Some(decoder) = &mut self.decoder {
            self.scratch.clear();
            decoder.finish(&mut self.scratch);
            self.writer.write_all(&self.scratch).await?;
            self.written += self.scratch.len() as u64;
        }
        self.writer.flush().await?;
        Ok(self.writer)
    }

    /// Local bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn netascii_decoded() {
        let mut sink = BlockSink::new(Vec::new(), Mode::Netascii);
        sink.write(b"a\r").await.unwrap();
        sink.write(b"\nb\r\0").await.unwrap();
        let out = sink.finish().await.unwrap();
        assert_eq!(out, b"a\nb\r");
    }

    #[tokio::test]
    async fn limit_enforced() {
        let mut sink = BlockSink::new(Vec::new(), Mode::Octet).with_limit(4);
        sink.write(b"abcd").await.unwrap();
        let err = sink.write(b"e").await.unwrap_err();
        assert!(err.to_string().contains("limit of 4 bytes"), "{err}");
    }

    #[tokio::test]
    async fn octet_untouched() {
        let mut sink = BlockSink::new(Vec::new(), Mode::Octet);
        sink.write(b"a\r\n").await.unwrap();
        assert_eq!(sink.written(), 3);
        assert_eq!(sink.finish().await.unwrap(), b"a\r\n");
    }
}
