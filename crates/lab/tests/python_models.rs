//! What the Python course models promise beyond echoing (which `echo_models.rs` checks):
//! a missing gevent fails with install instructions, `python-select` refuses descriptors
//! select() cannot watch instead of dying, stopping `python-fork` ends the processes it
//! forked, and the bench measures the scripts as server processes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::sync::Mutex;
use std::time::Duration;

use sockit_lab::bench::{command_launcher, run_bench, BenchConfig};
use sockit_lab::models::python::{self, python_program};
use sockit_lab::{spawn_model, LabError, Model, ServeConfig};

/// The tests open many connections and start interpreters: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn start(model: Model) -> sockit_lab::RunningServer {
    match spawn_model(ServeConfig::new(model)) {
        Ok(s) => s,
        Err(e @ LabError::Python { .. }) => {
            panic!("{e}; the Debian package is python3 (scripts/test.sh installs it)")
        }
        Err(e) => panic!("{model}: cannot start: {e}"),
    }
}

fn echo_once(s: &mut TcpStream, msg: &[u8]) {
    s.write_all(msg).unwrap();
    let mut back = vec![0u8; msg.len()];
    s.read_exact(&mut back).unwrap();
    assert_eq!(back, msg);
}

#[test]
fn missing_gevent_fails_naming_how_to_install_it() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The same interpreter without site-packages (-S): gevent cannot be imported there,
    // whatever this machine has installed.
    let dir = tempfile::tempdir().unwrap();
    let wrapper = dir.path().join("python-without-site-packages");
    std::fs::write(
        &wrapper,
        format!("#!/bin/sh\nexec '{}' -S \"$@\"\n", python_program()),
    )
    .unwrap();
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cmd = python::command_for(
        wrapper.to_str().unwrap(),
        Model::PythonGevent,
        "127.0.0.1:0".parse().unwrap(),
        128,
    )
    .unwrap();
    let e = python::spawn(Model::PythonGevent, cmd)
        .map(|_| ())
        .expect_err("gevent must not import without site-packages")
        .to_string();
    assert!(e.contains("python-gevent model"), "{e}");
    assert!(e.contains("cannot import gevent"), "{e}");
    assert!(e.contains("pip install gevent"), "{e}");
    assert!(e.contains("SOCKIT_LAB_PYTHON"), "{e}");
}

#[test]
fn python_select_refuses_descriptors_select_cannot_watch() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let nofile = sockit_lab::affinity::raise_nofile().unwrap();
    assert!(
        nofile >= 1300,
        "RLIMIT_NOFILE hard limit {nofile} is below the 1300 this test needs (ulimit -Hn)"
    );
    // Started after raising the limit: the interpreter inherits it.
    let server = start(Model::PythonSelect);
    let mut first = TcpStream::connect(server.addr()).unwrap();
    echo_once(&mut first, b"before");
    // Enough clients that the server's descriptors pass FD_SETSIZE (1024).
    let mut clients = Vec::new();
    for _ in 0..1100 {
        clients.push(TcpStream::connect(server.addr()).unwrap());
    }
    let mut last = clients.pop().unwrap();
    last.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let _ = last.write_all(b"x");
    let mut buf = [0u8; 1];
    match last.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("client past FD_SETSIZE: expected the server to close it, got {other:?}"),
    }
    // The server survived it and still serves the clients it could take.
    echo_once(&mut first, b"after");
    echo_once(&mut clients[500], b"middle");
    drop(clients);
    server.stop().unwrap();
}

#[test]
fn stopping_python_fork_ends_the_processes_it_forked() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let server = start(Model::PythonFork);
    let mut client = TcpStream::connect(server.addr()).unwrap();
    // Served by a forked child from here on.
    echo_once(&mut client, b"hello child");
    server.stop().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut buf = [0u8; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the forked child still serves after stop: {other:?}"),
    }
}

#[test]
fn the_bench_measures_python_models_as_server_processes() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let out = tempfile::tempdir().unwrap();
    let models = vec![
        Model::PythonEpoll,
        Model::PythonGevent,
        Model::PythonAsyncio,
    ];
    let cfg = BenchConfig {
        models: models.clone(),
        conns: vec![4],
        duration: Duration::from_millis(300),
        out_dir: out.path().to_path_buf(),
        ..BenchConfig::default()
    };
    // Python models run their script directly; the launcher is for the Rust ones.
    let launcher = command_launcher("/nonexistent".into(), Vec::new());
    let (_, results) = run_bench(&cfg, &*launcher).unwrap();
    assert_eq!(results.cells.len(), models.len());
    for (c, m) in results.cells.iter().zip(&models) {
        assert_eq!(c.model, m.name());
        if let Some(reason) = &c.skipped {
            panic!("{m} was skipped: {reason}");
        }
        assert_eq!((c.connected, c.errors), (4, 0), "{c:?}");
        assert!(c.requests > 0, "{c:?}");
        assert!(c.mem_idle_kib > 0 && c.peak_rss_kib > 0, "{c:?}");
        assert!(
            c.server_cpu_s > 0.0,
            "the interpreter's CPU time was read: {c:?}"
        );
    }
}
