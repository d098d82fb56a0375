//! `harness run`: one fault campaign run, and the flags every run-like command shares
//! ([`CommonArgs`], [`RunArgs`], [`ShardArgs`]).

use crate::faults::schedule::{parse_families, FaultFamily, World};
use crate::faults::tunables::Pins;
use crate::params::{NetMode, RunParams};
use crate::params::{ReadMode, TargetKind};
use crate::run::rundir::{default_replica_bin, parse_duration};
use crate::run::shared::{ms, RunError, RunOptions, RunSummary};
use crate::targets::etcd::find_etcd_bin;
use clap::Args;
use replica::core::LockPolicy;
use std::path::PathBuf;
use std::time::Duration;

/// `--cross-shard-share` when neither given nor drawn (`--defaults`).
pub const DEFAULT_CROSS_SHARD_SHARE: f64 = 0.5;

/// `--nemesis-interval` when not given.
pub const DEFAULT_NEMESIS_INTERVAL_MS: u64 = 5_000;

#[derive(Args, Debug, Clone)]
pub struct CommonArgs {
    /// Where run directories are written.
    #[arg(long, default_value = "reports")]
    pub out: PathBuf,
    /// The replica binary (default: next to this executable).
    #[arg(long)]
    pub replica_bin: Option<PathBuf>,
    /// No progress display.
    #[arg(long)]
    pub no_progress: bool,
    /// The system under test: the faultline replica, or etcd 3.4 members.
    #[arg(long, value_enum, default_value_t = TargetKind::Faultline)]
    pub target: TargetKind,
    /// The etcd binary for `--target etcd` (default: `etcd` on PATH).
    #[arg(long)]
    pub etcd_bin: Option<PathBuf>,
    /// Keep the data directories and certificates after the check (by default a valid run
    /// deletes them and a failing one packs them into data.tar.gz).
    #[arg(long)]
    pub keep_data: bool,
}

#[derive(Args, Debug, Clone)]
pub struct RunArgs {
    /// Number of replicas.
    #[arg(long, default_value_t = 5)]
    pub nodes: u32,
    /// Number of concurrent clients (client i owns account i).
    #[arg(long, default_value_t = 10)]
    pub clients: u32,
    /// Accounts in the bank (default: one per client, A–J for ten); more accounts mean less
    /// contention. Client i still sends from account i (modulo the accounts).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub accounts: Option<u32>,
    /// Length of the workload, e.g. 60s, 2m, 500ms.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub time: Duration,
    /// Total operations per second over all clients (default: closed loop).
    #[arg(long, allow_negative_numbers = true)]
    pub rate: Option<f64>,
    /// Faults to inject: a comma-separated subset of
    /// kill,pause,partition,isolate-follower,crash-coordinator; all (the first four); or none
    /// (default: kill,pause,partition; a sharded run adds crash-coordinator when replica-bugs
    /// is found). power, clock and disk are the simulator's (harness sim --faults).
    #[arg(long, value_parser = parse_nemesis)]
    pub nemesis: Option<Families>,
    /// With --shards and crash-coordinator: the replica built with failpoints (default:
    /// replica-bugs beside the replica binary).
    #[arg(long)]
    pub replica_bugs_bin: Option<PathBuf>,
    /// Time between a fault and its heal, and between a heal and the next fault (default:
    /// drawn from the seed, 1s, 2s or 5s; 5s with --defaults).
    #[arg(long, value_parser = parse_duration)]
    pub nemesis_interval: Option<Duration>,
    /// Seed of every random choice (default: random, recorded in run.toml).
    #[arg(long)]
    pub seed: Option<u64>,
    /// relay: traffic through the harness's relay (partitions possible): a UDP relay for the
    /// replica's QUIC, a TCP relay for etcd; direct: not.
    #[arg(long, value_enum, default_value_t = NetMode::Relay)]
    pub net: NetMode,
    /// The replicas' checkpoint interval K in executed slots (default: drawn from the seed;
    /// the replica's own, 100, with --defaults).
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// Keep the replica's default settings. Without it every run draws its checkpoint
    /// interval, batch and pipeline limits, election timing and (unless given) the nemesis
    /// interval from its seed, and records the draw in run.toml.
    #[arg(long)]
    pub defaults: bool,
    /// A planted bug passed to every replica (`replica run --bug NAME`).
    #[arg(long)]
    pub bug: Option<String>,
    /// How long a client retries one request before recording it as info.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub op_timeout: Duration,
    /// One attempt's timeout before trying another replica.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub attempt_timeout: Duration,
    /// Random datagram loss on every relay link, 0 to 1.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub loss: f64,
    /// Extra delay on every relay link.
    #[arg(long, default_value = "0ms", value_parser = parse_duration)]
    pub delay: Duration,
    /// How long a fresh cluster may take to elect its first leader.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub start_timeout: Duration,
    /// With --target etcd: linearizable reads, or serializable ones (documented as possibly
    /// stale).
    #[arg(long, value_enum, default_value_t = ReadMode::Linearizable)]
    pub etcd_reads: ReadMode,
    #[command(flatten)]
    pub shards: ShardArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Args, Debug, Clone)]
pub struct ShardArgs {
    /// A sharded bank of this many Paxos groups, with two-phase commit between them (1: the
    /// classic cluster of --nodes replicas).
    #[arg(long, default_value_t = 1)]
    pub shards: u32,
    /// Replicas of each shard (with --shards above 1; --nodes is then ignored).
    #[arg(long, default_value_t = 3)]
    pub replicas_per_shard: u32,
    /// With --shards: the share of transfers between accounts of different shards, 0 to 1
    /// (default: drawn from the seed with the rest of the workload's mix; 0.5 with
    /// --defaults).
    #[arg(long)]
    pub cross_shard_share: Option<f64>,
    /// With --shards: what a transfer or read that meets an account locked by a cross-shard
    /// transaction does. wait-die: the shard's leader holds it back up to 250 ms for the
    /// lock (a participant's PREPARE only behind younger transactions); no-wait: it fails
    /// lock-conflict at once. Passed to every replica, recorded in run.toml.
    #[arg(long, value_enum, default_value_t = LockPolicy::NoWait)]
    pub lock_policy: LockPolicy,
}

impl ShardArgs {
    /// Sets the sharded shape on `params` (and its node count), if sharded.
    pub fn apply(&self, params: &mut RunParams) {
        if self.shards <= 1 {
            return;
        }
        let shape = crate::params::ShardParams {
            shards: self.shards,
            replicas_per_shard: self.replicas_per_shard,
            cross_shard_share: self.cross_shard_share.unwrap_or(DEFAULT_CROSS_SHARD_SHARE),
            workload: None,
            lock_policy: self.lock_policy,
            failpoints: None,
        };
        params.nodes = shape.nodes();
        params.shards = Some(shape);
    }
}

/// The fault families of `--nemesis` (a newtype so clap takes the list as one value).
#[derive(Clone, Debug, PartialEq)]
pub struct Families(Vec<FaultFamily>);

pub fn parse_nemesis(s: &str) -> Result<Families, String> {
    parse_families(s, World::Processes).map(Families)
}

pub fn random_seed() -> u64 {
    // Short seeds are easier to read and type; 2^32 of them is plenty.
    u64::from(rand::random::<u32>())
}

impl RunArgs {
    pub fn options(&self) -> RunOptions {
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
            accounts: self.accounts,
            ..RunParams::default()
        };
        let mut params = params;
        self.shards.apply(&mut params);
        common_options(&self.common, params, self.seed.unwrap_or_else(random_seed))
    }
}

impl RunArgs {
    /// The pins of the tunables each run draws from its seed, unless `--defaults` (or a
    /// target other than the faultline replica, whose settings these are).
    pub fn explore(&self, opts: &RunOptions) -> Option<Pins> {
        (!self.defaults && opts.params.target == TargetKind::Faultline).then(|| Pins {
            checkpoint_interval_slots: self.checkpoint_interval,
            nemesis_interval_ms: self.nemesis_interval.map(ms),
            cross_shard_share: self.shards.cross_shard_share,
            ..Pins::default()
        })
    }

    /// [`RunArgs::options`] with a sharded run's fault set and replica binary settled (see
    /// [`crate::run::resolve_sharded_faults`]).
    pub fn resolved_options(&self) -> Result<RunOptions, RunError> {
        let mut opts = self.options();
        let bugs_bin = self.replica_bugs_bin.clone().unwrap_or_else(|| {
            let beside = opts.replica_bin.with_file_name("replica-bugs");
            if beside.is_file() {
                beside
            } else {
                crate::run::zoo::default_bugs_bin()
            }
        });
        let families = self.nemesis.as_ref().map(|f| f.0.clone());
        crate::run::resolve_sharded_faults(&mut opts, families, &bugs_bin)?;
        Ok(opts)
    }
}

pub fn common_options(common: &CommonArgs, mut params: RunParams, seed: u64) -> RunOptions {
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

pub fn warn_about(params: &RunParams) {
    for warning in crate::run::warnings(params) {
        eprintln!("warning: {warning}");
    }
}

pub fn print_summary(s: &RunSummary) {
    print!("{}", s.outcome_lines());
}

pub async fn run_one(args: &RunArgs) -> anyhow::Result<i32> {
    let mut opts = args.resolved_options()?;
    if let Some(pins) = args.explore(&opts) {
        crate::run::campaign::draw_tunables(&mut opts, &pins);
    }
    crate::run::validate(&opts.params)?;
    warn_about(&opts.params);
    let summary = crate::run::run_single(&opts).await?;
    print_summary(&summary);
    Ok(summary.exit_code)
}
