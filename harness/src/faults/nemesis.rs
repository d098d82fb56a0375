//! The nemesis: carries out the schedule against the running cluster and records every action
//! as a `nemesis` event with its exact targets.
//!
//! The schedule ([`crate::faults::schedule`]) says *what* and *when*; this module resolves "the leader"
//! at the moment of acting, does it (SIGKILL, SIGSTOP/SIGCONT, relay cuts), remembers what is in
//! force so that the following heal undoes exactly that, and writes the event after the action,
//! so every client event after it in the history happened with the fault in place.
//!
//! On a sharded bank the shard shapes resolve through the target's shards: "every shard's
//! leader" and "shard k's leader" when the fault starts ([`System::shard_leaders`]), and the
//! links between two shards' replicas ([`System::node_shards`]); `crash-coordinator` arms a
//! failpoint on a shard's leader at the start and, at the heal, restarts that replica whether
//! the failpoint fired (a `crash`) or not (a `kill`), see [`crate::faults::failpoints`].

use crate::cluster::relay::{Link, Peer};
use crate::faults::failpoints::CrashCoordinator;
use crate::faults::schedule::{shard_partition_cuts, Action, Fault, Partition, Step, Target};
use crate::run::record::Recorder;
use crate::targets::{Target as System, TargetError};
use replica::failpoints::Failpoint;
use replica::types::{NodeId, ShardId};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

/// What the nemesis has in force now.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
enum Active {
    #[default]
    Nothing,
    Killed(Vec<NodeId>),
    Paused(Vec<NodeId>),
    Partitioned,
    /// A failpoint armed on a shard's leader ([`Nemesis::crash`] holds it).
    Armed,
}

/// The current fault in words, for the progress display.
pub type FaultLabel = Arc<Mutex<String>>;

pub struct Nemesis {
    recorder: Arc<Recorder>,
    active: Active,
    label: FaultLabel,
    /// The `crash-coordinator` fault's state: what is armed, where.
    crash: CrashCoordinator,
    /// Faults started (for reports).
    pub faults: u32,
}

impl Nemesis {
    pub fn new(recorder: Arc<Recorder>, label: FaultLabel) -> Nemesis {
        set_label(&label, "none");
        Nemesis {
            recorder,
            active: Active::Nothing,
            label,
            crash: CrashCoordinator::new(0, CrashCoordinator::DEFAULT_FIRE_WITHIN),
            faults: 0,
        }
    }

    /// Runs `steps` (times relative to `start`) until they are done or `end` passes.
    pub async fn run(
        &mut self,
        cluster: &mut dyn System,
        steps: &[Step],
        start: Instant,
        end: Instant,
    ) {
        for step in steps {
            let at = start + step.at;
            if at >= end {
                break;
            }
            tokio::time::sleep_until(at).await;
            if let Err(e) = self.apply(cluster, &step.action).await {
                self.recorder.nemesis(
                    "error",
                    json!({"action": format!("{:?}", step.action), "error": e.to_string()}),
                );
            }
        }
    }

    pub async fn apply(
        &mut self,
        cluster: &mut dyn System,
        action: &Action,
    ) -> Result<(), TargetError> {
        match action {
            Action::Start(fault) => self.start(cluster, fault).await,
            Action::Heal => self.heal(cluster),
        }
    }

    async fn start(&mut self, cluster: &mut dyn System, fault: &Fault) -> Result<(), TargetError> {
        if self.active != Active::Nothing {
            self.heal(cluster)?;
        }
        self.faults += 1;
        match fault {
            Fault::Kill(target) => {
                let Some(nodes) = self.resolve(cluster, target).await else {
                    return Ok(());
                };
                for &node in &nodes {
                    cluster.kill(node)?;
                }
                self.recorder.nemesis(
                    "kill",
                    json!({"nodes": names(&nodes), "target": target_name(target, cluster.nodes().len())}),
                );
                set_label(&self.label, &format!("killed {}", names(&nodes).join(",")));
                self.active = Active::Killed(nodes);
            }
            Fault::Pause(target) => {
                let Some(nodes) = self.resolve(cluster, target).await else {
                    return Ok(());
                };
                for &node in &nodes {
                    cluster.pause(node)?;
                }
                self.recorder.nemesis(
                    "pause",
                    json!({"nodes": names(&nodes), "target": target_name(target, cluster.nodes().len())}),
                );
                set_label(&self.label, &format!("paused {}", names(&nodes).join(",")));
                self.active = Active::Paused(nodes);
            }
            Fault::Partition(partition) => {
                let leader = match partition {
                    Partition::IsolateLeader | Partition::IsolateFollower => cluster.leader().await,
                    _ => None,
                };
                let shard_leaders = match partition {
                    Partition::IsolateShardLeader { .. } => cluster.shard_leaders().await,
                    _ => Default::default(),
                };
                let leader = match partition {
                    Partition::IsolateShardLeader { shard } => shard_leaders.get(shard).copied(),
                    _ => leader,
                };
                let cuts = shard_partition_cuts(
                    partition,
                    cluster.nodes(),
                    &cluster.node_shards(),
                    &shard_leaders,
                    leader,
                );
                let (f, value) = partition_event(partition, &cuts, leader);
                if cuts.is_empty() {
                    // Nothing to cut (no leader known): recorded as a skip, never as a
                    // partition, so nobody reads a fault into a quiet stretch.
                    self.recorder.nemesis(f, value);
                    return Ok(());
                }
                cluster.set_cuts(&cuts);
                self.recorder.nemesis(f, value);
                set_label(&self.label, &fault.to_string());
                self.active = Active::Partitioned;
            }
            Fault::CrashCoordinator { shard, failpoint } => {
                if self.arm(cluster, *shard, failpoint).await {
                    set_label(&self.label, &fault.to_string());
                    self.active = Active::Armed;
                }
            }
        }
        Ok(())
    }

    /// Arms `failpoint` on `shard`'s leader now; false (and a recorded skip) when there is
    /// none, the target cannot arm, or the replica refuses.
    async fn arm(&mut self, cluster: &mut dyn System, shard: u32, failpoint: &str) -> bool {
        let skip = |reason: String| {
            let value = json!({"fault": "crash-coordinator", "reason": reason});
            self.recorder.nemesis("skip", value);
            false
        };
        let Some(point) = Failpoint::from_name(failpoint) else {
            return skip(format!(
                "no failpoint {failpoint:?}: expected one of {}",
                Failpoint::names()
            ));
        };
        let Some(transport) = cluster.control() else {
            return skip(format!(
                "the {} target has no failpoints",
                cluster.kind().name()
            ));
        };
        let Some(&node) = cluster.shard_leaders().await.get(&shard) else {
            return skip(format!("no leader of shard {shard} to arm"));
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

    /// Undoes what is in force.
    pub fn heal(&mut self, cluster: &mut dyn System) -> Result<(), TargetError> {
        match std::mem::take(&mut self.active) {
            Active::Nothing => {}
            Active::Killed(nodes) => {
                for &node in &nodes {
                    cluster.start(node)?;
                }
                self.recorder
                    .nemesis("restart", json!({"nodes": names(&nodes)}));
            }
            Active::Paused(nodes) => {
                for &node in &nodes {
                    cluster.resume(node)?;
                }
                self.recorder
                    .nemesis("resume", json!({"nodes": names(&nodes)}));
            }
            Active::Partitioned => {
                cluster.set_cuts(&[]);
                self.recorder.nemesis("heal", json!({"cuts": []}));
            }
            Active::Armed => {
                self.crash.finish(cluster, &self.recorder)?;
            }
        }
        set_label(&self.label, "none");
        Ok(())
    }

    /// The concrete victims of a target; `None` (and a recorded note) when "the leader" is
    /// unknown right now.
    async fn resolve(&self, cluster: &dyn System, target: &Target) -> Option<Vec<NodeId>> {
        match target {
            Target::Nodes(nodes) => Some(nodes.clone()),
            Target::Leader => match cluster.leader().await {
                Some(leader) => Some(vec![leader]),
                None => {
                    self.recorder
                        .nemesis("skip", json!({"reason": "no leader to fault"}));
                    None
                }
            },
            Target::ShardLeaders | Target::ShardLeader(_) => {
                let leaders = cluster.shard_leaders().await;
                let nodes: Vec<NodeId> = match target {
                    Target::ShardLeader(shard) => leaders.get(shard).copied().into_iter().collect(),
                    _ => leaders.into_values().collect(),
                };
                if nodes.is_empty() {
                    self.recorder
                        .nemesis("skip", json!({"reason": "no shard leader to fault"}));
                    return None;
                }
                Some(nodes)
            }
        }
    }
}

fn set_label(label: &FaultLabel, text: &str) {
    if let Ok(mut l) = label.lock() {
        *l = text.to_string();
    }
}

pub fn names(nodes: &[NodeId]) -> Vec<String> {
    nodes.iter().map(NodeId::to_string).collect()
}

fn target_name(target: &Target, cluster_size: usize) -> &'static str {
    match target {
        Target::Leader => "leader",
        Target::ShardLeaders => "shard-leaders",
        Target::ShardLeader(_) => "shard-leader",
        Target::Nodes(n) if n.len() == 1 && cluster_size > 1 => "one",
        Target::Nodes(n) if n.len() >= cluster_size => "all",
        Target::Nodes(_) => "minority",
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
