//! The simulated nemesis: a seeded schedule of faults, applied to the simulated world and
//! recorded in the history exactly as the real nemesis records its own.
//!
//! The simulator can do what real processes cannot do cheaply or safely, so it has more
//! families than `harness run`: power cuts (unsynced data lost or torn), clock jumps, failing
//! fsyncs and bit flips, on top of kills, pauses and partitions (the same shapes as real runs,
//! drawn by the same code in `schedule`). Like the real schedule, faults alternate with heals
//! and one fault is in force at a time, so each one's effect can be attributed.
//!
//! A sharded bank gets its own draw ([`schedule_sharded`]), shaped like the real sharded
//! nemesis (`faults::schedule::generate_sharded`): kills, power cuts and pauses hit shard
//! leaders (every shard's, or one shard's) or a minority of one shard, partitions cut two
//! shards apart, isolate a shard's leader or split one shard; clock jumps and disk faults hit
//! one replica. A classic cluster's schedule is drawn exactly as before.

use crate::cluster::relay::Peer;
use crate::faults::nemesis::{names, partition_event};
use crate::faults::schedule::{
    draw_partition, draw_shard_partition, draw_shard_target, draw_target, partition_cuts,
    shard_partition_cuts, Partition, Target,
};
use crate::run::rng;
use checker::history::{Event, EventType};
use rand::Rng;
use replica::types::{NodeId, ShardId};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sim::Sim;
use std::collections::{BTreeMap, BTreeSet};
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
    /// The node's WAL loses its end (lost synced writes, or cut at or between record
    /// boundaries): the node must refuse to start, never replay the shorter log.
    CutShort,
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
    if nodes.is_empty() {
        return Vec::new();
    }
    // One bit flip or cut WAL per run at most: a replica that refuses its disk stays down,
    // and two of them plus a kill would be more than a five-node cluster survives.
    let mut flipped = false;
    rhythm(seed, families, interval_ms, until_ms, |rng, family| {
        draw(rng, family, nodes, &mut flipped)
    })
}

/// A sharded bank's schedule (see the module docs): `shards` maps each shard id to its
/// replicas. Same rhythm as [`schedule`].
pub fn schedule_sharded(
    seed: u64,
    shards: &BTreeMap<u32, Vec<NodeId>>,
    families: &[SimFamily],
    interval_ms: u64,
    until_ms: u64,
) -> Vec<SimStep> {
    let all: Vec<NodeId> = shards.values().flatten().copied().collect();
    if all.is_empty() {
        return Vec::new();
    }
    // One bit flip per run at most: the replica that refuses its disk stays down, and its
    // shard of three then survives no other loss.
    let mut flipped = false;
    rhythm(seed, families, interval_ms, until_ms, |rng, family| {
        draw_sharded(rng, family, shards, &all, &mut flipped)
    })
}

/// The schedules' rhythm: from `interval_ms` on, a fault of a family drawn from `families`
/// (`draw` picks the fault), healed `interval_ms` later, until `until_ms`. The seed's
/// nemesis stream is drawn in this order (family, then fault), so a seed's schedule stays
/// the same.
fn rhythm(
    seed: u64,
    families: &[SimFamily],
    interval_ms: u64,
    until_ms: u64,
    mut draw: impl FnMut(&mut rand_chacha::ChaCha8Rng, SimFamily) -> SimFault,
) -> Vec<SimStep> {
    let mut steps = Vec::new();
    if families.is_empty() || interval_ms == 0 {
        return steps;
    }
    let mut rng = rng::stream(seed, SIM_NEMESIS_STREAM);
    let mut at = interval_ms;
    while at + interval_ms <= until_ms {
        let family = families[rng.gen_range(0..families.len())];
        let fault = draw(&mut rng, family);
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

fn draw_sharded(
    rng: &mut impl Rng,
    family: SimFamily,
    shards: &BTreeMap<u32, Vec<NodeId>>,
    all: &[NodeId],
    flipped: &mut bool,
) -> SimFault {
    let ids: Vec<u32> = shards.keys().copied().collect();
    let shard = ids[rng.gen_range(0..ids.len())];
    let members = shards.get(&shard).map_or(&[][..], Vec::as_slice);
    match family {
        SimFamily::Kill if rng.gen_bool(0.1) => SimFault::Kill(Target::Nodes(all.to_vec())),
        SimFamily::Kill => SimFault::Kill(draw_shard_target(rng, shard, members)),
        SimFamily::Power if rng.gen_bool(0.2) => SimFault::Power(Target::Nodes(all.to_vec())),
        SimFamily::Power => SimFault::Power(draw_shard_target(rng, shard, members)),
        SimFamily::Pause => SimFault::Pause(draw_shard_target(rng, shard, members)),
        SimFamily::Partition => {
            SimFault::Partition(draw_shard_partition(rng, &ids, shard, members))
        }
        // Clock jumps and disk faults hit one replica, as in a classic run.
        SimFamily::Clock | SimFamily::Disk => draw(rng, family, all, flipped),
    }
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
                if rng.gen_bool(0.5) {
                    DiskFault::BitFlip
                } else {
                    DiskFault::CutShort
                }
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
        let sharded = sim.shards().len() > 1;
        let resolve = |sim: &Sim, target: &Target| match target {
            Target::ShardLeaders if sharded => {
                let leaders: Vec<NodeId> = sim
                    .shards()
                    .into_iter()
                    .filter_map(|s| sim.leader_of(s))
                    .collect();
                (!leaders.is_empty()).then_some(leaders)
            }
            Target::ShardLeader(shard) if sharded => {
                sim.leader_of(ShardId(*shard)).map(|l| vec![l])
            }
            // A classic cluster is one group: a shard's leader is its leader.
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
                let cuts = if sharded {
                    sharded_cuts(sim, partition, leader)
                } else {
                    partition_cuts(partition, &sim.node_ids(), leader)
                };
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
                DiskFault::CutShort => {
                    // The replica reads its disk at the restart (the heal).
                    sim.crash(*node);
                    let cut = sim.cut_short(*node);
                    self.active = Active::Down(vec![*node]);
                    let mut value = json!({"nodes": [node.to_string()]});
                    if let Some(cut) = cut {
                        value["file"] = json!(cut.path.display().to_string());
                        value["from_bytes"] = json!(cut.from_len);
                        value["to_bytes"] = json!(cut.to_len);
                        value["how"] = json!(format!("{:?}", cut.kind));
                    }
                    nemesis("cut-short", value)
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

/// The links `partition` cuts on a sharded world, with each shard's leader now.
fn sharded_cuts(sim: &Sim, partition: &Partition, leader: Option<NodeId>) -> Vec<(Peer, Peer)> {
    let nodes = sim.node_ids();
    let node_shards: BTreeMap<NodeId, u32> =
        nodes.iter().map(|&n| (n, sim.shard_of(n).0)).collect();
    let shard_leaders: BTreeMap<u32, NodeId> = sim
        .shards()
        .into_iter()
        .filter_map(|s| sim.leader_of(s).map(|l| (s.0, l)))
        .collect();
    shard_partition_cuts(partition, &nodes, &node_shards, &shard_leaders, leader)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Three shards of three: n1-n3, n4-n6, n7-n9.
    fn three_by_three() -> BTreeMap<u32, Vec<NodeId>> {
        (1..=3u32)
            .map(|s| (s, (3 * s - 2..=3 * s).map(NodeId).collect()))
            .collect()
    }

    #[test]
    fn a_sharded_schedule_aims_at_shards_and_is_reproducible() {
        let shards = three_by_three();
        let draw = |seed| schedule_sharded(seed, &shards, &ALL_FAMILIES, 100, 40_000);
        assert_eq!(draw(5), draw(5), "a seed fixes the schedule");
        let same_shard = |ns: &[NodeId]| {
            let of = |n: &NodeId| shards.iter().find(|(_, m)| m.contains(n)).map(|(s, _)| *s);
            ns.iter().all(|n| of(n) == of(&ns[0]))
        };
        let mut shapes = BTreeSet::new();
        for seed in 0..20 {
            for fault in draw(seed).into_iter().filter_map(|s| s.fault) {
                let shape = match fault {
                    SimFault::Kill(Target::Nodes(ns)) | SimFault::Power(Target::Nodes(ns))
                        if ns.len() == 9 =>
                    {
                        "everything"
                    }
                    SimFault::Kill(Target::Nodes(ns))
                    | SimFault::Power(Target::Nodes(ns))
                    | SimFault::Pause(Target::Nodes(ns)) => {
                        assert!(
                            ns.len() == 1 && same_shard(&ns),
                            "a shard's minority: {ns:?}"
                        );
                        "minority of a shard"
                    }
                    SimFault::Kill(Target::ShardLeaders)
                    | SimFault::Pause(Target::ShardLeaders) => "every shard's leader",
                    SimFault::Kill(Target::ShardLeader(_))
                    | SimFault::Power(Target::ShardLeader(_)) => "a shard's leader",
                    SimFault::Partition(Partition::BetweenShards { a, b }) => {
                        assert!(a < b && b <= 3);
                        "between shards"
                    }
                    SimFault::Partition(Partition::IsolateShardLeader { .. }) => "isolate",
                    SimFault::Partition(Partition::Halves { minority }) => {
                        assert!(minority.len() == 1 && same_shard(&minority));
                        "split a shard"
                    }
                    SimFault::Clock { .. } | SimFault::Disk { .. } => "one replica",
                    _ => "other leader faults",
                };
                shapes.insert(shape);
            }
        }
        for shape in [
            "everything",
            "minority of a shard",
            "every shard's leader",
            "a shard's leader",
            "between shards",
            "isolate",
            "split a shard",
            "one replica",
        ] {
            assert!(shapes.contains(shape), "{shape} never drawn: {shapes:?}");
        }
    }

    #[test]
    fn a_sharded_world_resolves_shard_leaders_and_cuts_two_shards_apart() {
        let mut sim = Sim::new(sim::SimOptions::sharded(2, 3, 1));
        assert!(sim.run_until(5_000, |s| s
            .shards()
            .iter()
            .all(|&x| s.leader_of(x).is_some())));
        let mut nemesis = SimNemesis::default();
        let leaders: Vec<NodeId> = sim
            .shards()
            .into_iter()
            .filter_map(|s| sim.leader_of(s))
            .collect();
        let events = nemesis.apply(&mut sim, Some(&SimFault::Pause(Target::ShardLeaders)));
        assert_eq!(events[0].value["nodes"], json!(names(&leaders)));
        assert!(leaders.iter().all(|&l| sim.node(l).is_paused()));
        let cut = SimFault::Partition(Partition::BetweenShards { a: 1, b: 2 });
        nemesis.apply(&mut sim, Some(&cut));
        assert!(
            leaders.iter().all(|&l| !sim.node(l).is_paused()),
            "healed first"
        );
        let cuts = sim.cuts();
        assert_eq!(
            cuts.len(),
            2 * 3 * 3,
            "every link between the shards, both ways"
        );
        assert!(cuts
            .iter()
            .all(|(a, b)| sim.shard_of(*a) != sim.shard_of(*b)));
    }
}
