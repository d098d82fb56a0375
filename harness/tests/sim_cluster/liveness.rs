//! Liveness under partial failure in the simulator: pre-vote, check-quorum and leader
//! stickiness (issue 8 item 6). No single replica keeps the cluster from progressing, a leader
//! stranded in a minority steps down, and a replica that only lost touch cannot depose a
//! healthy leader.

use crate::world;
use harness::sim::clients::LoadedWorld;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replica::types::{Ballot, NodeId};
use sim::{Sim, SimOptions};

fn sim(seed: u64) -> LoadedWorld {
    world(SimOptions::new(5, seed))
}

fn followers(sim: &Sim, leader: NodeId) -> Vec<NodeId> {
    sim.node_ids()
        .into_iter()
        .filter(|n| *n != leader)
        .collect()
}

fn ballot(sim: &Sim, id: NodeId) -> Ballot {
    sim.core(id).expect("up").status().ballot
}

/// Runs `ms` and fails if any live node leads other than `leader` or any ballot moves.
fn run_keeping(sim: &mut LoadedWorld, ms: u64, leader: NodeId, at: Ballot, what: &str) {
    let mut moved = None;
    sim.run_until(ms, |sim| {
        let other = sim.leaders().into_iter().find(|l| *l != leader);
        let raised = sim
            .node_ids()
            .into_iter()
            .filter_map(|id| sim.core(id).map(|c| (id, c.status().ballot)))
            .find(|(_, b)| *b > at);
        if moved.is_none() && (other.is_some() || raised.is_some()) {
            moved = Some((sim.now_ms, other, raised));
        }
        false
    });
    assert_eq!(
        moved, None,
        "{what}: leader {leader} at {at} was challenged"
    );
    assert_eq!(sim.leaders(), vec![leader], "{what}");
}

/// Client operations completed during `ms` more of running.
fn progress(sim: &mut LoadedWorld, ms: u64) -> u64 {
    sim.run_for(ms)
}

fn assert_all_good(sim: &mut LoadedWorld) {
    sim.heal();
    for id in sim.node_ids() {
        sim.restart(id);
    }
    sim.stop_clients();
    assert!(
        sim.run_until_converged(5_000),
        "{:?}",
        sim.check_converged()
    );
    sim.check_safety().unwrap();
    sim.check_replies().unwrap();
}

#[test]
fn an_isolated_leader_steps_down_and_the_majority_side_elects_and_commits() {
    for seed in 0..5 {
        let mut sim = sim(seed);
        let old = sim.run_until_leader(2_000).expect("a leader");
        sim.start_clients(5);
        sim.run_for(500);
        sim.isolate(old);
        // Check-quorum: within a lease (twice the maximum election timeout) and a tick or two.
        assert!(
            sim.run_until(700, |sim| !sim.core(old).unwrap().leads()),
            "seed {seed}: the isolated leader kept leading"
        );
        let new = sim.run_until_leader(1_000).expect("the majority elects");
        assert_ne!(new, old, "seed {seed}");
        assert!(
            progress(&mut sim, 2_000) > 0,
            "seed {seed}: the majority commits"
        );
        assert!(!sim.core(old).unwrap().leads(), "seed {seed}");
        assert_all_good(&mut sim);
    }
}

#[test]
fn a_replica_rejoining_after_a_partition_does_not_change_the_leader() {
    for seed in 0..5 {
        let mut sim = sim(seed);
        let leader = sim.run_until_leader(2_000).expect("a leader");
        sim.start_clients(5);
        sim.run_for(300);
        let at = ballot(&sim, leader);
        let lost = followers(&sim, leader)[seed as usize % 4];
        sim.isolate(lost);
        // Long enough for many election timeouts on the isolated side.
        sim.run_for(3_000);
        assert_eq!(sim.leaders(), vec![leader], "seed {seed}");
        sim.heal();
        run_keeping(&mut sim, 2_000, leader, at, "after the heal");
        assert_eq!(sim.core(lost).unwrap().status().leader, Some(leader));
        assert!(progress(&mut sim, 500) > 0);
        assert_all_good(&mut sim);
    }
}

#[test]
fn a_restarted_replica_does_not_change_the_leader() {
    for seed in 0..5 {
        let mut sim = sim(seed);
        let leader = sim.run_until_leader(2_000).expect("a leader");
        sim.start_clients(5);
        sim.run_for(300);
        let at = ballot(&sim, leader);
        let down = followers(&sim, leader)[seed as usize % 4];
        sim.crash(down);
        run_keeping(&mut sim, 1_500, leader, at, "while down");
        sim.restart(down);
        run_keeping(&mut sim, 2_000, leader, at, "after the restart");
        assert_eq!(sim.core(down).unwrap().status().leader, Some(leader));
        assert_all_good(&mut sim);
    }
}

#[test]
fn a_replica_that_cannot_hear_the_leader_does_not_churn_leaders() {
    // One-way cut leader -> x: x stops hearing heartbeats, but everything x sends arrives.
    // Without pre-vote x raises a ballot every election timeout and deposes whoever leads.
    for seed in 0..5 {
        let mut sim = sim(seed);
        let leader = sim.run_until_leader(2_000).expect("a leader");
        sim.start_clients(5);
        sim.run_for(300);
        let at = ballot(&sim, leader);
        let deaf = followers(&sim, leader)[seed as usize % 4];
        sim.cut_link(leader, deaf);
        run_keeping(&mut sim, 3_000, leader, at, "one-way cut");
        assert!(progress(&mut sim, 500) > 0);
        assert_all_good(&mut sim);
    }
}

#[test]
fn random_one_way_cuts_do_not_livelock() {
    for seed in 0..20 {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut sim = sim(seed);
        sim.run_until_leader(2_000).expect("a leader");
        sim.start_clients(5);
        sim.run_for(300);
        let nodes = sim.node_ids();
        let mut cuts = Vec::new();
        for _ in 0..rng.gen_range(1..=4) {
            let from = nodes[rng.gen_range(0..nodes.len())];
            let to = nodes[rng.gen_range(0..nodes.len())];
            if from != to {
                sim.cut_link(from, to);
                cuts.push((from, to));
            }
        }
        // Up to four one-way cuts leave a majority that hears each other both ways, so the
        // cluster must keep committing, window after window.
        sim.run_for(1_000);
        for window in 0..4 {
            let done = progress(&mut sim, 1_000);
            assert!(
                done > 0,
                "seed {seed}: cuts {cuts:?}: stalled in window {window}"
            );
        }
        assert_all_good(&mut sim);
    }
}
