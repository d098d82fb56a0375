//! The sharded bank: valid generated runs pass every sharded property, each planted
//! anomaly is caught by its property with the right words, and a bad `[[shards]]`
//! table is a clear error.

mod common;

use checker::gen::shards::{generate, ShardedRun};
use checker::gen::{GenOptions, Plant};
use checker::history::EventType;
use checker::{check_run, Results, Validity};
use serde_json::json;

const SHARDED_CHECKS: [&str; 6] = [
    "atomicity",
    "bank-conservation",
    "shard-agreement",
    "strict-serializability",
    "replay",
    "exactly-once",
];

fn options(seed: u64, shards: u32, cross_share: f64) -> GenOptions {
    GenOptions::sharded(seed, 3_000, 8, shards, cross_share)
}

fn check(run: &ShardedRun) -> (tempfile::TempDir, Results) {
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let results = check_run(dir.path()).unwrap();
    (dir, results)
}

#[test]
fn valid_sharded_runs_pass_every_property() {
    for (seed, shards, cross) in [(1, 2, 0.5), (2, 3, 0.5), (3, 3, 0.9), (4, 2, 0.0)] {
        let run = generate(&options(seed, shards, cross));
        let (_dir, r) = check(&run);
        for name in SHARDED_CHECKS {
            let c = &r.checks[name];
            assert_eq!(c.valid, Validity::Valid, "seed {seed} {name}: {c:#?}");
        }
        assert_eq!(r.valid, Validity::Valid, "seed {seed}");
        let txns = r.checks["atomicity"].counts["cross-shard transactions"];
        assert_eq!(txns > 0, cross > 0.0, "seed {seed}: {txns} transactions");
        assert!(r.checks["bank-conservation"].counts["read_all snapshots"] > 0);
    }
}

/// Plants `plant` and asserts its check is invalid with an anomaly of `kind` whose
/// message holds every word of `words` and that names the planted history indices.
fn assert_caught(plant: Plant, kind: &str, words: &[&str]) {
    let mut run = generate(&options(7, 3, 0.5));
    let planted = run.plant(plant).unwrap();
    let (_dir, r) = check(&run);
    let c = &r.checks[plant.check()];
    assert_eq!(c.valid, Validity::Invalid, "{plant:?}: {c:#?}");
    assert_eq!(r.valid, Validity::Invalid);
    let a = c
        .anomalies
        .iter()
        .find(|a| a.kind == kind)
        .unwrap_or_else(|| panic!("{plant:?}: no {kind} in {:#?}", c.anomalies));
    for w in words {
        assert!(
            a.message.contains(w),
            "{plant:?}: {w:?} not in {}",
            a.message
        );
    }
    for i in &planted.indices {
        assert!(
            a.indices.contains(i),
            "{plant:?}: index {i} not in {:?}",
            a.indices
        );
    }
    if let Some(e) = planted.exec_index {
        assert!(
            a.exec_indices.contains(&e) || a.message.contains(&e.to_string()),
            "{plant:?}: exec {e} not named: {a:?}"
        );
    }
}

#[test]
fn split_decision_is_caught() {
    assert_caught(
        Plant::SplitDecision,
        "split-decision",
        &[
            "committed on shard",
            "but aborted on shard",
            "transaction (coordinator shard",
        ],
    );
}

#[test]
fn split_decision_also_breaks_the_banks_total() {
    let mut run = generate(&options(7, 3, 0.5));
    run.plant(Plant::SplitDecision).unwrap();
    let (_dir, r) = check(&run);
    let c = &r.checks["bank-conservation"];
    assert!(c.anomalies.iter().any(|a| a.kind == "sum-drift"), "{c:#?}");
}

#[test]
fn applied_at_prepare_is_caught() {
    assert_caught(
        Plant::AppliedAtPrepare,
        "applied-at-prepare",
        &[
            "at the prepare of the transaction",
            "may apply only at commit",
        ],
    );
}

#[test]
fn torn_read_all_is_caught() {
    assert_caught(
        Plant::TornReadAll,
        "torn-snapshot",
        &["read_all", "is torn", "instead of"],
    );
}

#[test]
fn cross_shard_cycle_is_caught() {
    assert_caught(
        Plant::CrossShardCycle,
        "cycle",
        &[
            "3 operations",
            "form a cycle",
            "on shard 1",
            "on shard 2",
            "real time",
        ],
    );
}

#[test]
fn cross_shard_cycle_is_seen_by_no_single_shard_check() {
    let mut run = generate(&options(7, 3, 0.5));
    run.plant(Plant::CrossShardCycle).unwrap();
    let (_dir, r) = check(&run);
    for name in ["atomicity", "bank-conservation", "shard-agreement"] {
        assert_eq!(
            r.checks[name].valid,
            Validity::Valid,
            "{name}: {:#?}",
            r.checks[name]
        );
    }
}

#[test]
fn shard_divergence_is_caught() {
    assert_caught(
        Plant::ShardDivergence,
        "divergence",
        &["Replicas n7 (shard 3) and n8 (shard 3) disagree at exec_index"],
    );
}

#[test]
fn classic_plants_do_not_apply_to_a_sharded_run() {
    let mut run = generate(&options(7, 2, 0.5));
    assert!(run.plant(Plant::LostAck).is_err());
}

#[test]
fn a_bad_shards_table_names_the_field() {
    let run = generate(&options(1, 2, 0.5));
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let toml = run
        .run_toml()
        .replacen("accounts = [\"B\"", "accounts = [\"A\", \"B\"", 1);
    std::fs::write(dir.path().join("run.toml"), toml).unwrap();
    let e = check_run(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("field `shards`") && e.contains("account A is in shards 1 and 2"),
        "{e}"
    );
}

/// final.json is read before the history, but a fault in the history is still the
/// one told when both files have one; either alone is told.
#[test]
fn a_fault_in_the_history_is_told_before_one_in_final_json() {
    let run = generate(&options(2, 2, 0.5));
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let (history, fin) = (
        dir.path().join("history.jsonl"),
        dir.path().join("final.json"),
    );
    let good_history = std::fs::read_to_string(&history).unwrap();
    let bad_history = good_history.replacen("\n", "\n{\"index\":\"x\"}\n", 1);
    std::fs::write(&history, &bad_history).unwrap();
    std::fs::write(&fin, "{\"nodes\": 7}").unwrap();
    let e = check_run(dir.path()).unwrap_err().to_string();
    assert!(
        e.contains("history.jsonl") && !e.contains("final.json"),
        "{e}"
    );
    std::fs::write(&history, &good_history).unwrap();
    let e = check_run(dir.path()).unwrap_err().to_string();
    assert!(e.contains("final.json"), "{e}");
}

#[test]
fn the_report_lists_the_sharded_properties() {
    let mut run = generate(&options(7, 3, 0.5));
    run.plant(Plant::CrossShardCycle).unwrap();
    let (dir, r) = check(&run);
    checker::report::write_report(dir.path(), &r).unwrap();
    let html = std::fs::read_to_string(dir.path().join("report.html")).unwrap();
    for name in SHARDED_CHECKS {
        assert!(html.contains(name), "{name} not in the report");
    }
    assert!(html.contains("form a cycle no serial order can follow"));
}

#[test]
fn a_request_executed_twice_on_a_shard_is_caught_by_exactly_once() {
    let mut run = generate(&options(7, 3, 0.5));
    let log = &mut run.logs[1];
    let mut again = log
        .iter()
        .find(|e| e.f == "transfer" && e.txn.is_none() && e.kind == EventType::Ok)
        .unwrap()
        .clone();
    again.exec_index = log.len() as u64 + 1;
    let (client, rid, at) = (again.client, again.request_id, again.exec_index);
    log.push(again);
    let (_dir, r) = check(&run);
    let c = &r.checks["exactly-once"];
    assert_eq!(c.valid, Validity::Invalid);
    let a = c
        .anomalies
        .iter()
        .find(|a| a.kind == "duplicate-execution")
        .unwrap();
    let words = format!("Shard 2 executed client {client}'s request {rid} 2 times");
    assert!(
        a.message.contains(&words) && a.exec_indices.contains(&at),
        "{a:?}"
    );
}

#[test]
fn a_read_that_disagrees_with_its_shards_replay_is_caught_by_replay() {
    let mut run = generate(&options(7, 3, 0.5));
    let e = run
        .events
        .iter_mut()
        .find(|e| e.f == "read" && e.kind == EventType::Ok)
        .unwrap();
    let b = e.value["balance"].as_i64().unwrap();
    e.value["balance"] = json!(b + 1);
    let index = e.index;
    let (_dir, r) = check(&run);
    let c = &r.checks["replay"];
    assert_eq!(c.valid, Validity::Invalid);
    let a = &c.anomalies[0];
    assert_eq!(a.kind, "wrong-result");
    assert!(
        a.message.contains(&format!("was told balance {}", b + 1)),
        "{a:?}"
    );
    assert!(a.indices.contains(&index));
}

/// A transfer that timed out, executed anyway and was retried: a read that saw it and
/// completed before the retry is no cycle (the operation began at its first invoke).
#[test]
fn a_retried_transfer_begins_at_its_first_invocation() {
    use checker::history::{values, Event, HistoryWriter};
    use checker::shards::{Phase, ShardEntry, ShardNode, ShardedFinal, TxnId, Vote};
    let dir = tempfile::tempdir().unwrap();
    let t = values::transfer("A", "B", 3);
    let events = [
        Event::invoke(1, 1, "transfer", t.clone()),
        Event::client(EventType::Info, 1, 1, "transfer", t.clone()),
        Event::invoke(2, 1, "read", values::read("A")),
        Event::client(EventType::Ok, 2, 1, "read", values::read_ok("A", 7))
            .with_positions([(1, 3)]),
        Event::invoke(1, 1, "transfer", t.clone()),
        Event::client(
            EventType::Ok,
            1,
            1,
            "transfer",
            values::transfer_ok("A", "B", 3, 7, 13),
        )
        .with_positions([(1, 2), (2, 2)]),
    ];
    let late = events[2..].to_vec();
    let mut w = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
    for (i, e) in events.into_iter().enumerate() {
        w.append(&e.at(i as u64, 1_000 * (i as u64 + 1))).unwrap();
    }
    drop(w);
    let txn = TxnId {
        coordinator: 1,
        client: 1,
        request_id: 1,
    };
    let tx = |exec, phase, vote, applied| ShardEntry {
        exec_index: exec,
        client: 1,
        request_id: 1,
        f: "transfer".into(),
        value: t.clone().into(),
        kind: EventType::Ok,
        txn: Some(txn),
        phase: Some(phase),
        vote,
        applied: Some(applied),
    };
    let read = ShardEntry {
        exec_index: 3,
        client: 2,
        request_id: 1,
        f: "read".into(),
        value: values::read_ok("A", 7).into(),
        kind: EventType::Ok,
        txn: None,
        phase: None,
        vote: None,
        applied: None,
    };
    let node = |shard, balances: &[(&str, i64)], executed| ShardNode {
        shard,
        balances: Some(balances.iter().map(|(a, b)| (a.to_string(), *b)).collect()),
        executed,
        error: None,
    };
    let fin = ShardedFinal {
        nodes: [
            (
                "n1".to_string(),
                node(
                    1,
                    &[("A", 7)],
                    vec![
                        tx(1, Phase::Prepare, Some(Vote::Yes), 0),
                        tx(2, Phase::Commit, None, -3),
                        read,
                    ],
                ),
            ),
            (
                "n2".to_string(),
                node(
                    2,
                    &[("B", 13)],
                    vec![
                        tx(1, Phase::Prepare, Some(Vote::Yes), 0),
                        tx(2, Phase::Commit, None, 3),
                    ],
                ),
            ),
        ]
        .into_iter()
        .collect(),
    };
    fin.write(dir.path().join("final.json")).unwrap();
    std::fs::write(
        dir.path().join("run.toml"),
        "accounts = [\"A\", \"B\"]\ninitial_balance = 10\n[[shards]]\nid = 1\naccounts = [\"A\"]\nnodes = [\"n1\"]\n[[shards]]\nid = 2\naccounts = [\"B\"]\nnodes = [\"n2\"]\n",
    )
    .unwrap();
    let r = check_run(dir.path()).unwrap();
    for name in SHARDED_CHECKS {
        assert_eq!(
            r.checks[name].valid,
            Validity::Valid,
            "{name}: {:#?}",
            r.checks[name]
        );
    }
    // Without the first attempt, the transfer began after the read that saw it had
    // completed: that is a cycle.
    let mut w = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
    for (i, e) in late.into_iter().enumerate() {
        w.append(&e.at(i as u64, 1_000 * (i as u64 + 1))).unwrap();
    }
    drop(w);
    let r = check_run(dir.path()).unwrap();
    let c = &r.checks["strict-serializability"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(c.anomalies[0].message.contains("real time"), "{c:#?}");
}

#[test]
fn a_run_without_final_json_is_unknown() {
    let run = generate(&options(3, 2, 0.5));
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    std::fs::remove_file(dir.path().join("final.json")).unwrap();
    let r = check_run(dir.path()).unwrap();
    assert_eq!(r.valid, Validity::Unknown);
    assert_eq!(r.checks["atomicity"].valid, Validity::Unknown);
    assert_eq!(r.checks["strict-serializability"].valid, Validity::Valid);
}

/// Appends a transfer A→B (shards 1 and 2) that committed on shard 1 only; shard 2
/// prepared it or not.
fn half_committed(dest_prepared: bool) -> Results {
    use checker::history::{values, Event};
    use checker::shards::{Phase, ShardEntry, TxnId, Vote};
    let mut run = generate(&options(5, 2, 0.5));
    let (a, b) = (
        run.specs[0].accounts[0].clone(),
        run.specs[1].accounts[0].clone(),
    );
    let client = run.options.clients + 50;
    let t = values::transfer(&a, &b, 1);
    let time = run.events.last().unwrap().time_ns + 1_000;
    let index = run.events.len() as u64;
    run.events
        .push(Event::invoke(client, 1, "transfer", t.clone()).at(index, time));
    let txn = TxnId {
        coordinator: 1,
        client,
        request_id: 1,
    };
    let mut add = |shard: usize, phase, vote, applied| {
        let log = &mut run.logs[shard];
        let exec_index = log.len() as u64 + 1;
        log.push(ShardEntry {
            exec_index,
            client,
            request_id: 1,
            f: "transfer".into(),
            value: t.clone().into(),
            kind: EventType::Ok,
            txn: Some(txn),
            phase: Some(phase),
            vote,
            applied: Some(applied),
        });
    };
    add(0, Phase::Prepare, Some(Vote::Yes), 0);
    if dest_prepared {
        add(1, Phase::Prepare, Some(Vote::Yes), 0);
    }
    add(0, Phase::Commit, None, -1);
    check(&run).1
}

#[test]
fn a_transaction_still_in_doubt_makes_atomicity_unknown() {
    let r = half_committed(true);
    let c = &r.checks["atomicity"];
    assert_eq!(c.valid, Validity::Unknown, "{c:#?}");
    assert!(c.unknown[0].contains("still in doubt"), "{:?}", c.unknown);
}

#[test]
fn a_commit_the_other_shard_never_saw_is_a_partial_commit() {
    let r = half_committed(false);
    let c = &r.checks["atomicity"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    let a = &c.anomalies[0];
    assert_eq!(a.kind, "partial-commit");
    assert!(
        a.message.contains(
            "was committed on shard 1 but shard 2, which it touches, never prepared or decided it"
        ),
        "{a:?}"
    );
}

/// A generated run healed at its end: run.toml gets a liveness bound of 1 s and the
/// history a `stable` event, then `after` (events at times relative to it, in ms).
fn healed_run(after: &[(u64, checker::history::Event)]) -> (tempfile::TempDir, Results) {
    use checker::history::Event;
    let run = generate(&options(11, 3, 0.5));
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    let toml = dir.path().join("run.toml");
    let text = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, format!("liveness_bound_ms = 1000\n{text}")).unwrap();
    let last = run.events.last().unwrap();
    let (mut index, mut t) = (last.index, last.time_ns + 1_000_000);
    // The generator's operations still open at its end time out before the heal: from
    // the stable event on, only `after` is judged.
    let mut lines = common::time_out_open(&run.events, &mut index, t);
    index += 1;
    t += 1_000_000;
    lines.push(Event::nemesis("stable", json!({})).at(index, t));
    for (ms, e) in after {
        index += 1;
        lines.push(e.clone().at(index, t + ms * 1_000_000));
    }
    common::append_history(dir.path(), &lines);
    let results = check_run(dir.path()).unwrap();
    (dir, results)
}

fn read_of(
    account: &str,
    kind: EventType,
    value: serde_json::Value,
) -> [checker::history::Event; 2] {
    use checker::history::Event;
    [
        Event::invoke(99, 1, "read", json!({ "account": account })),
        Event::client(kind, 99, 1, "read", value),
    ]
}

#[test]
fn liveness_holds_when_every_operation_after_the_heal_is_answered() {
    let [invoke, ok] = read_of("A", EventType::Ok, json!({"account": "A", "balance": 10}));
    let (_dir, r) = healed_run(&[(2_000, invoke), (2_001, ok)]);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Valid, "{c:#?}");
    assert_eq!(c.counts["answered in time"], 1, "{c:#?}");
    // Without a stable event the check does not apply, and says so.
    let run = generate(&options(11, 3, 0.5));
    let (_dir, r) = check(&run);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Valid);
    assert!(
        c.notes.iter().any(|n| n.contains("not applicable")),
        "{c:#?}"
    );
}

#[test]
fn a_lock_held_past_the_bound_after_the_heal_is_a_stall() {
    let value = json!({"account": "A", "error": "lock-conflict"});
    let [invoke, fail] = read_of("A", EventType::Fail, value);
    let (_dir, r) = healed_run(&[(2_000, invoke), (2_001, fail)]);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    let a = &c.anomalies[0];
    assert_eq!(a.kind, "stall");
    assert!(a.message.contains("still locked"), "{}", a.message);
    assert!(a.message.contains("read of A"), "{}", a.message);
    assert_eq!(r.valid, Validity::Invalid);
    // The same conflict within the bound is a transaction finishing, not a stall.
    let value = json!({"account": "A", "error": "lock-conflict"});
    let [invoke, fail] = read_of("A", EventType::Fail, value);
    let (_dir, r) = healed_run(&[(500, invoke), (501, fail)]);
    assert_eq!(r.checks["liveness"].valid, Validity::Valid);
}

#[test]
fn an_operation_unanswered_past_the_bound_after_the_heal_is_a_stall() {
    let [invoke, info] = read_of("B", EventType::Info, json!({"account": "B"}));
    let (_dir, r) = healed_run(&[(10, invoke), (3_000, info)]);
    let c = &r.checks["liveness"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(
        c.anomalies[0].message.contains("timed out (info)"),
        "{c:#?}"
    );
}

/// A cross-shard transfer A→B (shards 1, 2) told only its coordinator's position, as a
/// real replica answers (at its decision, before shard 2 commits); then a read of B, once
/// the transfer had completed, executed on shard 2 between its prepare and its commit with
/// `read` as its outcome. Returns the results.
fn answered_at_the_coordinators_decision(read: (EventType, serde_json::Value)) -> Results {
    use checker::history::{values, Event, HistoryWriter};
    use checker::shards::{Phase, ShardEntry, ShardNode, ShardedFinal, TxnId, Vote};
    let dir = tempfile::tempdir().unwrap();
    let t = values::transfer("A", "B", 3);
    let (read_kind, read_value) = read;
    let events = [
        Event::invoke(1, 1, "transfer", t.clone()),
        Event::client(
            EventType::Ok,
            1,
            1,
            "transfer",
            values::transfer_ok("A", "B", 3, 7, 13),
        )
        .with_positions([(1, 2)]),
        Event::invoke(2, 1, "read", values::read("B")),
        Event::client(read_kind, 2, 1, "read", read_value.clone()).with_positions([(2, 2)]),
        Event::invoke(2, 2, "read", values::read("B")),
        Event::client(EventType::Ok, 2, 2, "read", values::read_ok("B", 13))
            .with_positions([(2, 4)]),
    ];
    let mut w = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
    for (i, e) in events.into_iter().enumerate() {
        w.append(&e.at(i as u64, 1_000 * (i as u64 + 1))).unwrap();
    }
    drop(w);
    let txn = TxnId {
        coordinator: 1,
        client: 1,
        request_id: 1,
    };
    let tx = |exec, phase, vote, applied| ShardEntry {
        exec_index: exec,
        client: 1,
        request_id: 1,
        f: "transfer".into(),
        value: t.clone().into(),
        kind: EventType::Ok,
        txn: Some(txn),
        phase: Some(phase),
        vote,
        applied: Some(applied),
    };
    let read_entry = |exec, request_id, kind, value: serde_json::Value| ShardEntry {
        exec_index: exec,
        client: 2,
        request_id,
        f: "read".into(),
        value: value.into(),
        kind,
        txn: None,
        phase: None,
        vote: None,
        applied: None,
    };
    let node = |shard, balances: &[(&str, i64)], executed| ShardNode {
        shard,
        balances: Some(balances.iter().map(|(a, b)| (a.to_string(), *b)).collect()),
        executed,
        error: None,
    };
    let shard1 = vec![
        tx(1, Phase::Prepare, Some(Vote::Yes), 0),
        tx(2, Phase::Commit, None, -3),
    ];
    let shard2 = vec![
        tx(1, Phase::Prepare, Some(Vote::Yes), 0),
        read_entry(2, 1, read_kind, read_value),
        tx(3, Phase::Commit, None, 3),
        read_entry(4, 2, EventType::Ok, values::read_ok("B", 13)),
    ];
    let fin = ShardedFinal {
        nodes: [
            ("n1".to_string(), node(1, &[("A", 7)], shard1)),
            ("n2".to_string(), node(2, &[("B", 13)], shard2)),
        ]
        .into_iter()
        .collect(),
    };
    fin.write(dir.path().join("final.json")).unwrap();
    std::fs::write(
        dir.path().join("run.toml"),
        "accounts = [\"A\", \"B\"]\ninitial_balance = 10\n[[shards]]\nid = 1\naccounts = [\"A\"]\nnodes = [\"n1\"]\n[[shards]]\nid = 2\naccounts = [\"B\"]\nnodes = [\"n2\"]\n",
    )
    .unwrap();
    check_run(dir.path()).unwrap()
}

#[test]
fn a_read_refused_by_the_participants_lock_orders_nothing() {
    use checker::history::values;
    let refused = values::with_error(&values::read("B"), "lock-conflict");
    let r = answered_at_the_coordinators_decision((EventType::Fail, refused));
    for name in SHARDED_CHECKS {
        let c = &r.checks[name];
        assert_eq!(c.valid, Validity::Valid, "{name}: {c:#?}");
    }
}

#[test]
fn the_participants_position_is_found_in_its_log_by_transaction() {
    use checker::history::values;
    // The read saw B before the credit, after the transfer had completed: only the
    // transfer's position on shard 2, found in that shard's log, orders them.
    let stale = values::read_ok("B", 10);
    let r = answered_at_the_coordinators_decision((EventType::Ok, stale));
    let c = &r.checks["strict-serializability"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    let a = &c.anomalies[0];
    assert!(
        a.message
            .contains("on shard 2, account B: position 2 before 3"),
        "{a:?}"
    );
}

/// One operation of [`concurrent_run`]: process, f, invoke value, ok value, positions.
type ConcurrentOp = (
    u64,
    &'static str,
    serde_json::Value,
    serde_json::Value,
    [(u32, u64); 2],
);

/// Two shards holding A and B, and a history of `ops` (process, f, invoke value, ok value,
/// positions), all running concurrently: each is invoked, then all complete. Each shard's
/// log holds the entries the positions name, with `applied` for transfers.
fn concurrent_run(ops: &[ConcurrentOp]) -> Results {
    use checker::history::{Event, HistoryWriter};
    use checker::shards::{Phase, ShardEntry, ShardNode, ShardedFinal, TxnId, Vote};
    let dir = tempfile::tempdir().unwrap();
    let mut w = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
    let invokes = ops
        .iter()
        .map(|(p, f, v, _, _)| Event::invoke(*p, 1, f, v.clone()));
    let oks = ops.iter().map(|(p, f, _, ok, at)| {
        Event::client(EventType::Ok, *p, 1, f, ok.clone()).with_positions(*at)
    });
    for (i, e) in invokes.chain(oks).enumerate() {
        w.append(&e.at(i as u64, 1_000 * (i as u64 + 1))).unwrap();
    }
    drop(w);
    let mut logs: [Vec<ShardEntry>; 2] = [Vec::new(), Vec::new()];
    for (p, f, invoke, ok, at) in ops {
        for &(shard, exec) in at {
            let txn = (*f == "transfer").then_some(TxnId {
                coordinator: 1,
                client: *p,
                request_id: 1,
            });
            let amount = invoke["amount"].as_i64().unwrap_or(0);
            let (value, phase, applied) = match txn {
                Some(_) => (
                    invoke.clone(),
                    Some(Phase::Commit),
                    Some(if shard == 1 { -amount } else { amount }),
                ),
                None => {
                    let account = if shard == 1 { "A" } else { "B" };
                    (
                        json!({"balances": {account: ok["balances"][account]}}),
                        None,
                        None,
                    )
                }
            };
            let prepare = txn.map(|_| ShardEntry {
                exec_index: exec - 1,
                client: *p,
                request_id: 1,
                f: f.to_string(),
                value: invoke.clone().into(),
                kind: EventType::Ok,
                txn,
                phase: Some(Phase::Prepare),
                vote: Some(Vote::Yes),
                applied: Some(0),
            });
            logs[shard as usize - 1].extend(prepare);
            logs[shard as usize - 1].push(ShardEntry {
                exec_index: exec,
                client: *p,
                request_id: 1,
                f: f.to_string(),
                value: value.into(),
                kind: EventType::Ok,
                txn,
                phase,
                vote: None,
                applied,
            });
        }
    }
    let mut fin = ShardedFinal::default();
    for (k, mut log) in logs.into_iter().enumerate() {
        log.sort_by_key(|e| e.exec_index);
        let shard = k as u32 + 1;
        let node = ShardNode {
            shard,
            balances: None,
            executed: log,
            error: Some("not fetched: the logs say it all".into()),
        };
        fin.nodes.insert(format!("n{shard}"), node);
    }
    fin.write(dir.path().join("final.json")).unwrap();
    std::fs::write(
        dir.path().join("run.toml"),
        "accounts = [\"A\", \"B\"]\ninitial_balance = 10\n[[shards]]\nid = 1\naccounts = [\"A\"]\nnodes = [\"n1\"]\n[[shards]]\nid = 2\naccounts = [\"B\"]\nnodes = [\"n2\"]\n",
    )
    .unwrap();
    check_run(dir.path()).unwrap()
}

/// Two snapshots under shared locks may take their parts in opposite orders on two shards:
/// reads commute, so that is no cycle.
#[test]
fn two_snapshots_in_opposite_orders_on_two_shards_are_no_cycle() {
    let both = json!({"balances": {"A": 10, "B": 10}});
    let r = concurrent_run(&[
        (1, "read_all", json!(null), both.clone(), [(1, 1), (2, 2)]),
        (2, "read_all", json!(null), both, [(1, 2), (2, 1)]),
    ]);
    let c = &r.checks["strict-serializability"];
    assert_eq!(c.valid, Validity::Valid, "{c:#?}");
    assert_eq!(r.valid, Validity::Valid, "{r:#?}");
}

/// A snapshot before a transfer on one shard and after it on the other is a cycle (and torn).
#[test]
fn a_snapshot_on_both_sides_of_a_transfer_is_a_cycle() {
    let r = concurrent_run(&[
        (
            1,
            "transfer",
            json!({"from": "A", "to": "B", "amount": 3}),
            json!({"from": "A", "to": "B", "amount": 3, "from_balance": 7, "to_balance": 13}),
            [(1, 3), (2, 2)],
        ),
        (
            2,
            "read_all",
            json!(null),
            json!({"balances": {"A": 10, "B": 13}}),
            [(1, 1), (2, 3)],
        ),
    ]);
    let c = &r.checks["strict-serializability"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(c.anomalies[0].message.contains("form a cycle"), "{c:#?}");
}
