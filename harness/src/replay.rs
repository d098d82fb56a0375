//! `harness replay <run-dir>`: the same seed, parameters, generated operations and fault
//! schedule again, against a fresh cluster, in a new run directory beside the old one.
//!
//! Everything random derives from the seed (see [`crate::rng`]), so reading run.toml is enough
//! to regenerate the schedule and each client's operations; timing, and so the interleaving,
//! is the system's and will differ.

use crate::run::{run_campaign, RunError, RunOptions, RunSummary};
use crate::rundir::RunInfo;
use crate::scenario_run::{run_scenario, ScenarioOptions};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Replays the run in `dir`. `replica_bin` overrides the binary recorded in run.toml.
pub async fn replay(
    dir: &Path,
    replica_bin: Option<PathBuf>,
    progress: bool,
) -> Result<RunSummary, RunError> {
    let info = RunInfo::load(dir)?;
    let out = dir
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let replica_bin = replica_bin.unwrap_or_else(|| PathBuf::from(&info.replica_bin));
    let run = RunOptions {
        params: info.params.clone(),
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
