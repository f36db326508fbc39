//! Process per connection: the parent accepts and `fork(2)`s; the child echoes with raw
//! `read(2)`/`write(2)` and `_exit(2)`s. The parent reaps children with `waitpid(WNOHANG)`.
//!
//! The lab may run inside a multi-threaded process (tests, the bench), where a forked
//! child may only call async-signal-safe functions. So the child does no allocation, no
//! locking and no Rust I/O: it closes every other descriptor with `close_range(2)` and
//! loops over read/write on a stack buffer.

use std::net::TcpListener;
use std::os::fd::{AsRawFd, RawFd};

use crate::echo::BUF_SIZE;
use crate::error::{LabError, Result};
use crate::listener::wake_accept;
use crate::shutdown::Shutdown;

/// Accepts and forks until `shutdown` triggers, then terminates and reaps the children.
///
/// # Errors
/// When the listener's address cannot be read.
pub fn serve(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| LabError::io("listener address", e))?;
    shutdown.on_trigger(move || wake_accept(addr));
    let mut children: Vec<libc::pid_t> = Vec::new();
    loop {
        let accepted = listener.accept();
        reap(&mut children, false);
        if shutdown.is_triggered() {
            break;
        }
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::debug!(error = %e, "accept failed");
                continue;
            }
        };
        let fd = stream.as_raw_fd();
        // SAFETY: fork has no memory-safety preconditions; the child below only calls
        // async-signal-safe functions (close_range, read, write, _exit).
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => tracing::warn!(error = %std::io::Error::last_os_error(), "fork failed"),
            0 => child(fd),
            pid => children.push(pid),
        }
        // The parent's copy of the connection closes here; the child keeps its own.
        drop(stream);
    }
    for &pid in &children {
        // SAFETY: kill on a child pid we forked and have not reaped yet.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    reap(&mut children, true);
    Ok(())
}

/// Collects exited children; with `block`, waits for all of them.
fn reap(children: &mut Vec<libc::pid_t>, block: bool) {
    children.retain(|&pid| {
        let mut status = 0;
        let flags = if block { 0 } else { libc::WNOHANG };
        // SAFETY: waitpid on our own child with a valid status pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        r == 0 // still running
    });
}

/// The child: echo on `fd` until EOF or error, then exit. Never returns.
fn child(fd: RawFd) -> ! {
    // SAFETY: only async-signal-safe syscalls on descriptors this process owns; the
    // buffer lives on this stack frame; _exit skips Rust destructors and atexit hooks
    // that belong to the parent.
    unsafe {
        // Close every inherited descriptor except stdio and the connection, so that the
        // parent's other sockets (listener, other clients) are not kept open by us.
        if fd > 3 {
            libc::syscall(libc::SYS_close_range, 3u32, (fd - 1) as u32, 0u32);
        }
        libc::syscall(libc::SYS_close_range, (fd + 1) as u32, u32::MAX, 0u32);
        let mut buf = [0u8; BUF_SIZE];
        loop {
            let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if n == 0 {
                break;
            }
            if n < 0 {
                if *libc::__errno_location() == libc::EINTR {
                    continue;
                }
                break;
            }
            let mut off = 0isize;
            while off < n {
                let w = libc::write(fd, buf.as_ptr().offset(off).cast(), (n - off) as usize);
                if w < 0 {
                    if *libc::__errno_location() == libc::EINTR {
                        continue;
                    }
                    libc::_exit(1);
                }
                off += w;
            }
        }
        libc::_exit(0)
    }
}
