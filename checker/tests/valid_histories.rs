//! Valid histories (generated from the sequential bank with concurrent clients,
//! retries, timeouts, rejections, nemesis) pass every check with no false positives,
//! and what cannot be decided is `unknown`, never a pass.

mod common;

use checker::gen::{self, GenOptions};
use checker::{check_run, Validity};
use common::*;
use proptest::prelude::*;

fn check_generated(opt: &GenOptions) -> checker::Results {
    let dir = tempfile::tempdir().unwrap();
    gen::generate(opt).write(dir.path()).unwrap();
    check_run(dir.path()).unwrap()
}

fn assert_valid(r: &checker::Results) {
    assert_eq!(
        r.valid,
        Validity::Valid,
        "{}",
        serde_json::to_string_pretty(r).unwrap()
    );
    assert!(r.checks.values().all(|c| c.anomaly_count == 0));
}

#[test]
fn default_workload_is_valid() {
    let r = check_generated(&GenOptions {
        events: 6_000,
        ..GenOptions::default()
    });
    assert_valid(&r);
    assert!(r.history.operations > 2_000);
    assert_eq!(r.final_state.nodes.len(), 5);
    assert!(r.check("replay").unwrap().counts["observations replayed"] > 1_000);
}

#[test]
fn heavy_timeouts_and_retries_are_valid() {
    let opt = GenOptions {
        events: 4_000,
        p_timeout: 0.3,
        p_retry: 0.9,
        p_reject: 0.1,
        p_timeout_executes: 0.7,
        ..GenOptions::default()
    };
    assert_valid(&check_generated(&opt));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn random_workloads_are_valid(
        seed in 0u64..1 << 40,
        events in 200usize..2_500,
        clients in 1u64..12,
        accounts in 2usize..8,
        p_timeout in 0.0f64..0.3,
        p_reject in 0.0f64..0.2,
        p_read in 0.0f64..0.4,
        nodes in 1usize..6,
    ) {
        let opt = GenOptions {
            seed, events, clients, accounts, p_timeout, p_reject, p_read, nodes,
            max_amount: 12,
            ..GenOptions::default()
        };
        let r = check_generated(&opt);
        prop_assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    }
}

#[test]
fn missing_final_json_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let run = gen::generate(&GenOptions {
        events: 1_000,
        ..GenOptions::default()
    });
    run.write(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("final.json")).unwrap();
    let r = check_run(dir.path()).unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    for name in ["agreement", "replay", "exactly-once", "conservation"] {
        let c = r.check(name).unwrap();
        assert_eq!(c.valid, Validity::Unknown, "{name}");
        assert!(!c.unknown.is_empty(), "{name} must say why");
    }
    // What needs only the history is still decided.
    assert_eq!(r.check("total-order").unwrap().valid, Validity::Valid);
    assert_eq!(r.exit_code(), 2);
}

#[test]
fn every_replica_unreachable_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),
        ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1),
    ];
    let mut fin = final_state(&["n1", "n2"], &[], &[]);
    for n in fin.nodes.values_mut() {
        *n = checker::final_state::NodeFinal::unreachable("connection refused");
    }
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    assert_eq!(r.check("agreement").unwrap().valid, Validity::Unknown);
    assert_eq!(r.check("conservation").unwrap().valid, Validity::Unknown);
    assert_eq!(r.check("exactly-once").unwrap().valid, Validity::Unknown);
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn uncovered_log_prefix_is_unknown_not_valid() {
    // Every replica installed a checkpoint: nobody knows exec_index 1.
    let dir = tempfile::tempdir().unwrap();
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),
        ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1),
        invoke_transfer(2, 1, "B", "A", 1),
        ok_transfer(2, 1, ("B", "A", 1), (12, 8), 2),
    ];
    let log = [transfer_entry(2, 2, 1, ("B", "A", 1), (12, 8))];
    let fin = final_state(&["n1"], &log, &[("A", 8), ("B", 12)]);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    assert_eq!(r.check("replay").unwrap().valid, Validity::Unknown);
    assert_eq!(r.check("exactly-once").unwrap().valid, Validity::Unknown);
    assert_eq!(r.final_state.log_first_gap, Some(1));
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn missing_run_toml_is_unknown() {
    let dir = tempfile::tempdir().unwrap();
    let run = gen::generate(&GenOptions {
        events: 500,
        ..GenOptions::default()
    });
    run.write(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("run.toml")).unwrap();
    let r = check_run(dir.path()).unwrap();
    assert_eq!(r.check("conservation").unwrap().valid, Validity::Unknown);
    assert_eq!(r.check("replay").unwrap().valid, Validity::Unknown);
    assert_eq!(r.valid, Validity::Unknown);
    assert!(r.warnings.iter().any(|w| w.contains("run.toml")));
}

#[test]
fn a_late_replica_and_a_checkpointed_one_agree() {
    // n2 is behind (a prefix); n3 starts at exec_index 2 (from a checkpoint).
    let dir = tempfile::tempdir().unwrap();
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),
        ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1),
        invoke_transfer(2, 1, "B", "A", 1),
        ok_transfer(2, 1, ("B", "A", 1), (12, 8), 2),
    ];
    let log = [
        transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13)),
        transfer_entry(2, 2, 1, ("B", "A", 1), (12, 8)),
    ];
    let mut fin = final_state(&["n1"], &log, &[("A", 8), ("B", 12)]);
    let mut behind = fin.nodes["n1"].clone();
    behind.executed.truncate(1);
    behind.balances = Some([("A".to_string(), 7), ("B".to_string(), 13)].into());
    fin.nodes.insert("n2".into(), behind);
    let mut late = fin.nodes["n1"].clone();
    late.executed.remove(0);
    fin.nodes.insert("n3".into(), late);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    assert_valid(&r);
    assert_eq!(
        r.check("agreement").unwrap().counts["final balances compared"],
        3
    );
}

#[test]
fn checkpointed_replica_listed_first_is_fine() {
    // "a" sorts before "n1", so the log is first laid out from exec_index 2.
    let dir = tempfile::tempdir().unwrap();
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),
        ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1),
        invoke_transfer(2, 1, "B", "A", 1),
        ok_transfer(2, 1, ("B", "A", 1), (12, 8), 2),
    ];
    let log = [
        transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13)),
        transfer_entry(2, 2, 1, ("B", "A", 1), (12, 8)),
    ];
    let mut fin = final_state(&["n1"], &log, &[("A", 8), ("B", 12)]);
    let mut ckpt = fin.nodes["n1"].clone();
    ckpt.executed.remove(0);
    fin.nodes.insert("a".into(), ckpt);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    assert_valid(&check_run(dir.path()).unwrap());
}

#[test]
fn request_ids_need_not_increase() {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let mut log = Vec::new();
    let (mut a, mut b) = (10, 10);
    for (i, rid) in [5u64, 3, 9, 1].into_iter().enumerate() {
        a -= 1;
        b += 1;
        events.push(invoke_transfer(1, rid, "A", "B", 1));
        events.push(ok_transfer(1, rid, ("A", "B", 1), (a, b), i as u64 + 1));
        log.push(transfer_entry(i as u64 + 1, 1, rid, ("A", "B", 1), (a, b)));
    }
    let fin = final_state(&["n1"], &log, &[("A", a), ("B", b)]);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    assert_valid(&r);
    assert_eq!(r.history.operations, 4);
}
