//! The list of concurrency models, their names and the groups reports sort them into.

use std::fmt;
use std::str::FromStr;

use crate::error::LabError;

/// One way of structuring an echo server. Each is implemented directly on the primitive it
/// names, so reading its module (or script) teaches the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Model {
    /// The course's single-process server: one client at a time.
    PythonIterative,
    /// The course's multiprocessing server: a `Process` per client.
    PythonFork,
    /// The baseline: a threaded Python server as networking courses write it.
    PythonThreads,
    /// The course's non-blocking sockets polled in a busy loop.
    PythonNonblocking,
    /// The course's `select.select` server with an output list and message queues.
    PythonSelect,
    /// The course's `select.epoll` server, edge-triggered.
    PythonEpoll,
    /// The course's gevent server: `monkey.patch_all()` and a greenlet per client.
    PythonGevent,
    /// The modern answer: `asyncio.start_server` streams.
    PythonAsyncio,
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
    /// io_uring completion queue (the io-uring crate).
    IoUring,
    /// tokio's multi-thread work-stealing runtime.
    Tokio,
    /// tokio's current-thread runtime: the coroutine model (one thread, many tasks).
    TokioLocal,
    /// The reference: edge-triggered epoll in C, no allocation per request.
    CEpoll,
}

/// The families reports and plots group models into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ModelGroup {
    /// The course's Python servers.
    PythonCourse,
    /// Rust on std's blocking sockets: a process, a thread or a pool per client.
    RustStd,
    /// Rust event loops written directly on a kernel API (select, poll, epoll, io_uring).
    Readiness,
    /// Rust async runtimes (tokio).
    AsyncRuntime,
    /// The C reference, the practical ceiling for one thread.
    CReference,
    /// Servers outside the lab (`--target`, `--target-cmd`); no [`Model`] belongs here.
    Target,
}

impl ModelGroup {
    /// Every group, in report order.
    pub const ALL: [ModelGroup; 6] = [
        ModelGroup::PythonCourse,
        ModelGroup::RustStd,
        ModelGroup::Readiness,
        ModelGroup::AsyncRuntime,
        ModelGroup::CReference,
        ModelGroup::Target,
    ];

    /// The heading reports use.
    pub fn label(self) -> &'static str {
        match self {
            ModelGroup::PythonCourse => "Python course code",
            ModelGroup::RustStd => "Rust std",
            ModelGroup::Readiness => "readiness & completion APIs",
            ModelGroup::AsyncRuntime => "async runtimes",
            ModelGroup::CReference => "C reference",
            ModelGroup::Target => "your servers (--target)",
        }
    }

    /// A short tag for plot legends.
    pub fn tag(self) -> &'static str {
        match self {
            ModelGroup::PythonCourse => "py",
            ModelGroup::RustStd => "std",
            ModelGroup::Readiness => "api",
            ModelGroup::AsyncRuntime => "async",
            ModelGroup::CReference => "C",
            ModelGroup::Target => "yours",
        }
    }

    /// The group of a results row: a model's group, [`ModelGroup::Target`] for any
    /// other name.
    pub fn of_row(name: &str) -> ModelGroup {
        name.parse::<Model>()
            .map_or(ModelGroup::Target, |m| m.group())
    }
}

/// Every model, grouped as reports show them, in the order each group is taught.
pub const ALL_MODELS: [Model; 22] = [
    Model::PythonIterative,
    Model::PythonFork,
    Model::PythonThreads,
    Model::PythonNonblocking,
    Model::PythonSelect,
    Model::PythonEpoll,
    Model::PythonGevent,
    Model::PythonAsyncio,
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
    Model::IoUring,
    Model::Tokio,
    Model::TokioLocal,
    Model::CEpoll,
];

/// All models in teaching order (what `sockit lab models` prints).
pub fn models() -> &'static [Model] {
    &ALL_MODELS
}

impl Model {
    /// The name used on the command line and in results files.
    pub fn name(self) -> &'static str {
        match self {
            Model::PythonIterative => "python-iterative",
            Model::PythonFork => "python-fork",
            Model::PythonThreads => "python-threads",
            Model::PythonNonblocking => "python-nonblocking",
            Model::PythonSelect => "python-select",
            Model::PythonEpoll => "python-epoll",
            Model::PythonGevent => "python-gevent",
            Model::PythonAsyncio => "python-asyncio",
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
            Model::IoUring => "io-uring",
            Model::Tokio => "tokio",
            Model::TokioLocal => "tokio-local",
            Model::CEpoll => "c-epoll",
        }
    }

    /// One line saying what the model is and what it costs.
    pub fn description(self) -> &'static str {
        match self {
            Model::PythonIterative => {
                "course: accept, recv(1024)/sendall until EOF, next client; one at a time"
            }
            Model::PythonFork => "course: multiprocessing.Process per client (fork)",
            Model::PythonThreads => {
                "baseline: Python threading echo server as course scripts write it"
            }
            Model::PythonNonblocking => {
                "course: setblocking(False) sockets retried in a busy loop; burns a core"
            }
            Model::PythonSelect => {
                "course: select.select over input/output lists; refuses fds >= 1024"
            }
            Model::PythonEpoll => "course: select.epoll edge-triggered, drained until EAGAIN",
            Model::PythonGevent => {
                "course: gevent monkey.patch_all, a greenlet per client (needs gevent)"
            }
            Model::PythonAsyncio => {
                "modern Python: asyncio.start_server streams, a task per client"
            }
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
            Model::IoUring => {
                "io_uring: multishot accept/recv into provided buffers, batched submission"
            }
            Model::Tokio => "tokio multi-thread runtime (work stealing), a task per connection",
            Model::TokioLocal => "tokio current-thread runtime: coroutines on one thread",
            Model::CEpoll => {
                "reference: edge-triggered epoll in C, no allocation per request (the ceiling)"
            }
        }
    }

    /// The family reports put the model in.
    pub fn group(self) -> ModelGroup {
        match self {
            Model::PythonIterative
            | Model::PythonFork
            | Model::PythonThreads
            | Model::PythonNonblocking
            | Model::PythonSelect
            | Model::PythonEpoll
            | Model::PythonGevent
            | Model::PythonAsyncio => ModelGroup::PythonCourse,
            Model::Iterative | Model::Fork | Model::Thread | Model::Pool | Model::Nonblocking => {
                ModelGroup::RustStd
            }
            Model::Select
            | Model::Poll
            | Model::EpollLt
            | Model::EpollEt
            | Model::Mio
            | Model::IoUring => ModelGroup::Readiness,
            Model::Tokio | Model::TokioLocal => ModelGroup::AsyncRuntime,
            Model::CEpoll => ModelGroup::CReference,
        }
    }

    /// Whether the model is a Python script (it binds its own socket and runs under the
    /// interpreter [`crate::models::python::python_program`] names).
    pub fn is_python(self) -> bool {
        self.group() == ModelGroup::PythonCourse
    }

    /// Whether the model is written in Rust (what the "best Rust model" target compares).
    pub fn is_rust(self) -> bool {
        matches!(
            self.group(),
            ModelGroup::RustStd | ModelGroup::Readiness | ModelGroup::AsyncRuntime
        )
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
            | Model::IoUring
            | Model::CEpoll => Some("event loops sharing the listener"),
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

    #[test]
    fn models_are_listed_group_by_group() {
        let groups: Vec<ModelGroup> = models().iter().map(|m| m.group()).collect();
        let mut sorted = groups.clone();
        sorted.sort();
        assert_eq!(groups, sorted);
        assert!(groups.iter().all(|&g| g != ModelGroup::Target));
    }

    #[test]
    fn unknown_rows_are_targets() {
        assert_eq!(ModelGroup::of_row("my-course-server"), ModelGroup::Target);
        assert_eq!(ModelGroup::of_row("c-epoll"), ModelGroup::CReference);
        assert_eq!(
            ModelGroup::of_row("python-gevent"),
            ModelGroup::PythonCourse
        );
    }
}
