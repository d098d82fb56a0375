//! Atomicity of cross-shard transfers: every transaction is committed on every shard it
//! touched or on none, its decisions agree, nothing moves at prepare or abort, a commit
//! follows a yes vote on its shard, and the client heard what was decided.
//!
//! The agreed log of every shard (see `crate::shards`) is scanned once and its
//! transaction entries grouped by transaction id; each group is then judged on its own.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::EventType;
use crate::shards::{Brief, EntryValue, LogEntry, Phase, ShardId, Sharded, TxnId, Vote};
use std::collections::BTreeMap;

/// What one shard's log holds of one transaction.
#[derive(Debug, Default, Clone)]
struct OnShard {
    prepare: Option<LogEntry>,
    decision: Option<LogEntry>,
}

pub(crate) fn run(data: &Sharded) -> CheckResult {
    let mut check = Check::default();
    if data.fin.is_none() {
        check.unknown("there is no final.json, so no shard's log can be searched for transactions");
        return check.finish();
    }
    for (&shard, log) in &data.logs {
        for e in log.briefs().filter(|e| e.phase.is_none()) {
            let Some(id) = e.txn else { continue };
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::NoPhase,
                    format!(
                        "Shard {shard}'s entry at exec_index {} belongs to {} but names no phase.",
                        e.exec_index,
                        name(&id)
                    ),
                    data.indices_of(id.client, id.request_id),
                )
                .at_slots(vec![e.exec_index])
            });
        }
    }
    // Every transaction entry, grouped by transaction by sorting one flat vector of
    // (transaction, shard and slot) keys, 24 bytes an entry (32 when a client number is
    // too large to pack; a map of maps takes several times the memory).
    let all_pack = data
        .logs
        .values()
        .flat_map(|l| l.whole_briefs())
        .filter_map(|e| e.txn)
        .all(|t| pack(t).is_some());
    if all_pack {
        judge_all(data, check, |e| e.txn.and_then(pack), unpack)
    } else {
        judge_all(data, check, |e| e.txn, |t| t)
    }
}

/// A transaction id in two integers ordered as it is, when its client fits 32 bits.
fn pack(t: TxnId) -> Option<(u64, u64)> {
    let client = u32::try_from(t.client).ok()?;
    Some((
        (u64::from(t.coordinator) << 32) | u64::from(client),
        t.request_id,
    ))
}

fn unpack((high, request_id): (u64, u64)) -> TxnId {
    TxnId {
        coordinator: (high >> 32) as ShardId,
        client: high & 0xffff_ffff,
        request_id,
    }
}

/// The check with transactions keyed by `key` and given back by `unkey`.
fn judge_all<K: Ord + Copy>(
    data: &Sharded,
    mut check: Check,
    key: impl FnMut(&Brief) -> Option<K>,
    unkey: impl Fn(K) -> TxnId,
) -> CheckResult {
    let Some(entries) = data.sorted_entries(key) else {
        check.unknown("final.json has more shards than the check can group (a million)");
        return check.finish();
    };
    let txns = || {
        entries.chunk_by(|a, b| a.0 == b.0).map(|group| {
            let on = group.iter().filter_map(|&(_, at)| data.unpack(at));
            (unkey(group[0].0), on_shards(on))
        })
    };
    check.count("cross-shard transactions", txns().count() as u64);
    for (id, shards) in txns() {
        judge(data, &mut check, id, &shards);
    }
    for (id, shards) in txns() {
        answer_matches(data, &mut check, &id, &shards);
    }
    check.finish()
}

/// One transaction's entries (sorted by shard, then position) as each shard's prepare
/// and decision (the last of each, if a shard logged one twice).
fn on_shards(group: impl Iterator<Item = (ShardId, LogEntry)>) -> BTreeMap<ShardId, OnShard> {
    let mut out: BTreeMap<ShardId, OnShard> = BTreeMap::new();
    for (shard, e) in group {
        let slot = out.entry(shard).or_default();
        match e.phase {
            Some(Phase::Prepare) => slot.prepare = Some(e),
            Some(Phase::Commit | Phase::Abort) => slot.decision = Some(e),
            None => {}
        }
    }
    out
}

fn name(id: &TxnId) -> String {
    Named(*id).to_string()
}

/// A transaction's name in a finding, written only when one is reported.
struct Named(TxnId);

impl std::fmt::Display for Named {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let id = &self.0;
        write!(
            f,
            "transaction (coordinator shard {}, client {}, request {})",
            id.coordinator, id.client, id.request_id
        )
    }
}

fn judge(data: &Sharded, check: &mut Check, id: TxnId, shards: &BTreeMap<ShardId, OnShard>) {
    let indices = || data.indices_of(id.client, id.request_id);
    let t = Named(id);
    let value = shards
        .values()
        .find_map(|s| s.prepare.as_ref().or(s.decision.as_ref()))
        .map(|e| &e.value);
    let parts = value.and_then(EntryValue::transfer);
    let touched: Vec<ShardId> = match parts {
        Some((from, to, _)) => [data.shard_of(from), data.shard_of(to)]
            .into_iter()
            .flatten()
            .collect(),
        None => shards.keys().copied().collect(),
    };
    let committed: Vec<ShardId> = decided(shards, Phase::Commit);
    let aborted: Vec<ShardId> = decided(shards, Phase::Abort);
    if !committed.is_empty() && !aborted.is_empty() {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::SplitDecision,
                format!("The {t} was committed on shard {} but aborted on shard {}: a transfer must be applied on every shard it touches or on none.", join(&committed), join(&aborted)),
                indices(),
            )
        });
    }
    if !committed.is_empty() {
        for s in touched
            .iter()
            .filter(|s| !committed.contains(s) && !aborted.contains(s))
        {
            match shards.get(s).and_then(|o| o.prepare.as_ref()) {
                Some(_) => check.undecided("cross-shard transactions committed on one shard and still in doubt on another at the end"),
                None => check.anomaly(|| {
                    Anomaly::new(
                        AnomalyKind::PartialCommit,
                        format!("The {t} was committed on shard {} but shard {s}, which it touches, never prepared or decided it.", join(&committed)),
                        indices(),
                    )
                }),
            }
        }
    }
    for (&s, on) in shards {
        per_shard(check, &t, s, on, parts, data, &indices, shards);
    }
}

#[allow(clippy::too_many_arguments)]
fn per_shard(
    check: &mut Check,
    t: &Named,
    s: ShardId,
    on: &OnShard,
    parts: Option<(&str, &str, i64)>,
    data: &Sharded,
    indices: &dyn Fn() -> Vec<u64>,
    all: &BTreeMap<ShardId, OnShard>,
) {
    if let Some(p) = &on.prepare {
        if p.applied().unwrap_or(0) != 0 {
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::AppliedAtPrepare,
                    format!("Shard {s} applied {} at the prepare of the {t} (exec_index {}); a participant may apply only at commit.", p.applied().unwrap_or(0), p.exec_index),
                    indices(),
                )
                .at_slots(vec![p.exec_index])
            });
        }
    }
    let Some(d) = &on.decision else { return };
    if d.phase == Some(Phase::Abort) && d.applied().unwrap_or(0) != 0 {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::AppliedAtAbort,
                format!(
                    "Shard {s} applied {} at the abort of the {t} (exec_index {}).",
                    d.applied().unwrap_or(0),
                    d.exec_index
                ),
                indices(),
            )
            .at_slots(vec![d.exec_index])
        });
    }
    if d.phase != Some(Phase::Commit) {
        return;
    }
    let voted_yes = on
        .prepare
        .as_ref()
        .is_some_and(|p| p.vote == Some(Vote::Yes) && p.exec_index < d.exec_index);
    if !voted_yes {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::CommitWithoutPrepare,
                format!("Shard {s} committed the {t} at exec_index {} without having prepared it with a yes vote before.", d.exec_index),
                indices(),
            )
            .at_slots(vec![d.exec_index])
        });
    }
    if let Some(no) = all
        .iter()
        .find(|(_, o)| o.prepare.as_ref().is_some_and(|p| p.vote == Some(Vote::No)))
    {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::CommitDespiteNo,
                format!(
                    "Shard {s} committed the {t} although shard {} voted no at prepare.",
                    no.0
                ),
                indices(),
            )
            .at_slots(vec![d.exec_index])
        });
    }
    if let Some((from, to, amount)) = parts {
        let expected = if data.shard_of(from) == Some(s) {
            -amount
        } else if data.shard_of(to) == Some(s) {
            amount
        } else {
            0
        };
        let applied = d.applied().unwrap_or(0);
        if applied != expected {
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::WrongAmount,
                    format!("Shard {s} applied {applied} at the commit of the {t} (exec_index {}) where {expected} was due.", d.exec_index),
                    indices(),
                )
                .at_slots(vec![d.exec_index])
            });
        }
    }
}

fn decided(shards: &BTreeMap<ShardId, OnShard>, phase: Phase) -> Vec<ShardId> {
    shards
        .iter()
        .filter(|(_, o)| o.decision.as_ref().is_some_and(|d| d.phase == Some(phase)))
        .map(|(&s, _)| s)
        .collect()
}

fn join(shards: &[ShardId]) -> String {
    shards
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(" and ")
}

/// A client told `ok` must see the transaction committed; one told it failed for
/// insufficient funds must see it aborted everywhere.
fn answer_matches(
    data: &Sharded,
    check: &mut Check,
    id: &TxnId,
    shards: &BTreeMap<ShardId, OnShard>,
) {
    let Some(o) = data.op_by_key.get(id.client, id.request_id) else {
        return;
    };
    let op = &data.ops[o];
    let Some(c) = &op.complete else { return };
    let committed = !decided(shards, Phase::Commit).is_empty();
    let bad = match c.kind {
        EventType::Ok => !committed,
        EventType::Fail => committed,
        _ => false,
    };
    if bad {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::AnswerContradictsDecision,
                format!(
                    "{} was answered {} but its {} was {} on the shards.",
                    op.describe(),
                    c.kind,
                    name(id),
                    if committed {
                        "committed"
                    } else {
                        "not committed"
                    }
                ),
                op.indices(),
            )
        });
    }
}
