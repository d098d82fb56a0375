//! Well-formed, for a sharded run: the history and logs have the structure the other
//! sharded checks assume, as `well_formed` demands of a classic run.
//!
//! One pass over the history follows each client: one operation in flight at a time,
//! one completion per invocation, a retry repeating its command and a completion naming
//! the command invoked. Each completion's positions must be on shards run.toml lists,
//! an `ok` must carry at least one (without one it cannot be replayed), and a
//! `read_all` snapshot one on every shard. Then the logs: every transaction is
//! coordinated by its source account's shard (docs/sharded.md). Each finding names
//! its line and makes the verdict `unknown`; the other checks still run.

use super::well_formed::{At, WellFormed};
use super::{AnomalyKind, CheckResult};
use crate::history::{EventType, Process};
use crate::model::FxMap;
use crate::shards::{EntryValue, ShardEvent, ShardId, ShardSpec, Sharded, TxnId};
use std::collections::BTreeSet;

/// A client's operation in flight: its request, where it was invoked, what it asked.
struct Open {
    rid: u64,
    at: At,
    value: EntryValue,
}

/// The pass over the history, one line at a time (the history streams and is not
/// held); [`Pass::finish`] adds the logs' findings once final.json is read.
#[derive(Default)]
pub(crate) struct Pass {
    wf: WellFormed,
    open: FxMap<u64, Open>,
    /// Per client, its last invocation (request, index, value) and last completion.
    invoked: FxMap<u64, (u64, u64, EntryValue)>,
    done: FxMap<u64, (u64, u64)>,
    client_events: u64,
}

impl Pass {
    /// Follows history line `line`.
    pub fn event(&mut self, specs: &[ShardSpec], line: u64, e: &ShardEvent) {
        let (Process::Client(c), Some(rid)) = (e.process, e.request_id) else {
            return;
        };
        self.client_events += 1;
        let at = At {
            line,
            index: e.index,
        };
        let wf = &mut self.wf;
        if e.kind == EventType::Invoke {
            if let Some(busy) = self.open.get(&c) {
                wf.overlap(at, busy.at, c, rid, busy.rid);
            }
            match self.invoked.get(&c).filter(|p| p.0 == rid) {
                Some((prev, first, was)) => {
                    if was != &e.value {
                        let (was, now) = (was.to_string(), e.value.to_string());
                        wf.malformed(
                            AnomalyKind::RetryChangedCommand,
                            format!("At {at}, client {c} retries request {prev} as {now}, but it was invoked at history index {first} as {was}: a retry must repeat its command, so which one the request means is unknown."),
                            vec![*first, at.index],
                        );
                    }
                }
                None => {
                    self.invoked.insert(c, (rid, e.index, e.value.clone()));
                }
            }
            let value = e.value.clone();
            self.open.insert(c, Open { rid, at, value });
            return;
        }
        match self.open.remove(&c) {
            Some(o) if o.rid == rid => {
                same_command(wf, at, &o, e);
                self.done.insert(c, (rid, e.index));
            }
            other => {
                if let Some(o) = other {
                    self.open.insert(c, o);
                }
                match self.done.get(&c) {
                    Some(&(r, index)) if r == rid => wf.duplicate(at, index, c, rid),
                    _ => wf.orphan(at, c, rid, e.kind.as_str()),
                }
            }
        }
        positions(specs, wf, at, c, e);
    }

    /// The verdict, with the logs' findings.
    pub fn finish(mut self, data: &Sharded) -> CheckResult {
        coordinators(data, &mut self.wf);
        self.wf.finish(self.client_events)
    }
}

/// The completion at `at` names the transfer its invocation `o` named.
fn same_command(wf: &mut WellFormed, at: At, o: &Open, e: &ShardEvent) {
    let Some(invoked) = o.value.transfer() else {
        return;
    };
    let v = &e.value;
    let told = (
        v.str_field("from"),
        v.str_field("to"),
        v.i64_field("amount"),
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
fn positions(specs: &[ShardSpec], wf: &mut WellFormed, at: At, c: u64, e: &ShardEvent) {
    let rid = e.request_id.unwrap_or(0);
    let empty = Default::default();
    let told = e.positions.as_ref().unwrap_or(&empty);
    for &s in told.keys().filter(|&&s| !specs.iter().any(|x| x.id == s)) {
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
                "At {at}, client {c}'s request {rid} ({}) is answered ok with no position on any shard: a sharded answer that executed names where (docs/sharded.md), so it cannot be replayed.",
                e.f
            ),
            vec![at.index],
        );
    } else if e.f == "read_all" {
        let missing: Vec<String> = specs
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
        // Only transaction entries are made whole.
        for b in log.briefs() {
            let (Some(txn), Some(e)) = (b.txn, b.txn.and_then(|_| log.get(&b.exec_index))) else {
                continue;
            };
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
