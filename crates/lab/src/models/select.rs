//! select(2) readiness loop. Each pass builds read and write `fd_set`s, sleeps in
//! `select`, then scans every descriptor up to the highest one: O(max fd) per call.
//!
//! An `fd_set` is a fixed bitmap of FD_SETSIZE (1024) bits; `FD_SET` on a larger fd
//! writes past it. [`FdSet::insert`] refuses such descriptors with
//! [`LabError::FdTooLargeForSelect`]: a listener or wake pipe that large stops the
//! server with that error; a client that large is closed with a warning.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use crate::echo::{EchoConn, ReadMode, Want, BUF_SIZE};
use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

/// A safe wrapper over `libc::fd_set` that never writes out of bounds.
pub struct FdSet {
    set: libc::fd_set,
    max: RawFd,
}

impl Default for FdSet {
    fn default() -> Self {
        Self::new()
    }
}

impl FdSet {
    /// An empty set.
    pub fn new() -> Self {
        // SAFETY: fd_set is plain data; FD_ZERO initialises every bit.
        let mut set: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed fd_set.
        unsafe { libc::FD_ZERO(&mut set) };
        FdSet { set, max: -1 }
    }

    /// Adds `fd`, or refuses it if `fd >= FD_SETSIZE`.
    ///
    /// # Errors
    /// [`LabError::FdTooLargeForSelect`] for descriptors select cannot represent.
    pub fn insert(&mut self, fd: RawFd) -> Result<()> {
        if fd < 0 || fd as usize >= libc::FD_SETSIZE {
            return Err(LabError::FdTooLargeForSelect {
                fd,
                limit: libc::FD_SETSIZE,
            });
        }
        // SAFETY: 0 <= fd < FD_SETSIZE, so the bit is inside the bitmap.
        unsafe { libc::FD_SET(fd, &mut self.set) };
        self.max = self.max.max(fd);
        Ok(())
    }

    /// Whether `fd` is in the set (false for descriptors that cannot be in it).
    pub fn contains(&self, fd: RawFd) -> bool {
        if fd < 0 || fd as usize >= libc::FD_SETSIZE {
            return false;
        }
        // SAFETY: bounds checked above.
        unsafe { libc::FD_ISSET(fd, &self.set) }
    }

    /// The highest descriptor inserted, or -1.
    pub fn max_fd(&self) -> RawFd {
        self.max
    }
}

/// Runs `workers` select loops until `shutdown` triggers.
///
/// # Errors
/// [`LabError::FdTooLargeForSelect`] if the listener's descriptor is too large.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    // Check before spawning anything so the caller gets the clear error directly.
    FdSet::new().insert(listener.as_raw_fd())?;
    run_loops(listener, workers, shutdown, one_loop)
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let wake = WakePipe::new(shutdown).map_err(|e| LabError::io("wake pipe", e))?;
    let lfd = listener.as_raw_fd();
    let mut conns: HashMap<RawFd, (TcpStream, EchoConn, Want)> = HashMap::new();
    let mut scratch = vec![0u8; BUF_SIZE];
    loop {
        let mut rset = FdSet::new();
        let mut wset = FdSet::new();
        rset.insert(wake.read_fd())?;
        rset.insert(lfd)?;
        for (&fd, (_, _, want)) in &conns {
            match want {
                Want::Write => wset.insert(fd)?,
                _ => rset.insert(fd)?,
            }
        }
        let nfds = rset.max_fd().max(wset.max_fd()) + 1;
        // SAFETY: both sets are valid fd_sets holding only fds < FD_SETSIZE; null
        // exceptfds and timeout are allowed (block until ready).
        let n = unsafe {
            libc::select(
                nfds,
                &mut rset.set,
                &mut wset.set,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LabError::io("select", e));
        }
        if shutdown.is_triggered() || rset.contains(wake.read_fd()) {
            return Ok(());
        }
        if rset.contains(lfd) {
            match listener.accept() {
                Ok((s, peer)) => {
                    let fd = s.as_raw_fd();
                    if let Err(e) = FdSet::new().insert(fd) {
                        tracing::warn!(peer = %peer, "{e}; closing this client");
                    } else {
                        s.set_nonblocking(true)
                            .map_err(|e| LabError::io("set non-blocking", e))?;
                        conns.insert(fd, (s, EchoConn::default(), Want::Read));
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            }
        }
        // The O(n) scan select forces on us: ask every descriptor whether it fired.
        conns.retain(|&fd, (s, c, want)| {
            if !(rset.contains(fd) || wset.contains(fd)) {
                return true;
            }
            match c.pump(s, &mut scratch, ReadMode::Once) {
                Ok(Want::Close) | Err(_) => false,
                Ok(w) => {
                    *want = w;
                    true
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fd_setsize() {
        let mut s = FdSet::new();
        let err = s.insert(libc::FD_SETSIZE as RawFd).unwrap_err();
        assert!(err.to_string().contains("FD_SETSIZE"), "{err}");
        assert!(!s.contains(libc::FD_SETSIZE as RawFd));
    }

    #[test]
    fn accepts_largest_valid_fd() {
        let mut s = FdSet::new();
        let fd = libc::FD_SETSIZE as RawFd - 1;
        s.insert(fd).unwrap();
        assert!(s.contains(fd));
        assert_eq!(s.max_fd(), fd);
    }
}
