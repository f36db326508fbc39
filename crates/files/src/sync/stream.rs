//! The blocking threads that move deltas between disk and the network: one encodes a
//! plan from the new file into pieces, one applies an arriving delta to a base file.

use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::delta::{Applier, Encoder, Plan, ReadAt};

/// Pieces in flight between a thread and the network side.
const DEPTH: usize = 8;

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("disk thread failed: {e}"))
}

/// An optional base file: `None` is an empty base (every copy is refused).
impl ReadAt for Option<File> {
    fn read_exact_at_(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        match self {
            Some(f) => f.read_exact_at_(buf, offset),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the delta copies from a base that does not exist",
            )),
        }
    }
}

/// A piece of a delta and how many bytes of the new file it stands for.
pub(crate) type Piece = (Bytes, u64);

/// Encodes a plan on a blocking thread.
#[derive(Debug)]
pub(crate) struct DeltaSource {
    rx: mpsc::Receiver<io::Result<Piece>>,
    handle: JoinHandle<()>,
}

impl DeltaSource {
    /// Starts encoding `plan`, reading literals from `file`.
    pub(crate) fn spawn(file: File, plan: Plan) -> Self {
        let (tx, rx) = mpsc::channel(DEPTH);
        let handle = tokio::task::spawn_blocking(move || {
            let mut enc = Encoder::new(file, &plan);
            let mut before = 0;
            loop {
                match enc.next_piece() {
                    Ok(Some(p)) => {
                        let stands_for = enc.represented() - before;
                        before = enc.represented();
                        if tx.blocking_send(Ok((Bytes::from(p), stands_for))).is_err() {
                            return;
                        }
                    }
                    Ok(None) => return,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
        });
        Self { rx, handle }
    }

    /// The next piece and the bytes of the file it stands for; `None` at the end.
    ///
    /// # Errors
    /// Reading the file failed.
    pub(crate) async fn next(&mut self) -> io::Result<Option<Piece>> {
        self.rx.recv().await.transpose()
    }

    /// Waits for the thread.
    pub(crate) async fn finish(self) {
        drop(self.rx);
        let _ = self.handle.await;
    }
}

/// What an applied delta produced: the output file, its hash and its length.
pub(crate) type Applied = (File, blake3::Hash, u64);

/// Applies a delta on a blocking thread.
#[derive(Debug)]
pub(crate) struct ApplyTask {
    tx: Option<mpsc::Sender<Bytes>>,
    handle: JoinHandle<io::Result<Applied>>,
    /// Bytes of the result written so far (for a progress bar).
    written: Arc<AtomicU64>,
}

impl ApplyTask {
    /// Starts applying into `out` against `base` (`base_len` bytes), at most `limit` bytes.
    pub(crate) fn spawn(base: Option<File>, base_len: u64, out: File, limit: u64) -> Self {
        let (tx, mut rx) = mpsc::channel::<Bytes>(DEPTH);
        let written = Arc::new(AtomicU64::new(0));
        let shown = written.clone();
        let handle = tokio::task::spawn_blocking(move || {
            let kernel = match &base {
                Some(b) => Some((b.try_clone()?, out.try_clone()?)),
                None => None,
            };
            let mut a = Applier::new(base, base_len, out, limit);
            if let Some((b, o)) = kernel {
                a = a.with_kernel_copy(b, o);
            }
            while let Some(b) = rx.blocking_recv() {
                a.feed_bytes(&b)?;
                shown.store(a.written(), Ordering::Relaxed);
            }
            a.finish()
        });
        Self {
            tx: Some(tx),
            handle,
            written,
        }
    }

    /// Bytes of the result written so far.
    pub(crate) fn written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    /// Queues delta bytes; `false` when the thread stopped (its error comes from
    /// [`Self::finish`]).
    pub(crate) async fn feed(&mut self, b: Bytes) -> bool {
        match &self.tx {
            Some(tx) => tx.send(b).await.is_ok(),
            None => false,
        }
    }

    /// Waits for every queued byte to be applied.
    ///
    /// # Errors
    /// A malformed delta or an I/O error.
    pub(crate) async fn finish(mut self) -> io::Result<Applied> {
        self.tx = None;
        self.handle.await.map_err(join_error)?
    }
}
