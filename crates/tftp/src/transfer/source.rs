//! Blocks of a file for the sender, netascii-encoded when the mode says so.

use crate::netascii;
use crate::packets::{data_header, Mode};
use bytes::{Bytes, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Cuts a byte stream into DATA packets of `blksize` bytes; the last one is shorter
/// (possibly empty).
#[derive(Debug)]
pub(crate) struct BlockSource<R> {
    reader: R,
    mode: Mode,
    blksize: usize,
    /// Netascii bytes encoded but not yet sent (netascii mode only).
    encoded: Vec<u8>,
    /// Raw bytes read for encoding (netascii mode only).
    raw: Vec<u8>,
    eof: bool,
}

impl<R: AsyncRead + Unpin> BlockSource<R> {
    /// A source reading from `reader`.
    pub fn new(reader: R, mode: Mode, blksize: u16) -> BlockSource<R> {
        BlockSource {
            reader,
            mode,
            blksize: usize::from(blksize),
            encoded: Vec::new(),
            raw: Vec::new(),
            eof: false,
        }
    }

    /// The next DATA packet for `block`: header plus up to `blksize` payload bytes.
    /// A payload shorter than `blksize` marks the end of the transfer.
    ///
    /// # Errors
    /// The reader's error.
    pub async fn next_packet(&mut self, block: u16) -> io::Result<Bytes> {
        let mut packet = BytesMut::with_capacity(4 + self.blksize);
        packet.extend_from_slice(&data_header(block));
        match self.mode {
            Mode::Octet => {
                packet.resize(4 + self.blksize, 0);
                let mut filled = 0;
                while filled < self.blksize && !self.eof {
                    let n = self.reader.read(&mut packet[4 + filled..]).await?;
                    if n == 0 {
                        self.eof = true;
                    }
                    filled += n;
                }
                packet.truncate(4 + filled);
            }
            Mode::Netascii => {
                while self.encoded.len() < self.blksize && !self.eof {
                    self.raw.resize(self.blksize, 0);
                    let n = self.reader.read(&mut self.raw).await?;
                    if n == 0 {
                        self.eof = true;
                    }
                    netascii::encode(&self.raw[..n], &mut self.encoded);
                }
                let take = self.encoded.len().min(self.blksize);
                packet.extend_from_slice(&self.encoded[..take]);
                self.encoded.drain(..take);
            }
        }
        Ok(packet.freeze())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn payloads(data: &[u8], mode: Mode, blksize: u16) -> Vec<Vec<u8>> {
        let mut source = BlockSource::new(data, mode, blksize);
        let mut out = Vec::new();
        for block in 1u16.. {
            let packet = source.next_packet(block).await.unwrap();
            assert_eq!(&packet[..4], &data_header(block));
            let payload = packet[4..].to_vec();
            let last = payload.len() < usize::from(blksize);
            out.push(payload);
            if last {
                break;
            }
        }
        out
    }

    #[tokio::test]
    async fn exact_multiple_ends_with_empty_block() {
        let blocks = payloads(&[7u8; 16], Mode::Octet, 8).await;
        assert_eq!(blocks.iter().map(Vec::len).collect::<Vec<_>>(), [8, 8, 0]);
    }

    #[tokio::test]
    async fn empty_file_is_one_empty_block() {
        let blocks = payloads(b"", Mode::Octet, 512).await;
        assert_eq!(blocks, vec![Vec::<u8>::new()]);
    }

    #[tokio::test]
    async fn netascii_expands_across_blocks() {
        let blocks = payloads(b"abcdefg\nhij\n", Mode::Netascii, 8).await;
        assert_eq!(blocks.concat(), b"abcdefg\r\nhij\r\n");
        assert_eq!(blocks.iter().map(Vec::len).collect::<Vec<_>>(), [8, 6]);
    }
}
