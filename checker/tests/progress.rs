//! The no-progress rule: with a majority of run.toml's `nodes` up and no partition in
//! force, some operation is answered `ok` within `progress_bound_ms`, during the run as
//! well as after the heal.

mod common;

use checker::history::{Event, HistoryWriter};
use checker::{check_run, Results, Validity};
use common::*;
use serde_json::{json, Value};

const MS: u64 = 1_000_000;

const RUN_TOML: &str = "seed = 1\naccounts = [\"A\", \"B\"]\ninitial_balance = 10\nnodes = 3\nprogress_bound_ms = 100\n";

/// Client 1's transfer invoked at 1 ms and answered at 320 ms, with `faults` (time in
/// ms, nemesis event) between.
fn run(faults: &[(u64, &str, Value)]) -> Results {
    run_with(faults, RUN_TOML)
}

fn run_with(faults: &[(u64, &str, Value)], run_toml: &str) -> Results {
    let mut events = vec![(1, invoke_transfer(1, 1, "A", "B", 3))];
    for (ms, f, v) in faults {
        events.push((*ms, Event::nemesis(f, v.clone())));
    }
    events.push((320, ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1)));
    events.sort_by_key(|(ms, _)| *ms);
    let dir = tempfile::tempdir().unwrap();
    let mut w = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
    for (i, (ms, e)) in events.iter().enumerate() {
        w.append(&e.clone().at(i as u64, ms * MS)).unwrap();
    }
    drop(w);
    let log = [transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13))];
    final_state(&["n1", "n2", "n3"], &log, &[("A", 7), ("B", 13)])
        .write(dir.path().join("final.json"))
        .unwrap();
    std::fs::write(dir.path().join("run.toml"), run_toml).unwrap();
    check_run(dir.path()).unwrap()
}

#[test]
fn no_ok_with_a_majority_up_is_no_progress() {
    // A minority is down: the two others must still make progress.
    let r = run(&[(0, "kill", json!({"nodes": ["n3"]}))]);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert_eq!(r.valid, Validity::Invalid);
    let a = c
        .anomalies
        .iter()
        .find(|a| a.kind == "no-progress")
        .unwrap();
    assert!(
        a.message.contains("from 0.001 s to 0.320 s") && a.indices == [1],
        "{a:?}"
    );
}

#[test]
fn no_ok_while_a_majority_is_down_is_not_judged() {
    let r = run(&[
        (0, "kill", json!({"nodes": ["n1", "n2"]})),
        (250, "restart", json!({"nodes": ["n1", "n2"]})),
    ]);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Valid, "{c:#?}");
    assert!(c.notes.iter().any(|n| n.contains("no-progress judged")));
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
}

#[test]
fn no_ok_while_partitioned_is_not_judged_until_the_heal() {
    let cut = json!({"shape": "halves", "cuts": [["n1", "n2"], ["n1", "n3"]]});
    let r = run(&[(0, "partition", cut), (300, "heal", json!({"cuts": []}))]);
    assert_eq!(r.checks["liveness"].valid, Validity::Valid);
    let cut = json!({"shape": "halves", "cuts": [["n1", "n2"], ["n1", "n3"]]});
    let r = run(&[(0, "partition", cut), (150, "heal", json!({"cuts": []}))]);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(c.anomalies[0].message.contains("from 0.150 s"), "{c:#?}");
}

#[test]
fn the_cluster_size_is_read_where_the_harness_writes_it() {
    let toml = RUN_TOML.replace("nodes = 3\n", "") + "[params]\nnodes = 3\n";
    let r = run_with(&[(0, "kill", json!({"nodes": ["n3"]}))], &toml);
    assert!(r.checks["liveness"]
        .anomalies
        .iter()
        .any(|a| a.kind == "no-progress"));
    // Without a size the rule does not apply.
    let toml = RUN_TOML.replace("nodes = 3\n", "");
    let r = run_with(&[(0, "kill", json!({"nodes": ["n3"]}))], &toml);
    assert_eq!(r.checks["liveness"].valid, Validity::Valid);
}
