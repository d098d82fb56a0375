//! `harness zoo --sim`: every planted bug hunted in simulation, each within a stated number
//! of seeds, and the same seeds without a bug as the clean control.
//!
//! Simulation makes the zoo fast and exact: a bug's row names the first seed that caught it,
//! and `harness replay` of that seed's run directory shows it again, byte for byte.
//!
//! The two-phase commit bugs (`SHARDED_BUG_NAMES`) can only show on a sharded bank: they are
//! hunted on seeds of [`SimZooOptions::shards`] shards, with a sharded clean control beside the
//! classic one.

use super::sweep::{apply_knobs, seed_dir, sweep, Keep, SweepKnobs, SweepOptions};
use super::{simulate, write_and_check, SimParams, SimRunInfo, SimSummary};
use crate::faults::tunables::Pins;
use crate::run::rates::{RateRow, RateTable};
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
    /// Shards of the runs that hunt the two-phase commit bugs (and of their control).
    pub shards: u32,
}

/// One row of the table.
#[derive(Clone, Debug)]
pub struct SimZooRow {
    pub bug: Option<String>,
    /// The shards of its runs (`None`: the classic cluster).
    pub shards: Option<u32>,
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

/// Hunts each bug, then runs the clean control: the classic bugs on the classic cluster, the
/// two-phase commit bugs (`SHARDED_BUG_NAMES`: recovery-aborts, apply-at-prepare,
/// keep-locks-on-abort) on a sharded bank, where alone they can show.
pub fn run_zoo(opts: &SimZooOptions) -> Result<Vec<SimZooRow>, super::SimError> {
    let mut rows = Vec::new();
    let all = shapes(opts);
    let total = all.len();
    for (k, (bug, shards)) in all.into_iter().enumerate() {
        // One line per hunt on stderr, so the sweep is never silent for long.
        let what = bug.as_deref().unwrap_or("no bug (control)").to_string();
        let shape = shards.map_or("classic".to_string(), |s| format!("{s} shards"));
        eprint!("zoo --sim {}/{total}: {what}, {shape} ... ", k + 1);
        let row = hunt(opts, bug, shards)?;
        match &row.caught_by {
            Some(s) => eprintln!("caught by seed {} ({})", s.seed, s.verdict),
            None => eprintln!(
                "nothing caught in {}",
                checker::text::count(row.seeds_tried, "seed")
            ),
        }
        rows.push(row);
    }
    let table = render_table(&rows);
    std::fs::create_dir_all(&opts.out).map_err(|e| super::SimError::io(&opts.out, e))?;
    let path = opts.out.join("zoo-sim.txt");
    std::fs::write(&path, &table).map_err(|e| super::SimError::io(&path, e))?;
    Ok(rows)
}

/// The zoo's rows in table order: the classic bugs, the two-phase commit bugs on a sharded
/// bank, then a clean control for each shape whose bugs were hunted (both when none were
/// chosen).
fn shapes(opts: &SimZooOptions) -> Vec<(Option<String>, Option<u32>)> {
    let wanted = |b: &&&str| opts.only.is_empty() || opts.only.iter().any(|o| o == **b);
    let sharded = Some(opts.shards).filter(|&s| s > 1);
    let classic: Vec<_> = BUG_NAMES
        .iter()
        .filter(|b| !SHARDED_BUG_NAMES.contains(b))
        .filter(&wanted)
        .map(|b| (Some(b.to_string()), None))
        .collect();
    let two_phase: Vec<_> = SHARDED_BUG_NAMES
        .iter()
        .filter(&wanted)
        .filter(|_| sharded.is_some())
        .map(|b| (Some(b.to_string()), sharded))
        .collect();
    let everything = opts.only.is_empty();
    let controls = [
        (everything || !classic.is_empty()).then_some((None, None)),
        sharded
            .filter(|_| everything || !two_phase.is_empty())
            .map(|s| (None, Some(s))),
    ];
    classic
        .into_iter()
        .chain(two_phase)
        .chain(controls.into_iter().flatten())
        .collect()
}

fn hunt(
    opts: &SimZooOptions,
    bug: Option<String>,
    shards: Option<u32>,
) -> Result<SimZooRow, super::SimError> {
    let knobs = SweepKnobs {
        ops: opts.ops,
        bug: bug.clone(),
        shards,
        ..SweepKnobs::default()
    };
    let out = row_dir(opts, bug.as_deref(), shards);
    let mut row = SimZooRow {
        bug,
        shards,
        seeds_tried: 0,
        caught_by: None,
    };
    for k in 0..opts.seeds_per_bug {
        let seed = opts.from_seed + k;
        let mut params = SimParams::for_seed(seed, &Pins::default(), knobs.shards);
        apply_knobs(&mut params, &knobs);
        let info = SimRunInfo::new(seed, params)?;
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

/// Where a row's seeds are written.
fn row_dir(opts: &SimZooOptions, bug: Option<&str>, shards: Option<u32>) -> PathBuf {
    let name = bug.unwrap_or("none");
    match shards {
        Some(s) => opts.out.join(format!("{name}-{s}-shards")),
        None => opts.out.join(name),
    }
}

/// `harness zoo --sim --rate N`: `seeds` seeds for every row of the zoo, each row one plain
/// sweep (the seeds `harness sim --bug B --from-seed S --seeds N` would run), tallied into the
/// rate table, which is also written to `rates.txt` and `rates.json` in the zoo's directory.
/// Seeds are judged and dropped: the table names the failing ones, to rerun.
pub fn run_rates(
    opts: &SimZooOptions,
    seeds: u64,
    jobs: usize,
    on_row: &dyn Fn(&RateRow),
) -> Result<RateTable, super::SimError> {
    let shapes = shapes(opts);
    if shapes.is_empty() {
        return Err(super::SimError::UnknownBug(opts.only.join(",")));
    }
    let mut table = RateTable {
        world: "sim".into(),
        from_seed: opts.from_seed,
        runs_per_row: seeds,
        rows: Vec::new(),
    };
    for (bug, shards) in shapes {
        let sweep_opts = SweepOptions {
            from_seed: opts.from_seed,
            seeds,
            out: row_dir(opts, bug.as_deref(), shards),
            keep: Keep::None,
            jobs,
            pins: Pins::default(),
            knobs: SweepKnobs {
                ops: opts.ops,
                bug: bug.clone(),
                shards,
                ..SweepKnobs::default()
            },
            progress: false,
            name: None,
        };
        let report = sweep(&sweep_opts, &|_| {});
        // Nothing is kept: leave no empty directory behind.
        let _ = std::fs::remove_dir(&sweep_opts.out);
        let mut row = RateRow::new(bug, shards, None);
        // The sweep hands back only the seeds that were not valid: the others were valid.
        row.errors = report.errors.len() as u64;
        row.runs = report.ran - row.errors - report.failing.len() as u64;
        for failing in &report.failing {
            row.tally(failing.seed, failing.exit_code, &checks_of(failing));
        }
        on_row(&row);
        table.rows.push(row);
    }
    table
        .write(&opts.out)
        .map_err(|e| super::SimError::io(&opts.out, e))?;
    Ok(table)
}

/// The table printed and written to `zoo-sim.txt`.
pub fn render_table(rows: &[SimZooRow]) -> String {
    let mut out = format!(
        "{:<20} {:<6} {:<8} {:>6} {:>6}  {}\n",
        "bug", "shards", "result", "seed", "tried", "caught by"
    );
    for row in rows {
        let name = row.bug.as_deref().unwrap_or("none");
        let shards = row
            .shards
            .map_or_else(|| "-".to_string(), |s| s.to_string());
        let (result, seed, checks) = match (&row.bug, &row.caught_by) {
            (Some(_), Some(s)) => ("caught", s.seed.to_string(), caught_by(s)),
            (Some(_), None) => ("MISSED", "-".into(), "-".into()),
            (None, None) => ("clean", "-".into(), "-".into()),
            (None, Some(s)) => ("FAILED", s.seed.to_string(), caught_by(s)),
        };
        let _ = writeln!(
            out,
            "{name:<20} {shards:<6} {result:<8} {seed:>6} {:>6}  {checks}",
            row.seeds_tried
        );
    }
    out
}

fn caught_by(summary: &SimSummary) -> String {
    checks_of(summary).join(",")
}

/// The checks a seed failed, and `world` when the simulated world saw acknowledged data lost.
fn checks_of(summary: &SimSummary) -> Vec<String> {
    let mut checks = summary.failed_checks.clone();
    if !summary.world_violations.is_empty() {
        checks.push("world".into());
    }
    checks
}
