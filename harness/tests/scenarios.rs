//! The shipped scenario files run against a real cluster to the balances they imply, and the
//! checker finds the histories valid.

mod common;

use harness::params::RunParams;
use harness::run::shared::INITIAL_BALANCE;
use harness::scenario::run::{bank_accounts, expected_balances, run_scenario, ScenarioOptions};
use harness::scenario::Scenario;
use std::path::PathBuf;
use std::time::Duration;

async fn run_file(name: &str) {
    run_file_on(name, RunParams::default(), 5).await;
}

/// Runs `name` on a cluster of `params` (with `replicas` replicas in all).
async fn run_file_on(name: &str, params: RunParams, expected_replicas: usize) {
    let file = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata")
        .join(name);
    let scenario = Scenario::load(&file).unwrap();
    let expected = expected_balances(&scenario, &bank_accounts(), INITIAL_BALANCE)
        .expect("shipped scenarios never overdraw, whatever the order");
    let out = tempfile::tempdir().unwrap();
    let opts = ScenarioOptions {
        run: common::options(
            out.path(),
            0,
            RunParams {
                op_timeout_ms: 5_000,
                ..params
            },
        ),
        file,
        interactive: false,
        script: None,
        stall: Duration::from_millis(1_500),
        set_timeout: Duration::from_secs(20),
    };
    let summary = run_scenario(&opts).await.unwrap();
    let dir = &summary.dir;
    let results = std::fs::read_to_string(dir.join("results.json")).unwrap_or_default();
    assert_eq!(summary.exit_code, 0, "{summary:#?}\n{results}");
    assert_eq!(
        summary.info, 0,
        "every transfer got a definite answer: {summary:?}"
    );
    let transfers = scenario.transfers().count() as u64;
    assert!(summary.ok >= transfers, "{summary:?}");
    let final_state = checker::final_state::FinalState::load(dir.join("final.json")).unwrap();
    // Entries named like `n3:1-7` are earlier segments of a replica's journal, without
    // balances (see harness::targets::faultline::journal); the replicas themselves carry their final balances.
    let replicas: Vec<_> = final_state
        .nodes
        .iter()
        .filter(|(name, _)| !name.contains(':'))
        .collect();
    assert_eq!(replicas.len(), expected_replicas);
    let held: std::collections::BTreeSet<&String> = replicas
        .iter()
        .flat_map(|(_, s)| s.balances.iter().flat_map(|b| b.keys()))
        .collect();
    assert_eq!(held, expected.keys().collect(), "every account is held");
    for (node, state) in replicas {
        // A shard's replica holds its shard's accounts only.
        let balances = state.balances.as_ref().expect("balances fetched");
        let mine: std::collections::BTreeMap<_, _> = expected
            .iter()
            .filter(|(a, _)| balances.contains_key(*a))
            .map(|(a, b)| (a.clone(), *b))
            .collect();
        assert!(!mine.is_empty(), "{node} holds accounts");
        assert_eq!(balances, &mine, "{node}'s final balances");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_scenario() {
    run_file("basic.csv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leader_failures_scenario() {
    run_file("leader_failures.csv").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minority_sets_stall_and_recover() {
    run_file("minority_stall.csv").await;
}

/// A 3 × 3 sharded bank: `Live Nodes` name replicas of every shard, `LF` fails every shard's
/// leader, and transfers refused by a cross-shard lock are tried again until they execute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_scenario_reaches_the_balances_it_implies() {
    let shape = harness::params::ShardParams {
        shards: 3,
        replicas_per_shard: 3,
        cross_shard_share: 0.5,
        workload: None,
        lock_policy: replica::core::LockPolicy::default(),
        failpoints: None,
    };
    let params = RunParams {
        nodes: shape.nodes(),
        shards: Some(shape),
        ..RunParams::default()
    };
    run_file_on("shards_3x3.csv", params, 9).await;
}
