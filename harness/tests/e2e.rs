//! A short real campaign: 5 replica processes, 10 clients, kills, pauses and partitions through
//! the relay, then the checker. Bounded: ~15 s of workload plus start and final phase.

mod common;

use harness::faults::schedule::{Fault, FaultFamily};
use harness::params::RunParams;
use harness::run::{run_in_campaign, schedule_for};
use std::collections::BTreeSet;

fn params() -> RunParams {
    RunParams {
        nodes: 5,
        clients: 10,
        time_ms: 15_000,
        nemesis: vec![
            FaultFamily::Kill,
            FaultFamily::Pause,
            FaultFamily::Partition,
        ],
        nemesis_interval_ms: 1_500,
        op_timeout_ms: 5_000,
        ..RunParams::default()
    }
}

/// The first seed whose schedule holds all three kinds of fault.
fn seed_with_every_fault() -> u64 {
    (1..1000)
        .find(|&seed| {
            let kinds: BTreeSet<&str> = schedule_for(&params(), seed)
                .iter()
                .filter_map(|s| match &s.fault {
                    Some(Fault::Kill(_)) => Some("kill"),
                    Some(Fault::Pause(_)) => Some("pause"),
                    Some(Fault::Partition(_)) => Some("partition"),
                    _ => None,
                })
                .collect();
            kinds.len() == 3
        })
        .expect("some seed mixes all faults")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_fault_campaign_passes_the_checker() {
    let out = tempfile::tempdir().unwrap();
    let seed = seed_with_every_fault();
    let summary = run_in_campaign(&common::options(out.path(), seed, params()))
        .await
        .unwrap();
    let dir = &summary.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(summary.exit_code, 0, "{summary:#?}\n{results}");
    assert!(summary.ok > 100, "the cluster made progress: {summary:?}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    for f in [
        "\"kill\"",
        "\"restart\"",
        "\"pause\"",
        "\"resume\"",
        "\"partition\"",
        "\"heal\"",
    ] {
        assert!(history.contains(f), "the history records {f}");
    }
    for file in [
        "run.toml",
        "cluster.toml",
        "final.json",
        "schedule.json",
        "n1.log",
        "certs/ca.pem",
    ] {
        assert!(dir.join(file).exists(), "{file} is in the run directory");
    }
    assert!(out.path().join("latest").exists());
}
