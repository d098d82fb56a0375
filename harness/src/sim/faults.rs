//! The simulated world as a [`FaultWorld`]: the one nemesis ([`crate::faults::nemesis`]) does
//! the one vocabulary's faults ([`crate::faults::schedule`]) to a simulated world and records
//! them in the history exactly as it does against real processes.
//!
//! The simulator can do what real processes cannot do cheaply or safely, so it takes the
//! sim-only families too: power cuts (unsynced data lost or torn), clock jumps, failing
//! fsyncs, bit flips and WALs cut short, on top of kills, pauses and partitions. Nothing here
//! waits: every question (who leads) is answered at once, so the nemesis's futures are ready
//! when first polled ([`at_once`]).

use crate::faults::nemesis::{FaultWorld, Nemesis};
use crate::faults::schedule::DiskFault;
use crate::os::relay::{Link, Peer};
use crate::targets::TargetError;
use checker::history::{Event, EventType};
use replica::types::NodeId;
use serde_json::{json, Map, Value};
use sim::Sim;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

/// A simulated world seen by the nemesis, with the history events it records.
pub struct SimWorld<'a> {
    pub sim: &'a mut Sim,
    pub events: &'a mut Vec<Event>,
}

impl<'a> SimWorld<'a> {
    pub fn new(sim: &'a mut Sim, events: &'a mut Vec<Event>) -> SimWorld<'a> {
        SimWorld { sim, events }
    }
}

/// Carries out the nemesis's steps due at virtual time `now_ms` on `sim`.
pub fn apply_due(nemesis: &mut Nemesis, sim: &mut Sim, events: &mut Vec<Event>, now_ms: u64) {
    at_once(nemesis.apply_due(&mut SimWorld::new(sim, events), now_ms));
}

/// Undoes what the nemesis has in force on `sim`.
pub fn heal(nemesis: &mut Nemesis, sim: &mut Sim, events: &mut Vec<Event>) {
    // A simulated world fails at nothing it is asked (`SimWorld` returns no errors).
    if let Err(e) = nemesis.heal(&mut SimWorld::new(sim, events)) {
        events.push(nemesis_event(
            "error",
            json!({"action": "heal", "error": e.to_string()}),
        ));
    }
}

/// The output of a future that never waits, as a [`SimWorld`]'s are.
pub fn at_once<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        // An invariant of this module: nothing a SimWorld answers waits for anything.
        Poll::Pending => panic!("the simulated nemesis waited, but a simulated world never waits"),
    }
}

impl FaultWorld for SimWorld<'_> {
    fn nodes(&self) -> Vec<NodeId> {
        self.sim.node_ids()
    }

    fn node_shards(&self) -> BTreeMap<NodeId, u32> {
        if self.sim.shards().len() < 2 {
            return BTreeMap::new();
        }
        let nodes = self.sim.node_ids().into_iter();
        nodes.map(|n| (n, self.sim.shard_of(n).0)).collect()
    }

    fn leader(&self) -> impl Future<Output = Option<NodeId>> + Send {
        std::future::ready(self.sim.leader())
    }

    fn shard_leaders(&self) -> impl Future<Output = BTreeMap<u32, NodeId>> + Send {
        let shards = self.sim.shards().into_iter();
        let leaders = shards.filter_map(|s| self.sim.leader_of(s).map(|l| (s.0, l)));
        std::future::ready(leaders.collect())
    }

    fn kill(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.sim.crash(node);
        Ok(())
    }

    fn restart(&mut self, node: NodeId) -> Result<Option<String>, TargetError> {
        self.sim.restart(node);
        Ok(self.sim.node(node).refused().map(str::to_string))
    }

    fn pause(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.sim.pause(node);
        Ok(())
    }

    fn resume(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.sim.resume(node);
        Ok(())
    }

    fn set_cuts(&mut self, cuts: &[Link]) -> Result<(), TargetError> {
        self.sim.heal();
        for (from, to) in cuts {
            if let (Peer::Node(a), Peer::Node(b)) = (from, to) {
                self.sim.cut_link(*a, *b);
            }
        }
        Ok(())
    }

    fn power_cut(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.sim.power_cut(node);
        Ok(())
    }

    fn jump_clock(&mut self, node: NodeId, jump_ms: u64) -> Result<(), TargetError> {
        self.sim.jump_clock(node, jump_ms);
        Ok(())
    }

    fn disk_fault(
        &mut self,
        node: NodeId,
        fault: DiskFault,
    ) -> Result<Map<String, Value>, TargetError> {
        let mut value = Map::new();
        match fault {
            DiskFault::FailSync => self.sim.fail_syncs(node, 1),
            DiskFault::BitFlip => {
                let at = self.sim.flip_bit(node);
                let (file, offset) = at
                    .map(|(p, o)| (p.display().to_string(), Some(o)))
                    .unwrap_or_default();
                // The flip shows when the replica next reads its disk: make that the heal.
                self.sim.crash(node);
                value.insert("file".into(), json!(file));
                value.insert("offset".into(), json!(offset));
            }
            DiskFault::CutShort => {
                // The replica reads its disk at the restart (the heal).
                self.sim.crash(node);
                if let Some(cut) = self.sim.cut_short(node) {
                    value.insert("file".into(), json!(cut.path.display().to_string()));
                    value.insert("from_bytes".into(), json!(cut.from_len));
                    value.insert("to_bytes".into(), json!(cut.to_len));
                    value.insert("how".into(), json!(format!("{:?}", cut.kind)));
                }
            }
        }
        Ok(value)
    }

    fn record(&mut self, f: &str, value: Value) {
        self.events.push(nemesis_event(f, value));
    }
}

/// A nemesis `info` event.
pub fn nemesis_event(f: &str, value: Value) -> Event {
    let event = Event::nemesis(f, value);
    debug_assert_eq!(event.kind, EventType::Info);
    event
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::nemesis::names;
    use crate::faults::schedule::{Fault, Partition, Victims};

    #[test]
    fn a_sharded_world_resolves_shard_leaders_and_cuts_two_shards_apart() {
        let mut sim = Sim::new(sim::SimOptions::sharded(2, 3, 1));
        assert!(sim.run_until(5_000, |s| s
            .shards()
            .iter()
            .all(|&x| s.leader_of(x).is_some())));
        let mut nemesis = Nemesis::default();
        let mut events = Vec::new();
        let leaders: Vec<NodeId> = sim
            .shards()
            .into_iter()
            .filter_map(|s| sim.leader_of(s))
            .collect();
        let pause = Fault::Pause(Victims::ShardLeaders);
        let mut world = SimWorld::new(&mut sim, &mut events);
        at_once(nemesis.apply(&mut world, Some(&pause))).unwrap();
        assert_eq!(events[0].value["nodes"], json!(names(&leaders)));
        assert_eq!(events[0].value["target"], "shard-leaders");
        assert!(leaders.iter().all(|&l| sim.node(l).is_paused()));
        let cut = Fault::Partition(Partition::BetweenShards { a: 1, b: 2 });
        let mut world = SimWorld::new(&mut sim, &mut events);
        at_once(nemesis.apply(&mut world, Some(&cut))).unwrap();
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
