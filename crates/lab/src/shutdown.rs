//! A stop signal that can wake every kind of blocked server.
//!
//! Blocking models sit in `accept(2)`/`read(2)`, readiness models in `select`/`poll`/
//! `epoll_wait`, async models in an executor. A flag alone wakes none of them, so a
//! [`Shutdown`] also runs *wakers* that each model registers: a self-connect to unblock
//! `accept`, a write to a pipe that is in the readiness set, a `shutdown(2)` on every
//! connection, a tokio `watch` send.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Waker = Box<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct Inner {
    triggered: AtomicBool,
    /// Wakers registered by the running model; run once on trigger.
    wakers: Mutex<Vec<Waker>>,
}

/// A cloneable, one-shot stop signal.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

impl Shutdown {
    /// A new, untriggered signal.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks the server to stop: sets the flag and runs every registered waker.
    pub fn trigger(&self) {
        let wakers = {
            let mut guard = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
            self.inner.triggered.store(true, Ordering::SeqCst);
            std::mem::take(&mut *guard)
        };
        for w in wakers {
            w();
        }
    }

    /// Whether [`Shutdown::trigger`] has been called.
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::SeqCst)
    }

    /// Registers `waker` to run on trigger; runs it at once if already triggered.
    pub fn on_trigger(&self, waker: impl Fn() + Send + Sync + 'static) {
        let mut guard = self.inner.wakers.lock().unwrap_or_else(|e| e.into_inner());
        if self.inner.triggered.load(Ordering::SeqCst) {
            drop(guard);
            waker();
        } else {
            guard.push(Box::new(waker));
        }
    }
}

/// A non-blocking pipe whose read end goes into a readiness set; the shutdown writes one
/// byte to the write end so `select`/`poll`/`epoll_wait` return. The write end lives in
/// the waker registered with the shutdown.
#[derive(Debug)]
pub struct WakePipe {
    read: OwnedFd,
}

impl WakePipe {
    /// Creates the pipe and registers its writer with `shutdown`.
    ///
    /// # Errors
    /// When pipe2(2) fails (out of descriptors).
    pub fn new(shutdown: &Shutdown) -> std::io::Result<Self> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: `fds` is a valid array of two ints for pipe2 to fill.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: pipe2 succeeded, so both fds are open and owned by nobody else.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let writer = write;
        shutdown.on_trigger(move || {
            let byte = 1u8;
            // SAFETY: writing one byte from a valid stack location to an fd we own.
            unsafe { libc::write(writer.as_raw_fd(), (&byte as *const u8).cast(), 1) };
        });
        Ok(WakePipe { read })
    }

    /// The read end, to put in the readiness set.
    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn waker_runs_once_on_trigger() {
        let s = Shutdown::new();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = Arc::clone(&n);
        s.on_trigger(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert!(!s.is_triggered());
        s.trigger();
        s.trigger();
        assert!(s.is_triggered());
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn late_waker_runs_immediately() {
        let s = Shutdown::new();
        s.trigger();
        let n = Arc::new(AtomicUsize::new(0));
        let n2 = Arc::clone(&n);
        s.on_trigger(move || {
            n2.fetch_add(1, Ordering::SeqCst);
        });
        assert_eq!(n.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn wake_pipe_becomes_readable() {
        let s = Shutdown::new();
        let p = WakePipe::new(&s).unwrap();
        let mut b = [0u8; 1];
        // SAFETY: reading into a valid one-byte buffer from our own pipe.
        let before = unsafe { libc::read(p.read_fd(), b.as_mut_ptr().cast(), 1) };
        assert_eq!(before, -1, "empty non-blocking pipe must say EAGAIN");
        s.trigger();
        // SAFETY: as above.
        let after = unsafe { libc::read(p.read_fd(), b.as_mut_ptr().cast(), 1) };
        assert_eq!(after, 1);
    }
}
