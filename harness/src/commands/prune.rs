//! `harness prune`: delete saved runs by age, count or verdict.

use crate::commands::exit::usage;
use crate::run::rundir::parse_duration;
use anyhow::Context;
use checker::text::count;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct PruneArgs {
    /// The reports directory (runs are found up to three levels down: sim/, zoo/, bench/).
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// Delete runs older than this, e.g. 7d, 12h, 30m.
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<Duration>,
    /// Keep only the newest N runs (of the verdicts selected).
    #[arg(long)]
    pub keep_last: Option<usize>,
    /// Only runs with these verdicts (comma-separated: valid, invalid, unknown, incomplete).
    #[arg(long, value_delimiter = ',')]
    pub verdict: Vec<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `7d`, `12h`, or anything [`parse_duration`] reads.
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let days = |n: &str, unit: u64| {
        n.trim()
            .parse::<u64>()
            .map(|n| Duration::from_secs(n * unit))
            .map_err(|_| format!("bad age {s:?}: e.g. 7d, 12h, 30m"))
    };
    match (s.strip_suffix('d'), s.strip_suffix('h')) {
        (Some(n), _) => days(n, 86_400),
        (_, Some(n)) => days(n, 3_600),
        _ => parse_duration(s),
    }
}

pub fn prune(args: &PruneArgs) -> anyhow::Result<i32> {
    use crate::run::store::{human_bytes, prune, PruneRule};
    const VERDICTS: [&str; 4] = ["valid", "invalid", "unknown", "incomplete"];
    if let Some(bad) = args
        .verdict
        .iter()
        .find(|v| !VERDICTS.contains(&v.as_str()))
    {
        return Err(usage(format!(
            "--verdict {bad}: one of {}",
            VERDICTS.join(", ")
        )));
    }
    if args.older_than.is_none() && args.keep_last.is_none() && args.verdict.is_empty() {
        return Err(usage(
            "prune needs --older-than, --keep-last or --verdict (it deletes nothing unasked)",
        ));
    }
    let rule = PruneRule {
        older_than: args.older_than,
        keep_last: args.keep_last,
        verdicts: args.verdict.clone(),
    };
    let done = prune(&args.out, &rule, args.dry_run)
        .with_context(|| format!("cannot prune {}", args.out.display()))?;
    println!(
        "{} {} ({}); kept {} in {} ({})",
        if args.dry_run {
            "would delete"
        } else {
            "deleted"
        },
        count(done.deleted as u64, "run"),
        human_bytes(done.freed_bytes),
        count(done.kept as u64, "run"),
        args.out.display(),
        human_bytes(done.kept_bytes)
    );
    Ok(0)
}
