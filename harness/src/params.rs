//! The parameters of a run, as `run.toml` keeps them (docs/run-toml.md): what every layer of
//! the harness reads and none of them owns. The system under test ([`TargetKind`]) and how it
//! serves reads ([`ReadMode`]), how replicas and clients connect ([`NetMode`]), a sharded
//! bank's shape ([`ShardParams`]) and every knob of a run ([`RunParams`]).
//!
//! It sits at the bottom of the harness: it names the fault vocabulary's families and drawn
//! tunables (the nemesis's own leaf files), and nothing above them.

use crate::faults::schedule::{FaultFamily, SCHEDULE_VERSION};
use replica::core::LockPolicy;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Which system a run tests (`--target`, and `target` in run.toml).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    /// The faultline replica built beside the harness.
    #[default]
    Faultline,
    /// etcd 3.4 members (`etcd` on PATH or `--etcd-bin`).
    Etcd,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Faultline => "faultline",
            TargetKind::Etcd => "etcd",
        }
    }

    /// Whether the target's reads share the position of the write they observed
    /// (`"positions": "shared_reads"` in final.json) instead of taking one of their own.
    pub fn shared_read_positions(self) -> bool {
        self == TargetKind::Etcd
    }

    /// What the target's nodes are called in messages and tables.
    pub fn node_noun(self) -> &'static str {
        match self {
            TargetKind::Faultline => "replica",
            TargetKind::Etcd => "member",
        }
    }
}

/// How etcd serves reads (`--etcd-reads`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ReadMode {
    /// Through the leader's read index: never stale.
    #[default]
    Linearizable,
    /// Served from the member's own state: may be stale (documented by etcd).
    Serializable,
}

/// How the harness connects replicas and clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum NetMode {
    /// Through the harness's UDP relay, so links can be cut.
    Relay,
    /// Straight to the replicas (no partitions possible): for benchmarks.
    Direct,
}

/// Every knob of a campaign run. Durations are in milliseconds so run.toml stays plain.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunParams {
    /// The system under test (`--target`).
    #[serde(default)]
    pub target: TargetKind,
    /// How etcd serves reads (`--etcd-reads`); etcd runs only.
    #[serde(default)]
    pub etcd_reads: ReadMode,
    pub nodes: u32,
    pub clients: u32,
    pub time_ms: u64,
    /// Total operations per second over all clients; `None` = closed loop.
    #[serde(default)]
    pub rate: Option<f64>,
    pub nemesis: Vec<FaultFamily>,
    pub nemesis_interval_ms: u64,
    pub net: NetMode,
    /// Planted bug passed to every replica.
    #[serde(default)]
    pub bug: Option<String>,
    /// How long a client keeps retrying one request before recording `info`.
    pub op_timeout_ms: u64,
    /// One attempt's timeout before trying another replica.
    pub attempt_timeout_ms: u64,
    /// Random datagram loss on every relay link (0 to 1).
    #[serde(default)]
    pub loss: f64,
    /// Extra delay on every relay link.
    #[serde(default)]
    pub delay_ms: u64,
    /// How long a fresh cluster may take to elect its first leader.
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// The replicas' checkpoint interval K, in executed slots (default: the replica's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint_interval_slots: Option<u64>,
    /// A scenario file, for `harness scenario` runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<PathBuf>,
    /// A scenario's `--stall`: how long a set without a quorum is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stall_ms: Option<u64>,
    /// A scenario's `--set-timeout`: longest wait for a set's transfers with a quorum.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set_timeout_ms: Option<u64>,
    /// The replica's tunables, when a campaign drew them (see `tunables`); they override
    /// `checkpoint_interval_slots`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tunables: Option<crate::faults::tunables::Tunables>,
    /// A sharded bank (`--shards S` with S > 1); `None` is the classic one-group cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shards: Option<ShardParams>,
    /// The bank's number of accounts (`--accounts`); `None`: one per client, at least two
    /// (A–J for the default ten clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<u32>,
    /// How the fault schedule was drawn from the seed ([`SCHEDULE_VERSION`] for a new run);
    /// absent in a run.toml from before real runs recorded it: drawn by version 4 or
    /// earlier, with even odds (see [`crate::faults::schedule::FamilyOdds::for_real_version`]),
    /// and replayed so.
    #[serde(default = "last_even_real_version")]
    pub schedule_version: u32,
}

fn last_even_real_version() -> u32 {
    crate::faults::schedule::LAST_EVEN_REAL_VERSION
}

/// The shape and workload of a sharded bank: `shards` Paxos groups of `replicas_per_shard`
/// replicas (nodes n1..n(shards × replicas_per_shard), shard k being the k-th run of them,
/// accounts dealt round-robin as `replica init --shards` does), and the share of transfers
/// whose two accounts are on different shards, and the leaders' lock policy.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShardParams {
    pub shards: u32,
    pub replicas_per_shard: u32,
    pub cross_shard_share: f64,
    /// The workload's mix and contention, when drawn from the seed (every sharded run but
    /// one with `--defaults`); absent: the default mix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<crate::clients::workload::WorkloadShape>,
    /// What a transfer or read that meets a lock does (`--lock-policy`, passed to every
    /// replica). Absent in runs from before it existed: they ran no-wait.
    #[serde(default = "no_wait")]
    pub lock_policy: LockPolicy,
    /// When `crash-coordinator` faults arm their failpoints, when drawn from the seed (every
    /// sharded run but one with `--defaults`, since schedule version 5); absent: at the
    /// fault's start.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failpoints: Option<FailpointTiming>,
}

fn no_wait() -> LockPolicy {
    LockPolicy::NoWait
}

impl ShardParams {
    /// Every replica of every shard.
    pub fn nodes(&self) -> u32 {
        self.shards.saturating_mul(self.replicas_per_shard)
    }

    /// The `[[shards]]` tables of `accounts` over this shape, as the replica deals them.
    pub fn tables(&self, accounts: &[String]) -> Result<Vec<ShardTable>, String> {
        let accounts: Vec<replica::types::Account> =
            accounts.iter().map(|a| a.as_str().into()).collect();
        let specs = replica::shard::spread(&accounts, self.shards, self.replicas_per_shard)
            .map_err(|e| e.to_string())?;
        Ok(specs
            .into_iter()
            .map(|s| ShardTable {
                id: s.id.0,
                accounts: s.accounts.into_iter().map(String::from).collect(),
                nodes: s.nodes.iter().map(ToString::to_string).collect(),
            })
            .collect())
    }
}

/// One `[[shards]]` table of run.toml, in the shape the checker reads (docs/sharded.md).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardTable {
    pub id: u32,
    pub accounts: Vec<String>,
    pub nodes: Vec<String>,
}

impl Default for RunParams {
    fn default() -> Self {
        RunParams {
            target: TargetKind::Faultline,
            etcd_reads: ReadMode::Linearizable,
            nodes: 5,
            clients: 10,
            time_ms: 60_000,
            rate: None,
            // `election` so that election code runs in every default run, however rarely
            // pre-vote and sticky leaders would let a plain kill or partition change leaders.
            nemesis: vec![
                FaultFamily::Kill,
                FaultFamily::Pause,
                FaultFamily::Partition,
                FaultFamily::Election,
            ],
            nemesis_interval_ms: 5_000,
            net: NetMode::Relay,
            bug: None,
            op_timeout_ms: 10_000,
            attempt_timeout_ms: 500,
            loss: 0.0,
            delay_ms: 0,
            start_timeout_ms: default_start_timeout_ms(),
            checkpoint_interval_slots: None,
            scenario: None,
            stall_ms: None,
            set_timeout_ms: None,
            tunables: None,
            shards: None,
            accounts: None,
            schedule_version: SCHEDULE_VERSION,
        }
    }
}

fn default_start_timeout_ms() -> u64 {
    30_000
}

/// A real sharded run's failpoint timing: `[params.shards.failpoints]` in run.toml (drawn by
/// [`crate::faults::failpoints::draw_timing`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailpointTiming {
    /// From a `crash-coordinator` fault's start to the arming of its failpoint.
    pub arm_after_ms: u64,
}
