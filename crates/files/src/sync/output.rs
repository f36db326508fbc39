//! What an [`super::delta::Applier`] does besides writing: hashing the result (in line
//! for a small result, on a thread of its own for a large one, so writing and hashing run
//! on two cores) and copying base ranges inside the kernel (`copy_file_range`) when the
//! base and the output are files on one file system.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;

use super::read_at::hash_range;

/// Output past which the hash moves to a thread of its own (below it, starting a thread
/// costs more than it saves).
const THREAD_AFTER: u64 = 8 << 20;
/// Jobs queued for the hashing thread.
const QUEUE: usize = 8;

/// A piece of the result to hash.
enum Job {
    /// Bytes that were written.
    Bytes(Bytes),
    /// A range of the base that was copied in the kernel: read it to hash it.
    Base { at: u64, len: u64 },
}

enum State {
    Inline(Box<blake3::Hasher>),
    Thread {
        tx: SyncSender<Job>,
        handle: JoinHandle<io::Result<blake3::Hash>>,
    },
}

/// The BLAKE3 of an applier's result, fed in the order the result is written.
pub(crate) struct OutputHash {
    state: State,
    /// The base, for ranges copied without passing through this process.
    base: Option<Arc<File>>,
}

impl std::fmt::Debug for OutputHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputHash").finish_non_exhaustive()
    }
}

impl OutputHash {
    /// A hash of nothing yet; `base` is where kernel-copied ranges are read from.
    pub(crate) fn new(base: Option<Arc<File>>) -> Self {
        Self {
            state: State::Inline(Box::default()),
            base,
        }
    }

    /// Moves the hash to its thread once the result is large.
    fn maybe_spawn(&mut self, written: u64) {
        let State::Inline(h) = &mut self.state else {
            return;
        };
        if written < THREAD_AFTER {
            return;
        }
        let mut h = std::mem::take(h.as_mut());
        let base = self.base.clone();
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let handle = std::thread::spawn(move || {
            while let Ok(job) = rx.recv() {
                match job {
                    Job::Bytes(b) => {
                        h.update(&b);
                    }
                    Job::Base { at, len } => {
                        let base = base.as_deref().ok_or_else(no_base)?;
                        hash_range(&mut h, base, at, len)?;
                    }
                }
            }
            Ok(h.finalize())
        });
        self.state = State::Thread { tx, handle };
    }

    /// Bytes written to the result, which is now `written` bytes long.
    pub(crate) fn bytes(&mut self, b: Bytes, written: u64) {
        self.maybe_spawn(written);
        match &mut self.state {
            State::Inline(h) => {
                h.update(&b);
            }
            // A failed thread reports its error from `finish`.
            State::Thread { tx, .. } => {
                let _ = tx.send(Job::Bytes(b));
            }
        }
    }

    /// `len` bytes of the base from `at` that were copied to the result in the kernel.
    ///
    /// # Errors
    /// Reading the base failed.
    pub(crate) fn base_range(&mut self, at: u64, len: u64, written: u64) -> io::Result<()> {
        self.maybe_spawn(written);
        match &mut self.state {
            State::Inline(h) => {
                let base = self.base.as_deref().ok_or_else(no_base)?;
                hash_range(h, base, at, len)
            }
            State::Thread { tx, .. } => {
                let _ = tx.send(Job::Base { at, len });
                Ok(())
            }
        }
    }

    /// The hash of everything fed.
    ///
    /// # Errors
    /// The hashing thread failed to read the base.
    pub(crate) fn finish(self) -> io::Result<blake3::Hash> {
        match self.state {
            State::Inline(h) => Ok(h.finalize()),
            State::Thread { tx, handle } => {
                drop(tx);
                handle
                    .join()
                    .map_err(|_| io::Error::other("the hashing thread panicked"))?
            }
        }
    }
}

fn no_base() -> io::Error {
    io::Error::other("a kernel copy without a base file")
}

/// Copies ranges of the base to the output's current position inside the kernel.
#[derive(Debug)]
pub(crate) struct KernelCopy {
    base: Arc<File>,
    /// Shares its file position with the applier's writer (a clone of the same open
    /// file), so copies and writes follow each other.
    out: File,
}

/// What a kernel copy did.
pub(crate) enum Copied {
    /// All of it.
    Done,
    /// Nothing: this pair of files cannot be copied in the kernel (other file systems,
    /// or a kernel or file system without `copy_file_range`).
    Unsupported,
}

impl KernelCopy {
    /// Copies between clones of `base` and `out`.
    pub(crate) fn new(base: Arc<File>, out: File) -> Self {
        Self { base, out }
    }

    /// Copies `len` bytes of the base from `at`.
    ///
    /// # Errors
    /// An I/O error after part of the range was copied, or one that is not "unsupported".
    pub(crate) fn copy(&mut self, at: u64, len: u64) -> io::Result<Copied> {
        let mut off_in = i64::try_from(at).map_err(|_| io::Error::other("offset too large"))?;
        let mut left = len;
        while left > 0 {
            let n = usize::try_from(left.min(1 << 30)).unwrap_or(1 << 30);
            // SAFETY: both descriptors are open files owned by `self`; `off_in` is a valid
            // pointer to an i64 for the call, and a null `off_out` means "the file
            // position", which is what the call then advances.
            let r = unsafe {
                libc::copy_file_range(
                    self.base.as_raw_fd(),
                    &mut off_in,
                    self.out.as_raw_fd(),
                    std::ptr::null_mut(),
                    n,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                let unsupported = matches!(
                    e.raw_os_error(),
                    Some(
                        libc::EXDEV | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP | libc::EBADF
                    )
                );
                if unsupported && left == len {
                    return Ok(Copied::Unsupported);
                }
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            if r == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the base file shrank during the transfer",
                ));
            }
            left -= r as u64;
        }
        Ok(Copied::Done)
    }
}
