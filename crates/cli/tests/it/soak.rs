//! The memory soak at small scale: bursts of short framed `ping` and echo connections
//! against a real `sockit serve`; the server's memory must come back after each burst
//! (RSS after the last burst within 1.5× of RSS after the first) and every connection
//! must get its answer.

use crate::common::sockit;

#[test]
fn rss_returns_after_bursts_of_connections() {
    let out = tempfile::tempdir().unwrap();
    let run = sockit()
        .args(["--json", "lab", "bench", "soak"])
        .args(["--bursts", "6", "--conns", "300", "--concurrency", "300"])
        .args(["--services", "framed-ping,echo", "--out"])
        .arg(out.path())
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "soak failed: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let services = report["services"].as_array().unwrap();
    assert_eq!(services.len(), 2, "{report}");
    for s in services {
        let name = s["service"].as_str().unwrap();
        let bursts = s["bursts"].as_array().unwrap();
        assert_eq!(bursts.len(), 6, "{name}: {s}");
        for (i, b) in bursts.iter().enumerate() {
            assert_eq!(b["ok"], 300, "{name} burst {}: {b}", i + 1);
            assert_eq!(b["failed"], 0, "{name} burst {}: {b}", i + 1);
            assert!(b["rss_kib"].as_u64().unwrap() > 0, "{name}: {b}");
        }
        let first = bursts[0]["rss_kib"].as_u64().unwrap() as f64;
        let last = bursts[5]["rss_kib"].as_u64().unwrap() as f64;
        assert!(
            last <= 1.5 * first,
            "{name}: server RSS grew from {first} KiB after the first burst to {last} KiB after the last"
        );
    }
    // The results are written like every other bench's.
    assert!(out.path().join("soak.json").is_file());
    let md = std::fs::read_to_string(out.path().join("soak.md")).unwrap();
    assert!(md.contains("| framed-ping |"), "{md}");
}
