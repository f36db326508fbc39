//! The host clock as an NTP server describes it: whether some daemon keeps it
//! synchronized, its error bound and pending leap second (the kernel's NTP state,
//! `adjtimex`), and its precision.
//!
//! The system calls are small functions at the bottom; what they return is judged by
//! pure functions ([`ClockState::from_kernel`], [`precision_log2`], [`measure_quantum`])
//! that the tests drive with any values.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use crate::packet::{LEAP_DELETE, LEAP_INSERT, LEAP_NONE, LEAP_UNSYNCHRONIZED};

/// The error bound the kernel reports for a clock nobody disciplines (`NTP_PHASE_LIMIT`,
/// 16 s), used when the state cannot be read at all.
pub(crate) const UNSYNCHRONIZED_MAX_ERROR: Duration = Duration::from_secs(16);

/// The kernel's clock state (`adjtimex` with no modes: a read, no privilege needed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockState {
    /// The leap indicator the kernel's state implies: 1 or 2 while a leap second is
    /// announced for the end of the day, 3 while one is in progress or when the clock is
    /// not synchronized, else 0.
    pub leap: u8,
    /// Whether a daemon (chronyd, ntpd, systemd-timesyncd) has marked the clock
    /// synchronized: no `STA_UNSYNC` status and no `TIME_ERROR` state.
    pub synchronized: bool,
    /// The kernel's maximum error: what the daemon set (its root delay / 2 + root
    /// dispersion) plus 500 ppm of the time since, which the kernel adds every second.
    pub max_error: Duration,
    /// The kernel's estimated error (the daemon's offset estimate).
    pub est_error: Duration,
}

impl ClockState {
    /// The state of a clock nobody disciplines.
    pub const UNSYNCHRONIZED: ClockState = ClockState {
        leap: LEAP_UNSYNCHRONIZED,
        synchronized: false,
        max_error: UNSYNCHRONIZED_MAX_ERROR,
        est_error: UNSYNCHRONIZED_MAX_ERROR,
    };

    /// Reads the host's state. Where it cannot be read (not Linux, or the call fails),
    /// the clock counts as not synchronized.
    pub fn read() -> ClockState {
        match read_kernel() {
            Some(k) => ClockState::from_kernel(k),
            None => ClockState::UNSYNCHRONIZED,
        }
    }

    /// Judges what `adjtimex` returned.
    pub(crate) fn from_kernel(k: KernelClock) -> ClockState {
        let synchronized = k.status & STA_UNSYNC == 0 && k.state != TIME_ERROR && k.state >= 0;
        let leap = if !synchronized {
            LEAP_UNSYNCHRONIZED
        } else {
            match k.state {
                TIME_INS => LEAP_INSERT,
                TIME_DEL => LEAP_DELETE,
                // chrony announces an alarm while the leap second itself runs.
                TIME_OOP => LEAP_UNSYNCHRONIZED,
                _ => LEAP_NONE,
            }
        };
        let micros = |us: i64| Duration::from_micros(us.max(0).unsigned_abs());
        ClockState {
            leap,
            synchronized,
            max_error: micros(k.max_error_us),
            est_error: micros(k.est_error_us),
        }
    }
}

/// The raw fields of the kernel's answer that [`ClockState`] is made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KernelClock {
    /// The return value: the clock state (`TIME_OK` 0, `TIME_INS` 1, `TIME_DEL` 2,
    /// `TIME_OOP` 3, `TIME_WAIT` 4, `TIME_ERROR` 5), or -1 on failure.
    pub state: i32,
    /// The status bits (`STA_UNSYNC` is 0x40).
    pub status: i32,
    /// `maxerror` in microseconds.
    pub max_error_us: i64,
    /// `esterror` in microseconds.
    pub est_error_us: i64,
}

// The kernel's values (include/uapi/linux/timex.h), the same on every Linux.
const TIME_INS: i32 = 1;
const TIME_DEL: i32 = 2;
const TIME_OOP: i32 = 3;
const TIME_ERROR: i32 = 5;
const STA_UNSYNC: i32 = 0x0040;

/// The precision exponent of the host clock: log2 of its resolution in seconds
/// (`clock_getres(CLOCK_REALTIME)`), rounded. When the kernel claims a 1 ns resolution
/// (every modern Linux), the real limit is the cost of reading the clock, so it is
/// measured as chrony does: the smallest step between consecutive reads. Computed once.
pub(crate) fn precision() -> i8 {
    static PRECISION: OnceLock<i8> = OnceLock::new();
    *PRECISION.get_or_init(|| {
        let resolution = clock_resolution_ns().unwrap_or(1);
        let quantum = if resolution <= 1 {
            measure_quantum(read_clock_ns, MEASURE_READS).unwrap_or(1)
        } else {
            resolution
        };
        precision_log2(quantum)
    })
}

/// log2 of `quantum_ns` nanoseconds in seconds, rounded, within -30 ..= 0 (chrony's
/// bounds: 1 ns .. 1 s).
pub(crate) fn precision_log2(quantum_ns: u64) -> i8 {
    let seconds = (quantum_ns.clamp(1, 1_000_000_000) as f64) * 1e-9;
    (seconds.log2().round() as i8).clamp(-30, 0)
}

/// Positive steps [`measure_quantum`] collects before deciding (chrony's count).
pub(crate) const MEASURE_STEPS: usize = 100;
/// Most clock reads [`measure_quantum`] makes, so a clock that never moves cannot hang it.
pub(crate) const MEASURE_READS: usize = 1_000_000;

/// The smallest positive step between consecutive values of `read` (nanoseconds), over
/// [`MEASURE_STEPS`] steps or `max_reads` reads, whichever comes first; `None` when the
/// clock never moved.
pub(crate) fn measure_quantum(mut read: impl FnMut() -> i128, max_reads: usize) -> Option<u64> {
    let mut previous = read();
    let mut best: Option<u64> = None;
    let mut steps = 0;
    for _ in 0..max_reads {
        let now = read();
        let diff = now - previous;
        previous = now;
        if diff > 0 {
            let diff = u64::try_from(diff).unwrap_or(u64::MAX);
            best = Some(best.map_or(diff, |b| b.min(diff)));
            steps += 1;
            if steps >= MEASURE_STEPS {
                break;
            }
        }
    }
    best
}

fn read_clock_ns() -> i128 {
    match SystemTime::now().duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

/// `clock_getres(CLOCK_REALTIME)` in nanoseconds.
fn clock_resolution_ns() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid clock id and a pointer to a timespec we own.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_REALTIME, &mut ts) };
    if rc != 0 {
        return None;
    }
    let secs = u64::try_from(ts.tv_sec).ok()?;
    let nanos = u64::try_from(ts.tv_nsec).ok()?;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// `adjtimex` with no modes set: reads the kernel's NTP state.
#[cfg(target_os = "linux")]
#[allow(clippy::useless_conversion)] // `c_long` is 32 bits on some targets
fn read_kernel() -> Option<KernelClock> {
    // SAFETY: timex is plain data; all zeros (modes 0) asks for a read only.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: a pointer to a timex we own.
    let state = unsafe { libc::adjtimex(&mut tx) };
    if state < 0 {
        return None;
    }
    Some(KernelClock {
        state,
        status: tx.status,
        max_error_us: i64::from(tx.maxerror),
        est_error_us: i64::from(tx.esterror),
    })
}

/// Only Linux is read here; elsewhere the clock counts as not synchronized.
#[cfg(not(target_os = "linux"))]
fn read_kernel() -> Option<KernelClock> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kernel(state: i32, status: i32) -> KernelClock {
        KernelClock {
            state,
            status,
            max_error_us: 12_345,
            est_error_us: 67,
        }
    }

    #[test]
    fn synchronized_ok() {
        let s = ClockState::from_kernel(kernel(0, 0x2001));
        assert!(s.synchronized);
        assert_eq!(s.leap, LEAP_NONE);
        assert_eq!(s.max_error, Duration::from_micros(12_345));
        assert_eq!(s.est_error, Duration::from_micros(67));
    }

    #[test]
    fn unsync_status_bit() {
        let s = ClockState::from_kernel(kernel(0, 0x6041));
        assert!(!s.synchronized);
        assert_eq!(s.leap, LEAP_UNSYNCHRONIZED);
    }

    #[test]
    fn time_error_state() {
        let s = ClockState::from_kernel(kernel(5, 0x2001));
        assert!(!s.synchronized);
        assert_eq!(s.leap, LEAP_UNSYNCHRONIZED);
    }

    #[test]
    fn leap_second_announced() {
        assert_eq!(ClockState::from_kernel(kernel(1, 0x2011)).leap, LEAP_INSERT);
        assert_eq!(ClockState::from_kernel(kernel(2, 0x2021)).leap, LEAP_DELETE);
    }

    #[test]
    fn leap_second_in_progress_is_an_alarm() {
        let s = ClockState::from_kernel(kernel(3, 0x2011));
        assert!(s.synchronized);
        assert_eq!(s.leap, LEAP_UNSYNCHRONIZED);
    }

    #[test]
    fn after_the_leap_second() {
        assert_eq!(ClockState::from_kernel(kernel(4, 0x2001)).leap, LEAP_NONE);
    }

    #[test]
    fn failed_call_is_unsynchronized() {
        assert!(!ClockState::from_kernel(kernel(-1, 0)).synchronized);
    }

    #[test]
    fn negative_errors_are_zero() {
        let mut k = kernel(0, 0);
        k.max_error_us = -5;
        assert_eq!(ClockState::from_kernel(k).max_error, Duration::ZERO);
    }

    #[test]
    fn precision_exponents() {
        assert_eq!(precision_log2(1), -30);
        assert_eq!(precision_log2(0), -30);
        assert_eq!(precision_log2(1_000), -20); // 1 µs ≈ 2^-19.93
        assert_eq!(precision_log2(40), -25); // 40 ns ≈ 2^-24.6
        assert_eq!(precision_log2(10_000_000), -7); // 10 ms, a 100 Hz tick
        assert_eq!(precision_log2(5_000_000_000), 0);
    }

    #[test]
    fn measures_the_smallest_step() {
        let mut t = 0i128;
        let steps = [30, 0, 25, 40, 0, 0, 25];
        let mut i = 0;
        let got = measure_quantum(
            || {
                t += steps[i % steps.len()];
                i += 1;
                t
            },
            1_000,
        );
        assert_eq!(got, Some(25));
    }

    #[test]
    fn a_stuck_clock_ends_the_measurement() {
        assert_eq!(measure_quantum(|| 7, 10_000), None);
    }

    #[test]
    fn a_backward_step_is_not_a_step() {
        let mut values = [100i128, 50, 60, 61].into_iter();
        assert_eq!(measure_quantum(|| values.next().unwrap_or(61), 10), Some(1));
    }

    #[test]
    fn host_precision_is_plausible() {
        let p = precision();
        assert!((-30..=0).contains(&p), "precision {p}");
    }

    #[test]
    fn host_state_reads() {
        let s = ClockState::read();
        assert!(s.leap <= 3);
        if !s.synchronized {
            assert_eq!(s.leap, LEAP_UNSYNCHRONIZED);
        }
    }
}
