//! `harness replay <run-dir>`: the same seed, parameters, generated operations and fault
//! schedule again, against a fresh cluster, in a new run directory beside the old one.
//!
//! Everything random derives from the seed (see [`crate::run::rng`]), so reading run.toml is enough
//! to regenerate the schedule, each client's operations and the drawn tunables; timing, and so
//! the interleaving, is the system's and will differ. So a replay of a real run says whether
//! it reproduced the original verdict; only a simulated run (`harness sim`) replays exactly.

use crate::run::rundir::RunInfo;
use crate::run::{run_campaign, RunError, RunOptions, RunSummary};
use crate::scenario::run::{run_scenario, ScenarioOptions};
use crate::targets::TargetKind;
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

/// The verdict a run directory was given (its harness.json, else its results.json).
pub fn original_verdict(dir: &Path) -> Option<String> {
    let read = |name: &str| -> Option<serde_json::Value> {
        serde_json::from_str(&std::fs::read_to_string(dir.join(name)).ok()?).ok()
    };
    if let Some(verdict) = read(crate::run::SUMMARY_FILE).and_then(|s| {
        s.get("verdict")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }) {
        return Some(verdict);
    }
    let valid = read("results.json")?.get("valid")?.clone();
    Some(match valid {
        serde_json::Value::Bool(true) => "valid".into(),
        serde_json::Value::Bool(false) => "invalid".into(),
        _ => "unknown".into(),
    })
}

/// "reproduced" or "not reproduced", comparing the original's verdict with the replay's.
pub fn reproduction_line(original: Option<&str>, now: &str) -> String {
    match original {
        Some(was) if was == now => format!("verdict {now}, as the original: reproduced"),
        Some(was) => format!("verdict {now}, the original was {was}: not reproduced"),
        None => format!(
            "verdict {now}; the original's verdict is unknown (no harness.json or results.json)"
        ),
    }
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
    };
    if info.kind == "scenario" {
        return run_scenario(&scenario_again(dir, run)).await;
    }
    run_campaign(&run).await
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::rundir::RunParams;

    fn options(params: RunParams) -> RunOptions {
        RunOptions {
            params,
            etcd_bin: PathBuf::from("etcd"),
            seed: 1,
            out: PathBuf::from("out"),
            replica_bin: PathBuf::from("replica"),
            progress: false,
        }
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
