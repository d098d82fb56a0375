//! Whole-cluster scenarios in the deterministic simulator (`replica::core::sim`).

use crate::util::*;
use replica::bank::Command;
use replica::client_proto::{ClientResponse, SlotState};
use replica::core::Value;
use replica::types::{NodeId, Slot};
use sim::{Sim, SimOptions};
use std::collections::BTreeMap;

fn sim(nodes: u32, seed: u64) -> Sim {
    Sim::new(SimOptions::new(nodes, seed))
}

fn assert_all_good(sim: &Sim) {
    sim.check_safety().unwrap();
    sim.check_replies().unwrap();
}

/// How many times `command` appears in the agreed executed order.
fn executions(sim: &Sim, command: &Command) -> usize {
    sim.executed_log()
        .iter()
        .filter(|e| e.command.client == command.client && e.command.request == command.request)
        .count()
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
fn nothing_commits_without_a_majority() {
    let mut sim = sim(5, 1);
    let leader = sim.run_until_leader(2_000).unwrap();
    let down: Vec<NodeId> = others(&sim, &[leader]).into_iter().take(3).collect();
    for id in &down {
        sim.crash(*id);
    }
    let token = sim.submit(leader, transfer(1, 1, "A", "B", 1));
    sim.run_for(3_000);
    assert!(sim.reply_to(token).is_none(), "two of five cannot commit");
    for id in sim.node_ids().into_iter().filter(|id| sim.is_up(*id)) {
        assert_eq!(sim.core(id).unwrap().status().commit_slot, Slot(0));
    }
    // One node back: a majority again, and the command commits (the leader retransmits). The
    // client's wait expired long ago; its retry is answered from the reply table.
    sim.restart(down[0]);
    let command = transfer(1, 1, "A", "B", 1);
    assert!(sim.run_until(3_000, |sim| executions(sim, &command) == 1));
    let retry = sim.submit(leader, command);
    sim.run_for(10);
    assert!(
        matches!(sim.reply_to(retry), Some(ClientResponse::Reply { .. })),
        "{:?}",
        sim.reply_to(retry)
    );
    assert_all_good(&sim);
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
        let mut sim = Sim::new(options);
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
fn a_new_leader_recovers_majority_accepted_values_and_fills_gaps_with_noops() {
    let mut sim = sim(5, 7);
    let old = sim.run_until_leader(2_000).unwrap();
    let rest = others(&sim, &[old]);
    let (a, b, c, d) = (rest[0], rest[1], rest[2], rest[3]);
    // a and b accept but the old leader never hears it; c and d hear nothing from it.
    for (from, to) in [(a, old), (b, old), (old, c), (old, d)] {
        sim.cut_link(from, to);
    }
    let x = transfer(1, 1, "A", "B", 1);
    let y = transfer(2, 1, "B", "C", 1);
    let z = transfer(3, 1, "C", "D", 1);
    sim.submit(old, x.clone());
    sim.run_for(10);
    // y reaches only the old leader's own log: a minority.
    sim.cut_link(old, a);
    sim.cut_link(old, b);
    sim.submit(old, y.clone());
    sim.run_for(10);
    sim.heal();
    for (from, to) in [(a, old), (b, old), (old, c), (old, d)] {
        sim.cut_link(from, to);
    }
    sim.submit(old, z.clone());
    sim.run_for(10);
    // Slots 1 and 3 are accepted by a majority, slot 2 by the old leader alone; nothing committed.
    assert_eq!(sim.core(old).unwrap().status().commit_slot, Slot(0));
    assert_eq!(sim.core(a).unwrap().slot_state(Slot(2)), SlotState::Unknown);
    assert_eq!(
        sim.core(a).unwrap().slot_state(Slot(3)),
        SlotState::Accepted
    );
    sim.crash(old);
    sim.heal();
    let new = sim.run_until_leader(2_000).expect("a new leader");
    assert!(
        sim.run_until(1_000, |sim| sim.core(new).unwrap().status().commit_slot
            >= Slot(3))
    );
    let (_, log) = sim.core(new).unwrap().log_view(Slot(1), 3);
    let slots: Vec<(Vec<Command>, bool)> = log.into_iter().map(|e| (e.commands, e.noop)).collect();
    assert_eq!(
        slots,
        vec![
            (vec![x.clone()], false),
            (vec![], true),
            (vec![z.clone()], false)
        ]
    );
    // The old leader comes back and replaces its minority value with the decided no-op.
    sim.restart(old);
    assert!(
        sim.run_until_converged(2_000),
        "{:?}",
        sim.check_converged()
    );
    assert_eq!(
        (
            executions(&sim, &x),
            executions(&sim, &y),
            executions(&sim, &z)
        ),
        (1, 0, 1)
    );
    assert_eq!(
        sim.core(new).unwrap().views().last().unwrap().next_slot,
        Slot(4)
    );
    assert_all_good(&sim);
}

#[test]
fn a_duplicate_request_committed_in_two_slots_executes_once() {
    let mut sim = sim(5, 11);
    let old = sim.run_until_leader(2_000).unwrap();
    let rest = others(&sim, &[old]);
    for from in &rest {
        sim.cut_link(*from, old); // the old leader never learns its slot was accepted
    }
    let x = transfer(1, 1, "A", "B", 2);
    sim.submit(old, x.clone());
    sim.run_for(10);
    sim.crash(old);
    sim.heal();
    let new = sim.run_until_leader(2_000).expect("a new leader");
    // Keep the new leader from committing the recovered slot before the client's retry arrives.
    let rest = others(&sim, &[new]);
    sim.partition(&[&[new], &rest]);
    let retry = sim.submit(new, x.clone());
    sim.run_for(20);
    sim.heal();
    assert!(sim.run_until(2_000, |sim| sim.reply_to(retry).is_some()));
    let (_, log) = sim.core(new).unwrap().log_view(Slot(1), 100);
    let copies = log.iter().filter(|e| e.commands.contains(&x)).count();
    assert_eq!(copies, 2, "the retry took a second slot: {log:?}");
    assert_eq!(executions(&sim, &x), 1);
    let Some(ClientResponse::Reply { reply, .. }) = sim.reply_to(retry) else {
        panic!()
    };
    assert_eq!(reply.exec_index, 1);
    assert_eq!(sim.core(new).unwrap().balances().1["A"], 8);
    assert_all_good(&sim);
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
    assert!(sim.stats.client_ops_done > 50, "{:?}", sim.stats);
    assert_all_good(&sim);
    let _ = Value::Noop;
}
