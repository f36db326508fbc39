//! epoll, level-triggered. A ready descriptor is reported on every `epoll_wait` until it
//! is no longer ready, so one `read` per event is enough. Interest is switched with
//! `EPOLL_CTL_MOD`: EPOLLIN normally, EPOLLOUT only while a short write is pending
//! (otherwise an always-writable socket would wake the loop forever).

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use crate::echo::{EchoConn, ReadMode, Want, BUF_SIZE};
use crate::error::{LabError, Result};
use crate::models::epoll::Epoll;
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

/// Runs `workers` level-triggered epoll loops until `shutdown` triggers.
///
/// # Errors
/// When epoll or the wake pipe cannot be created.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    run_loops(listener, workers, shutdown, one_loop)
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let io = |what: &'static str| move |e| LabError::io(what, e);
    let ep = Epoll::new().map_err(io("epoll_create1"))?;
    let wake = WakePipe::new(shutdown).map_err(io("wake pipe"))?;
    let lfd = listener.as_raw_fd();
    ep.add(wake.read_fd(), libc::EPOLLIN as u32)
        .map_err(io("epoll add wake"))?;
    ep.add(lfd, libc::EPOLLIN as u32)
        .map_err(io("epoll add listener"))?;
    let mut conns: HashMap<RawFd, (TcpStream, EchoConn, Want)> = HashMap::new();
    let mut scratch = vec![0u8; BUF_SIZE];
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 256];
    loop {
        let n = ep.wait(&mut events).map_err(io("epoll_wait"))?;
        for ev in &events[..n] {
            let fd = ev.u64 as RawFd;
            if fd == wake.read_fd() || shutdown.is_triggered() {
                return Ok(());
            }
            if fd == lfd {
                // Level-triggered: one accept per event; if more are queued we hear again.
                match listener.accept() {
                    Ok((s, _)) => {
                        s.set_nonblocking(true).map_err(io("set non-blocking"))?;
                        let cfd = s.as_raw_fd();
                        ep.add(cfd, libc::EPOLLIN as u32).map_err(io("epoll add"))?;
                        conns.insert(cfd, (s, EchoConn::default(), Want::Read));
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(e) => tracing::debug!(error = %e, "accept failed"),
                }
                continue;
            }
            let Some((s, c, want)) = conns.get_mut(&fd) else {
                continue;
            };
            match c.pump(s, &mut scratch, ReadMode::Once) {
                Ok(Want::Close) | Err(_) => {
                    // Closing the fd removes it from the epoll set.
                    conns.remove(&fd);
                }
                Ok(w) => {
                    if w != *want {
                        let interest = if w == Want::Write {
                            libc::EPOLLOUT
                        } else {
                            libc::EPOLLIN
                        };
                        ep.modify(fd, interest as u32).map_err(io("epoll mod"))?;
                        *want = w;
                    }
                }
            }
        }
    }
}
