//! etcd calibrates the tester with two known answers (Jepsen's etcd 3.4.3 analysis and etcd's
//! own documentation):
//! - its key-value operations, multi-key txns included, are strict serializable under kills,
//!   pauses and partitions: a short run with all three must be judged valid;
//! - its serializable reads may be stale: with them, and a follower cut off while its clients
//!   stay on it, the run must be judged invalid.
//!
//! Both need the `etcd` binary (`apt-get install etcd-server etcd-client`). Without it they
//! skip loudly, unless FAULTLINE_REQUIRE_ETCD is set (CI sets it), when they fail.

mod common;

use harness::faults::schedule::{Fault, FaultFamily};
use harness::params::RunParams;
use harness::params::{ReadMode, TargetKind};
use harness::run::{run_in_campaign, schedule_for};
use std::collections::BTreeSet;

fn valid_params() -> RunParams {
    RunParams {
        target: TargetKind::Etcd,
        nodes: 5,
        clients: 10,
        time_ms: 12_000,
        nemesis: vec![
            FaultFamily::Kill,
            FaultFamily::Pause,
            FaultFamily::Partition,
        ],
        nemesis_interval_ms: 1_000,
        op_timeout_ms: 4_000,
        ..RunParams::default()
    }
}

/// The first seed whose schedule holds all three kinds of fault.
fn seed_with_every_fault(params: &RunParams) -> u64 {
    (1..1000)
        .find(|&seed| {
            let kinds: BTreeSet<&str> = schedule_for(params, seed)
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
async fn etcd_under_kills_pauses_and_partitions_is_valid() {
    if !common::etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    let params = valid_params();
    let seed = seed_with_every_fault(&params);
    let summary = run_in_campaign(&common::options(out.path(), seed, params))
        .await
        .unwrap();
    let dir = &summary.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap_or_default();
    assert_eq!(summary.exit_code, 0, "{summary:#?}\n{results}");
    assert!(summary.ok > 100, "etcd made progress: {summary:?}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    for f in ["\"kill\"", "\"pause\"", "\"partition\"", "\"heal\""] {
        assert!(history.contains(f), "the history records {f}");
    }
    let run_toml = std::fs::read_to_string(dir.join("run.toml")).unwrap();
    assert!(run_toml.contains("target = \"etcd\""), "{run_toml}");
    let final_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("final.json")).unwrap()).unwrap();
    assert_eq!(final_json["positions"], "shared_reads");
    for node in ["n1", "n2", "n3", "n4", "n5"] {
        let executed = final_json["nodes"][node]["executed"].as_array().unwrap();
        assert!(!executed.is_empty(), "{node} has a history");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serializable_reads_on_an_isolated_follower_are_caught_stale() {
    if !common::etcd_present() {
        return;
    }
    let out = tempfile::tempdir().unwrap();
    // Ten clients per member; a short op timeout keeps the isolated member's clients cycling
    // (their transfers cannot commit) so that many of their reads fall in the window.
    let params = RunParams {
        target: TargetKind::Etcd,
        etcd_reads: ReadMode::Serializable,
        nodes: 3,
        clients: 30,
        time_ms: 10_000,
        nemesis: vec![FaultFamily::IsolateFollower],
        nemesis_interval_ms: 2_500,
        op_timeout_ms: 1_000,
        attempt_timeout_ms: 300,
        ..RunParams::default()
    };
    let summary = run_in_campaign(&common::options(out.path(), 1, params))
        .await
        .unwrap();
    let results = std::fs::read_to_string(summary.dir.join("results.json")).unwrap_or_default();
    assert_eq!(
        summary.exit_code, 1,
        "stale reads are caught: {summary:#?}\n{results}"
    );
    assert!(
        results.contains("a stale read"),
        "the anomaly is a stale read: {results}"
    );
    let history = std::fs::read_to_string(summary.dir.join("history.jsonl")).unwrap();
    assert!(
        history.contains("\"isolated\""),
        "the nemesis isolated a follower"
    );
}
