//! Well-formed, for a sharded run: the history and logs have the structure the other
//! sharded checks assume, as `well_formed` demands of a classic run.
//!
//! One pass over the history follows each client: one operation in flight at a time,
//! one completion per invocation, a retry repeating its command and a completion naming
//! the command invoked. Each completion's positions must be on shards run.toml lists,
//! an `ok` must carry at least one (without one it cannot be replayed), and a
//! `read_all` snapshot one on every shard. Then the logs: every transaction is
//! coordinated by its source account's shard (checker/SHARDS.md). Each finding names
//! its line and makes the verdict `unknown`; the other checks still run.

use super::well_formed::{At, WellFormed};
use super::{AnomalyKind, CheckResult};
use crate::history::{Event, EventType, Process};
use crate::shards::{transfer_parts, ShardId, Sharded, TxnId};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};

/// A client's operation in flight: its request, where it was invoked, what it asked.
struct Open<'a> {
    rid: u64,
    at: At,
    value: &'a Value,
}

pub(crate) fn run(data: &Sharded, events: &[Event], lines: &[u64]) -> CheckResult {
    let mut wf = WellFormed::default();
    let mut open: HashMap<u64, Open<'_>> = HashMap::new();
    // Per client, its last invocation (request, index, value) and last completion.
    let mut invoked: HashMap<u64, (u64, u64, &Value)> = HashMap::new();
    let mut done: HashMap<u64, (u64, u64)> = HashMap::new();
    let mut client_events = 0;
    for (e, &line) in events.iter().zip(lines) {
        let (Process::Client(c), Some(rid)) = (e.process, e.request_id) else {
            continue;
        };
        client_events += 1;
        let at = At {
            line,
            index: e.index,
        };
        if e.kind == EventType::Invoke {
            if let Some(busy) = open.get(&c) {
                wf.overlap(at, busy.at, c, rid, busy.rid);
            }
            if let Some(&(prev, first, was)) = invoked.get(&c).filter(|p| p.0 == rid) {
                if was != &e.value {
                    let (was, now) = (was.to_string(), e.value.to_string());
                    wf.malformed(
                        AnomalyKind::RetryChangedCommand,
                        format!("At {at}, client {c} retries request {prev} as {now}, but it was invoked at history index {first} as {was}: a retry must repeat its command, so which one the request means is unknown."),
                        vec![first, at.index],
                    );
                }
            } else {
                invoked.insert(c, (rid, e.index, &e.value));
            }
            open.insert(
                c,
                Open {
                    rid,
                    at,
                    value: &e.value,
                },
            );
            continue;
        }
        match open.remove(&c) {
            Some(o) if o.rid == rid => {
                same_command(&mut wf, at, &o, e);
                done.insert(c, (rid, e.index));
            }
            other => {
                if let Some(o) = other {
                    open.insert(c, o);
                }
                match done.get(&c) {
                    Some(&(r, index)) if r == rid => wf.duplicate(at, index, c, rid),
                    _ => wf.orphan(at, c, rid, e.kind.as_str()),
                }
            }
        }
        positions(data, &mut wf, at, c, e);
    }
    coordinators(data, &mut wf);
    wf.finish(client_events)
}

/// The completion at `at` names the transfer its invocation `o` named.
fn same_command(wf: &mut WellFormed, at: At, o: &Open<'_>, e: &Event) {
    let Some(invoked) = transfer_parts(o.value) else {
        return;
    };
    let v = &e.value;
    let told = (
        v.get("from").and_then(Value::as_str),
        v.get("to").and_then(Value::as_str),
        v.get("amount").and_then(Value::as_i64),
    );
    if let Some(now) = WellFormed::transfer_changed(invoked, told) {
        let (from, to, amount) = invoked;
        let was = format!("transfer {from}->{to} {amount}");
        let client = match e.process {
            Process::Client(c) => c,
            Process::Nemesis => return,
        };
        let rid = e.request_id.unwrap_or(0);
        wf.completion_changed(at, o.at.index, (client, rid), (&was, &now));
    }
}

/// The completion's positions are on shards that exist, an `ok` has one, and a
/// snapshot has one on every shard.
fn positions(data: &Sharded, wf: &mut WellFormed, at: At, c: u64, e: &Event) {
    let rid = e.request_id.unwrap_or(0);
    let told = e.positions.clone().unwrap_or_default();
    for &s in told.keys().filter(|&&s| data.spec(s).is_none()) {
        wf.malformed(
            AnomalyKind::UnknownShardPosition,
            format!(
                "At {at}, client {c}'s request {rid} is told a position on shard {s}, which run.toml's [[shards]] do not list: where it executed is unknown."
            ),
            vec![at.index],
        );
    }
    if e.kind != EventType::Ok {
        return;
    }
    if told.is_empty() {
        wf.malformed(
            AnomalyKind::OkWithoutPosition,
            format!(
                "At {at}, client {c}'s request {rid} ({}) is answered ok with no position on any shard: a sharded answer that executed names where (checker/SHARDS.md), so it cannot be replayed.",
                e.f
            ),
            vec![at.index],
        );
    } else if e.f == "read_all" {
        let missing: Vec<String> = data
            .specs
            .iter()
            .filter(|s| !told.contains_key(&s.id))
            .map(|s| s.id.to_string())
            .collect();
        if !missing.is_empty() {
            wf.malformed(
                AnomalyKind::MissingPosition,
                format!(
                    "At {at}, client {c}'s read_all (request {rid}) is ok without a position on shard {}: a snapshot is taken on every shard, so where its part there was taken is unknown.",
                    missing.join(", ")
                ),
                vec![at.index],
            );
        }
    }
}

/// Every transaction in the logs is coordinated by its source account's shard.
fn coordinators(data: &Sharded, wf: &mut WellFormed) {
    let mut seen: BTreeSet<TxnId> = BTreeSet::new();
    for (&shard, log) in &data.logs {
        for e in log.values() {
            let Some(txn) = e.txn else { continue };
            let source: Option<ShardId> = e
                .value
                .transfer()
                .and_then(|(from, _, _)| data.shard_of(from));
            if source == Some(txn.coordinator) || !seen.insert(txn) {
                continue;
            }
            let should = source.map_or("no shard run.toml lists".into(), |s| format!("shard {s}"));
            wf.malformed(
                AnomalyKind::BadCoordinator,
                format!(
                    "Shard {shard}'s log holds client {}'s request {} at exec_index {} as a transaction coordinated by shard {}, but its source account is on {should}: a transaction is coordinated by its source's shard, so which transaction this is is unknown.",
                    txn.client, txn.request_id, e.exec_index, txn.coordinator
                ),
                data.indices_of(txn.client, txn.request_id),
            );
        }
    }
}
