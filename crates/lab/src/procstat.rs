//! Server CPU time and memory, read from /proc for a process and its descendants (the
//! fork model's children count too).

use std::time::Duration;

/// The pid and all its live descendants.
pub fn process_tree(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() && out.len() < 100_000 {
        let p = out[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let children =
                    std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                out.extend(
                    children
                        .split_whitespace()
                        .filter_map(|c| c.parse::<u32>().ok()),
                );
            }
        }
        i += 1;
    }
    out
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime, stime, cutime, cstime of one process, in ticks.
fn stat_times(pid: u32) -> Option<[u64; 4]> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may contain spaces).
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state); utime is field 14 → index 11.
    let get = |i: usize| f.get(i).and_then(|v| v.parse().ok());
    Some([get(11)?, get(12)?, get(13)?, get(14)?])
}

/// User and system (kernel) CPU time used by `pid`, its reaped children and its live
/// descendants.
pub fn cpu_times(pid: u32) -> (Duration, Duration) {
    let (mut user, mut system) = (0u64, 0u64);
    for (i, p) in process_tree(pid).into_iter().enumerate() {
        if let Some([u, s, cu, cs]) = stat_times(p) {
            user += u;
            system += s;
            if i == 0 {
                user += cu;
                system += cs;
            }
        }
    }
    let secs = |ticks: u64| Duration::from_secs_f64(ticks as f64 / clock_ticks());
    (secs(user), secs(system))
}

fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find(|l| l.starts_with(key))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// Proportional set size of one process (shared pages split between sharers), from
/// smaps_rollup; VmRSS where that file is missing.
fn pss_kib(pid: u32) -> Option<u64> {
    if let Ok(s) = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")) {
        if let Some(v) = s
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
        {
            return Some(v);
        }
    }
    status_kib(pid, "VmRSS:")
}

/// Memory of the whole tree in KiB (PSS, so forked children's shared pages are not
/// counted twice).
pub fn tree_memory_kib(pid: u32) -> u64 {
    process_tree(pid).into_iter().filter_map(pss_kib).sum()
}

/// Peak RSS (VmHWM) of `pid` plus the current RSS of its descendants, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    let tree = process_tree(pid);
    let root = status_kib(pid, "VmHWM:").unwrap_or(0);
    root + tree[1..]
        .iter()
        .filter_map(|&p| status_kib(p, "VmRSS:"))
        .sum::<u64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn self_has_memory_and_cpu() {
        let me = std::process::id();
        // Burn CPU until cpu_times sees the tick counter move past zero (a tick is
        // 1/CLK_TCK s; bounded: a reader that never sees it fails).
        let mut x = 0u64;
        let mut rounds = 0;
        while cpu_times(me) == (Duration::ZERO, Duration::ZERO) {
            assert!(
                rounds < 1000,
                "cpu_times still zero after 1000 rounds of work"
            );
            for i in 0..1_000_000u64 {
                x = std::hint::black_box(x.wrapping_add(i * i));
            }
            rounds += 1;
        }
        assert!(tree_memory_kib(me) > 100);
        let rss = status_kib(me, "VmRSS:").expect("VmRSS of this process");
        assert!(rss > 100 && peak_rss_kib(me) >= rss);
    }

    #[test]
    fn child_is_in_tree() {
        // `cat` with a piped stdin blocks until we kill it.
        let mut child = std::process::Command::new("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let tree = process_tree(std::process::id());
        let _ = child.kill();
        let _ = child.wait();
        assert!(tree.contains(&child.id()), "{tree:?}");
    }
}
