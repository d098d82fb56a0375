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
        .map(|a| a.kind.tag().to_string())
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

/// A valid transfer by client 1 (history lines 1-2, log slot 1), to build on.
fn base() -> (Vec<Event>, Vec<checker::final_state::ExecutedEntry>) {
    (
        vec![
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1),
        ],
        vec![transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13))],
    )
}

fn rejected(p: u64, rid: u64, from: &str, to: &str, amount: i64) -> Event {
    Event::client(
        EventType::Fail,
        p,
        rid,
        "transfer",
        values::transfer_fail(from, to, amount, "not-leader"),
    )
}

/// The run is unknown only because of the well-formed check, whose one anomaly is
/// `kind` and names `line`.
fn assert_malformed(r: &Results, kind: &str, line: &str) {
    assert_eq!(r.valid, Validity::Unknown, "{}", r.summary());
    let wf = r.check("well-formed").unwrap();
    assert_eq!(wf.valid, Validity::Unknown);
    assert_eq!(wf.anomalies.len(), 1, "{:#?}", wf.anomalies);
    assert_eq!(wf.anomalies[0].kind, kind);
    assert!(
        wf.anomalies[0].message.contains(line),
        "{}",
        wf.anomalies[0].message
    );
}

#[test]
fn a_completion_without_invocation_is_malformed() {
    let (mut events, log) = base();
    events.push(rejected(2, 1, "B", "A", 1));
    let r = check(&events, &log, &[("A", 7), ("B", 13)], RUN_TOML);
    assert_malformed(&r, "completion-without-invoke", "line 3 (history index 2)");
}

#[test]
fn a_second_completion_is_malformed() {
    let (mut events, log) = base();
    events.push(ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1));
    let r = check(&events, &log, &[("A", 7), ("B", 13)], RUN_TOML);
    assert_malformed(&r, "duplicate-completion", "line 3 (history index 2)");
    assert_eq!(r.check("well-formed").unwrap().anomalies[0].indices, [1, 2]);
}

#[test]
fn two_operations_in_flight_on_one_process_are_malformed() {
    let (events, log) = base();
    let events = vec![
        events[0].clone(),
        invoke_transfer(1, 2, "B", "A", 1),
        events[1].clone(),
        rejected(1, 2, "B", "A", 1),
    ];
    let r = check(&events, &log, &[("A", 7), ("B", 13)], RUN_TOML);
    assert_malformed(&r, "overlapping-operations", "line 2 (history index 1)");
    assert!(r.check("well-formed").unwrap().anomalies[0]
        .message
        .contains("line 1 (history index 0)"));
}

#[test]
fn a_retry_with_another_command_is_malformed() {
    let events = vec![
        invoke_transfer(1, 1, "A", "B", 3),
        Event::client(
            EventType::Info,
            1,
            1,
            "transfer",
            values::transfer("A", "B", 3),
        ),
        invoke_transfer(1, 1, "A", "B", 5),
        Event::client(
            EventType::Info,
            1,
            1,
            "transfer",
            values::transfer("A", "B", 5),
        ),
    ];
    // The log executed the retry's command: the history cannot say whether that is
    // what the request meant, so this is unknown, not a command mismatch.
    let log = [transfer_entry(1, 1, 1, ("A", "B", 5), (5, 15))];
    let r = check(&events, &log, &[("A", 5), ("B", 15)], RUN_TOML);
    assert_eq!(r.valid, Validity::Unknown, "{}", r.summary());
    let wf = r.check("well-formed").unwrap();
    assert_eq!(wf.anomalies[0].kind, "retry-changed-command");
    assert!(wf.anomalies[0].message.contains("line 3 (history index 2)"));
    assert!(wf.anomalies[0].message.contains("transfer A->B 5"));
    assert_eq!(r.check("exactly-once").unwrap().valid, Validity::Unknown);
}

#[test]
fn a_log_entry_must_hold_the_invoked_command_not_just_its_key() {
    // A timed-out transfer A->B 3 that the log holds, under its key, as B->A 3.
    let events = vec![
        invoke_transfer(1, 1, "A", "B", 3),
        Event::client(
            EventType::Info,
            1,
            1,
            "transfer",
            values::transfer("A", "B", 3),
        ),
    ];
    let log = [transfer_entry(1, 1, 1, ("B", "A", 3), (7, 13))];
    let r = check(&events, &log, &[("A", 13), ("B", 7)], RUN_TOML);
    assert_eq!(r.valid, Validity::Invalid, "{}", r.summary());
    let eo = r.check("exactly-once").unwrap();
    assert_eq!(kinds(&r, "exactly-once"), ["command-mismatch"]);
    assert_eq!(eo.anomalies[0].exec_indices, [1]);
    assert_eq!(eo.anomalies[0].indices, [0, 1]);
}

#[test]
fn an_ok_read_without_exec_index_is_replayed_where_the_log_holds_it() {
    // The system forgot to tell the read's position; the read is stale all the same.
    let (mut events, mut log) = base();
    events.push(Event::invoke(2, 1, "read", values::read("A")));
    events.push(Event::client(
        EventType::Ok,
        2,
        1,
        "read",
        values::read_ok("A", 10),
    ));
    log.push(entry(
        2,
        2,
        1,
        "read",
        values::read_ok("A", 7),
        EventType::Ok,
    ));
    let r = check(&events, &log, &[("A", 7), ("B", 13)], RUN_TOML);
    assert_eq!(r.valid, Validity::Invalid, "{}", r.summary());
    let replay = r.check("replay").unwrap();
    assert_eq!(kinds(&r, "replay"), ["wrong-result"]);
    assert_eq!(replay.anomalies[0].indices, [2, 3]);
    assert!(replay.anomalies[0].message.contains("returned 10"));
}
