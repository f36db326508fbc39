//! `sockit lab ...` end to end through the real binary.

use crate::common::sockit;
use sockit_testkit::{addr_file, process::wait_child};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Stdio;
use std::time::Duration;

#[test]
fn lab_models_lists_every_model() {
    let out = sockit().args(["lab", "models"]).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for m in sockit_lab::models() {
        assert!(
            text.contains(m.name()),
            "{} missing from:\n{text}",
            m.name()
        );
    }
    let json = sockit().args(["lab", "models", "--json"]).output().unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v.as_array().unwrap().len(), sockit_lab::models().len());
}

#[test]
fn lab_serve_echoes_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let addr_file = dir.path().join("lab.json");
    let mut child = sockit()
        .args(["lab", "serve", "--model", "epoll-et", "--addr-file"])
        .arg(&addr_file)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addrs = addr_file::wait(&addr_file, &mut child);
    let addr = addrs["lab"]["tcp"].as_str().unwrap().to_string();
    let mut s = TcpStream::connect(&addr).unwrap();
    s.write_all(b"hello lab").unwrap();
    let mut buf = [0u8; 9];
    s.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello lab");
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status =
        wait_child(&mut child, Duration::from_secs(10)).expect("lab serve exits on SIGTERM");
    assert!(status.success(), "{status}");
}

#[test]
fn lab_serve_unknown_model_is_a_usage_error() {
    let out = sockit()
        .args(["lab", "serve", "--model", "greenlet"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sockit lab models"));
}

#[test]
fn lab_bench_writes_results_and_report() {
    let dir = tempfile::tempdir().unwrap();
    let out = sockit()
        .args([
            "lab",
            "bench",
            "--models",
            "tokio,epoll-lt",
            "--conns",
            "1,4",
            "--duration",
            "200ms",
            "--report",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let files: Vec<&str> = stdout.lines().collect();
    assert!(
        files[0].ends_with(".json") && files[0].contains("lab-"),
        "{stdout}"
    );
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(files[0]).unwrap()).unwrap();
    let cells = results["cells"].as_array().unwrap();
    assert_eq!(cells.len(), 4);
    for c in cells {
        assert!(c["skipped"].is_null(), "{c}");
        assert!(c["requests"].as_u64().unwrap() > 0, "{c}");
    }
    assert!(files.iter().any(|f| f.ends_with(".md")));
    assert_eq!(files.iter().filter(|f| f.ends_with(".png")).count(), 3);
}

#[test]
fn lab_backlog_experiment_reports_overflow() {
    let out = sockit()
        .args(["lab", "backlog", "--backlog", "1", "--clients", "6"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("Recv-Q=2 Send-Q=1"), "{text}");
    assert!(text.contains("EXPLAINS:"), "{text}");
}

#[test]
fn lab_bench_chat_small_runs_sockit_as_its_own_process() {
    let dir = tempfile::tempdir().unwrap();
    let out = sockit()
        .args([
            "--json",
            "lab",
            "bench",
            "chat",
            "--clients",
            "20",
            "--channels",
            "2",
            "--rate",
            "20",
            "--duration",
            "1s",
            "--no-ngircd",
            "--no-inspircd",
            "--out",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1, "{report}");
    let m = &runs[0];
    assert_eq!(m["server"], "sockit");
    let (delivered, expected) = (
        m["delivered"].as_u64().unwrap(),
        m["expected"].as_u64().unwrap(),
    );
    // 20 clients, one message each in the 1 s window, each to the 9 others of its channel.
    assert_eq!(m["sent"], 20, "{m}");
    assert_eq!(expected, 20 * 9, "{m}");
    assert_eq!(delivered, expected, "every message must be delivered: {m}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("its own process"), "{notes}");
    assert!(dir.path().join("chat.json").is_file());
}
