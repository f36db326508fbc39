//! Running a model: `run_model` (blocking, for `sockit lab serve`) and `spawn_model`
//! (in a background thread, for tests and the bench).

use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;

use crate::error::{LabError, Result};
use crate::listener::{bind_listener, DEFAULT_BACKLOG};
use crate::model::Model;
use crate::models;
use crate::shutdown::Shutdown;

/// How to run a model.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Which model.
    pub model: Model,
    /// Where to listen (port 0 picks a free port).
    pub addr: SocketAddr,
    /// Threads / event loops where the model has them (see [`Model::workers_meaning`]);
    /// `None` uses [`default_workers`].
    pub workers: Option<usize>,
    /// listen(2) backlog.
    pub backlog: i32,
}

impl ServeConfig {
    /// Defaults: 127.0.0.1 on a free port, default workers and backlog.
    pub fn new(model: Model) -> Self {
        ServeConfig {
            model,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            workers: None,
            backlog: DEFAULT_BACKLOG,
        }
    }
}

/// Default `--workers`: the pool needs enough threads to serve typical concurrency;
/// every other model gets one loop / thread per core.
pub fn default_workers(model: Model) -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    match model {
        Model::Pool => 16,
        Model::Tokio => cores,
        _ => 1,
    }
}

/// Runs `cfg.model` until `shutdown` triggers. `on_ready` is called once with the bound
/// address as soon as clients can connect (write it to an addr file, print it, ...).
///
/// # Errors
/// [`LabError::Bind`] if the address is taken; model-specific errors such as
/// [`LabError::FdTooLargeForSelect`] or [`LabError::IoUringUnavailable`].
pub fn run_model(
    cfg: &ServeConfig,
    shutdown: &Shutdown,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    if cfg.model.is_python() {
        return models::python::serve(cfg.model, cfg.addr, cfg.backlog, shutdown, on_ready);
    }
    if cfg.model == Model::IoUring {
        // Refuse before announcing an address nobody would serve.
        models::io_uring::available()?;
    }
    let listener = bind_listener(cfg.addr, cfg.backlog)?;
    let addr = listener
        .local_addr()
        .map_err(|e| LabError::io("listener address", e))?;
    on_ready(addr);
    run_on_listener(cfg.model, listener, cfg.workers, shutdown)
}

/// Runs a Rust or C model on an already-bound listener (the Python models bind their own).
///
/// # Errors
/// As [`run_model`]; [`LabError::Invalid`] for a Python model.
pub fn run_on_listener(
    model: Model,
    listener: TcpListener,
    workers: Option<usize>,
    shutdown: &Shutdown,
) -> Result<()> {
    let w = workers.unwrap_or_else(|| default_workers(model)).max(1);
    tracing::info!(model = %model, workers = w, "lab server starting");
    match model {
        Model::Iterative => models::iterative::serve(listener, shutdown),
        Model::Fork => models::fork::serve(listener, shutdown),
        Model::Thread => models::thread::serve(listener, shutdown),
        Model::Pool => models::pool::serve(listener, w, shutdown),
        Model::Nonblocking => models::nonblocking::serve(listener, w, shutdown),
        Model::Select => models::select::serve(listener, w, shutdown),
        Model::Poll => models::poll::serve(listener, w, shutdown),
        Model::EpollLt => models::epoll_lt::serve(listener, w, shutdown),
        Model::EpollEt => models::epoll_et::serve(listener, w, shutdown),
        Model::Mio => models::mio::serve(listener, w, shutdown),
        Model::Tokio => models::tokio_mt::serve(listener, w, shutdown),
        Model::TokioLocal => models::tokio_local::serve(listener, shutdown),
        Model::IoUring => models::io_uring::serve(listener, w, shutdown),
        Model::CEpoll => models::c_epoll::serve(listener, w, shutdown),
        Model::PythonIterative
        | Model::PythonFork
        | Model::PythonThreads
        | Model::PythonNonblocking
        | Model::PythonSelect
        | Model::PythonEpoll
        | Model::PythonGevent
        | Model::PythonAsyncio => Err(LabError::Invalid(format!(
            "{model} binds its own socket; use run_model"
        ))),
    }
}

/// A model running in a background thread.
#[derive(Debug)]
pub struct RunningServer {
    addr: SocketAddr,
    shutdown: Shutdown,
    thread: Option<JoinHandle<Result<()>>>,
}

impl RunningServer {
    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the server and waits until every thread/process of it has finished.
    ///
    /// # Errors
    /// Whatever the model returned.
    pub fn stop(mut self) -> Result<()> {
        self.shutdown.trigger();
        self.join()
    }

    fn join(&mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(LabError::Invalid("server thread panicked".into()))),
            None => Ok(()),
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown.trigger();
        let _ = self.join();
    }
}

/// Starts `cfg` in a background thread and returns once it accepts connections.
///
/// # Errors
/// When the model fails before becoming ready (bind error, io_uring refused, ...).
pub fn spawn_model(cfg: ServeConfig) -> Result<RunningServer> {
    let shutdown = Shutdown::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let s = shutdown.clone();
    let model = cfg.model;
    let thread = std::thread::Builder::new()
        .name(format!("lab-{model}"))
        .spawn(move || {
            run_model(&cfg, &s, move |addr| {
                let _ = tx.send(addr);
            })
        })
        .map_err(|e| LabError::io("spawn server thread", e))?;
    match rx.recv() {
        Ok(addr) => Ok(RunningServer {
            addr,
            shutdown,
            thread: Some(thread),
        }),
        // The sender was dropped without an address: the model failed early.
        Err(_) => match thread.join() {
            Ok(Err(e)) => Err(e),
            _ => Err(LabError::ServerStartTimeout {
                model: model.to_string(),
                secs: 0,
            }),
        },
    }
}
