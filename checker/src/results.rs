//! `results.json`: the verdict, one section per check, and what was read.
//!
//! This is what the checker hands back (in-process as [`Results`], on disk as JSON),
//! and what the report is drawn from. `valid` is `true`, `false` or `"unknown"`.
//! The words for a terminal ([`Results::summary`], [`Results::cause_line`]) are the
//! report's, in `crate::report::cause`.
//! Every field: docs/results.md.

use crate::checks::{CheckResult, Validity, CHECK_NAMES};
use crate::final_state::Positions;
use crate::ops::HistoryStats;
use crate::text::count;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// File name of the results beside the history.
pub const RESULTS_FILE: &str = "results.json";

/// The outcome of checking one run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Results {
    /// Invalid if any check is invalid, else unknown if any is unknown, else valid.
    pub valid: Validity,
    /// The run directory that was checked.
    pub run_dir: String,
    pub history: HistoryStats,
    pub final_state: FinalSummary,
    /// Things a person should know that do not change the verdict (e.g. a cut-off
    /// last line).
    pub warnings: Vec<String>,
    /// One section per check, keyed by name (see [`CHECK_NAMES`]).
    pub checks: BTreeMap<String, CheckResult>,
    /// Wall time of parsing and checking.
    pub elapsed_ms: u64,
}

/// What final.json held.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FinalSummary {
    pub present: bool,
    pub nodes: Vec<NodeSummary>,
    /// Highest exec index any replica reached (0 if none).
    pub log_last: u64,
    /// First exec index no replica covers, if any.
    pub log_first_gap: Option<u64>,
    /// What an exec index means (final.json's `"positions"`); left out when unique,
    /// so replica runs' results.json stay as they were.
    #[serde(default, skip_serializing_if = "Positions::is_unique")]
    pub positions: Positions,
}

/// One replica in final.json.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeSummary {
    pub name: String,
    pub first_exec: u64,
    pub last_exec: u64,
    pub entries: u64,
    pub balances_fetched: bool,
    /// Its final balances by account, when fetched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<BTreeMap<String, i64>>,
    /// Earlier journal stretches of its log the harness saved apart (final.json entries
    /// named `n1:1-14274`), counted in `first_exec`..`last_exec` and `entries`.
    #[serde(default)]
    pub stretches: u64,
    /// The exec index ranges it holds, merged where they touch: more than one when it
    /// skipped a stretch of the log by installing a snapshot.
    #[serde(default)]
    pub ranges: Vec<(u64, u64)>,
    pub error: Option<String>,
}

impl Results {
    /// A check's results, valid as its sections combine; the caller names the run
    /// directory and the time taken.
    pub fn judged(
        history: HistoryStats,
        final_state: FinalSummary,
        warnings: Vec<String>,
        checks: BTreeMap<String, CheckResult>,
    ) -> Results {
        Results {
            valid: Validity::combine(checks.values().map(|c| c.valid)),
            run_dir: String::new(),
            history,
            final_state,
            warnings,
            checks,
            elapsed_ms: 0,
        }
    }

    /// The section for `name`, e.g. `"replay"`.
    pub fn check(&self, name: &str) -> Option<&CheckResult> {
        self.checks.get(name)
    }

    /// 0 valid, 1 invalid, 2 unknown.
    pub fn exit_code(&self) -> i32 {
        self.valid.exit_code()
    }

    /// Writes `results.json` into `dir`.
    pub fn write_json(&self, dir: &Path) -> io::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(dir.join(RESULTS_FILE), text + "\n")
    }

    /// Reads a `results.json`.
    pub fn read_json(path: &Path) -> io::Result<Results> {
        let text = std::fs::read_to_string(path)?;
        serde_json::from_str(&text).map_err(io::Error::from)
    }

    /// Checks in display order: the known ones in [`CHECK_NAMES`] order, then any other
    /// check results.json holds (a newer checker's), by name, so none is ever left out.
    pub fn ordered_checks(&self) -> impl Iterator<Item = (&str, &CheckResult)> {
        let known = CHECK_NAMES
            .iter()
            .filter_map(|n| self.checks.get_key_value(*n));
        let others = self
            .checks
            .iter()
            .filter(|(n, _)| !CHECK_NAMES.contains(&n.as_str()));
        known.chain(others).map(|(n, c)| (n.as_str(), c))
    }
}

/// ` (+ 5 harness final reads)` when the harness ran processes of its own.
pub fn internal_note(internal: u64) -> String {
    match internal {
        0 => String::new(),
        n => format!(" (+ {})", count(n, "harness final read")),
    }
}
