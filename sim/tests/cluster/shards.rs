//! Randomized safety of the sharded bank: seeded runs of two or three shards of three real
//! shells each, with message loss, duplication, reordering, crashes, partitions inside a
//! shard, isolated shard leaders and cut links between shards, then healing. Every run must
//! keep one agreed order per shard, answer every client with its shard's entry, finish every
//! transaction once healed (no lock left), commit each cross-shard transfer on both shards or
//! on neither, and keep the bank's total.
//!
//! `FAULTLINE_SIM_SEEDS=<n>` runs more seeds (the default keeps the suite fast).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replica::bank::{Executed, Op, OpResult};
use replica::core::Bugs;
use replica::types::{ClientId, NodeId, RequestId};
use sim::{Sim, SimOptions};
use std::collections::BTreeMap;

fn seeds() -> u64 {
    std::env::var("FAULTLINE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(60, |n: u64| n.max(1))
}

fn pick(rng: &mut SmallRng, from: &[NodeId]) -> Option<NodeId> {
    (!from.is_empty()).then(|| from[rng.gen_range(0..from.len())])
}

/// One random sharded run; `Err` says which property broke.
fn sharded_run(seed: u64, bugs: Bugs) -> Result<Sim, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let shards = rng.gen_range(2..=3);
    let mut options = SimOptions::sharded(shards, 3, seed);
    options.config.bugs = bugs;
    options.drop_rate = rng.gen_range(0.0..0.1);
    options.dup_rate = rng.gen_range(0.0..0.05);
    options.max_delay_ms = rng.gen_range(2..=20);
    options.long_delay_rate = rng.gen_range(0.0..0.02);
    options.config.checkpoint_interval_slots = rng.gen_range(2..=12);
    options.config.max_batch_commands = rng.gen_range(1..=8);
    options.max_inflight_txns = rng.gen_range(1..=8);
    let mut sim = Sim::new(options);
    sim.start_clients(6);
    let nodes = sim.node_ids();
    let shard_ids = sim.shards();
    for _ in 0..rng.gen_range(5..15) {
        sim.run_for(rng.gen_range(100..500));
        let up: Vec<NodeId> = nodes.iter().copied().filter(|id| sim.is_up(*id)).collect();
        let down: Vec<NodeId> = nodes.iter().copied().filter(|id| !sim.is_up(*id)).collect();
        let shard = shard_ids[rng.gen_range(0..shard_ids.len())];
        match rng.gen_range(0..8) {
            0 => pick(&mut rng, &up).into_iter().for_each(|id| sim.crash(id)),
            1 => pick(&mut rng, &down)
                .into_iter()
                .for_each(|id| sim.restart(id)),
            2 => {
                // A partition inside one shard: a minority cut off from the rest.
                let members = sim.members(shard);
                let (left, right) = members.split_at(1);
                sim.partition(&[left, right]);
            }
            3 => sim
                .leader_of(shard)
                .into_iter()
                .for_each(|id| sim.isolate(id)),
            4 => {
                // Every link between two shards cut: votes and decisions cannot pass.
                let other = shard_ids[(shard.0 as usize) % shard_ids.len()];
                let (a, b) = (sim.members(shard), sim.members(other));
                sim.partition(&[&a, &b]);
            }
            5 => sim.heal(),
            6 => sim
                .leader_of(shard)
                .into_iter()
                .for_each(|id| sim.crash_during_next_burst(id)),
            _ => sim
                .leader_of(shard)
                .into_iter()
                .for_each(|id| sim.crash(id)),
        }
        sim.check_safety()?;
    }
    sim.heal();
    sim.set_drop_rate(0.0);
    for id in &nodes {
        sim.restart(*id);
    }
    let before = sim.stats.client_ops_done;
    sim.run_for(2_000);
    if sim.stats.client_ops_done <= before {
        return Err(format!("no progress after healing: {:?}", sim.stats));
    }
    sim.stop_clients();
    // Transactions finish after the clients stop: votes time out, decisions are resent.
    let settled = sim.run_until(10_000, |s| {
        s.check_converged().is_ok() && s.check_settled().is_ok()
    });
    if !settled {
        return Err(format!(
            "not settled: {:?} / {:?}",
            sim.check_converged(),
            sim.check_settled()
        ));
    }
    sim.check_safety()?;
    sim.check_replies()?;
    check_atomic(&sim)?;
    Ok(sim)
}

/// Every cross-shard transfer is committed on both shards or on neither: the coordinator's
/// debit (`Transferred`) and the participant's credit (`Credited`) come in pairs, each at
/// most once.
fn check_atomic(sim: &Sim) -> Result<(), String> {
    let mut sides: BTreeMap<(ClientId, RequestId), (u32, u32)> = BTreeMap::new();
    for entry in sim.executed_log() {
        let key = (entry.command.client, entry.command.request);
        match entry.result {
            OpResult::Transferred { .. } if cross_shard(sim, &entry) => {
                sides.entry(key).or_default().0 += 1;
            }
            OpResult::Credited { .. } => sides.entry(key).or_default().1 += 1,
            _ => {}
        }
    }
    match sides
        .iter()
        .find(|(_, (debits, credits))| (debits, credits) != (&1, &1))
    {
        Some(((client, request), (debits, credits))) => Err(format!(
            "client {client}'s request {request}: debited {debits} times, credited {credits} times"
        )),
        None => Ok(()),
    }
}

fn cross_shard(sim: &Sim, entry: &Executed) -> bool {
    let Op::Transfer { from, to, .. } = &entry.command.op else {
        return false;
    };
    let map = sim.options().shards.as_ref().expect("a sharded run");
    map.shard_of_account(from) != map.shard_of_account(to)
}

#[test]
fn random_faults_never_break_a_sharded_bank_and_every_transaction_finishes() {
    let (mut committed, mut aborted) = (0, 0);
    for seed in 0..seeds() {
        match sharded_run(seed, Bugs::default()) {
            Ok(sim) => {
                for entry in sim.executed_log() {
                    match entry.result {
                        OpResult::Credited { .. } => committed += 1,
                        OpResult::Aborted { .. } => aborted += 1,
                        _ => {}
                    }
                }
            }
            Err(e) => panic!("seed {seed}: {e}"),
        }
    }
    eprintln!("{committed} cross-shard transfers committed, {aborted} aborted");
    // The runs exercise both outcomes, or they prove little.
    assert!(
        committed > 0 && aborted > 0,
        "{committed} committed, {aborted} aborted"
    );
}
