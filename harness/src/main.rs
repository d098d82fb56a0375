//! The `harness` command line: campaigns, scenarios, replays, benchmarks.
//!
//! Exit codes follow Jepsen for a checked run (0 valid, 1 invalid, 2 unknown); 64 is a usage
//! error and 70 a harness error (the run could not be made or checked). Whatever way the harness
//! ends — normal exit, error, panic, Ctrl-C, SIGTERM — every replica it started is killed first
//! (and if the harness is SIGKILLed, the kernel kills them: see `harness::process`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use harness::bench::{self, BenchOptions};
use harness::campaign::{self, MAX_UNTIL_FAILURE_RUNS};
use harness::process::kill_all_children;
use harness::run::{run_campaign, RunOptions, RunSummary};
use harness::rundir::{default_replica_bin, parse_duration, NetMode, RunParams};
use harness::scenario_run::{run_scenario, ScenarioOptions};
use harness::schedule::{parse_families, FaultFamily};
use harness::targets::etcd::find_etcd_bin;
use harness::targets::{ReadMode, TargetKind};
use harness::tunables::Pins;
use std::path::PathBuf;
use std::time::Duration;

/// `--nemesis-interval` when not given.
const DEFAULT_NEMESIS_INTERVAL_MS: u64 = 5_000;

const EXIT_USAGE: i32 = 64;
const EXIT_ERROR: i32 = 70;
const EXIT_INTERRUPTED: i32 = 130;

#[derive(Parser, Debug)]
#[command(
    name = "harness",
    version,
    about = "Fault-injection harness for the faultline replicated bank",
    long_about = "Starts a local replica cluster, drives concurrent clients while a seeded nemesis \
                  kills, pauses and partitions replicas, records the history and checks it.\n\n\
                  Without a subcommand, `harness` runs one campaign (same as `harness run`).\n\
                  Exit codes: 0 valid, 1 invalid, 2 unknown, 64 usage error, 70 harness error.",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// One fault campaign (the default).
    Run(RunArgs),
    /// Run a scenario CSV (`Set Number,Transactions,Live Nodes`) set by set.
    Scenario(ScenarioArgs),
    /// Many seeded runs back to back, with reports/index.html listing every run.
    Campaign(CampaignArgs),
    /// Run a saved run's seed, parameters, operations and schedule again on a fresh cluster.
    Replay(ReplayArgs),
    /// Throughput and latency without faults, direct and through the relay.
    Bench(BenchArgs),
    /// Deterministic simulation of the real replica code: many seeded runs on virtual time,
    /// each checked like a real run; failing seeds are kept as run directories to replay.
    Sim(harness::sim::cli::SimArgs),
    /// Campaigns against every planted replica bug (needs `replica-bugs`, built with
    /// `cargo build --release -p replica --features bugs --bin replica-bugs`): each must be caught,
    /// and the same campaigns without a bug must pass.
    Zoo(ZooArgs),
}

#[derive(Args, Debug)]
struct ZooArgs {
    /// Hunt the bugs in simulation (fast, exact, no `replica-bugs` binary needed).
    #[arg(long)]
    sim: bool,
    /// With --sim: most seeds per bug before it counts as missed.
    #[arg(long, default_value_t = 40)]
    seeds_per_bug: u64,
    /// Most campaigns per bug before it counts as missed.
    #[arg(long, default_value_t = 6)]
    runs_per_bug: u32,
    /// Workload time of each campaign.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    time: Duration,
    /// Time between a fault and its heal.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    nemesis_interval: Duration,
    /// Only these bugs (comma-separated; default: all).
    #[arg(long, value_delimiter = ',')]
    bugs: Vec<String>,
    /// Skip the clean control campaigns.
    #[arg(long)]
    no_clean: bool,
    #[arg(long)]
    seed: Option<u64>,
    /// Where run directories are written.
    #[arg(long, default_value = "reports/zoo")]
    out: PathBuf,
    /// The replica built with the `bugs` feature (default: replica-bugs next to this executable).
    #[arg(long)]
    replica_bin: Option<PathBuf>,
    /// Show each campaign's progress.
    #[arg(long)]
    progress: bool,
}

#[derive(Args, Debug, Clone)]
struct CommonArgs {
    /// Where run directories are written.
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// The replica binary (default: next to this executable).
    #[arg(long)]
    replica_bin: Option<PathBuf>,
    /// No progress display.
    #[arg(long)]
    no_progress: bool,
    /// The system under test: the faultline replica, or etcd 3.4 members.
    #[arg(long, value_enum, default_value_t = TargetKind::Faultline)]
    target: TargetKind,
    /// The etcd binary for `--target etcd` (default: `etcd` on PATH).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
struct RunArgs {
    /// Number of replicas.
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// Number of concurrent clients (client i owns account i).
    #[arg(long, default_value_t = 10)]
    clients: u32,
    /// Length of the workload, e.g. 60s, 2m, 500ms.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time: Duration,
    /// Total operations per second over all clients (default: closed loop).
    #[arg(long)]
    rate: Option<f64>,
    /// Faults to inject: a comma-separated subset of kill,pause,partition, or none.
    #[arg(long, default_value = "kill,pause,partition", value_parser = parse_nemesis)]
    nemesis: Families,
    /// Time between a fault and its heal, and between a heal and the next fault.
    #[arg(long, value_parser = parse_duration)]
    nemesis_interval: Option<Duration>,
    /// Seed of every random choice (default: random, recorded in run.toml).
    #[arg(long)]
    seed: Option<u64>,
    /// relay: traffic through the harness's UDP relay (partitions possible); direct: not.
    #[arg(long, value_enum, default_value_t = NetMode::Relay)]
    net: NetMode,
    /// The replicas' checkpoint interval K in executed slots (default: the replica's, 10).
    #[arg(long)]
    checkpoint_interval: Option<u64>,
    /// A planted bug passed to every replica (`replica run --bug NAME`).
    #[arg(long)]
    bug: Option<String>,
    /// How long a client retries one request before recording it as info.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    op_timeout: Duration,
    /// One attempt's timeout before trying another replica.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    attempt_timeout: Duration,
    /// Random datagram loss on every relay link, 0 to 1.
    #[arg(long, default_value_t = 0.0)]
    loss: f64,
    /// Extra delay on every relay link.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    delay: Duration,
    /// How long a fresh cluster may take to elect its first leader.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    start_timeout: Duration,
    /// With --target etcd: linearizable reads, or serializable ones (documented as possibly
    /// stale).
    #[arg(long, value_enum, default_value_t = ReadMode::Linearizable)]
    etcd_reads: ReadMode,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct ScenarioArgs {
    /// The scenario CSV file.
    file: PathBuf,
    /// Prompt between sets (next, printdb, printlog, printstatus, printview, kill leader).
    #[arg(long)]
    interactive: bool,
    /// Number of replicas (at least the highest one the file names).
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    #[arg(long, value_enum, default_value_t = NetMode::Relay)]
    net: NetMode,
    #[arg(long)]
    bug: Option<String>,
    /// How long a set without a quorum is given before moving on.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    stall: Duration,
    /// Longest wait for a set's transfers when it has a quorum.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    set_timeout: Duration,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct CampaignArgs {
    /// Number of runs (seeds seed, seed+1, ...).
    #[arg(long)]
    runs: Option<u32>,
    /// Stop at the first run that is not valid.
    #[arg(long)]
    until_failure: bool,
    /// Keep the replica's default settings. Without it every run draws its checkpoint
    /// interval, batch and pipeline limits, election timing and (unless given) the nemesis
    /// interval from its seed, and records the draw in run.toml.
    #[arg(long)]
    defaults: bool,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// The run directory to replay (its run.toml is read).
    run_dir: PathBuf,
    #[arg(long)]
    replica_bin: Option<PathBuf>,
    /// Replay against this target instead of the run's own.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// The etcd binary for an etcd run (default: `etcd` on PATH).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    #[arg(long)]
    no_progress: bool,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Length of each measured phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    time: Duration,
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// Clients of the classic phase.
    #[arg(long, default_value_t = 10)]
    clients: u32,
    /// Clients of the high-concurrency phase.
    #[arg(long, default_value_t = 200)]
    high_clients: u32,
    /// Only this network mode (default: both; direct with --compare).
    #[arg(long, value_enum)]
    net: Option<NetMode>,
    /// faultline and etcd back to back, same workload and fsync policy, in one table.
    #[arg(long)]
    compare: bool,
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    common: CommonArgs,
}

/// The fault families of `--nemesis` (a newtype so clap takes the list as one value).
#[derive(Clone, Debug, PartialEq)]
struct Families(Vec<FaultFamily>);

fn parse_nemesis(s: &str) -> Result<Families, String> {
    parse_families(s).map(Families)
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn random_seed() -> u64 {
    // Short seeds are easier to read and type; 2^32 of them is plenty.
    u64::from(rand::random::<u32>())
}

impl RunArgs {
    fn options(&self) -> RunOptions {
        let params = RunParams {
            etcd_reads: self.etcd_reads,
            nodes: self.nodes,
            clients: self.clients,
            time_ms: ms(self.time),
            rate: self.rate,
            nemesis: self.nemesis.0.clone(),
            nemesis_interval_ms: self
                .nemesis_interval
                .map_or(DEFAULT_NEMESIS_INTERVAL_MS, ms),
            net: self.net,
            bug: self.bug.clone(),
            op_timeout_ms: ms(self.op_timeout),
            attempt_timeout_ms: ms(self.attempt_timeout),
            loss: self.loss,
            delay_ms: ms(self.delay),
            start_timeout_ms: ms(self.start_timeout),
            checkpoint_interval_slots: self.checkpoint_interval,
            scenario: None,
            tunables: None,
            ..RunParams::default()
        };
        common_options(&self.common, params, self.seed.unwrap_or_else(random_seed))
    }
}

fn common_options(common: &CommonArgs, mut params: RunParams, seed: u64) -> RunOptions {
    params.target = common.target;
    RunOptions {
        params,
        etcd_bin: find_etcd_bin(common.etcd_bin.as_deref()),
        seed,
        out: common.out.clone(),
        replica_bin: common
            .replica_bin
            .clone()
            .unwrap_or_else(default_replica_bin),
        progress: !common.no_progress,
    }
}

fn print_summary(s: &RunSummary) {
    println!(
        "{}: {} (seed {}, {} faults, {} operations: {} ok, {} fail, {} info, {:.1} s)",
        s.dir.display(),
        s.verdict,
        s.seed,
        s.faults,
        s.invoked,
        s.ok,
        s.fail,
        s.info,
        s.elapsed_s
    );
    for note in &s.notes {
        println!("  note: {note}");
    }
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None => run_one(&cli.run).await,
        Some(Command::Run(args)) => run_one(&args).await,
        Some(Command::Scenario(args)) => {
            let params = RunParams {
                nodes: args.nodes,
                net: args.net,
                bug: args.bug.clone(),
                nemesis: Vec::new(),
                ..RunParams::default()
            };
            let opts = ScenarioOptions {
                run: common_options(&args.common, params, 0),
                file: args.file.clone(),
                interactive: args.interactive,
                stall: args.stall,
                set_timeout: args.set_timeout,
            };
            let summary = run_scenario(&opts).await?;
            print_summary(&summary);
            Ok(summary.exit_code)
        }
        Some(Command::Campaign(args)) => {
            let opts = args.run.options();
            let runs = match (args.runs, args.until_failure) {
                (Some(n), _) => n,
                (None, true) => MAX_UNTIL_FAILURE_RUNS,
                (None, false) => 1,
            };
            // The drawn tunables are the replica's: other targets keep their defaults.
            let explore =
                (!args.defaults && opts.params.target == TargetKind::Faultline).then(|| Pins {
                    checkpoint_interval_slots: args.run.checkpoint_interval,
                    nemesis_interval_ms: args.run.nemesis_interval.map(ms),
                    ..Pins::default()
                });
            let summaries =
                campaign::run_many(&opts, runs, args.until_failure, explore, print_summary).await?;
            let bad = summaries.iter().filter(|s| s.exit_code != 0).count();
            println!(
                "{} runs, {} not valid; index: {}",
                summaries.len(),
                bad,
                opts.out.join("index.html").display()
            );
            Ok(summaries.iter().map(|s| s.exit_code).max().unwrap_or(0))
        }
        Some(Command::Sim(args)) => harness::sim::cli::run(&args),
        Some(Command::Replay(args))
            if harness::sim::run_kind(&args.run_dir).ok().as_deref()
                == Some(harness::sim::SIM_KIND) =>
        {
            let replay = harness::sim::cli::replay(&args.run_dir)?;
            Ok(harness::sim::cli::print_replay(&replay))
        }
        Some(Command::Replay(args)) => {
            let original = harness::replay::original_verdict(&args.run_dir);
            let summary = harness::replay::replay(
                &args.run_dir,
                harness::replay::Binaries {
                    replica: args.replica_bin.clone(),
                    etcd: find_etcd_bin(args.etcd_bin.as_deref()),
                    target: args.target,
                },
                !args.no_progress,
            )
            .await?;
            print_summary(&summary);
            println!(
                "{}",
                harness::replay::reproduction_line(original.as_deref(), &summary.verdict)
            );
            Ok(summary.exit_code)
        }
        Some(Command::Zoo(args)) if args.sim => {
            let opts = harness::sim::zoo::SimZooOptions {
                out: args.out.join("sim"),
                from_seed: args.seed.unwrap_or(1),
                seeds_per_bug: args.seeds_per_bug.max(1),
                only: args.bugs.clone(),
                ops: None,
            };
            let rows = harness::sim::zoo::run_zoo(&opts)?;
            print!("{}", harness::sim::zoo::render_table(&rows));
            let failed = rows.iter().filter(|r| !r.passed()).count();
            println!(
                "{} rows, {failed} failed; table in {}",
                rows.len(),
                opts.out.join("zoo-sim.txt").display()
            );
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Some(Command::Zoo(args)) => {
            let opts = harness::zoo::ZooOptions {
                out: args.out.clone(),
                replica_bin: args
                    .replica_bin
                    .clone()
                    .unwrap_or_else(harness::zoo::default_bugs_bin),
                seed: args.seed.unwrap_or_else(random_seed),
                runs_per_bug: args.runs_per_bug.max(1),
                time_ms: args.time.as_millis() as u64,
                nemesis_interval_ms: args.nemesis_interval.as_millis() as u64,
                only: args.bugs.clone(),
                clean_runs: !args.no_clean,
                progress: args.progress,
            };
            if !opts.replica_bin.is_file() {
                anyhow::bail!(
                    "no bug-planting replica at {}: build it with `cargo build --release -p replica --features bugs --bin replica-bugs`",
                    opts.replica_bin.display()
                );
            }
            let rows = harness::zoo::run_zoo(&opts).await?;
            print!("{}", harness::zoo::render_table(&rows));
            let failed = rows.iter().filter(|r| !r.passed()).count();
            println!(
                "{} rows, {failed} failed; table in {}",
                rows.len(),
                opts.out.join("zoo.txt").display()
            );
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Some(Command::Bench(args)) => {
            let params = RunParams {
                nodes: args.nodes,
                nemesis: Vec::new(),
                ..RunParams::default()
            };
            let mut run =
                common_options(&args.common, params, args.seed.unwrap_or_else(random_seed));
            let out = run.out.clone();
            run.out = out.join("bench");
            let targets = if args.compare {
                vec![TargetKind::Faultline, TargetKind::Etcd]
            } else {
                vec![args.common.target]
            };
            // Side by side, both targets go direct unless told otherwise (their relays differ:
            // UDP for the replica, TCP for etcd).
            let nets = match (args.net, args.compare) {
                (Some(n), _) => vec![n],
                (None, true) => vec![NetMode::Direct],
                (None, false) => vec![NetMode::Direct, NetMode::Relay],
            };
            let opts = BenchOptions {
                run,
                phase: args.time,
                low_clients: args.clients,
                high_clients: args.high_clients,
                nets,
                targets,
            };
            let report = bench::run_bench(&opts).await?;
            print!("{}", bench::render_table(&report));
            std::fs::create_dir_all(&out)
                .with_context(|| format!("cannot create {}", out.display()))?;
            let path = bench::save(&report, &out)?;
            println!("saved {}", path.display());
            Ok(0)
        }
    }
}

async fn run_one(args: &RunArgs) -> anyhow::Result<i32> {
    let summary = run_campaign(&args.options()).await?;
    print_summary(&summary);
    Ok(summary.exit_code)
}

/// Kills every replica and exits on Ctrl-C or SIGTERM.
fn install_signal_handlers() {
    tokio::spawn(async {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("warning: cannot watch SIGTERM: {e}");
                    let _ = tokio::signal::ctrl_c().await;
                    interrupted();
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        interrupted();
    });
}

fn interrupted() -> ! {
    kill_all_children();
    eprintln!("\ninterrupted: every replica was stopped; the history so far is on disk");
    std::process::exit(EXIT_INTERRUPTED);
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // `RUST_LOG=replica=info harness sim --seeds 1 --from-seed S` shows what the simulated
    // replicas log (elections, leader changes, step-downs) for one seed.
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        kill_all_children();
        default_hook(info);
    }));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(EXIT_ERROR);
        }
    };
    let code = runtime.block_on(async {
        install_signal_handlers();
        match dispatch(cli).await {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                EXIT_ERROR
            }
        }
    });
    kill_all_children();
    std::process::exit(code);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn the_cli_is_well_formed_and_run_is_the_default() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let cli =
            Cli::try_parse_from(["harness", "--time", "10s", "--nemesis", "kill,pause"]).unwrap();
        assert!(cli.command.is_none());
        assert_eq!(cli.run.time, Duration::from_secs(10));
        assert_eq!(
            cli.run.nemesis.0,
            vec![FaultFamily::Kill, FaultFamily::Pause]
        );
        let cli = Cli::try_parse_from(["harness", "run", "--nemesis", "none"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Run(ref a)) if a.nemesis.0.is_empty()));
        assert!(Cli::try_parse_from(["harness", "scenario", "x.csv", "--interactive"]).is_ok());
        assert!(Cli::try_parse_from(["harness", "--nemesis", "meteor"]).is_err());
    }
}
