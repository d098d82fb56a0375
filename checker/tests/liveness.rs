//! The liveness contract: after the last `stable` nemesis event, every operation gets
//! a definite answer within run.toml's `liveness_bound_ms`; when either is missing the
//! check does not apply (valid, with a note).

mod common;

use checker::history::{values, Event, EventType, HistoryWriter};
use checker::{check_run, Results, Validity};
use common::*;
use serde_json::Value;

const MS: u64 = 1_000_000;

fn toml_with_bound(bound: &str) -> String {
    format!("{RUN_TOML_TOP}liveness_bound_ms = {bound}\n")
}

/// run.toml's top-level keys without the trailing table of the common one.
const RUN_TOML_TOP: &str = "seed = 1\naccounts = [\"A\", \"B\"]\ninitial_balance = 10\n";

/// Writes `(time in ms, event)` pairs as the history, with a log that holds the
/// one transfer of the scenarios, and checks the run.
fn run(events: &[(u64, Event)], run_toml: &str) -> Results {
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

fn stable() -> Event {
    Event::nemesis("stable", Value::Null)
}

/// Client 1's transfer is invoked during a fault and answered at `answered_ms`;
/// client 2's read is invoked and answered after the heal at 10 ms.
fn scenario(answered_ms: u64) -> Vec<(u64, Event)> {
    vec![
        (0, Event::nemesis("partition", Value::Null)),
        (1, invoke_transfer(1, 1, "A", "B", 3)),
        (10, stable()),
        (20, Event::invoke(2, 1, "read", values::read("A"))),
        (
            30,
            Event::client(EventType::Fail, 2, 1, "read", values::read("A")),
        ),
        (answered_ms, ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1)),
        (400, Event::nemesis("noop", Value::Null)),
    ]
}

#[test]
fn an_operation_answered_in_time_is_live() {
    let r = run(&scenario(90), &toml_with_bound("100"));
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    let l = r.check("liveness").unwrap();
    assert_eq!(l.counts["operations watched"], 2);
    assert_eq!(l.counts["answered in time"], 2);
}

#[test]
fn an_operation_answered_late_is_a_stall() {
    let r = run(&scenario(300), &toml_with_bound("100"));
    assert_eq!(r.valid, Validity::Invalid, "{}", r.summary());
    let l = r.check("liveness").unwrap();
    assert_eq!(l.valid, Validity::Invalid);
    assert_eq!(l.anomaly_count, 1);
    let a = &l.anomalies[0];
    assert_eq!(a.kind, "stall");
    assert_eq!(a.indices, [1, 5]);
    for words in ["transfer A->B 3 by client 1", "history index 1", "290 ms"] {
        assert!(a.message.contains(words), "{words}: {}", a.message);
    }
    // Every other check is content.
    for (name, c) in r.ordered_checks().filter(|(n, _)| *n != "liveness") {
        assert_eq!(c.valid, Validity::Valid, "{name}: {}", r.summary());
    }
}

#[test]
fn a_timeout_after_the_heal_is_a_stall_even_within_the_bound() {
    let mut events = scenario(90);
    events[4].1 = Event::client(EventType::Info, 2, 1, "read", values::read("A"));
    let r = run(&events, &toml_with_bound("100"));
    let l = r.check("liveness").unwrap();
    assert_eq!(l.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(l.anomalies[0].indices, [3, 4]);
    assert!(
        l.anomalies[0].message.contains("info"),
        "{}",
        l.anomalies[0].message
    );
}

#[test]
fn no_answer_is_a_stall_only_once_the_history_passes_the_deadline() {
    let mut events = scenario(90);
    events.insert(6, (200, Event::invoke(3, 1, "read", values::read("B"))));
    // The history ends at 400 ms, past the deadline of 300 ms.
    let r = run(&events, &toml_with_bound("100"));
    let l = r.check("liveness").unwrap();
    assert_eq!(l.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(l.anomalies[0].indices, [6]);
    assert!(
        l.anomalies[0].message.contains("never"),
        "{}",
        l.anomalies[0].message
    );
    // With a bound of 250 ms the deadline (450 ms) lies beyond the last event.
    let r = run(&events, &toml_with_bound("250"));
    let l = r.check("liveness").unwrap();
    assert_eq!(l.valid, Validity::Valid, "{}", r.summary());
    assert_eq!(
        l.counts["pending past the end of the history, not judged"],
        1
    );
}

#[test]
fn only_the_last_stable_event_counts() {
    let mut events = scenario(300);
    // Another fault and heal after the late answer: judged from 350 ms on, it is fine.
    events.insert(6, (340, Event::nemesis("kill", Value::Null)));
    events.insert(7, (350, stable()));
    let r = run(&events, &toml_with_bound("100"));
    assert_eq!(
        r.check("liveness").unwrap().valid,
        Validity::Valid,
        "{}",
        r.summary()
    );
}

#[test]
fn without_a_stable_event_or_a_bound_it_does_not_apply() {
    let mut events = scenario(300);
    events[2].1 = Event::nemesis("heal", Value::Null);
    for (events, toml) in [
        (events, toml_with_bound("100")),
        (scenario(300), RUN_TOML_TOP.to_string()),
        (scenario(300), toml_with_bound("\"soon\"")),
        (scenario(300), toml_with_bound("-5")),
    ] {
        let r = run(&events, &toml);
        let l = r.check("liveness").unwrap();
        assert_eq!(l.valid, Validity::Valid, "{toml}: {}", r.summary());
        assert_eq!(l.anomaly_count, 0);
        assert!(l.notes[0].starts_with("not applicable"), "{:?}", l.notes);
        assert_eq!(r.valid, Validity::Valid, "{toml}: {}", r.summary());
    }
}
