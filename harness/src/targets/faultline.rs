//! The faultline replica cluster as a [`Target`]: [`Cluster`] (processes, UDP relay, control
//! transport) plus what a run adds around it: the shared leader hint and retry policy of the
//! client workers ([`crate::clients::caller`]), and the journal sampler that collects every replica's
//! executed log while the run goes on ([`crate::cluster::journal`]). The scenario prompt's
//! questions are the replica's own introspection requests ([`inspect`]).

mod inspect;

use super::{BankClient, BoxFuture, Inspect, PrepareSpec, Target, TargetError, TargetKind};
use crate::clients::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use crate::cluster::journal::{spawn_sampler, JournalCollector, Sampler};
use crate::cluster::relay::Link;
use crate::cluster::transport::Transport;
use crate::cluster::{Cluster, ClusterError, ClusterSpec, ReplicaState};
use crate::run::final_phase::{settle_and_fetch, FinalTimeouts};
use crate::run::record::Recorder;
use replica::bank::Command;
use replica::types::NodeId;
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
struct Sharded(Vec<FaultlineClient>);

impl BankClient for Sharded {
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

pub struct FaultlineTarget {
    pub cluster: Cluster,
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
        Ok(FaultlineTarget {
            cluster,
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
        nodes: params.nodes,
        net: params.net,
        replica_bin: spec.replica_bin.to_path_buf(),
        bug: params.bug.clone(),
        accounts: spec.accounts.clone(),
        initial_balance: spec.initial_balance,
        checkpoint_interval_slots: params.checkpoint_interval_slots,
        tunables: params.tunables,
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
            let collector = JournalCollector::new(&dir.join("journals"), self.cluster.nodes())?;
            self.sampler = Some(spawn_sampler(
                collector,
                self.cluster.control(),
                crate::run::JOURNAL_EVERY,
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
        let shards = (0..(clients as usize).div_ceil(CLIENTS_PER_TRANSPORT).max(1))
            .map(|_| {
                Ok(FaultlineClient {
                    transport: self.cluster.new_workload_transport()?,
                    nodes: self.cluster.nodes().to_vec(),
                    hint: self.hint.clone(),
                    policy: self.policy,
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        Ok(Arc::new(Sharded(shards)))
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
