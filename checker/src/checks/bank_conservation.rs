//! Conservation over the whole sharded bank: no balance is ever negative on any shard,
//! the shards together end with the total they started with, and every `read_all`
//! (one snapshot across shards) sums to that total and shows, on each shard, the state
//! at the position it was told there. A snapshot that mixes states from before and
//! after a cross-shard transfer is torn.
//!
//! Each shard's agreed log is replayed once, from run.toml's initial balances; the
//! `read_all` answers waiting at each position are compared as the replay passes it.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::EventType;
use crate::model::list;
use crate::shards::{Bank, ShardId, Sharded};
use std::collections::HashMap;

pub(crate) fn run(data: &Sharded) -> CheckResult {
    let mut check = Check::default();
    let Some(total) = data.total else {
        check.unknown("run.toml does not give initial_balance, so the bank's total is not known");
        return check.finish();
    };
    if data.fin.is_none() {
        snapshots_sum(data, &mut check, total);
        check.unknown("there is no final.json, so the shards' logs cannot be replayed");
        return check.finish();
    }
    // The bank's end total first: it is the headline, and the per-snapshot findings
    // that usually follow it could fill the stored anomalies.
    let mut end_total: Option<i128> = Some(0);
    for spec in &data.specs {
        let last = data
            .logs
            .get(&spec.id)
            .and_then(|l| l.last_index())
            .unwrap_or(0);
        let sum = data
            .replay_shard(spec.id, last, |_, _, _| {})
            .ok()
            .map(|b| b.sum());
        end_total = end_total.zip(sum).map(|(t, s)| t + s);
    }
    match end_total {
        Some(t) if t != total => check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::SumDrift,
                format!("Replaying every shard's log, the bank ends with {t} in all instead of {total}."),
                Vec::new(),
            )
        }),
        Some(_) => check.count("shards replayed to the end", data.specs.len() as u64),
        None => {}
    }
    snapshots_sum(data, &mut check, total);
    for spec in &data.specs {
        replay_one(data, &mut check, spec.id);
    }
    check.finish()
}

/// Every `read_all` answer sums to the total and has no negative balance.
fn snapshots_sum(data: &Sharded, check: &mut Check, total: i128) {
    for op in data.ops.iter().filter(|o| o.f == "read_all") {
        let Some(c) = op.complete.as_ref().filter(|c| c.kind == EventType::Ok) else {
            continue;
        };
        let Some(balances) = c.value.balances() else {
            continue;
        };
        check.count("read_all snapshots", 1);
        let sum: i128 = balances.iter().filter_map(|b| b.1).map(i128::from).sum();
        if sum != total {
            let shards: Vec<String> = c
                .positions
                .iter()
                .map(|(s, p)| format!("shard {s} at {p}"))
                .collect();
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::TornSnapshot,
                    format!(
                        "{} (history index {}) sums to {sum} instead of {total}: the snapshot ({}) is torn.",
                        op.describe(),
                        c.index,
                        if shards.is_empty() { "no positions".into() } else { shards.join(", ") }
                    ),
                    op.indices(),
                )
            });
        }
        if let Some((a, b)) = balances
            .iter()
            .find_map(|&(a, b)| Some((a, b?)).filter(|x| x.1 < 0))
        {
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::NegativeBalance,
                    format!(
                        "{} (history index {}) saw account {a} at {b}.",
                        op.describe(),
                        c.index
                    ),
                    op.indices(),
                )
            });
        }
        let missing: Vec<ShardId> = data
            .specs
            .iter()
            .map(|s| s.id)
            .filter(|s| !c.positions.contains_key(s))
            .collect();
        if !missing.is_empty() {
            check.note(format!(
                "{} (history index {}) has no position on shard {}, so its snapshot there is not compared with the log",
                op.describe(),
                c.index,
                list(&missing.iter().map(|&s| u64::from(s)).collect::<Vec<_>>())
            ));
        }
    }
}

/// Replays shard `id`, comparing the read_all parts told its positions.
fn replay_one(data: &Sharded, check: &mut Check, id: ShardId) {
    let last = data.logs.get(&id).and_then(|l| l.last_index()).unwrap_or(0);
    let mut waiting: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, op) in data.ops.iter().enumerate() {
        if let Some(c) = op
            .complete
            .as_ref()
            .filter(|c| c.kind == EventType::Ok && op.f == "read_all")
        {
            if let Some(&p) = c.positions.get(&id) {
                waiting.entry(p).or_default().push(i);
            }
        }
    }
    let mut negatives = 0u64;
    let replay = data.replay_shard(id, last, |exec, _, bank| {
        if let Some((a, b)) = bank.negative() {
            negatives += 1;
            if negatives == 1 {
                check.anomaly(|| {
                    Anomaly::new(
                        AnomalyKind::NegativeBalance,
                        format!("Replaying shard {id}'s log, account {a} is at {b} after exec_index {exec}."),
                        Vec::new(),
                    )
                    .at_slots(vec![exec])
                });
            }
        }
        for &o in waiting.get(&exec).into_iter().flatten() {
            compare_snapshot(data, check, o, id, exec, bank);
        }
    });
    if let Err(gap) = replay {
        check.unknown(format!(
            "shard {id}'s log has no entry at exec_index {gap}, so it cannot be replayed past it"
        ));
    }
}

/// A read_all's part on shard `id` must be the shard's state at its position there.
fn compare_snapshot(
    data: &Sharded,
    check: &mut Check,
    o: usize,
    id: ShardId,
    exec: u64,
    bank: &Bank,
) {
    let op = &data.ops[o];
    let Some(seen) = op.complete.as_ref().and_then(|c| c.value.balances()) else {
        return;
    };
    let diffs: Vec<String> = bank
        .iter()
        .filter_map(|(a, b)| {
            let s = seen.iter().find(|s| s.0 == a).and_then(|s| s.1);
            (s != Some(b)).then(|| {
                format!(
                    "{a}: {} instead of {b}",
                    s.map_or("nothing".into(), |s| s.to_string())
                )
            })
        })
        .collect();
    check.count("read_all shard parts compared", 1);
    if !diffs.is_empty() {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::TornSnapshot,
                format!(
                    "{} was told position {exec} on shard {id} but saw there {}: its snapshot is not the shard's state at that position.",
                    op.describe(),
                    diffs.join(", ")
                ),
                op.indices(),
            )
            .at_slots(vec![exec])
        });
    }
}
