//! `harness zoo`: proof that the harness has teeth.
//!
//! Each planted bug of the replica (built with `--features bugs`, binary `replica-bugs`) gets
//! short seeded campaigns with the faults most likely to expose it, until one is found invalid
//! or the bug's run budget is spent. The same campaigns without any bug must all pass, or the
//! detections mean nothing. The table says, per bug, how many runs and how long it took, which
//! checks caught it and where the failing report is.

use crate::faults::schedule::FaultFamily;
use crate::params::{RunParams, ShardParams};
use crate::run::rates::{RateRow, RateTable};
use crate::run::run_in_campaign;
use crate::run::shared::{RunError, RunOptions, RunSummary};
use checker::{Results, Validity};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A planted bug and the campaign that should expose it.
#[derive(Clone, Debug)]
pub struct Profile {
    /// The replica's `--bug` name.
    pub bug: &'static str,
    pub faults: &'static [FaultFamily],
    /// Checks that may legitimately be the first to see it.
    pub expected_checks: &'static [&'static str],
    /// Why these faults: printed in the table's notes.
    pub why: &'static str,
    /// A checkpoint interval for the campaign (None: the replica's default). A long one leaves
    /// more of the log to the WAL, which is what `forget-promises` fails to keep.
    pub checkpoint_interval_slots: Option<u64>,
    /// A sharded bank of this many shards of three replicas (None: the classic cluster).
    pub shards: Option<u32>,
}

use FaultFamily::{CrashCoordinator, Election, Kill, Partition, Pause};

/// The zoo: every bug the replica can plant, with the campaign that hunts it. The two-phase
/// commit bugs run on a sharded bank (3 shards of 3 replicas, half the transfers crossing).
pub const PROFILES: &[Profile] = &[
    Profile {
        bug: "no-dedup",
        faults: &[Partition, Pause],
        expected_checks: &["exactly-once", "replay", "conservation"],
        why: "lost replies make clients retry; a retry executes again",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "no-funds-check",
        faults: &[],
        expected_checks: &["conservation", "replay"],
        why: "random transfers soon overdraw some account",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "local-reads",
        faults: &[Partition, Pause],
        expected_checks: &["replay", "total-order"],
        why: "a lagging or cut-off replica answers reads from old state",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "stale-leader",
        faults: &[Partition],
        expected_checks: &["replay", "total-order"],
        why: "an isolated old leader keeps answering reads",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "early-commit",
        faults: &[Partition, Kill],
        expected_checks: &["exactly-once", "replay", "agreement", "total-order"],
        why: "an isolated leader acknowledges what no majority holds",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "no-view-merge",
        faults: &[Kill, Partition, Election],
        expected_checks: &["exactly-once", "replay", "agreement", "total-order"],
        why: "a new leader (a replica that lagged, elected right after the heal) overwrites \
              values the old majority accepted",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "forget-promises",
        faults: &[Kill],
        expected_checks: &["exactly-once", "replay", "agreement", "total-order"],
        why: "killed replicas come back having forgotten their votes",
        checkpoint_interval_slots: Some(100_000),
        shards: None,
    },
    Profile {
        bug: "stuck-leader",
        faults: &[],
        expected_checks: &["progress", "liveness"],
        why: "the leader stops proposing but keeps heartbeating: no ok with every replica up",
        checkpoint_interval_slots: None,
        shards: None,
    },
    Profile {
        bug: "recovery-aborts",
        faults: &[Kill, CrashCoordinator],
        expected_checks: &["atomicity", "bank-conservation"],
        why: "a coordinator's new leader aborts a transaction already decided commit",
        checkpoint_interval_slots: None,
        shards: Some(3),
    },
    Profile {
        bug: "apply-at-prepare",
        faults: &[Partition],
        expected_checks: &["atomicity", "bank-conservation"],
        why: "lock conflicts and cut shards abort prepared transfers already applied",
        checkpoint_interval_slots: None,
        shards: Some(3),
    },
    Profile {
        bug: "misread-log",
        faults: &[Kill],
        expected_checks: &["exactly-once", "replay", "agreement", "total-order"],
        why: "restarted replicas cut their own WAL to nothing and forget their votes",
        checkpoint_interval_slots: Some(100_000),
        shards: None,
    },
    Profile {
        bug: "keep-locks-on-abort",
        faults: &[Partition],
        expected_checks: &["liveness"],
        why: "an aborted transfer's locks outlive the heal: a stall",
        checkpoint_interval_slots: None,
        shards: Some(3),
    },
];

/// What `harness zoo` was asked to do.
#[derive(Clone, Debug)]
pub struct ZooOptions {
    pub out: PathBuf,
    /// A replica built with `--features bugs`.
    pub replica_bin: PathBuf,
    pub seed: u64,
    /// Most campaigns per bug before it counts as undetected.
    pub runs_per_bug: u32,
    /// Workload time of one campaign.
    pub time_ms: u64,
    pub nemesis_interval_ms: u64,
    /// Only these bugs (all when empty).
    pub only: Vec<String>,
    /// Also run every profile's campaign once without a bug.
    pub clean_runs: bool,
    pub progress: bool,
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct ZooRow {
    /// The bug, or `none` for a clean control run of a profile's campaign.
    pub bug: String,
    pub faults: String,
    pub detected: bool,
    /// Runs made (the detecting one included).
    pub runs: u32,
    pub seconds: f64,
    /// Checks that found the run invalid.
    pub caught_by: Vec<String>,
    /// Whether one of the checks the bug should trip was among them.
    pub expected_check: bool,
    pub report: Option<PathBuf>,
    pub verdicts: Vec<String>,
}

impl ZooRow {
    /// A bug row passes when detected; a clean row when every run was valid.
    pub fn passed(&self) -> bool {
        if self.bug == "none" {
            self.verdicts.iter().all(|v| v == "valid")
        } else {
            self.detected
        }
    }
}

fn params_for(profile: &Profile, opts: &ZooOptions, bug: Option<&str>) -> RunParams {
    let shards = profile.shards.map(|shards| ShardParams {
        shards,
        replicas_per_shard: 3,
        cross_shard_share: 0.5,
        workload: None,
        lock_policy: replica::core::LockPolicy::default(),
        failpoints: None,
    });
    RunParams {
        nodes: shards.map_or(RunParams::default().nodes, |s| s.nodes()),
        shards,
        time_ms: opts.time_ms,
        nemesis: profile.faults.to_vec(),
        nemesis_interval_ms: opts.nemesis_interval_ms,
        bug: bug.map(str::to_string),
        // Short attempts make retries (and so the bugs that need them) common.
        attempt_timeout_ms: 300,
        op_timeout_ms: 5_000,
        checkpoint_interval_slots: profile.checkpoint_interval_slots,
        ..RunParams::default()
    }
}

fn faults_label(profile: &Profile) -> String {
    let names: Vec<String> = profile
        .faults
        .iter()
        .map(|f| {
            serde_json::to_value(f).map_or(format!("{f:?}"), |v| v.as_str().unwrap_or("").into())
        })
        .collect();
    let faults = if names.is_empty() {
        "none".to_string()
    } else {
        names.join(",")
    };
    match profile.shards {
        Some(shards) => format!("{faults} ({shards} shards)"),
        None => faults,
    }
}

/// Runs campaigns for `bug` (None: a clean control run) until one is invalid (unless `rate`
/// is kept: then all of them) or the budget is spent; every run is also tallied into `rate`.
async fn hunt(
    profile: &Profile,
    opts: &ZooOptions,
    bug: Option<&str>,
    budget: u32,
    mut rate: Option<&mut RateRow>,
) -> Result<ZooRow, RunError> {
    let started = Instant::now();
    let mut row = ZooRow {
        bug: bug.unwrap_or("none").to_string(),
        faults: faults_label(profile),
        detected: false,
        runs: 0,
        seconds: 0.0,
        caught_by: Vec::new(),
        expected_check: false,
        report: None,
        verdicts: Vec::new(),
    };
    for attempt in 0..budget {
        let mut run = RunOptions {
            params: params_for(profile, opts, bug),
            seed: opts.seed.wrapping_add(u64::from(attempt)),
            out: opts.out.clone(),
            replica_bin: opts.replica_bin.clone(),
            etcd_bin: std::path::PathBuf::from("etcd"),
            progress: opts.progress,
            keep_data: false,
        };
        // As `harness run` does by default: the replica's tunables (and a sharded run's
        // workload mix) drawn from the seed; the zoo's interval and checkpoint pinned.
        let pins = crate::faults::tunables::Pins {
            nemesis_interval_ms: Some(opts.nemesis_interval_ms),
            checkpoint_interval_slots: profile.checkpoint_interval_slots,
            ..Default::default()
        };
        crate::run::campaign::draw_tunables(&mut run, &pins);
        let summary = run_in_campaign(&run).await?;
        row.runs += 1;
        row.verdicts.push(summary.verdict.clone());
        eprintln!("zoo: {} seed {}: {}", row.bug, run.seed, summary.verdict);
        let checks = invalid_checks(&summary);
        if let Some(rate) = rate.as_deref_mut() {
            rate.tally(run.seed, summary.exit_code, &checks);
            continue;
        }
        if summary.exit_code == 1 {
            row.detected = true;
            row.caught_by = checks;
            row.expected_check = row
                .caught_by
                .iter()
                .any(|c| profile.expected_checks.contains(&c.as_str()));
            row.report = Some(summary.dir.join("report.html"));
            break;
        }
    }
    row.seconds = started.elapsed().as_secs_f64();
    Ok(row)
}

/// The checks results.json marks invalid.
fn invalid_checks(summary: &RunSummary) -> Vec<String> {
    let path = summary.dir.join("results.json");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Vec::new();
    };
    let Ok(results) = serde_json::from_str::<Results>(&text) else {
        return Vec::new();
    };
    results
        .checks
        .iter()
        .filter(|(_, c)| c.valid == Validity::Invalid)
        .map(|(name, _)| name.clone())
        .collect()
}

/// The profiles `opts` asks for, or an error naming the known bugs.
fn chosen_profiles(opts: &ZooOptions) -> Result<Vec<&'static Profile>, RunError> {
    let profiles: Vec<&Profile> = PROFILES
        .iter()
        .filter(|p| opts.only.is_empty() || opts.only.iter().any(|o| o == p.bug))
        .collect();
    if profiles.is_empty() {
        let known: Vec<&str> = PROFILES.iter().map(|p| p.bug).collect();
        return Err(RunError::Invalid(format!(
            "no such bug among {:?}; known: {}",
            opts.only,
            known.join(", ")
        )));
    }
    Ok(profiles)
}

/// One profile per distinct campaign (faults and shards): the clean controls to run.
fn control_profiles<'a>(profiles: &[&'a Profile]) -> Vec<&'a Profile> {
    let mut seen: Vec<String> = Vec::new();
    let mut controls = Vec::new();
    for profile in profiles {
        let label = faults_label(profile);
        if !seen.contains(&label) {
            seen.push(label);
            controls.push(*profile);
        }
    }
    controls
}

/// Runs the zoo; rows in table order (bugs, then clean controls).
pub async fn run_zoo(opts: &ZooOptions) -> Result<Vec<ZooRow>, RunError> {
    let profiles = chosen_profiles(opts)?;
    let mut rows = Vec::new();
    for profile in &profiles {
        rows.push(hunt(profile, opts, Some(profile.bug), opts.runs_per_bug, None).await?);
    }
    if opts.clean_runs {
        for profile in control_profiles(&profiles) {
            rows.push(hunt(profile, opts, None, 1, None).await?);
        }
    }
    write_zoo_files(&opts.out, &rows)?;
    Ok(rows)
}

/// `harness zoo --rate N`: `runs` campaigns of every chosen profile (seeds `opts.seed` on),
/// each judged and none stopping at a catch, then as many clean controls per distinct
/// campaign; the rate table is written to `rates.txt` and `rates.json` beside the runs.
pub async fn run_rates(
    opts: &ZooOptions,
    runs: u32,
    on_row: &dyn Fn(&RateRow),
) -> Result<RateTable, RunError> {
    let profiles = chosen_profiles(opts)?;
    let controls = if opts.clean_runs {
        control_profiles(&profiles)
    } else {
        Vec::new()
    };
    let rows = profiles
        .iter()
        .map(|p| (*p, Some(p.bug)))
        .chain(controls.into_iter().map(|p| (p, None)));
    let mut table = RateTable {
        world: "real".into(),
        from_seed: opts.seed,
        runs_per_row: u64::from(runs),
        rows: Vec::new(),
    };
    for (profile, bug) in rows {
        let mut rate = RateRow::new(
            bug.map(str::to_string),
            profile.shards,
            Some(faults_label(profile)),
        );
        hunt(profile, opts, bug, runs, Some(&mut rate)).await?;
        on_row(&rate);
        table.rows.push(rate);
    }
    table.write(&opts.out).map_err(|source| RunError::Write {
        path: opts.out.join("rates.json"),
        cause: source,
    })?;
    crate::run::index::write_index(&opts.out).map_err(|source| RunError::Write {
        path: opts.out.join("index.html"),
        cause: source,
    })?;
    Ok(table)
}

/// The table as text, one row per line.
pub fn render_table(rows: &[ZooRow]) -> String {
    let mut out = format!(
        "{:<20} {:<34} {:<10} {:>5} {:>8}  {:<34} {}\n",
        "bug", "faults", "result", "runs", "seconds", "caught by", "report"
    );
    for row in rows {
        let result = match (row.bug == "none", row.passed()) {
            (true, true) => "clean",
            (true, false) => "FALSE+",
            (false, true) => "caught",
            (false, false) => "MISSED",
        };
        let caught = if row.caught_by.is_empty() {
            "-".to_string()
        } else {
            row.caught_by.join(",")
        };
        let report = row
            .report
            .as_ref()
            .map_or("-".to_string(), |p| p.display().to_string());
        out.push_str(&format!(
            "{:<20} {:<34} {:<10} {:>5} {:>8.1}  {:<34} {}\n",
            row.bug, row.faults, result, row.runs, row.seconds, caught, report
        ));
    }
    out
}

fn write_zoo_files(out: &Path, rows: &[ZooRow]) -> Result<(), RunError> {
    let path = out.join("zoo.json");
    crate::run::shared::write_json(&path, &rows)?;
    let table = out.join("zoo.txt");
    std::fs::write(&table, render_table(rows)).map_err(|source| RunError::Write {
        path: table,
        cause: source,
    })?;
    crate::run::index::write_index(out).map_err(|source| RunError::Write {
        path: out.join("index.html"),
        cause: source,
    })
}

/// `replica-bugs` beside the replica binary the harness would use.
pub fn default_bugs_bin() -> PathBuf {
    let normal = crate::run::rundir::default_replica_bin();
    normal.with_file_name("replica-bugs")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_profile_names_a_distinct_bug_with_expected_checks() {
        let mut names: Vec<&str> = PROFILES.iter().map(|p| p.bug).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), PROFILES.len());
        assert!(PROFILES.len() >= 7);
        for p in PROFILES {
            assert!(!p.expected_checks.is_empty(), "{}", p.bug);
            for c in p.expected_checks {
                assert!(
                    checker::checks::CHECK_NAMES.contains(c),
                    "{} expects unknown check {c}",
                    p.bug
                );
            }
        }
    }

    #[test]
    fn rows_pass_when_bugs_are_caught_and_controls_are_clean() {
        let row = |bug: &str, detected, verdicts: &[&str]| ZooRow {
            bug: bug.into(),
            faults: "kill".into(),
            detected,
            runs: 1,
            seconds: 1.0,
            caught_by: vec![],
            expected_check: false,
            report: None,
            verdicts: verdicts.iter().map(|v| v.to_string()).collect(),
        };
        assert!(row("no-dedup", true, &["invalid"]).passed());
        assert!(!row("no-dedup", false, &["valid", "valid"]).passed());
        assert!(row("none", false, &["valid"]).passed());
        assert!(!row("none", true, &["invalid"]).passed());
        let table = render_table(&[row("no-dedup", false, &["valid"])]);
        assert!(table.contains("MISSED"), "{table}");
    }
}
