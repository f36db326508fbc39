//! `sockit lab report FILE`: a markdown table with the headline ratios, plus PNG plots,
//! written next to the results file.

pub mod markdown;
pub mod plots;

use std::path::{Path, PathBuf};

use crate::error::{LabError, Result};
use crate::results::BenchResults;

/// The files a report produced.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// The markdown report.
    pub markdown: PathBuf,
    /// The PNG plots.
    pub plots: Vec<PathBuf>,
}

/// Reads `results` and writes `<stem>.md` and `<stem>-{throughput,latency,memory}.png`
/// beside it.
///
/// # Errors
/// When the file is not a results file or an output cannot be written.
pub fn report(results: &Path) -> Result<ReportFiles> {
    let data = BenchResults::load(results)?;
    let dir = results.parent().unwrap_or(Path::new("."));
    let stem = results
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("lab")
        .to_string();
    let plots = vec![
        dir.join(format!("{stem}-throughput.png")),
        dir.join(format!("{stem}-latency.png")),
        dir.join(format!("{stem}-memory.png")),
    ];
    plots::throughput(&data, &plots[0])?;
    plots::latency(&data, &plots[1])?;
    plots::memory(&data, &plots[2])?;
    let names: Vec<String> = plots
        .iter()
        .filter_map(|p| p.file_name().and_then(|n| n.to_str()).map(String::from))
        .collect();
    let md = markdown::render(&data, &names);
    let markdown = dir.join(format!("{stem}.md"));
    std::fs::write(&markdown, md).map_err(|source| LabError::File {
        path: markdown.clone(),
        source,
    })?;
    Ok(ReportFiles { markdown, plots })
}
