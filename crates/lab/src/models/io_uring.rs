//! io_uring: instead of asking "which sockets are ready?" the loop *submits* operations
//! to a submission ring and reaps their results from a completion ring.
//!
//! - One **multishot accept** on the listener: every new connection is a completion,
//!   without resubmitting.
//! - One **multishot recv** per connection that takes its buffer from a **provided
//!   buffer ring** shared by all connections: the kernel picks a buffer only when data
//!   arrives, so an idle connection holds none (a plain `Recv` in flight would pin a
//!   buffer per connection).
//! - The echo is a `Send` straight from that buffer, which goes back to the ring when
//!   the send completes. One send is in flight per connection; buffers received
//!   meanwhile queue behind it in order (two sends in flight could complete out of
//!   order). A connection that queues too much has its recv cancelled until its queue
//!   drains: the io_uring form of "stop reading while the peer is not reading".
//! - **Batched submission**: everything one batch of completions asks for is submitted
//!   together with the wait for the next batch, one `io_uring_enter` per batch. Where
//!   the kernel has them (6.1+) the ring is single-issuer with deferred task work, so
//!   completions are produced only when the loop asks for them.
//!
//! Many sandboxes (seccomp profiles of container runtimes) and hardened kernels
//! (`kernel.io_uring_disabled`) refuse `io_uring_setup`; the model then fails with
//! [`LabError::IoUringUnavailable`]. Provided buffer rings need Linux 5.19, multishot
//! recv 6.0.

use std::collections::VecDeque;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::sync::atomic::{AtomicU16, Ordering};

use ::io_uring::{cqueue, opcode, squeue, types, IoUring};

use crate::error::{LabError, Result};
use crate::models::run_loops;
use crate::shutdown::{Shutdown, WakePipe};

const OP_ACCEPT: u64 = 0;
const OP_RECV: u64 = 1;
const OP_SEND: u64 = 2;
const OP_WAKE: u64 = 3;
const OP_CANCEL: u64 = 4;

/// Submission ring size; the completion ring is larger because multishot operations
/// post many completions per submission.
const SQ_ENTRIES: u32 = 4096;
const CQ_ENTRIES: u32 = 16384;
/// Provided buffers: count (a power of two, at most 32768) × size. Pages are touched
/// only as buffers are used.
const BUF_COUNT: u16 = 8192;
const BUF_LEN: usize = 2048;
const BUF_GROUP: u16 = 0;
/// Buffers one connection may hold (received, not yet echoed) before its recv is
/// cancelled: 64 KiB, like a socket buffer.
const MAX_QUEUED: usize = 32;

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
/// [`LabError::IoUringUnavailable`] when the kernel refuses io_uring; an I/O error when
/// it lacks provided buffer rings.
pub fn serve(listener: TcpListener, workers: usize, shutdown: &Shutdown) -> Result<()> {
    available()?;
    run_loops(listener, workers, shutdown, one_loop)
}

/// `op | slot << 3 | generation << 32`: the generation tells a completion of a closed
/// connection from one of the connection that reused its slot.
fn user_data(op: u64, slot: usize, gen: u32) -> u64 {
    op | ((slot as u64) << 3) | (u64::from(gen) << 32)
}

fn decode(ud: u64) -> (u64, usize, u32) {
    (
        ud & 7,
        ((ud >> 3) & 0x1fff_ffff) as usize,
        (ud >> 32) as u32,
    )
}

/// The provided buffer ring: an array of (address, length, id) entries shared with the
/// kernel, which takes buffers from its head; we return them at its tail.
struct BufRing {
    entries: *mut types::BufRingEntry,
    entries_len: usize,
    /// The buffers themselves, `BUF_COUNT × BUF_LEN` bytes.
    mem: Vec<u8>,
    tail: u16,
    /// Buffers returned since the tail was last published.
    returned: usize,
}

impl BufRing {
    /// Maps the entry array (it must be page-aligned), fills it with every buffer and
    /// registers it with `ring`.
    fn new(ring: &IoUring) -> std::io::Result<Self> {
        let entries_len = usize::from(BUF_COUNT) * std::mem::size_of::<types::BufRingEntry>();
        // SAFETY: an anonymous private mapping; the result is checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                entries_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let mut br = BufRing {
            entries: p.cast(),
            entries_len,
            mem: vec![0u8; usize::from(BUF_COUNT) * BUF_LEN],
            tail: 0,
            returned: 0,
        };
        for bid in 0..BUF_COUNT {
            br.give_back(bid);
        }
        br.publish();
        // SAFETY: the entry array and the buffers live until `self` is dropped, which
        // `one_loop` does only after dropping the ring (that unregisters them).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                br.entries as u64,
                BUF_COUNT,
                BUF_GROUP,
                0,
            )?;
        }
        Ok(br)
    }

    /// Puts buffer `bid` back at the tail (visible to the kernel after [`Self::publish`]).
    fn give_back(&mut self, bid: u16) {
        let mask = BUF_COUNT - 1;
        // SAFETY: the index is masked into the array; the kernel only reads entries
        // between its head and the published tail, and this one is past the tail.
        let e = unsafe { &mut *self.entries.add(usize::from(self.tail & mask)) };
        // SAFETY: bid < BUF_COUNT, so the offset is inside `mem`.
        let addr = unsafe { self.mem.as_mut_ptr().add(usize::from(bid) * BUF_LEN) };
        e.set_addr(addr as u64);
        e.set_len(BUF_LEN as u32);
        e.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.returned += 1;
    }

    /// Makes the returned buffers visible to the kernel; returns how many there were.
    fn publish(&mut self) -> usize {
        // SAFETY: the tail field lives inside entry 0 of our mapping; the kernel reads
        // it with acquire ordering, so a release store publishes the entries written
        // before it.
        unsafe {
            let tail = types::BufRingEntry::tail(self.entries) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
        std::mem::take(&mut self.returned)
    }

    /// Start of `len` bytes at `off` in buffer `bid`.
    fn ptr(&self, bid: u16, off: u32) -> *const u8 {
        let at = usize::from(bid) * BUF_LEN + off as usize;
        debug_assert!(at < self.mem.len());
        // SAFETY: bid < BUF_COUNT and off < BUF_LEN, so this stays inside `mem`.
        unsafe { self.mem.as_ptr().add(at) }
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.entries.cast(), self.entries_len) };
    }
}

struct Conn {
    stream: TcpStream,
    gen: u32,
    /// Received buffers not yet echoed, in order: (buffer id, length). The front is the
    /// one being sent.
    queue: VecDeque<(u16, u32)>,
    /// Bytes of the front buffer already sent (a send may be short).
    sent: u32,
    sending: bool,
    /// A multishot recv is armed.
    recv_armed: bool,
    /// A cancel of the recv was submitted (queue full).
    cancelling: bool,
    /// The peer closed (or the connection failed): close once everything was echoed.
    eof: bool,
}

/// The loop's state besides the ring.
struct Loop {
    bufs: BufRing,
    conns: Vec<Option<Conn>>,
    free: Vec<usize>,
    next_gen: u32,
    /// Connections whose recv ended for want of buffers while they held none: re-armed
    /// as buffers come back.
    starved: Vec<usize>,
}

fn push(ring: &mut IoUring, entry: &squeue::Entry) -> Result<()> {
    loop {
        // SAFETY: every buffer our entries point into (provided buffers, the wake pipe
        // poll has none) outlives the ring: `one_loop` drops the ring first.
        if unsafe { ring.submission().push(entry) }.is_ok() {
            return Ok(());
        }
        ring.submit()
            .map_err(|e| LabError::io("io_uring submit", e))?;
    }
}

fn build_ring() -> Result<IoUring> {
    let fast = IoUring::builder()
        .setup_cqsize(CQ_ENTRIES)
        .setup_single_issuer()
        .setup_defer_taskrun()
        .build(SQ_ENTRIES);
    match fast {
        Ok(r) => Ok(r),
        // Kernels before 6.1 lack the task-run flags.
        Err(_) => IoUring::builder()
            .setup_cqsize(CQ_ENTRIES)
            .build(SQ_ENTRIES)
            .map_err(|source| LabError::IoUringUnavailable { source }),
    }
}

fn one_loop(listener: TcpListener, shutdown: &Shutdown) -> Result<()> {
    // io_uring answers EAGAIN instead of waiting on O_NONBLOCK listeners; let it wait.
    listener
        .set_nonblocking(false)
        .map_err(|e| LabError::io("set listener blocking", e))?;
    let wake = WakePipe::new(shutdown).map_err(|e| LabError::io("wake pipe", e))?;
    let mut ring = build_ring()?;
    let bufs = BufRing::new(&ring)
        .map_err(|e| LabError::io("io_uring provided buffer ring (needs Linux 5.19+)", e))?;
    let mut lp = Loop {
        bufs,
        conns: Vec::new(),
        free: Vec::new(),
        next_gen: 0,
        starved: Vec::new(),
    };
    let accept = opcode::AcceptMulti::new(types::Fd(listener.as_raw_fd()))
        .build()
        .user_data(OP_ACCEPT);
    push(&mut ring, &accept)?;
    let wake_poll = opcode::PollAdd::new(types::Fd(wake.read_fd()), libc::POLLIN as u32)
        .build()
        .user_data(OP_WAKE);
    push(&mut ring, &wake_poll)?;
    let mut done: Vec<(u64, i32, u32)> = Vec::with_capacity(CQ_ENTRIES as usize);
    let result = 'outer: loop {
        if let Err(e) = ring.submit_and_wait(1) {
            match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Completions are waiting to be reaped (overflow backlog): reap them.
                Some(libc::EBUSY) => {}
                _ => break Err(LabError::io("io_uring submit_and_wait", e)),
            }
        }
        done.clear();
        done.extend(
            ring.completion()
                .map(|c| (c.user_data(), c.result(), c.flags())),
        );
        for &(ud, res, flags) in &done {
            let (op, slot, gen) = decode(ud);
            let r = match op {
                OP_WAKE => break 'outer Ok(()),
                OP_ACCEPT => {
                    if !cqueue::more(flags) {
                        if let Err(e) = push(&mut ring, &accept) {
                            break 'outer Err(e);
                        }
                    }
                    if res < 0 {
                        if shutdown.is_triggered() {
                            break 'outer Ok(());
                        }
                        tracing::debug!(errno = -res, "accept failed");
                        Ok(())
                    } else {
                        // SAFETY: a successful accept completion is a new fd we own.
                        let stream = unsafe { TcpStream::from_raw_fd(res as RawFd) };
                        lp.add(&mut ring, stream)
                    }
                }
                OP_RECV => lp.on_recv(&mut ring, slot, gen, res, flags),
                OP_SEND => lp.on_send(&mut ring, slot, gen, res),
                _ => Ok(()), // OP_CANCEL: the recv's own completion says what happened.
            };
            if let Err(e) = r {
                break 'outer Err(e);
            }
        }
        let returned = lp.bufs.publish();
        if let Err(e) = lp.rearm_starved(&mut ring, returned) {
            break Err(e);
        }
    };
    // The ring goes first: in-flight operations are cancelled and the buffer ring is
    // unregistered before the memory they point into is freed.
    drop(ring);
    drop(lp);
    result
}

impl Loop {
    /// The connection in `slot` if `gen` is still its generation.
    fn conn(&mut self, slot: usize, gen: u32) -> Option<&mut Conn> {
        self.conns
            .get_mut(slot)
            .and_then(Option::as_mut)
            .filter(|c| c.gen == gen)
    }

    fn add(&mut self, ring: &mut IoUring, stream: TcpStream) -> Result<()> {
        let gen = self.next_gen;
        self.next_gen = self.next_gen.wrapping_add(1);
        let conn = Conn {
            stream,
            gen,
            queue: VecDeque::new(),
            sent: 0,
            sending: false,
            recv_armed: false,
            cancelling: false,
            eof: false,
        };
        let slot = match self.free.pop() {
            Some(i) => {
                self.conns[i] = Some(conn);
                i
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        self.arm_recv(ring, slot)
    }

    fn arm_recv(&mut self, ring: &mut IoUring, slot: usize) -> Result<()> {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        if c.recv_armed || c.eof {
            return Ok(());
        }
        c.recv_armed = true;
        c.cancelling = false;
        let e = opcode::RecvMulti::new(types::Fd(c.stream.as_raw_fd()), BUF_GROUP)
            .build()
            .user_data(user_data(OP_RECV, slot, c.gen));
        push(ring, &e)
    }

    fn submit_send(&mut self, ring: &mut IoUring, slot: usize) -> Result<()> {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return Ok(());
        };
        let Some(&(bid, len)) = c.queue.front() else {
            return Ok(());
        };
        c.sending = true;
        let e = opcode::Send::new(
            types::Fd(c.stream.as_raw_fd()),
            self.bufs.ptr(bid, c.sent),
            len - c.sent,
        )
        .build()
        .user_data(user_data(OP_SEND, slot, c.gen));
        push(ring, &e)
    }

    fn on_recv(
        &mut self,
        ring: &mut IoUring,
        slot: usize,
        gen: u32,
        res: i32,
        flags: u32,
    ) -> Result<()> {
        let bid = cqueue::buffer_select(flags);
        let more = cqueue::more(flags);
        let Some(c) = self.conn(slot, gen) else {
            // A closed connection's last data: only the buffer matters.
            if let Some(b) = bid {
                self.bufs.give_back(b);
            }
            return Ok(());
        };
        if !more {
            c.recv_armed = false;
        }
        match (res, bid) {
            (n, Some(b)) if n > 0 => {
                c.queue.push_back((b, n as u32));
                let start_send = !c.sending;
                let over = c.queue.len() >= MAX_QUEUED && c.recv_armed && !c.cancelling;
                let rearm = !c.recv_armed && !c.cancelling && c.queue.len() < MAX_QUEUED;
                if over {
                    c.cancelling = true;
                    let target = user_data(OP_RECV, slot, gen);
                    let e = opcode::AsyncCancel::new(target)
                        .build()
                        .user_data(OP_CANCEL);
                    push(ring, &e)?;
                }
                if start_send {
                    self.submit_send(ring, slot)?;
                }
                if rearm {
                    // The multishot ended with data (e.g. completion ring overflow).
                    self.arm_recv(ring, slot)?;
                }
                Ok(())
            }
            (n, None) if n > 0 => {
                // Data without a buffer cannot happen with buffer select: give up on it.
                c.eof = true;
                self.maybe_close(slot);
                Ok(())
            }
            (n, _) if n == -libc::ENOBUFS || n == -libc::ECANCELED => {
                // Out of buffers, or paused for a full queue: resume once this
                // connection's queue drained, or as buffers return if it holds none.
                if c.queue.is_empty() && !c.sending {
                    self.starved.push(slot);
                }
                Ok(())
            }
            _ => {
                // 0: the peer closed; < 0: the connection failed.
                c.eof = true;
                self.maybe_close(slot);
                Ok(())
            }
        }
    }

    fn on_send(&mut self, ring: &mut IoUring, slot: usize, gen: u32, res: i32) -> Result<()> {
        let Some(c) = self.conn(slot, gen) else {
            return Ok(());
        };
        c.sending = false;
        if res <= 0 {
            self.close(slot);
            return Ok(());
        }
        c.sent += res as u32;
        let Some(&(bid, len)) = c.queue.front() else {
            return Ok(());
        };
        if c.sent < len {
            return self.submit_send(ring, slot);
        }
        c.queue.pop_front();
        c.sent = 0;
        let more_queued = !c.queue.is_empty();
        let idle = !more_queued && !c.recv_armed && !c.eof;
        self.bufs.give_back(bid);
        if more_queued {
            return self.submit_send(ring, slot);
        }
        if idle {
            return self.arm_recv(ring, slot);
        }
        self.maybe_close(slot);
        Ok(())
    }

    /// Re-arms up to `returned` starved connections (each needs a buffer to make
    /// progress).
    fn rearm_starved(&mut self, ring: &mut IoUring, returned: usize) -> Result<()> {
        for _ in 0..returned.min(self.starved.len()) {
            if let Some(slot) = self.starved.pop() {
                self.arm_recv(ring, slot)?;
            }
        }
        Ok(())
    }

    /// Closes the connection if the peer is gone and everything was echoed.
    fn maybe_close(&mut self, slot: usize) {
        if let Some(Some(c)) = self.conns.get(slot) {
            if c.eof && !c.sending && c.queue.is_empty() {
                self.close(slot);
            }
        }
    }

    /// Closes `slot`. Never called with a send in flight (its buffer would go back to
    /// the ring while the kernel still reads it).
    fn close(&mut self, slot: usize) {
        let Some(c) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        for &(bid, _) in &c.queue {
            self.bufs.give_back(bid);
        }
        if c.recv_armed {
            // The armed recv holds the socket open; shutdown(2) ends it (its last
            // completion finds the slot's generation changed).
            // SAFETY: shutdown on a descriptor we own.
            unsafe { libc::shutdown(c.stream.as_raw_fd(), libc::SHUT_RDWR) };
        }
        drop(c);
        self.free.push(slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        for (op, slot, gen) in [
            (OP_RECV, 0, 0),
            (OP_SEND, 12345, u32::MAX),
            (7, 0x1fff_ffff, 9),
        ] {
            assert_eq!(decode(user_data(op, slot, gen)), (op, slot, gen));
        }
    }

    #[test]
    fn buffer_count_is_a_power_of_two() {
        assert!(BUF_COUNT.is_power_of_two());
        assert!(usize::from(BUF_COUNT) >= MAX_QUEUED);
    }
}
