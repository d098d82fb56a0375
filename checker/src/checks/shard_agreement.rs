//! Per-shard agreement: the replicas of one shard executed the same log, each without
//! gaps, and end with the balances their shard's log produces; every replica sits in
//! the shard run.toml puts it in.
//!
//! This is the classic agreement check (`super::agreement`) run once per shard: its
//! accumulator words the divergences, jumps and balance mismatches, with replicas named
//! with their shard; the shard's agreed log is the union of its replicas' logs. The logs
//! are compared while final.json streams in (`crate::shard_load`); the balances here.

use super::agreement::Agreement;
use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::final_state::NodeState;
use crate::shards::{ShardNodeState, Sharded};

/// `agreement` holds what streaming final.json found (divergences, jumps;
/// `crate::shard_load`); the final balances are compared here, once every log is laid.
pub(crate) fn run(data: &Sharded, mut agreement: Agreement) -> CheckResult {
    let Some(nodes) = &data.fin else {
        return agreement.finish(None);
    };
    let mut states = Vec::new();
    for node in nodes {
        let label = node.label();
        balances(data, &mut agreement, &label, node);
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

/// A replica's final balances against the replay of its shard's agreed log up to its
/// last index.
fn balances(data: &Sharded, agreement: &mut Agreement, label: &str, node: &ShardNodeState) {
    let Some(got) = &node.balances else {
        return;
    };
    match data.replay_shard(node.shard, node.last, |_, _, _| {}) {
        Ok(bank) => {
            let diffs: Vec<(String, String, String)> = bank
                .iter()
                .filter(|(a, b)| got.get(*a) != Some(b))
                .map(|(a, b)| {
                    (
                        a.clone(),
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
        Err(_) => agreement.balances_undecided(),
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
