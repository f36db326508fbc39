//! Per-client flood control: the RFC 1459 §8.10 message timer, as ircds implement it.
//!
//! Each command moves the client's timer `penalty` into the future (starting from now if
//! the timer is behind). While the timer is more than `burst` ahead of now, the server
//! stops processing that client's commands until it is not; so a client may send a burst
//! of about `burst / penalty` commands at once and then one per `penalty`. Lines that
//! arrive meanwhile wait in a bounded receive queue; overflowing it is an "Excess Flood".

use std::time::{Duration, Instant};

/// Flood-control settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FloodConfig {
    /// What one command costs. Zero turns flood control off.
    pub penalty: Duration,
    /// How far ahead of now the timer may run before processing pauses.
    pub burst: Duration,
}

impl Default for FloodConfig {
    fn default() -> Self {
        Self {
            penalty: Duration::from_secs(1),
            burst: Duration::from_secs(10),
        }
    }
}

/// One client's message timer.
#[derive(Debug, Clone)]
pub struct FloodTimer {
    config: FloodConfig,
    timer: Instant,
}

impl FloodTimer {
    /// A timer starting at `now`.
    pub fn new(config: FloodConfig, now: Instant) -> Self {
        Self { config, timer: now }
    }

    /// Charges one command arriving at `now` with `weight` penalties; returns how long the
    /// server must wait before processing it (zero inside the burst).
    pub fn charge(&mut self, now: Instant, weight: u32) -> Duration {
        if self.config.penalty.is_zero() {
            return Duration::ZERO;
        }
        if self.timer < now {
            self.timer = now;
        }
        let wait = (self.timer - now).saturating_sub(self.config.burst);
        self.timer += self.config.penalty * weight;
        wait
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(p: u64, b: u64) -> FloodConfig {
        FloodConfig {
            penalty: Duration::from_millis(p),
            burst: Duration::from_millis(b),
        }
    }

    #[test]
    fn burst_then_one_per_penalty() {
        let t0 = Instant::now();
        let mut f = FloodTimer::new(cfg(1000, 5000), t0);
        let waits: Vec<u64> = (0..8).map(|_| f.charge(t0, 1).as_millis() as u64).collect();
        assert_eq!(waits, vec![0, 0, 0, 0, 0, 0, 1000, 2000]);
    }

    #[test]
    fn timer_catches_up_with_time() {
        let t0 = Instant::now();
        let mut f = FloodTimer::new(cfg(1000, 2000), t0);
        for _ in 0..3 {
            f.charge(t0, 1);
        }
        assert_eq!(f.charge(t0, 1), Duration::from_secs(1));
        // Ten seconds later the timer is behind now again: a fresh burst.
        assert_eq!(f.charge(t0 + Duration::from_secs(10), 1), Duration::ZERO);
    }

    #[test]
    fn zero_penalty_is_off() {
        let t0 = Instant::now();
        let mut f = FloodTimer::new(cfg(0, 0), t0);
        assert!((0..1000).all(|_| f.charge(t0, 1).is_zero()));
    }

    #[test]
    fn weight_costs_more() {
        let t0 = Instant::now();
        let mut f = FloodTimer::new(cfg(1000, 1000), t0);
        assert_eq!(f.charge(t0, 3), Duration::ZERO);
        assert_eq!(f.charge(t0, 1), Duration::from_secs(2));
    }
}
