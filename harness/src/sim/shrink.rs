//! Shrinking a failing simulated run to a smaller one that fails the same check.
//!
//! A failing seed is most useful when its cause is easy to see. The run's schedule, operation
//! budget, time limit and network impairments are all in its `run.toml`, so a smaller run is a
//! smaller `run.toml`: greedily drop faults one at a time, halve the operations, cut the time
//! limit to just after the last fault, and turn off message loss and duplication, keeping
//! every change after which the run still fails the check it failed first. The seed stays,
//! so what remains replays exactly like any other run.

use super::{simulate, write_and_check, SimError, SimRunInfo, SimSummary};
use std::path::{Path, PathBuf};

/// Most candidate runs one shrink simulates.
pub const MAX_ATTEMPTS: u32 = 300;

/// What a shrink found.
#[derive(Debug)]
pub struct Shrunk {
    pub info: SimRunInfo,
    pub summary: SimSummary,
    pub attempts: u32,
    /// The check the original failed and the shrunk run still fails.
    pub check: String,
    /// The original's faults, counted as a replay counts them (faults the world carried out,
    /// as `SimSummary::faults`), and its operation budget.
    pub original_faults: u32,
    pub original_ops: u64,
}

/// Shrinks the failing run in `dir`; the result is written to `out`.
pub fn shrink(dir: &Path, out: &Path) -> Result<Shrunk, SimError> {
    let original = SimRunInfo::load(dir)?;
    let scratch = out.with_extension("scratch");
    let first = judge(&original, &scratch)?;
    let Some(check) = first
        .failed_checks
        .first()
        .cloned()
        .or_else(|| (!first.world_violations.is_empty()).then(|| "world".to_string()))
    else {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(SimError::Check {
            dir: dir.to_path_buf(),
            message: "the run passes: there is nothing to shrink".into(),
        });
    };
    let fails = |summary: &SimSummary| {
        summary.failed_checks.contains(&check)
            || (check == "world" && !summary.world_violations.is_empty())
    };
    let mut best = original.clone();
    let mut attempts = 1;
    let mut try_candidate = |candidate: SimRunInfo, best: &mut SimRunInfo| -> bool {
        if attempts >= MAX_ATTEMPTS {
            return false;
        }
        attempts += 1;
        match judge(&candidate, &scratch) {
            Ok(summary) if fails(&summary) => {
                *best = candidate;
                true
            }
            _ => false,
        }
    };
    // Faults, one (start + heal) at a time, from the last.
    let mut k = best.schedule.len();
    while k >= 2 {
        k -= 2;
        let mut candidate = best.clone();
        candidate
            .schedule
            .drain(k..(k + 2).min(candidate.schedule.len()));
        try_candidate(candidate, &mut best);
    }
    // Operations, halving.
    while best.params.ops > 1 {
        let mut candidate = best.clone();
        candidate.params.ops = best.params.ops / 2;
        if !try_candidate(candidate, &mut best) {
            break;
        }
    }
    // Time: just past the last fault's heal.
    let last_step = best.schedule.last().map_or(0, |s| s.at_ms);
    if last_step + 1_000 < best.params.time_limit_ms {
        let mut candidate = best.clone();
        candidate.params.time_limit_ms = last_step + 1_000;
        try_candidate(candidate, &mut best);
    }
    // A clean network.
    for quiet in [true, false] {
        let mut candidate = best.clone();
        if quiet {
            candidate.params.drop_rate = 0.0;
            candidate.params.dup_rate = 0.0;
        } else {
            candidate.params.max_delay_ms = 1;
        }
        try_candidate(candidate, &mut best);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    best.shrunk_from = Some(dir.display().to_string());
    best.replays = None;
    let outcome = simulate(&best)?;
    let summary = write_and_check(out, &best, &outcome, true)?;
    Ok(Shrunk {
        original_faults: first.faults,
        original_ops: original.params.ops,
        info: best,
        summary,
        attempts,
        check,
    })
}

/// Simulates and checks `info` in a scratch directory.
fn judge(info: &SimRunInfo, scratch: &Path) -> Result<SimSummary, SimError> {
    let outcome = simulate(info)?;
    let summary = write_and_check(scratch, info, &outcome, false);
    let _ = std::fs::remove_dir_all(scratch);
    summary
}

/// Where `harness sim --shrink DIR` writes: beside DIR, named `<DIR>-shrunk`.
pub fn default_out(dir: &Path) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    dir.with_file_name(format!("{name}-shrunk"))
}
