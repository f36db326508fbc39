//! io_uring: instead of asking "which sockets are ready?" the loop *submits* operations
//! (accept, recv, send) to a submission ring and reaps their results from a completion
//! ring. Each connection has exactly one operation in flight, into its own buffer
//! (the kernel writes into it asynchronously, so it must stay put until completion).
//!
//! Many sandboxes (seccomp profiles of container runtimes) and hardened kernels
//! (`kernel.io_uring_disabled`) refuse `io_uring_setup`; the model then fails with
//! [`LabError::IoUringUnavailable`].

use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use ::io_uring::{opcode, squeue, types, IoUring};

use crate::echo::BUF_SIZE;
use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

const OP_ACCEPT: u64 = 0;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_WAKE: u64 = 3;

/// Checks whether this kernel lets us create a ring.
///
/// # Errors
/// [`LabError::IoUringUnavailable`] with the kernel's error.
pub fn available() -> Result<()> {
    IoUring::new(2)
        .map(drop)
        .map_err(|source| LabError::IoUringUnavailable { source })
}

/// Runs `workers` io_uring loops until `shutdown` triggers.
///
/// # Errors
/// [`LabError::IoUringUnavailable`] when the kernel refuses io_uring.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    available()?;
    run_loops(listener, workers, shutdown, one_loop)
}

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    len: usize,
    sent: usize,
}

fn push(ring: &mut IoUring, entry: &squeue::Entry) -> Result<()> {
    loop {
        // SAFETY: every buffer referenced by our entries (connection buffers, the wake
        // byte) outlives the ring: they are only freed after the operation completed or
        // after the ring itself is dropped.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()
            .map_err(|e| LabError::io("io_uring submit", e))?;
    }
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    // io_uring answers EAGAIN instead of waiting on O_NONBLOCK files; let it wait.
    listener
        .set_nonblocking(false)
        .map_err(|e| LabError::io("set listener blocking", e))?;
    let wake = WakePipe::new(shutdown).map_err(|e| LabError::io("wake pipe", e))?;
    let mut wake_byte = [0u8; 8];
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut ring = IoUring::new(1024).map_err(|source| LabError::IoUringUnavailable { source })?;
    let lfd = types::Fd(listener.as_raw_fd());
    let accept = opcode::Accept::new(lfd, std::ptr::null_mut(), std::ptr::null_mut())
        .build()
        .user_data(OP_ACCEPT);
    push(&mut ring, &accept)?;
    let wake_read = opcode::Read::new(
        types::Fd(wake.read_fd()),
        wake_byte.as_mut_ptr(),
        wake_byte.len() as u32,
    )
    .build()
    .user_data(OP_WAKE);
    push(&mut ring, &wake_read)?;
    let mut done: Vec<(u64, i32)> = Vec::new();
    let result = 'outer: loop {
        if let Err(e) = ring.submit_and_wait(1) {
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            break Err(LabError::io("io_uring submit_and_wait", e));
        }
        done.clear();
        done.extend(ring.completion().map(|c| (c.user_data(), c.result())));
        for &(ud, res) in &done {
            let (slot, op) = ((ud >> 2) as usize, ud & 3);
            match op {
                OP_WAKE => break 'outer Ok(()),
                OP_ACCEPT => {
                    if let Err(e) = push(&mut ring, &accept) {
                        break 'outer Err(e);
                    }
                    if res < 0 {
                        if shutdown.is_triggered() {
                            break 'outer Ok(());
                        }
                        tracing::debug!(errno = -res, "accept failed");
                        continue;
                    }
                    // SAFETY: a successful accept completion returns a new fd we own.
                    let stream = unsafe { TcpStream::from_raw_fd(res as RawFd) };
                    let conn = Conn {
                        stream,
                        buf: Vec::with_capacity(BUF_SIZE),
                        len: 0,
                        sent: 0,
                    };
                    let slot = match free.pop() {
                        Some(i) => {
                            conns[i] = Some(conn);
                            i
                        }
                        None => {
                            conns.push(Some(conn));
                            conns.len() - 1
                        }
                    };
                    if let Err(e) = submit_recv(&mut ring, &mut conns, slot) {
                        break 'outer Err(e);
                    }
                }
                OP_RECV | OP_SEND => {
                    let Some(Some(c)) = conns.get_mut(slot) else {
                        continue;
                    };
                    let next = if res <= 0 {
                        None // EOF (0) or error (-errno): close.
                    } else if op == OP_RECV {
                        c.len = res as usize;
                        c.sent = 0;
                        Some(OP_SEND)
                    } else {
                        c.sent += res as usize;
                        // Short send: submit the rest; otherwise read the next chunk.
                        Some(if c.sent < c.len { OP_SEND } else { OP_RECV })
                    };
                    let r = match next {
                        None => {
                            conns[slot] = None;
                            free.push(slot);
                            Ok(())
                        }
                        Some(OP_SEND) => submit_send(&mut ring, &mut conns, slot),
                        Some(_) => submit_recv(&mut ring, &mut conns, slot),
                    };
                    if let Err(e) = r {
                        break 'outer Err(e);
                    }
                }
                _ => {}
            }
        }
    };
    // The ring goes first: in-flight operations are cancelled before the buffers they
    // point into are freed.
    drop(ring);
    drop(conns);
    result
}

fn submit_recv(ring: &mut IoUring, conns: &mut [Option<Conn>], slot: usize) -> Result<()> {
    let Some(c) = conns[slot].as_mut() else {
        return Ok(());
    };
    let e = opcode::Recv::new(
        types::Fd(c.stream.as_raw_fd()),
        c.buf.as_mut_ptr(),
        c.buf.capacity() as u32,
    )
    .build()
    .user_data(((slot as u64) << 2) | OP_RECV);
    push(ring, &e)
}

fn submit_send(ring: &mut IoUring, conns: &mut [Option<Conn>], slot: usize) -> Result<()> {
    let Some(c) = conns[slot].as_mut() else {
        return Ok(());
    };
    // SAFETY: sent < len <= capacity, and the first `len` bytes were written by the
    // kernel's completed recv.
    let ptr = unsafe { c.buf.as_ptr().add(c.sent) };
    let e = opcode::Send::new(
        types::Fd(c.stream.as_raw_fd()),
        ptr,
        (c.len - c.sent) as u32,
    )
    .build()
    .user_data(((slot as u64) << 2) | OP_SEND);
    push(ring, &e)
}
