//! The shipped scenario files run against a real cluster to the balances they imply, and the
//! checker finds the histories valid.

mod common;

use harness::run::rundir::RunParams;
use harness::run::INITIAL_BALANCE;
use harness::scenario::run::{bank_accounts, expected_balances, run_scenario, ScenarioOptions};
use harness::scenario::Scenario;
use std::path::PathBuf;
use std::time::Duration;

async fn run_file(name: &str) {
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
                ..RunParams::default()
            },
        ),
        file,
        interactive: false,
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
    // balances (see harness::cluster::journal); the replicas themselves carry their final balances.
    let replicas: Vec<_> = final_state
        .nodes
        .iter()
        .filter(|(name, _)| !name.contains(':'))
        .collect();
    assert_eq!(replicas.len(), 5);
    for (node, state) in replicas {
        assert_eq!(
            state.balances.as_ref(),
            Some(&expected),
            "{node}'s final balances"
        );
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
