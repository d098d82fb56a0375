//! Histories and logs that a buggy system (or harness) could produce, which the checker
//! must not take on faith: sentinel-like numbers, amounts that wrap, malformed
//! operation structure, commands swapped under a known key.

mod common;

use checker::history::{values, Event, EventType};
use checker::{check_run, Results, Validity};
use common::*;
use serde_json::Value;

fn check(
    events: &[Event],
    log: &[checker::final_state::ExecutedEntry],
    balances: &[(&str, i64)],
    run_toml: &str,
) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let fin = final_state(&["n1", "n2"], log, balances);
    write_run(dir.path(), events, Some(&fin), Some(run_toml));
    check_run(dir.path()).unwrap()
}

fn kinds(r: &Results, check: &str) -> Vec<String> {
    r.check(check)
        .unwrap()
        .anomalies
        .iter()
        .map(|a| a.kind.clone())
        .collect()
}

#[test]
fn a_read_of_i64_min_is_a_negative_balance_not_an_absent_one() {
    let events = [
        Event::invoke(1, 1, "read", values::read("A")),
        Event::client(EventType::Ok, 1, 1, "read", values::read_ok("A", i64::MIN))
            .with_exec_index(1),
    ];
    let log = [entry(
        1,
        1,
        1,
        "read",
        values::read_ok("A", 10),
        EventType::Ok,
    )];
    let r = check(&events, &log, &[("A", 10), ("B", 10)], RUN_TOML);
    assert_eq!(r.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(kinds(&r, "conservation"), ["negative-balance"]);
    assert_eq!(kinds(&r, "replay"), ["wrong-result"]);
}

#[test]
fn non_positive_amounts_in_the_log_are_anomalies() {
    for amount in [0, -3] {
        let events = [
            invoke_transfer(1, 1, "A", "B", amount),
            ok_transfer(1, 1, ("A", "B", amount), (10 - amount, 10 + amount), 1),
        ];
        let log = [transfer_entry(
            1,
            1,
            1,
            ("A", "B", amount),
            (10 - amount, 10 + amount),
        )];
        let r = check(
            &events,
            &log,
            &[("A", 10 - amount), ("B", 10 + amount)],
            RUN_TOML,
        );
        assert_eq!(r.valid, Validity::Invalid, "{amount}: {}", r.summary());
        let replay = r.check("replay").unwrap();
        assert_eq!(kinds(&r, "replay"), ["bad-amount"], "{amount}");
        assert_eq!(replay.anomalies[0].exec_indices, [1]);
    }
}

#[test]
fn an_amount_of_i64_min_is_reported_not_wrapped() {
    let events = [
        invoke_transfer(1, 1, "A", "B", i64::MIN),
        Event::client(
            EventType::Info,
            1,
            1,
            "transfer",
            values::transfer("A", "B", i64::MIN),
        ),
    ];
    let log = [transfer_entry(1, 1, 1, ("A", "B", i64::MIN), (10, 10))];
    let r = check(&events, &log, &[("A", 10), ("B", 10)], RUN_TOML);
    assert_eq!(r.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(kinds(&r, "replay"), ["bad-amount"]);
}

#[test]
fn an_initial_balance_of_i64_max_does_not_wrap() {
    let max = i64::MAX;
    let toml = format!("accounts = [\"A\", \"B\"]\ninitial_balance = {max}\n");
    let events = [
        Event::invoke(1, 1, "read_all", Value::Null),
        Event::client(
            EventType::Ok,
            1,
            1,
            "read_all",
            values::read_all_ok([("A", max), ("B", max)]),
        )
        .with_exec_index(1),
        invoke_transfer(2, 1, "A", "B", 1),
        Event::client(
            EventType::Info,
            2,
            1,
            "transfer",
            values::transfer("A", "B", 1),
        ),
    ];
    let log = [
        entry(
            1,
            1,
            1,
            "read_all",
            values::read_all_ok([("A", max), ("B", max)]),
            EventType::Ok,
        ),
        transfer_entry(2, 2, 1, ("A", "B", 1), (max - 1, max)),
    ];
    let r = check(&events, &log, &[("A", max - 1), ("B", max)], &toml);
    let cons = r.check("conservation").unwrap();
    assert_eq!(cons.valid, Validity::Invalid, "{}", r.summary());
    // The read_all sums to 2 x i64::MAX, which is the total: only the final state,
    // one short of it, drifts.
    assert_eq!(cons.anomaly_count, 2, "{:#?}", cons.anomalies);
    assert!(
        cons.anomalies.iter().all(|a| a.indices.is_empty()),
        "{:#?}",
        cons.anomalies
    );
    let replay = r.check("replay").unwrap();
    assert_eq!(replay.valid, Validity::Unknown, "{}", r.summary());
    assert!(
        replay.unknown[0].contains("exec_index 2"),
        "{:?}",
        replay.unknown
    );
}
