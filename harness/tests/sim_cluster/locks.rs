//! The sharded bank's lock policies side by side on the same seeds and workload: wait-die
//! must keep every property of the bank and do what it is for, fewer commands failing on a
//! lock than under no-wait.

use crate::world;
use replica::bank::{AbortReason, OpResult};
use replica::core::LockPolicy;
use sim::SimOptions;

/// One fault-free sharded run under `policy`, settled and checked; how many executed entries
/// failed on a lock (a refused command or a participant's no vote) and how many cross-shard
/// credits committed.
fn contended_run(policy: LockPolicy, seed: u64) -> Result<(u64, u64), String> {
    let mut options = SimOptions::sharded(2, 3, seed);
    options.lock_policy = policy;
    options.max_inflight_txns = 16;
    let mut sim = world(options);
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

/// Over the same seeds, far fewer commands fail on a lock under wait-die than under no-wait
/// (those that still do waited out the bound, or died behind an older transaction), and
/// cross-shard transfers still commit.
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
