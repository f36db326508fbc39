//! The lab's typed error.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Everything that can go wrong in the lab, with the context needed to fix it.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// The model name is not one of [`crate::models()`].
    #[error("unknown model {name:?}; `sockit lab models` lists the known ones")]
    UnknownModel {
        /// The name that was asked for.
        name: String,
    },
    /// Binding the listener failed.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address we tried to bind.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// select(2) can only watch descriptors below FD_SETSIZE; writing a larger one into an
    /// `fd_set` would corrupt memory, so the select model refuses it.
    #[error(
        "select model: descriptor {fd} is >= FD_SETSIZE ({limit}); select(2) cannot watch it \
         (use the poll or epoll model for this many connections)"
    )]
    FdTooLargeForSelect {
        /// The offending descriptor.
        fd: i32,
        /// FD_SETSIZE on this platform.
        limit: usize,
    },
    /// The kernel (or a sandbox's seccomp policy) refuses io_uring.
    #[error(
        "io-uring model unavailable: io_uring_setup failed ({source}); the kernel or a sandbox \
         forbids io_uring (check /proc/sys/kernel/io_uring_disabled)"
    )]
    IoUringUnavailable {
        /// The error io_uring_setup returned.
        source: std::io::Error,
    },
    /// python3 could not be started for the python-threads baseline.
    #[error("python-threads model: cannot run {program}: {source} (install python3)")]
    Python {
        /// The interpreter we tried.
        program: String,
        /// The spawn error.
        source: std::io::Error,
    },
    /// A child server did not report its address in time.
    #[error("server for model {model} did not report its address within {secs}s")]
    ServerStartTimeout {
        /// The model being started.
        model: String,
        /// How long we waited.
        secs: u64,
    },
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A results file is not valid lab JSON.
    #[error("{path}: not a lab results file: {source}")]
    Json {
        /// The file.
        path: PathBuf,
        /// The parse error.
        source: serde_json::Error,
    },
    /// Drawing a plot failed.
    #[error("cannot draw {path}: {message}")]
    Plot {
        /// The PNG being drawn.
        path: PathBuf,
        /// What plotters said.
        message: String,
    },
    /// The load generator only targets loopback addresses.
    #[error("refusing to load {addr}: the lab only generates load against 127.0.0.0/8")]
    NotLoopback {
        /// The address that was asked for.
        addr: SocketAddr,
    },
    /// A bad argument (empty list, zero duration, ...).
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Any other I/O error, with what we were doing.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The OS error.
        source: std::io::Error,
    },
}

impl LabError {
    /// Wraps an I/O error with a short description of what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        LabError::Io {
            context: context.into(),
            source,
        }
    }
}

/// The lab's result type.
pub type Result<T, E = LabError> = std::result::Result<T, E>;
