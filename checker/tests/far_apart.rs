//! Anomalies and valid cases whose two ends lie far apart in the history or the log: an
//! operation whose position comes long after its answer, a duplicate thousands of
//! positions from its first execution, a replica whose log stops far behind the others.
//! A checker that keeps only a window of the run in memory must still judge these as
//! one that keeps all of it does.

mod common;

use checker::final_state::{ExecutedEntry, FinalState};
use checker::history::{values, Event, EventType};
use checker::{check_run_as, check_run_with, CheckOptions, Judging, Memory, Results, Validity};
use common::*;

/// Positions between the two ends of each case.
const FAR: u64 = 3_000;

/// Client 1's `n` transfers of 1, A->B then B->A in turn, from balances (10, 10): request
/// `k` is told and logged at exec index `first_exec + k - 1`. Returns the history
/// events, the log entries and the balances after them.
fn back_and_forth(n: u64, first_exec: u64, start: (i64, i64)) -> (Vec<Event>, Vec<ExecutedEntry>) {
    let (mut a, mut b) = start;
    let (mut events, mut log) = (Vec::new(), Vec::new());
    for k in 1..=n {
        let (from, to) = if k % 2 == 1 { ("A", "B") } else { ("B", "A") };
        if k % 2 == 1 {
            (a, b) = (a - 1, b + 1);
        } else {
            (a, b) = (a + 1, b - 1);
        }
        let after = if from == "A" { (a, b) } else { (b, a) };
        let exec = first_exec + k - 1;
        events.push(invoke_transfer(1, k, from, to, 1));
        events.push(ok_transfer(1, k, (from, to, 1), after, exec));
        log.push(transfer_entry(exec, 1, k, (from, to, 1), after));
    }
    (events, log)
}

/// Client 2's transfer A->B 5, invoked and timed out (`info`) before anything else.
fn timed_out_first() -> Vec<Event> {
    let t = values::transfer("A", "B", 5);
    vec![
        invoke_transfer(2, 1, "A", "B", 5),
        Event::client(EventType::Info, 2, 1, "transfer", t),
    ]
}

/// Checks the run the lean way (the streamed check, then the full one for what it hands
/// back), and holds the full check (every record held) to the same results: the streamed
/// one must judge these alike or hand them back.
fn check(events: &[Event], fin: &FinalState) -> Results {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), events, Some(fin), Some(RUN_TOML));
    let with = |memory| CheckOptions {
        memory,
        ..CheckOptions::default()
    };
    let r = check_run_with(dir.path(), with(Memory::Lean)).unwrap();
    let classic = check_run_with(dir.path(), with(Memory::Fast)).unwrap();
    let comparable = |r: &Results| Results {
        elapsed_ms: 0,
        ..r.clone()
    };
    assert_eq!(comparable(&r), comparable(&classic));
    r
}

/// Whether the streamed check judges the run itself (rather than handing it back).
fn judged_streamed(events: &[Event], fin: &FinalState) -> bool {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), events, Some(fin), Some(RUN_TOML));
    check_run_as(dir.path(), CheckOptions::default(), Judging::Streamed)
        .unwrap()
        .is_some()
}

/// A timed-out transfer that executes thousands of positions after its answer: valid,
/// and exactly-once finds it in the log.
#[test]
fn timed_out_transfer_executed_far_after_its_answer_is_valid() {
    let mut events = timed_out_first();
    let (filler, mut log) = back_and_forth(FAR, 1, (10, 10));
    events.extend(filler);
    log.push(transfer_entry(FAR + 1, 2, 1, ("A", "B", 5), (5, 15)));
    let fin = final_state(&["n1", "n2", "n3"], &log, &[("A", 5), ("B", 15)]);
    let r = check(&events, &fin);
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    // Valid, so the streamed check judges it itself: the timed-out transfer is found by
    // its key long after its client moved on, and real time through its floor.
    assert!(judged_streamed(&events, &fin));
    let eo = r.check("exactly-once").unwrap();
    assert_eq!(
        eo.counts.get("timed-out operations executed"),
        Some(&1),
        "{eo:?}"
    );
    let replay = r.check("replay").unwrap();
    assert_eq!(
        replay.counts.get("log entries replayed"),
        Some(&(FAR + 1)),
        "{replay:?}"
    );
}

/// The same timed-out transfer executed at position 1 and again thousands of positions
/// later: executed twice, naming both positions.
#[test]
fn duplicate_thousands_of_positions_apart_is_executed_twice() {
    let mut events = timed_out_first();
    let (filler, rest) = back_and_forth(FAR, 2, (5, 15));
    events.extend(filler);
    let mut log = vec![transfer_entry(1, 2, 1, ("A", "B", 5), (5, 15))];
    log.extend(rest);
    let last = FAR + 2;
    log.push(transfer_entry(last, 2, 1, ("A", "B", 5), (0, 20)));
    let fin = final_state(&["n1", "n2", "n3"], &log, &[("A", 0), ("B", 20)]);
    let r = check(&events, &fin);
    let eo = r.check("exactly-once").unwrap();
    assert_eq!(eo.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(eo.anomaly_count, 1, "{:?}", eo.anomalies);
    let a = &eo.anomalies[0];
    assert_eq!(a.kind, "executed-twice");
    assert_eq!(a.exec_indices, vec![1, last]);
    assert_eq!(a.indices, vec![0, 1]);
    // Everything but the duplicate replays as the clients saw it.
    assert_eq!(r.check("replay").unwrap().valid, Validity::Valid);
}

/// An `ok` told a position thousands of places after the operations invoked once it
/// had completed: every one of them breaks real-time order, the first named exactly.
#[test]
fn answer_told_a_position_far_ahead_breaks_real_time_order() {
    let mut events = vec![
        invoke_transfer(2, 1, "A", "B", 5),
        ok_transfer(2, 1, ("A", "B", 5), (5, 15), FAR + 1),
    ];
    let (filler, mut log) = back_and_forth(FAR, 1, (10, 10));
    events.extend(filler);
    log.push(transfer_entry(FAR + 1, 2, 1, ("A", "B", 5), (5, 15)));
    let fin = final_state(&["n1", "n2", "n3"], &log, &[("A", 5), ("B", 15)]);
    let r = check(&events, &fin);
    let to = r.check("total-order").unwrap();
    assert_eq!(to.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(to.anomaly_count, FAR, "{}", r.summary());
    let a = &to.anomalies[0];
    assert_eq!(a.kind, "real-time-order");
    assert_eq!(a.indices, vec![0, 1, 2, 3], "{}", a.message);
    assert_eq!(r.check("exactly-once").unwrap().valid, Validity::Valid);
    assert_eq!(r.check("replay").unwrap().valid, Validity::Valid);
}

/// Three replicas hold the whole log; `n3` stops ten positions in, with the balances
/// of that point. It agrees, unless its early entries or balances differ.
#[test]
fn replica_far_behind_is_compared_where_it_stops() {
    let (events, log) = back_and_forth(FAR, 1, (10, 10));
    let lagging = |entries: Vec<ExecutedEntry>, balances: &[(&str, i64)]| {
        let mut fin = final_state(&["n1", "n2", "n4"], &log, &[("A", 10), ("B", 10)]);
        let n3 = final_state(&["n3"], &entries, balances).nodes;
        fin.nodes.extend(n3);
        fin
    };
    let r = check(
        &events,
        &lagging(log[..10].to_vec(), &[("A", 10), ("B", 10)]),
    );
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());

    let mut diverged = log[..10].to_vec();
    diverged[6] = transfer_entry(7, 1, 7, ("A", "B", 2), (8, 12));
    let r = check(&events, &lagging(diverged, &[("A", 10), ("B", 10)]));
    let agreement = r.check("agreement").unwrap();
    assert_eq!(agreement.valid, Validity::Invalid, "{}", r.summary());
    assert!(
        agreement
            .anomalies
            .iter()
            .any(|a| a.exec_indices == [7] && a.message.contains("n3")),
        "{:?}",
        agreement.anomalies
    );

    let r = check(
        &events,
        &lagging(log[..10].to_vec(), &[("A", 9), ("B", 11)]),
    );
    let agreement = r.check("agreement").unwrap();
    assert_eq!(agreement.valid, Validity::Invalid, "{}", r.summary());
    assert!(
        agreement.anomalies.iter().any(|a| a.message.contains("n3")),
        "{:?}",
        agreement.anomalies
    );
}

/// Client 2's request 1 executes at position 1; thousands of operations later client 2
/// sends request 1 again (a reused request id, long after the first was answered) and
/// it executes a second time at the end of the log. The two answers of one request lie
/// at the two ends of the history: exactly-once finds both positions in the log, and
/// total order names the late answer that was told a second position.
#[test]
fn request_reused_thousands_of_operations_later_is_executed_twice() {
    let mut events = vec![
        invoke_transfer(2, 1, "A", "B", 5),
        ok_transfer(2, 1, ("A", "B", 5), (5, 15), 1),
    ];
    let (filler, rest) = back_and_forth(FAR, 2, (5, 15));
    events.extend(filler);
    let last = FAR + 2;
    let again = events.len() as u64;
    events.push(invoke_transfer(2, 1, "A", "B", 5));
    events.push(ok_transfer(2, 1, ("A", "B", 5), (0, 20), last));
    let mut log = vec![transfer_entry(1, 2, 1, ("A", "B", 5), (5, 15))];
    log.extend(rest);
    log.push(transfer_entry(last, 2, 1, ("A", "B", 5), (0, 20)));
    let fin = final_state(&["n1", "n2", "n3"], &log, &[("A", 0), ("B", 20)]);
    let r = check(&events, &fin);
    let eo = r.check("exactly-once").unwrap();
    assert_eq!(eo.valid, Validity::Invalid, "{}", r.summary());
    let a = eo
        .anomalies
        .iter()
        .find(|a| a.kind == "executed-twice")
        .unwrap_or_else(|| panic!("{:?}", eo.anomalies));
    assert_eq!(a.exec_indices, vec![1, last]);
    assert_eq!(a.indices, vec![0, 1], "the first answer frames the request");
    let to = r.check("total-order").unwrap();
    let conflict = to
        .anomalies
        .iter()
        .find(|a| a.kind == "exec-index-conflict")
        .unwrap_or_else(|| panic!("{:?}", to.anomalies));
    assert_eq!(conflict.exec_indices, vec![1, last]);
    assert!(
        conflict.indices.contains(&0) && conflict.indices.contains(&(again + 1)),
        "both ends of the history are named: {:?}",
        conflict.indices
    );
}

/// A read at the very end of the history told position 2, thousands of positions
/// behind what had completed before it was invoked: the two operations told position 2
/// lie at the two ends of the history, and both the duplicate position and the stale
/// read are found.
#[test]
fn read_told_a_position_far_behind_shares_it_with_an_old_transfer() {
    let (mut events, log) = back_and_forth(FAR, 1, (10, 10));
    let read = events.len() as u64;
    events.push(Event::invoke(3, 1, "read", values::read("A")));
    events.push(
        Event::client(EventType::Ok, 3, 1, "read", values::read_ok("A", 10))
            .on_node("n1")
            .with_exec_index(2),
    );
    let fin = final_state(&["n1", "n2", "n3"], &log, &[("A", 10), ("B", 10)]);
    let r = check(&events, &fin);
    let to = r.check("total-order").unwrap();
    assert_eq!(to.valid, Validity::Invalid, "{}", r.summary());
    assert!(
        to.anomalies.iter().any(|a| a.kind == "real-time-order"),
        "{:?}",
        to.anomalies
    );
    let dup = to
        .anomalies
        .iter()
        .find(|a| a.kind == "duplicate-exec-index")
        .unwrap_or_else(|| panic!("{:?}", to.anomalies));
    assert_eq!(dup.exec_indices, vec![2]);
    assert!(
        dup.indices.contains(&2) && dup.indices.contains(&read),
        "both ends of the history are named: {:?}",
        dup.indices
    );
}
