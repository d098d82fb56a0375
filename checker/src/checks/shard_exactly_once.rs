//! Exactly-once per shard, with the transaction id: a request executes at most once on
//! each shard (a cross-shard one as one transaction, with at most one prepare and one
//! decision per shard), an acknowledged one is in the logs, one rejected before
//! proposal changed nothing, and nothing is in a log that no client asked for.
//!
//! One pass over every shard's agreed log groups its entries by (client, request id);
//! the groups are then compared with the operations of the history.

use super::{Anomaly, AnomalyKind, Check, CheckResult, OpFunction};
use crate::history::EventType;
use crate::shards::{Brief, Phase, ShardId, Sharded, TxnId};
use std::collections::BTreeMap;

type Key = (u64, u64);

pub(crate) fn run(data: &Sharded) -> CheckResult {
    let mut check = Check::default();
    if data.fin.is_none() {
        check.unknown("there is no final.json, so the logs cannot be searched for operations");
        return check.finish();
    }
    // Every entry by (client, request id), then by shard and position: one flat
    // vector of 16 bytes an entry (24 when a client or request number is too large to
    // pack), sorted by plain integers (a map of small vectors takes several times the
    // memory).
    let all_pack = data
        .logs
        .values()
        .flat_map(|l| l.whole_briefs())
        .all(|e| pack(e.client, e.request_id).is_some());
    if all_pack {
        judge_all(data, check, pack, unpack)
    } else {
        judge_all(data, check, |c, r| Some((c, r)), |k| k)
    }
}

/// A (client, request id) in one integer ordered as the pair, when they fit.
fn pack(client: u64, request_id: u64) -> Option<u64> {
    (client < 1 << 24 && request_id < 1 << 40).then_some((client << 40) | request_id)
}

fn unpack(k: u64) -> Key {
    (k >> 40, k & ((1 << 40) - 1))
}

/// The check with (client, request id) keyed by `key` (`None`: no entry can have it)
/// and given back by `unkey`.
fn judge_all<K: Ord + Copy>(
    data: &Sharded,
    mut check: Check,
    key: impl Fn(u64, u64) -> Option<K>,
    unkey: impl Fn(K) -> Key,
) -> CheckResult {
    let Some(keyed) = data.sorted_entries(|e| key(e.client, e.request_id)) else {
        check.unknown("final.json has more shards than the check can group (a million)");
        return check.finish();
    };
    let groups = || keyed.chunk_by(|a, b| a.0 == b.0);
    check.count("requests in the logs", groups().count() as u64);
    let mut entries: Vec<(ShardId, Brief)> = Vec::new();
    for group in groups() {
        entries.clear();
        entries.extend(group.iter().filter_map(|&(_, at)| data.brief(at)));
        judge_entries(data, &mut check, unkey(group[0].0), &entries);
    }
    let of = |k: Option<K>| {
        let k = k?;
        let at = keyed.partition_point(|e| e.0 < k);
        let group = &keyed[at..];
        let n = group.iter().take_while(|e| e.0 == k).count();
        (n > 0).then(|| &group[..n])
    };
    for op in &data.ops {
        let Some(c) = &op.complete else { continue };
        let entries = of(key(op.client, op.request_id));
        let changed = entries.is_some_and(|es| {
            es.iter()
                .filter_map(|&(_, at)| data.brief(at))
                .any(|(_, e)| e.applies)
        });
        let rejected = c.kind == EventType::Fail && c.positions.is_empty();
        if c.kind == EventType::Ok && entries.is_none() {
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::LostAck,
                    format!(
                        "{} was acknowledged, but no shard's log holds it.",
                        op.describe()
                    ),
                    op.indices(),
                )
                .about(OpFunction::parse(&op.f))
            });
        } else if rejected && changed {
            let err = c.value.str_field("error").unwrap_or("an error");
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::FailedApplied,
                    format!(
                        "{} failed with {err} before proposal, but a shard's log applies it.",
                        op.describe()
                    ),
                    op.indices(),
                )
                .about(OpFunction::parse(&op.f))
            });
        }
    }
    check.finish()
}

fn judge_entries(data: &Sharded, check: &mut Check, key: Key, entries: &[(ShardId, Brief)]) {
    let indices = || data.indices_of(key.0, key.1);
    if !data.op_by_key.contains(key.0, key.1) {
        let (s, e) = &entries[0];
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::Phantom,
                format!(
                    "Shard {s}'s log holds client {}'s request {} at exec_index {}, which no client invoked.",
                    key.0, key.1, e.exec_index
                ),
                Vec::new(),
            )
            .at_slots(vec![e.exec_index])
        });
    }
    let txns: Vec<TxnId> =
        entries
            .iter()
            .filter_map(|(_, e)| e.txn)
            .fold(Vec::new(), |mut v, t| {
                if !v.contains(&t) {
                    v.push(t);
                }
                v
            });
    if txns.len() > 1 {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::TwoTransactions,
                format!(
                    "Client {}'s request {} ran {} transactions (coordinators on shards {}); a retried request must never run two.",
                    key.0,
                    key.1,
                    txns.len(),
                    txns.iter().map(|t| t.coordinator.to_string()).collect::<Vec<_>>().join(" and ")
                ),
                indices(),
            )
        });
    }
    let kind = |e: &Brief| match e.phase {
        None => 0u8,
        Some(Phase::Prepare) => 1,
        Some(Phase::Commit | Phase::Abort) => 2,
    };
    let step = |(s, e): &(ShardId, Brief)| (*s, kind(e));
    let twice = entries
        .iter()
        .enumerate()
        .any(|(i, a)| entries[i + 1..].iter().any(|b| step(a) == step(b)));
    if !twice {
        return;
    }
    let mut seen: BTreeMap<(ShardId, u8), Vec<u64>> = BTreeMap::new();
    for (s, e) in entries {
        seen.entry((*s, kind(e))).or_default().push(e.exec_index);
    }
    for ((s, kind), at) in seen.iter().filter(|(_, at)| at.len() > 1) {
        let what = ["executed", "prepared", "decided"][*kind as usize];
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::DuplicateExecution,
                format!(
                    "Shard {s} {what} client {}'s request {} {} times, at exec_index {}.",
                    key.0,
                    key.1,
                    at.len(),
                    at.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")
                ),
                indices(),
            )
            .about(OpFunction::parse(&entries[0].1.f))
            .at_slots(at.clone())
        });
    }
}
