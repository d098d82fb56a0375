//! Bounded messages in the simulator (issue 8 item 7): with long account names, big batches and
//! a small frame limit, every PROMISE, view, catch-up answer and snapshot must still arrive.
//! The simulated network drops any message over the limit, as the real one does.

use crate::world;
use harness::sim::clients::LoadedWorld;
use replica::types::NodeId;
use sim::SimOptions;

const LIMIT: usize = 4096;

/// Eighty accounts with 64-character names (a checkpoint of over 6 KiB, and every ReadAll
/// reply in the reply table as large), 40 clients (batches of up to 40 commands of ~150
/// bytes), checkpoints every 10 slots, and 4 KiB messages.
fn options(seed: u64) -> SimOptions {
    let mut options = SimOptions::new(5, seed);
    options.config.accounts = (0..80).map(|i| format!("{i:0>64}").into()).collect();
    options.config.max_batch_commands = 64;
    options.config.max_inflight_slots = 8;
    options.config.max_pending_commands = 256;
    options.config.checkpoint_interval_slots = 10;
    options.config.max_message_bytes = LIMIT as u64;
    options.max_message_bytes = Some(LIMIT);
    options
}

fn progress(sim: &mut LoadedWorld, ms: u64) -> u64 {
    sim.run_for(ms)
}

#[test]
fn long_names_and_big_batches_still_elect_replicate_and_catch_up() {
    for seed in 0..3 {
        let mut sim = world(options(seed));
        sim.start_clients(40);
        let first = sim.run_until_leader(2_000).expect("a leader");
        assert!(
            progress(&mut sim, 1_000) > 0,
            "seed {seed}: big batches commit"
        );
        // A replica misses several checkpoints' worth of slots: it needs a snapshot.
        let lagging: NodeId = sim.node_ids().into_iter().find(|n| *n != first).unwrap();
        sim.isolate(lagging);
        assert!(progress(&mut sim, 1_500) > 0, "seed {seed}");
        // The leader dies with a full window of big entries: long PROMISEs.
        sim.crash(first);
        sim.heal();
        let second = sim.run_until_leader(2_000);
        assert!(second.is_some(), "seed {seed}: no leader after the crash");
        assert!(
            progress(&mut sim, 1_500) > 0,
            "seed {seed}: commits after the view change"
        );
        // Converging below needs the lagging replica to install a checkpoint (its slots were
        // compacted away long ago), which is larger than one message.
        sim.restart(first);
        sim.stop_clients();
        assert!(
            sim.run_until_converged(5_000),
            "seed {seed}: {:?}",
            sim.check_converged()
        );
        sim.check_safety().unwrap();
        sim.check_replies().unwrap();
        assert_eq!(
            sim.stats.oversized, 0,
            "seed {seed}: messages over the limit"
        );
    }
}
