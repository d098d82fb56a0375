//! The report a person opens in the morning: `report.html` plus the charts as PNGs.
//!
//! [`write_report`] writes `results.json`, reads the history once more for what the
//! page shows ([`scan`]), pairs nemesis actions into fault intervals ([`faults`]),
//! draws the charts ([`charts`]) and renders one self-contained HTML page ([`html`])
//! with the charts inlined as base64 data URIs, so the page opens from disk, can be
//! mailed alone, and needs no network. A chart that cannot be drawn is reported on
//! the page instead of failing the report. Beside it, `timeline.html` (and its further
//! pages, [`timeline`]) draws every operation per process; nemesis actions are shown
//! in words ([`describe`]). The page opens with the outcome in one line ([`cause`]) and
//! speaks the run's own words ([`words`]): an etcd run's members and revisions, a
//! simulated run's virtual time.

pub mod cause;
pub mod charts;
pub mod describe;
pub mod faults;
pub mod html;
pub mod scan;
pub mod timeline;
pub mod words;

use crate::history::HistoryError;
use crate::results::Results;
use crate::run_params::RunParams;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// File name of the page.
pub const REPORT_FILE: &str = "report.html";

type Draw = fn(&Path, &scan::Scan, &charts::Frame<'_>) -> Result<(), String>;

/// The charts: file name, caption, drawing function.
pub const CHARTS: [(&str, &str, Draw); 3] = [
    (
        "latency-raw.png",
        "Every operation's latency against the time it was invoked (log scale), by outcome and function.",
        charts::latency_raw,
    ),
    (
        "latency-quantiles.png",
        "Latency quantiles of completed (ok and fail) operations per time window.",
        charts::latency_quantiles,
    ),
    (
        "rate.png",
        "Completions per second by outcome.",
        charts::rate,
    ),
];

/// What [`write_report`] wrote.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    pub html: PathBuf,
    pub results: PathBuf,
    /// The PNGs that were drawn.
    pub charts: Vec<PathBuf>,
    /// The timeline's pages (`timeline.html` first).
    pub timeline: Vec<PathBuf>,
}

/// The report could not be written.
#[derive(Debug, thiserror::Error)]
// Prints its cause rather than chaining it: `{:#}` would say it twice.
#[error("{}: {cause}", path.display())]
pub struct ReportError {
    pub path: PathBuf,
    pub cause: io::Error,
}

/// One chart as the page shows it.
pub struct ChartOut {
    pub file: &'static str,
    pub caption: &'static str,
    /// The PNG, or why it could not be drawn.
    pub png: Result<Vec<u8>, String>,
}

/// Writes results.json, the charts and report.html into `dir`, the run directory.
pub fn write_report(dir: &Path, results: &Results) -> Result<ReportFiles, ReportError> {
    write_report_to(dir, dir, results)
}

/// Like [`write_report`], reading the run in `run_dir` but writing into `dir`, so an
/// old run can be checked again without overwriting what it holds.
pub fn write_report_to(
    run_dir: &Path,
    dir: &Path,
    results: &Results,
) -> Result<ReportFiles, ReportError> {
    let io_err = |path: PathBuf| move |cause| ReportError { path, cause };
    results
        .write_json(dir)
        .map_err(io_err(dir.join(crate::results::RESULTS_FILE)))?;
    let mut notes = Vec::new();
    let scan = match scan::scan(&history_path(run_dir, results), &cited_indices(results)) {
        Ok(s) => s,
        Err(e) => {
            notes.push(format!(
                "The history could not be read again for the report: {e}"
            ));
            scan::Scan::default()
        }
    };
    let params = match RunParams::load(&run_dir.join("run.toml")) {
        Ok(p) => p,
        Err(e) => {
            notes.push(e.to_string());
            None
        }
    };
    let words = words::Words::of(params.as_ref());
    let spans = faults::spans(&scan.nemesis, scan.end_ns);
    let frame = charts::Frame::new(&scan, &spans, &scan.nemesis).on_virtual_time(words.simulated);
    let mut drawn = Vec::new();
    let charts: Vec<ChartOut> = CHARTS
        .iter()
        .map(|(file, caption, draw)| {
            let path = dir.join(file);
            let png = draw(&path, &scan, &frame)
                .and_then(|()| std::fs::read(&path).map_err(|e| e.to_string()));
            if png.is_ok() {
                drawn.push(path);
            }
            ChartOut { file, caption, png }
        })
        .collect();
    let timeline = match timeline::write_timeline(dir, &scan, &spans, &words) {
        Ok(pages) => pages,
        Err(e) => {
            notes.push(format!("The timeline page could not be written: {e}"));
            Vec::new()
        }
    };
    let pages = if timeline.is_empty() {
        Vec::new()
    } else {
        timeline::page_infos(&scan, &spans)
    };
    let page = html::Page {
        results,
        scan: &scan,
        spans: &spans,
        charts: &charts,
        params: params.as_ref(),
        notes: &notes,
        timeline: &pages,
        locator: &timeline::Locator::new(&scan),
        words,
        logs: &replica_logs(run_dir, dir),
    };
    let html_path = dir.join(REPORT_FILE);
    std::fs::write(&html_path, html::render(&page)).map_err(io_err(html_path.clone()))?;
    Ok(ReportFiles {
        html: html_path,
        results: dir.join(crate::results::RESULTS_FILE),
        charts: drawn,
        timeline,
    })
}

/// A replica's name and its output files: (`log` or `stderr`, link) pairs.
pub type ReplicaLogs = (String, Vec<(String, String)>);

/// Each replica's own output files in the run directory (`n1.log`, `n1.stderr`), by
/// replica, as links from the page in `out_dir`: relative when the page sits in the
/// run directory, else absolute.
pub fn replica_logs(run_dir: &Path, out_dir: &Path) -> Vec<ReplicaLogs> {
    let Ok(entries) = std::fs::read_dir(run_dir) else {
        return Vec::new();
    };
    let same = run_dir.canonicalize().ok() == out_dir.canonicalize().ok();
    let mut by_node: std::collections::BTreeMap<(String, u64), Vec<(String, String)>> =
        std::collections::BTreeMap::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((node, ext)) = name.rsplit_once('.') else {
            continue;
        };
        if !matches!(ext, "log" | "stderr") || !entry.path().is_file() {
            continue;
        }
        let link = if same {
            name.clone()
        } else {
            entry.path().display().to_string()
        };
        let digits = node.trim_start_matches(|c: char| !c.is_ascii_digit());
        let key = (node.to_string(), digits.parse().unwrap_or(u64::MAX));
        by_node
            .entry(key)
            .or_default()
            .push((ext.to_string(), link));
    }
    let mut nodes: Vec<(u64, ReplicaLogs)> = by_node
        .into_iter()
        .map(|((node, number), mut files)| {
            files.sort();
            (number, (node, files))
        })
        .collect();
    nodes.sort_by(|a, b| (a.0, &a.1 .0).cmp(&(b.0, &b.1 .0)));
    nodes.into_iter().map(|(_, logs)| logs).collect()
}

/// The history the results came from, or the run directory's own.
fn history_path(dir: &Path, results: &Results) -> PathBuf {
    let recorded = PathBuf::from(&results.history.file);
    if recorded.is_file() {
        recorded
    } else {
        dir.join("history.jsonl")
    }
}

/// Every history index a stored anomaly names.
fn cited_indices(results: &Results) -> HashSet<u64> {
    results
        .checks
        .values()
        .flat_map(|c| c.anomalies.iter())
        .flat_map(|a| a.indices.iter().copied())
        .collect()
}

/// Scans a history for the report without checking it (for tools).
pub fn scan_history(path: &Path) -> Result<scan::Scan, HistoryError> {
    scan::scan(path, &HashSet::new())
}
