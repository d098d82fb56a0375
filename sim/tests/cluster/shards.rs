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
use replica::bank::AbortReason;
use replica::bank::{OpResult, TxnId, TxnPhase, TxnRecord};
use replica::core::{Bugs, LockPolicy};
use replica::types::{NodeId, ShardId};
use sim::{Sim, SimOptions};
use std::collections::{BTreeMap, BTreeSet};

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
    // Both lock policies, by the seed's parity (not from `rng`: older seeds keep their faults).
    options.lock_policy = if seed.is_multiple_of(2) {
        LockPolicy::WaitDie
    } else {
        LockPolicy::NoWait
    };
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

/// Every cross-shard transaction, once settled, is decided on every shard that voted yes on
/// it, the same way everywhere, at most once per shard; a commit moves exactly the amount out
/// of one shard and into the other.
fn check_atomic(sim: &Sim) -> Result<(), String> {
    let mut txns: BTreeMap<TxnId, Vec<(ShardId, TxnRecord)>> = BTreeMap::new();
    for shard in sim.shards() {
        for entry in sim.shard_log(shard) {
            if let Some(record) = entry.txn {
                txns.entry(record.id).or_default().push((shard, record));
            }
        }
    }
    for (id, steps) in &txns {
        let decisions: Vec<_> = steps
            .iter()
            .filter(|(_, r)| !matches!(r.phase, TxnPhase::Prepare { .. }))
            .collect();
        let prepared: BTreeSet<ShardId> = steps.iter().map(|(s, _)| *s).collect();
        let decided: BTreeSet<ShardId> = decisions.iter().map(|(s, _)| *s).collect();
        let commits = decisions
            .iter()
            .filter(|(_, r)| r.phase == TxnPhase::Commit)
            .count();
        let applied: i64 = steps.iter().map(|(_, r)| r.applied).sum();
        let whole = commits == 0 || (commits == prepared.len() && applied == 0);
        if decisions.len() != decided.len() || !whole {
            return Err(format!("transaction {id:?} is not atomic: {steps:?}"));
        }
        // A no vote ends the participant's part at prepare: only a yes needs a decision.
        let voted_yes = |s: &ShardId| {
            let yes = TxnPhase::Prepare { vote_yes: true };
            steps.iter().any(|(t, r)| t == s && r.phase == yes)
        };
        if let Some(open) = prepared
            .iter()
            .find(|s| voted_yes(s) && !decided.contains(s))
        {
            return Err(format!(
                "transaction {id:?} is undecided on shard {open}: {steps:?}"
            ));
        }
    }
    Ok(())
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

/// The checks have teeth: every planted two-phase commit bug is caught by some seed (the
/// sim crate's tests build the replica with its `bugs` feature).
#[test]
fn the_sharded_runs_catch_planted_two_phase_commit_bugs() {
    let bugs = [
        (
            "recovery_aborts",
            Bugs {
                recovery_aborts: true,
                ..Bugs::default()
            },
        ),
        (
            "apply_at_prepare",
            Bugs {
                apply_at_prepare: true,
                ..Bugs::default()
            },
        ),
        (
            "keep_locks_on_abort",
            Bugs {
                keep_locks_on_abort: true,
                ..Bugs::default()
            },
        ),
    ];
    for (name, bug) in bugs {
        let caught = (0..30).find_map(|seed| sharded_run(seed, bug).err().map(|e| (seed, e)));
        eprintln!("{name}: caught by {caught:?}");
        assert!(caught.is_some(), "{name} went unnoticed");
    }
}

/// One fault-free sharded run under `policy`, settled and checked; how many executed entries
/// failed on a lock (a refused command or a participant's no vote) and how many cross-shard
/// credits committed.
fn contended_run(policy: LockPolicy, seed: u64) -> Result<(u64, u64), String> {
    let mut options = SimOptions::sharded(2, 3, seed);
    options.lock_policy = policy;
    options.max_inflight_txns = 16;
    let mut sim = Sim::new(options);
    sim.start_clients(8);
    sim.run_for(3_000);
    sim.stop_clients();
    let settled = sim.run_until(10_000, |s| {
        s.check_converged().is_ok() && s.check_settled().is_ok()
    });
    if !settled {
        return Err(format!("{policy:?} seed {seed}: not settled"));
    }
    sim.check_safety()?;
    sim.check_replies()?;
    check_atomic(&sim)?;
    let (mut conflicts, mut credited) = (0, 0);
    for entry in sim.executed_log() {
        match entry.result {
            OpResult::LockConflict { .. }
            | OpResult::Aborted {
                reason: AbortReason::LockConflict,
            } => conflicts += 1,
            OpResult::Credited { .. } => credited += 1,
            _ => {}
        }
    }
    Ok((conflicts, credited))
}

/// Wait-die keeps every property of the sharded bank and does what it is for: over the same
/// seeds and workload, far fewer commands fail on a lock than under no-wait (those that
/// still do waited out the bound, or died behind an older transaction).
#[test]
fn under_wait_die_fewer_commands_fail_on_a_lock_and_the_bank_stays_safe() {
    let (mut wait_die, mut no_wait) = ((0, 0), (0, 0));
    for seed in 0..8 {
        let (c, m) = contended_run(LockPolicy::WaitDie, seed).unwrap();
        wait_die = (wait_die.0 + c, wait_die.1 + m);
        let (c, m) = contended_run(LockPolicy::NoWait, seed).unwrap();
        no_wait = (no_wait.0 + c, no_wait.1 + m);
    }
    eprintln!("(lock failures, credits) wait-die {wait_die:?}, no-wait {no_wait:?}");
    assert!(no_wait.0 > 0, "the workload meets locks: {no_wait:?}");
    assert!(
        wait_die.0 * 2 < no_wait.0,
        "wait-die {wait_die:?} against no-wait {no_wait:?}"
    );
    assert!(wait_die.1 > 0, "wait-die still commits: {wait_die:?}");
}
