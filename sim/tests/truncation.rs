//! A WAL cut short (issue 21, item 4), on the simulated disk: emptied, cut at and between
//! record boundaries, or fallen back past synced writes, it must be refused at start, naming
//! the file and what is missing; the two-fault sequence that lost acknowledged transfers
//! before is the regression test. The simulated fault `cut_short` under a workload is tested
//! with the harness's clients, in `harness/tests/sim_cluster/durability.rs`.

use replica::bank::Command;
use replica::client_proto::ClientResponse;
use replica::types::NodeId;
use sim::{Sim, SimOptions};
use std::path::PathBuf;

fn wal(node: NodeId) -> PathBuf {
    PathBuf::from(format!("/{node}/wal.log"))
}

fn three_nodes(seed: u64) -> Sim {
    let mut options = SimOptions::new(3, seed);
    // No compaction in the way: the WAL holds everything.
    options.config.checkpoint_interval_slots = 100_000;
    Sim::new(options)
}

/// Submits `count` transfers at `leader` one at a time; returns how many were acknowledged.
fn acknowledged_transfers(sim: &mut Sim, leader: NodeId, count: u64) -> u64 {
    let mut acked = 0;
    for request in 1..=count {
        let token = sim.submit(leader, Command::transfer(1, request, "A", "B", 1));
        sim.run_until(2_000, |s| s.reply_to(token).is_some());
        if matches!(sim.reply_to(token), Some(ClientResponse::Reply { .. })) {
            acked += 1;
        }
    }
    acked
}

#[test]
fn an_emptied_wal_then_a_leader_kill_loses_no_acknowledged_transfer() {
    // Before: the replica whose WAL was emptied started as a fresh acceptor; with the third
    // replica (down while the transfers were acknowledged) it formed a majority without them,
    // once the leader was killed. Acknowledged transfers were lost and the replicas diverged.
    let mut sim = three_nodes(11);
    let leader = sim.run_until_leader(3_000).expect("a leader");
    let others: Vec<NodeId> = sim
        .node_ids()
        .into_iter()
        .filter(|&n| n != leader)
        .collect();
    let (emptied, late) = (others[0], others[1]);
    sim.crash(late);
    let acked = acknowledged_transfers(&mut sim, leader, 5);
    assert_eq!(acked, 5, "the leader and {emptied} acknowledge");
    sim.run_for(500); // idle: the logs confirm their last bursts
    sim.crash(emptied);
    let disk = sim.node(emptied).disk.clone();
    assert!(disk.cut(&wal(emptied), 0), "the WAL held records");
    sim.restart(emptied);
    sim.crash(leader);
    sim.restart(late);
    sim.run_for(3_000);
    sim.restart(leader);
    sim.run_for(3_000);
    let why = sim.node(emptied).refused().map(str::to_string);
    sim.check_safety().expect("no divergence, no cut accepted");
    sim.check_replies()
        .expect("every acknowledged transfer is in the log");
    let why = why.expect("the replica with an emptied WAL refused to start");
    assert!(
        why.contains(&format!("/{emptied}/wal.log")) && why.contains("cut short"),
        "{why}"
    );
    let balances = sim.core(leader).expect("the leader is back").balances().1;
    assert_eq!(balances["A"], sim.options().config.initial_balance - 5);
}

/// Every record boundary of a WAL, and a point inside every record.
fn cut_points(bytes: &[u8]) -> Vec<u64> {
    let mut points = Vec::new();
    let mut at = 0usize;
    while at + 8 <= bytes.len() {
        let len = u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
        let end = at + 8 + len as usize;
        // Zeros: the space the WAL laid down ahead of its written end.
        if len == 0 || end > bytes.len() {
            break;
        }
        points.push(at as u64);
        points.push((at + 8 + len as usize / 2) as u64);
        at = end;
    }
    points
}

#[test]
fn a_wal_cut_at_or_between_record_boundaries_is_refused_naming_the_file() {
    let mut sim = three_nodes(12);
    let leader = sim.run_until_leader(3_000).expect("a leader");
    assert_eq!(acknowledged_transfers(&mut sim, leader, 3), 3);
    sim.run_for(500);
    let victim = sim.node_ids().into_iter().find(|&n| n != leader).unwrap();
    let disk = sim.node(victim).disk.clone();
    let bytes = disk.read(&wal(victim)).expect("a WAL");
    let points = cut_points(&bytes);
    assert!(points.len() > 4, "records to cut between");
    sim.crash(victim);
    // Each cut on a fresh copy of the data: restore by rewriting is not possible, so cut
    // deeper each time (the longest first).
    for &point in points.iter().rev().step_by(3) {
        if !disk.cut(&wal(victim), point) {
            continue;
        }
        sim.restart(victim);
        assert!(
            !sim.is_up(victim),
            "started from a WAL cut to {point} bytes"
        );
        let why = sim.node(victim).refused().expect("a reason");
        assert!(why.contains("wal.log") && why.contains("durable"), "{why}");
    }
    assert!(disk.violations().is_empty(), "{:?}", disk.violations());
}
