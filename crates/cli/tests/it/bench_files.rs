//! `sockit lab bench files` end to end at a small size: the tree and delta scenarios run
//! against a real `rsync --daemon` and `tar | socat`, every copy is checked by the
//! benchmark itself (it fails on a difference), and the report says what a user reads:
//! files/s for each tool, and that a small edit of a large file sent a small delta.

use crate::common::sockit;

/// Fails with what to install when a peer the benchmark drives is missing.
fn need(cmd: &str, package: &str) {
    let found = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {cmd}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "{cmd} is missing: apt-get install {package}");
}

#[test]
fn bench_files_runs_tree_and_delta_scenarios_against_rsync() {
    for (cmd, pkg) in [("rsync", "rsync"), ("socat", "socat"), ("tar", "tar")] {
        need(cmd, pkg);
    }
    let scratch = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let size: u64 = 4 << 20;
    let changed: u64 = 32 << 10;
    let run = sockit()
        .args(["lab", "bench", "files", "--size", "4M", "--no-tls"])
        .args(["--tree-files", "120", "--delta-changed", "32K", "--dir"])
        .arg(scratch.path())
        .arg("--out")
        .arg(out.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "stdout:\n{stdout}\nstderr:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.path().join("files.json")).unwrap()).unwrap();

    let tree = &report["tree"];
    assert_eq!(tree["files"], 120);
    let names: Vec<&str> = tree["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            assert!(r["files_per_s"].as_f64().unwrap() > 0.0, "{r}");
            r["name"].as_str().unwrap()
        })
        .collect();
    assert_eq!(names.len(), 5, "{names:?}");
    assert!(
        names.iter().any(|n| n.starts_with("rsync -a push")),
        "{names:?}"
    );
    assert!(tree["put_vs_rsync"].as_f64().unwrap() > 0.0);

    let delta = &report["delta"];
    assert_eq!(delta["size"], size);
    assert_eq!(delta["changed"], changed);
    let runs = delta["runs"].as_array().unwrap();
    assert_eq!(runs[0]["name"], "sockit sync");
    assert!(runs[1]["name"].as_str().unwrap().starts_with("rsync"));
    for r in runs {
        let wire = r["wire_bytes"].as_u64().unwrap();
        // At least the change crossed the wire, and far less than the whole file did
        // (both tools send deltas; other loopback traffic during the run only adds).
        assert!(wire >= changed, "{r}");
        assert!(wire < size / 2, "{r}: the whole file was sent");
    }
    // The table a user reads, with both peers named.
    let md = std::fs::read_to_string(out.path().join("files.md")).unwrap();
    for row in ["| sockit put -r |", "| tar \\| socat", "| sockit sync |"] {
        assert!(md.contains(row), "{row} missing from:\n{md}");
    }
}
