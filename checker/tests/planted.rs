//! Each planted anomaly is caught by the check it belongs to, with an explanation that
//! names the right history indices (and log slot).

mod common;

use checker::gen::{self, GenOptions, Plant, Planted};
use checker::history::{values, Event, EventType};
use checker::{check_run, Anomaly, Results, Validity};
use common::*;

fn planted_run(plant: Plant, seed: u64) -> (Planted, Results) {
    let opt = GenOptions {
        seed,
        events: 4_000,
        ..GenOptions::default()
    };
    let mut run = gen::generate(&opt);
    let planted = run
        .plant(plant)
        .unwrap_or_else(|e| panic!("{e} (seed {seed})"));
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    (planted, check_run(dir.path()).unwrap())
}

/// Whether `a` points at what was planted.
fn names(a: &Anomaly, p: &Planted) -> bool {
    let indices_ok = match (p.indices.first(), p.indices.last()) {
        (Some(first), Some(last)) => a.indices.contains(first) && a.indices.contains(last),
        _ => true,
    };
    let slot_ok = !p.indices.is_empty() || p.exec_index.is_none_or(|e| a.exec_indices.contains(&e));
    indices_ok && slot_ok && !a.message.is_empty()
}

fn assert_caught(plant: Plant) {
    for seed in [1, 2, 3] {
        let (planted, r) = planted_run(plant, seed);
        let check = r.check(plant.check()).unwrap();
        assert_eq!(
            r.valid,
            Validity::Invalid,
            "{plant:?} seed {seed}: {}",
            r.summary()
        );
        assert_eq!(
            check.valid,
            Validity::Invalid,
            "{plant:?} seed {seed}: {}",
            r.summary()
        );
        assert!(
            check.anomalies.iter().any(|a| names(a, &planted)),
            "{plant:?} seed {seed}: no anomaly names {planted:?}:\n{:#?}",
            check.anomalies
        );
        assert_eq!(r.exit_code(), 1);
    }
}

#[test]
fn lost_acknowledged_transfer() {
    assert_caught(Plant::LostAck);
}

#[test]
fn transfer_applied_twice() {
    assert_caught(Plant::DoubleApply);
}

#[test]
fn failed_transfer_that_was_applied() {
    assert_caught(Plant::FailedApplied);
}

#[test]
fn phantom_command() {
    assert_caught(Plant::Phantom);
}

#[test]
fn replicas_diverge_at_one_slot() {
    assert_caught(Plant::Divergence);
}

#[test]
fn exec_order_contradicts_real_time() {
    assert_caught(Plant::RealTimeViolation);
}

#[test]
fn read_returns_a_wrong_balance() {
    assert_caught(Plant::WrongRead);
}

#[test]
fn sum_drifts() {
    assert_caught(Plant::SumDrift);
}

#[test]
fn negative_balance() {
    assert_caught(Plant::NegativeBalance);
}

#[test]
fn plants_leave_the_other_checks_alone_where_they_can() {
    // These plants break exactly one property.
    for plant in [
        Plant::DoubleApply,
        Plant::FailedApplied,
        Plant::Phantom,
        Plant::Divergence,
        Plant::RealTimeViolation,
    ] {
        let (_, r) = planted_run(plant, 1);
        for (name, c) in r.ordered_checks() {
            if name != plant.check() {
                assert_eq!(
                    c.valid,
                    Validity::Valid,
                    "{plant:?} also tripped {name}: {}",
                    r.summary()
                );
            }
        }
    }
}

/// A hand-written history: the smallest real-time violation, with exact indices.
#[test]
fn real_time_violation_names_both_operations() {
    let dir = tempfile::tempdir().unwrap();
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),           // 0
        ok_transfer(1, 1, ("A", "B", 3), (6, 14), 2), // 1: completes first...
        invoke_transfer(2, 1, "A", "B", 1),           // 2: ...before this one starts
        ok_transfer(2, 1, ("A", "B", 1), (9, 11), 1), // 3: yet got the smaller index
    ];
    let log = [
        transfer_entry(1, 2, 1, ("A", "B", 1), (9, 11)),
        transfer_entry(2, 1, 1, ("A", "B", 3), (6, 14)),
    ];
    let fin = final_state(&["n1", "n2", "n3"], &log, &[("A", 6), ("B", 14)]);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    let to = r.check("total-order").unwrap();
    assert_eq!(to.anomaly_count, 1, "{}", r.summary());
    let a = &to.anomalies[0];
    assert_eq!(a.kind, "real-time-order");
    assert_eq!(a.indices, vec![0, 1, 2, 3]);
    assert!(
        a.message
            .contains("completed at history index 1 before it was invoked at 2"),
        "{}",
        a.message
    );
    // Everything else about this run is fine.
    assert_eq!(
        r.check("replay").unwrap().valid,
        Validity::Valid,
        "{}",
        r.summary()
    );
    assert_eq!(r.check("exactly-once").unwrap().valid, Validity::Valid);
}

#[test]
fn info_operation_executed_twice_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let t = values::transfer("A", "B", 2);
    let events = [
        invoke_transfer(1, 1, "A", "B", 2),
        Event::client(EventType::Info, 1, 1, "transfer", t.clone()),
        invoke_transfer(1, 1, "A", "B", 2), // a retry reuses the request id
        Event::client(EventType::Info, 1, 1, "transfer", t),
    ];
    let log = [
        transfer_entry(1, 1, 1, ("A", "B", 2), (8, 12)),
        transfer_entry(2, 1, 1, ("A", "B", 2), (6, 14)),
    ];
    let fin = final_state(&["n1"], &log, &[("A", 6), ("B", 14)]);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    let eo = r.check("exactly-once").unwrap();
    assert_eq!(eo.anomaly_count, 1, "{}", r.summary());
    assert_eq!(eo.anomalies[0].kind, "executed-twice");
    assert_eq!(eo.anomalies[0].exec_indices, vec![1, 2]);
    assert_eq!(eo.anomalies[0].indices, vec![0, 3]);
}

#[test]
fn insufficient_funds_fail_is_a_no_op_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fail = values::transfer_fail("A", "B", 11, values::INSUFFICIENT_FUNDS);
    let events = [
        invoke_transfer(1, 1, "A", "B", 11),
        Event::client(EventType::Fail, 1, 1, "transfer", fail.clone()).with_exec_index(1),
        Event::invoke(2, 1, "read_all", serde_json::Value::Null),
        Event::client(
            EventType::Ok,
            2,
            1,
            "read_all",
            values::read_all_ok([("A", 10), ("B", 10)]),
        )
        .with_exec_index(2),
    ];
    let log = [
        entry(1, 1, 1, "transfer", fail, EventType::Fail),
        entry(
            2,
            2,
            1,
            "read_all",
            values::read_all_ok([("B", 10), ("A", 10)]),
            EventType::Ok,
        ),
    ];
    let fin = final_state(&["n1", "n2"], &log, &[("A", 10), ("B", 10)]);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
}
