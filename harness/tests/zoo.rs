//! The harness keeps its teeth: two planted bugs, run end to end through short campaigns, must
//! be caught by the checks they break, and the same campaign without a bug must pass. Kept
//! cheap: the bugs that show within seconds.

mod common;

use harness::run::zoo::{run_zoo, ZooOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn planted_bugs_are_caught_and_the_clean_replica_passes() {
    let out = tempfile::tempdir().unwrap();
    let opts = ZooOptions {
        out: out.path().to_path_buf(),
        replica_bin: common::replica_bugs_bin(),
        seed: 7,
        runs_per_bug: 3,
        time_ms: 6_000,
        nemesis_interval_ms: 1_500,
        only: vec!["no-funds-check".into(), "local-reads".into()],
        clean_runs: true,
        progress: false,
    };
    let rows = run_zoo(&opts).await.expect("the zoo runs");
    let table = harness::run::zoo::render_table(&rows);
    for bug in ["no-funds-check", "local-reads"] {
        let row = rows.iter().find(|r| r.bug == bug).expect("a row per bug");
        assert!(row.detected, "{bug} went undetected:\n{table}");
        assert!(
            row.expected_check,
            "{bug} was caught by an unexpected check:\n{table}"
        );
        assert!(
            row.report.as_ref().is_some_and(|r| r.is_file()),
            "{bug}: no report\n{table}"
        );
    }
    let clean: Vec<_> = rows.iter().filter(|r| r.bug == "none").collect();
    assert!(!clean.is_empty());
    assert!(
        clean.iter().all(|r| r.passed()),
        "a clean campaign failed:\n{table}"
    );
    assert!(out.path().join("zoo.json").is_file() && out.path().join("index.html").is_file());
}

/// `stuck-leader` through real processes: with every replica up and no fault, the leader
/// heartbeats but stops proposing; the run is invalid and the `progress` check names the
/// stall (a stretch without `ok` while a majority was up and connected).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leader_that_stops_proposing_is_a_no_progress_stall() {
    let out = tempfile::tempdir().unwrap();
    let opts = ZooOptions {
        out: out.path().to_path_buf(),
        replica_bin: common::replica_bugs_bin(),
        seed: 11,
        runs_per_bug: 1,
        time_ms: 12_000,
        nemesis_interval_ms: 1_500,
        only: vec!["stuck-leader".into()],
        clean_runs: false,
        progress: false,
    };
    let rows = run_zoo(&opts).await.expect("the zoo runs");
    let table = harness::run::zoo::render_table(&rows);
    let row = rows
        .iter()
        .find(|r| r.bug == "stuck-leader")
        .expect("its row");
    assert!(row.detected, "stuck-leader went undetected:\n{table}");
    let report = row.report.as_ref().expect("a report");
    let results = report.with_file_name("results.json");
    let results: checker::Results =
        serde_json::from_slice(&std::fs::read(&results).unwrap()).unwrap();
    assert_eq!(results.valid, checker::Validity::Invalid);
    let progress = &results.checks["progress"];
    assert_eq!(progress.valid, checker::Validity::Invalid, "{progress:#?}");
    let a = &progress.anomalies[0];
    assert_eq!(a.kind, "no-progress");
    assert!(
        a.message.contains("a majority of the replicas was up"),
        "{}",
        a.message
    );
}
