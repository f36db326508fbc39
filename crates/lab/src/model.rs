//! The list of concurrency models and their names.

use std::fmt;
use std::str::FromStr;

use crate::error::LabError;

/// One way of structuring an echo server. Each is implemented directly on the primitive it
/// names, so reading its module teaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    /// Blocking sockets, one client at a time: the others wait in the accept queue.
    Iterative,
    /// fork(2) a process per connection.
    Fork,
    /// A thread per connection.
    Thread,
    /// A fixed pool of threads taking connections from a queue.
    Pool,
    /// Non-blocking sockets polled in a busy loop (no readiness API at all).
    Nonblocking,
    /// select(2) readiness loop.
    Select,
    /// poll(2) readiness loop.
    Poll,
    /// epoll(7), level-triggered.
    EpollLt,
    /// epoll(7), edge-triggered: every event is drained until EAGAIN.
    EpollEt,
    /// The mio crate (epoll underneath, portable API).
    Mio,
    /// tokio's multi-thread work-stealing runtime.
    Tokio,
    /// tokio's current-thread runtime: the coroutine model (one thread, many tasks).
    TokioLocal,
    /// io_uring completion queue (the io-uring crate).
    IoUring,
    /// The baseline: a threaded Python server as networking courses write it.
    PythonThreads,
}

/// Every model, in the order they are taught.
pub const ALL_MODELS: [Model; 14] = [
    Model::Iterative,
    Model::Fork,
    Model::Thread,
    Model::Pool,
    Model::Nonblocking,
    Model::Select,
    Model::Poll,
    Model::EpollLt,
    Model::EpollEt,
    Model::Mio,
    Model::Tokio,
    Model::TokioLocal,
    Model::IoUring,
    Model::PythonThreads,
];

/// All models in teaching order (what `sockit lab models` prints).
pub fn models() -> &'static [Model] {
    &ALL_MODELS
}

impl Model {
    /// The name used on the command line and in results files.
    pub fn name(self) -> &'static str {
        match self {
            Model::Iterative => "iterative",
            Model::Fork => "fork",
            Model::Thread => "thread",
            Model::Pool => "pool",
            Model::Nonblocking => "nonblocking",
            Model::Select => "select",
            Model::Poll => "poll",
            Model::EpollLt => "epoll-lt",
            Model::EpollEt => "epoll-et",
            Model::Mio => "mio",
            Model::Tokio => "tokio",
            Model::TokioLocal => "tokio-local",
            Model::IoUring => "io-uring",
            Model::PythonThreads => "python-threads",
        }
    }

    /// One line saying what the model is and what it costs.
    pub fn description(self) -> &'static str {
        match self {
            Model::Iterative => {
                "blocking accept/read/write, one client at a time; the rest wait in the backlog"
            }
            Model::Fork => {
                "fork(2) per connection; the child echoes with raw read/write and _exits"
            }
            Model::Thread => {
                "std::thread per connection with blocking I/O (~stack + kernel task per client)"
            }
            Model::Pool => {
                "fixed pool of --workers threads; at most that many clients served at once"
            }
            Model::Nonblocking => {
                "O_NONBLOCK sockets polled in a busy loop: no readiness API, burns a core"
            }
            Model::Select => {
                "select(2) over fd_sets; O(max fd) per call, refuses fds >= FD_SETSIZE"
            }
            Model::Poll => "poll(2) over a pollfd array; O(n) per call, no fd limit",
            Model::EpollLt => "epoll level-triggered: ready fds reported until handled",
            Model::EpollEt => {
                "epoll edge-triggered: reported once per change, drained until EAGAIN"
            }
            Model::Mio => "mio (portable epoll wrapper, edge-triggered) event loop",
            Model::Tokio => "tokio multi-thread runtime (work stealing), a task per connection",
            Model::TokioLocal => "tokio current-thread runtime: coroutines on one thread",
            Model::IoUring => "io_uring completions: submit accept/recv/send, reap results",
            Model::PythonThreads => {
                "baseline: Python threading echo server as course scripts write it"
            }
        }
    }

    /// Whether `--workers` changes anything for this model (and what it means).
    pub fn workers_meaning(self) -> Option<&'static str> {
        match self {
            Model::Pool => Some("threads in the pool"),
            Model::Tokio => Some("runtime worker threads"),
            Model::Nonblocking
            | Model::Select
            | Model::Poll
            | Model::EpollLt
            | Model::EpollEt
            | Model::Mio
            | Model::IoUring => Some("event loops sharing the listener"),
            _ => None,
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Model {
    type Err = LabError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ALL_MODELS
            .iter()
            .copied()
            .find(|m| m.name() == s)
            .ok_or_else(|| LabError::UnknownModel {
                name: s.to_string(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in models() {
            assert_eq!(m.name().parse::<Model>().unwrap(), *m);
        }
    }

    #[test]
    fn unknown_name() {
        assert!(matches!(
            "greenlet".parse::<Model>(),
            Err(LabError::UnknownModel { .. })
        ));
    }
}
