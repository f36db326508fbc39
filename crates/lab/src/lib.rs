//! sockit's concurrency lab.
//!
//! One echo server per I/O model ([`models()`], [`run_model`]), a load generator
//! ([`loadgen`]) and a benchmark matrix ([`bench`](mod@bench)) that records throughput, latency,
//! CPU and memory per model, a report writer with plots ([`report`]), and TCP-internals
//! experiments ([`experiments`]). See `docs/lab.md` for what each model teaches.

#![deny(missing_docs)]

pub mod affinity;
pub mod bench;
mod echo;
mod error;
pub mod experiments;
pub mod listener;
pub mod loadgen;
mod model;
pub mod models;
pub mod ntp_bench;
mod procstat;
pub mod report;
pub mod results;
mod serve;
mod shutdown;
pub mod soak;

pub use error::{LabError, Result};
pub use listener::{read_addr_file, write_addr_file};
pub use model::{models, Model, ModelGroup};
pub use serve::{default_workers, run_model, spawn_model, RunningServer, ServeConfig};
pub use shutdown::Shutdown;
