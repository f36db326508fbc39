//! Open loop: a fixed total rate spread over N connections; each connection sends on a
//! fixed schedule and records latency from the intended send time (see
//! [`crate::loadgen::recorder`]). A connection still waiting for a late answer sends its
//! overdue requests back to back once it arrives, as wrk2 does.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::error::{LabError, Result};
use crate::loadgen::closed::{connect_all, take_budget};
use crate::loadgen::percentiles::{new_histogram, Percentiles};
use crate::loadgen::recorder::OpenLoopRecorder;
use crate::loadgen::{LoadConfig, LoadStats};

/// Runs an open-loop test at `rate` requests per second in total.
///
/// # Errors
/// Invalid configuration (rate ≤ 0) or a runtime that cannot start.
pub fn run(cfg: &LoadConfig, rate: f64, on_connected: impl FnOnce(usize)) -> Result<LoadStats> {
    cfg.validate()?;
    if !(rate > 0.0 && rate.is_finite()) {
        return Err(LabError::Invalid(format!("rate must be > 0, got {rate}")));
    }
    let rt = cfg.runtime()?;
    rt.block_on(async {
        let (streams, connect_errors) = connect_all(cfg).await;
        on_connected(streams.len());
        let connected = streams.len();
        let per_conn = rate / connected.max(1) as f64;
        let interval = Duration::from_secs_f64(1.0 / per_conn);
        let start = Instant::now();
        let deadline = start + cfg.duration;
        let budget = Arc::new(std::sync::atomic::AtomicU64::new(
            cfg.max_requests.unwrap_or(u64::MAX),
        ));
        let mut set = tokio::task::JoinSet::new();
        for (i, s) in streams.into_iter().enumerate() {
            // Stagger connections across one interval so they do not fire in bursts.
            let phase = interval.mul_f64(i as f64 / connected.max(1) as f64);
            let budget = Arc::clone(&budget);
            set.spawn(scheduled(
                s,
                cfg.size,
                start + phase,
                interval,
                deadline,
                budget,
            ));
        }
        let mut corrected = new_histogram();
        let mut uncorrected = new_histogram();
        let mut errors = connect_errors;
        while let Some(r) = set.join_next().await {
            match r {
                Ok((rec, e)) => {
                    corrected.add(&rec.corrected).expect("same bounds");
                    uncorrected.add(&rec.uncorrected).expect("same bounds");
                    errors += e;
                }
                Err(_) => errors += 1,
            }
        }
        let elapsed = start.elapsed().as_secs_f64().max(1e-9);
        Ok(LoadStats {
            requests: corrected.len(),
            errors,
            connected,
            elapsed_s: elapsed,
            rps: corrected.len() as f64 / elapsed,
            latency: Percentiles::from_histogram(&corrected),
            uncorrected: Some(Percentiles::from_histogram(&uncorrected)),
        })
    })
}

async fn scheduled(
    mut s: TcpStream,
    size: usize,
    start: Instant,
    interval: Duration,
    deadline: Instant,
    budget: Arc<std::sync::atomic::AtomicU64>,
) -> (OpenLoopRecorder, u64) {
    let msg = vec![0x5au8; size];
    let mut back = vec![0u8; size];
    let mut rec = OpenLoopRecorder::new(interval);
    let mut errors = 0;
    loop {
        let due = start + rec.next_due();
        if due >= deadline || !take_budget(&budget) {
            break;
        }
        // Waiting for the schedule, not for a server: this is what makes the loop open.
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        let rt = async {
            s.write_all(&msg).await?;
            s.read_exact(&mut back).await?;
            Ok::<_, std::io::Error>(())
        };
        match tokio::time::timeout_at(deadline + interval, rt).await {
            Ok(Ok(())) => rec.record(sent - start, Instant::now() - start),
            Ok(Err(_)) => {
                errors += 1;
                break;
            }
            Err(_) => break,
        }
    }
    (rec, errors)
}
