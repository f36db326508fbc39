//! The load generator: closed loop (ping-pong on N connections), open loop (a fixed
//! request rate with coordinated-omission correction, as wrk2 does) and connect rate
//! (connect, one echo, close). Every run is bounded by a deadline and, optionally, a
//! request count, and only ever targets 127.0.0.0/8.

pub mod closed;
pub mod connect;
pub mod open;
pub mod percentiles;
pub mod recorder;
pub mod source;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
pub use percentiles::Percentiles;

/// What to run.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// The echo server (must be on 127.0.0.0/8).
    pub addr: SocketAddr,
    /// Concurrent connections (closed/open loop) or concurrent connectors (connect rate).
    pub conns: usize,
    /// Message size in bytes.
    pub size: usize,
    /// Measurement time, after all connections are established.
    pub duration: Duration,
    /// Stop after this many requests in total, if set.
    pub max_requests: Option<u64>,
    /// Client sockets bind to 127.0.0.1 .. 127.0.0.N round-robin (1 = no spreading), so
    /// the 4-tuple space, hence ephemeral ports, is N times larger.
    pub source_ips: u8,
    /// Cores the client threads are pinned to (empty: no pinning).
    pub client_cores: Vec<usize>,
    /// Client runtime threads.
    pub threads: usize,
    /// Upper bound on establishing all connections.
    pub connect_timeout: Duration,
}

impl LoadConfig {
    /// Sensible defaults for `addr`: 10 connections, 64 bytes, 2 s.
    pub fn new(addr: SocketAddr) -> Self {
        LoadConfig {
            addr,
            conns: 10,
            size: 64,
            duration: Duration::from_secs(2),
            max_requests: None,
            source_ips: 16,
            client_cores: Vec::new(),
            threads: 1,
            connect_timeout: Duration::from_secs(20),
        }
    }

    /// Checks the target is loopback and the numbers make sense.
    ///
    /// # Errors
    /// [`LabError::NotLoopback`] or [`LabError::Invalid`].
    pub fn validate(&self) -> Result<()> {
        if !self.addr.ip().is_loopback() {
            return Err(LabError::NotLoopback { addr: self.addr });
        }
        if self.conns == 0 || self.size == 0 || self.duration.is_zero() {
            return Err(LabError::Invalid(
                "conns, size and duration must be > 0".into(),
            ));
        }
        Ok(())
    }

    /// A runtime whose threads are pinned to the client cores.
    pub(crate) fn runtime(&self) -> Result<tokio::runtime::Runtime> {
        let cores = self.client_cores.clone();
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(self.threads.max(1))
            // Tasks spawned from outside the runtime (all of them: `block_on` spawns)
            // wait in the global queue, which a worker with local work looks at only
            // every 61 polls by default. At 10,000 connections the last ones then start
            // seconds late while the first ones ping-pong: look at it on every poll.
            .global_queue_interval(1)
            .enable_all()
            .on_thread_start(move || {
                if !cores.is_empty() {
                    let _ = crate::affinity::pin_current_thread(&cores);
                }
            })
            .build()
            .map_err(|e| LabError::io("build client runtime", e))
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoadStats {
    /// Completed requests (echo round trips, or connections for connect rate).
    pub requests: u64,
    /// Failed requests or connections.
    pub errors: u64,
    /// Connections that were established.
    pub connected: usize,
    /// Measured seconds.
    pub elapsed_s: f64,
    /// requests / elapsed_s.
    pub rps: f64,
    /// Latency (for open loop: corrected for coordinated omission).
    pub latency: Percentiles,
    /// Open loop only: latency measured from the actual send (what a naive tool shows).
    pub uncorrected: Option<Percentiles>,
}

impl LoadStats {
    /// Waits for every load task, merges their histograms and error counts (a task that
    /// panicked counts as one error, on top of `errors`), and summarises the run started
    /// at `start` with `connected` connections. Closed loop and connect rate share this.
    pub(crate) async fn collect(
        mut set: tokio::task::JoinSet<(hdrhistogram::Histogram<u64>, u64)>,
        mut errors: u64,
        connected: usize,
        start: tokio::time::Instant,
    ) -> Self {
        let mut hist = percentiles::new_histogram();
        while let Some(r) = set.join_next().await {
            match r {
                Ok((h, e)) => {
                    hist.add(&h).expect("same bounds");
                    errors += e;
                }
                Err(_) => errors += 1,
            }
        }
        let elapsed = start.elapsed().as_secs_f64().max(1e-9);
        LoadStats {
            requests: hist.len(),
            errors,
            connected,
            elapsed_s: elapsed,
            rps: hist.len() as f64 / elapsed,
            latency: Percentiles::from_histogram(&hist),
            uncorrected: None,
        }
    }
}
