//! `harness replay`: a saved run again, from its run.toml, compared with the original.

use crate::commands::exit::usage;
use crate::commands::run::print_summary;
use crate::params::TargetKind;
use crate::targets::etcd::find_etcd_bin;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// The run directory to replay (its run.toml is read).
    pub run_dir: PathBuf,
    /// The replica binary (default: the one run.toml names).
    #[arg(long)]
    pub replica_bin: Option<PathBuf>,
    /// Replay against this target instead of the run's own.
    #[arg(long, value_enum)]
    pub target: Option<TargetKind>,
    /// The etcd binary for an etcd run (default: `etcd` on PATH).
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// No progress display.
    #[arg(long)]
    pub no_progress: bool,
    /// Where the replay's run directory is written (default: beside the original).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub async fn replay(args: &ReplayArgs) -> anyhow::Result<i32> {
    let dir = &args.run_dir;
    // A simulated run's run.toml is not a real run's: it is recognised by its kind first.
    if crate::sim::run_kind(dir).ok().as_deref() == Some(crate::sim::SIM_KIND) {
        let replay = crate::sim::cli::replay(dir, args.out.as_deref())?;
        return Ok(crate::sim::cli::print_replay(&replay));
    }
    if let Err(e) = crate::run::rundir::RunInfo::load(dir) {
        return Err(usage(format!(
            "{} is not a run directory (a directory holding a run.toml): {e}",
            dir.display()
        )));
    }
    use crate::run::replay::{unfaithful_after, unfaithful_before};
    use crate::run::store::{original_outcome, Outcome};
    let original = original_outcome(dir);
    let unfaithful = unfaithful_before(dir);
    let summary = crate::run::replay::replay(
        dir,
        crate::run::replay::Binaries {
            replica: args.replica_bin.clone(),
            etcd: find_etcd_bin(args.etcd_bin.as_deref()),
            target: args.target,
        },
        args.out.clone(),
        !args.no_progress,
    )
    .await?;
    print_summary(&summary);
    let unfaithful = unfaithful.or_else(|| unfaithful_after(&summary));
    println!(
        "{}",
        crate::run::replay::reproduction_line(
            original.as_ref(),
            &Outcome::of(&summary),
            unfaithful.as_deref()
        )
    );
    Ok(summary.exit_code)
}
