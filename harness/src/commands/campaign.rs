//! `harness campaign`: many seeded runs back to back, or one fleet task's slice of them.

use crate::commands::exit::usage;
use crate::commands::run::{print_summary, warn_about, RunArgs};
use crate::params::TargetKind;
use crate::run::campaign::{self, MAX_UNTIL_FAILURE_RUNS};
use crate::run::shared::RunSummary;
use anyhow::Context;
use checker::text::count;
use clap::Args;

#[derive(Args, Debug)]
pub struct CampaignArgs {
    /// Number of runs (seeds seed, seed+1, ...), at least 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub runs: Option<u32>,
    /// Stop at the first run that is not valid.
    #[arg(long)]
    pub until_failure: bool,
    /// Run only task K of N's share of the runs (e.g. 3/10; needs --seed and --runs), into
    /// `<out>/slice-K-of-N` with a resumable summary.json; `auto` takes K and N from a Slurm
    /// job array or a Kubernetes Indexed Job.
    #[arg(long, value_parser = crate::fleet::slice::parse_slice)]
    pub slice: Option<crate::fleet::slice::SliceArg>,
    #[command(flatten)]
    pub run: RunArgs,
}

pub async fn campaign(args: &CampaignArgs) -> anyhow::Result<i32> {
    if let Some(slice) = args.slice {
        return campaign_slice(args, slice).await;
    }
    let opts = args.run.resolved_options()?;
    crate::run::validate(&opts.params)?;
    warn_about(&opts.params);
    let runs = match (args.runs, args.until_failure) {
        (Some(n), _) => n,
        (None, true) => MAX_UNTIL_FAILURE_RUNS,
        (None, false) => 1,
    };
    // The drawn tunables are the replica's: other targets keep their defaults.
    let explore = args.run.explore(&opts);
    let summaries =
        campaign::run_campaign(&opts, runs, args.until_failure, explore, print_summary).await?;
    let bad = summaries.iter().filter(|s| s.exit_code != 0).count() as u64;
    println!(
        "{}, {bad} not valid; index: {}",
        count(summaries.len() as u64, "run"),
        opts.out.join("index.html").display()
    );
    Ok(summaries.iter().map(|s| s.exit_code).max().unwrap_or(0))
}

/// `harness campaign --slice`: this task's share of the runs, resumable, with a summary.json.
pub async fn campaign_slice(
    args: &CampaignArgs,
    slice: crate::fleet::slice::SliceArg,
) -> anyhow::Result<i32> {
    use crate::fleet::task::{fresh_summary, TaskKind};
    let slice = slice.resolve()?;
    let (Some(first_seed), Some(runs)) = (args.run.seed, args.runs) else {
        return Err(usage(
            "--slice needs --seed and --runs: every task must share out the same runs",
        ));
    };
    let mut opts = args.run.resolved_options()?;
    crate::run::validate(&opts.params)?;
    warn_about(&opts.params);
    opts.out = opts.out.join(slice.dir_name());
    let explore = args.run.explore(&opts);
    let mut binaries: Vec<(&str, &std::path::Path)> = Vec::new();
    match opts.params.target {
        TargetKind::Faultline => binaries.push(("replica", &opts.replica_bin)),
        TargetKind::Etcd => binaries.push(("etcd", &opts.etcd_bin)),
    }
    let build = crate::fleet::identity::BuildIdentity::of(&binaries)
        .context("cannot hash the binaries this task runs")?;
    let mut params = match serde_json::to_value(&opts.params)? {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    params.insert("defaults".into(), args.run.defaults.into());
    let fresh = fresh_summary(
        TaskKind::Campaign,
        slice,
        first_seed,
        u64::from(runs),
        params,
        campaign_reproduce_flags(),
        build,
    );
    let share = fresh.share();
    let (task, done) = crate::fleet::task::Task::open(&opts.out, fresh, true)
        .with_context(|| format!("cannot write the task summary in {}", opts.out.display()))?;
    let seeds: Vec<u64> = share.filter(|s| !done.contains(s)).collect();
    let record = |s: &RunSummary| {
        print_summary(s);
        let checks = checker::Results::read_json(&s.dir.join("results.json"))
            .map(|r| crate::sim::failed_checks(&r))
            .unwrap_or_default();
        let result = crate::fleet::task::SeedResult {
            seed: s.seed,
            exit_code: s.exit_code,
            verdict: s.verdict.clone(),
            failed_checks: checks,
            details: Vec::new(),
            dir: Some(s.dir.clone()),
            faults: s.faults,
            virtual_ms: 0,
        };
        if let Err(e) = task.record(result) {
            eprintln!("warning: cannot update the task summary: {e}");
        }
    };
    campaign::run_seeds(&opts, &seeds, args.until_failure, explore, record).await?;
    let summary = task.finish().context("cannot write the task summary")?;
    println!(
        "summary: {} ({} valid, {} invalid, {} unknown)",
        opts.out.join("summary.json").display(),
        summary.counts.valid,
        summary.counts.invalid,
        summary.counts.unknown
    );
    Ok(if summary.counts.invalid > 0 {
        1
    } else if summary.counts.unknown > 0 {
        2
    } else {
        0
    })
}

/// The campaign's own flags less those a single rerun sets itself (`--slice`, `--runs`,
/// `--seed`, `--out`, `--no-progress`), for the line that runs one seed again.
pub fn campaign_reproduce_flags() -> String {
    let args: Vec<String> = std::env::args()
        .skip_while(|a| a != "campaign")
        .skip(1)
        .collect();
    let dropped = ["--slice", "--runs", "--seed", "--out", "--no-progress"];
    let mut flags = String::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let name = arg.split('=').next().unwrap_or(&arg);
        if dropped.contains(&name) {
            skip_value = !arg.contains('=') && name != "--no-progress";
            continue;
        }
        flags.push(' ');
        flags.push_str(&arg);
    }
    flags
}
