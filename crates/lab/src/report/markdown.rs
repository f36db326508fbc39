//! The markdown half of the report: machine, the benchmark's targets with their verdicts,
//! ratios measured in this run, a summary with every row's ratio to the C reference and
//! to the Python baseline, and the full table, group by group.

use std::fmt::Write;

use crate::model::{Model, ModelGroup};
use crate::results::{BenchResults, Cell};

/// The model every row is compared with as the ceiling.
pub const REFERENCE: &str = "c-epoll";
/// The model every row is compared with as the floor.
pub const BASELINE: &str = "python-threads";
/// Best Rust model ÷ c-epoll at 100 connections must reach this.
pub const RUST_TARGET: f64 = 0.95;

fn best_closed_at(data: &BenchResults, conns: usize) -> Option<&Cell> {
    data.cells
        .iter()
        .filter(|c| c.mode == "closed" && c.conns == conns && c.skipped.is_none())
        .max_by(|a, b| a.rps.total_cmp(&b.rps))
}

/// The connection counts of the measured cells, ascending.
fn conn_counts(data: &BenchResults) -> Vec<usize> {
    let mut conns: Vec<usize> = data.cells.iter().map(|c| c.conns).collect();
    conns.sort_unstable();
    conns.dedup();
    conns
}

/// `a / b` requests/s, if both were measured and `b` did any.
fn ratio(a: Option<&Cell>, b: Option<&Cell>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.rps > 0.0 => Some(a.rps / b.rps),
        _ => None,
    }
}

fn fmt_ratio(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 10.0 => format!("{r:.1}×"),
        Some(r) => format!("{r:.2}×"),
        None => "–".to_string(),
    }
}

/// Headline comparisons, as ratios measured in this one run.
pub fn ratios(data: &BenchResults) -> Vec<String> {
    let mut out = Vec::new();
    for n in conn_counts(data) {
        if let (Some(best), Some(py)) = (best_closed_at(data, n), data.cell(BASELINE, "closed", n))
        {
            if py.rps > 0.0 && best.model != BASELINE {
                out.push(format!(
                    "{n} conns: best model `{}` = {:.1}× `{BASELINE}` requests/s",
                    best.model,
                    best.rps / py.rps
                ));
            }
        }
        for (a, b) in [
            ("epoll-et", "tokio"),
            ("io-uring", "epoll-et"),
            ("tokio-local", "tokio"),
            ("epoll-et", REFERENCE),
            ("python-epoll", "python-threads"),
            ("python-gevent", "python-threads"),
            ("python-asyncio", "python-threads"),
        ] {
            if let Some(r) = ratio(data.cell(a, "closed", n), data.cell(b, "closed", n)) {
                out.push(format!("{n} conns: `{a}` / `{b}` requests/s = {r:.2}"));
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

/// The benchmark's targets, each with its numbers and a verdict: the best Rust model
/// reaches [`RUST_TARGET`] × c-epoll at 100 connections; io-uring ≥ epoll-et at every
/// connection count measured (with each model's CPU per request where it is not).
/// Empty when the run has neither pair.
pub fn targets(data: &BenchResults) -> Vec<String> {
    let mut out = Vec::new();
    let rust_best = data
        .cells
        .iter()
        .filter(|c| c.mode == "closed" && c.conns == 100 && c.skipped.is_none())
        .filter(|c| c.model.parse::<Model>().is_ok_and(Model::is_rust))
        .max_by(|a, b| a.rps.total_cmp(&b.rps));
    if let (Some(best), Some(r)) = (rust_best, data.cell(REFERENCE, "closed", 100)) {
        if let Some(x) = ratio(Some(best), Some(r)) {
            let verdict = if x >= RUST_TARGET { "met" } else { "NOT met" };
            out.push(format!(
                "best Rust model ≥ {RUST_TARGET}× `{REFERENCE}` at 100 conns: **{verdict}** — \
                 `{}` {:.0} req/s = {x:.2}× `{REFERENCE}` {:.0} req/s",
                best.model, best.rps, r.rps
            ));
        }
    }
    let pairs: Vec<(usize, &Cell, &Cell)> = conn_counts(data)
        .into_iter()
        .filter_map(|n| {
            Some((
                n,
                data.cell("io-uring", "closed", n)?,
                data.cell("epoll-et", "closed", n)?,
            ))
        })
        .filter(|(_, _, e)| e.rps > 0.0)
        .collect();
    if !pairs.is_empty() {
        let all = pairs.iter().all(|(_, u, e)| u.rps >= e.rps);
        let list: Vec<String> = pairs
            .iter()
            .map(|(n, u, e)| format!("{n}: {:.2}×", u.rps / e.rps))
            .collect();
        out.push(format!(
            "`io-uring` ≥ `epoll-et` at every connection count: **{}** — {}",
            if all { "met" } else { "NOT met" },
            list.join(", ")
        ));
        for (n, u, e) in pairs.iter().filter(|(_, u, e)| u.rps < e.rps) {
            out.push(format!(
                "at {n} conns `io-uring` did {:.0} req/s with {:.1} µs CPU per request \
                 ({:.1} µs in the kernel), `epoll-et` {:.0} req/s with {:.1} µs ({:.1} µs)",
                u.rps,
                u.cpu_us_per_req,
                u.sys_us_per_req,
                e.rps,
                e.cpu_us_per_req,
                e.sys_us_per_req
            ));
        }
    }
    out
}

/// Rows (model or target names) of the run in report order: by group, models in
/// teaching order, targets in run order.
fn rows(data: &BenchResults) -> Vec<(ModelGroup, &str)> {
    let mut names: Vec<&str> = Vec::new();
    for c in &data.cells {
        if !names.contains(&c.model.as_str()) {
            names.push(&c.model);
        }
    }
    let teaching = |n: &str| {
        crate::models()
            .iter()
            .position(|m| m.name() == n)
            .unwrap_or(usize::MAX)
    };
    let mut rows: Vec<(ModelGroup, &str)> = names
        .into_iter()
        .map(|n| (ModelGroup::of_row(n), n))
        .collect();
    // Stable: targets keep their run order.
    rows.sort_by_key(|&(g, n)| (g, teaching(n)));
    rows
}

/// Closed-loop requests/s per row and connection count, each with its ratio to
/// c-epoll (`C`) and python-threads (`py`) at the same count.
pub fn summary(data: &BenchResults) -> String {
    let conns: Vec<usize> = conn_counts(data)
        .into_iter()
        .filter(|&n| {
            data.cells
                .iter()
                .any(|c| c.mode == "closed" && c.conns == n)
        })
        .collect();
    let mut s = String::from("| group | model |");
    let mut rule = String::from("|---|---|");
    for n in &conns {
        let _ = write!(s, " {n} conns |");
        rule.push_str("---:|");
    }
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    for (g, name) in rows(data) {
        if !data
            .cells
            .iter()
            .any(|c| c.model == name && c.mode == "closed")
        {
            continue;
        }
        let _ = write!(s, "| {} | {name} |", g.label());
        for &n in &conns {
            match data.cell(name, "closed", n) {
                Some(c) => {
                    let rc = ratio(Some(c), data.cell(REFERENCE, "closed", n));
                    let rp = ratio(Some(c), data.cell(BASELINE, "closed", n));
                    let _ = write!(
                        s,
                        " {:.0} ({} C, {} py) |",
                        c.rps,
                        fmt_ratio(rc),
                        fmt_ratio(rp)
                    );
                }
                None => s.push_str(" – |"),
            }
        }
        s.push('\n');
    }
    s
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
    let t = targets(data);
    if !t.is_empty() {
        let _ = writeln!(s, "## Targets\n");
        for line in t {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');
    }
    let r = ratios(data);
    if !r.is_empty() {
        let _ = writeln!(s, "## Ratios (same run)\n");
        for line in r {
            let _ = writeln!(s, "- {line}");
        }
        s.push('\n');
    }
    let _ = writeln!(
        s,
        "## Summary (closed loop, req/s and ratio to `{REFERENCE}` = C, `{BASELINE}` = py)\n"
    );
    s.push_str(&summary(data));
    let _ = writeln!(s, "\n## Results\n");
    let rows = rows(data);
    for g in ModelGroup::ALL {
        let cells: Vec<&Cell> = rows
            .iter()
            .filter(|(rg, _)| *rg == g)
            .flat_map(|(_, name)| data.cells.iter().filter(move |c| c.model == *name))
            .collect();
        if cells.is_empty() {
            continue;
        }
        let _ = writeln!(s, "### {}\n", g.label());
        s.push_str(&table(data, &cells));
        s.push('\n');
    }
    if !plots.is_empty() {
        let _ = writeln!(s, "## Plots\n");
        for p in plots {
            let _ = writeln!(s, "![{p}]({p})");
        }
    }
    s
}

/// The results table of `cells`, with each cell's ratio to c-epoll and python-threads
/// in the same mode and connection count of `data`. CPU and memory of a row whose
/// server process was not visible (a `--target` owned by another user) show as `–`.
pub fn table(data: &BenchResults, cells: &[&Cell]) -> String {
    let mut s = format!(
        "| model | mode | conns | req/s | × {REFERENCE} | × {BASELINE} | p50 µs | p99 µs | p99.9 µs | CPU µs/req | kernel µs/req | KiB/conn | peak RSS MiB | errors |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for c in cells {
        match &c.skipped {
            Some(reason) => {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | skipped: {} | | | | | | | | | | |",
                    c.model,
                    c.mode,
                    c.conns,
                    reason.replace('|', "/").replace('\n', " ")
                );
            }
            None => {
                let rc = ratio(Some(c), data.cell(REFERENCE, &c.mode, c.conns));
                let rp = ratio(Some(c), data.cell(BASELINE, &c.mode, c.conns));
                let measured = c.peak_rss_kib > 0;
                let num = |v: f64| {
                    if measured {
                        format!("{v:.1}")
                    } else {
                        "–".to_string()
                    }
                };
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} |",
                    c.model,
                    c.mode,
                    c.conns,
                    c.rps,
                    fmt_ratio(rc),
                    fmt_ratio(rp),
                    c.latency.p50_us,
                    c.latency.p99_us,
                    c.latency.p999_us,
                    num(c.cpu_us_per_req),
                    num(c.sys_us_per_req),
                    num(c.kib_per_conn),
                    num(c.peak_rss_kib as f64 / 1024.0),
                    c.errors
                );
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::Machine;

    fn cell(model: &str, conns: usize, rps: f64, cpu: f64) -> Cell {
        Cell {
            model: model.into(),
            mode: "closed".into(),
            conns,
            connected: conns,
            requests: rps as u64,
            rps,
            cpu_us_per_req: cpu,
            sys_us_per_req: cpu / 2.0,
            peak_rss_kib: 1024,
            ..Cell::default()
        }
    }

    fn run(cells: Vec<Cell>) -> BenchResults {
        BenchResults {
            version: 1,
            started: "2026-01-01T00:00:00Z".into(),
            machine: Machine::default(),
            size: 64,
            duration_s: 1.0,
            rate: None,
            cells,
        }
    }

    #[test]
    fn verdicts_follow_the_ratios() {
        let data = run(vec![
            cell("c-epoll", 100, 100_000.0, 8.0),
            cell("tokio", 100, 96_000.0, 9.0),
            cell("epoll-et", 100, 90_000.0, 9.0),
            cell("io-uring", 100, 91_000.0, 7.0),
            cell("epoll-et", 1000, 80_000.0, 10.0),
            cell("io-uring", 1000, 60_000.0, 12.0),
            cell("python-threads", 100, 10_000.0, 50.0),
        ]);
        let t = targets(&data);
        assert_eq!(t.len(), 3, "{t:#?}");
        assert!(
            t[0].contains("**met** — `tokio` 96000 req/s = 0.96×"),
            "{}",
            t[0]
        );
        assert!(
            t[1].contains("**NOT met** — 100: 1.01×, 1000: 0.75×"),
            "{}",
            t[1]
        );
        assert!(
            t[2].starts_with("at 1000 conns `io-uring` did 60000 req/s with 12.0 µs"),
            "{}",
            t[2]
        );
    }

    #[test]
    fn python_is_not_a_rust_model() {
        let data = run(vec![
            cell("c-epoll", 100, 100_000.0, 8.0),
            cell("python-asyncio", 100, 200_000.0, 9.0),
            cell("thread", 100, 50_000.0, 9.0),
        ]);
        let t = targets(&data);
        assert!(t[0].contains("**NOT met** — `thread`"), "{}", t[0]);
    }

    #[test]
    fn summary_groups_rows_and_prints_both_ratios() {
        let data = run(vec![
            cell("my-server", 100, 5_000.0, 1.0),
            cell("tokio", 100, 90_000.0, 9.0),
            cell("python-threads", 100, 10_000.0, 50.0),
            cell("c-epoll", 100, 100_000.0, 8.0),
        ]);
        let s = summary(&data);
        let lines: Vec<&str> = s.lines().skip(2).collect();
        assert_eq!(lines.len(), 4, "{s}");
        assert!(
            lines[0].starts_with("| Python course code | python-threads |"),
            "{s}"
        );
        assert!(
            lines[1].contains("| tokio | 90000 (0.90× C, 9.00× py) |"),
            "{s}"
        );
        assert!(
            lines[2].starts_with("| C reference | c-epoll | 100000 (1.00× C, 10.0× py)"),
            "{s}"
        );
        assert!(
            lines[3].contains("my-server | 5000 (0.05× C, 0.50× py) |"),
            "{s}"
        );
    }

    #[test]
    fn unmeasured_target_shows_dashes() {
        let mut c = cell("my-server", 10, 1000.0, 0.0);
        c.peak_rss_kib = 0;
        let data = run(vec![c]);
        let cells: Vec<&Cell> = data.cells.iter().collect();
        let t = table(&data, &cells);
        assert!(
            t.contains("| my-server | closed | 10 | 1000 | – | – |"),
            "{t}"
        );
        assert!(t.trim_end().ends_with("| – | – | – | – | 0 |"), "{t}");
    }
}
