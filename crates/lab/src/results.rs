//! The results file format (`bench-results/lab-<timestamp>.json`).

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{LabError, Result};
use crate::loadgen::Percentiles;

/// One benchmark run: the machine, the configuration and one cell per
/// (model, mode, connections).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchResults {
    /// Format version.
    pub version: u32,
    /// When the run started (UTC, `YYYY-MM-DDTHH:MM:SSZ`).
    pub started: String,
    /// Where it ran.
    pub machine: Machine,
    /// Message size in bytes.
    pub size: usize,
    /// Seconds measured per cell.
    pub duration_s: f64,
    /// Open-loop rate, if any.
    pub rate: Option<f64>,
    /// The cells.
    pub cells: Vec<Cell>,
}

/// The machine the numbers come from.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Machine {
    /// Cores this process could use.
    pub cores: usize,
    /// `uname -r`.
    pub kernel: String,
    /// Cores the servers were pinned to.
    pub server_cores: Vec<usize>,
    /// Cores the load generator was pinned to.
    pub client_cores: Vec<usize>,
    /// RLIMIT_NOFILE in force.
    pub nofile: u64,
}

/// One measured cell of the matrix.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
pub struct Cell {
    /// Model name.
    pub model: String,
    /// `closed`, `open` or `connect`.
    pub mode: String,
    /// Connections (or concurrent connectors).
    pub conns: usize,
    /// Connections actually established.
    pub connected: usize,
    /// Completed requests.
    pub requests: u64,
    /// Failed requests/connections.
    pub errors: u64,
    /// Requests per second.
    pub rps: f64,
    /// Latency percentiles (open loop: corrected).
    pub latency: Percentiles,
    /// Open loop: latency as a naive tool would report it.
    pub uncorrected: Option<Percentiles>,
    /// Server CPU seconds during the measurement.
    pub server_cpu_s: f64,
    /// Server CPU microseconds per request.
    pub cpu_us_per_req: f64,
    /// Of those, microseconds spent in the kernel (system time): the socket calls' own
    /// cost, which every model pays.
    #[serde(default)]
    pub sys_us_per_req: f64,
    /// Server memory (PSS, KiB) before the clients connected.
    pub mem_idle_kib: u64,
    /// Server memory (PSS, KiB) with all connections open.
    pub mem_loaded_kib: u64,
    /// (loaded − idle) / connections, in KiB.
    pub kib_per_conn: f64,
    /// Peak RSS of the server (KiB).
    pub peak_rss_kib: u64,
    /// Why the cell was not measured, if it was not.
    pub skipped: Option<String>,
}

impl BenchResults {
    /// Reads a results file.
    ///
    /// # Errors
    /// [`LabError::File`] or [`LabError::Json`].
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| LabError::File {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| LabError::Json {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Writes the results as pretty JSON.
    ///
    /// # Errors
    /// [`LabError::File`].
    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| LabError::File {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let text = serde_json::to_string_pretty(self).expect("results serialise");
        std::fs::write(path, text).map_err(|source| LabError::File {
            path: path.to_path_buf(),
            source,
        })
    }

    /// The measured cell for (model, mode, conns), if any.
    pub fn cell(&self, model: &str, mode: &str, conns: usize) -> Option<&Cell> {
        self.cells
            .iter()
            .find(|c| c.model == model && c.mode == mode && c.conns == conns && c.skipped.is_none())
    }
}

/// UTC timestamp `YYYY-MM-DDTHH:MM:SSZ` for a unix time (civil-from-days, H. Hinnant).
pub fn utc_timestamp(unix: u64) -> String {
    let days = (unix / 86_400) as i64;
    let secs = unix % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(utc_timestamp(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc_timestamp(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc_timestamp(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
