//! The fallback when no cgroup can be used: the server makes itself a child subreaper
//! (`PR_SET_CHILD_SUBREAPER`, set once), so a run's processes that lose their parent are
//! reparented to the server instead of to init, and it tracks every descendant of each run
//! by walking `/proc`.
//!
//! Each run keeps the set of its pids (with their start times, so a reused pid is never
//! mistaken for one of them). A scan, every [`TICK`] while runs exist and at every kill,
//! adds every process whose parent is in a set. A process reparented to the server that no
//! set holds yet (its parent died between two scans) is given to the run named by its
//! `SOCKIT_EXEC_RUN` environment variable (set on every run's child, inherited), or, if it
//! cleared it, to every run that started before it. Zombies reparented to the server are
//! reaped. Killing a run sends SIGKILL to every live pid of its set, rescans, and repeats
//! until two scans in a row find nothing alive.
//!
//! Every exec child is spawned under one process-wide lock that records it as a *leader*:
//! leaders are reaped by their owner (tokio), never by the scan.

use std::collections::{HashMap, HashSet};
use std::io;
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// The environment variable naming the run a process belongs to.
pub const RUN_ENV: &str = "SOCKIT_EXEC_RUN";

/// Pause between two background scans while runs exist.
pub const TICK: Duration = Duration::from_millis(100);
/// First pause between two kill rounds (doubles up to the maximum).
const KILL_POLL_FIRST: Duration = Duration::from_millis(1);
/// Longest pause between two kill rounds.
const KILL_POLL_MAX: Duration = Duration::from_millis(50);
/// After this long, a run whose processes will not die is logged (and still waited for).
const KILL_WARN_AFTER: Duration = Duration::from_secs(10);
/// Leaders kept before the list is pruned of processes that are gone.
const LEADERS_PRUNE_AT: usize = 64;

/// One process, from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcStat {
    /// Its pid.
    pub pid: i32,
    /// Its parent's pid.
    pub ppid: i32,
    /// When it started (clock ticks since boot): tells a reused pid apart.
    pub start: u64,
    /// Whether it has exited and waits to be reaped (or is being reaped).
    pub zombie: bool,
}

/// Parses the text of `/proc/PID/stat` (total: `None` when malformed). The command name
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted
/// from the last `)`.
pub fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let state = *rest.first()?;
    Some(ProcStat {
        pid,
        ppid: rest.get(1)?.parse().ok()?,
        start: rest.get(19)?.parse().ok()?,
        zombie: matches!(state, "Z" | "X" | "x"),
    })
}

/// Reads one process's stat.
pub fn stat_of(pid: i32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every process of the system.
fn read_procs() -> HashMap<i32, ProcStat> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        if let Some(s) = stat_of(pid) {
            out.insert(pid, s);
        }
    }
    out
}

/// The run named in a process's environment, if it is one of this server process's.
fn run_of(pid: i32, me: i32) -> Option<u64> {
    let env = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let want = format!("{RUN_ENV}={me}-");
    env.split(|&b| b == 0).find_map(|kv| {
        std::str::from_utf8(kv)
            .ok()?
            .strip_prefix(want.as_str())?
            .parse()
            .ok()
    })
}

/// Whether a process sits in a run's cgroup (the cgroup path owns it, not this tracker).
fn in_exec_cgroup(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup")).is_ok_and(|t| {
        crate::cgroup::unified_path(&t)
            .is_some_and(|p| p.contains(&format!("/{}", crate::cgroup::PREFIX)))
    })
}

fn sigkill(pid: i32) {
    if pid > 1 {
        // SAFETY: kill only sends a signal; pid is a tracked process whose start time was
        // checked by the scan just before.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// Reaps a zombie child of ours (not a leader) without blocking.
fn reap(pid: i32) {
    let mut status = 0;
    // SAFETY: WNOHANG on one pid with a valid pointer; at worst ECHILD.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

/// A run being tracked.
#[derive(Debug)]
struct Tracked {
    leader: i32,
    leader_reaped: bool,
    start: u64,
    pids: HashMap<i32, u64>,
}

#[derive(Debug, Default)]
struct State {
    leaders: HashMap<i32, Option<u64>>,
    runs: HashMap<u64, Tracked>,
    ticker: bool,
}

struct Registry {
    state: Mutex<State>,
    wake: Condvar,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        state: Mutex::new(State::default()),
        wake: Condvar::new(),
    })
}

fn lock() -> MutexGuard<'static, State> {
    registry()
        .state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn same(procs: &HashMap<i32, ProcStat>, pid: i32, start: Option<u64>) -> bool {
    procs
        .get(&pid)
        .is_some_and(|p| start.is_none_or(|s| s == p.start))
}

/// One pass: forget what is gone, adopt new descendants and reparented orphans, reap
/// zombies reparented to us. Returns the processes seen.
fn scan(st: &mut State) -> HashMap<i32, ProcStat> {
    // SAFETY: getpid has no preconditions.
    let me = unsafe { libc::getpid() };
    let procs = read_procs();
    st.leaders.retain(|&pid, start| same(&procs, pid, *start));
    for run in st.runs.values_mut() {
        run.pids
            .retain(|&pid, &mut start| same(&procs, pid, Some(start)));
        if run.leader_reaped {
            run.pids.remove(&run.leader);
        }
    }
    let tracked: HashSet<i32> = st
        .runs
        .values()
        .flat_map(|r| r.pids.keys().copied())
        .collect();
    for p in procs.values() {
        if p.ppid != me || st.leaders.contains_key(&p.pid) {
            continue;
        }
        if p.zombie {
            reap(p.pid);
            continue;
        }
        if tracked.contains(&p.pid) || in_exec_cgroup(p.pid) {
            continue;
        }
        match run_of(p.pid, me) {
            Some(id) => match st.runs.get_mut(&id) {
                Some(run) => {
                    run.pids.insert(p.pid, p.start);
                }
                None => {
                    tracing::info!(
                        pid = p.pid,
                        run = id,
                        "killing a process left by a finished exec run"
                    );
                    sigkill(p.pid);
                }
            },
            None => {
                for run in st.runs.values_mut().filter(|r| r.start <= p.start) {
                    run.pids.insert(p.pid, p.start);
                }
            }
        }
    }
    let mut children: HashMap<i32, Vec<&ProcStat>> = HashMap::new();
    for p in procs.values().filter(|p| !p.zombie) {
        children.entry(p.ppid).or_default().push(p);
    }
    for run in st.runs.values_mut() {
        let mut todo: Vec<i32> = run.pids.keys().copied().collect();
        while let Some(pid) = todo.pop() {
            for c in children.get(&pid).into_iter().flatten() {
                if run.pids.insert(c.pid, c.start).is_none() {
                    todo.push(c.pid);
                }
            }
        }
    }
    procs
}

fn ticker() {
    let reg = registry();
    loop {
        let mut st = lock();
        while st.runs.is_empty() {
            st = reg
                .wake
                .wait(st)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        scan(&mut st);
        drop(st);
        std::thread::sleep(TICK);
    }
}

/// Makes this process a child subreaper (once; later calls return the first result).
///
/// # Errors
/// `prctl(PR_SET_CHILD_SUBREAPER)` failed.
pub fn enable() -> io::Result<()> {
    static DONE: OnceLock<Result<(), i32>> = OnceLock::new();
    let r = DONE.get_or_init(|| {
        // SAFETY: prctl with an integer argument; no memory is passed.
        let r = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL))
        }
    });
    r.map_err(io::Error::from_raw_os_error)
}

/// Whether this process is a child subreaper.
pub fn is_subreaper() -> bool {
    let mut v: libc::c_int = 0;
    // SAFETY: PR_GET_CHILD_SUBREAPER writes one int to the pointer.
    let r = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut v as *mut libc::c_int) };
    r == 0 && v != 0
}

/// Runs `spawn` (which starts one process and returns its pid) under the process-wide
/// lock, recording the pid as a leader so the scan never reaps it, and, with `run`,
/// starting to track that run with this leader.
///
/// # Errors
/// What `spawn` returned.
pub fn with_spawn_lock<T>(spawn: impl FnOnce() -> io::Result<(i32, T)>) -> io::Result<T> {
    spawn_tracked(spawn, None)
}

pub(crate) fn spawn_tracked<T>(
    spawn: impl FnOnce() -> io::Result<(i32, T)>,
    run: Option<&Tracker>,
) -> io::Result<T> {
    let mut st = lock();
    if st.leaders.len() >= LEADERS_PRUNE_AT {
        st.leaders
            .retain(|&pid, start| stat_of(pid).is_some_and(|p| start.is_none_or(|s| s == p.start)));
    }
    let (pid, out) = spawn()?;
    let start = stat_of(pid).map(|p| p.start);
    st.leaders.insert(pid, start);
    if let Some(t) = run {
        let mut pids = HashMap::new();
        if let Some(s) = start {
            pids.insert(pid, s);
        }
        st.runs.insert(
            t.id,
            Tracked {
                leader: pid,
                leader_reaped: false,
                start: start.unwrap_or(0),
                pids,
            },
        );
        if !st.ticker {
            st.ticker = std::thread::Builder::new()
                .name("sockit-exec-scan".into())
                .spawn(ticker)
                .is_ok();
        }
        registry().wake.notify_all();
    }
    Ok(out)
}

/// Forgets a leader its owner has reaped (its pid may be reused from now on).
pub fn forget_leader(pid: i32) {
    let mut st = lock();
    st.leaders.remove(&pid);
    for run in st.runs.values_mut().filter(|r| r.leader == pid) {
        run.leader_reaped = true;
        run.pids.remove(&pid);
    }
}

/// One run's tracking; dropping it stops tracking (after [`kill_and_wait`]).
///
/// [`kill_and_wait`]: Tracker::kill_and_wait
#[derive(Debug)]
pub struct Tracker {
    id: u64,
}

impl Tracker {
    /// A new run id (tracking starts when its leader is spawned).
    pub(crate) fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        Self {
            id: NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        }
    }

    /// The value of [`RUN_ENV`] for this run's child.
    pub fn token(&self) -> String {
        format!("{}-{}", std::process::id(), self.id)
    }

    /// The live pids of the run right now (after a fresh scan).
    pub fn pids(&self) -> Vec<i32> {
        let mut st = lock();
        let procs = scan(&mut st);
        let mut v: Vec<i32> = st
            .runs
            .get(&self.id)
            .map(|r| {
                r.pids
                    .keys()
                    .copied()
                    .filter(|p| procs.get(p).is_some_and(|s| !s.zombie))
                    .collect()
            })
            .unwrap_or_default();
        v.sort_unstable();
        v
    }

    /// Scans, then sends SIGKILL to every live process of the run; returns how many.
    pub fn kill_round(&self) -> usize {
        let mut st = lock();
        let procs = scan(&mut st);
        let Some(run) = st.runs.get(&self.id) else {
            return 0;
        };
        let mut live = 0;
        for &pid in run.pids.keys() {
            if procs.get(&pid).is_some_and(|p| !p.zombie) {
                sigkill(pid);
                live += 1;
            }
        }
        live
    }

    /// Kills every process of the run and blocks until two scans in a row find none alive
    /// (a process stuck in the kernel is waited for: the `--max-execs` slot is held).
    pub fn kill_and_wait(&self) {
        let started = Instant::now();
        let mut pause = KILL_POLL_FIRST;
        let mut clean = 0;
        let mut warned = false;
        loop {
            if self.kill_round() == 0 {
                clean += 1;
                if clean >= 2 {
                    return;
                }
            } else {
                clean = 0;
            }
            if !warned && started.elapsed() > KILL_WARN_AFTER {
                warned = true;
                tracing::warn!(run = self.id, pids = ?self.pids(), "exec run's processes still alive after SIGKILL; waiting");
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(KILL_POLL_MAX);
        }
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let mut st = lock();
        st.runs.remove(&self.id);
        // Reap what the last kills left as zombies reparented to us.
        scan(&mut st);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines() {
        let s = "4242 (sleep) S 4200 4242 4200 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 987654 1000 100 18446744073709551615";
        assert_eq!(
            parse_stat(s),
            Some(ProcStat {
                pid: 4242,
                ppid: 4200,
                start: 987654,
                zombie: false
            })
        );
        let odd = "7 (a) b) (c) Z 1 7 7 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 55 0 0";
        assert_eq!(
            parse_stat(odd),
            Some(ProcStat {
                pid: 7,
                ppid: 1,
                start: 55,
                zombie: true
            })
        );
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("1 (x) S 0"), None);
        assert_eq!(parse_stat(") 1 (x"), None);
    }

    #[test]
    fn own_stat_is_readable() {
        let me = stat_of(i32::try_from(std::process::id()).unwrap()).unwrap();
        assert!(!me.zombie);
        assert!(me.start > 0);
    }
}
