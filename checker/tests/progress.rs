//! The `progress` check: with a majority of run.toml's `nodes` (or of every shard's) up
//! and no partition in force, some operation is answered `ok` within
//! `progress_bound_ms`, during the run as well as after the heal; per shard in a sharded
//! run; not applicable, and saying why, when run.toml does not say enough.

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
    check_events(&events, 1, run_toml)
}

/// Checks `events` (time in ms, event), whose one applied transfer A→B of 3 is
/// `client`'s request 1.
fn check_events(events: &[(u64, Event)], client: u64, run_toml: &str) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let mut w = HistoryWriter::create(dir.path().join("history.jsonl")).unwrap();
    for (i, (ms, e)) in events.iter().enumerate() {
        w.append(&e.clone().at(i as u64, ms * MS)).unwrap();
    }
    drop(w);
    let log = [transfer_entry(1, client, 1, ("A", "B", 3), (7, 13))];
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
    let c = &r.checks["progress"];
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

/// The rule is judged in the history pass the other checks make: lines the fast reader
/// leaves (another key order, spaces) are judged as before, and a nemesis line only the
/// rule reads whole (its `node` is no name) still fails the check, naming its line, as
/// the rule's own pass did.
#[test]
fn lines_written_otherwise_are_judged_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let lines = [
        r#"{"index":0,"time_ns":1000000,"process":1,"type":"invoke","f":"transfer","value":{"amount":3,"from":"A","to":"B"},"request_id":1}"#,
        r#"{"process": "nemesis", "index": 1, "time_ns": 2000000, "type": "info", "f": "kill", "value": {"nodes": ["n3"]}}"#,
        r#"{"time_ns":320000000,"index":2,"process":1,"type":"ok","f":"transfer","value":{"amount":3,"from":"A","from_balance":7,"to":"B","to_balance":13},"request_id":1,"exec_index":1}"#,
    ];
    std::fs::write(dir.path().join("history.jsonl"), lines.join("\n") + "\n").unwrap();
    let log = [transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13))];
    final_state(&["n1", "n2", "n3"], &log, &[("A", 7), ("B", 13)])
        .write(dir.path().join("final.json"))
        .unwrap();
    std::fs::write(dir.path().join("run.toml"), RUN_TOML).unwrap();
    let r = check_run(dir.path()).unwrap();
    let c = &r.checks["progress"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(
        c.anomalies[0].message.contains("from 0.001 s to 0.320 s"),
        "{c:#?}"
    );

    let odd = lines[1].replace(r#""f": "kill""#, r#""node": 5, "f": "kill""#);
    let history = [lines[0], &odd, lines[2]].join("\n") + "\n";
    std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
    let err = check_run(dir.path()).unwrap_err().to_string();
    assert!(err.contains("history.jsonl:2: field `node`"), "{err}");
    // Without the rule nothing reads that line whole: the run is checked.
    let no_rule = RUN_TOML.replace("progress_bound_ms = 100\n", "");
    std::fs::write(dir.path().join("run.toml"), no_rule).unwrap();
    assert!(check_run(dir.path()).is_ok());
}

#[test]
fn no_ok_while_a_majority_is_down_is_not_judged() {
    let r = run(&[
        (0, "kill", json!({"nodes": ["n1", "n2"]})),
        (250, "restart", json!({"nodes": ["n1", "n2"]})),
    ]);
    let c = &r.checks["progress"];
    assert_eq!(c.valid, Validity::Valid, "{c:#?}");
    assert!(c
        .notes
        .iter()
        .any(|n| n.contains("judged over the whole run")));
    // Judged only from the restart (250 ms) to the end (320 ms).
    assert_eq!(c.counts["ms with a majority surely up and connected"], 70);
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
}

#[test]
fn no_ok_while_partitioned_is_not_judged_until_the_heal() {
    let cut = json!({"shape": "halves", "cuts": [["n1", "n2"], ["n1", "n3"]]});
    let r = run(&[(0, "partition", cut), (300, "heal", json!({"cuts": []}))]);
    assert_eq!(r.checks["progress"].valid, Validity::Valid);
    let cut = json!({"shape": "halves", "cuts": [["n1", "n2"], ["n1", "n3"]]});
    let r = run(&[(0, "partition", cut), (150, "heal", json!({"cuts": []}))]);
    let c = &r.checks["progress"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(c.anomalies[0].message.contains("from 0.150 s"), "{c:#?}");
}

#[test]
fn the_cluster_size_is_read_where_the_harness_writes_it() {
    let toml = RUN_TOML.replace("nodes = 3\n", "") + "[params]\nnodes = 3\n";
    let r = run_with(&[(0, "kill", json!({"nodes": ["n3"]}))], &toml);
    assert!(r.checks["progress"]
        .anomalies
        .iter()
        .any(|a| a.kind == "no-progress"));
    // Without a size the rule does not apply, and says so.
    let toml = RUN_TOML.replace("nodes = 3\n", "");
    let r = run_with(&[(0, "kill", json!({"nodes": ["n3"]}))], &toml);
    let c = &r.checks["progress"];
    assert_eq!(c.valid, Validity::Valid);
    assert!(
        c.not_applicable.as_deref().unwrap().contains("nodes"),
        "{c:#?}"
    );
    assert_eq!(c.state_word(), "n/a");
    // Nor without a bound.
    let toml = RUN_TOML.replace("progress_bound_ms = 100\n", "");
    let r = run_with(&[(0, "kill", json!({"nodes": ["n3"]}))], &toml);
    let c = &r.checks["progress"];
    assert_eq!(
        c.not_applicable.as_deref(),
        Some("run.toml has no progress_bound_ms")
    );
    assert_eq!(r.valid, Validity::Valid);
}

/// The simulator's faults: a power cut, a disk fault and a clock jump take their replicas
/// down as a kill does, and a restart that a replica refused leaves it down.
#[test]
fn the_simulators_faults_count_their_replicas_down() {
    for f in [
        "power-cut",
        "bit-flip",
        "cut-short",
        "fsync-fail",
        "clock-jump",
    ] {
        let two = json!({"nodes": ["n1", "n2"]});
        let r = run(&[(0, f, two)]);
        assert_eq!(r.checks["progress"].valid, Validity::Valid, "{f}");
        let one = json!({"nodes": ["n1"]});
        let r = run(&[(0, f, one)]);
        assert_eq!(r.checks["progress"].valid, Validity::Invalid, "{f}");
    }
    // A replica cut short refuses to come back: with another killed, no majority.
    let refused = json!({"nodes": ["n1"], "refused": ["n1: the WAL is corrupt"]});
    let r = run(&[
        (0, "cut-short", json!({"nodes": ["n1"]})),
        (10, "restart", refused),
        (20, "kill", json!({"nodes": ["n2"]})),
    ]);
    assert_eq!(r.checks["progress"].valid, Validity::Valid, "{r:#?}");
    // Both come back: judged from the restart.
    let r = run(&[
        (0, "cut-short", json!({"nodes": ["n1", "n2"]})),
        (10, "restart", json!({"nodes": ["n1", "n2"]})),
    ]);
    let c = &r.checks["progress"];
    assert!(c.anomalies[0].message.contains("from 0.010 s"), "{c:#?}");
}

#[test]
fn an_armed_failpoint_or_a_nemesis_error_is_not_judged() {
    // The armed replica may die at any moment, unrecorded until the heal.
    let armed = json!({"node": "n1", "shard": 1, "failpoint": "after-prepare"});
    let r = run(&[
        (0, "kill", json!({"nodes": ["n2"]})),
        (5, "arm-failpoint", armed),
    ]);
    assert_eq!(r.checks["progress"].valid, Validity::Valid);
    // A fault that failed half-way leaves who is up unknown until everything is healed.
    let error = json!({"action": "Start(Kill(Leader))", "error": "no such process"});
    let r = run(&[(0, "error", error.clone())]);
    assert_eq!(r.checks["progress"].valid, Validity::Valid);
    let r = run(&[
        (0, "error", error),
        (100, "heal-all", json!({"actions": []})),
    ]);
    assert_eq!(r.checks["progress"].valid, Validity::Invalid);
}

#[test]
fn an_idle_stretch_owes_nothing() {
    // Client 1's read answered at 10 ms; client 2 invokes only at 300 ms and is answered
    // at once: nothing was in flight in between, so no stretch passed the bound.
    let events = [
        (1, Event::invoke(1, 1, "read", json!({"account": "A"}))),
        (
            10,
            Event::client(
                checker::history::EventType::Ok,
                1,
                1,
                "read",
                json!({"account": "A", "balance": 10}),
            ),
        ),
        (300, invoke_transfer(2, 1, "A", "B", 3)),
        (320, ok_transfer(2, 1, ("A", "B", 3), (7, 13), 1)),
    ];
    let r = check_events(&events, 2, RUN_TOML);
    assert_eq!(r.checks["progress"].valid, Validity::Valid, "{r:#?}");
}

#[test]
fn operations_that_time_out_and_retry_do_not_restart_the_stretch() {
    // Two clients' attempts overlap; each times out (info) within the bound and its
    // client goes straight on: a stall all the same, though no operation waited the bound.
    use checker::history::EventType;
    let mut events = Vec::new();
    for (client, start) in [(1, 1), (3, 30)] {
        for k in 0..5u64 {
            let (rid, read) = (k + 1, json!({"account": "A"}));
            let invoke = Event::invoke(client, rid, "read", read.clone());
            let info = Event::client(EventType::Info, client, rid, "read", read);
            events.push((start + 60 * k, invoke));
            events.push((start + 59 + 60 * k, info));
        }
    }
    events.push((301, invoke_transfer(2, 1, "A", "B", 3)));
    events.push((320, ok_transfer(2, 1, ("A", "B", 3), (7, 13), 1)));
    events.sort_by_key(|(ms, _)| *ms);
    let r = check_events(&events, 2, RUN_TOML);
    let c = &r.checks["progress"];
    assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
    assert!(c.anomalies[0].message.contains("from 0.001 s"), "{c:#?}");
}

mod sharded {
    use super::MS;
    use crate::common::{append_history, time_out_open};
    use checker::gen::shards::generate;
    use checker::gen::GenOptions;
    use checker::history::{Event, EventType};
    use checker::{check_run, Results, Validity};
    use serde_json::json;

    /// A generated 3-shard run with `progress_bound_ms = 1000`, then `after` (events at
    /// times in ms after its end). Returns the results and the shards' accounts.
    fn run(after: &[(u64, Event)]) -> (Results, Vec<Vec<String>>) {
        let run = generate(&GenOptions::sharded(11, 3_000, 9, 3, 0.5));
        let dir = tempfile::tempdir().unwrap();
        run.write(dir.path()).unwrap();
        let toml = dir.path().join("run.toml");
        let text = std::fs::read_to_string(&toml).unwrap();
        std::fs::write(&toml, format!("progress_bound_ms = 1000\n{text}")).unwrap();
        // The generator's operations still open at its end time out first.
        let last = run.events.last().unwrap();
        let (mut index, t) = (last.index, last.time_ns + MS);
        let mut lines = time_out_open(&run.events, &mut index, t);
        for (ms, e) in after {
            index += 1;
            lines.push(e.clone().at(index, t + ms * MS));
        }
        append_history(dir.path(), &lines);
        let accounts = run.specs.iter().map(|s| s.accounts.clone()).collect();
        (check_run(dir.path()).unwrap(), accounts)
    }

    fn read(client: u64, rid: u64, account: &str, kind: EventType) -> Event {
        let value = match kind {
            EventType::Invoke | EventType::Info => json!({ "account": account }),
            _ => json!({"account": account, "error": "lock-conflict"}),
        };
        Event::client(kind, client, rid, "read", value)
    }

    fn kill(nodes: &[&str]) -> Event {
        Event::nemesis("kill", json!({ "nodes": nodes }))
    }

    /// Shard 2's reads time out for 3 s while shard 1's are answered: with shard 3's
    /// `n7` down (the others at full strength), shard 2 owes progress.
    fn stalled_shard_two(killed: &[&str]) -> Results {
        let (_, accounts) = run(&[]);
        let (a1, a2) = (accounts[0][0].as_str(), accounts[1][0].as_str());
        let ok1 = |rid| {
            Event::client(
                EventType::Ok,
                90,
                rid,
                "read",
                json!({"account": a1, "balance": 10}),
            )
        };
        let mut after = vec![(0, kill(killed))];
        after.push((1, read(91, 1, a2, EventType::Invoke)));
        for k in 0..6u64 {
            after.push((
                10 + 500 * k,
                Event::invoke(90, k + 1, "read", json!({"account": a1})),
            ));
            after.push((11 + 500 * k, ok1(k + 1)));
        }
        after.push((3_000, read(91, 1, a2, EventType::Info)));
        run(&after).0
    }

    #[test]
    fn a_clean_sharded_run_is_judged_and_valid() {
        let (r, _) = run(&[]);
        let c = &r.checks["progress"];
        assert_eq!(c.valid, Validity::Valid, "{c:#?}");
        assert!(c.not_applicable.is_none());
        assert_eq!(c.counts["groups judged"], 3);
    }

    #[test]
    fn a_shard_without_ok_while_every_shard_has_a_majority_is_no_progress() {
        let r = stalled_shard_two(&["n7"]);
        let c = &r.checks["progress"];
        assert_eq!(c.valid, Validity::Invalid, "{c:#?}");
        assert_eq!(c.anomalies.len(), 1, "{c:#?}");
        let a = &c.anomalies[0];
        assert_eq!(a.kind, "no-progress");
        assert!(a.message.starts_with("Shard 2: "), "{}", a.message);
        assert_eq!(r.valid, Validity::Invalid);
    }

    #[test]
    fn a_shard_without_a_majority_stops_the_judgement_of_every_shard() {
        // Shard 3 lost two of its three: its transactions hold shard 2's accounts.
        let r = stalled_shard_two(&["n7", "n8"]);
        assert_eq!(r.checks["progress"].valid, Validity::Valid);
    }

    #[test]
    fn a_sharded_run_without_a_bound_is_not_applicable() {
        let run = generate(&GenOptions::sharded(3, 500, 6, 2, 0.5));
        let dir = tempfile::tempdir().unwrap();
        run.write(dir.path()).unwrap();
        let r = check_run(dir.path()).unwrap();
        let c = &r.checks["progress"];
        assert_eq!(c.state_word(), "n/a", "{c:#?}");
    }
}
