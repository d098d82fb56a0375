//! The simulated nemesis: a seeded schedule of faults, applied to the simulated world and
//! recorded in the history exactly as the real nemesis records its own.
//!
//! The simulator can do what real processes cannot do cheaply or safely, so it has more
//! families than `harness run`: power cuts (unsynced data lost or torn), clock jumps, failing
//! fsyncs and bit flips, on top of kills, pauses and partitions (the same shapes as real runs,
//! drawn by the same code in `schedule`). Like the real schedule, faults alternate with heals
//! and one fault is in force at a time, so each one's effect can be attributed.

use crate::cluster::relay::Peer;
use crate::faults::nemesis::{names, partition_event};
use crate::faults::schedule::{draw_partition, draw_target, partition_cuts, Partition, Target};
use crate::run::rng;
use checker::history::{Event, EventType};
use rand::Rng;
use replica::types::NodeId;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sim::Sim;
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

/// The random stream of the simulated nemesis.
pub const SIM_NEMESIS_STREAM: u64 = 3;

/// A family of simulated faults, as `--faults` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SimFamily {
    Kill,
    Power,
    Pause,
    Partition,
    Clock,
    Disk,
}

pub const ALL_FAMILIES: [SimFamily; 6] = [
    SimFamily::Kill,
    SimFamily::Power,
    SimFamily::Pause,
    SimFamily::Partition,
    SimFamily::Clock,
    SimFamily::Disk,
];

impl FromStr for SimFamily {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.trim() {
            "kill" => SimFamily::Kill,
            "power" => SimFamily::Power,
            "pause" => SimFamily::Pause,
            "partition" => SimFamily::Partition,
            "clock" => SimFamily::Clock,
            "disk" => SimFamily::Disk,
            other => {
                return Err(format!(
                    "unknown fault {other:?}: expected kill, power, pause, partition, clock, \
                     disk, all or none"
                ))
            }
        })
    }
}

impl fmt::Display for SimFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            SimFamily::Kill => "kill",
            SimFamily::Power => "power",
            SimFamily::Pause => "pause",
            SimFamily::Partition => "partition",
            SimFamily::Clock => "clock",
            SimFamily::Disk => "disk",
        };
        f.write_str(name)
    }
}

/// Parses `--faults kill,power,...` (`all`, `none`) into a sorted, distinct list.
pub fn parse_families(s: &str) -> Result<Vec<SimFamily>, String> {
    match s.trim() {
        "" | "none" => Ok(Vec::new()),
        "all" => Ok(ALL_FAMILIES.to_vec()),
        list => {
            let set: BTreeSet<SimFamily> =
                list.split(',').map(str::parse).collect::<Result<_, _>>()?;
            Ok(set.into_iter().collect())
        }
    }
}

/// What a disk fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DiskFault {
    /// The node's next fsync fails (EIO): it must stop, not carry on.
    FailSync,
    /// One bit of synced data flips: the node must refuse it, never silently cut it.
    BitFlip,
}

/// One simulated fault.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SimFault {
    Kill(Target),
    Power(Target),
    Pause(Target),
    Partition(Partition),
    /// One node's clock jumps forward.
    Clock {
        node: NodeId,
        jump_ms: u64,
    },
    Disk {
        node: NodeId,
        fault: DiskFault,
    },
}

/// One step of the schedule, at a virtual time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimStep {
    pub at_ms: u64,
    /// `None` heals whatever is in force.
    pub fault: Option<SimFault>,
}

/// Faults from `interval_ms` on, each healed `interval_ms` later, until `until_ms`.
pub fn schedule(
    seed: u64,
    nodes: &[NodeId],
    families: &[SimFamily],
    interval_ms: u64,
    until_ms: u64,
) -> Vec<SimStep> {
    let mut steps = Vec::new();
    if families.is_empty() || nodes.is_empty() || interval_ms == 0 {
        return steps;
    }
    let mut rng = rng::stream(seed, SIM_NEMESIS_STREAM);
    let mut at = interval_ms;
    // One bit flip per run at most: a replica that refuses its disk stays down, and two of
    // them plus a kill would be more than a five-node cluster survives.
    let mut flipped = false;
    while at + interval_ms <= until_ms {
        let family = families[rng.gen_range(0..families.len())];
        let fault = draw(&mut rng, family, nodes, &mut flipped);
        steps.push(SimStep {
            at_ms: at,
            fault: Some(fault),
        });
        steps.push(SimStep {
            at_ms: at + interval_ms,
            fault: None,
        });
        at += 2 * interval_ms;
    }
    steps
}

fn draw(rng: &mut impl Rng, family: SimFamily, nodes: &[NodeId], flipped: &mut bool) -> SimFault {
    let one = |rng: &mut dyn rand::RngCore| nodes[rng.gen_range(0..nodes.len())];
    match family {
        SimFamily::Kill if rng.gen_bool(0.2) => SimFault::Kill(Target::Nodes(nodes.to_vec())),
        SimFamily::Kill => SimFault::Kill(draw_target(rng, nodes)),
        // A power cut of every node at once is the case that loses the most.
        SimFamily::Power if rng.gen_bool(0.3) => SimFault::Power(Target::Nodes(nodes.to_vec())),
        SimFamily::Power => SimFault::Power(draw_target(rng, nodes)),
        SimFamily::Pause => SimFault::Pause(draw_target(rng, nodes)),
        SimFamily::Partition => SimFault::Partition(draw_partition(rng, nodes)),
        SimFamily::Clock => SimFault::Clock {
            node: one(rng),
            jump_ms: rng.gen_range(100..=5_000),
        },
        SimFamily::Disk => {
            let fault = if *flipped || rng.gen_bool(0.5) {
                DiskFault::FailSync
            } else {
                *flipped = true;
                DiskFault::BitFlip
            };
            SimFault::Disk {
                node: one(rng),
                fault,
            }
        }
    }
}

/// What is in force, to be undone by the next heal.
#[derive(Debug, Default)]
enum Active {
    #[default]
    Nothing,
    Down(Vec<NodeId>),
    Paused(Vec<NodeId>),
    Partitioned,
}

/// Applies a schedule to a simulated world; every action becomes a nemesis event.
#[derive(Debug, Default)]
pub struct SimNemesis {
    active: Active,
    pub faults: u32,
}

impl SimNemesis {
    /// Starts `fault` (healing what is in force first) or heals; returns the history events.
    pub fn apply(&mut self, sim: &mut Sim, fault: Option<&SimFault>) -> Vec<Event> {
        let mut events = self.heal(sim);
        let Some(fault) = fault else {
            return events;
        };
        self.faults += 1;
        let resolve = |sim: &Sim, target: &Target| match target {
            // The simulator runs one group: a shard's leader is its leader.
            Target::Leader | Target::ShardLeaders | Target::ShardLeader(_) => {
                sim.leader().map(|l| vec![l])
            }
            Target::Nodes(nodes) => Some(nodes.clone()),
        };
        let event = match fault {
            SimFault::Kill(target) | SimFault::Power(target) | SimFault::Pause(target) => {
                let Some(nodes) = resolve(sim, target) else {
                    events.push(nemesis("skip", json!({"reason": "no leader to fault"})));
                    return events;
                };
                let (f, active) = match fault {
                    SimFault::Kill(_) => {
                        nodes.iter().for_each(|&n| sim.crash(n));
                        ("kill", Active::Down(nodes.clone()))
                    }
                    SimFault::Power(_) => {
                        nodes.iter().for_each(|&n| sim.power_cut(n));
                        ("power-cut", Active::Down(nodes.clone()))
                    }
                    _ => {
                        nodes.iter().for_each(|&n| sim.pause(n));
                        ("pause", Active::Paused(nodes.clone()))
                    }
                };
                self.active = active;
                nemesis(
                    f,
                    json!({"nodes": names(&nodes), "target": target_name(target)}),
                )
            }
            SimFault::Partition(partition) => {
                let leader = sim.leader();
                let cuts = partition_cuts(partition, &sim.node_ids(), leader);
                for (from, to) in &cuts {
                    if let (Peer::Node(a), Peer::Node(b)) = (from, to) {
                        sim.cut_link(*a, *b);
                    }
                }
                let (f, value) = partition_event(partition, &cuts, leader);
                if !cuts.is_empty() {
                    self.active = Active::Partitioned;
                }
                nemesis(f, value)
            }
            SimFault::Clock { node, jump_ms } => {
                sim.jump_clock(*node, *jump_ms);
                nemesis(
                    "clock-jump",
                    json!({"nodes": [node.to_string()], "jump_ms": jump_ms}),
                )
            }
            SimFault::Disk { node, fault } => match fault {
                DiskFault::FailSync => {
                    sim.fail_syncs(*node, 1);
                    nemesis("fsync-fail", json!({"nodes": [node.to_string()]}))
                }
                DiskFault::BitFlip => {
                    let at = sim.flip_bit(*node);
                    let (file, offset) = at
                        .map(|(p, o)| (p.display().to_string(), Some(o)))
                        .unwrap_or_default();
                    // The flip shows when the replica next reads its disk: make that now.
                    sim.crash(*node);
                    self.active = Active::Down(vec![*node]);
                    nemesis(
                        "bit-flip",
                        json!({"nodes": [node.to_string()], "file": file, "offset": offset}),
                    )
                }
            },
        };
        events.push(event);
        events
    }

    /// Undoes what is in force; returns the history events.
    pub fn heal(&mut self, sim: &mut Sim) -> Vec<Event> {
        match std::mem::take(&mut self.active) {
            Active::Nothing => Vec::new(),
            Active::Down(nodes) => {
                nodes.iter().for_each(|&n| sim.restart(n));
                let refused: Vec<String> = nodes
                    .iter()
                    .filter_map(|&n| sim.node(n).refused().map(|why| format!("{n}: {why}")))
                    .collect();
                let mut value = json!({"nodes": names(&nodes)});
                if !refused.is_empty() {
                    value["refused"] = json!(refused);
                }
                vec![nemesis("restart", value)]
            }
            Active::Paused(nodes) => {
                nodes.iter().for_each(|&n| sim.resume(n));
                vec![nemesis("resume", json!({"nodes": names(&nodes)}))]
            }
            Active::Partitioned => {
                sim.heal();
                vec![nemesis("heal", json!({"cuts": []}))]
            }
        }
    }
}

fn target_name(target: &Target) -> &'static str {
    match target {
        Target::Leader | Target::ShardLeader(_) => "leader",
        Target::ShardLeaders => "shard-leaders",
        Target::Nodes(n) if n.len() == 1 => "one",
        Target::Nodes(_) => "several",
    }
}

/// A nemesis `info` event.
pub fn nemesis(f: &str, value: Value) -> Event {
    let event = Event::nemesis(f, value);
    debug_assert_eq!(event.kind, EventType::Info);
    event
}
