//! `harness scenario`: a scenario CSV set by set, or the interactive prompt.

use crate::commands::run::{common_options, print_summary, CommonArgs, ShardArgs};
use crate::params::{NetMode, RunParams};
use crate::run::rundir::parse_duration;
use crate::scenario::run::{run_scenario, ScenarioOptions};
use clap::Args;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ScenarioArgs {
    /// The scenario CSV file.
    pub file: PathBuf,
    /// A prompt before each set and after the last: look inside the replicas, kill, restart,
    /// cut links, then go on (type `help` there).
    #[arg(long)]
    pub interactive: bool,
    /// Number of replicas (at least the highest one the file names).
    #[arg(long, default_value_t = 5)]
    pub nodes: u32,
    /// relay: traffic through the harness's relay (links can be cut): a UDP relay for the
    /// replica's QUIC, a TCP relay for etcd; direct: not.
    #[arg(long, value_enum, default_value_t = NetMode::Relay)]
    pub net: NetMode,
    /// A planted bug passed to every replica (`replica run --bug NAME`; needs replica-bugs).
    #[arg(long)]
    pub bug: Option<String>,
    /// How long a set without a quorum is given before moving on.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub stall: Duration,
    /// Longest wait for a set's transfers when it has a quorum.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub set_timeout: Duration,
    /// A sharded bank (`Live Nodes` then names replicas of every shard, n1..n(S×R); `LF`
    /// fails every shard's leader).
    #[command(flatten)]
    pub shards: ShardArgs,
    #[command(flatten)]
    pub common: CommonArgs,
}

pub async fn scenario(args: &ScenarioArgs) -> anyhow::Result<i32> {
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
