//! Replay per shard: every answer a client saw equals what replaying its shard's
//! agreed log produces at the position it was told there, and the entry at that
//! position is its own.
//!
//! Each shard is replayed once, the replay shared with bank conservation and agreement
//! (`Sharded::replay_watched`); the answers told a position on that shard wait, sorted
//! by position, and are compared as the replay passes it. A cross-shard transfer
//! is compared on each shard for the balance that shard holds (`from_balance` on the
//! source, `to_balance` on the destination); a read_all's parts are
//! bank-conservation's to compare. An answer of `fail` whose entry applied something
//! is `failed-but-applied`.
//!
//! Insufficient funds is judged where it was decided: a refusal logged as a plain entry
//! on the source's shard (`log-result` when the source held enough there), and an
//! answer saying so at the source shard's prepare of its transaction, or else at its
//! position there (`wrong-result`). An `ok` with no position cannot be replayed
//! (well-formed says so); a balance it shows that no state of the bank can hold is
//! `impossible-result` all the same.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::values::INSUFFICIENT_FUNDS;
use crate::history::EventType;
use crate::model::FxMap;
use crate::shards::{Bank, LogEntry, Op, Phase, ShardId, Sharded, Watch};

/// The check over the shards' shared replays (`Sharded::replay_watched`): made first,
/// it gives a [`ShardWatch`] for each shard in turn (in run.toml's order), then its
/// result.
pub(crate) struct Judge<'d> {
    data: &'d Sharded,
    check: Check,
    /// `None` when no log can be replayed (the check is then unknown).
    prepared: Option<FxMap<(ShardId, u64, u64), u64>>,
}

pub(crate) fn start(data: &Sharded) -> Judge<'_> {
    let mut check = Check::default();
    let prepared = if data.fin.is_none() {
        check.unknown("there is no final.json, so there is no log to replay");
        None
    } else if data.initial_balance.is_none() {
        check.unknown("run.toml does not give initial_balance, so the logs cannot be replayed");
        None
    } else {
        Some(source_prepares(data))
    };
    Judge {
        data,
        check,
        prepared,
    }
}

impl<'d> Judge<'d> {
    /// What follows shard `id`'s replay, if the check replays at all.
    pub fn shard(&mut self, id: ShardId) -> Option<ShardWatch<'_, 'd>> {
        let data = self.data;
        let prepared = self.prepared.as_ref()?;
        // (position, operation), sorted: the replay walks them as it passes each.
        let mut waiting: Vec<(u64, usize)> = Vec::new();
        let mut refused: Vec<(u64, usize)> = Vec::new();
        for (i, op) in data.ops.iter().enumerate() {
            let told = op.complete.as_ref().filter(|c| c.kind != EventType::Info);
            if let Some(&p) = told.and_then(|c| c.positions.get(&id)) {
                waiting.push((p, i));
            }
            if let Some(p) = decided_short(data, prepared, id, op) {
                refused.push((p, i));
            }
        }
        waiting.sort_unstable();
        refused.sort_unstable();
        let told_last = waiting.iter().chain(&refused).map(|w| w.0).max();
        let logged = data
            .logs
            .get(&id)
            .map_or(0, |l| l.last_index().unwrap_or(0));
        Some(ShardWatch {
            data,
            check: &mut self.check,
            id,
            last: told_last.unwrap_or(0).max(logged),
            told_last,
            waiting: Walk::new(waiting),
            refused: Walk::new(refused),
        })
    }

    pub fn finish(mut self) -> CheckResult {
        if self.prepared.is_some() {
            without_position(self.data, &mut self.check);
        }
        self.check.finish()
    }
}

/// The check's part in one shard's replay: the answers told a position there and the
/// refusals decided there, compared as the replay passes them.
pub(crate) struct ShardWatch<'j, 'd> {
    data: &'d Sharded,
    check: &'j mut Check,
    id: ShardId,
    /// The furthest of the log's end and the positions told.
    last: u64,
    told_last: Option<u64>,
    waiting: Walk,
    refused: Walk,
}

impl Watch for ShardWatch<'_, '_> {
    fn upto(&self) -> u64 {
        self.last
    }

    fn step(&mut self, exec: u64, entry: &LogEntry, bank: &Bank) {
        let (data, id) = (self.data, self.id);
        for k in self.waiting.at(exec) {
            let o = self.waiting.pairs[k].1;
            compare(data, self.check, id, exec, entry, bank, &data.ops[o]);
        }
        for k in self.refused.at(exec) {
            let o = self.refused.pairs[k].1;
            had_funds(self.check, id, exec, bank, &data.ops[o]);
        }
        logged_refusal(self.check, id, exec, entry, bank);
    }

    fn end(&mut self, end: Result<&Bank, u64>) {
        // Only a gap before a position some answer was told leaves one undecided.
        let Err(gap) = end else { return };
        if self.told_last.is_none_or(|p| p < gap) {
            return;
        }
        self.check
            .undecided("shards whose log has a gap before a position clients were told");
        self.check.note(format!(
            "shard {}'s log has no entry at exec_index {gap}",
            self.id
        ));
    }
}

/// Sorted (position, operation) pairs, walked as a replay passes the positions.
struct Walk {
    pairs: Vec<(u64, usize)>,
    next: usize,
}

impl Walk {
    fn new(pairs: Vec<(u64, usize)>) -> Walk {
        Walk { pairs, next: 0 }
    }

    /// The places in `pairs` of the operations at position `exec` (positions are
    /// passed in increasing order).
    fn at(&mut self, exec: u64) -> std::ops::Range<usize> {
        while self.pairs.get(self.next).is_some_and(|p| p.0 < exec) {
            self.next += 1;
        }
        let from = self.next;
        while self.pairs.get(self.next).is_some_and(|p| p.0 == exec) {
            self.next += 1;
        }
        from..self.next
    }
}

/// Per (source shard, client, request), the position of the source's prepare of the
/// transaction it coordinated for that request.
fn source_prepares(data: &Sharded) -> FxMap<(ShardId, u64, u64), u64> {
    let mut out = FxMap::default();
    for (&shard, log) in &data.logs {
        for e in log.briefs() {
            match e.txn {
                Some(t) if t.coordinator == shard && e.phase == Some(Phase::Prepare) => {
                    out.entry((shard, t.client, t.request_id))
                        .or_insert(e.exec_index);
                }
                _ => {}
            }
        }
    }
    out
}

/// Where on `shard` an answer of insufficient funds was decided, if `shard` holds its
/// source: at the source's prepare of its transaction, or else at its position there.
fn decided_short(
    data: &Sharded,
    prepared: &FxMap<(ShardId, u64, u64), u64>,
    shard: ShardId,
    op: &Op,
) -> Option<u64> {
    let c = op.complete.as_ref().filter(|c| c.kind == EventType::Fail)?;
    if c.value.str_field("error") != Some(INSUFFICIENT_FUNDS) {
        return None;
    }
    let (from, _, _) = op.value.transfer()?;
    if data.shard_of(from) != Some(shard) {
        return None;
    }
    prepared
        .get(&(shard, op.client, op.request_id))
        .or_else(|| c.positions.get(&shard))
        .copied()
}

/// A positive transfer between two accounts that `bank` (after the entry at its
/// position, which applied nothing) shows had the funds for it; `(from, balance,
/// amount)` if so.
fn enough<'v>(bank: &Bank, parts: Option<(&'v str, &'v str, i64)>) -> Option<(&'v str, i64, i64)> {
    let (from, to, amount) = parts?;
    let b = bank.get(from)?;
    (amount > 0 && from != to && b >= amount).then_some((from, b, amount))
}

/// An answer of insufficient funds, decided at `exec` on its source's shard.
fn had_funds(check: &mut Check, shard: ShardId, exec: u64, bank: &Bank, op: &Op) {
    check.count("insufficient-funds answers replayed", 1);
    let Some((from, b, amount)) = enough(bank, op.value.transfer()) else {
        return;
    };
    check.anomaly(|| {
        Anomaly::new(
            AnomalyKind::WrongResult,
            format!(
                "{} was told it failed for insufficient funds, but replaying shard {shard}'s log up to position {exec}, where that was decided, leaves {from} with {b} there, enough for {amount}.",
                op.describe()
            ),
            op.indices(),
        )
        .at_slots(vec![exec])
    });
}

/// A refusal the log records as insufficient funds, where the source held enough.
fn logged_refusal(check: &mut Check, shard: ShardId, exec: u64, entry: &LogEntry, bank: &Bank) {
    let refused = entry.txn().is_none()
        && entry.f == "transfer"
        && entry.kind == EventType::Fail
        && entry.value.str_field("error") == Some(INSUFFICIENT_FUNDS);
    if !refused {
        return;
    }
    let Some((from, b, amount)) = enough(bank, entry.value.transfer()) else {
        return;
    };
    check.anomaly(|| {
        Anomaly::new(
            AnomalyKind::LogResult,
            format!(
                "Shard {shard}'s log records client {}'s request {} (transfer of {amount} from {from}) at exec_index {exec} as failed for insufficient funds, but replaying the log leaves {from} with {b} there, enough for it.",
                entry.client, entry.request_id
            ),
            Vec::new(),
        )
        .at_slots(vec![exec])
    });
}

/// `ok` answers with no position: what they show must at least fit in the bank.
fn without_position(data: &Sharded, check: &mut Check) {
    let Some(total) = data.total else { return };
    for op in &data.ops {
        let Some(c) = op
            .complete
            .as_ref()
            .filter(|c| c.kind == EventType::Ok && c.positions.is_empty())
        else {
            continue;
        };
        for field in ["balance", "from_balance", "to_balance"] {
            let Some(b) = c.value.i64_field(field) else {
                continue;
            };
            if (0..=total).contains(&i128::from(b)) {
                continue;
            }
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::ImpossibleResult,
                    format!(
                        "{} was answered ok with no position to replay it at, and its {field} {b} is more than the whole bank holds ({total}) or less than nothing: no state of the bank gives it.",
                        op.describe()
                    ),
                    op.indices(),
                )
            });
        }
    }
}

fn compare(
    data: &Sharded,
    check: &mut Check,
    shard: ShardId,
    exec: u64,
    entry: &LogEntry,
    bank: &Bank,
    op: &Op,
) {
    let Some(c) = &op.complete else { return };
    check.count("answers compared with the replay", 1);
    if (entry.client, entry.request_id) != (op.client, op.request_id) {
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::PositionMismatch,
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
    if c.kind == EventType::Fail && entry.applies() {
        let error = c.value.str_field("error").unwrap_or("no error given");
        check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::FailedButApplied,
                format!(
                    "{} was told it failed ({error}) at position {exec} on shard {shard}, but the log applies it there.",
                    op.describe()
                ),
                op.indices(),
            )
            .at_slots(vec![exec])
        });
        return;
    }
    // At most two balances an answer: (field, account, balance by the replay).
    let mut expected: [Option<(&str, &str, i64)>; 2] = [None, None];
    match op.f.as_str() {
        "transfer" if c.kind == EventType::Ok => {
            if let Some((from, to, _)) = op.value.transfer() {
                for (k, (field, account)) in [("from_balance", from), ("to_balance", to)]
                    .into_iter()
                    .enumerate()
                {
                    if data.shard_of(account) == Some(shard) {
                        expected[k] = bank.get(account).map(|b| (field, account, b));
                    }
                }
            }
        }
        "read" if c.kind == EventType::Ok => {
            if let Some(a) = op.value.str_field("account") {
                expected[0] = bank.get(a).map(|b| ("balance", a, b));
            }
        }
        _ => {}
    }
    for (field, account, b) in expected.into_iter().flatten() {
        let seen = c.value.i64_field(field);
        if seen != Some(b) {
            check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::WrongResult,
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
