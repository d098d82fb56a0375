//! `harness zoo --sim`: every planted bug hunted in simulation, each within a stated number
//! of seeds, and the same seeds without a bug as the clean control.
//!
//! Simulation makes the zoo fast and exact: a bug's row names the first seed that caught it,
//! and `harness replay` of that seed's run directory shows it again, byte for byte.

use super::sweep::{apply_knobs, seed_dir, SweepKnobs};
use super::{simulate, write_and_check, SimParams, SimRunInfo, SimSummary};
use crate::faults::tunables::Pins;
use replica::core::config::{BUG_NAMES, SHARDED_BUG_NAMES};
use std::fmt::Write as _;
use std::path::PathBuf;

/// A zoo in simulation.
#[derive(Clone, Debug)]
pub struct SimZooOptions {
    pub out: PathBuf,
    pub from_seed: u64,
    /// Most seeds per bug before it counts as missed (and seeds of the clean control).
    pub seeds_per_bug: u64,
    pub only: Vec<String>,
    pub ops: Option<u64>,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct SimZooRow {
    pub bug: Option<String>,
    pub seeds_tried: u64,
    /// The first seed whose run was not valid.
    pub caught_by: Option<SimSummary>,
}

impl SimZooRow {
    /// A bug row passes when caught; the clean row when nothing was.
    pub fn passed(&self) -> bool {
        self.bug.is_some() == self.caught_by.is_some()
    }
}

/// Hunts each bug, then runs the clean control. The two-phase commit bugs
/// (`SHARDED_BUG_NAMES`: recovery-aborts, apply-at-prepare, keep-locks-on-abort) need
/// --shards: the simulator runs one unsharded group, where they can never show.
pub fn run_zoo(opts: &SimZooOptions) -> Result<Vec<SimZooRow>, super::SimError> {
    let bugs: Vec<String> = BUG_NAMES
        .iter()
        .filter(|b| !SHARDED_BUG_NAMES.contains(b))
        .map(|b| b.to_string())
        .filter(|b| opts.only.is_empty() || opts.only.contains(b))
        .collect();
    let mut rows = Vec::new();
    for bug in bugs.into_iter().map(Some).chain([None]) {
        rows.push(hunt(opts, bug)?);
    }
    let table = render_table(&rows);
    std::fs::create_dir_all(&opts.out).map_err(|e| super::SimError::io(&opts.out, e))?;
    let path = opts.out.join("zoo-sim.txt");
    std::fs::write(&path, &table).map_err(|e| super::SimError::io(&path, e))?;
    Ok(rows)
}

fn hunt(opts: &SimZooOptions, bug: Option<String>) -> Result<SimZooRow, super::SimError> {
    let knobs = SweepKnobs {
        ops: opts.ops,
        bug: bug.clone(),
        ..SweepKnobs::default()
    };
    let name = bug.clone().unwrap_or_else(|| "none".into());
    let out = opts.out.join(&name);
    let mut row = SimZooRow {
        bug,
        seeds_tried: 0,
        caught_by: None,
    };
    for k in 0..opts.seeds_per_bug {
        let seed = opts.from_seed + k;
        let mut params = SimParams::for_seed(seed, &Pins::default());
        apply_knobs(&mut params, &knobs);
        let info = SimRunInfo::new(seed, params);
        let outcome = simulate(&info)?;
        row.seeds_tried += 1;
        let dir = seed_dir(&out, seed);
        let summary = write_and_check(&dir, &info, &outcome, false)?;
        if summary.exit_code != 0 {
            // Keep the catch with its report; a clean control's failure is kept the same way.
            row.caught_by = Some(write_and_check(&dir, &info, &outcome, true)?);
            break;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(row)
}

/// The table printed and written to `zoo-sim.txt`.
pub fn render_table(rows: &[SimZooRow]) -> String {
    let mut out = format!(
        "{:<16} {:<8} {:>6} {:>6}  {}\n",
        "bug", "result", "seed", "tried", "caught by"
    );
    for row in rows {
        let name = row.bug.as_deref().unwrap_or("none");
        let (result, seed, checks) = match (&row.bug, &row.caught_by) {
            (Some(_), Some(s)) => ("caught", s.seed.to_string(), caught_by(s)),
            (Some(_), None) => ("MISSED", "-".into(), "-".into()),
            (None, None) => ("clean", "-".into(), "-".into()),
            (None, Some(s)) => ("FAILED", s.seed.to_string(), caught_by(s)),
        };
        let _ = writeln!(
            out,
            "{name:<16} {result:<8} {seed:>6} {:>6}  {checks}",
            row.seeds_tried
        );
    }
    out
}

fn caught_by(summary: &SimSummary) -> String {
    let mut checks = summary.failed_checks.join(",");
    if !summary.world_violations.is_empty() {
        if !checks.is_empty() {
            checks.push(',');
        }
        checks.push_str("world");
    }
    checks
}
