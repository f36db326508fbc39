//! `sockit serve --tls` and `sockit --tls` clients as a user runs them, plus openssl.

use crate::common::{sockit, SOCKIT};
use sockit_testkit::{
    peer,
    process::{run, stderr, stdout},
    serve::Serve,
};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(30);

fn fingerprint_from_table(s: &mut Serve) -> String {
    // The table goes to stdout before the addr file is written; read the first lines.
    use std::io::{BufRead, BufReader};
    let out = s.child.stdout.take().unwrap();
    let mut lines = BufReader::new(out).lines();
    loop {
        let line = lines.next().expect("no fingerprint line").unwrap();
        if let Some(fp) = line.strip_prefix("TLS certificate fingerprint: ") {
            return fp.trim().to_owned();
        }
    }
}

#[test]
fn tofu_pinning_and_changed_certificate() {
    let home = tempfile::tempdir().unwrap();
    let known = home.path().join("known_hosts");
    let kh = known.to_str().unwrap();
    let mut s = Serve::start(SOCKIT, &["--only", "framed", "--tls"]);
    let fp = fingerprint_from_table(&mut s);
    assert!(fp.starts_with("SHA256:"), "{fp}");
    let addr = s.addr("framed", "tcp");

    let o = run(
        sockit().args(["--tls", "--known-hosts", kh, "ping", "--server", &addr]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");
    assert!(
        stderr(&o).contains("trusting") && stderr(&o).contains(&fp),
        "{}",
        stderr(&o)
    );
    assert!(stdout(&o).contains("tls"), "{}", stdout(&o));
    let o = run(
        sockit().args(["--tls", "--known-hosts", kh, "ping", "--server", &addr]),
        b"",
        LIMIT,
    );
    assert!(
        o.status.success() && !stderr(&o).contains("trusting"),
        "{o:?}"
    );
    let o = run(
        sockit().args(["--tls", "--fingerprint", &fp, "ping", "--server", &addr]),
        b"",
        LIMIT,
    );
    assert!(o.status.success(), "{o:?}");

    // Plain client on the TLS port: a clear error, and the server keeps serving.
    let o = run(sockit().args(["ping", "--server", &addr]), b"", LIMIT);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("this port speaks TLS"),
        "{}",
        stderr(&o)
    );

    // Restart on the same port with a new data root, hence a new certificate.
    let port = addr.rsplit_once(':').unwrap().1.to_owned();
    s.terminate();
    assert!(s.wait_exit(LIMIT).success());
    let s2 = Serve::start(
        SOCKIT,
        &[
            "--only",
            "framed",
            "--tls",
            "--port",
            &format!("framed={port}"),
        ],
    );
    assert_eq!(s2.addr("framed", "tcp"), addr);
    let o = run(
        sockit().args(["--tls", "--known-hosts", kh, "ping", "--server", &addr]),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("HAS CHANGED") && err.contains(&fp), "{err}");
}

#[test]
fn tls_client_on_plain_port_gets_clear_error() {
    let s = Serve::start(SOCKIT, &["--only", "framed"]);
    let dir = tempfile::tempdir().unwrap();
    let kh = dir.path().join("kh");
    let o = run(
        sockit()
            .args([
                "--tls",
                "--known-hosts",
                kh.to_str().unwrap(),
                "ping",
                "--server",
            ])
            .arg(s.addr("framed", "tcp")),
        b"",
        LIMIT,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does not speak TLS"), "{}", stderr(&o));
    let o = run(
        sockit().args(["ping", "--server", &s.addr("framed", "tcp")]),
        b"",
        LIMIT,
    );
    assert!(o.status.success());
}

#[test]
fn interop_openssl_s_client_reaches_tls_port() {
    let s = Serve::start(SOCKIT, &["--only", "framed", "--tls"]);
    // Two framed requests through openssl: hello, then bye (the server answers and closes,
    // which ends s_client; -ign_eof keeps it reading after its stdin ends).
    let mut input = Vec::new();
    for cmd in ["hello", "bye"] {
        let header = format!("{{\"cmd\":\"{cmd}\"}}");
        input.extend_from_slice(&(header.len() as u32).to_le_bytes());
        input.extend_from_slice(header.as_bytes());
    }
    let o = run(
        Command::new(peer::require("openssl", "openssl")).args([
            "s_client",
            "-connect",
            &s.addr("framed", "tcp"),
            "-brief",
            "-ign_eof",
        ]),
        &input,
        LIMIT,
    );
    let text = format!("{}{}", stdout(&o), stderr(&o));
    assert!(
        text.contains("CONNECTION ESTABLISHED") || text.contains("Protocol version"),
        "{text}"
    );
    // Through TLS, the server's hello frame arrives.
    assert!(text.contains("\"cmd\":\"hello\""), "{text}");
}

#[test]
fn files_bench_has_tls_rows_with_ratio_to_plain() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(
        sockit()
            .args(["--json", "lab", "bench", "files", "--size", "3M", "--dir"])
            .arg(dir.path())
            .arg("--out")
            .arg(dir.path().join("out")),
        b"",
        Duration::from_secs(120),
    );
    assert!(o.status.success(), "{o:?}");
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rows = report["results"].as_array().unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(rows.len(), 5, "{names:?}");
    assert_eq!(names[3], "sockit put over TLS", "{names:?}");
    assert_eq!(names[4], "sockit get over TLS", "{names:?}");
    // Each TLS row's ratio is the plain row's time over its own, and the verdict follows
    // from the ratios and the stated target (how fast TLS is is the benchmark's output).
    let secs = |r: &serde_json::Value| r["secs"].as_f64().unwrap();
    let mut all_met = true;
    for (tls, plain) in [(&rows[3], &rows[1]), (&rows[4], &rows[2])] {
        assert_eq!(tls["bytes"], 3 << 20, "{tls}");
        let ratio = tls["ratio_to_plain"].as_f64().unwrap();
        let want = secs(plain) / secs(tls);
        assert!(
            (ratio - want).abs() <= want * 1e-9,
            "{ratio} != {want}: {tls} {plain}"
        );
        all_met &= ratio >= 0.7;
    }
    assert_eq!(
        report["tls_target"], "put and get over TLS ≥ 0.7× plain text",
        "{report}"
    );
    assert_eq!(report["tls_target_met"], all_met, "{report}");
    let md = std::fs::read_to_string(dir.path().join("out/files.md")).unwrap();
    assert!(md.contains("| sockit get over TLS |"), "{md}");
    let verdict = if all_met { "met" } else { "NOT met" };
    assert!(
        md.contains(&format!(
            "TLS target (put and get over TLS ≥ 0.7× plain text): {verdict}\n"
        )),
        "{md}"
    );
    // The scratch files are cleaned up.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n != "out")
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
