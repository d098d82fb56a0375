//! The one nemesis: carries out a schedule against any [`FaultWorld`] (the process cluster of
//! `harness run`, [`crate::faults::processes`], or the simulated world of `harness sim`,
//! [`crate::sim::faults`]) and records every action as a `nemesis` event with its exact
//! targets.
//!
//! Jepsen's shape: one vocabulary of faults ([`crate::faults::schedule`] says *what* and
//! *when*), and one interpreter over time ([`Nemesis::apply_due`], driven by wall time in
//! [`Nemesis::run`] and by virtual time in the simulator's loop). The nemesis resolves "the
//! leader" at the moment of acting, asks the world to do it (SIGKILL or a simulated crash,
//! SIGSTOP or a paused node, relay or simulated link cuts, ...), remembers what is in force so
//! that the following heal undoes exactly that, and records the event after the action, so
//! every client event after it in the history happened with the fault in place.
//!
//! On a sharded bank the shard shapes resolve through the world's shards: "every shard's
//! leader" and "shard k's leader" when the fault starts ([`FaultWorld::shard_leaders`]), and
//! the links between two shards' replicas ([`FaultWorld::node_shards`]). A world that cannot
//! do a fault (a real process has no simulated disk) answers with an error, which is recorded;
//! `--nemesis` and `--faults` refuse such families before a run starts.

use crate::faults::schedule::{shard_partition_cuts, DiskFault, Fault, Partition, Step, Victims};
use crate::os::relay::{Link, Peer};
use crate::targets::TargetError;
use replica::types::NodeId;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::future::Future;

/// What the nemesis needs of a world to fault it: who is there and who leads, the faults
/// themselves, and a place to record what it did. The process cluster and the simulator
/// implement it; the futures of a world that never waits (the simulator's) are ready at once.
pub trait FaultWorld {
    /// Every node, in id order.
    fn nodes(&self) -> Vec<NodeId>;
    /// On a sharded bank, every node's shard; empty for a world that is one group.
    fn node_shards(&self) -> BTreeMap<NodeId, u32>;
    /// Whoever leads now, if anyone is known to.
    fn leader(&self) -> impl Future<Output = Option<NodeId>> + Send;
    /// The leader of each shard that has one now (one group: its leader as shard 1's).
    fn shard_leaders(&self) -> impl Future<Output = BTreeMap<u32, NodeId>> + Send;
    /// Crashes `node` (SIGKILL; the page cache survives).
    fn kill(&mut self, node: NodeId) -> Result<(), TargetError>;
    /// Starts `node` again on its data; `Some(why)` when it refused to start (a replica that
    /// found its disk damaged).
    fn restart(&mut self, node: NodeId) -> Result<Option<String>, TargetError>;
    fn pause(&mut self, node: NodeId) -> Result<(), TargetError>;
    fn resume(&mut self, node: NodeId) -> Result<(), TargetError>;
    /// Cuts exactly these replica links (none: every link whole).
    fn set_cuts(&mut self, cuts: &[Link]) -> Result<(), TargetError>;
    /// Crashes `node` and loses (or tears) what it had not fsynced.
    fn power_cut(&mut self, node: NodeId) -> Result<(), TargetError> {
        Err(cannot(node, "cut a node's power"))
    }
    fn jump_clock(&mut self, node: NodeId, _jump_ms: u64) -> Result<(), TargetError> {
        Err(cannot(node, "jump a node's clock"))
    }
    /// Does `fault` to `node`'s disk (crashing it where the fault shows only at a restart);
    /// returns what the event adds to `nodes` (which file, where).
    fn disk_fault(
        &mut self,
        node: NodeId,
        _fault: DiskFault,
    ) -> Result<serde_json::Map<String, Value>, TargetError> {
        Err(cannot(node, "fault a node's disk"))
    }
    /// Arms `failpoint` on `shard`'s leader; false (with a recorded `skip`) when it cannot.
    fn arm_failpoint(
        &mut self,
        _shard: u32,
        _failpoint: &str,
    ) -> impl Future<Output = bool> + Send {
        let reason = "this world has no failpoints";
        self.record(
            "skip",
            json!({"fault": "crash-coordinator", "reason": reason}),
        );
        std::future::ready(false)
    }
    /// Ends the armed failpoint's fault: restarts its node, crashed or not.
    fn end_failpoint(&mut self) -> Result<(), TargetError> {
        Ok(())
    }
    /// Records a nemesis `info` event.
    fn record(&mut self, f: &str, value: Value);
    /// Shows the fault in force in words (the progress display); `none` when healed.
    fn show(&mut self, _label: &str) {}
}

fn cannot(node: NodeId, what: &str) -> TargetError {
    TargetError::Unsupported(format!("this target cannot {what} ({node})"))
}

/// What the nemesis has in force now, to be undone by the next heal.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Active {
    #[default]
    Nothing,
    /// Killed, power-cut, or crashed to show a disk fault: restarted at the heal.
    Down(Vec<NodeId>),
    Paused(Vec<NodeId>),
    Partitioned,
    /// A failpoint armed on a shard's leader (the world holds it).
    Armed,
}

/// The one nemesis: a schedule, where it has got to, and what is in force.
#[derive(Debug, Default)]
pub struct Nemesis {
    schedule: Vec<Step>,
    next: usize,
    active: Active,
    /// Faults started (for reports).
    pub faults: u32,
}

impl Nemesis {
    pub fn new(schedule: Vec<Step>) -> Nemesis {
        Nemesis {
            schedule,
            ..Nemesis::default()
        }
    }

    /// When the next step is due (ms since the workload started), if any is left.
    pub fn next_at_ms(&self) -> Option<u64> {
        self.schedule.get(self.next).map(|s| s.at_ms)
    }

    /// The interpreter: carries out every step due at `now_ms`, in order. A step the world
    /// fails at is recorded as an `error` event, and the schedule goes on.
    pub async fn apply_due<W: FaultWorld + ?Sized>(&mut self, world: &mut W, now_ms: u64) {
        while let Some(step) = self.schedule.get(self.next).filter(|s| s.at_ms <= now_ms) {
            let fault = step.fault.clone();
            self.next += 1;
            if let Err(e) = self.apply(world, fault.as_ref()).await {
                let action = fault.map_or_else(|| "heal".to_string(), |f| f.to_string());
                world.record("error", json!({"action": action, "error": e.to_string()}));
            }
        }
    }

    /// Runs the schedule on wall time from `start` until it is done or `end` passes.
    pub async fn run<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        start: tokio::time::Instant,
        end: tokio::time::Instant,
    ) {
        while let Some(at_ms) = self.next_at_ms() {
            let at = start + std::time::Duration::from_millis(at_ms);
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at).await;
            self.apply_due(world, at_ms).await;
        }
    }

    /// Starts `fault` (healing what is in force first), or heals (`None`).
    pub async fn apply<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        fault: Option<&Fault>,
    ) -> Result<(), TargetError> {
        self.heal(world)?;
        match fault {
            Some(fault) => self.start(world, fault).await,
            None => Ok(()),
        }
    }

    async fn start<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        fault: &Fault,
    ) -> Result<(), TargetError> {
        self.faults += 1;
        match fault {
            Fault::Kill(target) | Fault::Power(target) | Fault::Pause(target) => {
                let Some(nodes) = resolve(world, target).await else {
                    return Ok(());
                };
                let (f, verb) = match fault {
                    Fault::Kill(_) => ("kill", "killed"),
                    Fault::Power(_) => ("power-cut", "power cut"),
                    _ => ("pause", "paused"),
                };
                for &node in &nodes {
                    match fault {
                        Fault::Kill(_) => world.kill(node)?,
                        Fault::Power(_) => world.power_cut(node)?,
                        _ => world.pause(node)?,
                    }
                }
                let size = world.nodes().len();
                let value = json!({"nodes": names(&nodes), "target": target_name(target, size)});
                world.record(f, value);
                world.show(&format!("{verb} {}", names(&nodes).join(",")));
                self.active = match fault {
                    Fault::Pause(_) => Active::Paused(nodes),
                    _ => Active::Down(nodes),
                };
            }
            Fault::Partition(partition) => self.partition(world, partition).await?,
            Fault::CrashCoordinator { shard, failpoint } => {
                if world.arm_failpoint(*shard, failpoint).await {
                    world.show(&fault.to_string());
                    self.active = Active::Armed;
                }
            }
            Fault::Clock { node, jump_ms } => {
                world.jump_clock(*node, *jump_ms)?;
                let value = json!({"nodes": [node.to_string()], "jump_ms": jump_ms});
                world.record("clock-jump", value);
            }
            Fault::Disk { node, fault } => {
                let mut value = world.disk_fault(*node, *fault)?;
                value.insert("nodes".into(), json!([node.to_string()]));
                if *fault != DiskFault::FailSync {
                    // The damage shows when the replica next reads its disk: at the heal.
                    self.active = Active::Down(vec![*node]);
                }
                world.record(fault.name(), Value::Object(value));
            }
        }
        Ok(())
    }

    async fn partition<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        partition: &Partition,
    ) -> Result<(), TargetError> {
        let (leader, shard_leaders) = match partition {
            Partition::IsolateLeader | Partition::IsolateFollower => {
                (world.leader().await, BTreeMap::new())
            }
            Partition::IsolateShardLeader { shard } => {
                let leaders = world.shard_leaders().await;
                (leaders.get(shard).copied(), leaders)
            }
            _ => (None, BTreeMap::new()),
        };
        let nodes = world.nodes();
        let cuts = shard_partition_cuts(
            partition,
            &nodes,
            &world.node_shards(),
            &shard_leaders,
            leader,
        );
        let (f, value) = partition_event(partition, &cuts, leader);
        if cuts.is_empty() {
            // Nothing to cut (no leader known): recorded as a skip, never as a partition, so
            // nobody reads a fault into a quiet stretch.
            world.record(f, value);
            return Ok(());
        }
        world.set_cuts(&cuts)?;
        world.record(f, value);
        world.show(&Fault::Partition(partition.clone()).to_string());
        self.active = Active::Partitioned;
        Ok(())
    }

    /// Undoes what is in force.
    pub fn heal<W: FaultWorld + ?Sized>(&mut self, world: &mut W) -> Result<(), TargetError> {
        match std::mem::take(&mut self.active) {
            Active::Nothing => return Ok(()),
            Active::Down(nodes) => {
                let mut refused = Vec::new();
                for &node in &nodes {
                    if let Some(why) = world.restart(node)? {
                        refused.push(format!("{node}: {why}"));
                    }
                }
                let mut value = json!({"nodes": names(&nodes)});
                if !refused.is_empty() {
                    value["refused"] = json!(refused);
                }
                world.record("restart", value);
            }
            Active::Paused(nodes) => {
                for &node in &nodes {
                    world.resume(node)?;
                }
                world.record("resume", json!({"nodes": names(&nodes)}));
            }
            Active::Partitioned => {
                world.set_cuts(&[])?;
                world.record("heal", json!({"cuts": []}));
            }
            Active::Armed => world.end_failpoint()?,
        }
        world.show("none");
        Ok(())
    }
}

/// The concrete victims of a target; `None` (and a recorded `skip`) when "the leader" is
/// unknown right now.
async fn resolve<W: FaultWorld + ?Sized>(world: &mut W, target: &Victims) -> Option<Vec<NodeId>> {
    match target {
        Victims::Nodes(nodes) => Some(nodes.clone()),
        Victims::Leader => {
            let leader = world.leader().await;
            if leader.is_none() {
                world.record("skip", json!({"reason": "no leader to fault"}));
            }
            leader.map(|l| vec![l])
        }
        Victims::ShardLeaders | Victims::ShardLeader(_) => {
            let leaders = world.shard_leaders().await;
            let nodes: Vec<NodeId> = match target {
                Victims::ShardLeader(shard) => leaders.get(shard).copied().into_iter().collect(),
                _ => leaders.into_values().collect(),
            };
            if nodes.is_empty() {
                world.record("skip", json!({"reason": "no shard leader to fault"}));
                return None;
            }
            Some(nodes)
        }
    }
}

pub fn names(nodes: &[NodeId]) -> Vec<String> {
    nodes.iter().map(NodeId::to_string).collect()
}

/// Why the nemesis hit those replicas, in the history's `target` field (docs/history.md), the
/// same words in both worlds.
pub fn target_name(target: &Victims, cluster_size: usize) -> &'static str {
    match target {
        Victims::Leader => "leader",
        Victims::ShardLeaders => "shard-leaders",
        Victims::ShardLeader(_) => "shard-leader",
        Victims::Nodes(n) if n.len() == 1 && cluster_size > 1 => "one",
        Victims::Nodes(n) if n.len() >= cluster_size => "all",
        Victims::Nodes(_) => "minority",
    }
}

/// The nemesis event for a partition: `("partition", value)` with the shape's fields,
/// `"shape"`, the `"cuts"` made and, for `isolate_leader`, the `"leader"` and the
/// `"isolated"` nodes; or `("skip", value)` with a `"reason"` when the shape cut nothing
/// (no leader was known to isolate). Shared by the real and the simulated nemesis.
pub fn partition_event(
    partition: &Partition,
    cuts: &[Link],
    leader: Option<NodeId>,
) -> (&'static str, Value) {
    let shape = serde_json::to_value(partition).unwrap_or(Value::Null);
    // Unit variants (`isolate_leader`) serialize to a bare string; the others to
    // `{"halves": {...}}`. Either way the event gets an object with a `shape` name.
    let (name, mut map) = match shape {
        Value::String(s) => (s, serde_json::Map::new()),
        Value::Object(o) => match o.into_iter().next() {
            Some((k, Value::Object(fields))) => (k, fields),
            Some((k, other)) => (k, serde_json::Map::from_iter([("value".into(), other)])),
            None => (String::from("unknown"), serde_json::Map::new()),
        },
        other => (other.to_string(), serde_json::Map::new()),
    };
    map.insert("shape".into(), Value::from(name));
    if let Some(l) = leader {
        map.insert("leader".into(), Value::from(l.to_string()));
    }
    if cuts.is_empty() {
        let reason = match partition {
            Partition::IsolateLeader => "no leader known: nobody to isolate, nothing cut",
            Partition::IsolateShardLeader { .. } => {
                "no leader of that shard known: nobody to isolate, nothing cut"
            }
            Partition::IsolateFollower => "no leader known: no follower to isolate, nothing cut",
            _ => "the partition cut no link",
        };
        map.insert("reason".into(), Value::from(reason));
        return ("skip", Value::Object(map));
    }
    let isolated = match partition {
        Partition::IsolateLeader | Partition::IsolateShardLeader { .. } => leader,
        Partition::IsolateFollower => node_on_every_cut(cuts),
        _ => None,
    };
    if let Some(node) = isolated {
        map.insert("isolated".into(), json!([node.to_string()]));
    }
    map.insert("cuts".into(), cuts_value(cuts));
    ("partition", Value::Object(map))
}

/// The one node every cut link touches (the node an isolation cut off), if there is one.
fn node_on_every_cut(cuts: &[Link]) -> Option<NodeId> {
    let (a, b) = cuts.first()?;
    [a, b].into_iter().find_map(|end| match end {
        Peer::Node(n) if cuts.iter().all(|(x, y)| x == end || y == end) => Some(*n),
        _ => None,
    })
}

/// Cuts as `[["n1","n2"], ...]` (from, to), clients as `"clients"`.
pub fn cuts_value(cuts: &[Link]) -> Value {
    Value::Array(
        cuts.iter()
            .map(|(a, b)| json!([peer_name(a), peer_name(b)]))
            .collect(),
    )
}

fn peer_name(peer: &Peer) -> String {
    peer.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::schedule::partition_cuts;

    fn nodes() -> Vec<NodeId> {
        (1..=5).map(NodeId).collect()
    }

    #[test]
    fn isolating_the_leader_records_whom_it_cut_off() {
        let leader = Some(NodeId(3));
        let cuts = partition_cuts(&Partition::IsolateLeader, &nodes(), leader);
        let (f, value) = partition_event(&Partition::IsolateLeader, &cuts, leader);
        assert_eq!(f, "partition");
        assert_eq!(value["shape"], "isolate_leader");
        assert_eq!(value["leader"], "n3");
        assert_eq!(value["isolated"], json!(["n3"]));
        assert_eq!(value["cuts"].as_array().map(Vec::len), Some(8));
    }

    #[test]
    fn a_partition_with_no_leader_to_isolate_is_a_skip() {
        let cuts = partition_cuts(&Partition::IsolateLeader, &nodes(), None);
        let (f, value) = partition_event(&Partition::IsolateLeader, &cuts, None);
        assert_eq!(f, "skip");
        assert_eq!(value["shape"], "isolate_leader");
        assert!(value["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no leader")));
        assert!(value.get("cuts").is_none());
    }

    #[test]
    fn other_shapes_keep_their_fields_beside_the_shape() {
        let halves = Partition::Halves {
            minority: vec![NodeId(1), NodeId(2)],
        };
        let cuts = partition_cuts(&halves, &nodes(), None);
        let (f, value) = partition_event(&halves, &cuts, None);
        assert_eq!(f, "partition");
        assert_eq!(value["shape"], "halves");
        assert_eq!(value["minority"], json!(["n1", "n2"]));
        assert_eq!(value["cuts"].as_array().map(Vec::len), Some(12));
    }
}
