//! The cgroup v2 path: every run gets a cgroup of its own, a child of the server's cgroup
//! named `sockit-exec-<server pid>-<n>`. The child moves itself into it before it runs any
//! user code (a `pre_exec` write of `0` to the cgroup's `cgroup.procs`, opened beforehand),
//! so everything it starts, whatever `setsid`/`setpgid`/double forks it does, stays in the
//! cgroup. On the way out the cgroup is killed whole (`cgroup.kill`, kernel 5.14+; SIGKILL
//! of every pid in `cgroup.procs` on older kernels), waited until empty, and removed.
//!
//! The "no internal processes" rule of cgroup v2 only concerns controllers: no controller
//! is enabled for these cgroups (they only group and kill), so they can sit under the
//! server's own cgroup even though the server runs there. Whether the whole mechanism works
//! here is checked once, at start, by moving a forked probe process into a probe cgroup.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The prefix of every run's cgroup name.
pub const PREFIX: &str = "sockit-exec-";

/// Numbers the cgroups of this process (shared by every server in it).
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Why the cgroup path cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    /// The process is in no cgroup v2 hierarchy (`0::` line of `/proc/self/cgroup`).
    #[error("the server is in no cgroup v2 hierarchy (no `0::` line in /proc/self/cgroup)")]
    NoUnified,
    /// No cgroup2 filesystem is mounted where the server's cgroup can be reached.
    #[error("no cgroup2 filesystem is mounted over the server's cgroup {0}")]
    NotMounted(String),
    /// Reading the process's cgroup or the mount table failed.
    #[error("cannot read {what}: {source}")]
    Read {
        /// What was read.
        what: &'static str,
        /// The error.
        source: io::Error,
    },
    /// A child cgroup cannot be created (read-only or not delegated to this user).
    #[error("cannot create a cgroup in {dir}: {source} (needs write access to the server's cgroup: root, or a delegated cgroup)")]
    Create {
        /// The server's cgroup directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// A process cannot be moved into a new cgroup.
    #[error("cannot move a process into a new cgroup under {dir}: {source}")]
    Move {
        /// The server's cgroup directory.
        dir: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The server's own cgroup v2 directory, under which runs get their cgroups.
#[derive(Debug)]
pub struct CgroupRoot {
    dir: PathBuf,
    has_kill: bool,
}

/// Undoes the octal escapes of a mountinfo field (`\040` is a space).
fn unescape_mount(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let digits = &b[i + 1..i + 4];
            if digits.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = digits
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The unified-hierarchy path of the process from the text of `/proc/self/cgroup`.
pub fn unified_path(proc_cgroup: &str) -> Option<&str> {
    proc_cgroup
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim_end_matches(" (deleted)"))
}

/// Where `cgroup` (a unified-hierarchy path) is reachable, from the text of
/// `/proc/self/mountinfo`: the first cgroup2 mount whose root contains it, preferring the
/// mount at `/sys/fs/cgroup`.
pub fn cgroup_dir(mountinfo: &str, cgroup: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = Vec::new();
    for line in mountinfo.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        if right.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = left.split_whitespace().collect();
        let (Some(root), Some(point)) = (fields.get(3), fields.get(4)) else {
            continue;
        };
        let root = unescape_mount(root);
        let point = unescape_mount(point);
        let rest = if root == "/" {
            Some(cgroup)
        } else {
            cgroup
                .strip_prefix(root.as_str())
                .filter(|r| r.is_empty() || r.starts_with('/'))
        };
        if let Some(rest) = rest {
            let mut dir = PathBuf::from(point);
            for part in rest.split('/').filter(|p| !p.is_empty()) {
                if part == ".." {
                    return None;
                }
                dir.push(part);
            }
            found.push(dir);
        }
    }
    found.sort_by_key(|d| !d.starts_with("/sys/fs/cgroup"));
    found.into_iter().next()
}

/// The pid of a cgroup name of ours, `sockit-exec-<pid>-<n>`.
fn owner_pid(name: &str) -> Option<i32> {
    name.strip_prefix(PREFIX)?.split('-').next()?.parse().ok()
}

impl CgroupRoot {
    /// Finds the server's cgroup v2 directory and checks, with a probe process, that a run
    /// can be put in a cgroup of its own there. Leftover cgroups of servers that are gone
    /// are killed and removed.
    ///
    /// # Errors
    /// Why the cgroup path cannot be used here (see [`CgroupError`]).
    pub fn detect() -> Result<Self, CgroupError> {
        let own =
            std::fs::read_to_string("/proc/self/cgroup").map_err(|source| CgroupError::Read {
                what: "/proc/self/cgroup",
                source,
            })?;
        let path = unified_path(&own).ok_or(CgroupError::NoUnified)?;
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").map_err(|source| {
            CgroupError::Read {
                what: "/proc/self/mountinfo",
                source,
            }
        })?;
        let dir = cgroup_dir(&mounts, path)
            .filter(|d| d.join("cgroup.procs").exists())
            .ok_or_else(|| CgroupError::NotMounted(path.to_owned()))?;
        let mut root = Self {
            dir,
            has_kill: false,
        };
        root.remove_stale();
        let probe = root.create().map_err(|source| CgroupError::Create {
            dir: root.dir.clone(),
            source,
        })?;
        root.has_kill = probe.path.join("cgroup.kill").exists();
        let moved = probe.probe_move();
        probe.kill_and_wait();
        let _ = probe.remove();
        moved.map_err(|source| CgroupError::Move {
            dir: root.dir.clone(),
            source,
        })?;
        Ok(root)
    }

    /// The server's cgroup directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the kernel has `cgroup.kill` (5.14+).
    pub fn has_kill(&self) -> bool {
        self.has_kill
    }

    /// Creates the cgroup of one run.
    ///
    /// # Errors
    /// The cgroup cannot be created or its `cgroup.procs` opened.
    pub fn create(&self) -> io::Result<RunCgroup> {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = self.dir.join(format!("{PREFIX}{}-{n}", std::process::id()));
        std::fs::create_dir(&path)?;
        let procs = match File::options().write(true).open(path.join("cgroup.procs")) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir(&path);
                return Err(e);
            }
        };
        Ok(RunCgroup {
            has_kill: path.join("cgroup.kill").exists(),
            path,
            procs,
        })
    }

    /// Kills and removes cgroups of ours left by a server process that no longer exists.
    fn remove_stale(&self) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(owner_pid) else {
                continue;
            };
            if pid <= 0 || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let path = e.path();
            let Ok(procs) = File::options().write(true).open(path.join("cgroup.procs")) else {
                continue;
            };
            let stale = RunCgroup {
                has_kill: path.join("cgroup.kill").exists(),
                path,
                procs,
            };
            tracing::warn!(cgroup = %stale.path.display(), "killing and removing a cgroup left by an exec server that is gone");
            stale.kill_and_wait();
            let _ = stale.remove();
        }
    }
}

/// The cgroup of one run.
#[derive(Debug)]
pub struct RunCgroup {
    path: PathBuf,
    procs: File,
    has_kill: bool,
}

/// First pause between checks that a killed cgroup is empty (doubles up to the maximum).
const EMPTY_POLL_FIRST: Duration = Duration::from_millis(1);
/// Longest pause between two checks.
const EMPTY_POLL_MAX: Duration = Duration::from_millis(50);
/// After this long, a cgroup that will not empty is logged (and still waited for).
const EMPTY_WARN_AFTER: Duration = Duration::from_secs(10);

impl RunCgroup {
    /// The cgroup's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The open `cgroup.procs` (close-on-exec): a child writes `0` to it in `pre_exec`.
    pub fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// The pids in the cgroup (empty when it cannot be read).
    pub fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.path.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Whether no live process is left in the cgroup.
    pub fn is_empty(&self) -> bool {
        match std::fs::read_to_string(self.path.join("cgroup.events")) {
            Ok(events) => events.lines().any(|l| l.trim() == "populated 0"),
            Err(_) => self.pids().is_empty(),
        }
    }

    /// Sends SIGKILL to every process in the cgroup: `cgroup.kill` when the kernel has it,
    /// otherwise each pid of `cgroup.procs` (repeat until [`is_empty`](Self::is_empty): a
    /// process may fork between the read and the kill).
    pub fn kill(&self) {
        if self.has_kill {
            let written = File::options()
                .write(true)
                .open(self.path.join("cgroup.kill"))
                .and_then(|mut f| f.write_all(b"1"));
            if written.is_ok() {
                return;
            }
        }
        for pid in self.pids() {
            if pid > 1 {
                // SAFETY: kill only sends a signal to a process listed in our cgroup.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
    }

    /// Kills everything in the cgroup and blocks until it is empty (a process stuck in the
    /// kernel is waited for: the run's `--max-execs` slot is held until it is gone).
    pub fn kill_and_wait(&self) {
        let started = Instant::now();
        let mut pause = EMPTY_POLL_FIRST;
        let mut warned = false;
        loop {
            self.kill();
            if self.is_empty() {
                return;
            }
            if !warned && started.elapsed() > EMPTY_WARN_AFTER {
                warned = true;
                tracing::warn!(cgroup = %self.path.display(), pids = ?self.pids(), "exec cgroup still not empty after SIGKILL; waiting");
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(EMPTY_POLL_MAX);
        }
    }

    /// Removes the (empty) cgroup.
    ///
    /// # Errors
    /// `rmdir` failed (e.g. `EBUSY` while a process is still in it).
    pub fn remove(&self) -> io::Result<()> {
        let mut tries = 0;
        loop {
            match std::fs::remove_dir(&self.path) {
                Ok(()) => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 20 => {
                    tries += 1;
                    std::thread::sleep(EMPTY_POLL_MAX);
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Forks a process that moves itself into this cgroup and exits: whether a run's child
    /// will be able to do the same.
    fn probe_move(&self) -> io::Result<()> {
        let fd = self.procs_fd();
        let pid = crate::subreaper::with_spawn_lock(|| {
            // SAFETY: the child only calls async-signal-safe functions (write, _exit).
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                // SAFETY: as above; `fd` is open in the child (inherited).
                unsafe {
                    let code = if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                        0
                    } else {
                        io::Error::last_os_error().raw_os_error().unwrap_or(1)
                    };
                    libc::_exit(code.clamp(0, 255));
                }
            }
            if pid < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok((pid, pid))
            }
        })?;
        let mut status = 0;
        loop {
            // SAFETY: waits for our own child, with a valid pointer.
            let r = unsafe { libc::waitpid(pid, &mut status, 0) };
            if r == pid {
                break;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
        crate::subreaper::forget_leader(pid);
        if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
            Ok(())
        } else if libc::WIFEXITED(status) {
            Err(io::Error::from_raw_os_error(libc::WEXITSTATUS(status)))
        } else {
            Err(io::Error::other("the probe process died"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unified_line() {
        let text = "12:memory:/x\n0::/system.slice/sockit.service\n";
        assert_eq!(unified_path(text), Some("/system.slice/sockit.service"));
        assert_eq!(unified_path("1:cpu:/\n"), None);
        assert_eq!(unified_path("0::/a (deleted)\n"), Some("/a"));
    }

    #[test]
    fn mount_lookup() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw\n\
                      32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir(hybrid, "/"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            cgroup_dir(hybrid, "/a/b"),
            Some(PathBuf::from("/sys/fs/cgroup/unified/a/b"))
        );
        // A container whose mount root is its own cgroup.
        let nested = "50 40 0:30 /kube/pod1 /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            cgroup_dir(nested, "/kube/pod1/app"),
            Some(PathBuf::from("/sys/fs/cgroup/app"))
        );
        assert_eq!(cgroup_dir(nested, "/kube/pod10"), None);
        assert_eq!(cgroup_dir(nested, "/other"), None);
        let escaped = "50 40 0:30 / /mnt/my\\040cg rw - cgroup2 cgroup2 rw\n";
        assert_eq!(cgroup_dir(escaped, "/"), Some(PathBuf::from("/mnt/my cg")));
        assert_eq!(cgroup_dir("garbage\n\n - \n", "/"), None);
    }

    #[test]
    fn names() {
        assert_eq!(owner_pid("sockit-exec-123-4"), Some(123));
        assert_eq!(owner_pid("sockit-exec-x-4"), None);
        assert_eq!(owner_pid("other"), None);
    }
}
