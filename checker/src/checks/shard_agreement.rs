//! Per-shard agreement: the replicas of one shard executed the same log, each without
//! gaps, and end with the balances their shard's log produces; every replica sits in
//! the shard run.toml puts it in.
//!
//! This is the classic agreement check (`super::agreement`) run once per shard: its
//! accumulator words the divergences, jumps and balance mismatches, with replicas named
//! with their shard; the shard's agreed log is the union of its replicas' logs. The logs
//! are compared while final.json streams in (`crate::run::shard_load`); the balances here,
//! with the states of each shard's replay shared with the other checks
//! (`Sharded::replay_watched`).

use super::agreement::Agreement;
use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::final_state::NodeState;
use crate::shards::{Bank, LogEntry, ShardId, ShardNodeState, Sharded, Watch};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// The banks agreement compares the replicas' balances with, gathered from the shards'
/// shared replays (`Sharded::replay_watched`): per (shard, last index of a replica that
/// fetched its balances), the shard's state there. A state the replay cannot reach (a
/// gap in the log before it) is missing.
#[derive(Default)]
pub(crate) struct Replayed {
    wanted: BTreeMap<ShardId, BTreeSet<u64>>,
    banks: HashMap<(ShardId, u64), Bank>,
}

impl Replayed {
    pub fn new(data: &Sharded) -> Replayed {
        let mut wanted: BTreeMap<ShardId, BTreeSet<u64>> = BTreeMap::new();
        for n in data.fin.iter().flatten().filter(|n| n.balances.is_some()) {
            wanted.entry(n.shard).or_default().insert(n.last);
        }
        Replayed {
            wanted,
            banks: HashMap::new(),
        }
    }

    /// The shards whose states are wanted.
    pub fn shards(&self) -> impl Iterator<Item = ShardId> + '_ {
        self.wanted.keys().copied()
    }

    /// What follows shard `id`'s replay, if a state of it is wanted. The state before
    /// the log needs none.
    pub fn shard(&mut self, data: &Sharded, id: ShardId) -> Option<ShardWatch<'_>> {
        let lasts = self.wanted.get(&id)?;
        if lasts.contains(&0) {
            self.banks.insert((id, 0), data.initial_bank(id));
        }
        Some(ShardWatch {
            id,
            lasts,
            banks: &mut self.banks,
        })
    }
}

/// Agreement's part in one shard's replay: the states at the wanted indices.
pub(crate) struct ShardWatch<'r> {
    id: ShardId,
    lasts: &'r BTreeSet<u64>,
    banks: &'r mut HashMap<(ShardId, u64), Bank>,
}

impl Watch for ShardWatch<'_> {
    fn upto(&self) -> u64 {
        self.lasts.last().copied().unwrap_or(0)
    }

    fn step(&mut self, exec: u64, _: &LogEntry, bank: &Bank) {
        if self.lasts.contains(&exec) {
            self.banks.insert((self.id, exec), bank.clone());
        }
    }

    /// A gap ends the replay: the states past it stay missing.
    fn end(&mut self, _: Result<&Bank, u64>) {}
}

/// `agreement` holds what streaming final.json found (divergences, jumps;
/// `crate::run::shard_load`); the final balances are compared here with `replayed`,
/// once every log is laid.
pub(crate) fn run(data: &Sharded, mut agreement: Agreement, replayed: Replayed) -> CheckResult {
    let Some(nodes) = &data.fin else {
        return agreement.finish(None);
    };
    let mut states = Vec::new();
    for node in nodes {
        let label = node.label();
        let bank = replayed.banks.get(&(node.shard, node.last));
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
