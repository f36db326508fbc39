//! Closed loop: N connections, each sends `size` bytes, waits for all `size` bytes to
//! come back (short reads are reassembled by `read_exact`), records the round trip and
//! sends again, until the deadline or the request budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::Result;
use crate::loadgen::percentiles::{new_histogram, record};
use crate::loadgen::source::connect_from;
use crate::loadgen::{LoadConfig, LoadStats};

/// Establishes `cfg.conns` connections (at most 256 connects in flight, bounded by
/// `cfg.connect_timeout`). Failed connects are counted, not fatal.
pub(crate) async fn connect_all(cfg: &LoadConfig) -> (Vec<TcpStream>, u64) {
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..cfg.conns {
        let sem = Arc::clone(&sem);
        let (addr, n, t) = (cfg.addr, cfg.source_ips, cfg.connect_timeout);
        set.spawn(async move {
            let _permit = sem.acquire_owned().await;
            tokio::time::timeout(t, connect_from(addr, i, n)).await
        });
    }
    let mut streams = Vec::with_capacity(cfg.conns);
    let mut errors = 0;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(Ok(s))) => streams.push(s),
            _ => errors += 1,
        }
    }
    (streams, errors)
}

/// Runs a closed-loop test. `on_connected` runs once all connections are up, before the
/// measurement starts (the bench samples server memory there).
///
/// # Errors
/// Invalid configuration or a runtime that cannot start.
pub fn run(cfg: &LoadConfig, on_connected: impl FnOnce(usize)) -> Result<LoadStats> {
    cfg.validate()?;
    let rt = cfg.runtime()?;
    rt.block_on(async {
        let (streams, connect_errors) = connect_all(cfg).await;
        on_connected(streams.len());
        let connected = streams.len();
        let start = Instant::now();
        let deadline = start + cfg.duration;
        let budget = Arc::new(AtomicU64::new(cfg.max_requests.unwrap_or(u64::MAX)));
        let mut set = tokio::task::JoinSet::new();
        for s in streams {
            let budget = Arc::clone(&budget);
            set.spawn(ping_pong(s, cfg.size, deadline, budget));
        }
        Ok(LoadStats::collect(set, connect_errors, connected, start).await)
    })
}

/// Takes one request from the shared budget; false when it is spent.
pub(crate) fn take_budget(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
        .is_ok()
}

async fn ping_pong(
    mut s: TcpStream,
    size: usize,
    deadline: Instant,
    budget: Arc<AtomicU64>,
) -> (Histogram<u64>, u64) {
    let msg = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut hist = new_histogram();
    let mut errors = 0;
    while Instant::now() < deadline && take_budget(&budget) {
        let t0 = Instant::now();
        let rt = async {
            s.write_all(&msg).await?;
            s.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout_at(deadline, rt).await {
            Ok(Ok(())) => record(&mut hist, t0.elapsed().as_nanos() as u64),
            Ok(Err(_)) => {
                errors += 1;
                break;
            }
            // The deadline cut a request short (e.g. a server that serves one client at a
            // time never got to us): not an error, just not a completed request.
            Err(_) => break,
        }
    }
    (hist, errors)
}
