//! `harness replay <run-dir>`: the same seed, parameters, generated operations and fault
//! schedule again, against a fresh cluster, in a new run directory beside the old one.
//!
//! Everything random derives from the seed (see [`crate::rng`]), so reading run.toml is enough
//! to regenerate the schedule, each client's operations and the drawn tunables; timing, and so
//! the interleaving, is the system's and will differ. So a replay of a real run says whether
//! it reproduced the original verdict; only a simulated run (`harness sim`) replays exactly.

use crate::run::{run_campaign, RunError, RunOptions, RunSummary};
use crate::rundir::RunInfo;
use crate::scenario_run::{run_scenario, ScenarioOptions};
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

/// Replays the run in `dir`.
pub async fn replay(
    dir: &Path,
    binaries: Binaries,
    progress: bool,
) -> Result<RunSummary, RunError> {
    let summary = run_again(dir, binaries, progress).await?;
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

async fn run_again(dir: &Path, binaries: Binaries, progress: bool) -> Result<RunSummary, RunError> {
    let info = RunInfo::load(dir)?;
    let mut params = info.params.clone();
    if let Some(target) = binaries.target {
        params.target = target;
    }
    let out = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let replica_bin = match (binaries.replica, info.target) {
        (Some(bin), _) => bin,
        (None, TargetKind::Faultline) => PathBuf::from(&info.replica_bin),
        (None, _) => crate::rundir::default_replica_bin(),
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
        let opts = ScenarioOptions {
            run,
            file: dir.join("scenario.csv"),
            interactive: false,
            stall: Duration::from_secs(2),
            set_timeout: Duration::from_secs(30),
        };
        return run_scenario(&opts).await;
    }
    run_campaign(&run).await
}
