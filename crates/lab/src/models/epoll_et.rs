//! epoll, edge-triggered (EPOLLET). The kernel reports a descriptor only when its state
//! *changes*, so every event must be drained until EAGAIN: all pending connections are
//! accepted, every socket is read until EAGAIN (or until a write blocks). A socket is
//! registered once for EPOLLIN|EPOLLOUT and never modified again.

use std::collections::HashMap;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

use crate::echo::{EchoConn, ReadMode, Want, BUF_SIZE};
use crate::error::{LabError, Result};
use crate::models::epoll::Epoll;
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

/// Runs `workers` edge-triggered epoll loops until `shutdown` triggers.
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
    let et = libc::EPOLLET as u32;
    ep.add(wake.read_fd(), libc::EPOLLIN as u32 | et)
        .map_err(io("epoll add wake"))?;
    ep.add(lfd, libc::EPOLLIN as u32 | et)
        .map_err(io("epoll add listener"))?;
    let mut conns: HashMap<RawFd, (TcpStream, EchoConn)> = HashMap::new();
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
                // Edge-triggered: accept until EAGAIN or the remaining ones are lost
                // until the next connection arrives.
                loop {
                    match listener.accept() {
                        Ok((s, _)) => {
                            s.set_nonblocking(true).map_err(io("set non-blocking"))?;
                            let cfd = s.as_raw_fd();
                            ep.add(
                                cfd,
                                (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP) as u32 | et,
                            )
                            .map_err(io("epoll add"))?;
                            let mut c = EchoConn::default();
                            let mut s = s;
                            // Data may already be queued: no edge will announce it.
                            match c.pump(&mut s, &mut scratch, ReadMode::Drain) {
                                Ok(Want::Close) | Err(_) => {}
                                Ok(_) => {
                                    conns.insert(cfd, (s, c));
                                }
                            }
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "accept failed");
                            break;
                        }
                    }
                }
                continue;
            }
            let Some((s, c)) = conns.get_mut(&fd) else {
                continue;
            };
            match c.pump(s, &mut scratch, ReadMode::Drain) {
                Ok(Want::Close) | Err(_) => {
                    conns.remove(&fd);
                }
                Ok(_) => {}
            }
        }
    }
}
