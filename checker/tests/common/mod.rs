//! Helpers shared by the integration tests: small hand-written runs.
#![allow(dead_code)]

use checker::final_state::{ExecutedEntry, FinalState, NodeFinal};
use checker::history::{values, Event, EventType, HistoryWriter};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

pub const RUN_TOML: &str =
    "seed = 1\naccounts = [\"A\", \"B\"]\ninitial_balance = 10\n[extra]\nignored = true\n";

/// Writes history.jsonl (events numbered in order), and final.json / run.toml when given.
pub fn write_run(dir: &Path, events: &[Event], fin: Option<&FinalState>, run_toml: Option<&str>) {
    let mut w = HistoryWriter::create(dir.join("history.jsonl")).unwrap();
    for (i, e) in events.iter().enumerate() {
        let e = e.clone().at(i as u64, 1_000 * (i as u64 + 1));
        w.append(&e).unwrap();
    }
    if let Some(f) = fin {
        f.write(dir.join("final.json")).unwrap();
    }
    if let Some(t) = run_toml {
        std::fs::write(dir.join("run.toml"), t).unwrap();
    }
}

pub fn invoke_transfer(p: u64, rid: u64, from: &str, to: &str, amount: i64) -> Event {
    Event::invoke(p, rid, "transfer", values::transfer(from, to, amount))
}

pub fn ok_transfer(p: u64, rid: u64, t: (&str, &str, i64), after: (i64, i64), exec: u64) -> Event {
    Event::client(
        EventType::Ok,
        p,
        rid,
        "transfer",
        values::transfer_ok(t.0, t.1, t.2, after.0, after.1),
    )
    .on_node("n1")
    .with_exec_index(exec)
}

pub fn entry(
    exec: u64,
    client: u64,
    rid: u64,
    f: &str,
    value: Value,
    kind: EventType,
) -> ExecutedEntry {
    ExecutedEntry {
        exec_index: exec,
        client,
        request_id: rid,
        f: f.into(),
        value,
        kind,
    }
}

pub fn transfer_entry(
    exec: u64,
    client: u64,
    rid: u64,
    t: (&str, &str, i64),
    after: (i64, i64),
) -> ExecutedEntry {
    entry(
        exec,
        client,
        rid,
        "transfer",
        values::transfer_ok(t.0, t.1, t.2, after.0, after.1),
        EventType::Ok,
    )
}

/// A final state where every listed replica holds `log` and `balances`.
pub fn final_state(nodes: &[&str], log: &[ExecutedEntry], balances: &[(&str, i64)]) -> FinalState {
    let bal: BTreeMap<String, i64> = balances.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    FinalState {
        nodes: nodes
            .iter()
            .map(|n| {
                (
                    n.to_string(),
                    NodeFinal {
                        balances: Some(bal.clone()),
                        executed: log.to_vec(),
                        error: None,
                    },
                )
            })
            .collect(),
    }
}

/// `info` completions at `t_ns` for every client operation still open at the end of
/// `events`, numbered on from `index`: a generated run's last operations time out, so that
/// what a test appends after them is judged alone.
pub fn time_out_open(events: &[Event], index: &mut u64, t_ns: u64) -> Vec<Event> {
    use checker::history::Process;
    let mut open = BTreeMap::new();
    for e in events {
        match (e.kind, e.process) {
            (EventType::Invoke, Process::Client(c)) => open.insert(c, e),
            (_, Process::Client(c)) => open.remove(&c),
            _ => None,
        };
    }
    let mut infos = Vec::new();
    for (c, e) in open {
        *index += 1;
        let rid = e.request_id.expect("a generated invoke has a request id");
        let info = Event::client(EventType::Info, c, rid, &e.f, e.value.clone());
        infos.push(info.at(*index, t_ns));
    }
    infos
}

/// Appends `events` to the history.jsonl in `dir`.
pub fn append_history(dir: &Path, events: &[Event]) {
    let path = dir.join("history.jsonl");
    let mut history = std::fs::read_to_string(&path).unwrap();
    for e in events {
        history.push_str(&serde_json::to_string(e).unwrap());
        history.push('\n');
    }
    std::fs::write(&path, history).unwrap();
}
