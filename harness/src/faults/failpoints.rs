//! The `crash-coordinator` fault: crash a shard's leader at a named step of two-phase commit,
//! through the replica's failpoints (`replica::failpoints`), as the classic "crash the
//! coordinator at PREPARE / BEFORE_COMMIT / AFTER_COMMIT" demos did, but on a bank whose
//! coordinators are Paxos groups, where no such crash may break or block a transaction.
//!
//! A fault goes: draw a shard and a failpoint (from the seed), look up that shard's leader
//! now (a shard's leader coordinates the transfers out of it and takes part in those into it),
//! arm the failpoint there over the client transport, wait until the process exits or
//! [`CrashCoordinator::fire_within`] passes, and restart it. A failpoint that did not fire in
//! time is cleared by SIGKILL before the restart, so it can never fire later, when the nemesis
//! believes everything healed.
//!
//! Recorded as nemesis events, after each action: `arm-failpoint` `{"node", "shard",
//! "failpoint"}`; then `crash` `{"nodes", "failpoint"}` when the process died of it, or `kill`
//! `{"nodes", "failpoint", "reason"}` when it did not fire in time; then `restart` `{"nodes"}`.
//! `crash`, `kill` and `restart` are the kill family the checker's report already draws. A
//! fault that cannot start is a `skip` with a `reason`: no leader, or a replica that refused to
//! arm (only `replica-bugs` arms failpoints).
//!
//! Wiring: the sharded schedule draws the shard and the failpoint (`Fault::CrashCoordinator`),
//! only when [`replica_arms_failpoints`] holds for the run's replica binary; the nemesis
//! arms it at the fault's start ([`CrashCoordinator::arm`], on the shard's leader then, over
//! the target's control transport) and ends it at the heal ([`CrashCoordinator::finish`]: the
//! fault's interval is the time it has to fire). [`CrashCoordinator::run`] does a whole fault
//! with its own draw and wait.
//!
//! Timing ([`FailpointTiming`], drawn per real sharded run from its seed and written to
//! run.toml's `[params.shards.failpoints]`): how far into the fault's interval the failpoint
//! is armed. It fires at the next transfer that reaches its step, and the crashed replica
//! stays down until the heal: armed at once, it is down for the whole interval (another
//! replica takes over its shard and finishes or aborts what it left in flight); armed late,
//! it is back within a fraction of it (it recovers its own transactions, often before any
//! other replica has taken over).

use crate::os::process::ReplicaState;
use crate::os::transport::Transport;
use crate::record::Recorder;
use crate::targets::{BoxFuture, Target, TargetError};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::failpoints::Failpoint;
use replica::types::{NodeId, ShardId};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// The random stream a real sharded run's failpoint timing is drawn from.
pub const FAILPOINT_TIMING_STREAM: u64 = 11;

/// How far into a `crash-coordinator` fault's interval a run arms its failpoints, in percent
/// of the interval (one drawn per run).
pub const ARM_AFTER_PCTS: [u64; 4] = [0, 25, 50, 90];

// The timing is plain run.toml data, so it lives with the other parameters (below the
// targets this module drives).
pub use crate::params::FailpointTiming;

/// Draws the failpoint timing of the run with `seed` whose faults last `interval_ms`.
pub fn draw_timing(seed: u64, interval_ms: u64) -> FailpointTiming {
    let mut rng = crate::rng::stream(seed, FAILPOINT_TIMING_STREAM);
    let pct = ARM_AFTER_PCTS[rng.gen_range(0..ARM_AFTER_PCTS.len())];
    FailpointTiming {
        arm_after_ms: interval_ms.saturating_mul(pct) / 100,
    }
}

/// How the fault finds the shards' leaders (the sharded run knows its shards).
pub trait ShardLeaders: Send + Sync {
    /// Every shard of the run.
    fn shards(&self) -> Vec<ShardId>;
    /// The node that leads `shard` now, if one answers.
    fn leader(&self, shard: ShardId) -> BoxFuture<'_, Option<NodeId>>;
}

/// What the fault does to processes: see whether one died, kill it, start it again.
pub trait Processes {
    /// Whether `node`'s process is not running (it exited, or was never started).
    fn is_down(&mut self, node: NodeId) -> bool;
    fn kill(&mut self, node: NodeId) -> Result<(), TargetError>;
    fn start(&mut self, node: NodeId) -> Result<(), TargetError>;
}

impl<T: Target + ?Sized> Processes for T {
    fn is_down(&mut self, node: NodeId) -> bool {
        self.state(node) == ReplicaState::Down
    }

    fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
        Target::kill(self, node)
    }

    fn start(&mut self, node: NodeId) -> Result<(), TargetError> {
        Target::start(self, node)
    }
}

/// Whether `bin` is a replica that accepts arming failpoints: only `replica-bugs` does (the
/// plain `replica` refuses, whatever it was built with).
pub fn replica_arms_failpoints(bin: &Path) -> bool {
    bin.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("replica-bugs"))
}

/// A failpoint armed on a leader, waiting to fire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Armed {
    pub shard: ShardId,
    pub node: NodeId,
    pub failpoint: Failpoint,
    at: Instant,
}

/// How an armed failpoint ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The process died of it.
    Fired,
    /// It did not fire in time; the process was SIGKILLed.
    Killed,
}

/// The `crash-coordinator` fault. See the module docs.
pub struct CrashCoordinator {
    rng: ChaCha8Rng,
    /// How long an armed failpoint may take to fire (it needs a cross-shard transfer to reach
    /// its step).
    pub fire_within: Duration,
    /// How long arming may take.
    pub call_timeout: Duration,
    armed: Option<Armed>,
}

impl CrashCoordinator {
    pub const DEFAULT_FIRE_WITHIN: Duration = Duration::from_secs(5);

    /// Draws shards and failpoints from `seed`.
    pub fn new(seed: u64, fire_within: Duration) -> CrashCoordinator {
        CrashCoordinator {
            rng: ChaCha8Rng::seed_from_u64(seed),
            fire_within,
            call_timeout: Duration::from_secs(1),
            armed: None,
        }
    }

    /// What is armed now, if anything.
    pub fn armed(&self) -> Option<&Armed> {
        self.armed.as_ref()
    }

    /// Starts a fault: arms a drawn failpoint on the leader of a drawn shard, through `arm`.
    /// `None` (recorded as a skip) when no leader answers or the replica refuses.
    pub async fn start(
        &mut self,
        leaders: &dyn ShardLeaders,
        arm: &dyn Transport,
        recorder: &Recorder,
    ) -> Option<Armed> {
        let shards = leaders.shards();
        if shards.is_empty() {
            skip(recorder, "the run has no shards".into());
            return None;
        }
        let shard = shards[self.rng.gen_range(0..shards.len())];
        let failpoint = Failpoint::ALL[self.rng.gen_range(0..Failpoint::ALL.len())];
        let Some(node) = leaders.leader(shard).await else {
            skip(recorder, format!("no leader of shard {shard} to arm"));
            return None;
        };
        self.arm(shard, node, failpoint, arm, recorder).await
    }

    /// Arms `failpoint` on `node`, the leader of `shard` (a fault whose shard and failpoint the
    /// schedule drew). `None` (recorded as a skip) when the replica refuses.
    pub async fn arm(
        &mut self,
        shard: ShardId,
        node: NodeId,
        failpoint: Failpoint,
        arm: &dyn Transport,
        recorder: &Recorder,
    ) -> Option<Armed> {
        let request = ClientRequest::ArmFailpoint {
            name: failpoint.name().to_string(),
            once: true,
        };
        match arm.call(node, request, self.call_timeout).await {
            Ok(ClientResponse::FailpointArmed { .. }) => {}
            Ok(ClientResponse::Error { message, .. }) => {
                skip(
                    recorder,
                    format!("{node} refused to arm {failpoint}: {message}"),
                );
                return None;
            }
            Ok(other) => {
                skip(recorder, format!("{node} answered arming with {other:?}"));
                return None;
            }
            Err(e) => {
                // Maybe armed: the heal must still clear it, so it is kept as armed.
                recorder.nemesis(
                    "error",
                    json!({"fault": "crash-coordinator", "error": e.to_string()}),
                );
            }
        }
        recorder.nemesis(
            "arm-failpoint",
            json!({"node": node.to_string(), "shard": shard.0, "failpoint": failpoint.name()}),
        );
        let armed = Armed {
            shard,
            node,
            failpoint,
            at: Instant::now(),
        };
        self.armed = Some(armed.clone());
        Some(armed)
    }

    /// Ends the fault in force, if any: waits for the armed process to exit (at most
    /// `fire_within` after arming), SIGKILLs it if it did not, and restarts it.
    pub async fn heal(
        &mut self,
        processes: &mut dyn Processes,
        recorder: &Recorder,
    ) -> Result<Option<Ended>, TargetError> {
        let Some(armed) = self.armed.take() else {
            return Ok(None);
        };
        let deadline = armed.at + self.fire_within;
        while !processes.is_down(armed.node) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.armed = Some(armed);
        self.finish(processes, recorder)
    }

    /// Ends the fault in force, if any, without waiting (the nemesis's heal, after the fault's
    /// interval): a process that died of the failpoint is recorded as its `crash`, one still
    /// running is SIGKILLed (so the failpoint can never fire later); either is restarted.
    pub fn finish<P: Processes + ?Sized>(
        &mut self,
        processes: &mut P,
        recorder: &Recorder,
    ) -> Result<Option<Ended>, TargetError> {
        let Some(armed) = self.armed.take() else {
            return Ok(None);
        };
        let (node, name) = (armed.node.to_string(), armed.failpoint.name());
        let ended = if processes.is_down(armed.node) {
            recorder.nemesis("crash", json!({"nodes": [node], "failpoint": name}));
            Ended::Fired
        } else {
            processes.kill(armed.node)?;
            let waited = armed.at.elapsed();
            let reason = format!("{name} did not fire within {waited:.1?}");
            recorder.nemesis(
                "kill",
                json!({"nodes": [node], "failpoint": name, "reason": reason}),
            );
            Ended::Killed
        };
        processes.start(armed.node)?;
        recorder.nemesis("restart", json!({"nodes": [node]}));
        Ok(Some(ended))
    }

    /// One whole fault: [`CrashCoordinator::start`] then [`CrashCoordinator::heal`].
    pub async fn run(
        &mut self,
        leaders: &dyn ShardLeaders,
        arm: &dyn Transport,
        processes: &mut dyn Processes,
        recorder: &Recorder,
    ) -> Result<Option<Ended>, TargetError> {
        if self.start(leaders, arm, recorder).await.is_none() {
            return Ok(None);
        }
        self.heal(processes, recorder).await
    }
}

fn skip(recorder: &Recorder, reason: String) {
    recorder.nemesis(
        "skip",
        json!({"fault": "crash-coordinator", "reason": reason}),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::os::transport::CallFuture;
    use crate::targets::faultline::fake::FakeCluster;
    use serde_json::Value;
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::Mutex;

    /// Two shards; shard 1 led by n2, shard 2 by n5.
    struct Leaders;

    impl ShardLeaders for Leaders {
        fn shards(&self) -> Vec<ShardId> {
            vec![ShardId(1), ShardId(2)]
        }

        fn leader(&self, shard: ShardId) -> BoxFuture<'_, Option<NodeId>> {
            Box::pin(async move {
                Some(if shard == ShardId(1) {
                    NodeId(2)
                } else {
                    NodeId(5)
                })
            })
        }
    }

    /// Replicas that arm anything and die at once when armed, unless `duds`.
    #[derive(Default)]
    struct Replicas {
        armed: Mutex<BTreeMap<NodeId, String>>,
        duds: bool,
    }

    impl Transport for Replicas {
        fn call(&self, node: NodeId, request: ClientRequest, _: Duration) -> CallFuture<'_> {
            Box::pin(async move {
                let ClientRequest::ArmFailpoint { name, once } = request else {
                    panic!("only arming is expected, got {request:?}");
                };
                let mut armed = self.armed.lock().unwrap();
                armed.insert(node, name.clone());
                Ok(ClientResponse::FailpointArmed { node, name, once })
            })
        }
    }

    /// Processes over [`Replicas`]: an armed node is down (it fired) unless the failpoints
    /// are duds; counts kills and starts.
    struct Procs<'a> {
        replicas: &'a Replicas,
        killed: BTreeSet<NodeId>,
        started: Vec<NodeId>,
    }

    impl Processes for Procs<'_> {
        fn is_down(&mut self, node: NodeId) -> bool {
            let fired =
                !self.replicas.duds && self.replicas.armed.lock().unwrap().contains_key(&node);
            fired || self.killed.contains(&node)
        }

        fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
            self.killed.insert(node);
            Ok(())
        }

        fn start(&mut self, node: NodeId) -> Result<(), TargetError> {
            self.replicas.armed.lock().unwrap().remove(&node);
            self.killed.remove(&node);
            self.started.push(node);
            Ok(())
        }
    }

    fn recorder(dir: &tempfile::TempDir) -> (Recorder, std::path::PathBuf) {
        let path = dir.path().join("history.jsonl");
        (
            Recorder::create(&path, std::time::Instant::now()).unwrap(),
            path,
        )
    }

    fn events(path: &Path) -> Vec<(String, Value)> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .map(|e| {
                (
                    e["f"].as_str().unwrap_or("").to_string(),
                    e["value"].clone(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn arms_a_leader_records_the_crash_with_its_failpoint_and_restarts_it() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, path) = recorder(&dir);
        let replicas = Replicas::default();
        let mut procs = Procs {
            replicas: &replicas,
            killed: BTreeSet::new(),
            started: Vec::new(),
        };
        let mut fault = CrashCoordinator::new(7, Duration::from_secs(60));
        let ended = fault.run(&Leaders, &replicas, &mut procs, &rec).await;
        assert_eq!(ended.unwrap(), Some(Ended::Fired));
        rec.close();
        let events = events(&path);
        let names: Vec<&str> = events.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(names, ["arm-failpoint", "crash", "restart"]);
        let node = events[0].1["node"].as_str().unwrap().to_string();
        let shard = if node == "n2" { 1 } else { 2 };
        assert!(node == "n2" || node == "n5", "armed {node}, not a leader");
        assert_eq!(events[0].1["shard"], shard, "n2 leads shard 1, n5 shard 2");
        let failpoint = events[0].1["failpoint"].as_str().unwrap();
        assert!(Failpoint::from_name(failpoint).is_some(), "{failpoint}");
        assert_eq!(events[1].1["failpoint"], failpoint);
        assert_eq!(events[1].1["nodes"], json!([node]));
        assert_eq!(events[2].1["nodes"], json!([node]));
        assert_eq!(procs.started.len(), 1);
        assert!(procs.killed.is_empty());
        assert!(fault.armed().is_none());
    }

    #[tokio::test]
    async fn a_failpoint_that_does_not_fire_in_time_is_cleared_by_a_kill_and_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let (rec, path) = recorder(&dir);
        let replicas = Replicas {
            duds: true,
            ..Replicas::default()
        };
        let mut procs = Procs {
            replicas: &replicas,
            killed: BTreeSet::new(),
            started: Vec::new(),
        };
        // No time at all to fire: the bound has passed at the first look, whatever the clock.
        let mut fault = CrashCoordinator::new(7, Duration::ZERO);
        let ended = fault.run(&Leaders, &replicas, &mut procs, &rec).await;
        assert_eq!(ended.unwrap(), Some(Ended::Killed));
        rec.close();
        let names: Vec<String> = events(&path).into_iter().map(|(f, _)| f).collect();
        assert_eq!(names, ["arm-failpoint", "kill", "restart"]);
        assert_eq!(procs.started.len(), 1);
        assert!(replicas.armed.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_replica_that_refuses_to_arm_is_a_skip_and_nothing_is_restarted() {
        // The fake cluster plays a replica without failpoints: it answers arming with an error.
        let dir = tempfile::tempdir().unwrap();
        let (rec, path) = recorder(&dir);
        let cluster = FakeCluster::new(6, &["A".into()], 10);
        let replicas = Replicas::default();
        let mut procs = Procs {
            replicas: &replicas,
            killed: BTreeSet::new(),
            started: Vec::new(),
        };
        let mut fault = CrashCoordinator::new(1, Duration::from_secs(5));
        let ended = fault.run(&Leaders, &cluster, &mut procs, &rec).await;
        assert_eq!(ended.unwrap(), None);
        rec.close();
        let events = events(&path);
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0].0, "skip");
        assert!(events[0].1["reason"].as_str().unwrap().contains("refused"));
        assert!(procs.started.is_empty());
    }

    #[test]
    fn every_shard_and_failpoint_gets_drawn() {
        let mut fault = CrashCoordinator::new(3, Duration::from_secs(5));
        let replicas = Replicas::default();
        let dir = tempfile::tempdir().unwrap();
        let (rec, _) = recorder(&dir);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let mut seen = BTreeSet::new();
        for _ in 0..200 {
            let armed = runtime
                .block_on(fault.start(&Leaders, &replicas, &rec))
                .unwrap();
            seen.insert((armed.shard, armed.failpoint));
            fault.armed = None;
        }
        assert_eq!(seen.len(), 2 * Failpoint::ALL.len());
    }

    #[test]
    fn failpoint_timing_is_drawn_from_the_seed_within_the_interval() {
        assert_eq!(draw_timing(5, 2_000), draw_timing(5, 2_000));
        let arms: BTreeSet<u64> = (0..100)
            .map(|seed| draw_timing(seed, 2_000).arm_after_ms)
            .collect();
        let expected: BTreeSet<u64> = ARM_AFTER_PCTS.iter().map(|p| 20 * p).collect();
        assert_eq!(arms, expected, "every timing drawn, none past the interval");
    }

    #[test]
    fn only_replica_bugs_arms_failpoints() {
        assert!(replica_arms_failpoints(Path::new(
            "target/debug/replica-bugs"
        )));
        assert!(!replica_arms_failpoints(Path::new("target/debug/replica")));
    }
}
