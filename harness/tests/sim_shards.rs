//! Randomized safety of the sharded bank through the one nemesis: seeded `harness sim --shards`
//! runs of two or three shards of three real shells each, on networks that lose, duplicate
//! and delay messages, with small limits (checkpoints every few slots, short batches, one to
//! eight transactions in flight per shard, so that `Busy` refusals happen), under kills,
//! partitions (inside a shard, an isolated shard leader, two shards cut apart) and crashes
//! inside a burst, then healed. Every run must be valid under the checker's sharded checks
//! (one agreed order per shard, every answer its shard's entry, each cross-shard transfer
//! committed on both shards or neither, the bank's total kept, every transaction finished
//! once healed: a lock left behind refuses the probe reads and shows as a stall) with no
//! violation the world saw, and the runs must catch the planted two-phase commit bugs.
//!
//! `FAULTLINE_SIM_SEEDS=<n>` runs more seeds (the default keeps the suite fast).

use checker::shards::Phase;
use harness::faults::schedule::FaultFamily;
use harness::faults::tunables::Pins;
use harness::sim::{simulate, write_and_check, SimFinal, SimParams, SimRunInfo, SimSummary};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeSet;
use std::path::Path;

fn seeds() -> u64 {
    std::env::var("FAULTLINE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .map_or(12, |n: u64| n.max(1))
}

/// Seed `seed`'s sharded run, its knobs drawn from the seed.
fn sharded(seed: u64, bug: Option<&str>) -> SimRunInfo {
    let mut knobs = ChaCha8Rng::seed_from_u64(seed);
    let shards = Some(knobs.gen_range(2..=3));
    let mut params = SimParams::for_seed(seed, &Pins::default(), shards);
    params.set_shards(shards);
    params.ops = 1_000;
    params.faults = vec![
        FaultFamily::Kill,
        FaultFamily::Partition,
        FaultFamily::CrashBurst,
    ];
    params.bug = bug.map(str::to_string);
    params.drop_rate = knobs.gen_range(0.0..0.1);
    params.dup_rate = knobs.gen_range(0.0..0.05);
    params.max_delay_ms = knobs.gen_range(2..=20);
    let t = &mut params.tunables;
    t.checkpoint_interval_slots = knobs.gen_range(2..=12);
    t.max_batch_commands = knobs.gen_range(1..=8);
    t.max_inflight_txns = Some(knobs.gen_range(1..=8));
    SimRunInfo::new(seed, params).unwrap()
}

/// Simulates, writes and checks `info` in `dir`; also counts the cross-shard transactions the
/// replicas committed and aborted.
fn run(dir: &Path, info: &SimRunInfo) -> (SimSummary, usize, usize) {
    let outcome = simulate(info).unwrap();
    let (mut committed, mut aborted) = (BTreeSet::new(), BTreeSet::new());
    if let SimFinal::Sharded(fin) = &outcome.final_state {
        let fin = fin.to_sharded_final();
        let entries = fin.nodes.values().flat_map(|n| &n.executed);
        for entry in entries {
            match (entry.txn, &entry.phase) {
                (Some(txn), Some(Phase::Commit)) => committed.insert(txn),
                (Some(txn), Some(Phase::Abort)) => aborted.insert(txn),
                _ => false,
            };
        }
    }
    let summary = write_and_check(dir, info, &outcome, false).unwrap();
    (summary, committed.len(), aborted.len())
}

#[test]
fn random_faults_never_break_a_sharded_bank_and_every_transaction_finishes() {
    let out = tempfile::tempdir().unwrap();
    let (mut committed, mut aborted) = (0, 0);
    for seed in 0..seeds() {
        let dir = out.path().join(format!("seed-{seed}"));
        let (s, c, a) = run(&dir, &sharded(seed, None));
        assert!(
            s.verdict == "valid" && s.world_violations.is_empty(),
            "seed {seed}: {} {:?} {:?}",
            s.verdict,
            s.failed_checks,
            s.world_violations
        );
        committed += c;
        aborted += a;
    }
    eprintln!("{committed} cross-shard transactions committed, {aborted} aborted");
    // The runs exercise both outcomes, or they prove little.
    assert!(
        committed > 0 && aborted > 0,
        "{committed} committed, {aborted} aborted"
    );
}

/// The checks have teeth: every planted two-phase commit bug is caught by some seed.
#[test]
fn the_sharded_runs_catch_planted_two_phase_commit_bugs() {
    let out = tempfile::tempdir().unwrap();
    for bug in replica::core::config::SHARDED_BUG_NAMES {
        let caught = (0..30).find(|&seed| {
            let dir = out.path().join(format!("{bug}-{seed}"));
            let (s, _, _) = run(&dir, &sharded(seed, Some(bug)));
            s.verdict != "valid" || !s.world_violations.is_empty()
        });
        eprintln!("{bug}: caught by seed {caught:?}");
        assert!(caught.is_some(), "{bug} went unnoticed in 30 sharded seeds");
    }
}

/// A sharded final.json is written straight from the replicas' executed entries: the bytes
/// must be those the checker's own `ShardedFinal` writes for the same content, on clean seeds
/// and on seeds with a planted two-phase commit bug (whose entries take other shapes).
#[test]
fn sharded_final_json_written_typed_is_byte_identical_to_the_checkers_sharded_final() {
    let dir = tempfile::tempdir().unwrap();
    let mut runs: Vec<SimRunInfo> = (0..4).map(|seed| sharded(seed, None)).collect();
    let bugs = replica::core::config::SHARDED_BUG_NAMES;
    runs.extend(bugs.iter().take(2).map(|bug| sharded(1, Some(bug))));
    for info in runs {
        let outcome = simulate(&info).unwrap();
        let SimFinal::Sharded(fin) = &outcome.final_state else {
            panic!("seed {}: a sharded run", info.seed);
        };
        let typed = dir.path().join("typed.json");
        outcome.final_state.write(&typed).unwrap();
        let owned = dir.path().join("owned.json");
        fin.to_sharded_final().write(&owned).unwrap();
        let typed = std::fs::read(&typed).unwrap();
        let txn_steps = String::from_utf8_lossy(&typed).matches("\"phase\"").count();
        assert!(
            txn_steps > 0,
            "seed {}: transactions were written",
            info.seed
        );
        assert!(
            typed == std::fs::read(&owned).unwrap(),
            "seed {}: the typed final.json differs from ShardedFinal's",
            info.seed
        );
    }
}
