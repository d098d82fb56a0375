//! The `harness` command line: campaigns, scenarios, replays, benchmarks.
//!
//! Exit codes follow Jepsen for a checked run (0 valid, 1 invalid, 2 unknown); 64 is a usage
//! error and 70 a harness error (the run could not be made or checked). Whatever way the harness
//! ends — normal exit, error, panic, Ctrl-C, SIGTERM — every replica it started is killed first
//! (and if the harness is SIGKILLed, the kernel kills them: see `harness::cluster::process`).

use anyhow::Context;
use checker::text::count;
use clap::{Args, Parser, Subcommand};
use harness::cluster::process::kill_all_children;
use harness::faults::schedule::{parse_families, FaultFamily, World};
use harness::faults::tunables::Pins;
use harness::fleet::merge::MergeError;
use harness::fleet::slice::SliceError;
use harness::run::bench::{self, BenchOptions};
use harness::run::campaign::{self, MAX_UNTIL_FAILURE_RUNS};
use harness::run::rundir::{default_replica_bin, parse_duration, NetMode, RunParams};
use harness::run::{ms, RunError, RunOptions, RunSummary};
use harness::scenario::run::{run_scenario, ScenarioOptions};
use harness::targets::etcd::find_etcd_bin;
use harness::targets::{ReadMode, TargetKind};
use std::path::PathBuf;
use std::time::Duration;

/// `--nemesis-interval` when not given.
const DEFAULT_NEMESIS_INTERVAL_MS: u64 = 5_000;

// Exit codes beside the verdict's 0/1/2; every binary's are in docs/exit-codes.md.
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
                  Without a subcommand but with flags (`harness --time 10s`), `harness` runs \
                  one campaign, as `harness run` does; alone it prints this help (exit 64).\n\
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
    /// Merge fleet tasks' results (`--slice` directories) into one report of unique failures:
    /// exits 0 all valid, 1 any invalid, 2 any unknown or a task or seed missing.
    Merge(MergeArgs),
    /// Campaigns against every planted replica bug (needs `replica-bugs`, built with
    /// `cargo build --release -p replica --features bugs --bin replica-bugs`): each must be caught,
    /// and the same campaigns without a bug must pass.
    Zoo(ZooArgs),
    /// Delete saved runs by age, count or verdict (never the one `latest` points at), and
    /// print the size of what is kept.
    Prune(PruneArgs),
}

#[derive(Args, Debug)]
struct PruneArgs {
    /// The reports directory (runs are found up to three levels down: sim/, zoo/, bench/).
    #[arg(long, default_value = "reports")]
    out: PathBuf,
    /// Delete runs older than this, e.g. 7d, 12h, 30m.
    #[arg(long, value_parser = parse_age)]
    older_than: Option<Duration>,
    /// Keep only the newest N runs (of the verdicts selected).
    #[arg(long)]
    keep_last: Option<usize>,
    /// Only runs with these verdicts (comma-separated: valid, invalid, unknown, incomplete).
    #[arg(long, value_delimiter = ',')]
    verdict: Vec<String>,
    /// Say what would be deleted, delete nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `7d`, `12h`, or anything [`parse_duration`] reads.
fn parse_age(s: &str) -> Result<Duration, String> {
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

#[derive(Args, Debug)]
struct MergeArgs {
    /// Task directories (`slice-K-of-N`), or directories holding them.
    #[arg(required = true)]
    dirs: Vec<PathBuf>,
    /// Where the merged summary.json and index.html go.
    #[arg(long)]
    out: PathBuf,
    /// Merge tasks of different builds or parameters anyway.
    #[arg(long)]
    force: bool,
    /// Do not shrink each failure's representative (shrinking simulates it again, many times).
    #[arg(long)]
    no_shrink: bool,
}

#[derive(Args, Debug)]
struct ZooArgs {
    /// Hunt the bugs in simulation (fast, exact, no `replica-bugs` binary needed).
    #[arg(long)]
    sim: bool,
    /// With --sim: most seeds per bug before it counts as missed.
    #[arg(long, default_value_t = 40)]
    seeds_per_bug: u64,
    /// Measure the catch rate instead of hunting for a first catch: N seeds (with --sim) or N
    /// campaigns per bug and per clean control, none stopping at a catch; the table, with the
    /// checks that caught each bug, also goes to rates.txt and rates.json.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// With --sim --rate: worker threads (default: one per core).
    #[arg(long)]
    jobs: Option<usize>,
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
    /// Seed of the first campaign (default: random); each later campaign adds one.
    #[arg(long)]
    seed: Option<u64>,
    /// Where run directories are written.
    #[arg(long, default_value = "reports/zoo")]
    out: PathBuf,
    /// The replica built with the `bugs` feature (default: replica-bugs next to this executable).
    #[arg(long)]
    replica_bin: Option<PathBuf>,
    /// No progress display for the campaigns.
    #[arg(long)]
    no_progress: bool,
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
    /// Keep the data directories and certificates after the check (by default a valid run
    /// deletes them and a failing one packs them into data.tar.gz).
    #[arg(long)]
    keep_data: bool,
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
    #[arg(long, allow_negative_numbers = true)]
    rate: Option<f64>,
    /// Faults to inject: a comma-separated subset of
    /// kill,pause,partition,isolate-follower,crash-coordinator; all (the first four); or none
    /// (default: kill,pause,partition; a sharded run adds crash-coordinator when replica-bugs
    /// is found). power, clock and disk are the simulator's (harness sim --faults).
    #[arg(long, value_parser = parse_nemesis)]
    nemesis: Option<Families>,
    /// With --shards and crash-coordinator: the replica built with failpoints (default:
    /// replica-bugs beside the replica binary).
    #[arg(long)]
    replica_bugs_bin: Option<PathBuf>,
    /// Time between a fault and its heal, and between a heal and the next fault (default: 5s;
    /// a campaign draws 1s, 2s or 5s per run unless --defaults).
    #[arg(long, value_parser = parse_duration)]
    nemesis_interval: Option<Duration>,
    /// Seed of every random choice (default: random, recorded in run.toml).
    #[arg(long)]
    seed: Option<u64>,
    /// relay: traffic through the harness's relay (partitions possible): a UDP relay for the
    /// replica's QUIC, a TCP relay for etcd; direct: not.
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
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
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
    shards: ShardArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug, Clone)]
struct ShardArgs {
    /// A sharded bank of this many Paxos groups, with two-phase commit between them (1: the
    /// classic cluster of --nodes replicas).
    #[arg(long, default_value_t = 1)]
    shards: u32,
    /// Replicas of each shard (with --shards above 1; --nodes is then ignored).
    #[arg(long, default_value_t = 3)]
    replicas_per_shard: u32,
    /// With --shards: the share of transfers between accounts of different shards, 0 to 1.
    #[arg(long, default_value_t = 0.5)]
    cross_shard_share: f64,
}

impl ShardArgs {
    /// Sets the sharded shape on `params` (and its node count), if sharded.
    fn apply(&self, params: &mut RunParams) {
        if self.shards <= 1 {
            return;
        }
        let shape = harness::run::rundir::ShardParams {
            shards: self.shards,
            replicas_per_shard: self.replicas_per_shard,
            cross_shard_share: self.cross_shard_share,
        };
        params.nodes = shape.nodes();
        params.shards = Some(shape);
    }
}

#[derive(Args, Debug)]
struct ScenarioArgs {
    /// The scenario CSV file.
    file: PathBuf,
    /// A prompt before each set and after the last: look inside the replicas, kill, restart,
    /// cut links, then go on (type `help` there).
    #[arg(long)]
    interactive: bool,
    /// Number of replicas (at least the highest one the file names).
    #[arg(long, default_value_t = 5)]
    nodes: u32,
    /// relay: traffic through the harness's relay (links can be cut): a UDP relay for the
    /// replica's QUIC, a TCP relay for etcd; direct: not.
    #[arg(long, value_enum, default_value_t = NetMode::Relay)]
    net: NetMode,
    /// A planted bug passed to every replica (`replica run --bug NAME`; needs replica-bugs).
    #[arg(long)]
    bug: Option<String>,
    /// How long a set without a quorum is given before moving on.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    stall: Duration,
    /// Longest wait for a set's transfers when it has a quorum.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    set_timeout: Duration,
    /// A sharded bank (`Live Nodes` then names replicas of every shard, n1..n(S×R); `LF`
    /// fails every shard's leader).
    #[command(flatten)]
    shards: ShardArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args, Debug)]
struct CampaignArgs {
    /// Number of runs (seeds seed, seed+1, ...), at least 1.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    runs: Option<u32>,
    /// Stop at the first run that is not valid.
    #[arg(long)]
    until_failure: bool,
    /// Keep the replica's default settings. Without it every run draws its checkpoint
    /// interval, batch and pipeline limits, election timing and (unless given) the nemesis
    /// interval from its seed, and records the draw in run.toml.
    #[arg(long)]
    defaults: bool,
    /// Run only task K of N's share of the runs (e.g. 3/10; needs --seed and --runs), into
    /// `<out>/slice-K-of-N` with a resumable summary.json; `auto` takes K and N from a Slurm
    /// job array or a Kubernetes Indexed Job.
    #[arg(long, value_parser = harness::fleet::slice::parse_slice)]
    slice: Option<harness::fleet::slice::SliceArg>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Args, Debug)]
struct ReplayArgs {
    /// The run directory to replay (its run.toml is read).
    run_dir: PathBuf,
    /// The replica binary (default: the one run.toml names).
    #[arg(long)]
    replica_bin: Option<PathBuf>,
    /// Replay against this target instead of the run's own.
    #[arg(long, value_enum)]
    target: Option<TargetKind>,
    /// The etcd binary for an etcd run (default: `etcd` on PATH).
    #[arg(long)]
    etcd_bin: Option<PathBuf>,
    /// No progress display.
    #[arg(long)]
    no_progress: bool,
    /// Where the replay's run directory is written (default: beside the original).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct BenchArgs {
    /// Length of each measured phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    time: Duration,
    /// Number of replicas.
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
    /// faultline and etcd back to back, same workload and fsync policy, in one table (with
    /// --baseline: this replica build and the baseline instead of etcd).
    #[arg(long)]
    compare: bool,
    /// Another replica build (its `replica` binary) measured beside this one: both clusters
    /// up at once, their phases alternating, the table ending with this build's ops/s and p50
    /// as ratios of the baseline's. A build this harness cannot drive is refused by name.
    #[arg(long, value_name = "BIN")]
    baseline: Option<PathBuf>,
    /// Seed of the clients' operations (default: random).
    #[arg(long)]
    seed: Option<u64>,
    #[command(flatten)]
    shards: ShardArgs,
    #[command(flatten)]
    common: CommonArgs,
}

/// The fault families of `--nemesis` (a newtype so clap takes the list as one value).
#[derive(Clone, Debug, PartialEq)]
struct Families(Vec<FaultFamily>);

fn parse_nemesis(s: &str) -> Result<Families, String> {
    parse_families(s, World::Processes).map(Families)
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
            nemesis: self
                .nemesis
                .as_ref()
                .map_or_else(|| RunParams::default().nemesis, |f| f.0.clone()),
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
            stall_ms: None,
            set_timeout_ms: None,
            tunables: None,
            ..RunParams::default()
        };
        let mut params = params;
        self.shards.apply(&mut params);
        common_options(&self.common, params, self.seed.unwrap_or_else(random_seed))
    }
}

impl RunArgs {
    /// [`RunArgs::options`] with a sharded run's fault set and replica binary settled (see
    /// [`harness::run::resolve_sharded_faults`]).
    fn resolved_options(&self) -> Result<RunOptions, RunError> {
        let mut opts = self.options();
        let bugs_bin = self.replica_bugs_bin.clone().unwrap_or_else(|| {
            let beside = opts.replica_bin.with_file_name("replica-bugs");
            if beside.is_file() {
                beside
            } else {
                harness::run::zoo::default_bugs_bin()
            }
        });
        let families = self.nemesis.as_ref().map(|f| f.0.clone());
        harness::run::resolve_sharded_faults(&mut opts, families, &bugs_bin)?;
        Ok(opts)
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
        keep_data: common.keep_data,
    }
}

/// A mistake in what was asked (exit 64), not a failure of the harness.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct UsageError(String);

fn usage(message: impl Into<String>) -> anyhow::Error {
    UsageError(message.into()).into()
}

/// 64 for a usage error (bad flag values, a bad scenario, not a run directory), else 70.
fn exit_code_for(e: &anyhow::Error) -> i32 {
    let usage = e.chain().any(|cause| {
        cause.downcast_ref::<UsageError>().is_some()
            || cause.downcast_ref::<SliceError>().is_some()
            || matches!(
                cause.downcast_ref::<MergeError>(),
                Some(MergeError::Mixed { .. })
            )
            || matches!(cause.downcast_ref::<RunError>(), Some(RunError::Invalid(_)))
    });
    if usage {
        EXIT_USAGE
    } else {
        EXIT_ERROR
    }
}

/// The error and its causes on one line, each cause once: our messages often quote their
/// source already ("cannot read x: No such file"), and anyhow's `{:#}` would repeat it.
fn render_error(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

fn warn_about(params: &RunParams) {
    for warning in harness::run::warnings(params) {
        eprintln!("warning: {warning}");
    }
}

fn print_summary(s: &RunSummary) {
    print!("{}", s.outcome_lines());
}

async fn dispatch(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        None => run_one(&cli.run).await,
        Some(Command::Run(args)) => run_one(&args).await,
        Some(Command::Scenario(args)) => scenario(&args).await,
        Some(Command::Campaign(args)) => campaign(&args).await,
        Some(Command::Sim(args)) => harness::sim::cli::run(&args),
        Some(Command::Replay(args)) => replay(&args).await,
        Some(Command::Merge(args)) => merge(&args),
        Some(Command::Zoo(args)) if args.sim && args.rate.is_some() => sim_zoo_rates(&args),
        Some(Command::Zoo(args)) if args.sim => {
            let opts = sim_zoo_options(&args);
            let rows = harness::sim::zoo::run_zoo(&opts)?;
            print!("{}", harness::sim::zoo::render_table(&rows));
            let failed = rows.iter().filter(|r| !r.passed()).count() as u64;
            println!(
                "{}, {failed} failed; table in {}",
                count(rows.len() as u64, "row"),
                opts.out.join("zoo-sim.txt").display()
            );
            Ok(if failed == 0 { 0 } else { 1 })
        }
        Some(Command::Zoo(args)) => zoo(&args).await,
        Some(Command::Prune(args)) => prune(&args),
        Some(Command::Bench(args)) => {
            let mut params = RunParams {
                nodes: args.nodes,
                nemesis: Vec::new(),
                ..RunParams::default()
            };
            args.shards.apply(&mut params);
            let mut run =
                common_options(&args.common, params, args.seed.unwrap_or_else(random_seed));
            let out = run.out.clone();
            run.out = out.join("bench");
            let targets = if args.baseline.is_some() {
                vec![TargetKind::Faultline]
            } else if args.compare {
                vec![TargetKind::Faultline, TargetKind::Etcd]
            } else {
                vec![args.common.target]
            };
            // Side by side, both targets go direct unless told otherwise (their relays differ:
            // UDP for the replica, TCP for etcd).
            let nets = match (args.net, args.compare || args.baseline.is_some()) {
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
                baseline: args.baseline.clone(),
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

async fn scenario(args: &ScenarioArgs) -> anyhow::Result<i32> {
    let mut params = RunParams {
        nodes: args.nodes,
        net: args.net,
        bug: args.bug.clone(),
        nemesis: Vec::new(),
        ..RunParams::default()
    };
    args.shards.apply(&mut params);
    let opts = ScenarioOptions {
        run: common_options(&args.common, params, 0),
        file: args.file.clone(),
        interactive: args.interactive,
        script: None,
        stall: args.stall,
        set_timeout: args.set_timeout,
    };
    let summary = run_scenario(&opts).await?;
    print_summary(&summary);
    Ok(summary.exit_code)
}

fn merge(args: &MergeArgs) -> anyhow::Result<i32> {
    let opts = harness::fleet::merge::MergeOptions {
        inputs: args.dirs.clone(),
        out: args.out.clone(),
        force: args.force,
        shrink: !args.no_shrink,
    };
    let merged = harness::fleet::merge::merge(&opts)?;
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
    for line in harness::fleet::merge::task_problems(&merged) {
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

async fn campaign(args: &CampaignArgs) -> anyhow::Result<i32> {
    if let Some(slice) = args.slice {
        return campaign_slice(args, slice).await;
    }
    let opts = args.run.resolved_options()?;
    harness::run::validate(&opts.params)?;
    warn_about(&opts.params);
    let runs = match (args.runs, args.until_failure) {
        (Some(n), _) => n,
        (None, true) => MAX_UNTIL_FAILURE_RUNS,
        (None, false) => 1,
    };
    // The drawn tunables are the replica's: other targets keep their defaults.
    let explore = (!args.defaults && opts.params.target == TargetKind::Faultline).then(|| Pins {
        checkpoint_interval_slots: args.run.checkpoint_interval,
        nemesis_interval_ms: args.run.nemesis_interval.map(ms),
        ..Pins::default()
    });
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
async fn campaign_slice(
    args: &CampaignArgs,
    slice: harness::fleet::slice::SliceArg,
) -> anyhow::Result<i32> {
    use harness::fleet::task::{fresh_summary, TaskKind};
    let slice = slice.resolve()?;
    let (Some(first_seed), Some(runs)) = (args.run.seed, args.runs) else {
        return Err(usage(
            "--slice needs --seed and --runs: every task must share out the same runs",
        ));
    };
    let mut opts = args.run.resolved_options()?;
    harness::run::validate(&opts.params)?;
    warn_about(&opts.params);
    opts.out = opts.out.join(slice.dir_name());
    let explore = (!args.defaults && opts.params.target == TargetKind::Faultline).then(|| Pins {
        checkpoint_interval_slots: args.run.checkpoint_interval,
        nemesis_interval_ms: args.run.nemesis_interval.map(ms),
        ..Pins::default()
    });
    let mut binaries: Vec<(&str, &std::path::Path)> = Vec::new();
    match opts.params.target {
        TargetKind::Faultline => binaries.push(("replica", &opts.replica_bin)),
        TargetKind::Etcd => binaries.push(("etcd", &opts.etcd_bin)),
    }
    let build = harness::fleet::identity::BuildIdentity::of(&binaries)
        .context("cannot hash the binaries this task runs")?;
    let mut params = match serde_json::to_value(&opts.params)? {
        serde_json::Value::Object(map) => map,
        _ => serde_json::Map::new(),
    };
    params.insert("defaults".into(), args.defaults.into());
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
    let (task, done) = harness::fleet::task::Task::open(&opts.out, fresh, true)
        .with_context(|| format!("cannot write the task summary in {}", opts.out.display()))?;
    let seeds: Vec<u64> = share.filter(|s| !done.contains(s)).collect();
    let record = |s: &RunSummary| {
        print_summary(s);
        let checks = checker::Results::read_json(&s.dir.join("results.json"))
            .map(|r| harness::sim::failed_checks(&r))
            .unwrap_or_default();
        let result = harness::fleet::task::SeedResult {
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
fn campaign_reproduce_flags() -> String {
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

async fn replay(args: &ReplayArgs) -> anyhow::Result<i32> {
    let dir = &args.run_dir;
    // A simulated run's run.toml is not a real run's: it is recognised by its kind first.
    if harness::sim::run_kind(dir).ok().as_deref() == Some(harness::sim::SIM_KIND) {
        let replay = harness::sim::cli::replay(dir, args.out.as_deref())?;
        return Ok(harness::sim::cli::print_replay(&replay));
    }
    if let Err(e) = harness::run::rundir::RunInfo::load(dir) {
        return Err(usage(format!(
            "{} is not a run directory (a directory holding a run.toml): {e}",
            dir.display()
        )));
    }
    use harness::run::replay::{original_outcome, unfaithful_after, unfaithful_before, Outcome};
    let original = original_outcome(dir);
    let unfaithful = unfaithful_before(dir);
    let summary = harness::run::replay::replay(
        dir,
        harness::run::replay::Binaries {
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
        harness::run::replay::reproduction_line(
            original.as_ref(),
            &Outcome::of(&summary),
            unfaithful.as_deref()
        )
    );
    Ok(summary.exit_code)
}

/// Prints a rate table's row as soon as it is measured (the table comes again at the end).
fn print_rate_row(row: &harness::run::rates::RateRow) {
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

fn print_rate_table(table: &harness::run::rates::RateTable, out: &std::path::Path) -> i32 {
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
fn sim_zoo_options(args: &ZooArgs) -> harness::sim::zoo::SimZooOptions {
    harness::sim::zoo::SimZooOptions {
        out: args.out.join("sim"),
        from_seed: args.seed.unwrap_or(1),
        seeds_per_bug: args.seeds_per_bug.max(1),
        only: args.bugs.clone(),
        ops: None,
        shards: 3,
    }
}

/// `harness zoo --sim --rate N`.
fn sim_zoo_rates(args: &ZooArgs) -> anyhow::Result<i32> {
    let opts = sim_zoo_options(args);
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let seeds = args.rate.unwrap_or(1);
    let table = harness::sim::zoo::run_rates(&opts, seeds, jobs, &print_rate_row)?;
    let code = print_rate_table(&table, &opts.out);
    println!(
        "rerun one of a row's failing_seeds (rates.json): \
         harness sim --seeds 1 --from-seed SEED --bug BUG [--shards 3]"
    );
    Ok(code)
}

async fn zoo(args: &ZooArgs) -> anyhow::Result<i32> {
    let opts = harness::run::zoo::ZooOptions {
        out: args.out.clone(),
        replica_bin: args
            .replica_bin
            .clone()
            .unwrap_or_else(harness::run::zoo::default_bugs_bin),
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
        let table = harness::run::zoo::run_rates(&opts, runs, &print_rate_row).await?;
        return Ok(print_rate_table(&table, &opts.out));
    }
    let rows = harness::run::zoo::run_zoo(&opts).await?;
    print!("{}", harness::run::zoo::render_table(&rows));
    let failed = rows.iter().filter(|r| !r.passed()).count() as u64;
    println!(
        "{}, {failed} failed; table in {}",
        count(rows.len() as u64, "row"),
        opts.out.join("zoo.txt").display()
    );
    Ok(if failed == 0 { 0 } else { 1 })
}

fn prune(args: &PruneArgs) -> anyhow::Result<i32> {
    use harness::run::store::{human_bytes, prune, PruneRule};
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

async fn run_one(args: &RunArgs) -> anyhow::Result<i32> {
    let opts = args.resolved_options()?;
    harness::run::validate(&opts.params)?;
    warn_about(&opts.params);
    let summary = harness::run::run_single(&opts).await?;
    print_summary(&summary);
    Ok(summary.exit_code)
}

/// The name of the first SIGINT or SIGTERM to arrive.
async fn next_signal(term: &mut Option<tokio::signal::unix::Signal>) -> &'static str {
    match term {
        Some(term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "SIGINT",
            _ = term.recv() => "SIGTERM",
        },
        None => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

/// Watches for Ctrl-C and SIGTERM. The first one, while a run is in progress, is sent on the
/// returned channel so `main` can stop the run and save it; otherwise (and on a second
/// signal, for someone who will not wait for the check) every replica is killed and the
/// process exits at once. A command busy on this thread (`sim`) is exited the same way.
fn install_signal_handlers() -> tokio::sync::oneshot::Receiver<&'static str> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => Some(s),
                Err(e) => {
                    eprintln!("warning: cannot watch SIGTERM: {e}");
                    None
                }
            };
        let first = next_signal(&mut term).await;
        if !harness::run::interrupt::in_progress() || tx.send(first).is_err() {
            exit_at_once();
        }
        next_signal(&mut term).await;
        exit_at_once();
    });
    rx
}

fn exit_at_once() -> ! {
    kill_all_children();
    eprintln!("\ninterrupted: every replica was stopped; the history so far is on disk");
    std::process::exit(EXIT_INTERRUPTED);
}

/// After a signal: the run was dropped (its replicas are being killed); check and save it.
fn save_interrupted(signal: &str) -> i32 {
    match harness::run::interrupt::finish_interrupted(signal) {
        Some(Ok(summary)) => {
            print_summary(&summary);
            eprintln!(
                "interrupted by {signal}: every replica was stopped; run directory {}",
                summary.dir.display()
            );
        }
        Some(Err(e)) => eprintln!("interrupted by {signal}; cannot save the run: {e}"),
        None => eprintln!("interrupted by {signal}"),
    }
    EXIT_INTERRUPTED
}

/// Runs the command until it ends or a signal interrupts it.
async fn run_until_signal(cli: Cli) -> i32 {
    let signals = install_signal_handlers();
    let mut command = Box::pin(dispatch(cli));
    let outcome = tokio::select! {
        result = &mut command => Ok(result),
        Ok(signal) = signals => Err(signal),
    };
    match outcome {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => {
            eprintln!("error: {}", render_error(&e));
            exit_code_for(&e)
        }
        Err(signal) => {
            eprintln!(
                "\n{signal}: stopping every replica and checking what was recorded \
                 (again to quit at once)"
            );
            kill_all_children();
            drop(command);
            save_interrupted(signal)
        }
    }
}

/// Log timestamps under `harness sim`: the simulated world's clock, not the wall's.
struct VirtualTime;

impl tracing_subscriber::fmt::time::FormatTime for VirtualTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match sim::world::virtual_now_ms() {
            Some(ms) => write!(w, "virtual {:>4}.{:03} s", ms / 1000, ms % 1000),
            None => write!(w, "virtual    -    "),
        }
    }
}

/// Bare `harness` (no subcommand, no flag): the help, not a 60 s fault run nobody asked for.
/// Exit 64, so a script that lost its arguments does not read it as a valid run.
fn help_when_bare(args: usize) -> Option<i32> {
    use clap::CommandFactory;
    if args > 1 {
        return None;
    }
    let _ = Cli::command().print_long_help();
    Some(EXIT_USAGE)
}

fn main() {
    if let Some(code) = help_when_bare(std::env::args_os().len()) {
        std::process::exit(code);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // `RUST_LOG=replica=info harness sim --seeds 1 --from-seed S` shows what the simulated
    // replicas log (elections, leader changes, step-downs) for one seed, stamped with virtual
    // time; plain text unless stderr is a terminal.
    if std::env::var_os("RUST_LOG").is_some() {
        use std::io::IsTerminal;
        let logs = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let _ = match cli.command {
            Some(Command::Sim(_)) => logs.with_timer(VirtualTime).try_init(),
            _ => logs.try_init(),
        };
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
    let code = runtime.block_on(run_until_signal(cli));
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
            cli.run.options().params.nemesis,
            vec![FaultFamily::Kill, FaultFamily::Pause]
        );
        let cli = Cli::try_parse_from(["harness", "run", "--nemesis", "none"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Run(ref a)) if a.options().params.nemesis.is_empty())
        );
        assert!(Cli::try_parse_from(["harness", "scenario", "x.csv", "--interactive"]).is_ok());
        assert!(Cli::try_parse_from(["harness", "--nemesis", "meteor"]).is_err());
    }

    /// Help texts say the defaults and the relays as they are, without stray spaces.
    #[test]
    fn help_texts_say_defaults_and_relays() {
        use clap::CommandFactory;
        let help = Cli::command()
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        let default = format!("(default: {}s", DEFAULT_NEMESIS_INTERVAL_MS / 1000);
        assert!(help.contains(&default), "{help}");
        assert!(
            help.contains("UDP relay") && help.contains("TCP relay for etcd"),
            "{help}"
        );
        assert!(
            help.contains("isolate-follower,crash-coordinator"),
            "{help}"
        );
        assert_eq!(help_when_bare(2), None);
    }

    #[test]
    fn prune_ages_parse() {
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_age("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1_800)));
        assert!(parse_age("soon").is_err());
    }

    /// Every argument of every subcommand says what it is for in `--help`.
    #[test]
    fn every_argument_has_help_text() {
        use clap::CommandFactory;
        let command = Cli::command();
        command.clone().debug_assert();
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("harness"), command)];
        while let Some((path, command)) = stack.pop() {
            for arg in command.get_arguments() {
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !builtin && arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_id()));
                }
            }
            for sub in command.get_subcommands() {
                stack.push((format!("{path} {}", sub.get_name()), sub.clone()));
            }
        }
        assert!(missing.is_empty(), "arguments without help: {missing:?}");
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("harness").chain(args.iter().copied()))
    }

    fn refusal(args: &[&str]) -> String {
        let cli = parse(args).unwrap_or_else(|e| panic!("{args:?} should parse: {e}"));
        let run = match cli.command {
            None => cli.run,
            Some(Command::Run(run)) => run,
            Some(Command::Campaign(c)) => c.run,
            other => panic!("not a run: {other:?}"),
        };
        let e = harness::run::validate(&run.options().params)
            .expect_err("refused")
            .into();
        assert_eq!(exit_code_for(&e), EXIT_USAGE, "{e}");
        e.to_string()
    }

    #[test]
    fn bad_values_are_usage_errors_that_name_the_flag() {
        assert!(refusal(&["--loss", "-0.1"]).contains("--loss -0.1"));
        assert!(refusal(&["--loss", "2"]).contains("--loss 2"));
        assert!(refusal(&["--nodes", "0"]).contains("--nodes 0"));
        assert!(refusal(&["run", "--clients", "0"]).contains("--clients 0"));
        assert!(refusal(&["--time", "0s"]).contains("--time"));
        assert!(refusal(&["--rate", "0"]).contains("--rate 0"));
        assert!(refusal(&["campaign", "--rate", "-5"]).contains("--rate -5"));
        assert!(refusal(&["--nemesis-interval", "0s"]).contains("no fault"));
        let e = parse(&["campaign", "--runs", "0"]).unwrap_err();
        assert!(e.use_stderr() && e.to_string().contains("--runs"), "{e}");
        assert!(
            parse(&["zoo", "--progress"]).is_err(),
            "it is --no-progress now"
        );
        assert!(parse(&["zoo", "--no-progress"]).is_ok());
        assert!(parse(&["zoo", "--sim", "--rate", "5", "--jobs", "1"]).is_ok());
        assert!(
            parse(&["zoo", "--rate", "0"]).is_err(),
            "a rate of no seeds"
        );
        assert!(parse(&["replay", "x", "--out", "elsewhere"]).is_ok());
    }

    #[test]
    fn odd_but_allowed_values_are_warned_about() {
        let params = |args: &[&str]| parse(args).unwrap().run.options().params;
        let warnings = harness::run::warnings(&params(&["--nodes", "2"]));
        assert!(warnings[0].contains("--nodes 2"), "{warnings:?}");
        let warnings = harness::run::warnings(&params(&["--clients", "11"]));
        assert!(warnings[0].contains("11 accounts (A..K)"), "{warnings:?}");
        assert!(harness::run::warnings(&params(&[])).is_empty());
        assert!(harness::run::validate(&params(&[
            "--nemesis",
            "none",
            "--nemesis-interval",
            "0s"
        ]))
        .is_ok());
    }

    #[test]
    fn errors_name_each_cause_once() {
        let io = std::io::Error::from(std::io::ErrorKind::NotFound);
        let e = anyhow::Error::new(harness::run::rundir::RunDirError::Read {
            path: "x/run.toml".into(),
            source: io,
        });
        let text = render_error(&e.context("cannot replay"));
        assert_eq!(text.matches("not found").count(), 1, "{text}");
        assert!(
            text.starts_with("cannot replay: cannot read x/run.toml"),
            "{text}"
        );
        assert_eq!(exit_code_for(&usage("bad")), EXIT_USAGE);
        assert_eq!(exit_code_for(&anyhow::anyhow!("boom")), EXIT_ERROR);
    }
}
