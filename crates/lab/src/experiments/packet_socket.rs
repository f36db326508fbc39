//! Capturing frames on one interface of a namespace with an AF_PACKET socket, the way
//! tcpdump does (without a BPF filter: the experiments' interfaces carry only their own
//! traffic).
//!
//! The socket is opened inside the namespace and bound to the interface, so it sees
//! every frame the interface sends (`PACKET_OUTGOING`) and receives. The kernel stamps
//! each frame (`SO_TIMESTAMPNS`) when it passes the tap, so the times are those of the
//! wire, not of when the reader thread got to them. A thread reads until stopped and
//! keeps the frames, so an experiment can wait for a packet while it is running.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::{LabError, Result};
use crate::experiments::netns::Netns;
use crate::experiments::packets::Frame;

/// The largest frame kept; veth may hand over GSO frames of up to 64 KiB.
const BUF: usize = 256 * 1024;
/// Socket receive buffer, so a flood is not dropped before the thread reads it.
const RCVBUF: libc::c_int = 8 * 1024 * 1024;
/// How often the reader thread looks at the stop flag when no frame comes.
const POLL: Duration = Duration::from_millis(20);

/// A running capture; dropping it stops the reader thread.
#[derive(Debug)]
pub struct PacketCapture {
    stop: Arc<AtomicBool>,
    frames: Arc<Mutex<Vec<Frame>>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

fn setsockopt<T>(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> std::io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn open(ifname: &str) -> Result<OwnedFd> {
    let err = |what: &str| {
        LabError::io(
            format!("packet socket on {ifname}: {what}"),
            std::io::Error::last_os_error(),
        )
    };
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: plain socket(2) call; the result is checked before it is owned.
    let raw = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::c_int::from(proto),
        )
    };
    if raw < 0 {
        return Err(err("socket(AF_PACKET)"));
    }
    // SAFETY: `raw` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let cname = std::ffi::CString::new(ifname)
        .map_err(|_| LabError::Invalid(format!("interface name {ifname:?}")))?;
    // SAFETY: `cname` is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(cname.as_ptr()) };
    if index == 0 {
        return Err(err("if_nametoindex"));
    }
    // SAFETY: sockaddr_ll is plain data; zeroed is valid before the fields are set.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: `sll` is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&sll as *const libc::sockaddr_ll).cast(),
            std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(err("bind"));
    }
    let on: libc::c_int = 1;
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &on)
        .map_err(|e| LabError::io("SO_TIMESTAMPNS", e))?;
    // Forcing the size needs CAP_NET_ADMIN, which a capture has; fall back to the cap.
    if setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &RCVBUF).is_err() {
        let _ = setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, &RCVBUF);
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: POLL.as_micros() as libc::suseconds_t,
    };
    setsockopt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
        .map_err(|e| LabError::io("SO_RCVTIMEO", e))?;
    Ok(fd)
}

/// The wall clock in nanoseconds since the Unix epoch: the clock of [`Frame::ts_ns`].
pub fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Receives one frame: `Ok(None)` when none came within [`POLL`].
fn recv_one(fd: &OwnedFd, buf: &mut [u8]) -> std::io::Result<Option<Frame>> {
    // SAFETY: all-zero is a valid value for these plain-data structs.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // SAFETY: as above.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_name = (&mut addr as *mut libc::sockaddr_ll).cast();
    msg.msg_namelen = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&control) as _;
    // SAFETY: every pointer in `msg` refers to a live buffer of the length given.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut msg, libc::MSG_TRUNC) };
    if n < 0 {
        let e = std::io::Error::last_os_error();
        return match e.kind() {
            std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted => Ok(None),
            _ => Err(e),
        };
    }
    let orig_len = n as usize;
    let mut ts_ns = None;
    // SAFETY: the CMSG macros walk the control buffer the kernel filled, bounded by
    // msg_controllen; a SCM_TIMESTAMPNS payload is a timespec.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                ts_ns = Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(&msg, c);
        }
    }
    let ts_ns = ts_ns.unwrap_or_else(now_ns);
    Ok(Some(Frame {
        ts_ns,
        outgoing: addr.sll_pkttype == libc::PACKET_OUTGOING,
        data: buf[..orig_len.min(buf.len())].to_vec(),
        orig_len: u32::try_from(orig_len).unwrap_or(u32::MAX),
    }))
}

impl PacketCapture {
    /// Starts capturing on `ifname` inside `ns`. Frames sent after this returns are
    /// captured.
    ///
    /// # Errors
    /// When the packet socket cannot be opened or bound (needs CAP_NET_RAW).
    pub fn start(ns: &Netns, ifname: &str) -> Result<PacketCapture> {
        let name = ifname.to_owned();
        let fd = ns.run(move || open(&name))?;
        let stop = Arc::new(AtomicBool::new(false));
        let frames = Arc::new(Mutex::new(Vec::new()));
        let (s, f) = (stop.clone(), frames.clone());
        let thread = std::thread::Builder::new()
            .name(format!("capture {ifname}"))
            .spawn(move || {
                let mut buf = vec![0u8; BUF];
                loop {
                    match recv_one(&fd, &mut buf)? {
                        Some(frame) => f.lock().unwrap_or_else(|p| p.into_inner()).push(frame),
                        // Stop only once the socket is drained.
                        None if s.load(Ordering::Relaxed) => return Ok(()),
                        None => {}
                    }
                }
            })
            .map_err(|e| LabError::io("cannot start the capture thread", e))?;
        Ok(PacketCapture {
            stop,
            frames,
            thread: Some(thread),
        })
    }

    /// The frames captured so far.
    pub fn frames(&self) -> Vec<Frame> {
        self.frames
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Waits until `done(frames so far)` holds, looking every 10 ms, at most `limit`;
    /// returns whether it held.
    pub fn wait_for(&self, limit: Duration, done: impl Fn(&[Frame]) -> bool) -> bool {
        let start = Instant::now();
        loop {
            if done(&self.frames.lock().unwrap_or_else(|p| p.into_inner())) {
                return true;
            }
            if start.elapsed() >= limit {
                return false;
            }
            // Polling the capture buffer (bounded by `limit`).
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the capture once the socket has no more queued frames, and returns them all.
    ///
    /// # Errors
    /// When reading the socket failed.
    pub fn finish(mut self) -> Result<Vec<Frame>> {
        self.stop_thread()?;
        Ok(std::mem::take(
            &mut *self.frames.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }

    fn stop_thread(&mut self) -> Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(LabError::io("capture", e)),
            Some(Err(_)) => Err(LabError::Invalid("the capture thread panicked".into())),
            _ => Ok(()),
        }
    }
}

impl Drop for PacketCapture {
    fn drop(&mut self) {
        let _ = self.stop_thread();
    }
}
