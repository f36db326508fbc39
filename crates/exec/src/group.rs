//! The child's process group: the child is started as the leader of a new group
//! (`setpgid(0, 0)`), so everything it starts can be killed at once with `killpg`. A
//! process that calls `setsid` or `setpgid` leaves the group: [`crate::contain`] covers
//! those.

/// Kills the whole group with SIGKILL when dropped (every way out of an exec: normal end,
/// timeout, output cap, client gone, server shutdown, a panic).
#[derive(Debug)]
pub struct ProcessGroup {
    pgid: libc::pid_t,
}

impl ProcessGroup {
    /// The group led by `pid` (the child must have been spawned with `process_group(0)`).
    pub fn new(pid: u32) -> Self {
        Self {
            pgid: libc::pid_t::try_from(pid).unwrap_or(0),
        }
    }

    /// Sends SIGKILL to every process of the group (harmless when it is already empty).
    pub fn kill(&self) {
        if self.pgid > 1 {
            // SAFETY: killpg only sends a signal; pgid is our own child's group, never 0/1.
            unsafe {
                libc::killpg(self.pgid, libc::SIGKILL);
            }
        }
    }
}

impl ProcessGroup {
    /// Lets go of the group without killing it (once it is known to be empty, so its id,
    /// which the kernel may hand out again, is not signalled later).
    pub fn release(self) {
        std::mem::forget(self);
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The conventional name of a signal number, e.g. `SIGKILL`.
pub fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGABRT => "SIGABRT",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "signal",
    }
}
