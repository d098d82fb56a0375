//! Sharded histories written by hand in the docs/sharded.md shape, as a new system
//! might produce them: each anomaly class a real sharded run could hide is caught, and
//! each malformed shape makes the verdict `unknown` with its line number, never valid.
//!
//! Every test starts from a valid generated run and changes one thing in its files.

use checker::gen::shards::generate;
use checker::gen::GenOptions;
use checker::{check_run, Results, Validity};
use serde_json::{json, Value};
use std::path::Path;

/// A valid 3-shard run written to a fresh directory.
fn base() -> tempfile::TempDir {
    let run = generate(&GenOptions::sharded(7, 3_000, 8, 3, 0.5));
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    dir
}

fn history(dir: &Path) -> Vec<Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn write_history(dir: &Path, events: &[Value]) {
    let text: String = events.iter().map(|e| format!("{e}\n")).collect();
    std::fs::write(dir.join("history.jsonl"), text).unwrap();
}

fn final_json(dir: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir.join("final.json")).unwrap()).unwrap()
}

/// Changes the first history event `pick` accepts with `change`; returns its line
/// (1-based) and index.
fn change_event(
    dir: &Path,
    pick: impl Fn(&Value) -> bool,
    change: impl FnOnce(&mut Value),
) -> (u64, u64) {
    let mut events = history(dir);
    let at = events.iter().position(pick).expect("an event to change");
    change(&mut events[at]);
    let index = events[at]["index"].as_u64().unwrap();
    write_history(dir, &events);
    (at as u64 + 1, index)
}

/// Appends client 99's events (index and time filled in) to the history; returns the
/// lines (1-based) and indices they got.
fn append(dir: &Path, new: &[Value]) -> Vec<(u64, u64)> {
    let mut events = history(dir);
    let last = events.last().unwrap().clone();
    let (mut index, mut t) = (
        last["index"].as_u64().unwrap(),
        last["time_ns"].as_u64().unwrap(),
    );
    let mut at = Vec::new();
    for e in new {
        index += 1;
        t += 1_000;
        let mut e = e.clone();
        e["index"] = json!(index);
        e["time_ns"] = json!(t);
        events.push(e);
        at.push((events.len() as u64, index));
    }
    write_history(dir, &events);
    at
}

fn is_ok(f: &str) -> impl Fn(&Value) -> bool + '_ {
    move |e| e["type"] == "ok" && e["f"] == f
}

fn single_shard_ok_transfer(e: &Value) -> bool {
    is_ok("transfer")(e) && e["positions"].as_object().is_some_and(|p| p.len() == 1)
}

/// A 3-shard run's first shard's two accounts that end with the most money.
fn rich_pair(dir: &Path) -> (String, String, i64) {
    let fin = final_json(dir);
    let node = fin["nodes"]
        .as_object()
        .unwrap()
        .values()
        .find(|n| n["shard"] == 1)
        .unwrap();
    let mut b: Vec<(String, i64)> = node["balances"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(a, v)| (a.clone(), v.as_i64().unwrap()))
        .collect();
    b.sort_by_key(|(_, v)| -v);
    (b[0].0.clone(), b[1].0.clone(), b[0].1)
}

/// Appends `entry` to shard 1's log, on its replicas that hold all of it (the others
/// lag); returns its exec index.
fn append_to_shard_1(dir: &Path, mut entry: Value) -> u64 {
    let mut fin = final_json(dir);
    let last = |n: &Value| {
        n["executed"]
            .as_array()
            .and_then(|l| l.last())
            .map_or(0, |e| e["exec_index"].as_u64().unwrap())
    };
    let nodes = fin["nodes"].as_object_mut().unwrap();
    let end = nodes.values().filter(|n| n["shard"] == 1).map(last).max();
    let at = end.unwrap() + 1;
    entry["exec_index"] = json!(at);
    for n in nodes.values_mut() {
        if n["shard"] == 1 && last(n) + 1 == at {
            n["executed"].as_array_mut().unwrap().push(entry.clone());
        }
    }
    std::fs::write(dir.join("final.json"), fin.to_string()).unwrap();
    at
}

fn check(dir: &Path) -> Results {
    check_run(dir).unwrap()
}

/// `check` is invalid with an anomaly of `kind` that names `index` and says `words`.
fn assert_invalid(r: &Results, check: &str, kind: &str, index: u64, words: &str) {
    let c = &r.checks[check];
    assert_eq!(c.valid, Validity::Invalid, "{check}: {c:#?}");
    assert_eq!(r.valid, Validity::Invalid);
    let a = c
        .anomalies
        .iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {:#?}", c.anomalies));
    assert!(a.indices.contains(&index), "index {index} not in {a:?}");
    assert!(a.message.contains(words), "{words:?} not in {}", a.message);
}

/// A transfer answered `fail` with `error` and its position, where the log applied it.
fn told_failed_but_applied(error: &str) {
    let dir = base();
    let (_, index) = change_event(dir.path(), single_shard_ok_transfer, |e| {
        e["type"] = json!("fail");
        let v = e["value"].as_object_mut().unwrap();
        v.remove("from_balance");
        v.remove("to_balance");
        v.insert("error".into(), json!(error));
    });
    let r = check(dir.path());
    assert_invalid(
        &r,
        "replay",
        "failed-but-applied",
        index,
        &format!("was told it failed ({error})"),
    );
}

#[test]
fn a_transfer_told_lock_conflict_but_applied_is_caught() {
    told_failed_but_applied("lock-conflict");
}

#[test]
fn a_transfer_told_insufficient_funds_but_applied_is_caught() {
    told_failed_but_applied("insufficient-funds");
}

#[test]
fn a_transfer_refused_for_funds_the_source_had_is_caught() {
    let dir = base();
    let (from, to, balance) = rich_pair(dir.path());
    assert!(balance >= 1);
    let refused = json!({"from": from, "to": to, "amount": 1, "error": "insufficient-funds"});
    let exec = append_to_shard_1(
        dir.path(),
        json!({"client": 99, "request_id": 1, "f": "transfer", "value": refused, "type": "fail"}),
    );
    let at = append(
        dir.path(),
        &[
            json!({"process": 99, "type": "invoke", "f": "transfer", "request_id": 1,
                   "value": {"from": from, "to": to, "amount": 1}}),
            json!({"process": 99, "type": "fail", "f": "transfer", "request_id": 1,
                   "value": refused, "node": "n1", "positions": {"1": exec}}),
        ],
    );
    let r = check(dir.path());
    assert_invalid(
        &r,
        "replay",
        "wrong-result",
        at[1].1,
        &format!("leaves {from} with {balance} there, enough for 1"),
    );
    let c = &r.checks["replay"];
    let log = c.anomalies.iter().find(|a| a.kind == "log-result").unwrap();
    assert!(log.exec_indices.contains(&exec), "{log:?}");
}

#[test]
fn an_ok_read_without_positions_of_more_than_the_bank_is_caught() {
    let dir = base();
    let (account, _, _) = rich_pair(dir.path());
    let at = append(
        dir.path(),
        &[
            json!({"process": 99, "type": "invoke", "f": "read", "request_id": 1,
                   "value": {"account": account}}),
            json!({"process": 99, "type": "ok", "f": "read", "request_id": 1,
                   "value": {"account": account, "balance": 1_000_000}, "node": "n1"}),
        ],
    );
    let r = check(dir.path());
    assert_invalid(
        &r,
        "replay",
        "impossible-result",
        at[1].1,
        "balance 1000000",
    );
    let wf = &r.checks["well-formed"];
    assert!(
        wf.anomalies
            .iter()
            .any(|a| a.kind == "ok-without-position"
                && a.message.contains(&format!("line {}", at[1].0))),
        "{wf:#?}"
    );
}

/// The well-formed check is `unknown` with an anomaly of `kind` naming `line`, and so
/// is the run (nothing else in it is wrong).
fn assert_malformed(r: &Results, kind: &str, line: Option<u64>) {
    let c = r
        .checks
        .get("well-formed")
        .expect("a sharded run has a well-formed check");
    let a = c
        .anomalies
        .iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} in {c:#?}"));
    if let Some(line) = line {
        assert!(a.message.contains(&format!("line {line} ")), "{a:?}");
    }
    assert_eq!(c.valid, Validity::Unknown, "{c:#?}");
    assert_ne!(r.valid, Validity::Valid, "{}", r.summary());
}

#[test]
fn a_valid_sharded_run_is_well_formed() {
    let dir = base();
    let r = check(dir.path());
    assert_eq!(r.checks["well-formed"].valid, Validity::Valid);
    assert_eq!(r.valid, Validity::Valid);
}

#[test]
fn a_duplicate_completion_is_malformed() {
    let dir = base();
    let busy = json!({"process": 99, "type": "fail", "f": "read", "request_id": 1,
                      "value": {"account": "A", "error": "busy"}});
    let at = append(
        dir.path(),
        &[
            json!({"process": 99, "type": "invoke", "f": "read", "request_id": 1,
                   "value": {"account": "A"}}),
            busy.clone(),
            busy,
        ],
    );
    assert_malformed(&check(dir.path()), "duplicate-completion", Some(at[2].0));
}

#[test]
fn a_completion_without_invoke_is_malformed() {
    let dir = base();
    let at = append(
        dir.path(),
        &[
            json!({"process": 99, "type": "fail", "f": "read", "request_id": 1,
                  "value": {"account": "A", "error": "busy"}}),
        ],
    );
    assert_malformed(
        &check(dir.path()),
        "completion-without-invoke",
        Some(at[0].0),
    );
}

#[test]
fn two_operations_in_flight_on_one_client_are_malformed() {
    let dir = base();
    let at = append(
        dir.path(),
        &[
            json!({"process": 99, "type": "invoke", "f": "read", "request_id": 1,
                   "value": {"account": "A"}}),
            json!({"process": 99, "type": "invoke", "f": "read", "request_id": 2,
                   "value": {"account": "B"}}),
            json!({"process": 99, "type": "info", "f": "read", "request_id": 2,
                   "value": {"account": "B"}}),
        ],
    );
    assert_malformed(&check(dir.path()), "overlapping-operations", Some(at[1].0));
}

#[test]
fn a_position_on_a_shard_that_does_not_exist_is_malformed() {
    let dir = base();
    let (line, _) = change_event(dir.path(), is_ok("read"), |e| {
        e["positions"]["9"] = json!(1);
    });
    assert_malformed(&check(dir.path()), "unknown-shard-position", Some(line));
}

#[test]
fn a_completion_whose_amount_differs_from_its_invoke_is_malformed() {
    let dir = base();
    let (line, _) = change_event(dir.path(), single_shard_ok_transfer, |e| {
        e["value"]["amount"] = json!(i64::MIN);
    });
    assert_malformed(&check(dir.path()), "completion-changed-command", Some(line));
}

#[test]
fn a_snapshot_part_without_a_position_is_malformed() {
    let dir = base();
    let (line, _) = change_event(dir.path(), is_ok("read_all"), |e| {
        e["positions"].as_object_mut().unwrap().remove("2");
    });
    assert_malformed(&check(dir.path()), "missing-position", Some(line));
}

#[test]
fn a_transaction_coordinated_by_shard_0_is_malformed() {
    let dir = base();
    let mut fin = final_json(dir.path());
    let mut changed = 0;
    for n in fin["nodes"].as_object_mut().unwrap().values_mut() {
        for e in n["executed"].as_array_mut().unwrap() {
            if e["txn"].is_object() {
                e["txn"]["coordinator"] = json!(0);
                changed += 1;
            }
        }
    }
    assert!(changed > 0);
    std::fs::write(dir.path().join("final.json"), fin.to_string()).unwrap();
    assert_malformed(&check(dir.path()), "bad-coordinator", None);
}
