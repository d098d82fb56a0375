//! `harness zoo --rate N`: the harness's figure of merit, the share of seeds (simulated) or
//! runs (real) that catch each planted bug, and which checks do.
//!
//! A first catch says a bug can be found; a rate says how often, which is what a night of
//! campaigns on one box depends on. Both zoos tally their runs into the same [`RateRow`]s, so
//! the table (`rates.txt`) and its machine-readable twin (`rates.json`) read the same in both
//! worlds. A clean control's row counts false alarms: every run of it that was not valid.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

/// One bug (or clean control) measured over many seeds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RateRow {
    /// The planted bug; `None` for a clean control.
    pub bug: Option<String>,
    /// Shards of its runs (`None`: the classic cluster).
    pub shards: Option<u32>,
    /// The faults of a real zoo's profile (`None` in simulation: each seed draws its own).
    pub faults: Option<String>,
    /// Seeds (runs) judged.
    pub runs: u64,
    /// Runs found invalid.
    pub invalid: u64,
    /// Runs whose verdict was unknown.
    pub unknown: u64,
    /// Seeds that could not be run or judged (harness errors).
    pub errors: u64,
    /// For each check, the runs it did not pass (`world`: the simulated world saw acknowledged
    /// data lost).
    pub checks: BTreeMap<String, u64>,
    /// The seeds whose runs were not valid, in order: rerun any of them to see the catch.
    pub failing_seeds: Vec<u64>,
}

impl RateRow {
    pub fn new(bug: Option<String>, shards: Option<u32>, faults: Option<String>) -> Self {
        RateRow {
            bug,
            shards,
            faults,
            ..RateRow::default()
        }
    }

    /// Counts one judged run: its seed, exit code (0 valid, 1 invalid, 2 unknown) and the checks
    /// that did not pass.
    pub fn tally(&mut self, seed: u64, exit_code: i32, checks: &[String]) {
        self.runs += 1;
        match exit_code {
            0 => return,
            1 => self.invalid += 1,
            _ => self.unknown += 1,
        }
        self.failing_seeds.push(seed);
        for check in checks {
            *self.checks.entry(check.clone()).or_default() += 1;
        }
    }

    /// The share of runs that caught the bug (found it invalid), 0 to 1.
    pub fn catch_rate(&self) -> f64 {
        self.invalid as f64 / self.runs.max(1) as f64
    }

    /// A bug row passes when some run caught it; a clean control when no run raised an alarm.
    pub fn passed(&self) -> bool {
        let clean = self.errors == 0;
        match self.bug {
            Some(_) => clean && self.invalid > 0,
            None => clean && self.invalid == 0 && self.unknown == 0,
        }
    }

    fn name(&self) -> &str {
        self.bug.as_deref().unwrap_or("none")
    }
}

/// A whole rate measurement, as written to `rates.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RateTable {
    /// `sim` or `real`.
    pub world: String,
    /// The first seed of every row; a row's seeds are `from_seed..from_seed + runs`.
    pub from_seed: u64,
    /// Runs asked per row.
    pub runs_per_row: u64,
    pub rows: Vec<RateRow>,
}

impl RateTable {
    /// Exit code of the measurement: 0 when every bug was caught at least once and every clean
    /// control was clean, 1 otherwise.
    pub fn exit_code(&self) -> i32 {
        if self.rows.iter().all(RateRow::passed) {
            0
        } else {
            1
        }
    }

    /// The table, one row per bug then the clean controls.
    pub fn render(&self) -> String {
        let mut out = format!(
            "{:<20} {:<6} {:>9} {:>6} {:>7} {:>6}  {}\n",
            "bug", "shards", "caught", "rate", "unknown", "errors", "checks (runs each)"
        );
        for row in &self.rows {
            let shards = row.shards.map_or_else(|| "-".into(), |s| s.to_string());
            let checks: Vec<String> = row.checks.iter().map(|(c, n)| format!("{c} {n}")).collect();
            let mut checks = if checks.is_empty() {
                "-".to_string()
            } else {
                checks.join(", ")
            };
            if let Some(faults) = &row.faults {
                checks = format!("{checks}  [faults: {faults}]");
            }
            let verdict = match (&row.bug, row.passed()) {
                (Some(_), true) | (None, true) => "",
                (Some(_), false) => "  MISSED",
                (None, false) => "  FALSE ALARM",
            };
            let _ = writeln!(
                out,
                "{:<20} {shards:<6} {:>9} {:>5.0}% {:>7} {:>6}  {checks}{verdict}",
                row.name(),
                format!("{}/{}", row.invalid, row.runs),
                row.catch_rate() * 100.0,
                row.unknown,
                row.errors,
            );
        }
        out
    }

    /// Writes `rates.txt` and `rates.json` into `dir`.
    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(dir.join("rates.txt"), self.render())?;
        let json = serde_json::to_string_pretty(self).map_err(std::io::Error::other)?;
        std::fs::write(dir.join("rates.json"), json + "\n")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checks(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_row_counts_catches_checks_and_failing_seeds() {
        let mut row = RateRow::new(Some("no-dedup".into()), None, None);
        row.tally(1, 1, &checks(&["exactly-once", "replay"]));
        row.tally(2, 0, &[]);
        row.tally(3, 2, &checks(&["liveness"]));
        row.tally(4, 1, &checks(&["exactly-once"]));
        assert_eq!((row.runs, row.invalid, row.unknown), (4, 2, 1));
        assert_eq!(row.failing_seeds, vec![1, 3, 4]);
        assert_eq!(row.checks["exactly-once"], 2);
        assert_eq!(row.checks["liveness"], 1);
        assert!((row.catch_rate() - 0.5).abs() < 1e-9);
        assert!(row.passed());
    }

    #[test]
    fn a_clean_control_with_any_alarm_fails_the_table() {
        let mut clean = RateRow::new(None, None, None);
        clean.tally(1, 0, &[]);
        let mut table = RateTable {
            world: "sim".into(),
            from_seed: 1,
            runs_per_row: 1,
            rows: vec![clean.clone()],
        };
        assert_eq!(table.exit_code(), 0);
        clean.tally(2, 2, &checks(&["liveness"]));
        table.rows = vec![clean];
        assert_eq!(table.exit_code(), 1);
        assert!(table.render().contains("FALSE ALARM"), "{}", table.render());
        let missed = RateRow::new(Some("stale-leader".into()), None, None);
        table.rows = vec![missed];
        assert_eq!(table.exit_code(), 1);
        assert!(table.render().contains("MISSED"));
    }
}
