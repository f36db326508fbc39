//! The markdown half of the report: machine, ratios measured in this run, full table.

use std::fmt::Write;

use crate::results::{BenchResults, Cell};

fn best_closed_at(data: &BenchResults, conns: usize) -> Option<&Cell> {
    data.cells
        .iter()
        .filter(|c| c.mode == "closed" && c.conns == conns && c.skipped.is_none())
        .max_by(|a, b| a.rps.total_cmp(&b.rps))
}

/// Headline comparisons, as ratios measured in this one run.
pub fn ratios(data: &BenchResults) -> Vec<String> {
    let mut out = Vec::new();
    let mut conns: Vec<usize> = data.cells.iter().map(|c| c.conns).collect();
    conns.sort_unstable();
    conns.dedup();
    for &n in &conns {
        if let (Some(best), Some(py)) = (
            best_closed_at(data, n),
            data.cell("python-threads", "closed", n),
        ) {
            if py.rps > 0.0 && best.model != "python-threads" {
                out.push(format!(
                    "{n} conns: best model `{}` = {:.1}× `python-threads` requests/s",
                    best.model,
                    best.rps / py.rps
                ));
            }
        }
        for (a, b) in [
            ("epoll-et", "tokio"),
            ("io-uring", "epoll-et"),
            ("tokio-local", "tokio"),
        ] {
            if let (Some(x), Some(y)) = (data.cell(a, "closed", n), data.cell(b, "closed", n)) {
                if y.rps > 0.0 {
                    out.push(format!(
                        "{n} conns: `{a}` / `{b}` requests/s = {:.2}",
                        x.rps / y.rps
                    ));
                }
            }
        }
    }
    for c in data
        .cells
        .iter()
        .filter(|c| c.mode == "open" && c.skipped.is_none())
    {
        if let Some(u) = &c.uncorrected {
            out.push(format!(
                "open loop `{}` {} conns: p99 corrected {:.0} µs vs naive {:.0} µs",
                c.model, c.conns, c.latency.p99_us, u.p99_us
            ));
        }
    }
    out
}

/// Renders the whole markdown report; `plots` are image file names to link.
pub fn render(data: &BenchResults, plots: &[String]) -> String {
    let mut s = String::new();
    let m = &data.machine;
    let _ = writeln!(s, "# sockit lab benchmark — {}\n", data.started);
    let _ = writeln!(
        s,
        "{} cores, kernel {}, server cores {:?}, client cores {:?}, RLIMIT_NOFILE {}; \
         {} B messages, {} s per cell{}.\n",
        m.cores,
        m.kernel,
        m.server_cores,
        m.client_cores,
        m.nofile,
        data.size,
        data.duration_s,
        data.rate
            .map(|r| format!(", open loop at {r} req/s"))
            .unwrap_or_default()
    );
    let r = ratios(data);
    if !r.is_empty() {
        let _ = writeln!(s, "## Ratios (same run)\n");
        for line in r {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');
    }
    let _ = writeln!(s, "## Results\n");
    s.push_str(&table(&data.cells));
    if !plots.is_empty() {
        let _ = writeln!(s, "\n## Plots\n");
        for p in plots {
            let _ = writeln!(s, "![{p}]({p})");
        }
    }
    s
}

/// The results table.
pub fn table(cells: &[Cell]) -> String {
    let mut s = String::from(
        "| model | mode | conns | req/s | p50 µs | p99 µs | p99.9 µs | CPU µs/req | kernel µs/req | KiB/conn | peak RSS MiB | errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cells {
        match &c.skipped {
            Some(reason) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | skipped: {} | | | | | | | | |",
                    c.model,
                    c.mode,
                    c.conns,
                    reason.replace('|', "/").replace('\n', " ")
                );
            }
            None => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
                    c.model,
                    c.mode,
                    c.conns,
                    c.rps,
                    c.latency.p50_us,
                    c.latency.p99_us,
                    c.latency.p999_us,
                    c.cpu_us_per_req,
                    c.sys_us_per_req,
                    c.kib_per_conn,
                    c.peak_rss_kib as f64 / 1024.0,
                    c.errors
                );
            }
        }
    }
    s
}
