//! Systems under test: what the run loop needs to know about a cluster, whatever it runs.
//!
//! The run loop ([`crate::run::run_in_campaign`]), the nemesis ([`crate::faults::nemesis`]) and the final
//! phase drive a [`Target`]: a cluster of OS processes that can be started, SIGKILLed,
//! SIGSTOPped and resumed one node at a time, whose links can be cut (through the harness's
//! relays), and that runs the bank's operations for simulated clients ([`BankClient`]). The
//! checker never sees a target: it reads `history.jsonl`, `run.toml` and `final.json`, so a
//! target's whole job is to produce those honestly.
//!
//! Two targets exist: [`faultline`] (the replica built beside the harness, QUIC over the UDP
//! relay) and [`etcd`] (etcd 3.4 members, the bank as etcd transactions, peers and clients
//! over the TCP relay).
//!
//! # Adding a third system
//!
//! 1. Give [`TargetKind`] a variant (it is the `--target` value and run.toml's `target`).
//! 2. Write a module with a struct that owns the processes and implements [`Target`]:
//!    processes through [`crate::os::process::Child`] (no orphans, SIGSTOP/SIGCONT reach the
//!    process group), data dirs under the run directory, ports from the OS (port 0).
//! 3. Map the bank onto the system in a [`BankClient`]: every operation ends as one
//!    [`Submitted`]. `Executed` carries the system's position of the operation (`exec_index`:
//!    a write's unique position in the system's total order of writes; a read's position is
//!    the write it observed), `Unknown` when the outcome is not known (recorded `info`).
//! 4. In [`Target::final_phase`], read every node's balances and write `final.json`
//!    ([`checker::final_state::FinalState`]) with each node's history of writes.
//! 5. Add the variant to [`prepare`].
//! 6. For scenarios (`harness scenario`): [`Target::state`] of each node, and where a client
//!    of [`Target::client`] is tied to one node, a [`Target::roaming_client`] that moves on
//!    when its node is down; for the prompt, [`Target::inspect`] in the system's own terms.
//!
//! A worked example, a target whose "nodes" are in-process fakes (the shape of [`faultline`]
//! and [`etcd`], without the processes):
//!
//! ```
//! use harness::clients::caller::Submitted;
//! use harness::record::Recorder;
//! use harness::os::relay::Link;
//! use harness::os::process::ReplicaState;
//! use harness::params::TargetKind;
//! use harness::targets::{BankClient, BoxFuture, Target, TargetError};
//! use replica::bank::{Command, Reply, OpResult};
//! use replica::types::NodeId;
//! use std::path::{Path, PathBuf};
//! use std::sync::Arc;
//! use tokio::time::Instant;
//!
//! /// Answers every operation as executed at position 1 (a toy: a real client talks to a node).
//! struct Toy;
//! impl BankClient for Toy {
//!     fn submit<'a>(&'a self, _command: &'a Command, _deadline: Instant) -> BoxFuture<'a, Submitted> {
//!         Box::pin(async move {
//!             let reply = Reply { exec_index: 1, result: OpResult::Balance { balance: 10 } };
//!             Submitted::Executed { node: NodeId(1), reply }
//!         })
//!     }
//! }
//!
//! struct ToyCluster { dir: PathBuf, nodes: Vec<NodeId>, down: Vec<NodeId> }
//! impl Target for ToyCluster {
//!     fn kind(&self) -> TargetKind { TargetKind::Faultline }
//!     fn dir(&self) -> &Path { &self.dir }
//!     fn nodes(&self) -> &[NodeId] { &self.nodes }
//!     fn start(&mut self, node: NodeId) -> Result<(), TargetError> {
//!         self.down.retain(|n| *n != node);
//!         Ok(())
//!     }
//!     fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
//!         self.down.push(node);
//!         Ok(())
//!     }
//!     fn pause(&mut self, _node: NodeId) -> Result<(), TargetError> { Ok(()) }
//!     fn resume(&mut self, _node: NodeId) -> Result<(), TargetError> { Ok(()) }
//!     fn set_cuts(&self, _cuts: &[Link]) {}
//!     fn heal_everything(&mut self) -> Result<Vec<String>, TargetError> {
//!         let healed = self.down.drain(..).map(|n| format!("restarted {n}")).collect();
//!         Ok(healed)
//!     }
//!     fn stop_all(&mut self) {}
//!     fn leader(&self) -> BoxFuture<'_, Option<NodeId>> { Box::pin(async { Some(NodeId(1)) }) }
//!     fn client(&self) -> Arc<dyn BankClient> { Arc::new(Toy) }
//!     fn begin(&mut self) -> BoxFuture<'_, Result<(), TargetError>> { Box::pin(async { Ok(()) }) }
//!     fn final_phase<'a>(
//!         &'a mut self,
//!         _recorder: &'a Recorder,
//!         _first_process: u64,
//!     ) -> BoxFuture<'a, Result<Vec<String>, TargetError>> {
//!         // A real target reads every node and writes final.json here.
//!         Box::pin(async { Ok(vec![]) })
//!     }
//!     fn state(&mut self, node: NodeId) -> ReplicaState {
//!         if self.down.contains(&node) { ReplicaState::Down } else { ReplicaState::Running }
//!     }
//! }
//!
//! let mut toy = ToyCluster { dir: PathBuf::from("."), nodes: vec![NodeId(1)], down: vec![] };
//! toy.kill(NodeId(1)).unwrap();
//! assert_eq!(toy.heal_everything().unwrap(), vec!["restarted n1".to_string()]);
//! ```

pub mod any;
pub mod etcd;
pub mod faultline;

use crate::clients::caller::Submitted;
use crate::os::process::ReplicaState;
use crate::os::relay::Link;
use crate::params::{RunParams, TargetKind};
use crate::record::Recorder;
use crate::targets::faultline::cluster::ClusterError;
use crate::targets::faultline::journal::JournalError;
use replica::bank::Command;
use replica::types::NodeId;
use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use tokio::time::Instant;

/// A boxed future, so [`Target`] stays object-safe (`Box<dyn Target>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A question the scenario prompt asks about the nodes' insides, of one node or of all.
/// Each target answers in its own terms (slots and ballots for faultline, revisions and raft
/// terms for etcd), as text ready to print; see [`Target::inspect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Inspect {
    /// `printdb`: the balances as each node holds them.
    Db(Option<NodeId>),
    /// `printlog`: the bank's commands in the order the node applied them.
    Log(Option<NodeId>),
    /// `printstatus [n]`: how far position `n` (a slot, a revision) got on each node; without
    /// `n`, the recent positions or the latest.
    Position {
        at: Option<u64>,
        node: Option<NodeId>,
    },
    /// `printview`: each node's view of who leads, and since when.
    View(Option<NodeId>),
    /// `status`: one row per node: process, role, leader, progress.
    Overview,
}

impl Inspect {
    /// The one node the question is about, if it names one.
    pub fn node(&self) -> Option<NodeId> {
        match self {
            Inspect::Db(node) | Inspect::Log(node) | Inspect::View(node) => *node,
            Inspect::Position { node, .. } => *node,
            Inspect::Overview => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Etcd(#[from] crate::targets::etcd::error::EtcdError),
    /// A fault this target cannot do (a simulator-only fault asked of processes).
    #[error("{0}")]
    Unsupported(String),
}

/// Runs the bank's operations against a target, for every simulated client of a run.
pub trait BankClient: Send + Sync {
    /// Runs `command` (client `command.client`, request `command.request`) until a definite
    /// answer or `deadline`; an answer that never came is [`Submitted::Unknown`]. Must be
    /// exactly-once per (client, request) however often it retries.
    fn submit<'a>(&'a self, command: &'a Command, deadline: Instant) -> BoxFuture<'a, Submitted>;
}

/// A running cluster of the system under test. Node operations act on OS processes and are
/// synchronous (a signal, a spawn); everything that talks to the nodes is async.
pub trait Target: Send {
    fn kind(&self) -> TargetKind;
    /// The run directory (data dirs, logs, `final.json` live here).
    fn dir(&self) -> &Path;
    fn nodes(&self) -> &[NodeId];
    /// Starts one node, or restarts it on its own data dir after a kill.
    fn start(&mut self, node: NodeId) -> Result<(), TargetError>;
    /// SIGKILLs one node (no-op when down).
    fn kill(&mut self, node: NodeId) -> Result<(), TargetError>;
    /// SIGSTOPs one node.
    fn pause(&mut self, node: NodeId) -> Result<(), TargetError>;
    /// SIGCONTs one node.
    fn resume(&mut self, node: NodeId) -> Result<(), TargetError>;
    /// Makes exactly `cuts` cut on the relay(s); `&[]` heals the network.
    fn set_cuts(&self, cuts: &[Link]);
    /// Heals the network, resumes paused and restarts dead nodes; says what it did.
    fn heal_everything(&mut self) -> Result<Vec<String>, TargetError>;
    /// SIGKILLs every node (the end of a run).
    fn stop_all(&mut self);
    /// The node that leads now, if one answers (for "isolate the leader", "kill the leader").
    fn leader(&self) -> BoxFuture<'_, Option<NodeId>>;
    /// The bank's operations, for the client workers.
    fn client(&self) -> Arc<dyn BankClient>;
    /// Called once the cluster is up, just before the workload starts.
    fn begin(&mut self) -> BoxFuture<'_, Result<(), TargetError>>;
    /// Called once the cluster is up, before a benchmark (no run observation needed).
    fn begin_bench(&mut self) -> BoxFuture<'_, Result<(), TargetError>> {
        Box::pin(async { Ok(()) })
    }
    /// The bank's operations for a benchmark phase of `clients` closed-loop clients (a target
    /// may spread them over more connections than a run needs).
    fn bench_client(&self, clients: u32) -> Result<Arc<dyn BankClient>, TargetError> {
        let _ = clients;
        Ok(self.client())
    }
    /// After healing: settle, read through every node (recorded as client operations of
    /// processes `first_process`, `first_process + 1`, ...) and write `final.json`. Returns
    /// notes on what did not go as hoped.
    fn final_phase<'a>(
        &'a mut self,
        recorder: &'a Recorder,
        first_process: u64,
    ) -> BoxFuture<'a, Result<Vec<String>, TargetError>>;

    // What scenarios add: they keep nodes up or down set by set, and their prompt looks inside.

    /// A node's process as the harness left it (and whether it died since).
    fn state(&mut self, node: NodeId) -> ReplicaState;
    /// On a sharded bank, every node's shard (1-based ids, as run.toml's `[[shards]]`); empty
    /// for a system that is one group. The run records answers as positions on the answering
    /// node's shard, and the nemesis aims at shards, with this.
    fn node_shards(&self) -> BTreeMap<NodeId, u32> {
        BTreeMap::new()
    }
    /// On a sharded bank, the leader of each shard that has one now (by shard id); for a
    /// system that is one group, its leader as shard 1's. The nemesis's shard-leader faults
    /// resolve through this.
    fn shard_leaders(&self) -> BoxFuture<'_, BTreeMap<u32, NodeId>> {
        let leader = self.leader();
        Box::pin(async move { leader.await.map(|l| (1, l)).into_iter().collect() })
    }
    /// The transport for requests outside the bank's operations (arming a failpoint), if the
    /// target's nodes speak the faultline client protocol.
    fn control(&self) -> Option<Arc<dyn crate::os::transport::Transport>> {
        None
    }
    /// How many nodes must be up for a write to commit: a majority, for both targets.
    fn quorum(&self) -> usize {
        self.nodes().len() / 2 + 1
    }
    /// Whether links can be cut ([`Target::set_cuts`] acts only through the relay).
    fn can_cut(&self) -> bool {
        false
    }
    /// The bank's operations for clients that must get through whichever nodes are up: a
    /// scenario keeps some nodes down for whole sets, and a client tied to one of them would
    /// wait for it. The default, [`Target::client`], suits a target whose client already
    /// follows the leader.
    fn roaming_client(&self) -> Arc<dyn BankClient> {
        self.client()
    }
    /// Answers a question of the scenario prompt as text to print: tables, or words saying
    /// what the question cannot mean on this system. Nodes named are known to the target.
    fn inspect<'a>(&'a mut self, question: &'a Inspect) -> BoxFuture<'a, String> {
        let _ = question;
        Box::pin(async move { format!("{} cannot be inspected\n", self.kind().name()) })
    }
}

/// Everything [`prepare`] needs to build a cluster of any target.
#[derive(Clone, Debug)]
pub struct PrepareSpec<'a> {
    pub dir: &'a Path,
    pub params: &'a RunParams,
    pub accounts: Vec<String>,
    pub initial_balance: i64,
    /// The faultline replica binary.
    pub replica_bin: &'a Path,
    /// The etcd binary.
    pub etcd_bin: &'a Path,
}
