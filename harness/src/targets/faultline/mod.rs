//! The faultline replica cluster as a [`Target`]: [`Cluster`] (processes, UDP relay, control
//! transport) plus what a run adds around it: the shared leader hint and retry policy of the
//! client workers ([`crate::clients::caller`]), and the journal sampler that collects every replica's
//! executed log while the run goes on ([`crate::targets::faultline::journal`]). The scenario prompt's
//! questions are the replica's own introspection requests ([`inspect`]).
//!
//! A sharded bank (`--shards`) is one [`Cluster`] of every shard's replicas. Its clients
//! ([`ShardRouted`]) send each command to the shard that holds its account (a transfer's
//! source, whose shard coordinates a cross-shard one), following each shard's leader apart,
//! as the replica's own client library routes; the final phase reads no `read_all` (no
//! cross-shard snapshot yet) and writes final.json in the sharded shape.

pub mod cluster;
// A test double for the client side; compiled only into the crate's own unit tests, so the
// release binary never carries it.
#[cfg(test)]
pub mod fake;
mod inspect;
pub mod journal;

use super::{BankClient, BoxFuture, Inspect, PrepareSpec, Target, TargetError};
use crate::clients::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use crate::os::process::ReplicaState;
use crate::os::relay::Link;
use crate::os::transport::Transport;
use crate::params::TargetKind;
use crate::record::Recorder;
use crate::run::final_phase::{settle_and_fetch, FinalTimeouts};
use crate::targets::faultline::cluster::{Cluster, ClusterError, ClusterSpec};
use crate::targets::faultline::journal::{spawn_sampler, JournalCollector, Sampler};
use replica::bank::{Command, Op};
use replica::types::NodeId;
use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Submits through the replica's client protocol, following the leader (see [`submit`]).
pub struct FaultlineClient {
    pub transport: Arc<dyn Transport>,
    pub nodes: Vec<NodeId>,
    pub hint: Arc<LeaderHint>,
    pub policy: RetryPolicy,
}

impl BankClient for FaultlineClient {
    fn submit<'a>(&'a self, command: &'a Command, deadline: Instant) -> BoxFuture<'a, Submitted> {
        // Clients spread their first attempts over the replicas until a leader is known.
        let start = usize::try_from(command.client.0).unwrap_or(0);
        Box::pin(submit(
            self.transport.as_ref(),
            &self.nodes,
            &self.hint,
            command,
            start,
            deadline,
            self.policy,
        ))
    }
}

/// Clients per QUIC connection in a benchmark.
const CLIENTS_PER_TRANSPORT: usize = 50;

/// Clients spread over several connections by client id.
struct Spread<C>(Vec<C>);

impl<C: BankClient> BankClient for Spread<C> {
    fn submit<'a>(&'a self, command: &'a Command, deadline: Instant) -> BoxFuture<'a, Submitted> {
        let k = usize::try_from(command.client.0).unwrap_or(0) % self.0.len().max(1);
        match self.0.get(k) {
            Some(shard) => shard.submit(command, deadline),
            None => Box::pin(async {
                Submitted::Unknown {
                    last_error: "no connection".into(),
                    last_node: None,
                }
            }),
        }
    }
}

/// A sharded bank's client: each command goes to the shard holding its account, through
/// that shard's own [`FaultlineClient`] (its replicas, its leader hint).
pub struct ShardRouted {
    shard_of_account: BTreeMap<replica::types::Account, u32>,
    shards: BTreeMap<u32, FaultlineClient>,
}

impl ShardRouted {
    /// The shard that executes `command`: its account's (a transfer's source). A whole-bank
    /// read (a snapshot of every shard) is coordinated by a shard drawn from the client's id,
    /// so the clients' snapshots spread over the shards and a retry goes to the same one:
    /// its transaction id names the coordinator, so another shard would start a second one.
    fn shard_for(&self, command: &Command) -> u32 {
        let account = match &command.op {
            Op::Transfer { from, .. } => from,
            Op::Read { account } => account,
            Op::ReadAll => {
                let shards = self.shards.len().max(1) as u64;
                return (command.client.0 % shards) as u32 + 1;
            }
        };
        self.shard_of_account.get(account).copied().unwrap_or(1)
    }
}

impl BankClient for ShardRouted {
    fn submit<'a>(&'a self, command: &'a Command, deadline: Instant) -> BoxFuture<'a, Submitted> {
        let shard = self.shard_for(command);
        match self.shards.get(&shard) {
            Some(client) => client.submit(command, deadline),
            None => Box::pin(async move {
                Submitted::Unknown {
                    last_error: format!("no replicas for shard {shard}"),
                    last_node: None,
                }
            }),
        }
    }
}

pub struct FaultlineTarget {
    pub cluster: Cluster,
    /// The leader hint of the classic cluster, or of each shard by id.
    shard_hints: BTreeMap<u32, Arc<LeaderHint>>,
    hint: Arc<LeaderHint>,
    policy: RetryPolicy,
    sampler: Option<Sampler>,
}

impl FaultlineTarget {
    /// Prepares the cluster (certificates, config, relay), starts every replica and waits for
    /// a leader.
    pub async fn prepare(spec: &PrepareSpec<'_>) -> Result<FaultlineTarget, TargetError> {
        let params = spec.params;
        let cluster = start_cluster(spec).await?;
        let shard_hints = cluster
            .shard_members()
            .keys()
            .map(|&s| (s, Arc::new(LeaderHint::default())))
            .collect();
        Ok(FaultlineTarget {
            cluster,
            shard_hints,
            hint: Arc::new(LeaderHint::default()),
            policy: RetryPolicy {
                attempt_timeout: Duration::from_millis(params.attempt_timeout_ms),
            },
            sampler: None,
        })
    }
}

/// Prepares the cluster of `spec` in its directory, starts every replica and waits for the
/// first leader. A replica that exits meanwhile (a `--bug` its build cannot plant, a config it
/// rejects) ends the wait at once with its own words, not a leaderless timeout.
pub async fn start_cluster(spec: &PrepareSpec<'_>) -> Result<Cluster, ClusterError> {
    let params = spec.params;
    let cluster_spec = ClusterSpec {
        nodes: params.shards.map_or(params.nodes, |s| s.nodes()),
        net: params.net,
        replica_bin: spec.replica_bin.to_path_buf(),
        bug: params.bug.clone(),
        accounts: spec.accounts.clone(),
        initial_balance: spec.initial_balance,
        checkpoint_interval_slots: params.checkpoint_interval_slots,
        tunables: params.tunables,
        shards: params.shards,
    };
    let mut cluster = Cluster::prepare(spec.dir, cluster_spec).await?;
    if let Some(relay) = cluster.relay() {
        relay.set_impairment(params.loss, Duration::from_millis(params.delay_ms));
    }
    cluster.start_all()?;
    cluster
        .wait_for_first_leader(Duration::from_millis(params.start_timeout_ms))
        .await?;
    Ok(cluster)
}

impl FaultlineTarget {
    /// Clients of a sharded bank over `transport` (see [`ShardRouted`]).
    fn routed(&self, transport: Arc<dyn Transport>) -> ShardRouted {
        let map = self.cluster.config().shard_map();
        let shard_of_account = self
            .cluster
            .config()
            .accounts
            .iter()
            .filter_map(|a| map.shard_of_account(a).map(|s| (a.clone(), s.0)))
            .collect();
        let shards = self
            .cluster
            .shard_members()
            .into_iter()
            .map(|(shard, nodes)| {
                let hint = self.shard_hints.get(&shard).cloned().unwrap_or_default();
                let client = FaultlineClient {
                    transport: transport.clone(),
                    nodes,
                    hint,
                    policy: self.policy,
                };
                (shard, client)
            })
            .collect();
        ShardRouted {
            shard_of_account,
            shards,
        }
    }
}

impl Target for FaultlineTarget {
    fn kind(&self) -> TargetKind {
        TargetKind::Faultline
    }

    fn dir(&self) -> &Path {
        self.cluster.dir()
    }

    fn nodes(&self) -> &[NodeId] {
        self.cluster.nodes()
    }

    fn start(&mut self, node: NodeId) -> Result<(), TargetError> {
        Ok(self.cluster.start(node)?)
    }

    fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
        Ok(self.cluster.kill(node)?)
    }

    fn pause(&mut self, node: NodeId) -> Result<(), TargetError> {
        Ok(self.cluster.pause(node)?)
    }

    fn resume(&mut self, node: NodeId) -> Result<(), TargetError> {
        Ok(self.cluster.resume(node)?)
    }

    fn set_cuts(&self, cuts: &[Link]) {
        self.cluster.set_cuts(cuts);
    }

    fn heal_everything(&mut self) -> Result<Vec<String>, TargetError> {
        Ok(self.cluster.heal_everything()?)
    }

    fn stop_all(&mut self) {
        self.cluster.stop_all();
    }

    fn leader(&self) -> BoxFuture<'_, Option<NodeId>> {
        Box::pin(self.cluster.leader())
    }

    fn client(&self) -> Arc<dyn BankClient> {
        if self.cluster.is_sharded() {
            return Arc::new(self.routed(self.cluster.workload()));
        }
        Arc::new(FaultlineClient {
            transport: self.cluster.workload(),
            nodes: self.cluster.nodes().to_vec(),
            hint: self.hint.clone(),
            policy: self.policy,
        })
    }

    /// Starts the journal sampler and primes the leader hint.
    fn begin(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async move {
            let dir = self.cluster.dir().to_path_buf();
            let collector = if self.cluster.is_sharded() {
                JournalCollector::sharded(&dir.join("journals"), &self.cluster.node_shards())?
            } else {
                JournalCollector::new(&dir.join("journals"), self.cluster.nodes())?
            };
            self.sampler = Some(spawn_sampler(
                collector,
                self.cluster.control(),
                crate::targets::faultline::journal::JOURNAL_EVERY,
                Duration::from_secs(1),
            ));
            if let Some(leader) = self.cluster.leader().await {
                self.hint.set(leader);
            }
            Ok(())
        })
    }

    fn begin_bench(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async move {
            if let Some(leader) = self.cluster.leader().await {
                self.hint.set(leader);
            }
            Ok(())
        })
    }

    /// One QUIC connection per [`CLIENTS_PER_TRANSPORT`] clients (a connection's concurrent
    /// streams are limited).
    fn bench_client(&self, clients: u32) -> Result<Arc<dyn BankClient>, TargetError> {
        let connections = (clients as usize).div_ceil(CLIENTS_PER_TRANSPORT).max(1);
        if self.cluster.is_sharded() {
            let routed = (0..connections)
                .map(|_| Ok(self.routed(self.cluster.new_workload_transport()?)))
                .collect::<Result<Vec<_>, TargetError>>()?;
            return Ok(Arc::new(Spread(routed)));
        }
        let shards = (0..connections)
            .map(|_| {
                Ok(FaultlineClient {
                    transport: self.cluster.new_workload_transport()?,
                    nodes: self.cluster.nodes().to_vec(),
                    hint: self.hint.clone(),
                    policy: self.policy,
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        Ok(Arc::new(Spread(shards)))
    }

    fn final_phase<'a>(
        &'a mut self,
        recorder: &'a Recorder,
        first_process: u64,
    ) -> BoxFuture<'a, Result<Vec<String>, TargetError>> {
        Box::pin(async move {
            let Some(sampler) = self.sampler.take() else {
                return Ok(vec!["the journal sampler was never started".to_string()]);
            };
            let mut collector = sampler.finish().await?;
            let notes = settle_and_fetch(
                &self.cluster,
                recorder,
                first_process,
                self.policy,
                FinalTimeouts::default(),
                &mut collector,
            )
            .await?;
            Ok(notes)
        })
    }

    fn state(&mut self, node: NodeId) -> ReplicaState {
        self.cluster.state(node)
    }

    fn shard_leaders(&self) -> BoxFuture<'_, BTreeMap<u32, NodeId>> {
        Box::pin(self.cluster.shard_leaders())
    }

    fn node_shards(&self) -> BTreeMap<NodeId, u32> {
        if self.cluster.is_sharded() {
            self.cluster.node_shards()
        } else {
            BTreeMap::new()
        }
    }

    fn control(&self) -> Option<Arc<dyn Transport>> {
        Some(self.cluster.control())
    }

    fn quorum(&self) -> usize {
        self.cluster.config().quorum()
    }

    fn can_cut(&self) -> bool {
        self.cluster.relay().is_some()
    }

    fn inspect<'a>(&'a mut self, question: &'a Inspect) -> BoxFuture<'a, String> {
        Box::pin(self.answer(question))
    }
}
