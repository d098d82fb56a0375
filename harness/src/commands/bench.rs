//! `harness bench`: throughput and latency without faults, direct and through the relay.

use crate::commands::run::{common_options, random_seed, CommonArgs, ShardArgs};
use crate::params::TargetKind;
use crate::params::{NetMode, RunParams};
use crate::run::bench::{self, BenchOptions};
use crate::run::rundir::parse_duration;
use anyhow::Context;
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Length of each measured phase.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub time: Duration,
    /// Number of replicas.
    #[arg(long, default_value_t = 5)]
    pub nodes: u32,
    /// Clients of the classic phase.
    #[arg(long, default_value_t = 10)]
    pub clients: u32,
    /// Clients of the high-concurrency phase.
    #[arg(long, default_value_t = 200)]
    pub high_clients: u32,
    /// Accounts in the bank (default 10, A–J); with more accounts than clients each client
    /// sends from several, so fewer transfers meet a lock.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=100_000))]
    pub accounts: Option<u32>,
    /// Only this network mode (default: both; direct with --compare).
    #[arg(long, value_enum)]
    pub net: Option<NetMode>,
    /// faultline and etcd back to back, same workload and fsync policy, in one table (with
    /// --baseline: this replica build and the baseline instead of etcd).
    #[arg(long)]
    pub compare: bool,
    /// Another replica build (its `replica` binary) measured beside this one: both clusters
    /// up at once, their phases alternating, the table ending with this build's ops/s and p50
    /// as ratios of the baseline's. A build this harness cannot drive is refused by name.
    #[arg(long, value_name = "BIN")]
    pub baseline: Option<PathBuf>,
    /// The replicas' checkpoint interval K in executed slots, for both builds (default: the
    /// replica's own, 10).
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// Seed of the clients' operations (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    #[command(flatten)]
    pub shards: ShardArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// Runs `harness bench`: every target and network mode asked, a table and a saved report.
pub async fn bench(args: &BenchArgs) -> anyhow::Result<i32> {
    if args.baseline.is_some() && args.common.target != TargetKind::Faultline {
        // A baseline is another faultline replica build: against etcd it would be ignored.
        return Err(crate::commands::exit::usage(
            "--baseline compares two faultline replica builds; it cannot go with --target etcd",
        ));
    }
    let mut params = RunParams {
        nodes: args.nodes,
        nemesis: Vec::new(),
        accounts: args.accounts,
        checkpoint_interval_slots: args.checkpoint_interval,
        ..RunParams::default()
    };
    args.shards.apply(&mut params);
    let mut run = common_options(&args.common, params, args.seed.unwrap_or_else(random_seed));
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
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let path = bench::save(&report, &out)?;
    println!("saved {}", path.display());
    Ok(0)
}
