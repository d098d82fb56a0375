//! Per-shard agreement: the replicas of one shard executed the same log, each without
//! gaps, and end with the balances their shard's log produces; every replica sits in
//! the shard run.toml puts it in.
//!
//! This is the classic agreement check (`super::agreement`) run once per shard: its
//! accumulator words the divergences, jumps and balance mismatches, with replicas named
//! with their shard; the shard's agreed log is the union of its replicas' logs.

use super::agreement::{Agreement, Side};
use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::final_state::NodeState;
use crate::shards::{ShardNode, Sharded};

pub(crate) fn run(data: &Sharded) -> CheckResult {
    let Some(fin) = &data.fin else {
        return Agreement::default().finish(None);
    };
    let mut agreement = Agreement::default();
    let mut states = Vec::new();
    for (name, node) in &fin.nodes {
        let label = format!("{name} (shard {})", node.shard);
        compare(data, &mut agreement, &label, node);
        states.push(NodeState {
            name: label,
            balances: node.balances.as_ref().map(|_| Vec::new()),
            error: node.error.clone(),
            first: node.executed.first().map_or(0, |e| e.exec_index),
            last: node.executed.last().map_or(0, |e| e.exec_index),
            entries: node.executed.len() as u64,
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

/// Lays one replica's log over its shard's agreed log.
fn compare(data: &Sharded, agreement: &mut Agreement, label: &str, node: &ShardNode) {
    let log = data.logs.get(&node.shard);
    let mut prev: Option<u64> = None;
    for e in &node.executed {
        if let Some(p) = prev.filter(|&p| e.exec_index != p + 1) {
            agreement.jump(label, p, e.exec_index);
        }
        prev = Some(e.exec_index);
        let Some(agreed) = log.and_then(|l| l.get(&e.exec_index)) else {
            continue;
        };
        if std::ptr::eq(agreed, e) || agreed == e {
            agreement.compared();
            continue;
        }
        let owner =
            owner_of(data, node.shard, e.exec_index).unwrap_or_else(|| "another replica".into());
        agreement.divergence(
            e.exec_index,
            Side {
                node: &owner,
                entry: describe(agreed),
            },
            Side {
                node: label,
                entry: describe(e),
            },
        );
    }
    if node.balances.is_none() {
        return;
    }
    let last = node.executed.last().map_or(0, |e| e.exec_index);
    match data.replay_shard(node.shard, last, |_, _, _| {}) {
        Ok(bank) => {
            let got = node.balances.as_ref().cloned().unwrap_or_default();
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
                agreement.balances_differ(label, last, &diffs);
            }
        }
        Err(_) => agreement.balances_undecided(),
    }
}

/// The replica that gave the agreed entry (the first, by name, in that shard).
fn owner_of(data: &Sharded, shard: u32, exec: u64) -> Option<String> {
    let fin = data.fin.as_ref()?;
    fin.nodes
        .iter()
        .find(|(_, n)| n.shard == shard && n.executed.iter().any(|e| e.exec_index == exec))
        .map(|(name, n)| format!("{name} (shard {})", n.shard))
}

fn describe(e: &crate::shards::ShardEntry) -> String {
    let mut s = format!(
        "client {}'s request {} {} {}",
        e.client, e.request_id, e.f, e.value
    );
    if let Some(p) = e.phase {
        s.push_str(&format!(" ({p:?} applying {})", e.applied.unwrap_or(0)).to_lowercase());
    }
    s
}

/// Every replica claims a shard run.toml has, and one that lists it among its nodes.
fn placement(data: &Sharded, check: &mut Check) {
    let Some(fin) = &data.fin else { return };
    for (name, node) in &fin.nodes {
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
