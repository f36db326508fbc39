//! The benchmark matrix end to end (servers as child processes, re-running this test
//! binary as the server), and the report from a small results file.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use sockit_lab::bench::{run_bench, BenchConfig, LaunchSpec};
use sockit_lab::results::{BenchResults, Cell, Machine};
use sockit_lab::{Model, ServeConfig, Shutdown};

const CHILD_MODEL: &str = "SOCKIT_LAB_TEST_CHILD_MODEL";
const CHILD_ADDR_FILE: &str = "SOCKIT_LAB_TEST_CHILD_ADDR_FILE";

/// Not a test of its own (hence ignored, so it never counts as a pass): when the bench
/// re-runs this binary with `--ignored` and the environment variables set, this entry
/// point becomes the server process (the role `sockit lab serve` plays for the CLI).
/// Without them it has nothing to do.
#[test]
#[ignore = "the server process of bench_matrix_produces_sane_results_and_a_report"]
fn child_server_entry_point() {
    let (Ok(model), Ok(addr_file)) = (std::env::var(CHILD_MODEL), std::env::var(CHILD_ADDR_FILE))
    else {
        return;
    };
    let cfg = ServeConfig::new(model.parse::<Model>().unwrap());
    // Runs until the bench kills the process group.
    sockit_lab::run_model(&cfg, &Shutdown::new(), |addr| {
        sockit_lab::write_addr_file(Path::new(&addr_file), addr).unwrap();
    })
    .unwrap();
}

fn test_launcher(spec: &LaunchSpec) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "--ignored",
        "child_server_entry_point",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD_MODEL, spec.model.name())
    .env(CHILD_ADDR_FILE, &spec.addr_file);
    c
}

#[test]
fn bench_matrix_produces_sane_results_and_a_report() {
    let out = tempfile::tempdir().unwrap();
    let cfg = BenchConfig {
        models: vec![Model::Tokio, Model::Thread, Model::PythonThreads],
        conns: vec![1, 8],
        size: 64,
        duration: Duration::from_millis(300),
        rate: Some(200.0),
        connect: Some(2),
        out_dir: out.path().to_path_buf(),
        ..BenchConfig::default()
    };
    let (path, results) = run_bench(&cfg, &test_launcher).unwrap();
    assert!(path.exists());
    assert!(path
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .starts_with("lab-"));
    let loaded = BenchResults::load(&path).unwrap();
    assert_eq!(loaded.cells.len(), results.cells.len());
    assert_eq!(loaded.started, results.started);
    // 3 models × (2 closed + 2 open + 1 connect).
    assert_eq!(results.cells.len(), 15);
    for c in &results.cells {
        if let Some(reason) = &c.skipped {
            let hint = if c.model == "python-threads" {
                " (apt-get install python3)"
            } else {
                ""
            };
            panic!(
                "{} {} {} conns was skipped: {reason}{hint}",
                c.model, c.mode, c.conns
            );
        }
        assert!(c.requests > 0, "{c:?}");
        assert_eq!(c.errors, 0, "{c:?}");
        let l = &c.latency;
        assert!(l.p50_us <= l.p99_us && l.p99_us <= l.p999_us, "{c:?}");
        assert!(c.mem_idle_kib > 0, "{c:?}");
        assert!(c.peak_rss_kib > 0, "{c:?}");
    }
    let files = sockit_lab::report::report(&path).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("| tokio | closed | 8 |"), "{md}");
}

fn cell(model: &str, conns: usize, rps: f64, p50: f64, kib: f64) -> Cell {
    let mut c = Cell {
        model: model.into(),
        mode: "closed".into(),
        conns,
        connected: conns,
        requests: (rps * 2.0) as u64,
        rps,
        kib_per_conn: kib,
        peak_rss_kib: 4096,
        ..Cell::default()
    };
    c.latency.count = c.requests;
    c.latency.p50_us = p50;
    c.latency.p90_us = p50 * 1.5;
    c.latency.p99_us = p50 * 3.0;
    c.latency.p999_us = p50 * 6.0;
    c.latency.max_us = p50 * 10.0;
    c
}

#[test]
fn report_writes_table_and_pngs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cells = Vec::new();
    for (m, base, kib) in [
        ("tokio", 90_000.0, 3.0),
        ("epoll-et", 95_000.0, 2.5),
        ("python-threads", 4_000.0, 40.0),
    ] {
        for n in [1usize, 10, 100] {
            cells.push(cell(
                m,
                n,
                base * (n as f64).sqrt() / 3.0,
                20.0 * n as f64 / 3.0,
                kib,
            ));
        }
    }
    cells.push(Cell {
        model: "select".into(),
        mode: "closed".into(),
        conns: 10_000,
        skipped: Some("select cannot watch descriptors >= FD_SETSIZE (1024)".into()),
        ..Cell::default()
    });
    let results = BenchResults {
        version: 1,
        started: "2026-01-01T00:00:00Z".into(),
        machine: Machine {
            cores: 2,
            kernel: "6.1".into(),
            ..Machine::default()
        },
        size: 64,
        duration_s: 2.0,
        rate: None,
        cells,
    };
    let path = dir.path().join("lab-test.json");
    results.save(&path).unwrap();
    let files = sockit_lab::report::report(&path).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    assert!(md.contains("| model | mode | conns | req/s |"), "{md}");
    assert!(md.contains("| epoll-et | closed | 100 |"), "{md}");
    assert!(md.contains("skipped: select cannot watch"), "{md}");
    // tokio at 100 = 300000 req/s vs python 13333: best model is epoll-et at 23.75×.
    assert!(
        md.contains("100 conns: best model `epoll-et` = 23.8× `python-threads`"),
        "{md}"
    );
    assert!(
        md.contains("`epoll-et` / `tokio` requests/s = 1.06"),
        "{md}"
    );
    assert_eq!(files.plots.len(), 3);
    for p in &files.plots {
        let bytes = std::fs::read(p).unwrap();
        assert!(bytes.len() > 1000, "{} is too small", p.display());
        assert_eq!(
            &bytes[..8],
            b"\x89PNG\r\n\x1a\n",
            "{} is not a PNG",
            p.display()
        );
    }
    if let Ok(keep) = std::env::var("SOCKIT_LAB_KEEP_REPORT") {
        for p in files.plots.iter().chain(std::iter::once(&files.markdown)) {
            std::fs::copy(p, Path::new(&keep).join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// Pixels of exactly `rgb` in an 8-bit RGB or RGBA PNG.
fn pixels_of(path: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks_exact(step)
        .filter(|p| p[..3] == rgb)
        .count()
}

#[test]
fn a_single_connection_count_is_drawn_as_bars_not_dots() {
    let dir = tempfile::tempdir().unwrap();
    let cells = vec![
        cell("tokio", 100, 90_000.0, 20.0, 3.0),
        cell("epoll-et", 100, 95_000.0, 18.0, 2.5),
        cell("python-threads", 100, 4_000.0, 400.0, 40.0),
    ];
    let results = BenchResults {
        version: 1,
        started: "2026-01-01T00:00:00Z".into(),
        machine: Machine::default(),
        size: 64,
        duration_s: 2.0,
        rate: None,
        cells,
    };
    let path = dir.path().join("lab-one-count.json");
    results.save(&path).unwrap();
    let files = sockit_lab::report::report(&path).unwrap();
    let throughput = &files.plots[0];
    if let Ok(keep) = std::env::var("SOCKIT_LAB_KEEP_REPORT") {
        std::fs::copy(
            throughput,
            Path::new(&keep).join("throughput-one-count.png"),
        )
        .unwrap();
    }
    // tokio's colour (the async group's first). As a line of one point it was one 4-pixel
    // dot (about 50 pixels); as a bar, nearly the chart's width at 90,000 of 95,000 req/s.
    let tokio = pixels_of(throughput, [44, 160, 44]);
    assert!(tokio > 5_000, "tokio has only {tokio} pixels: not a bar");
    // python-threads at 4,000 req/s is a bar too, about 1/20 of tokio's.
    let python = pixels_of(throughput, [214, 39, 40]);
    assert!(
        python > 100 && python < tokio / 5,
        "python {python}, tokio {tokio}"
    );

    // One model at one count: one bar.
    let one = BenchResults {
        cells: vec![cell("tokio", 100, 90_000.0, 20.0, 3.0)],
        ..results
    };
    let path = dir.path().join("lab-one-model.json");
    one.save(&path).unwrap();
    let files = sockit_lab::report::report(&path).unwrap();
    assert!(pixels_of(&files.plots[0], [44, 160, 44]) > 5_000);
}
