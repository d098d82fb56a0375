//! `harness zoo`: campaigns against every planted replica bug, real or simulated.

use crate::commands::run::random_seed;
use crate::run::rundir::parse_duration;
use crate::run::shared::ms;
use checker::text::count;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ZooArgs {
    /// Hunt the bugs in simulation (fast, exact, no `replica-bugs` binary needed).
    #[arg(long)]
    pub sim: bool,
    /// With --sim: most seeds per bug before it counts as missed.
    #[arg(long, default_value_t = 40)]
    pub seeds_per_bug: u64,
    /// Measure the catch rate instead of hunting for a first catch: N seeds (with --sim) or N
    /// campaigns per bug and per clean control, none stopping at a catch; the table, with the
    /// checks that caught each bug, also goes to rates.txt and rates.json.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub rate: Option<u64>,
    /// With --sim --rate: worker threads (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Most campaigns per bug before it counts as missed.
    #[arg(long, default_value_t = 6)]
    pub runs_per_bug: u32,
    /// Workload time of each campaign.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub time: Duration,
    /// Time between a fault and its heal.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub nemesis_interval: Duration,
    /// Only these bugs (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    pub bugs: Vec<String>,
    /// Skip the clean control campaigns.
    #[arg(long)]
    pub no_clean: bool,
    /// Seed of the first campaign (default: random); each later campaign adds one.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Where run directories are written.
    #[arg(long, default_value = "reports/zoo")]
    pub out: PathBuf,
    /// The replica built with the `bugs` feature (default: replica-bugs next to this executable).
    #[arg(long)]
    pub replica_bin: Option<PathBuf>,
    /// No progress display for the campaigns.
    #[arg(long)]
    pub no_progress: bool,
}

/// Prints a rate table's row as soon as it is measured (the table comes again at the end).
pub fn print_rate_row(row: &crate::run::rates::RateRow) {
    eprintln!(
        "zoo rate: {}{}: caught by {}/{} ({} unknown, {} errors)",
        row.bug.as_deref().unwrap_or("none"),
        row.shards
            .map_or(String::new(), |s| format!(" on {s} shards")),
        row.invalid,
        row.runs,
        row.unknown,
        row.errors
    );
}

pub fn print_rate_table(table: &crate::run::rates::RateTable, out: &std::path::Path) -> i32 {
    print!("{}", table.render());
    println!(
        "{} of {} each from seed {}; table in {} and {}",
        count(table.rows.len() as u64, "row"),
        count(
            table.runs_per_row,
            if table.world == "sim" { "seed" } else { "run" }
        ),
        table.from_seed,
        out.join("rates.txt").display(),
        out.join("rates.json").display()
    );
    table.exit_code()
}

/// The simulated zoo `harness zoo --sim` asks for.
pub fn sim_zoo_options(args: &ZooArgs) -> crate::sim::zoo::SimZooOptions {
    crate::sim::zoo::SimZooOptions {
        out: args.out.join("sim"),
        from_seed: args.seed.unwrap_or(1),
        seeds_per_bug: args.seeds_per_bug.max(1),
        only: args.bugs.clone(),
        ops: None,
        shards: 3,
    }
}

/// `harness zoo --sim --rate N`.
pub fn sim_zoo_rates(args: &ZooArgs) -> anyhow::Result<i32> {
    let opts = sim_zoo_options(args);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let seeds = args.rate.unwrap_or(1);
    let table = crate::sim::zoo::run_rates(&opts, seeds, jobs, &print_rate_row)?;
    let code = print_rate_table(&table, &opts.out);
    println!(
        "rerun one of a row's failing_seeds (rates.json): \
         harness sim --seeds 1 --from-seed SEED --bug BUG [--shards 3]"
    );
    Ok(code)
}

pub async fn zoo(args: &ZooArgs) -> anyhow::Result<i32> {
    let opts = crate::run::zoo::ZooOptions {
        out: args.out.clone(),
        replica_bin: args
            .replica_bin
            .clone()
            .unwrap_or_else(crate::run::zoo::default_bugs_bin),
        seed: args.seed.unwrap_or_else(random_seed),
        runs_per_bug: args.runs_per_bug.max(1),
        time_ms: ms(args.time),
        nemesis_interval_ms: ms(args.nemesis_interval),
        only: args.bugs.clone(),
        clean_runs: !args.no_clean,
        progress: !args.no_progress,
    };
    if !opts.replica_bin.is_file() {
        anyhow::bail!(
            "no bug-planting replica at {}: build it with `cargo build --release -p replica --features bugs --bin replica-bugs`",
            opts.replica_bin.display()
        );
    }
    if let Some(runs) = args.rate {
        let runs = u32::try_from(runs).unwrap_or(u32::MAX);
        let table = crate::run::zoo::run_rates(&opts, runs, &print_rate_row).await?;
        return Ok(print_rate_table(&table, &opts.out));
    }
    let rows = crate::run::zoo::run_zoo(&opts).await?;
    print!("{}", crate::run::zoo::render_table(&rows));
    let failed = rows.iter().filter(|r| !r.passed()).count() as u64;
    println!(
        "{}, {failed} failed; table in {}",
        count(rows.len() as u64, "row"),
        opts.out.join("zoo.txt").display()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

/// Runs `harness zoo`: the simulated zoo (`--sim`, its rate table with `--rate`) or the real one.
pub async fn run(args: &ZooArgs) -> anyhow::Result<i32> {
    if args.sim && args.rate.is_some() {
        return sim_zoo_rates(args);
    }
    if args.sim {
        let opts = sim_zoo_options(args);
        let rows = crate::sim::zoo::run_zoo(&opts)?;
        print!("{}", crate::sim::zoo::render_table(&rows));
        let failed = rows.iter().filter(|r| !r.passed()).count() as u64;
        println!(
            "{}, {failed} failed; table in {}",
            count(rows.len() as u64, "row"),
            opts.out.join("zoo-sim.txt").display()
        );
        return Ok(if failed == 0 { 0 } else { 1 });
    }
    zoo(args).await
}
