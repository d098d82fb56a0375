//! The replica's durability under faults that need a workload first (checkpoints taken, a
//! WAL full of acknowledged records): the real shell and storage code on the simulated disk,
//! with the harness's clients writing. The durability and truncation tests that need no
//! workload stay with the simulator (`sim/tests/durability.rs`, `sim/tests/truncation.rs`).

use crate::world;
use harness::sim::clients::LoadedWorld;
use replica::types::NodeId;
use sim::SimOptions;
use std::path::PathBuf;

fn n(k: u32) -> NodeId {
    NodeId(k)
}

fn sim_with(seed: u64, checkpoint_interval: u64) -> LoadedWorld {
    let mut options = SimOptions::new(5, seed);
    options.config.checkpoint_interval_slots = checkpoint_interval;
    world(options)
}

/// Clients run until every node took a checkpoint or `ms` pass.
fn run_with_clients(sim: &mut LoadedWorld, ms: u64) {
    sim.start_clients(5);
    sim.run_for(ms);
    sim.stop_clients();
    assert!(
        sim.run_until_converged(3_000),
        "{:?}",
        sim.check_converged()
    );
}

fn path(node: NodeId, file: &str) -> PathBuf {
    PathBuf::from(format!("/{node}/{file}"))
}

#[test]
fn a_damaged_newest_checkpoint_is_refused_not_replaced_by_the_previous() {
    // Before: read_checkpoint fell back to checkpoint.prev, but the WAL had been compacted
    // up to the newest checkpoint, so the acceptor came back without its votes in between.
    let mut sim = sim_with(1, 2);
    run_with_clients(&mut sim, 1_500);
    let victim = n(2);
    let disk = sim.node(victim).disk.clone();
    assert!(disk.read(&path(victim, "checkpoint.prev")).is_some());
    sim.crash(victim);
    assert!(disk.corrupt(&path(victim, "checkpoint"), 12));
    sim.restart(victim);
    assert!(
        !sim.is_up(victim),
        "the replica must not start from less than it promised"
    );
    let why = sim.node(victim).refused().expect("a reason");
    assert!(
        why.contains("checkpoint") && why.contains("corrupt"),
        "{why}"
    );
    sim.check_safety().expect("the others carry on safely");
}

/// The byte offsets of the WAL's frames whose payload is a record (tag 0), not a mark.
fn record_frames(wal: &[u8]) -> Vec<(usize, usize)> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at + 8 <= wal.len() {
        let len = u32::from_le_bytes([wal[at], wal[at + 1], wal[at + 2], wal[at + 3]]) as usize;
        // Zeros: the space the WAL laid down ahead of its written end.
        if len == 0 || at + 8 + len > wal.len() {
            break;
        }
        if wal[at + 8] == 0 {
            frames.push((at, len));
        }
        at += 8 + len;
    }
    frames
}

#[test]
fn a_flipped_bit_in_the_last_acknowledged_wal_record_is_refused_not_cut() {
    // Before: damage with no valid frame after it was taken for a torn write and cut, even
    // when the record was a vote the replica had fsynced and sent. Now the idle log writes a
    // synced-length mark after its last burst, so that record is vouched for.
    let mut sim = sim_with(7, 100_000);
    run_with_clients(&mut sim, 800);
    sim.run_for(500); // idle: the logs confirm their last bursts
    let victim = n(3);
    let disk = sim.node(victim).disk.clone();
    let wal = disk.read(&path(victim, "wal.log")).expect("a WAL");
    let &(start, len) = record_frames(&wal).last().expect("records");
    sim.crash(victim);
    assert!(disk.corrupt(&path(victim, "wal.log"), (start + 8 + len / 2) as u64));
    sim.restart(victim);
    assert!(disk.violations().is_empty(), "{:?}", disk.violations());
    let why = sim.node(victim).refused().expect("refused to start");
    assert!(
        why.contains("wal.log") && why.contains("not a torn write"),
        "{why}"
    );
}

fn three_nodes(seed: u64) -> LoadedWorld {
    let mut options = SimOptions::new(3, seed);
    // No compaction in the way: the WAL holds everything.
    options.config.checkpoint_interval_slots = 100_000;
    world(options)
}

#[test]
fn the_simulated_fault_cuts_below_what_the_replica_recorded_and_is_refused() {
    for seed in 0..20 {
        let mut sim = three_nodes(100 + seed);
        sim.start_clients(3);
        sim.run_for(1_500);
        let victim = sim.node_ids()[(seed % 3) as usize];
        sim.crash(victim);
        let Some(cut) = sim.cut_short(victim) else {
            continue;
        };
        sim.restart(victim);
        assert!(!sim.is_up(victim), "seed {seed}: started after {cut:?}");
        assert!(sim.violations().is_empty(), "{:?}", sim.violations());
    }
}
