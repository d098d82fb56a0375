//! The replica's durability defects (issue "replica hardening", items 1–4), each shown on the
//! simulated disk: the real shell and storage code under power cuts, failing fsyncs and bit
//! flips. Every test here failed before its fix. The two that need a workload first (a damaged
//! checkpoint, a flipped bit in the last acknowledged WAL record) run with the harness's
//! clients in `harness/tests/sim_cluster/durability.rs`.

use replica::client_proto::ClientResponse;
use replica::core::{CoreConfig, ReplyToken};
use replica::shell::{Shell, ShellConfig, ShellError, ShellIo};
use replica::types::NodeId;
use sim::{Sim, SimDisk, SimOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn sim_with(seed: u64, checkpoint_interval: u64) -> Sim {
    let mut options = SimOptions::new(5, seed);
    options.config.checkpoint_interval_slots = checkpoint_interval;
    Sim::new(options)
}

fn path(node: NodeId, file: &str) -> PathBuf {
    PathBuf::from(format!("/{node}/{file}"))
}

#[test]
fn a_power_cut_right_after_the_first_boot_keeps_the_data_directory() {
    // Before: the data directory was created without an fsync of its parent, so a power cut
    // could drop it, and the replica came back having forgotten its promises.
    let mut sim = sim_with(2, 10);
    let leader = sim.run_until_leader(2_000).expect("a leader");
    let promised: Vec<_> = sim
        .node_ids()
        .into_iter()
        .map(|id| (id, sim.core(id).map(|c| c.status().ballot)))
        .collect();
    for id in sim.node_ids() {
        sim.power_cut(id);
        sim.restart(id);
    }
    for (id, before) in promised {
        let after = sim.core(id).map(|c| c.status().ballot);
        assert!(
            after >= before,
            "{id} forgot its promise: {before:?} -> {after:?}"
        );
        assert!(sim.node(id).disk.read(&path(id, "wal.log")).is_some());
    }
    assert!(sim.core(leader).is_some());
}

#[test]
fn a_failed_fsync_stops_the_replica_and_answers_nothing_from_that_burst() {
    let mut sim = sim_with(4, 10);
    let leader = sim.run_until_leader(2_000).expect("a leader");
    sim.fail_syncs(leader, 1);
    let token = sim.submit(leader, transfer(1, 1));
    sim.run_for(50);
    assert!(!sim.is_up(leader), "the replica stops after a failed fsync");
    assert!(
        !matches!(sim.reply_to(token), Some(ClientResponse::Reply { .. })),
        "nothing is acknowledged that may not be durable"
    );
    sim.restart(leader);
    assert!(sim.is_up(leader));
    sim.check_safety().unwrap();
}

fn transfer(client: u64, request: u64) -> replica::bank::Command {
    replica::bank::Command::transfer(client, request, "A", "B", 1)
}

struct NoIo;

impl ShellIo for NoIo {
    fn send(&mut self, _: NodeId, _: replica::core::PeerMsg) {}
    fn reply(&mut self, _: ReplyToken, _: ClientResponse) {}
}

fn shell_config(accounts: &[&str], dir: &Path) -> ShellConfig {
    let mut core = CoreConfig::for_test(1, 1);
    core.accounts = accounts.iter().map(|&a| a.into()).collect();
    core.checkpoint_interval_slots = 1;
    ShellConfig {
        core,
        data_dir: dir.to_path_buf(),
        seed: 1,
        fsync: true,
        forget_promises: false,
        misread_log: false,
    }
}

#[test]
fn a_checkpoint_for_other_accounts_is_refused_at_start() {
    // Before: the core skipped such a checkpoint with an error log and carried on with a WAL
    // already compacted past it.
    let disk = SimDisk::new();
    let dir = Path::new("/n1");
    let config = shell_config(&["A", "B"], dir);
    let mut shell = Shell::open(Arc::new(disk.clone()), &config, 0, &mut NoIo).unwrap();
    // A one-node cluster leads itself and checkpoints every slot.
    let mut now = 0;
    while !shell.core().leads() && now < 5_000 {
        now += 10;
        let mut out = Vec::new();
        shell.on_tick(now, &mut out);
        shell.finish_burst(now, out, &mut NoIo).unwrap();
    }
    let mut out = Vec::new();
    shell.on_client(now, 1, transfer(1, 1), &mut out);
    shell.finish_burst(now, out, &mut NoIo).unwrap();
    assert!(
        disk.read(&dir.join("checkpoint")).is_some(),
        "a checkpoint was taken"
    );
    drop(shell);
    let other = shell_config(&["A", "B", "C"], dir);
    match Shell::open(Arc::new(disk), &other, 0, &mut NoIo) {
        Err(ShellError::CheckpointMismatch { .. }) => {}
        Err(e) => panic!("refused for the wrong reason: {e}"),
        Ok(_) => panic!("started with a checkpoint of other accounts"),
    }
}

/// One burst on `shell` at `now`: a tick, or a client's transfer.
fn burst(shell: &mut Shell, now: u64, client: Option<replica::bank::Command>) {
    let mut out = Vec::new();
    match client {
        Some(command) => shell.on_client(now, 1, command, &mut out),
        None => shell.on_tick(now, &mut out),
    }
    shell.finish_burst(now, out, &mut NoIo).unwrap();
}

#[test]
fn a_busy_wal_confirms_its_votes_once_idle_not_in_the_next_burst() {
    // Before: the first burst without votes confirmed the last one's at once (an fsync, and
    // a superblock fsync beside it) before its own replies, so under light load every reply
    // waited behind two fsyncs that backed nothing of it.
    let disk = SimDisk::new();
    let dir = Path::new("/n1");
    let mut config = shell_config(&["A", "B"], dir);
    config.core.checkpoint_interval_slots = 1_000;
    let mut shell = Shell::open(Arc::new(disk.clone()), &config, 0, &mut NoIo).unwrap();
    let mut now = 0;
    while !shell.core().leads() && now < 5_000 {
        now += 10;
        burst(&mut shell, now, None);
    }
    for _ in 0..10 {
        now += 10;
        burst(&mut shell, now, None);
    }
    let idle = disk.stats().syncs;
    burst(&mut shell, now, Some(transfer(1, 1)));
    let voted = disk.stats().syncs;
    assert!(
        voted > idle,
        "the transfer's own record is fsynced in its burst"
    );
    burst(&mut shell, now + 1, None);
    assert_eq!(disk.stats().syncs, voted, "no fsync in the very next burst");
    burst(&mut shell, now + replica::shell::CONFIRM_IDLE_MS, None);
    assert!(
        disk.stats().syncs > voted,
        "an idle WAL confirms its last votes"
    );
}
