//! The process cluster as a [`FaultWorld`]: the one nemesis's faults done to real replica (or
//! etcd) processes through the target (SIGKILL, SIGSTOP/SIGCONT, relay cuts), its events
//! written to the run's history as they happen, and the fault in force shown on the progress
//! line.
//!
//! `crash-coordinator` arms a failpoint on a shard's leader at the start and, at the heal,
//! restarts that replica whether the failpoint fired (a `crash`) or not (a `kill`), see
//! [`crate::faults::failpoints`]. Power cuts, clock jumps and disk faults are the simulator's
//! (`--nemesis` refuses them).

use crate::faults::failpoints::CrashCoordinator;
use crate::faults::nemesis::FaultWorld;
use crate::os::relay::Link;
use crate::record::Recorder;
use crate::targets::{Target, TargetError};
use replica::failpoints::Failpoint;
use replica::types::{NodeId, ShardId};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};

/// The current fault in words, for the progress display.
pub type FaultLabel = Arc<Mutex<String>>;

/// A running cluster, seen by the nemesis.
pub struct ProcessWorld<'a> {
    cluster: &'a mut dyn Target,
    recorder: Arc<Recorder>,
    label: FaultLabel,
    /// The `crash-coordinator` fault's state: what is armed, where.
    crash: CrashCoordinator,
    /// How long after a `crash-coordinator` fault starts its failpoint is armed.
    arm_after: std::time::Duration,
}

impl<'a> ProcessWorld<'a> {
    pub fn new(
        cluster: &'a mut dyn Target,
        recorder: Arc<Recorder>,
        label: FaultLabel,
    ) -> ProcessWorld<'a> {
        let mut world = ProcessWorld {
            cluster,
            recorder,
            label,
            crash: CrashCoordinator::new(0, CrashCoordinator::DEFAULT_FIRE_WITHIN),
            arm_after: std::time::Duration::ZERO,
        };
        world.show("none");
        world
    }

    /// Arms `crash-coordinator` failpoints this long after each such fault starts (the run's
    /// drawn [`crate::faults::failpoints::FailpointTiming`]).
    pub fn arm_after(mut self, delay: std::time::Duration) -> Self {
        self.arm_after = delay;
        self
    }

    /// The cluster, for what the nemesis does not do (healing everything else at the end).
    pub fn cluster(&mut self) -> &mut dyn Target {
        self.cluster
    }
}

impl FaultWorld for ProcessWorld<'_> {
    fn nodes(&self) -> Vec<NodeId> {
        self.cluster.nodes().to_vec()
    }

    fn node_shards(&self) -> BTreeMap<NodeId, u32> {
        self.cluster.node_shards()
    }

    fn leader(&self) -> impl Future<Output = Option<NodeId>> + Send {
        self.cluster.leader()
    }

    fn shard_leaders(&self) -> impl Future<Output = BTreeMap<u32, NodeId>> + Send {
        self.cluster.shard_leaders()
    }

    fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.cluster.kill(node)
    }

    fn restart(&mut self, node: NodeId) -> Result<Option<String>, TargetError> {
        self.cluster.start(node).map(|()| None)
    }

    fn pause(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.cluster.pause(node)
    }

    fn resume(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.cluster.resume(node)
    }

    fn set_cuts(&mut self, cuts: &[Link]) -> Result<(), TargetError> {
        self.cluster.set_cuts(cuts);
        Ok(())
    }

    /// Arms `failpoint` on `shard`'s leader now; false (and a recorded skip) when there is
    /// none, the target cannot arm, or the replica refuses.
    fn arm_failpoint(&mut self, shard: u32, failpoint: &str) -> impl Future<Output = bool> + Send {
        let failpoint = failpoint.to_string();
        let delay = self.arm_after;
        async move {
            // The nemesis waits with it: nothing else is due before this fault's heal.
            tokio::time::sleep(delay).await;
            let skip = |world: &mut Self, reason: String| {
                let value = json!({"fault": "crash-coordinator", "reason": reason});
                world.record("skip", value);
                false
            };
            let Some(point) = Failpoint::from_name(&failpoint) else {
                let names = Failpoint::names();
                return skip(
                    self,
                    format!("no failpoint {failpoint:?}: expected one of {names}"),
                );
            };
            let Some(transport) = self.cluster.control() else {
                let kind = self.cluster.kind().name();
                return skip(self, format!("the {kind} target has no failpoints"));
            };
            let Some(&node) = self.cluster.shard_leaders().await.get(&shard) else {
                return skip(self, format!("no leader of shard {shard} to arm"));
            };
            let armed = self.crash.arm(
                ShardId(shard),
                node,
                point,
                transport.as_ref(),
                &self.recorder,
            );
            armed.await.is_some()
        }
    }

    fn end_failpoint(&mut self) -> Result<(), TargetError> {
        self.crash.finish(self.cluster, &self.recorder).map(|_| ())
    }

    fn record(&mut self, f: &str, value: Value) {
        self.recorder.nemesis(f, value);
    }

    fn show(&mut self, label: &str) {
        if let Ok(mut l) = self.label.lock() {
            *l = label.to_string();
        }
    }
}
