//! `harness replay <run-dir>`: the same seed, parameters, generated operations and fault
//! schedule again, against a fresh cluster, in a new run directory beside the old one.
//!
//! Everything random derives from the seed (see [`crate::rng`]), so reading run.toml is enough
//! to regenerate the schedule, each client's operations and the drawn tunables; timing, and so
//! the interleaving, is the system's and will differ. So a replay of a real run says what it
//! compared with the original (verdict, operations, faults) and calls itself reproduced only
//! when the two runs are comparable: the same verdict from a workload of the same order (at
//! most twice or half the operations) and about the same number of faults. An interactive
//! scenario replays what its operator typed (its `prompt.jsonl`); where that was not recorded,
//! or the original was interrupted, the replay is "not comparable", never "reproduced". Only a
//! simulated run (`harness sim`) replays exactly.

use crate::params::TargetKind;
use crate::run::run_in_campaign;
use crate::run::rundir::RunInfo;
use crate::run::shared::{RunError, RunOptions, RunSummary};
use crate::run::store::Outcome;
use crate::scenario::run::{
    load_prompt_log, run_scenario, ScenarioOptions, PROMPT_FILE, SCRIPT_ENDED,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The binaries and target of a replay.
#[derive(Clone, Debug, Default)]
pub struct Binaries {
    /// Overrides the replica binary recorded in run.toml.
    pub replica: Option<PathBuf>,
    /// The etcd binary, for etcd runs.
    pub etcd: PathBuf,
    /// Overrides the run's target.
    pub target: Option<TargetKind>,
}

/// Replays the run in `dir`; `out` is the reports directory the new run goes to (default:
/// the original's).
pub async fn replay(
    dir: &Path,
    binaries: Binaries,
    out: Option<PathBuf>,
    progress: bool,
) -> Result<RunSummary, RunError> {
    let summary = run_again(dir, binaries, out, progress).await?;
    // The new run.toml names the run it replays.
    let mut info = RunInfo::load(&summary.dir)?;
    info.replays = Some(dir.display().to_string());
    info.write(&summary.dir)?;
    Ok(summary)
}

/// A replay's operations may be half to twice the original's and still be compared.
const OPERATIONS_FACTOR: f64 = 2.0;

/// Why a replay cannot be compared with its original, if it cannot: `unfaithful` is what the
/// replay itself could not repeat (unrecorded prompt commands, a differing history).
fn incomparable(original: &Outcome, now: &Outcome, unfaithful: Option<&str>) -> Option<String> {
    if let Some(why) = unfaithful {
        return Some(why.to_string());
    }
    if original.reason.is_some() || now.reason.is_some() {
        let which = if original.reason.is_some() {
            "the original"
        } else {
            "the replay"
        };
        return Some(format!("{which} was interrupted"));
    }
    let (Some(was), Some(is)) = (original.operations, original.faults) else {
        return Some("the original's harness.json does not give its operations and faults".into());
    };
    let (ops, faults) = (now.operations.unwrap_or(0), now.faults.unwrap_or(0));
    let ratio = ops.max(1) as f64 / was.max(1) as f64;
    if !(1.0 / OPERATIONS_FACTOR..=OPERATIONS_FACTOR).contains(&ratio) {
        let (factor, word) = if ratio < 1.0 {
            (1.0 / ratio, "fewer")
        } else {
            (ratio, "more")
        };
        return Some(format!("the replay ran {factor:.1}× {word} operations"));
    }
    if faults.abs_diff(is) > (is / 4).max(1) {
        return Some(format!(
            "the replay injected {faults} faults, the original {is}"
        ));
    }
    None
}

/// What a replay compared with its original, and its conclusion: `reproduced`, `not
/// reproduced`, or `not comparable` (with why). Never "reproduced" for a replay that was not
/// faithful or ran a different amount of work.
pub fn reproduction_line(
    original: Option<&Outcome>,
    now: &Outcome,
    unfaithful: Option<&str>,
) -> String {
    let Some(original) = original else {
        return format!(
            "verdict {}; the original's outcome is unknown (no harness.json or results.json): not comparable",
            now.verdict
        );
    };
    let number = |n: Option<u64>| n.map_or_else(|| "?".to_string(), |n| n.to_string());
    let compared = format!(
        "compared with the original: verdict {} (was {}), operations {} (was {}), faults {} (was {})",
        now.verdict,
        original.verdict,
        number(now.operations),
        number(original.operations),
        number(now.faults),
        number(original.faults),
    );
    let conclusion = match incomparable(original, now, unfaithful) {
        Some(why) => format!("not comparable ({why})"),
        None if original.verdict == now.verdict => "reproduced".to_string(),
        None => "not reproduced".to_string(),
    };
    format!("{compared}: {conclusion}")
}

/// Why replaying `dir` cannot repeat what happened in it, if it cannot: an interactive
/// scenario whose prompt commands were not recorded (a run made before `prompt.jsonl`).
pub fn unfaithful_before(dir: &Path) -> Option<String> {
    if dir.join(PROMPT_FILE).is_file() {
        return None;
    }
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap_or_default();
    let summary =
        std::fs::read_to_string(dir.join(crate::run::shared::SUMMARY_FILE)).unwrap_or_default();
    let prompted = history.contains("\"target\":\"prompt\"") || summary.contains("at the prompt");
    prompted.then(|| {
        "the original's commands at the interactive prompt were not recorded (no prompt.jsonl)"
            .to_string()
    })
}

/// Why a finished replay was not faithful, from its own notes: its recorded prompt session
/// ran out before the scenario ended.
pub fn unfaithful_after(summary: &RunSummary) -> Option<String> {
    summary
        .notes
        .iter()
        .any(|n| n.starts_with(SCRIPT_ENDED))
        .then(|| "the original's prompt session ended early (it was interrupted)".to_string())
}

/// A scenario's stall and set timeout when run.toml does not say (runs made before they were
/// saved): `harness scenario`'s defaults.
const DEFAULT_STALL: Duration = Duration::from_secs(2);
const DEFAULT_SET_TIMEOUT: Duration = Duration::from_secs(30);

async fn run_again(
    dir: &Path,
    binaries: Binaries,
    out: Option<PathBuf>,
    progress: bool,
) -> Result<RunSummary, RunError> {
    let info = RunInfo::load(dir)?;
    refuse_newer_schedule(dir, info.params.schedule_version)?;
    let mut params = info.params.clone();
    if let Some(target) = binaries.target {
        params.target = target;
    }
    let out = out.unwrap_or_else(|| {
        dir.parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."))
    });
    let replica_bin = match (binaries.replica, info.target) {
        (Some(bin), _) => bin,
        (None, TargetKind::Faultline) => PathBuf::from(&info.replica_bin),
        (None, _) => crate::run::rundir::default_replica_bin(),
    };
    let run = RunOptions {
        params,
        etcd_bin: binaries.etcd,
        seed: info.seed,
        out,
        replica_bin,
        progress,
        keep_data: false,
    };
    if info.kind == "scenario" {
        let mut again = scenario_again(dir, run);
        again.script = load_prompt_log(dir)?;
        return run_scenario(&again).await;
    }
    run_in_campaign(&run).await
}

/// A run drawn by a schedule version this harness does not know is refused by name: its
/// seed would draw other faults here. (Older versions draw again as they drew: see
/// [`crate::run::schedule_for`].)
fn refuse_newer_schedule(dir: &Path, version: u32) -> Result<(), RunError> {
    use crate::faults::schedule::SCHEDULE_VERSION;
    if version <= SCHEDULE_VERSION {
        return Ok(());
    }
    Err(RunError::Invalid(format!(
        "{}: its faults were drawn by schedule version {version}, and this harness draws by \
         version {SCHEDULE_VERSION} at most; replay it with the harness that made it",
        dir.display()
    )))
}

/// A scenario run again: its saved copy of the file, its stall and set timeout from run.toml.
fn scenario_again(dir: &Path, run: RunOptions) -> ScenarioOptions {
    let stall = run
        .params
        .stall_ms
        .map_or(DEFAULT_STALL, Duration::from_millis);
    let set_timeout = run
        .params
        .set_timeout_ms
        .map_or(DEFAULT_SET_TIMEOUT, Duration::from_millis);
    ScenarioOptions {
        run,
        file: dir.join("scenario.csv"),
        interactive: false,
        stall,
        set_timeout,
        script: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::RunParams;

    #[test]
    fn a_run_of_a_newer_schedule_version_is_refused_by_name_and_older_ones_replay() {
        use crate::faults::schedule::SCHEDULE_VERSION;
        let dir = Path::new("reports/run-1");
        for version in [4, 5, SCHEDULE_VERSION] {
            assert!(refuse_newer_schedule(dir, version).is_ok(), "{version}");
        }
        let e = refuse_newer_schedule(dir, SCHEDULE_VERSION + 1).unwrap_err();
        let e = e.to_string();
        let newer = format!("schedule version {}", SCHEDULE_VERSION + 1);
        assert!(e.contains(&newer), "{e}");
        let ours = format!("draws by version {SCHEDULE_VERSION} at most");
        assert!(e.contains(&ours), "{e}");
    }

    fn options(params: RunParams) -> RunOptions {
        RunOptions {
            params,
            etcd_bin: PathBuf::from("etcd"),
            seed: 1,
            out: PathBuf::from("out"),
            replica_bin: PathBuf::from("replica"),
            progress: false,
            keep_data: false,
        }
    }

    fn outcome(verdict: &str, operations: u64, faults: u64) -> Outcome {
        Outcome {
            verdict: verdict.into(),
            operations: Some(operations),
            faults: Some(faults),
            reason: None,
        }
    }

    #[test]
    fn a_replay_says_what_it_compared_and_claims_no_more() {
        let original = outcome("valid", 4_000, 8);
        let line = |now: &Outcome, unfaithful: Option<&str>| {
            reproduction_line(Some(&original), now, unfaithful)
        };
        let same = line(&outcome("valid", 3_500, 8), None);
        assert!(
            same.contains("operations 3500 (was 4000), faults 8 (was 8)")
                && same.ends_with(": reproduced"),
            "{same}"
        );
        let smaller = line(&outcome("valid", 1_000, 8), None);
        assert!(
            smaller.ends_with("not comparable (the replay ran 4.0× fewer operations)"),
            "{smaller}"
        );
        let fewer_faults = line(&outcome("valid", 4_000, 3), None);
        assert!(fewer_faults.contains("not comparable"), "{fewer_faults}");
        let other = line(&outcome("invalid", 4_100, 9), None);
        assert!(other.ends_with(": not reproduced"), "{other}");
        let unfaithful = line(&outcome("valid", 4_000, 8), Some("prompt not recorded"));
        assert!(
            unfaithful.ends_with("not comparable (prompt not recorded)"),
            "{unfaithful}"
        );
        let interrupted = Outcome {
            reason: Some("interrupted".into()),
            ..outcome("unknown", 4_000, 8)
        };
        let was_cut = reproduction_line(Some(&interrupted), &outcome("unknown", 4_000, 8), None);
        assert!(
            was_cut.contains("not comparable (the original was interrupted)"),
            "{was_cut}"
        );
        let blind = reproduction_line(None, &outcome("valid", 1, 0), None);
        assert!(blind.ends_with("not comparable"), "{blind}");
    }

    #[test]
    fn a_replayed_scenario_keeps_its_stall_and_set_timeout() {
        let saved = RunParams {
            stall_ms: Some(700),
            set_timeout_ms: Some(4_000),
            ..RunParams::default()
        };
        let again = scenario_again(Path::new("runs/r1"), options(saved));
        assert_eq!(again.stall, Duration::from_millis(700));
        assert_eq!(again.set_timeout, Duration::from_secs(4));
        assert_eq!(again.file, Path::new("runs/r1/scenario.csv"));
        let old = scenario_again(Path::new("r"), options(RunParams::default()));
        assert_eq!(
            (old.stall, old.set_timeout),
            (DEFAULT_STALL, DEFAULT_SET_TIMEOUT)
        );
    }
}
