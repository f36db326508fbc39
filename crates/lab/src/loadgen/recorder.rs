//! Open-loop recording with coordinated-omission correction.
//!
//! A closed-loop client that waits for each answer before sending the next request
//! *omits* the requests it would have sent while the server stalled: one 500 ms stall
//! shows as one slow sample instead of the 50 that real users arriving every 10 ms
//! would have suffered. wrk2's fix: requests follow a fixed schedule (`start + i *
//! interval`) and latency is measured from the *intended* send time, so the queueing
//! delay a stall causes is charged to every request it delayed.
//!
//! Times here are offsets from the run's start, so the recorder is a pure function of
//! its inputs and can be tested with a synthetic clock.

use std::time::Duration;

use hdrhistogram::Histogram;

use crate::loadgen::percentiles::{new_histogram, record};

/// Schedules requests and records corrected and uncorrected latency for one connection.
#[derive(Debug)]
pub struct OpenLoopRecorder {
    interval: Duration,
    next: u64,
    /// Latency from the intended send time (what users see).
    pub corrected: Histogram<u64>,
    /// Latency from the actual send time (what a naive closed-loop tool shows).
    pub uncorrected: Histogram<u64>,
}

impl OpenLoopRecorder {
    /// One request every `interval`, the first one due at offset zero.
    pub fn new(interval: Duration) -> Self {
        OpenLoopRecorder {
            interval,
            next: 0,
            corrected: new_histogram(),
            uncorrected: new_histogram(),
        }
    }

    /// When the next request is due (offset from the start).
    pub fn next_due(&self) -> Duration {
        self.interval
            .saturating_mul(self.next.min(u32::MAX as u64) as u32)
    }

    /// Records the request that was due at [`Self::next_due`], actually sent at `sent`
    /// and answered at `done` (offsets from the start), and moves to the next one.
    pub fn record(&mut self, sent: Duration, done: Duration) {
        let due = self.next_due();
        record(
            &mut self.corrected,
            done.saturating_sub(due).as_nanos() as u64,
        );
        record(
            &mut self.uncorrected,
            done.saturating_sub(sent).as_nanos() as u64,
        );
        self.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::percentiles::Percentiles;

    /// A server answering in 1 ms, except one 500 ms stall; requests due every 10 ms.
    fn simulate() -> OpenLoopRecorder {
        let mut r = OpenLoopRecorder::new(Duration::from_millis(10));
        let mut now = Duration::ZERO;
        for i in 0..1000 {
            let sent = now.max(r.next_due());
            let service = if i == 100 {
                Duration::from_millis(500)
            } else {
                Duration::from_millis(1)
            };
            let done = sent + service;
            r.record(sent, done);
            now = done;
        }
        r
    }

    #[test]
    fn stall_is_charged_to_every_delayed_request() {
        let r = simulate();
        let corrected = Percentiles::from_histogram(&r.corrected);
        let naive = Percentiles::from_histogram(&r.uncorrected);
        // The naive view sees one slow request out of 1000: p99 stays at 1 ms.
        assert!(naive.p99_us < 1_100.0, "{naive:?}");
        // Requests 101..~150 were due during the stall and queued behind it.
        assert!(corrected.p99_us > 400_000.0, "{corrected:?}");
        assert!(corrected.p90_us < 1_100.0, "{corrected:?}");
        let over_100ms = r.corrected.count_between(100_000_000, u64::MAX);
        let naive_over_100ms = r.uncorrected.count_between(100_000_000, u64::MAX);
        assert_eq!(naive_over_100ms, 1);
        assert!((40..=50).contains(&over_100ms), "{over_100ms}");
        // Both see the stall itself.
        assert!(corrected.max_us >= 500_000.0 && naive.max_us >= 500_000.0);
    }

    #[test]
    fn no_stall_means_no_correction() {
        let mut r = OpenLoopRecorder::new(Duration::from_millis(10));
        for i in 0..100u64 {
            let due = Duration::from_millis(10 * i);
            r.record(due, due + Duration::from_micros(200));
        }
        let c = Percentiles::from_histogram(&r.corrected);
        let u = Percentiles::from_histogram(&r.uncorrected);
        assert!((c.max_us - u.max_us).abs() < 1.0, "{c:?} {u:?}");
    }
}
