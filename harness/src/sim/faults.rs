//! The simulated world as a [`FaultWorld`]: the one nemesis ([`crate::faults::nemesis`]) does
//! the one vocabulary's faults ([`crate::faults::schedule`]) to a simulated world and records
//! them in the history exactly as it does against real processes.
//!
//! The simulator can do what real processes cannot do cheaply or safely, so it takes the
//! sim-only families too: power cuts (unsynced data lost or torn), clock jumps, failing
//! fsyncs, bit flips and WALs cut short, crashes inside a burst's storage calls and power cuts
//! aimed just after a vote or a reply, on top of kills, pauses and partitions. Nothing here
//! waits: every question (who leads) is answered at once, so the nemesis's futures are ready
//! when first polled ([`at_once`]).

use crate::faults::nemesis::{FaultWorld, Nemesis};
use crate::faults::schedule::{DiskFault, Sent};
use crate::os::relay::{Link, Peer};
use crate::targets::TargetError;
use checker::history::{Event, EventType};
use replica::failpoints::Failpoint;
use replica::types::{NodeId, ShardId};
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
        // An aimed crash or power cut that never came (the node sent nothing) ends here.
        self.sim.clear_disk_faults(node);
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

    fn crash_in_burst(&mut self, node: NodeId) -> Result<(), TargetError> {
        self.sim.crash_during_next_burst(node);
        Ok(())
    }

    fn power_cut_after(&mut self, node: NodeId, after: Sent) -> Result<(), TargetError> {
        let what = match after {
            Sent::Vote => sim::AfterSend::Vote,
            Sent::Reply => sim::AfterSend::Reply,
        };
        self.sim.power_cut_after(node, what);
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

    /// Arms `failpoint` on `shard`'s leader now, as the process world does; the simulated
    /// node dies at its next hit ([`Sim::arm_failpoint`]).
    fn arm_failpoint(&mut self, shard: u32, failpoint: &str) -> impl Future<Output = bool> + Send {
        let skip = |world: &mut Self, reason: String| {
            let value = json!({"fault": "crash-coordinator", "reason": reason});
            world.record("skip", value);
            false
        };
        let armed = match Failpoint::from_name(failpoint) {
            None => skip(self, format!("no failpoint {failpoint:?}")),
            Some(point) => match self.sim.leader_of(ShardId(shard)) {
                None => skip(self, format!("no leader of shard {shard} to arm")),
                Some(node) => {
                    self.sim.arm_failpoint(node, point);
                    let value =
                        json!({"node": node.to_string(), "shard": shard, "failpoint": failpoint});
                    self.record("arm-failpoint", value);
                    true
                }
            },
        };
        std::future::ready(armed)
    }

    /// Ends the armed failpoint's fault as the process world does: a node that died of it is
    /// its `crash`, one that did not is killed (`kill` with the reason); either restarts.
    fn end_failpoint(&mut self) -> Result<(), TargetError> {
        let Some((node, failpoint)) = self.sim.take_armed_failpoint() else {
            return Ok(());
        };
        let (name, nodes) = (failpoint.name(), json!([node.to_string()]));
        if self.sim.is_up(node) {
            self.sim.crash(node);
            let reason = format!("{name} did not fire before the heal");
            self.record(
                "kill",
                json!({"nodes": nodes, "failpoint": name, "reason": reason}),
            );
        } else {
            self.record("crash", json!({"nodes": nodes, "failpoint": name}));
        }
        self.restart(node)?;
        self.record("restart", json!({"nodes": nodes}));
        Ok(())
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
    use crate::faults::schedule::{Fault, Partition, Sent, Step, Strike, Victims};
    use replica::bank::Command;

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

    /// A schedule of `fault` at `at_ms` and its heal 5 s later.
    fn fault_then_heal(at_ms: u64, fault: Fault) -> Vec<Step> {
        vec![
            Step {
                at_ms,
                fault: Some(fault),
            },
            Step {
                at_ms: at_ms + 5_000,
                fault: None,
            },
        ]
    }

    /// Runs `sim` with the nemesis acting until `until_ms`, as `simulate` drives them.
    fn drive(nemesis: &mut Nemesis, sim: &mut Sim, events: &mut Vec<Event>, until_ms: u64) {
        while sim.now_ms < until_ms {
            apply_due(nemesis, sim, events, sim.now_ms);
            let next = [sim.next_event_ms(), nemesis.next_at_ms()]
                .into_iter()
                .flatten()
                .map(|t| t.max(sim.now_ms + 1))
                .min()
                .unwrap_or(until_ms);
            sim.run_to(next.min(until_ms));
        }
    }

    fn started(seed: u64) -> (Sim, NodeId) {
        let mut sim = Sim::new(sim::SimOptions::new(5, seed));
        let leader = sim.run_until_leader(5_000).expect("a leader");
        (sim, leader)
    }

    #[test]
    fn an_election_fault_kills_the_leader_then_the_new_one_just_after_it_is_elected() {
        let (mut sim, first) = started(3);
        let at = sim.now_ms;
        let election = Fault::Election {
            shard: None,
            strike: Strike::KillNewLeader,
        };
        let mut nemesis = Nemesis::new(fault_then_heal(at, election));
        let mut events = Vec::new();
        drive(&mut nemesis, &mut sim, &mut events, at + 4_000);
        let kills: Vec<&Event> = events.iter().filter(|e| e.f == "kill").collect();
        assert_eq!(kills.len(), 2, "{events:?}");
        assert_eq!(kills[0].value["nodes"], json!([first.to_string()]));
        assert_eq!(kills[0].value["then"], "kill-new-leader");
        assert_eq!(kills[1].value["target"], "new-leader");
        let second = kills[1].value["nodes"][0].as_str().unwrap_or_default();
        assert_ne!(second, first.to_string());
        let waited = kills[1].value["after_ms"].as_u64().unwrap_or(u64::MAX);
        assert!(waited < 3_000, "struck soon after the election: {waited}");
        assert_eq!(sim.node_ids().iter().filter(|&&n| sim.is_up(n)).count(), 3);
        drive(&mut nemesis, &mut sim, &mut events, at + 5_001);
        assert!(
            sim.node_ids().iter().all(|&n| sim.is_up(n)),
            "both restarted"
        );
        assert_eq!(events.last().map(|e| e.f.as_str()), Some("restart"));
    }

    #[test]
    fn an_aimed_power_cut_waits_for_the_vote_and_a_burst_crash_for_the_next_burst() {
        let (mut sim, leader) = started(4);
        let follower = sim.node_ids().into_iter().find(|&n| n != leader).unwrap();
        let mut nemesis = Nemesis::default();
        let mut events = Vec::new();
        let aimed = Fault::PowerAfter {
            victims: Victims::Nodes(vec![follower]),
            after: Sent::Vote,
        };
        at_once(nemesis.apply(&mut SimWorld::new(&mut sim, &mut events), Some(&aimed))).unwrap();
        assert_eq!(events[0].f, "power-cut");
        assert_eq!(events[0].value["after"], "vote");
        assert!(sim.is_up(follower), "no vote sent yet");
        // Deposing the leader makes the follower vote in the next election.
        sim.crash(leader);
        assert!(
            sim.run_until(5_000, |s| !s.is_up(follower)),
            "cut after its vote"
        );
        let burst = Fault::CrashInBurst(Victims::Nodes(vec![leader]));
        let mut world = SimWorld::new(&mut sim, &mut events);
        at_once(nemesis.apply(&mut world, Some(&burst))).unwrap();
        assert!(sim.is_up(follower), "the heal restarted it");
        let crash = events.iter().find(|e| e.f == "crash").expect("recorded");
        assert_eq!(crash.value["during"], "next-burst");
        // The leader was down: nothing to crash; a live victim dies at its next burst.
        let live = sim
            .node_ids()
            .into_iter()
            .find(|&n| n != follower && sim.is_up(n));
        let live = live.expect("a live node");
        let burst = Fault::CrashInBurst(Victims::Nodes(vec![live]));
        at_once(nemesis.apply(&mut SimWorld::new(&mut sim, &mut events), Some(&burst))).unwrap();
        assert!(sim.run_until(1_000, |s| !s.is_up(live)));
    }

    #[test]
    fn a_lag_then_depose_fault_cuts_a_minority_then_heals_it_and_kills_the_leader_at_once() {
        let (mut sim, first) = started(5);
        let at = sim.now_ms;
        let laggers: Vec<NodeId> = sim
            .node_ids()
            .into_iter()
            .filter(|&n| n != first)
            .take(2)
            .collect();
        let election = Fault::Election {
            shard: None,
            strike: Strike::LagThenDepose {
                minority: laggers.clone(),
                lag_ms: 200,
            },
        };
        let mut nemesis = Nemesis::new(fault_then_heal(at, election));
        let mut events = Vec::new();
        drive(&mut nemesis, &mut sim, &mut events, at + 100);
        assert!(!sim.cuts().is_empty(), "the minority is cut off first");
        assert!(sim.is_up(first), "the leader still leads");
        drive(&mut nemesis, &mut sim, &mut events, at + 300);
        assert!(sim.cuts().is_empty(), "healed at the lag's end");
        assert!(
            !sim.is_up(first),
            "and the leader killed in the same instant"
        );
        let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
        assert_eq!(fs, ["partition", "heal", "kill"], "{events:?}");
        assert_eq!(events[0].value["then"], "lag-then-depose");
        assert_eq!(events[2].value["nodes"], json!([first.to_string()]));
    }

    #[test]
    fn a_lag_then_elect_fault_makes_a_replica_whose_log_lags_the_next_leader() {
        for seed in [7, 8, 9] {
            let (mut sim, first) = started(seed);
            let at = sim.now_ms;
            let followers: Vec<NodeId> =
                sim.node_ids().into_iter().filter(|&n| n != first).collect();
            let laggers = followers[..2].to_vec();
            let election = Fault::Election {
                shard: None,
                strike: Strike::LagThenElect {
                    minority: laggers.clone(),
                    lag_ms: 200,
                },
            };
            let mut nemesis = Nemesis::new(fault_then_heal(at, election));
            let mut events = Vec::new();
            drive(&mut nemesis, &mut sim, &mut events, at + 50);
            // The leader commits without the laggers meanwhile.
            let accounts = sim.options().config.accounts.clone();
            sim.submit(
                first,
                Command::transfer(1, 1, &accounts[0], &accounts[1], 1),
            );
            drive(&mut nemesis, &mut sim, &mut events, at + 150);
            let commit = |sim: &Sim, n: NodeId| sim.core(n).map(|c| c.status().commit_slot);
            let behind = commit(&sim, laggers[0]);
            assert!(behind < commit(&sim, followers[2]), "seed {seed}: it lags");
            drive(&mut nemesis, &mut sim, &mut events, at + 201);
            assert!(!sim.is_up(first), "the leader killed at the lag's end");
            let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
            assert_eq!(fs, ["partition", "kill", "partition"], "{events:?}");
            assert_eq!(events[0].value["then"], "lag-then-elect");
            assert_eq!(events[2].value["shape"], "star");
            assert_eq!(events[2].value["hub"], laggers[0].to_string());
            assert_eq!(events[2].value["during"], "election");
            // Every link not touching the hub: among the other four, both ways.
            assert_eq!(events[2].value["cuts"].as_array().map(Vec::len), Some(12));
            drive(&mut nemesis, &mut sim, &mut events, at + 4_000);
            assert_eq!(
                sim.leader(),
                Some(laggers[0]),
                "seed {seed}: the lagger leads"
            );
            let caught_up = commit(&sim, laggers[0]);
            assert!(
                caught_up > behind,
                "seed {seed}: its view merge recovered the transfer"
            );
        }
    }

    #[test]
    fn a_strand_leader_fault_cuts_the_leader_off_with_the_minority() {
        let (mut sim, first) = started(10);
        let at = sim.now_ms;
        let others: Vec<NodeId> = sim.node_ids().into_iter().filter(|&n| n != first).collect();
        let election = Fault::Election {
            shard: None,
            strike: Strike::StrandLeader {
                minority: others[..2].to_vec(),
                lag_ms: 200,
            },
        };
        let mut nemesis = Nemesis::new(fault_then_heal(at, election));
        let mut events = Vec::new();
        drive(&mut nemesis, &mut sim, &mut events, at + 100);
        let mut stranded = [others[1], first];
        stranded.sort();
        let names: Vec<String> = stranded.iter().map(NodeId::to_string).collect();
        assert_eq!(
            events[0].value["minority"],
            json!(names),
            "the leader takes a place"
        );
        assert_eq!(events[0].value["leader"], first.to_string());
        assert_eq!(events[0].value["then"], "strand-leader");
        drive(&mut nemesis, &mut sim, &mut events, at + 300);
        let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
        assert_eq!(fs, ["partition", "heal", "kill"], "{events:?}");
    }

    #[test]
    fn a_lag_then_depose_fault_lags_a_follower_in_the_leaders_place() {
        let (mut sim, first) = started(6);
        let at = sim.now_ms;
        let election = Fault::Election {
            shard: None,
            strike: Strike::LagThenDepose {
                minority: vec![first],
                lag_ms: 200,
            },
        };
        let mut nemesis = Nemesis::new(fault_then_heal(at, election));
        let mut events = Vec::new();
        drive(&mut nemesis, &mut sim, &mut events, at + 100);
        let stand_in = sim.node_ids().into_iter().find(|&n| n != first).unwrap();
        assert_eq!(events[0].value["minority"], json!([stand_in.to_string()]));
        assert_eq!(events[0].value["instead_of"], first.to_string());
        assert!(sim.is_up(first), "the leader keeps committing meanwhile");
        drive(&mut nemesis, &mut sim, &mut events, at + 300);
        let kill = events.iter().find(|e| e.f == "kill").expect("a kill");
        assert_eq!(kill.value["nodes"], json!([first.to_string()]));
    }

    #[test]
    fn crash_coordinator_stops_a_simulated_shard_leader_at_its_step_and_restarts_it() {
        use crate::faults::schedule::Fault;
        let mut sim = Sim::new(sim::SimOptions::sharded(2, 3, 2));
        assert!(sim.run_until(5_000, |s| s
            .shards()
            .iter()
            .all(|&k| s.leader_of(k).is_some())));
        let leader = sim.leader_of(replica::types::ShardId(1)).expect("a leader");
        // A cross-shard transfer from shard 1's account: its leader coordinates it.
        let (from, to) = {
            let opts = sim.options();
            let map = opts.shards.as_ref().expect("sharded");
            let accounts = &opts.config.accounts;
            let on = |k: u32| {
                accounts
                    .iter()
                    .find(|a| map.shard_of_account(a) == Some(replica::types::ShardId(k)))
                    .cloned()
                    .expect("an account per shard")
            };
            (on(1), on(2))
        };
        let crash = Fault::CrashCoordinator {
            shard: 1,
            failpoint: "coordinator-after-start".into(),
        };
        let mut nemesis = Nemesis::default();
        let mut events = Vec::new();
        at_once(nemesis.apply(&mut SimWorld::new(&mut sim, &mut events), Some(&crash))).unwrap();
        assert_eq!(events[0].f, "arm-failpoint", "{events:?}");
        assert_eq!(events[0].value["node"], leader.to_string());
        assert!(sim.is_up(leader), "nothing reached the step yet");
        let transfer = replica::bank::Command::transfer(1, 1, &from, &to, 1);
        sim.submit(leader, transfer);
        assert!(
            sim.run_until(2_000, |s| !s.is_up(leader)),
            "it died as its PREPARE was about to leave"
        );
        heal(&mut nemesis, &mut sim, &mut events);
        let fs: Vec<&str> = events.iter().map(|e| e.f.as_str()).collect();
        assert_eq!(fs, ["arm-failpoint", "crash", "restart"], "{events:?}");
        assert_eq!(events[1].value["failpoint"], "coordinator-after-start");
        assert!(sim.is_up(leader), "the heal restarted it");
    }
}
