//! The `python-threads` baseline: the threaded echo server a networking course would
//! write (`socket` + `threading.Thread` per client, `recv(1024)`), shipped as
//! `scripts/python_threads_echo.py` and embedded in the binary so it runs anywhere
//! python3 is installed.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::error::{LabError, Result};
use crate::shutdown::Shutdown;

/// The script's source.
pub const SCRIPT: &str = include_str!("../../scripts/python_threads_echo.py");

/// The interpreter used (override with `SOCKIT_PYTHON`).
pub fn python_program() -> String {
    std::env::var("SOCKIT_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// Writes the embedded script to a private temp file and returns its path.
fn script_path() -> Result<PathBuf> {
    let path = std::env::temp_dir().join(format!(
        "sockit-lab-python-threads-{}.py",
        std::process::id()
    ));
    std::fs::write(&path, SCRIPT).map_err(|source| LabError::File {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// Builds the command that runs the script on `addr` with `backlog`.
///
/// # Errors
/// When the script cannot be written to the temp directory.
pub fn command(addr: SocketAddr, backlog: i32) -> Result<Command> {
    let mut cmd = Command::new(python_program());
    cmd.arg(script_path()?)
        .arg("--host")
        .arg(addr.ip().to_string())
        .arg("--port")
        .arg(addr.port().to_string())
        .arg("--backlog")
        .arg(backlog.to_string());
    Ok(cmd)
}

/// Starts the script and waits (at most 10 s) for its `listening on IP:PORT` line.
///
/// # Errors
/// [`LabError::Python`] when python3 cannot run, [`LabError::ServerStartTimeout`] when
/// it never reports its address.
pub fn spawn(mut cmd: Command) -> Result<(Child, SocketAddr)> {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stdin(Stdio::null())
        .spawn()
        .map_err(|source| LabError::Python {
            program: python_program(),
            source,
        })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(Duration::from_secs(10)).unwrap_or_default();
    match line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|a| a.parse().ok())
    {
        Some(addr) => Ok((child, addr)),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(LabError::ServerStartTimeout {
                model: "python-threads".into(),
                secs: 10,
            })
        }
    }
}

/// Runs the baseline on `addr` until `shutdown` triggers, reporting the bound address
/// through `on_ready`.
///
/// # Errors
/// As [`spawn`]; also when the interpreter exits on its own.
pub fn serve(
    addr: SocketAddr,
    backlog: i32,
    shutdown: &Shutdown,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<()> {
    let (mut child, bound) = spawn(command(addr, backlog)?)?;
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
                "python-threads server",
                std::io::Error::other(format!("exited on its own: {status}")),
            ));
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    result
}
