//! Connect rate: `conns` concurrent workers each loop over connect → one echo of `size`
//! bytes → close, counting completed connections per second. This measures the accept
//! path (SYN, SYN-ACK, ACK, accept, and for fork/thread the per-connection setup).
//! Clients close first, so TIME_WAIT piles up on the client side; spreading source
//! addresses keeps the ephemeral ports from running out.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::error::Result;
use crate::loadgen::closed::take_budget;
use crate::loadgen::percentiles::{new_histogram, record};
use crate::loadgen::source::connect_from;
use crate::loadgen::{LoadConfig, LoadStats};

/// Runs a connect-rate test; latency is the whole connect+echo+close cycle.
///
/// # Errors
/// Invalid configuration or a runtime that cannot start.
pub fn run(cfg: &LoadConfig) -> Result<LoadStats> {
    cfg.validate()?;
    let rt = cfg.runtime()?;
    rt.block_on(async {
        let start = Instant::now();
        let deadline = start + cfg.duration;
        let budget = Arc::new(AtomicU64::new(cfg.max_requests.unwrap_or(u64::MAX)));
        let mut set = tokio::task::JoinSet::new();
        for w in 0..cfg.conns {
            let (addr, size, n) = (cfg.addr, cfg.size, cfg.source_ips);
            let budget = Arc::clone(&budget);
            set.spawn(async move {
                let mut hist = new_histogram();
                let mut errors = 0u64;
                let msg = vec![0x5au8; size];
                let mut back = vec![0u8; size];
                let mut i = w;
                while Instant::now() < deadline && take_budget(&budget) {
                    let t0 = Instant::now();
                    let one = async {
                        let mut s = connect_from(addr, i, n).await?;
                        s.write_all(&msg).await?;
                        s.read_exact(&mut back).await?;
                        Ok::<_, std::io::Error>(())
                    };
                    match tokio::time::timeout_at(deadline, one).await {
                        Ok(Ok(())) => record(&mut hist, t0.elapsed().as_nanos() as u64),
                        Ok(Err(_)) => errors += 1,
                        Err(_) => break,
                    }
                    i += 7; // next source address
                }
                (hist, errors)
            });
        }
        Ok(LoadStats::collect(set, 0, cfg.conns, start).await)
    })
}
