//! CPU pinning and descriptor limits for benchmarks.

/// The cores this process may run on.
pub fn allowed_cores() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain data, zeroed is a valid empty set; sched_getaffinity
    // fills at most size_of::<cpu_set_t>() bytes.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// Splits the allowed cores between server and client: the first half (at least one)
/// for the server, the rest for the client. With one core both get it (no pinning).
pub fn split_cores() -> (Vec<usize>, Vec<usize>) {
    let cores = allowed_cores();
    if cores.len() < 2 {
        return (Vec::new(), Vec::new());
    }
    let half = cores.len() / 2;
    (cores[..half].to_vec(), cores[half..].to_vec())
}

/// Pins the calling thread (and threads it creates later) to `cores`.
///
/// # Errors
/// As sched_setaffinity(2).
pub fn pin_current_thread(cores: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t is valid; CPU_SET indices are bounded by CPU_SETSIZE;
    // sched_setaffinity(0) only affects this thread. It is async-signal-safe, so this is
    // also usable between fork and exec.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cores.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the new soft limit.
/// Child processes (the benchmarked servers) inherit it.
///
/// # Errors
/// As setrlimit(2).
pub fn raise_nofile() -> std::io::Result<u64> {
    rlimit::increase_nofile_limit(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_least_one_core() {
        assert!(!allowed_cores().is_empty());
    }

    #[test]
    fn split_gives_each_side_its_own_cores() {
        let cores = allowed_cores();
        let (s, c) = split_cores();
        if cores.len() < 2 {
            assert!(s.is_empty() && c.is_empty(), "one core: no pinning");
            return;
        }
        assert!(!s.is_empty() && !c.is_empty(), "{s:?} {c:?}");
        assert!(s.iter().all(|x| !c.contains(x)), "{s:?} {c:?}");
        let mut both = [s, c].concat();
        both.sort_unstable();
        assert_eq!(both, cores, "together they are the allowed cores");
    }

    #[test]
    fn raise_sets_the_soft_limit_to_the_hard_limit() {
        let soft = raise_nofile().unwrap();
        // SAFETY: getrlimit with a valid rlimit struct.
        let lim = unsafe {
            let mut lim: libc::rlimit = std::mem::zeroed();
            assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
            lim
        };
        assert_eq!(soft, lim.rlim_cur);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
