//! Many seeds, one after another on each worker thread: `harness sim --seeds N`.
//!
//! Every seed is simulated in memory, written to a scratch run directory and judged by the
//! checker; a seed that passes is deleted unless the user keeps all. Kept seeds get the full
//! report and a directory named after the seed, so the reproduce command is short.

use super::{simulate, write_and_check, SimError, SimParams, SimRunInfo, SimSummary};
use crate::faults::tunables::Pins;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Which run directories a sweep keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    Failing,
    All,
    None,
}

/// A sweep's parameters.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub from_seed: u64,
    pub seeds: u64,
    pub out: PathBuf,
    pub keep: Keep,
    pub jobs: usize,
    pub pins: Pins,
    /// Applied to each seed's defaults (ops, faults, bug...).
    pub knobs: SweepKnobs,
    pub progress: bool,
}

/// The command line's choices that override the defaults of every seed.
#[derive(Clone, Debug, Default)]
pub struct SweepKnobs {
    pub ops: Option<u64>,
    pub faults: Option<Vec<super::faults::SimFamily>>,
    pub bug: Option<String>,
    pub liveness_bound_ms: Option<u64>,
    /// A sharded bank of this many shards (`--shards`).
    pub shards: Option<u32>,
}

/// Applies [`SweepKnobs`] the usual way.
pub fn apply_knobs(params: &mut SimParams, knobs: &SweepKnobs) {
    if let Some(ops) = knobs.ops {
        params.ops = ops;
    }
    if let Some(faults) = &knobs.faults {
        params.faults = faults.clone();
    }
    if let Some(bound) = knobs.liveness_bound_ms {
        params.liveness_bound_ms = bound;
    }
    params.bug = knobs.bug.clone();
    params.set_shards(knobs.shards);
}

/// What a sweep found.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub ran: u64,
    pub failing: Vec<SimSummary>,
    pub kept: Vec<PathBuf>,
    pub errors: Vec<String>,
    pub wall_s: f64,
    pub virtual_ms: u64,
}

impl SweepReport {
    /// 0 all valid, 1 some invalid, 2 some unknown, as a checked run.
    pub fn exit_code(&self) -> i32 {
        if self.failing.iter().any(|s| s.exit_code == 1) {
            1
        } else if !self.failing.is_empty() || !self.errors.is_empty() {
            2
        } else {
            0
        }
    }
}

/// The directory a kept seed goes to.
pub fn seed_dir(out: &Path, seed: u64) -> PathBuf {
    out.join(format!("sim-{seed}"))
}

/// Runs the sweep; `on_seed` is told about every finished seed (for progress output).
pub fn sweep(opts: &SweepOptions, on_seed: &(dyn Fn(&SimSummary) + Sync)) -> SweepReport {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let report = Mutex::new(SweepReport::default());
    let scratch = opts.out.join(".sim-scratch");
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                if k >= opts.seeds {
                    return;
                }
                let seed = opts.from_seed.wrapping_add(k);
                let result = one_seed(opts, seed, &scratch);
                let mut report = report.lock().unwrap_or_else(|p| p.into_inner());
                report.ran += 1;
                match result {
                    Ok((summary, kept)) => {
                        report.virtual_ms += summary.virtual_ms;
                        on_seed(&summary);
                        if let Some(dir) = kept {
                            report.kept.push(dir);
                        }
                        if summary.exit_code != 0 {
                            report.failing.push(summary);
                        }
                    }
                    Err(e) => report.errors.push(format!("seed {seed}: {e}")),
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    report.failing.sort_by_key(|s| s.seed);
    report.kept.sort();
    report.wall_s = started.elapsed().as_secs_f64();
    report
}

/// Simulates, judges and keeps (or drops) one seed.
fn one_seed(
    opts: &SweepOptions,
    seed: u64,
    scratch: &Path,
) -> Result<(SimSummary, Option<PathBuf>), SimError> {
    let mut params = SimParams::for_seed(seed, &opts.pins);
    apply_knobs(&mut params, &opts.knobs);
    let info = SimRunInfo::new(seed, params)?;
    let outcome = simulate(&info)?;
    let dir = scratch.join(seed.to_string());
    let mut summary = write_and_check(&dir, &info, &outcome, false)?;
    let keep = match opts.keep {
        Keep::All => true,
        Keep::Failing => summary.exit_code != 0,
        Keep::None => false,
    };
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok((summary, None));
    }
    let kept = seed_dir(&opts.out, seed);
    let _ = std::fs::remove_dir_all(&kept);
    std::fs::rename(&dir, &kept).map_err(|e| SimError::io(&kept, e))?;
    summary = write_and_check(&kept, &info, &outcome, true)?;
    Ok((summary, Some(kept)))
}
