//! `checker bench`: how fast parsing and checking are on a large generated run.
//!
//! Generates a valid run of N events with [`crate::gen`] (ten clients, retries,
//! timeouts, nemesis; final.json with a full, a checkpointed and a lagging replica),
//! then times [`crate::check_run`] on it and reports events per second and the peak
//! resident memory of the check. The generator's own memory is excluded by resetting
//! the kernel's high-water mark (`/proc/self/clear_refs`) before checking.

use crate::gen::{self, GenOptions};
use crate::{check_run, CheckError, Validity};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What one benchmark run measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    pub dir: PathBuf,
    pub events: u64,
    pub log_entries: u64,
    pub history_bytes: u64,
    pub final_bytes: u64,
    pub generate_secs: f64,
    pub check_secs: f64,
    /// Peak resident memory during the check, in KiB, when /proc tells it.
    pub peak_rss_kib: Option<u64>,
    /// Whether the high-water mark could be reset before checking (if not, the peak
    /// includes the generator's memory).
    pub peak_is_check_only: bool,
    pub valid: Validity,
}

impl BenchReport {
    pub fn events_per_sec(&self) -> f64 {
        self.events as f64 / self.check_secs.max(1e-9)
    }

    /// Lines for a terminal.
    pub fn summary(&self) -> String {
        let rss = match self.peak_rss_kib {
            Some(k) => format!(
                "{:.0} MiB{}",
                k as f64 / 1024.0,
                if self.peak_is_check_only {
                    ""
                } else {
                    " (includes generation)"
                }
            ),
            None => "unknown".into(),
        };
        format!(
            "bench: {} events, {} log entries ({:.0} MiB history, {:.0} MiB final.json) in {}\n  generated in {:.1} s\n  parse+check: {:.2} s = {:.0} events/s, verdict {}\n  peak RSS of the check: {rss}\n",
            self.events,
            self.log_entries,
            self.history_bytes as f64 / 1048576.0,
            self.final_bytes as f64 / 1048576.0,
            self.dir.display(),
            self.generate_secs,
            self.check_secs,
            self.events_per_sec(),
            self.valid.as_str(),
        )
    }
}

/// The options the benchmark generates with.
pub fn bench_options(events: usize) -> GenOptions {
    GenOptions {
        seed: 42,
        events,
        nodes: 3,
        unreachable_node: false,
        ..GenOptions::default()
    }
}

/// Generates a run of `events` events into `dir` and times checking it.
pub fn run(events: usize, dir: &Path) -> Result<BenchReport, CheckError> {
    let io = |e: std::io::Error| CheckError::Internal(format!("{}: {e}", dir.display()));
    let started = Instant::now();
    let log_entries = gen::write_run(&bench_options(events), dir).map_err(io)?;
    let generate_secs = started.elapsed().as_secs_f64();
    let peak_is_check_only = reset_peak_rss();
    let started = Instant::now();
    let results = check_run(dir)?;
    let check_secs = started.elapsed().as_secs_f64();
    let size = |f: &str| std::fs::metadata(dir.join(f)).map(|m| m.len()).unwrap_or(0);
    Ok(BenchReport {
        dir: dir.to_path_buf(),
        events: results.history.events,
        log_entries,
        history_bytes: size("history.jsonl"),
        final_bytes: size("final.json"),
        generate_secs,
        check_secs,
        peak_rss_kib: peak_rss_kib(),
        peak_is_check_only,
        valid: results.valid,
    })
}

/// Resets VmHWM (Linux: writing 5 to clear_refs). False if it could not.
fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// VmHWM from /proc/self/status, in KiB.
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
