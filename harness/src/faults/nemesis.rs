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

use crate::faults::schedule::{
    shard_partition_cuts, ClockAim, DiskFault, Fault, Partition, Sent, Step, Strike, Victims,
};
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
    /// `node` crashes inside its next burst (a storage call cut short).
    fn crash_in_burst(&mut self, node: NodeId) -> Result<(), TargetError> {
        Err(cannot(node, "crash a node inside a burst"))
    }
    /// `node`'s power is cut just after it next sends `after`.
    fn power_cut_after(&mut self, node: NodeId, _after: Sent) -> Result<(), TargetError> {
        Err(cannot(node, "cut a node's power after a send"))
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

/// What the nemesis has in force now, to be undone by the next heal (an election fault has
/// a node down and a partition in force at once).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Active {
    /// Killed, power-cut, or crashed to show a disk fault: restarted at the heal.
    down: Vec<NodeId>,
    paused: Vec<NodeId>,
    partitioned: bool,
    /// A failpoint armed on a shard's leader (the world holds it).
    armed: bool,
}

/// An election fault between its two blows: the leader is deposed, and the nemesis watches
/// for the next one (or for the moment to split the election).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Watch {
    shard: Option<u32>,
    deposed: NodeId,
    /// The replicas a lag strike cut off (none for the other strikes).
    lagging: Vec<NodeId>,
    strike: Strike,
    started_ms: u64,
    next_poll_ms: u64,
}

/// How often the nemesis asks who leads while it waits for a new leader (virtual or wall
/// milliseconds): "just after it is elected" means within this.
pub const WATCH_POLL_MS: u64 = 10;

/// The one nemesis: a schedule, where it has got to, and what is in force.
#[derive(Debug, Default)]
pub struct Nemesis {
    schedule: Vec<Step>,
    next: usize,
    active: Active,
    watch: Option<Watch>,
    /// The time of the step being carried out (the moment an election fault starts).
    now_ms: u64,
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

    /// When the next step is due (ms since the workload started), if any is left: a scheduled
    /// step, or the next look at who leads while an election fault watches.
    pub fn next_at_ms(&self) -> Option<u64> {
        let step = self.schedule.get(self.next).map(|s| s.at_ms);
        let watch = self.watch.as_ref().map(|w| w.next_poll_ms);
        step.into_iter().chain(watch).min()
    }

    /// The interpreter: carries out every step due at `now_ms`, in order, and the second blow
    /// of an election fault once it is due. A step the world fails at is recorded as an
    /// `error` event, and the schedule goes on.
    pub async fn apply_due<W: FaultWorld + ?Sized>(&mut self, world: &mut W, now_ms: u64) {
        while let Some(step) = self.schedule.get(self.next).filter(|s| s.at_ms <= now_ms) {
            let fault = step.fault.clone();
            self.next += 1;
            self.now_ms = step.at_ms;
            if let Err(e) = self.apply(world, fault.as_ref()).await {
                let action = fault.map_or_else(|| "heal".to_string(), |f| f.to_string());
                world.record("error", json!({"action": action, "error": e.to_string()}));
            }
        }
        if self
            .watch
            .as_ref()
            .is_some_and(|w| w.next_poll_ms <= now_ms)
        {
            if let Err(e) = self.strike(world, now_ms).await {
                world.record(
                    "error",
                    json!({"action": "election strike", "error": e.to_string()}),
                );
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
            // Wall time moves on while the world answers: act on the time it is now.
            let now_ms = u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
            self.apply_due(world, now_ms.max(at_ms)).await;
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
                match fault {
                    Fault::Pause(_) => self.active.paused = nodes,
                    _ => self.active.down = nodes,
                }
            }
            Fault::CrashInBurst(target)
            | Fault::PowerAfter {
                victims: target, ..
            } => {
                let Some(nodes) = resolve(world, target).await else {
                    return Ok(());
                };
                let size = world.nodes().len();
                let mut value =
                    json!({"nodes": names(&nodes), "target": target_name(target, size)});
                let f = match fault {
                    Fault::PowerAfter { after, .. } => {
                        for &node in &nodes {
                            world.power_cut_after(node, *after)?;
                        }
                        value["after"] = json!(after);
                        "power-cut"
                    }
                    _ => {
                        for &node in &nodes {
                            world.crash_in_burst(node)?;
                        }
                        value["during"] = json!("next-burst");
                        "crash"
                    }
                };
                world.record(f, value);
                world.show(&fault.to_string());
                self.active.down = nodes;
            }
            Fault::Election {
                shard,
                strike:
                    strike @ (Strike::LagThenDepose { minority, lag_ms }
                    | Strike::LagThenElect { minority, lag_ms }
                    | Strike::StrandLeader { minority, lag_ms }),
            } => {
                // First blow: a minority falls behind (followers, or the leader with them);
                // the second comes at the watch's time.
                let leader = group_leader(world, *shard).await;
                let stranded = matches!(strike, Strike::StrandLeader { .. });
                let lagging = if stranded {
                    with_leader(minority, leader)
                } else {
                    followers_only(minority, leader, &self.group(world, *shard))
                };
                let split = Partition::Halves {
                    minority: lagging.clone(),
                };
                let cuts = crate::faults::schedule::partition_cuts(&split, &world.nodes(), None);
                let cuts = self.with_group(world, *shard, cuts);
                world.set_cuts(&cuts)?;
                let (f, mut value) = partition_event(&split, &cuts, leader.filter(|_| stranded));
                value["then"] = json!(strike_name(strike));
                if let Some(l) = leader.filter(|l| !stranded && minority.contains(l)) {
                    value["instead_of"] = json!(l.to_string());
                }
                world.record(f, value);
                world.show(&fault.to_string());
                self.active.partitioned = true;
                self.watch = Some(Watch {
                    shard: *shard,
                    deposed: NodeId(0),
                    lagging,
                    strike: strike.clone(),
                    started_ms: self.now_ms,
                    next_poll_ms: self.now_ms + lag_ms,
                });
            }
            Fault::Election { shard, strike } => {
                let then = ("then", json!(strike_name(strike)));
                let Some(nodes) = kill_leader(world, *shard, then).await? else {
                    return Ok(());
                };
                world.show(&fault.to_string());
                self.active.down = nodes.clone();
                self.watch = nodes.first().map(|&deposed| Watch {
                    shard: *shard,
                    deposed,
                    lagging: Vec::new(),
                    strike: strike.clone(),
                    started_ms: self.now_ms,
                    next_poll_ms: self.now_ms + first_poll_ms(strike),
                });
            }
            Fault::ClockAimed { at, jump_ms } => {
                let leader = world.leader().await;
                let node = match at {
                    ClockAim::Leader => leader,
                    ClockAim::Follower => {
                        leader.and_then(|l| world.nodes().into_iter().find(|&n| n != l))
                    }
                };
                let Some(node) = node else {
                    world.record("skip", json!({"reason": "no leader: no lease to aim at"}));
                    return Ok(());
                };
                world.jump_clock(node, *jump_ms)?;
                let target = match at {
                    ClockAim::Leader => "leader",
                    ClockAim::Follower => "follower",
                };
                let value =
                    json!({"nodes": [node.to_string()], "jump_ms": jump_ms, "target": target});
                world.record("clock-jump", value);
            }
            Fault::Partition(partition) => self.partition(world, partition).await?,
            Fault::CrashCoordinator { shard, failpoint } => {
                if world.arm_failpoint(*shard, failpoint).await {
                    world.show(&fault.to_string());
                    self.active.armed = true;
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
                    self.active.down = vec![*node];
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
        self.active.partitioned = true;
        Ok(())
    }

    /// The second blow of an election fault, if it is due: the new leader killed or isolated
    /// as soon as one other than the deposed leads, or the split at its moment. Until then
    /// the watch looks again in [`WATCH_POLL_MS`]; the heal ends it either way.
    async fn strike<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        now_ms: u64,
    ) -> Result<(), TargetError> {
        let Some(mut watch) = self.watch.take() else {
            return Ok(());
        };
        match &watch.strike {
            Strike::LagThenDepose { .. } | Strike::StrandLeader { .. } => {
                return self.depose_after_lag(world, &watch, now_ms).await;
            }
            Strike::LagThenElect { .. } => return self.elect_lagger(world, &watch, now_ms).await,
            _ => {}
        }
        if let Strike::SplitElection { minority, .. } = &watch.strike {
            let split = Partition::Halves {
                minority: minority.clone(),
            };
            let cuts = crate::faults::schedule::partition_cuts(&split, &world.nodes(), None);
            let cuts = self.with_group(world, watch.shard, cuts);
            world.set_cuts(&cuts)?;
            let (f, mut value) = partition_event(&split, &cuts, None);
            value["during"] = json!("election");
            value["after_ms"] = json!(now_ms.saturating_sub(watch.started_ms));
            world.record(f, value);
            self.active.partitioned = true;
            return Ok(());
        }
        let leader = group_leader(world, watch.shard).await;
        let Some(new) = leader.filter(|&l| l != watch.deposed) else {
            watch.next_poll_ms = now_ms + WATCH_POLL_MS;
            self.watch = Some(watch);
            return Ok(());
        };
        let waited = now_ms.saturating_sub(watch.started_ms);
        if watch.strike == Strike::KillNewLeader {
            world.kill(new)?;
            let value =
                json!({"nodes": [new.to_string()], "target": "new-leader", "after_ms": waited});
            world.record("kill", value);
            self.active.down.push(new);
            return Ok(());
        }
        let isolate = Partition::Halves {
            minority: vec![new],
        };
        let cuts = crate::faults::schedule::partition_cuts(&isolate, &world.nodes(), None);
        world.set_cuts(&cuts)?;
        let (f, mut value) = partition_event(&isolate, &cuts, Some(new));
        value["target"] = json!("new-leader");
        value["after_ms"] = json!(waited);
        world.record(f, value);
        self.active.partitioned = true;
        Ok(())
    }

    /// The second blow of a lag-then-depose election fault: heal the cut that let the
    /// minority fall behind and kill the leader (of the shard) in the same instant. Who leads
    /// is asked before the heal (a real cluster takes a round trip, or a status timeout, to
    /// answer; the laggers would catch up meanwhile), and it is asked then, not at the
    /// fault's start: the leader may have changed during the lag.
    async fn depose_after_lag<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        watch: &Watch,
        now_ms: u64,
    ) -> Result<(), TargetError> {
        let target = watch.shard.map_or(Victims::Leader, Victims::ShardLeader);
        let victims = leaders_of(world, &target).await;
        world.set_cuts(&[])?;
        self.active.partitioned = false;
        world.record("heal", json!({"cuts": []}));
        let after = ("after_ms", json!(now_ms.saturating_sub(watch.started_ms)));
        let Some(nodes) = kill_resolved(world, &target, victims, after)? else {
            return Ok(());
        };
        self.active.down.extend(nodes);
        Ok(())
    }

    /// The second blow of a lag-then-elect election fault: kill the leader (of the shard),
    /// then, in the same instant, replace the lag's cut by a star around the first lagger
    /// still up, held until the heal: only it sees a majority, so the next leader is a
    /// replica whose log lags, and its view merge must recover what it missed from the
    /// others' promises. The leader dies before the lag's cut goes, so no heartbeat or
    /// ACCEPT of its reaches the laggers (a replica catches up only from its leader).
    async fn elect_lagger<W: FaultWorld + ?Sized>(
        &mut self,
        world: &mut W,
        watch: &Watch,
        now_ms: u64,
    ) -> Result<(), TargetError> {
        let target = watch.shard.map_or(Victims::Leader, Victims::ShardLeader);
        let victims = leaders_of(world, &target).await;
        let after_ms = now_ms.saturating_sub(watch.started_ms);
        let after = ("after_ms", json!(after_ms));
        let killed = kill_resolved(world, &target, victims, after)?.unwrap_or_default();
        self.active.down.extend(killed.iter().copied());
        let group = self.group(world, watch.shard);
        let hub = watch.lagging.iter().copied().find(|n| !killed.contains(n));
        let cuts = match hub {
            Some(hub) => {
                crate::faults::schedule::partition_cuts(&Partition::Star { hub }, &group, None)
            }
            None => Vec::new(),
        };
        world.set_cuts(&cuts)?;
        let Some(hub) = hub.filter(|_| !cuts.is_empty()) else {
            // A shard of two, or every lagger killed: nothing to aim, so the lag just heals.
            self.active.partitioned = false;
            world.record("heal", json!({"cuts": []}));
            return Ok(());
        };
        let (f, mut value) = partition_event(&Partition::Star { hub }, &cuts, None);
        value["during"] = json!("election");
        value["after_ms"] = json!(after_ms);
        world.record(f, value);
        Ok(())
    }

    /// The replicas of `shard` (every replica on a classic cluster), in id order.
    fn group<W: FaultWorld + ?Sized>(&self, world: &W, shard: Option<u32>) -> Vec<NodeId> {
        let Some(shard) = shard else {
            return world.nodes();
        };
        let shards = world.node_shards();
        world
            .nodes()
            .into_iter()
            .filter(|n| shards.get(n) == Some(&shard))
            .collect()
    }

    /// On a sharded bank, only the links within `shard` of `cuts` (a split of one shard's
    /// election leaves the other shards whole).
    fn with_group<W: FaultWorld + ?Sized>(
        &self,
        world: &W,
        shard: Option<u32>,
        cuts: Vec<Link>,
    ) -> Vec<Link> {
        let Some(shard) = shard else { return cuts };
        let shards = world.node_shards();
        let inside = |p: &Peer| matches!(p, Peer::Node(n) if shards.get(n) == Some(&shard));
        cuts.into_iter()
            .filter(|(a, b)| inside(a) && inside(b))
            .collect()
    }

    /// Undoes what is in force (and ends an election fault's watch).
    pub fn heal<W: FaultWorld + ?Sized>(&mut self, world: &mut W) -> Result<(), TargetError> {
        self.watch = None;
        let active = std::mem::take(&mut self.active);
        if active == Active::default() {
            return Ok(());
        }
        if active.partitioned {
            world.set_cuts(&[])?;
            world.record("heal", json!({"cuts": []}));
        }
        if !active.down.is_empty() {
            let mut refused = Vec::new();
            for &node in &active.down {
                if let Some(why) = world.restart(node)? {
                    refused.push(format!("{node}: {why}"));
                }
            }
            let mut value = json!({"nodes": names(&active.down)});
            if !refused.is_empty() {
                value["refused"] = json!(refused);
            }
            world.record("restart", value);
        }
        if !active.paused.is_empty() {
            for &node in &active.paused {
                world.resume(node)?;
            }
            world.record("resume", json!({"nodes": names(&active.paused)}));
        }
        if active.armed {
            world.end_failpoint()?;
        }
        world.show("none");
        Ok(())
    }
}

/// Kills the leader (of `shard`, on a sharded bank) and records the `kill` with `extra` beside
/// its nodes and target; `None` when there is no leader to kill. Both election strikes depose
/// a leader this way, so their history events read alike.
async fn kill_leader<W: FaultWorld + ?Sized>(
    world: &mut W,
    shard: Option<u32>,
    extra: (&str, serde_json::Value),
) -> Result<Option<Vec<NodeId>>, TargetError> {
    let target = shard.map_or(Victims::Leader, Victims::ShardLeader);
    let victims = leaders_of(world, &target).await;
    kill_resolved(world, &target, victims, extra)
}

/// Kills `victims`, resolved from `target` (a leader), and records the `kill` with `extra`;
/// `None`, and the `skip` [`resolve`] records, when there was no leader.
fn kill_resolved<W: FaultWorld + ?Sized>(
    world: &mut W,
    target: &Victims,
    victims: Option<Vec<NodeId>>,
    extra: (&str, serde_json::Value),
) -> Result<Option<Vec<NodeId>>, TargetError> {
    let Some(nodes) = victims else {
        record_no_leader(world, target);
        return Ok(None);
    };
    for &node in &nodes {
        world.kill(node)?;
    }
    let size = world.nodes().len();
    let mut value = json!({
        "nodes": names(&nodes),
        "target": target_name(target, size),
    });
    value[extra.0] = extra.1;
    world.record("kill", value);
    Ok(Some(nodes))
}

/// The concrete victims of a target; `None` (and a recorded `skip`) when "the leader" is
/// unknown right now.
async fn resolve<W: FaultWorld + ?Sized>(world: &mut W, target: &Victims) -> Option<Vec<NodeId>> {
    let nodes = leaders_of(world, target).await;
    if nodes.is_none() {
        record_no_leader(world, target);
    }
    nodes
}

/// The concrete victims of a target, asked of the world without recording anything.
async fn leaders_of<W: FaultWorld + ?Sized>(world: &W, target: &Victims) -> Option<Vec<NodeId>> {
    match target {
        Victims::Nodes(nodes) => Some(nodes.clone()),
        Victims::Leader => world.leader().await.map(|l| vec![l]),
        Victims::ShardLeaders | Victims::ShardLeader(_) => {
            let leaders = world.shard_leaders().await;
            let nodes: Vec<NodeId> = match target {
                Victims::ShardLeader(shard) => leaders.get(shard).copied().into_iter().collect(),
                _ => leaders.into_values().collect(),
            };
            (!nodes.is_empty()).then_some(nodes)
        }
    }
}

/// The `skip` of a fault whose leader was unknown.
fn record_no_leader<W: FaultWorld + ?Sized>(world: &mut W, target: &Victims) {
    let reason = match target {
        Victims::Leader => "no leader to fault",
        _ => "no shard leader to fault",
    };
    world.record("skip", json!({"reason": reason}));
}

/// The leader of `shard` (of the one group on a classic cluster), if one is known.
async fn group_leader<W: FaultWorld + ?Sized>(world: &W, shard: Option<u32>) -> Option<NodeId> {
    match shard {
        Some(shard) => world.shard_leaders().await.get(&shard).copied(),
        None => world.leader().await,
    }
}

/// The replicas a lag-then-depose fault cuts off: `minority` as drawn, but with `leader` (if
/// it is among them) replaced by the lowest-numbered follower of `group` outside it, so that
/// followers lag while the leader keeps committing without them.
fn followers_only(minority: &[NodeId], leader: Option<NodeId>, group: &[NodeId]) -> Vec<NodeId> {
    let Some(leader) = leader.filter(|l| minority.contains(l)) else {
        return minority.to_vec();
    };
    let stand_in = group
        .iter()
        .copied()
        .find(|n| *n != leader && !minority.contains(n));
    let mut lagging: Vec<NodeId> = minority
        .iter()
        .copied()
        .filter(|n| *n != leader)
        .chain(stand_in)
        .collect();
    lagging.sort();
    lagging
}

/// The replicas a strand-leader fault cuts off: `leader` with `minority`, the leader taking
/// the place of the lowest-numbered drawn one if it is not among them (the side stays a
/// minority); `minority` as drawn when no leader is known.
fn with_leader(minority: &[NodeId], leader: Option<NodeId>) -> Vec<NodeId> {
    let Some(leader) = leader.filter(|l| !minority.contains(l)) else {
        return minority.to_vec();
    };
    let mut stranded: Vec<NodeId> = minority.iter().skip(1).copied().collect();
    stranded.push(leader);
    stranded.sort();
    stranded
}

/// How an election fault's `then` names its second blow in the history.
fn strike_name(strike: &Strike) -> &'static str {
    match strike {
        Strike::KillNewLeader => "kill-new-leader",
        Strike::IsolateNewLeader => "isolate-new-leader",
        Strike::SplitElection { .. } => "split-election",
        Strike::LagThenDepose { .. } => "lag-then-depose",
        Strike::LagThenElect { .. } => "lag-then-elect",
        Strike::StrandLeader { .. } => "strand-leader",
    }
}

/// When an election fault first looks again after deposing the leader: at once for a new
/// leader, or at the split's moment.
fn first_poll_ms(strike: &Strike) -> u64 {
    match strike {
        Strike::SplitElection { after_ms, .. } => *after_ms,
        _ => WATCH_POLL_MS,
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
    fn a_lagging_minority_is_followers_only() {
        let n = |ids: &[u32]| ids.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        let drawn = n(&[2, 4]);
        assert_eq!(followers_only(&drawn, Some(NodeId(1)), &nodes()), drawn);
        assert_eq!(
            followers_only(&drawn, None, &nodes()),
            drawn,
            "no leader known"
        );
        assert_eq!(
            followers_only(&drawn, Some(NodeId(2)), &nodes()),
            n(&[1, 4]),
            "the lowest-numbered follower outside it stands in"
        );
        assert_eq!(followers_only(&n(&[1]), Some(NodeId(1)), &nodes()), n(&[2]));
    }

    #[test]
    fn a_stranded_minority_holds_the_leader_and_stays_a_minority() {
        let n = |ids: &[u32]| ids.iter().map(|&i| NodeId(i)).collect::<Vec<_>>();
        assert_eq!(with_leader(&n(&[2, 4]), Some(NodeId(4))), n(&[2, 4]));
        assert_eq!(
            with_leader(&n(&[2, 4]), Some(NodeId(1))),
            n(&[1, 4]),
            "the leader takes the lowest-numbered drawn one's place"
        );
        assert_eq!(with_leader(&n(&[3]), Some(NodeId(5))), n(&[5]));
        assert_eq!(with_leader(&n(&[3]), None), n(&[3]), "no leader known");
    }

    #[test]
    fn a_star_leaves_only_the_hub_a_majority() {
        let cuts = partition_cuts(&Partition::Star { hub: NodeId(2) }, &nodes(), None);
        assert_eq!(
            cuts.len(),
            4 * 3,
            "every link among the other four, both ways"
        );
        assert!(cuts
            .iter()
            .all(|(a, b)| *a != Peer::Node(NodeId(2)) && *b != Peer::Node(NodeId(2))));
        let (f, value) = partition_event(&Partition::Star { hub: NodeId(2) }, &cuts, None);
        assert_eq!(
            (f, &value["shape"], &value["hub"]),
            ("partition", &json!("star"), &json!("n2"))
        );
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
