//! Whole-cluster scenarios in the deterministic simulator (the `sim` crate's world). Scenarios
//! that read better as a script of commands and their output are transcripts
//! (`sim/tests/testdata/*.txt`, run by `sim/tests/transcripts/`).

use crate::world;
use harness::sim::clients::LoadedWorld;
use replica::bank::Command;
use replica::client_proto::{ClientResponse, SlotState};
use replica::core::Value;
use replica::types::{NodeId, Slot};
use sim::{Sim, SimOptions};
use std::collections::BTreeMap;

fn sim(nodes: u32, seed: u64) -> LoadedWorld {
    world(SimOptions::new(nodes, seed))
}

fn assert_all_good(sim: &Sim) {
    sim.check_safety().unwrap();
    sim.check_replies().unwrap();
}

fn others(sim: &Sim, but: &[NodeId]) -> Vec<NodeId> {
    sim.node_ids()
        .into_iter()
        .filter(|id| !but.contains(id))
        .collect()
}

#[test]
fn a_single_stable_proposer_is_chosen() {
    for seed in 0..5 {
        let mut sim = sim(5, seed);
        let leader = sim.run_until_leader(2_000).expect("a leader within 2 s");
        let ballot = sim.core(leader).unwrap().status().ballot;
        sim.run_for(3_000);
        assert_eq!(sim.leaders(), vec![leader], "seed {seed}");
        for id in sim.node_ids() {
            let status = sim.core(id).unwrap().status();
            assert_eq!(
                (status.leader, status.ballot),
                (Some(leader), ballot),
                "seed {seed} {id}"
            );
        }
    }
}

#[test]
fn dueling_proposers_never_decide_different_values() {
    for seed in 0..8 {
        let mut options = SimOptions::new(5, 100 + seed);
        // Timeouts barely above the delays: candidates collide all the time.
        options.config.heartbeat_interval_ms = 20;
        options.config.election_timeout_ms_min = 25;
        options.config.election_timeout_ms_max = 40;
        options.min_delay_ms = 1;
        options.max_delay_ms = 30;
        options.drop_rate = 0.1;
        let mut sim = world(options);
        sim.start_clients(5);
        let mut decided: BTreeMap<Slot, (Vec<Command>, bool)> = BTreeMap::new();
        let mut ballots = std::collections::BTreeSet::new();
        // Pre-vote keeps a stable leader in place, so the leader is crashed now and then
        // (and brought back later) to keep the elections, and the duels, coming.
        for _ in 0..8 {
            sim.run_until(250, |sim| {
                for id in sim.node_ids() {
                    let Some(core) = sim.core(id) else { continue };
                    ballots.insert(core.status().ballot);
                    let (_, log) = core.log_view(Slot(1), 1_000);
                    for entry in log.into_iter().filter(|e| e.state != SlotState::Accepted) {
                        let value = (entry.commands, entry.noop);
                        let first = decided.entry(entry.slot).or_insert_with(|| value.clone());
                        assert_eq!(
                            *first, value,
                            "seed {seed}: slot {} decided twice",
                            entry.slot
                        );
                    }
                }
                false
            });
            let down: Vec<_> = sim
                .node_ids()
                .into_iter()
                .filter(|id| !sim.is_up(*id))
                .collect();
            down.into_iter().for_each(|id| sim.restart(id));
            if let Some(leader) = sim.leader() {
                sim.crash(leader);
            }
        }
        // At most nine elections were won (the first and one per crash); the rest lost duels.
        assert!(
            ballots.len() > 12,
            "seed {seed}: expected duels, saw ballots {ballots:?}"
        );
        assert_all_good(&sim);
    }
}

#[test]
fn checkpoints_truncation_and_catch_up_give_identical_state() {
    let mut sim = sim(5, 21);
    let leader = sim.run_until_leader(2_000).unwrap();
    let laggard = others(&sim, &[leader])[0];
    sim.crash(laggard);
    sim.start_clients(5);
    sim.run_until(10_000, |sim| {
        sim.core(leader).unwrap().status().checkpoint_slot >= Slot(40)
    });
    sim.restart(laggard);
    sim.run_for(500);
    sim.stop_clients();
    assert!(
        sim.run_until_converged(3_000),
        "{:?}",
        sim.check_converged()
    );
    let window = sim.options().config.window() as usize;
    for id in sim.node_ids() {
        let core = sim.core(id).unwrap();
        assert!(
            core.status().checkpoint_slot >= Slot(40),
            "{id} checkpointed"
        );
        let (_, log) = core.log_view(Slot(1), u32::MAX);
        assert!(log.len() <= window, "{id} keeps {} entries", log.len());
    }
    let first = sim
        .journal_first_available(laggard)
        .expect("the laggard is up");
    assert!(first > 1, "the laggard installed a snapshot");
    assert_all_good(&sim);
}

#[test]
fn a_crash_of_every_replica_loses_nothing_acknowledged() {
    let mut sim = sim(5, 31);
    sim.start_clients(5);
    sim.run_for(1_500);
    let acked = sim
        .replies()
        .iter()
        .filter(|r| matches!(r.response, ClientResponse::Reply { .. }))
        .count();
    assert!(acked > 20, "clients made progress: {acked}");
    let last_acked = sim
        .replies()
        .iter()
        .filter_map(|r| match &r.response {
            ClientResponse::Reply { reply, .. } => Some(reply.exec_index),
            _ => None,
        })
        .max()
        .unwrap();
    for id in sim.node_ids() {
        sim.crash(id);
    }
    for id in sim.node_ids() {
        sim.restart(id);
        let exec_index = sim.core(id).unwrap().status().exec_index;
        assert!(exec_index > 0, "{id} recovered its executed state");
    }
    let best = sim
        .node_ids()
        .iter()
        .map(|id| sim.core(*id).unwrap().status().exec_index)
        .max()
        .unwrap();
    assert!(
        best >= last_acked,
        "acknowledged #{last_acked}, recovered up to #{best}"
    );
    sim.run_for(1_000);
    sim.stop_clients();
    assert!(
        sim.run_until_converged(3_000),
        "{:?}",
        sim.check_converged()
    );
    let converged = sim.core(NodeId(1)).unwrap().status().exec_index;
    assert!(converged >= last_acked);
    assert_all_good(&sim);
}

#[test]
fn rolling_leader_crashes_lose_nothing_acknowledged() {
    let mut sim = sim(5, 41);
    sim.start_clients(5);
    for _ in 0..4 {
        let leader = sim.run_until_leader(2_000).expect("a leader");
        sim.run_for(300);
        sim.crash(leader);
        sim.run_for(400);
        sim.restart(leader);
    }
    sim.run_for(500);
    sim.stop_clients();
    assert!(
        sim.run_until_converged(3_000),
        "{:?}",
        sim.check_converged()
    );
    assert!(sim.oks() > 50, "{:?}", sim.stats);
    assert_all_good(&sim);
    let _ = Value::Noop;
}
