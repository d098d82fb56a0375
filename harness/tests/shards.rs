//! A short sharded campaign: 2 shards × 3 replica processes, 10 clients with half their
//! transfers crossing shards (two-phase commit), shard-aimed kills, pauses and partitions,
//! then the checker's sharded path. Bounded: ~10 s of workload plus start and final phase.

mod common;

use harness::faults::schedule::FaultFamily;
use harness::params::{RunParams, ShardParams};
use harness::run::{run_in_campaign, schedule_for};
use serde_json::Value;

fn params() -> RunParams {
    let shape = ShardParams {
        shards: 2,
        replicas_per_shard: 3,
        cross_shard_share: 0.5,
        workload: None,
        lock_policy: replica::core::LockPolicy::default(),
        failpoints: None,
    };
    RunParams {
        nodes: shape.nodes(),
        shards: Some(shape),
        clients: 10,
        time_ms: 10_000,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_sharded_fault_campaign_passes_the_sharded_checker() {
    let out = tempfile::tempdir().unwrap();
    // A seed whose schedule cuts the two shards apart at some point.
    let seed = (1..1000)
        .find(|&seed| {
            schedule_for(&params(), seed)
                .iter()
                .any(|s| matches!(&s.fault, Some(f) if f.to_string().contains("shards 1 and 2")))
        })
        .expect("some seed partitions the shards");
    let summary = run_in_campaign(&common::options(out.path(), seed, params()))
        .await
        .unwrap();
    let dir = &summary.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(summary.exit_code, 0, "{summary:#?}\n{results}");
    assert!(summary.ok > 100, "the shards made progress: {summary:?}");
    let results: Value = serde_json::from_str(&results).unwrap();
    for check in ["atomicity", "shard-agreement", "strict-serializability"] {
        assert!(results["checks"].get(check).is_some(), "{check} was run");
    }
    let txns = &results["checks"]["atomicity"]["counts"]["cross-shard transactions"];
    assert!(txns.as_u64().is_some_and(|n| n > 10), "{txns}");

    let fin: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("final.json")).unwrap()).unwrap();
    let nodes = fin["nodes"].as_object().unwrap();
    for (k, shard) in [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (6, 2)] {
        let node = &nodes[&format!("n{k}")];
        assert_eq!(node["shard"], shard, "n{k}");
        assert!(node["balances"].is_object(), "n{k}: {}", node["error"]);
    }
    for shard in [1, 2] {
        let phases: Vec<&str> = nodes
            .values()
            .filter(|n| n["shard"] == shard)
            .flat_map(|n| n["executed"].as_array().unwrap())
            .filter_map(|e| e["phase"].as_str())
            .collect();
        for phase in ["prepare", "commit"] {
            assert!(phases.contains(&phase), "shard {shard} logged no {phase}");
        }
    }
    let run_toml = std::fs::read_to_string(dir.join("run.toml")).unwrap();
    assert!(run_toml.contains("[[shards]]"), "{run_toml}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    assert!(history.contains("\"positions\""));
    assert!(
        history.contains("\"a\":1,\"b\":2"),
        "the shards were cut apart"
    );
}

/// Coordinators crashed by failpoints (`replica-bugs`, no bug planted): the sharded bank stays
/// valid, every transaction ends after the heal (the liveness check applies), and the history
/// shows the failpoints armed and firing. ~10 s of workload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinators_crashed_at_failpoints_leave_a_valid_live_bank() {
    let out = tempfile::tempdir().unwrap();
    let params = RunParams {
        nemesis: vec![FaultFamily::CrashCoordinator],
        ..params()
    };
    let mut opts = common::options(out.path(), 11, params);
    opts.replica_bin = common::replica_bugs_bin();
    let summary = run_in_campaign(&opts).await.unwrap();
    let dir = &summary.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap();
    assert_eq!(summary.exit_code, 0, "{summary:#?}\n{results}");
    assert!(
        !summary
            .notes
            .iter()
            .any(|n| n.contains("never got an answer")),
        "every probe after the heal read its account or the bank: {:?}",
        summary.notes
    );
    let results: Value = serde_json::from_str(&results).unwrap();
    let liveness = &results["checks"]["liveness"];
    assert_eq!(liveness["valid"], true, "{liveness}");
    let watched = &liveness["counts"]["operations watched"];
    assert!(watched.as_u64().is_some_and(|n| n > 0), "{liveness}");
    let history = std::fs::read_to_string(dir.join("history.jsonl")).unwrap();
    let nemesis: Vec<Value> = history
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["process"] == "nemesis")
        .collect();
    let has = |f: &str| nemesis.iter().any(|e| e["f"] == f);
    assert!(has("arm-failpoint"), "{nemesis:#?}");
    assert!(has("crash"), "no failpoint fired: {nemesis:#?}");
    assert!(has("stable"), "{nemesis:#?}");
    let run_toml = std::fs::read_to_string(dir.join("run.toml")).unwrap();
    assert!(run_toml.contains("crash-coordinator"), "{run_toml}");
    assert!(run_toml.contains("liveness_bound_ms"), "{run_toml}");
}
