//! poll(2) readiness loop: an array of `pollfd` rebuilt each pass. No FD_SETSIZE limit,
//! but the kernel still walks the whole array on every call: O(n) per wakeup.

use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use crate::echo::{EchoConn, ReadMode, Want, BUF_SIZE};
use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

/// Runs `workers` poll loops until `shutdown` triggers.
///
/// # Errors
/// When the loop's wake pipe cannot be created or poll fails.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    run_loops(listener, workers, shutdown, one_loop)
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let wake = WakePipe::new(shutdown).map_err(|e| LabError::io("wake pipe", e))?;
    let mut conns: Vec<(TcpStream, EchoConn, Want)> = Vec::new();
    let mut scratch = vec![0u8; BUF_SIZE];
    let mut fds: Vec<libc::pollfd> = Vec::new();
    loop {
        fds.clear();
        fds.push(libc::pollfd {
            fd: wake.read_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        fds.push(libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        for (s, _, want) in &conns {
            let events = if *want == Want::Write {
                libc::POLLOUT
            } else {
                libc::POLLIN
            };
            fds.push(libc::pollfd {
                fd: s.as_raw_fd(),
                events,
                revents: 0,
            });
        }
        // SAFETY: `fds` is a valid array of `fds.len()` pollfd structs.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(LabError::io("poll", e));
        }
        if shutdown.is_triggered() || fds[0].revents != 0 {
            return Ok(());
        }
        // Connections first (their pollfds are at 2.. in the same order as `conns`).
        let mut i = 2;
        conns.retain_mut(|(s, c, want)| {
            let revents = fds[i].revents;
            i += 1;
            if revents == 0 {
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
        if fds[1].revents != 0 {
            match listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(true)
                        .map_err(|e| LabError::io("set non-blocking", e))?;
                    conns.push((s, EchoConn::default(), Want::Read));
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => tracing::debug!(error = %e, "accept failed"),
            }
        }
    }
}
