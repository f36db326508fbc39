//! The echo logic itself, shared by the models: a blocking loop and a non-blocking
//! state machine that handles short reads and short writes.

use std::io::{self, Read, Write};

/// Size of the read buffer each blocking handler or event loop uses.
pub const BUF_SIZE: usize = 16 * 1024;

/// Echoes everything read from `stream` back to it until EOF (blocking sockets).
/// `write_all` takes care of short writes.
///
/// # Errors
/// Whatever the socket reports (a reset peer gives `ConnectionReset`).
pub fn echo_blocking<S: Read + Write>(stream: &mut S) -> io::Result<u64> {
    let mut buf = [0u8; BUF_SIZE];
    let mut total = 0u64;
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// What a non-blocking connection waits for next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Wait until readable.
    Read,
    /// Bytes are pending: wait until writable (and stop reading: backpressure).
    Write,
    /// The peer closed and everything was echoed: close the socket.
    Close,
}

/// How much reading one readiness notification allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    /// One read per notification (level-triggered APIs report the fd again if more is left).
    Once,
    /// Read until EAGAIN (edge-triggered APIs will not report the fd again otherwise).
    Drain,
}

/// Per-connection state of a non-blocking echo: only the bytes a short write left
/// behind, so an idle connection costs no buffer at all.
#[derive(Debug, Default)]
pub struct EchoConn {
    pending: Vec<u8>,
    sent: usize,
    /// Total bytes read, used by the busy-loop model to tell whether a pass did anything.
    pub bytes_in: u64,
}

impl EchoConn {
    /// Makes progress on `sock` (non-blocking) using `scratch` as the read buffer.
    ///
    /// # Errors
    /// Socket errors other than `WouldBlock`/`Interrupted` (reset, broken pipe): the
    /// caller closes the connection.
    pub fn pump<S: Read + Write>(
        &mut self,
        sock: &mut S,
        scratch: &mut [u8],
        mode: ReadMode,
    ) -> io::Result<Want> {
        // First flush what an earlier short write left behind.
        while self.sent < self.pending.len() {
            match sock.write(&self.pending[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Want::Write),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.pending.clear();
        if self.pending.capacity() > BUF_SIZE {
            self.pending = Vec::new();
        }
        self.sent = 0;
        let mut reads = 0;
        loop {
            if mode == ReadMode::Once && reads == 1 {
                return Ok(Want::Read);
            }
            let n = match sock.read(scratch) {
                Ok(0) => return Ok(Want::Close),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Want::Read),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            reads += 1;
            self.bytes_in += n as u64;
            let mut off = 0;
            while off < n {
                match sock.write(&scratch[off..n]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(k) => off += k,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        // Short write: keep the rest and wait for writability.
                        self.pending.extend_from_slice(&scratch[off..n]);
                        return Ok(Want::Write);
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    /// A fake non-blocking socket: reads come from a script, writes accept at most
    /// `write_cap` bytes per call and then block once.
    struct Fake {
        input: VecDeque<Vec<u8>>,
        out: Vec<u8>,
        write_cap: usize,
        block_next_write: bool,
        eof: bool,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.input.pop_front() {
                Some(chunk) => {
                    buf[..chunk.len()].copy_from_slice(&chunk);
                    Ok(chunk.len())
                }
                None if self.eof => Ok(0),
                None => Err(io::ErrorKind::WouldBlock.into()),
            }
        }
    }

    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.block_next_write {
                self.block_next_write = false;
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.block_next_write = true;
            let n = buf.len().min(self.write_cap);
            self.out.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn short_writes_are_resumed_in_order() {
        let mut f = Fake {
            input: VecDeque::from(vec![b"hello world".to_vec(), b"!".to_vec()]),
            out: vec![],
            write_cap: 3,
            block_next_write: false,
            eof: true,
        };
        let mut c = EchoConn::default();
        let mut scratch = [0u8; 64];
        let mut rounds = 0;
        loop {
            rounds += 1;
            assert!(rounds < 100);
            match c.pump(&mut f, &mut scratch, ReadMode::Drain).unwrap() {
                Want::Close => break,
                Want::Write | Want::Read => {}
            }
        }
        assert_eq!(f.out, b"hello world!");
    }

    #[test]
    fn once_mode_reads_once() {
        let mut f = Fake {
            input: VecDeque::from(vec![b"a".to_vec(), b"b".to_vec()]),
            out: vec![],
            write_cap: 100,
            block_next_write: false,
            eof: false,
        };
        let mut c = EchoConn::default();
        let mut scratch = [0u8; 64];
        assert_eq!(
            c.pump(&mut f, &mut scratch, ReadMode::Once).unwrap(),
            Want::Read
        );
        assert_eq!(f.out, b"a");
    }
}
