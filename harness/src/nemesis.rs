//! The nemesis: carries out the schedule against the running cluster and records every action
//! as a `nemesis` event with its exact targets.
//!
//! The schedule ([`crate::schedule`]) says *what* and *when*; this module resolves "the leader"
//! at the moment of acting, does it (SIGKILL, SIGSTOP/SIGCONT, relay cuts), remembers what is in
//! force so that the following heal undoes exactly that, and writes the event after the action,
//! so every client event after it in the history happened with the fault in place.

use crate::record::Recorder;
use crate::relay::{Link, Peer};
use crate::schedule::{isolated_follower, partition_cuts, Action, Fault, Partition, Step, Target};
use crate::targets::{Target as System, TargetError};
use replica::types::NodeId;
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
}

/// The current fault in words, for the progress display.
pub type FaultLabel = Arc<Mutex<String>>;

pub struct Nemesis {
    recorder: Arc<Recorder>,
    active: Active,
    label: FaultLabel,
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
                let cuts = partition_cuts(partition, cluster.nodes(), leader);
                cluster.set_cuts(&cuts);
                let mut value = match serde_json::to_value(partition) {
                    // A unit variant serializes as a bare string: make it `{"<kind>": null}`, the
                    // shape of the others, so the cuts and the leader can sit beside it.
                    Ok(Value::String(kind)) => json!({ kind: null }),
                    Ok(v) => v,
                    Err(_) => Value::Null,
                };
                if let Value::Object(map) = &mut value {
                    map.insert("cuts".into(), cuts_value(&cuts));
                    if let Some(l) = leader {
                        map.insert("leader".into(), Value::from(l.to_string()));
                    }
                    if *partition == Partition::IsolateFollower {
                        if let Some(f) = isolated_follower(cluster.nodes(), leader) {
                            map.insert("isolated".into(), Value::from(f.to_string()));
                        }
                    }
                }
                self.recorder.nemesis("partition", value);
                set_label(&self.label, &fault.to_string());
                self.active = Active::Partitioned;
            }
        }
        Ok(())
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
        Target::Nodes(n) if n.len() == 1 && cluster_size > 1 => "one",
        Target::Nodes(n) if n.len() >= cluster_size => "all",
        Target::Nodes(_) => "minority",
    }
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
