//! Containment of a run: everything a command starts is killed with it, whatever it does
//! to leave its process group (`setsid`, `setpgid`, double forks), and the run keeps its
//! `--max-execs` slot until every one of its processes is dead.
//!
//! Two paths, chosen once when the service starts ([`Containment`], `--exec-containment`):
//! - [`cgroup`](crate::cgroup): a cgroup v2 per run, killed with `cgroup.kill`; exact.
//! - [`subreaper`](crate::subreaper): the server is a child subreaper and tracks each
//!   run's descendants through `/proc`; used where no cgroup can be created.
//!
//! Both also keep the process-group kill ([`ProcessGroup`]).

use std::io;
use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;

use crate::cgroup::{CgroupError, CgroupRoot, RunCgroup};
use crate::group::ProcessGroup;
use crate::request::ContainmentPath;
use crate::subreaper::{self, Tracker, RUN_ENV};

/// Which containment the exec service uses (`--exec-containment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Containment {
    /// A cgroup v2 per run where the server can create one, else the subreaper fallback.
    #[default]
    Auto,
    /// Only cgroups: without them every exec is refused (and [`resolve`] fails).
    Cgroup,
    /// The subreaper fallback even where cgroups would work.
    Subreaper,
}

impl Containment {
    /// The flag value: `auto`, `cgroup` or `subreaper`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Cgroup => "cgroup",
            Self::Subreaper => "subreaper",
        }
    }
}

impl std::fmt::Display for Containment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `--exec-containment` value that is not `auto`, `cgroup` or `subreaper`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown containment `{0}` (expected auto, cgroup or subreaper)")]
pub struct UnknownContainment(pub String);

impl std::str::FromStr for Containment {
    type Err = UnknownContainment;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Self::Auto),
            "cgroup" => Ok(Self::Cgroup),
            "subreaper" => Ok(Self::Subreaper),
            other => Err(UnknownContainment(other.to_owned())),
        }
    }
}

/// Why the requested containment cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum ContainError {
    /// `cgroup` was asked for and cannot be used.
    #[error("cgroup v2 containment is unavailable: {0}")]
    Cgroup(#[from] CgroupError),
    /// The server cannot become a child subreaper.
    #[error("cannot make the server a child subreaper (PR_SET_CHILD_SUBREAPER): {0}")]
    Subreaper(io::Error),
}

/// The containment in use, once resolved.
#[derive(Debug, Clone)]
pub enum Backend {
    /// A cgroup per run under this directory.
    Cgroup(Arc<CgroupRoot>),
    /// The subreaper fallback.
    Subreaper,
}

/// Resolves `mode` on this machine: `Auto` takes cgroups when they work (checked with a
/// probe process) and falls back to the subreaper otherwise, with a log line saying why.
///
/// # Errors
/// `Cgroup` without usable cgroups, or no subreaper where one is needed.
pub fn resolve(mode: Containment) -> Result<Backend, ContainError> {
    let subreaper = || {
        subreaper::enable().map_err(ContainError::Subreaper)?;
        Ok(Backend::Subreaper)
    };
    match mode {
        Containment::Subreaper => subreaper(),
        Containment::Cgroup => Ok(Backend::Cgroup(Arc::new(CgroupRoot::detect()?))),
        Containment::Auto => match CgroupRoot::detect() {
            Ok(root) => Ok(Backend::Cgroup(Arc::new(root))),
            Err(e) => {
                tracing::info!(reason = %e, "exec: no cgroup v2 for commands; using the subreaper fallback");
                subreaper()
            }
        },
    }
}

impl Backend {
    /// Which path this is.
    pub fn path(&self) -> ContainmentPath {
        match self {
            Self::Cgroup(_) => ContainmentPath::Cgroup,
            Self::Subreaper => ContainmentPath::Subreaper,
        }
    }

    /// Spawns `cmd` contained (its child leads a new process group and, on the cgroup
    /// path, enters its cgroup before running any user code). `permit` is the run's
    /// `--max-execs` slot, held until every process of the run is dead.
    ///
    /// # Errors
    /// [`SpawnError::Contain`] when the cgroup cannot be created, [`SpawnError::Spawn`]
    /// when the program cannot be started.
    pub(crate) fn spawn(
        &self,
        cmd: &mut tokio::process::Command,
        permit: OwnedSemaphorePermit,
    ) -> Result<(tokio::process::Child, Run), SpawnError> {
        cmd.process_group(0);
        let spawn = |cmd: &mut tokio::process::Command| {
            let child = cmd.spawn()?;
            let pid = child
                .id()
                .and_then(|p| i32::try_from(p).ok())
                .ok_or_else(|| io::Error::other("the child has no pid"))?;
            Ok((pid, child))
        };
        let (child, kind) = match self {
            Self::Cgroup(root) => {
                let cg = root.create().map_err(SpawnError::Contain)?;
                let fd = cg.procs_fd();
                // SAFETY: the hook runs in the forked child before exec and only calls
                // write(2), which is async-signal-safe; `fd` stays open until spawn returns
                // (`cg` outlives the call) and is close-on-exec.
                unsafe {
                    cmd.pre_exec(move || {
                        if libc::write(fd, b"0".as_ptr().cast(), 1) == 1 {
                            Ok(())
                        } else {
                            Err(io::Error::last_os_error())
                        }
                    });
                }
                match subreaper::with_spawn_lock(|| spawn(cmd)) {
                    Ok(child) => (child, Kind::Cgroup(cg)),
                    Err(e) => {
                        let _ = cg.remove();
                        return Err(SpawnError::Spawn(e));
                    }
                }
            }
            Self::Subreaper => {
                let tracker = Tracker::new();
                cmd.env(RUN_ENV, tracker.token());
                let child = subreaper::spawn_tracked(|| spawn(cmd), Some(&tracker))
                    .map_err(SpawnError::Spawn)?;
                (child, Kind::Subreaper(tracker))
            }
        };
        let leader = child.id().and_then(|p| i32::try_from(p).ok()).unwrap_or(0);
        let run = Run {
            group: Some(ProcessGroup::new(u32::try_from(leader).unwrap_or(0))),
            leader,
            path: kind.path(),
            inner: Some((kind, permit)),
        };
        Ok((child, run))
    }
}

/// Why a contained spawn failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SpawnError {
    /// The run's cgroup cannot be created.
    #[error("cannot create the command's cgroup: {0}")]
    Contain(io::Error),
    /// The program cannot be started.
    #[error(transparent)]
    Spawn(io::Error),
}

#[derive(Debug)]
enum Kind {
    Cgroup(RunCgroup),
    Subreaper(Tracker),
}

impl Kind {
    fn path(&self) -> ContainmentPath {
        match self {
            Self::Cgroup(_) => ContainmentPath::Cgroup,
            Self::Subreaper(_) => ContainmentPath::Subreaper,
        }
    }

    fn kill_now(&self) {
        match self {
            Self::Cgroup(cg) => cg.kill(),
            Self::Subreaper(t) => {
                t.kill_round();
            }
        }
    }

    /// Kills everything and blocks until it is all dead; removes the cgroup.
    fn kill_and_wait(self) {
        match self {
            Self::Cgroup(cg) => {
                cg.kill_and_wait();
                if let Err(e) = cg.remove() {
                    tracing::warn!(cgroup = %cg.path().display(), error = %e, "cannot remove an exec cgroup");
                }
            }
            Self::Subreaper(t) => t.kill_and_wait(),
        }
    }
}

/// A contained run. Every way out kills all its processes: [`finish`](Self::finish) at
/// the end of a run waits for them; dropping it (client gone, server stopping, a panic)
/// kills them at once and a background thread waits for them. The `--max-execs` slot is
/// released only when they are all dead.
#[derive(Debug)]
pub struct Run {
    group: Option<ProcessGroup>,
    leader: i32,
    path: ContainmentPath,
    inner: Option<(Kind, OwnedSemaphorePermit)>,
}

impl Run {
    /// Which path contains the run.
    pub fn path(&self) -> ContainmentPath {
        self.path
    }

    /// Sends SIGKILL to every process of the run (its group, and its cgroup or tracked
    /// descendants), without waiting.
    pub fn kill(&self) {
        if let Some(g) = &self.group {
            g.kill();
        }
        if let Some((k, _)) = &self.inner {
            k.kill_now();
        }
    }

    /// Tells the run its leader was reaped by its owner (its pid may be reused).
    pub fn leader_reaped(&self) {
        subreaper::forget_leader(self.leader);
    }

    /// Kills whatever is left, waits until every process of the run is dead, removes its
    /// cgroup and frees its slot. Returns the path that contained it.
    pub async fn finish(mut self) -> ContainmentPath {
        self.kill();
        // The group is empty once this returns: no later killpg on a reusable id.
        if let Some(g) = self.group.take() {
            g.release();
        }
        let path = self.path;
        let Some((kind, permit)) = self.inner.take() else {
            return path;
        };
        let done = tokio::task::spawn_blocking(move || {
            kind.kill_and_wait();
            drop(permit);
        })
        .await;
        if let Err(e) = done {
            tracing::warn!(error = %e, "exec cleanup task failed");
        }
        path
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let Some((kind, permit)) = self.inner.take() else {
            return;
        };
        if let Some(g) = &self.group {
            g.kill();
        }
        kind.kill_now();
        let spawned = std::thread::Builder::new()
            .name("sockit-exec-reap".into())
            .spawn(move || {
                kind.kill_and_wait();
                drop(permit);
            });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "cannot start the exec cleanup thread; the run's slot is freed now");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_names() {
        for c in [
            Containment::Auto,
            Containment::Cgroup,
            Containment::Subreaper,
        ] {
            assert_eq!(c.as_str().parse::<Containment>(), Ok(c));
        }
        assert!("jail".parse::<Containment>().is_err());
        assert_eq!(Containment::default(), Containment::Auto);
    }
}
