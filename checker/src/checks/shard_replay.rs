//! Replay per shard: every answer a client saw equals what replaying its shard's
//! agreed log produces at the position it was told there, and the entry at that
//! position is its own.
//!
//! Each shard is replayed once; the answers told a position on that shard wait in a
//! map from position and are compared as the replay passes it. A cross-shard transfer
//! is compared on each shard for the balance that shard holds (`from_balance` on the
//! source, `to_balance` on the destination); a read_all's parts are
//! bank-conservation's to compare.

use super::{Anomaly, Check, CheckResult};
use crate::history::EventType;
use crate::shards::{transfer_parts, Op, ShardEntry, ShardId, Sharded};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};

pub(crate) fn run(data: &Sharded) -> CheckResult {
    let mut check = Check::default();
    if data.fin.is_none() {
        check.unknown("there is no final.json, so there is no log to replay");
        return check.finish();
    }
    if data.initial_balance.is_none() {
        check.unknown("run.toml does not give initial_balance, so the logs cannot be replayed");
        return check.finish();
    }
    for spec in &data.specs {
        let mut waiting: HashMap<u64, Vec<usize>> = HashMap::new();
        for (i, op) in data.ops.iter().enumerate() {
            let told = op.complete.as_ref().filter(|c| c.kind != EventType::Info);
            if let Some(&p) = told.and_then(|c| c.positions.get(&spec.id)) {
                waiting.entry(p).or_default().push(i);
            }
        }
        let last = waiting.keys().copied().max().unwrap_or(0);
        let replay = data.replay_shard(spec.id, last, |exec, entry, bank| {
            for &o in waiting.get(&exec).into_iter().flatten() {
                compare(data, &mut check, spec.id, exec, entry, bank, &data.ops[o]);
            }
        });
        if let Err(gap) = replay {
            check.undecided("shards whose log has a gap before a position clients were told");
            check.note(format!(
                "shard {}'s log has no entry at exec_index {gap}",
                spec.id
            ));
        }
    }
    check.finish()
}

fn compare(
    data: &Sharded,
    check: &mut Check,
    shard: ShardId,
    exec: u64,
    entry: &ShardEntry,
    bank: &BTreeMap<String, i64>,
    op: &Op,
) {
    let Some(c) = &op.complete else { return };
    check.count("answers compared with the replay", 1);
    if (entry.client, entry.request_id) != (op.client, op.request_id) {
        check.anomaly(|| {
            Anomaly::new(
                "position-mismatch",
                format!(
                    "{} was told position {exec} on shard {shard}, but the log holds client {}'s request {} there.",
                    op.describe(),
                    entry.client,
                    entry.request_id
                ),
                op.indices(),
            )
            .at_slots(vec![exec])
        });
        return;
    }
    let mut expected: Vec<(&str, String, i64)> = Vec::new();
    match op.f.as_str() {
        "transfer" if c.kind == EventType::Ok => {
            if let Some((from, to, _)) = transfer_parts(&op.value) {
                for (field, account) in [("from_balance", from), ("to_balance", to)] {
                    if data.shard_of(account) == Some(shard) {
                        if let Some(&b) = bank.get(account) {
                            expected.push((field, account.to_string(), b));
                        }
                    }
                }
            }
        }
        "read" if c.kind == EventType::Ok => {
            if let Some(a) = op.value.get("account").and_then(Value::as_str) {
                if let Some(&b) = bank.get(a) {
                    expected.push(("balance", a.to_string(), b));
                }
            }
        }
        _ => {}
    }
    for (field, account, b) in expected {
        let seen = c.value.get(field).and_then(Value::as_i64);
        if seen != Some(b) {
            check.anomaly(|| {
                Anomaly::new(
                    "wrong-result",
                    format!(
                        "{} was told {field} {} for {account}, but replaying shard {shard}'s log up to position {exec} gives {b}.",
                        op.describe(),
                        seen.map_or("nothing".into(), |s| s.to_string())
                    ),
                    op.indices(),
                )
                .at_slots(vec![exec])
            });
        }
    }
}
