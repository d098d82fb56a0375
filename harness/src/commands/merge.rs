//! `harness merge`: fleet tasks' results merged into one report of unique failures.

use checker::text::count;
use clap::Args;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct MergeArgs {
    /// Task directories (`slice-K-of-N`), or directories holding them.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// Where the merged summary.json and index.html go.
    #[arg(long)]
    pub out: PathBuf,
    /// Merge tasks of different builds or parameters anyway.
    #[arg(long)]
    pub force: bool,
    /// Do not shrink each failure's representative (shrinking simulates it again, many times).
    #[arg(long)]
    pub no_shrink: bool,
}

pub fn merge(args: &MergeArgs) -> anyhow::Result<i32> {
    let opts = crate::fleet::merge::MergeOptions {
        inputs: args.dirs.clone(),
        out: args.out.clone(),
        force: args.force,
        shrink: !args.no_shrink,
    };
    let merged = crate::fleet::merge::merge(&opts)?;
    println!(
        "{}: {} of {} seeds in {} of {} tasks: {} valid, {} invalid, {} unknown; {}",
        merged.verdict,
        merged.seeds_done,
        merged.seeds,
        merged.tasks.present.len(),
        merged.tasks.count,
        merged.counts.valid,
        merged.counts.invalid,
        merged.counts.unknown,
        count(merged.groups.len() as u64, "distinct failure"),
    );
    for line in crate::fleet::merge::task_problems(&merged) {
        println!("  {line}");
    }
    for (k, g) in merged.groups.iter().enumerate() {
        println!(
            "{}. {} ({}, first seed {})",
            k + 1,
            g.signature,
            count(g.count, "run"),
            g.first_seed
        );
        if let Some(replay) = &g.replay {
            println!("   replay: {replay}");
        }
        println!("   rerun:  {}", g.rerun);
    }
    println!("report: {}", args.out.join("index.html").display());
    Ok(merged.exit_code)
}
