//! Per-shard agreement: the replicas of one shard executed the same log, each without
//! gaps, and end with the balances their shard's log produces; every replica sits in
//! the shard run.toml puts it in.
//!
//! This is the classic agreement check (`super::agreement`) run once per shard: its
//! accumulator words the divergences, jumps and balance mismatches, with replicas named
//! with their shard; the shard's agreed log is the union of its replicas' logs. The logs
//! are compared while final.json streams in (`crate::run::shard_load`); the balances here.

use super::agreement::Agreement;
use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::final_state::NodeState;
use crate::shards::{Bank, ShardId, ShardNodeState, Sharded};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// `agreement` holds what streaming final.json found (divergences, jumps;
/// `crate::run::shard_load`); the final balances are compared here, once every log is laid.
pub(crate) fn run(data: &Sharded, mut agreement: Agreement) -> CheckResult {
    let Some(nodes) = &data.fin else {
        return agreement.finish(None);
    };
    let mut states = Vec::new();
    let replayed = replayed(data, nodes);
    for node in nodes {
        let label = node.label();
        let bank = replayed.get(&(node.shard, node.last));
        balances(&mut agreement, &label, node, bank);
        states.push(NodeState {
            name: label,
            balances: node.balances.as_ref().map(|_| Vec::new()),
            error: node.error.clone(),
            first: node.first,
            last: node.last,
            entries: node.entries,
        });
    }
    let mut result = agreement.finish(Some(&states));
    let mut extra = Check::default();
    placement(data, &mut extra);
    let extra = extra.finish();
    if extra.anomaly_count > 0 {
        result.valid = super::Validity::Invalid;
        result.anomaly_count += extra.anomaly_count;
        result.anomalies.extend(extra.anomalies);
    }
    result
}

/// Per (shard, last index of a replica that fetched its balances), the shard's state
/// there: each shard replayed once, up to the furthest such index. A state the replay
/// cannot reach (a gap in the log before it) is missing.
fn replayed(data: &Sharded, nodes: &[ShardNodeState]) -> HashMap<(ShardId, u64), Bank> {
    let mut wanted: BTreeMap<ShardId, BTreeSet<u64>> = BTreeMap::new();
    for n in nodes.iter().filter(|n| n.balances.is_some()) {
        wanted.entry(n.shard).or_default().insert(n.last);
    }
    let mut out = HashMap::new();
    for (shard, lasts) in wanted {
        let upto = lasts.last().copied().unwrap_or(0);
        // A gap ends the replay: the states past it stay missing.
        let _ = data.replay_shard(shard, upto, |exec, _, bank| {
            if lasts.contains(&exec) {
                out.insert((shard, exec), bank.clone());
            }
        });
        if lasts.contains(&0) {
            if let Ok(bank) = data.replay_shard(shard, 0, |_, _, _| {}) {
                out.insert((shard, 0), bank);
            }
        }
    }
    out
}

/// A replica's final balances against the replay of its shard's agreed log up to its
/// last index (`None` when the log has a gap before it).
fn balances(agreement: &mut Agreement, label: &str, node: &ShardNodeState, bank: Option<&Bank>) {
    let Some(got) = &node.balances else {
        return;
    };
    match bank {
        Some(bank) => {
            let diffs: Vec<(String, String, String)> = bank
                .iter()
                .filter(|&(a, b)| got.get(a) != Some(&b))
                .map(|(a, b)| {
                    (
                        a.to_string(),
                        got.get(a).map_or("nothing".into(), i64::to_string),
                        b.to_string(),
                    )
                })
                .collect();
            if diffs.is_empty() {
                agreement.balances_checked();
            } else {
                agreement.balances_differ(label, node.last, &diffs);
            }
        }
        None => agreement.balances_undecided(),
    }
}

/// Every replica claims a shard run.toml has, and one that lists it among its nodes.
fn placement(data: &Sharded, check: &mut Check) {
    let Some(nodes) = &data.fin else { return };
    for node in nodes {
        let name = &node.name;
        let replica = crate::final_state::replica_name(name);
        match data.spec(node.shard) {
            None => check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::UnknownShard,
                    format!("Replica {name} says it is in shard {}, which run.toml does not have.", node.shard),
                    Vec::new(),
                )
            }),
            Some(s) if !s.nodes.is_empty() && !s.nodes.iter().any(|n| n == replica) => check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::WrongShard,
                    format!("Replica {name} says it is in shard {}, but run.toml does not list it there.", node.shard),
                    Vec::new(),
                )
            }),
            Some(_) => {}
        }
    }
}
