//! The Python models: the servers of a networking course's concurrency chapter, written
//! the way the course writes them (single process, multiprocessing, threading,
//! non-blocking sockets, `select`, `epoll`, gevent) plus `asyncio` as the modern answer.
//! The scripts (`python/*.py`, and `scripts/python_threads_echo.py` for the baseline) are
//! embedded in the binary and written to the temp directory at run time, so an installed
//! sockit needs only an interpreter.
//!
//! Every script takes `--host`, `--port` and `--backlog` and prints one line,
//! `listening on IP:PORT`, once it accepts connections; a script whose third-party
//! module is missing prints `missing module: NAME` instead and exits.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::model::Model;
use crate::shutdown::Shutdown;

/// The environment variable naming the interpreter every Python model runs with
/// (default `python3`; `SOCKIT_PYTHON` is honoured when this one is unset).
pub const PYTHON_VAR: &str = "SOCKIT_LAB_PYTHON";

/// How to get gevent, which `python-gevent` needs and the standard library lacks.
pub const GEVENT_INSTALL: &str = "install it in a virtual environment and point the lab at \
     its interpreter: `python3 -m venv .venv-lab && .venv-lab/bin/pip install gevent`, then \
     SOCKIT_LAB_PYTHON=.venv-lab/bin/python (scripts/test.sh does this); or \
     `apt-get install python3-gevent` for Debian's python3";

/// How long a script may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// One embedded script.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    /// The model it implements.
    pub model: Model,
    /// Its file name in the source tree.
    pub file: &'static str,
    /// Its source.
    pub source: &'static str,
    /// A module outside the standard library it imports, if any.
    pub needs: Option<&'static str>,
}

/// Every Python model's script.
pub const SCRIPTS: [Script; 8] = [
    Script {
        model: Model::PythonIterative,
        file: "python_iterative_echo.py",
        source: include_str!("../../python/python_iterative_echo.py"),
        needs: None,
    },
    Script {
        model: Model::PythonFork,
        file: "python_fork_echo.py",
        source: include_str!("../../python/python_fork_echo.py"),
        needs: None,
    },
    Script {
        model: Model::PythonThreads,
        file: "python_threads_echo.py",
        source: include_str!("../../scripts/python_threads_echo.py"),
        needs: None,
    },
    Script {
        model: Model::PythonNonblocking,
        file: "python_nonblocking_echo.py",
        source: include_str!("../../python/python_nonblocking_echo.py"),
        needs: None,
    },
    Script {
        model: Model::PythonSelect,
        file: "python_select_echo.py",
        source: include_str!("../../python/python_select_echo.py"),
        needs: None,
    },
    Script {
        model: Model::PythonEpoll,
        file: "python_epoll_echo.py",
        source: include_str!("../../python/python_epoll_echo.py"),
        needs: None,
    },
    Script {
        model: Model::PythonGevent,
        file: "python_gevent_echo.py",
        source: include_str!("../../python/python_gevent_echo.py"),
        needs: Some("gevent"),
    },
    Script {
        model: Model::PythonAsyncio,
        file: "python_asyncio_echo.py",
        source: include_str!("../../python/python_asyncio_echo.py"),
        needs: None,
    },
];

/// The script of a Python model; `None` for the others.
pub fn script(model: Model) -> Option<&'static Script> {
    SCRIPTS.iter().find(|s| s.model == model)
}

/// The interpreter used: [`PYTHON_VAR`], else `SOCKIT_PYTHON`, else `python3`.
pub fn python_program() -> String {
    std::env::var(PYTHON_VAR)
        .or_else(|_| std::env::var("SOCKIT_PYTHON"))
        .unwrap_or_else(|_| "python3".to_string())
}

fn not_python(model: Model) -> LabError {
    LabError::Invalid(format!("{model} is not a Python model"))
}

/// Writes the embedded script to the temp directory (atomically: a test may start the
/// same model while another reads it) and returns its path.
fn script_path(s: &Script) -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!("sockit-lab-{}-{}", std::process::id(), s.file));
    sockit_runtime::fs::write_atomic(&path, s.source.as_bytes(), sockit_runtime::fs::Mode::Public)
        .map_err(|source| LabError::File {
            path: path.clone(),
            source,
        })?;
    Ok(path)
}

/// Builds the command that runs `model`'s script on `addr` with `backlog` under
/// [`python_program`], in a process group of its own (so stopping it also stops the
/// processes `python-fork` forks).
///
/// # Errors
/// [`LabError::Invalid`] for a model that is not Python; [`LabError::File`] when the
/// script cannot be written to the temp directory.
pub fn command(model: Model, addr: SocketAddr, backlog: i32) -> Result<Command> {
    command_for(&python_program(), model, addr, backlog)
}

/// As [`command`], with the interpreter `program`.
///
/// # Errors
/// As [`command`].
pub fn command_for(program: &str, model: Model, addr: SocketAddr, backlog: i32) -> Result<Command> {
    let s = script(model).ok_or_else(|| not_python(model))?;
    let mut cmd = Command::new(program);
    cmd.arg(script_path(s)?)
        .arg("--host")
        .arg(addr.ip().to_string())
        .arg("--port")
        .arg(addr.port().to_string())
        .arg("--backlog")
        .arg(backlog.to_string())
        .process_group(0);
    Ok(cmd)
}

/// What the first line on a script's stdout says.
#[derive(Debug, PartialEq, Eq)]
enum Announce {
    Listening(SocketAddr),
    MissingModule(String),
    Other,
}

fn parse_announce(line: &str) -> Announce {
    let line = line.trim();
    if let Some(a) = line
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
    {
        return Announce::Listening(a);
    }
    match line.strip_prefix("missing module: ") {
        Some(m) if !m.is_empty() => Announce::MissingModule(m.to_string()),
        _ => Announce::Other,
    }
}

/// The error for a script that cannot import `module`.
fn missing_module(model: Model, module: &str, program: &str) -> LabError {
    let hint = if module == "gevent" {
        GEVENT_INSTALL.to_string()
    } else {
        format!("install it with pip for {program}")
    };
    LabError::io(
        format!("{model} model: {program} cannot import {module}"),
        std::io::Error::new(std::io::ErrorKind::NotFound, hint),
    )
}

/// Kills the script's whole process group and reaps the script.
fn kill_group(child: &mut Child) {
    // SAFETY: signalling the process group the script leads (`process_group(0)`).
    unsafe { libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL) };
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts `model`'s script from `cmd` (as built by [`command`]) and waits for its
/// `listening on IP:PORT` line.
///
/// # Errors
/// [`LabError::Python`] when the interpreter cannot run; for a missing module, an error
/// saying how to install it (for gevent: [`GEVENT_INSTALL`]);
/// [`LabError::ServerStartTimeout`] when the script never reports its address.
pub fn spawn(model: Model, mut cmd: Command) -> Result<(Child, SocketAddr)> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| LabError::Python {
            program: program.clone(),
            source,
        })?;
    let Some(stdout) = child.stdout.take() else {
        kill_group(&mut child);
        return Err(LabError::Invalid("script stdout is not piped".into()));
    };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let Ok(line) = rx.recv_timeout(START_TIMEOUT) else {
        kill_group(&mut child);
        return Err(LabError::ServerStartTimeout {
            model: model.to_string(),
            secs: START_TIMEOUT.as_secs(),
        });
    };
    match parse_announce(&line) {
        Announce::Listening(addr) => Ok((child, addr)),
        Announce::MissingModule(m) => {
            kill_group(&mut child);
            Err(missing_module(model, &m, &program))
        }
        Announce::Other => {
            // End of stdout (the script died; its stderr says why) or a line we do not
            // know: either way it will not serve.
            let status = exit_status(&mut child);
            kill_group(&mut child);
            Err(LabError::io(
                format!("{model} server"),
                std::io::Error::other(format!(
                    "{} did not announce `listening on` (said {:?}, {}); its stderr says why",
                    program,
                    line.trim(),
                    status.map_or("still running".to_string(), |s| s.to_string())
                )),
            ))
        }
    }
}

/// The child's exit status if it exits within a second (bounded polling).
fn exit_status(child: &mut Child) -> Option<std::process::ExitStatus> {
    for _ in 0..50 {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Runs `model`'s script on `addr` until `shutdown` triggers, reporting the bound
/// address through `on_ready`; then kills it (and everything it forked).
///
/// # Errors
/// As [`spawn`]; also when the interpreter exits on its own.
pub fn serve(
    model: Model,
    addr: SocketAddr,
    backlog: i32,
    shutdown: &Shutdown,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let (mut child, bound) = spawn(model, command(model, addr, backlog)?)?;
    on_ready(bound);
    let (tx, rx) = mpsc::channel::<()>();
    shutdown.on_trigger(move || {
        let _ = tx.send(());
    });
    let result = loop {
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            break Err(LabError::io(
                format!("{model} server"),
                std::io::Error::other(format!("exited on its own: {status}")),
            ));
        }
    };
    kill_group(&mut child);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_python_model_has_a_script() {
        for m in crate::models() {
            assert_eq!(script(*m).is_some(), m.is_python(), "{m}");
        }
    }

    #[test]
    fn scripts_announce_the_same_way() {
        for s in &SCRIPTS {
            assert!(s.source.contains("\"listening on %s:%d\""), "{}", s.file);
            for flag in ["--host", "--port", "--backlog"] {
                assert!(s.source.contains(flag), "{} lacks {flag}", s.file);
            }
        }
    }

    #[test]
    fn announce_lines() {
        assert_eq!(
            parse_announce("listening on 127.0.0.1:4000\n"),
            Announce::Listening("127.0.0.1:4000".parse().unwrap())
        );
        assert_eq!(
            parse_announce("missing module: gevent\n"),
            Announce::MissingModule("gevent".into())
        );
        assert_eq!(parse_announce("missing module: "), Announce::Other);
        assert_eq!(parse_announce("listening on nowhere"), Announce::Other);
        assert_eq!(parse_announce(""), Announce::Other);
    }

    #[test]
    fn missing_gevent_says_how_to_install_it() {
        let e = missing_module(Model::PythonGevent, "gevent", "python3").to_string();
        assert!(e.contains("python-gevent model"), "{e}");
        assert!(e.contains("pip install gevent"), "{e}");
        assert!(e.contains("python3-gevent"), "{e}");
    }
}
