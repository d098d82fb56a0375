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
