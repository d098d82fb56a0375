//! Conservation over the whole sharded bank: no balance is ever negative on any shard,
//! the shards together end with the total they started with, and every `read_all`
//! (one snapshot across shards) sums to that total and shows, on each shard, the state
//! at the position it was told there. A snapshot that mixes states from before and
//! after a cross-shard transfer is torn.
//!
//! Each shard's agreed log is replayed once, from run.toml's initial balances (the
//! replay shared with the replay check and agreement, `Sharded::replay_watched`); the
//! `read_all` answers waiting at each position are compared as the replay passes it.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::history::EventType;
use crate::model::list;
use crate::model::FxMap;
use crate::shards::{Bank, LogEntry, ShardId, Sharded, Watch};

/// The check over the shards' shared replays (`Sharded::replay_watched`): made first,
/// it gives a [`ShardWatch`] for each shard in turn (in run.toml's order), takes back
/// what each found, then gives its result.
pub(crate) struct Judge<'d> {
    data: &'d Sharded,
    /// The result already, when no log is replayed.
    early: Option<CheckResult>,
    replays: Vec<Replayed>,
}

pub(crate) fn start(data: &Sharded) -> Judge<'_> {
    let mut check = Check::default();
    let early = match data.total {
        None => {
            check.unknown(
                "run.toml does not give initial_balance, so the bank's total is not known",
            );
            Some(check.finish())
        }
        Some(total) if data.fin.is_none() => {
            snapshots_sum(data, &mut check, total);
            check.unknown("there is no final.json, so the shards' logs cannot be replayed");
            Some(check.finish())
        }
        Some(_) => None,
    };
    Judge {
        data,
        early,
        replays: Vec::new(),
    }
}

impl<'d> Judge<'d> {
    /// What follows shard `id`'s replay, if the check replays at all.
    pub fn shard(&self, id: ShardId) -> Option<ShardWatch<'d>> {
        if self.early.is_some() {
            return None;
        }
        let data = self.data;
        let last = data.logs.get(&id).and_then(|l| l.last_index()).unwrap_or(0);
        let mut waiting: FxMap<u64, Vec<usize>> = FxMap::default();
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
        Some(ShardWatch {
            data,
            last,
            waiting,
            negative: false,
            replayed: Replayed {
                id,
                sum: None,
                findings: Vec::new(),
                compared: 0,
                gap: None,
            },
        })
    }

    /// Takes back what one shard's replay found.
    pub fn replayed(&mut self, watch: ShardWatch<'_>) {
        self.replays.push(watch.replayed);
    }

    /// The result: the bank's end total is told first: it is the headline, and the
    /// per-snapshot findings that usually follow it could fill the stored anomalies.
    pub fn finish(self) -> CheckResult {
        let (data, replays) = (self.data, self.replays);
        if let Some(early) = self.early {
            return early;
        }
        let mut check = Check::default();
        let Some(total) = data.total else {
            return check.finish();
        };
        let end_total = replays.iter().try_fold(0i128, |t, r| r.sum.map(|s| t + s));
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
        for r in replays {
            r.tell(data, &mut check);
        }
        check.finish()
    }
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

/// What replaying one shard found, in the order it found it.
struct Replayed {
    id: ShardId,
    /// The shard's total at the end of its log (`None` past a gap).
    sum: Option<i128>,
    findings: Vec<Finding>,
    /// read_all parts compared.
    compared: u64,
    gap: Option<u64>,
}

enum Finding {
    /// The first balance below zero.
    Negative {
        account: String,
        balance: i64,
        exec: u64,
    },
    /// A read_all part (`ops[o]`) that is not the shard's state at `exec`.
    Torn {
        o: usize,
        exec: u64,
        diffs: Vec<String>,
    },
}

/// The check's part in one shard's replay, to the end of its log: the first balance
/// below zero, and the read_all parts told a position there, compared as it passes.
pub(crate) struct ShardWatch<'d> {
    data: &'d Sharded,
    last: u64,
    /// Position to the read_all answers told it.
    waiting: FxMap<u64, Vec<usize>>,
    negative: bool,
    replayed: Replayed,
}

impl Watch for ShardWatch<'_> {
    fn upto(&self) -> u64 {
        self.last
    }

    fn step(&mut self, exec: u64, _: &LogEntry, bank: &Bank) {
        let r = &mut self.replayed;
        if let Some((a, b)) = bank.negative() {
            if !std::mem::replace(&mut self.negative, true) {
                r.findings.push(Finding::Negative {
                    account: a.to_string(),
                    balance: b,
                    exec,
                });
            }
        }
        for &o in self.waiting.get(&exec).into_iter().flatten() {
            let Some(diffs) = compare_snapshot(self.data, o, bank) else {
                continue;
            };
            r.compared += 1;
            if !diffs.is_empty() {
                r.findings.push(Finding::Torn { o, exec, diffs });
            }
        }
    }

    fn end(&mut self, end: Result<&Bank, u64>) {
        match end {
            Ok(bank) => self.replayed.sum = Some(bank.sum()),
            Err(gap) => self.replayed.gap = Some(gap),
        }
    }
}

impl Replayed {
    fn tell(self, data: &Sharded, check: &mut Check) {
        let id = self.id;
        for f in self.findings {
            match f {
                Finding::Negative {
                    account: a,
                    balance: b,
                    exec,
                } => check.anomaly(|| {
                    Anomaly::new(
                        AnomalyKind::NegativeBalance,
                        format!("Replaying shard {id}'s log, account {a} is at {b} after exec_index {exec}."),
                        Vec::new(),
                    )
                    .at_slots(vec![exec])
                }),
                Finding::Torn { o, exec, diffs } => {
                    let op = &data.ops[o];
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
        }
        if self.compared > 0 {
            check.count("read_all shard parts compared", self.compared);
        }
        if let Some(gap) = self.gap {
            check.unknown(format!(
                "shard {id}'s log has no entry at exec_index {gap}, so it cannot be replayed past it"
            ));
        }
    }
}

/// A read_all's part on a shard must be the shard's state at its position there: what
/// differs, account by account (`None` when the answer shows no balances).
fn compare_snapshot(data: &Sharded, o: usize, bank: &Bank) -> Option<Vec<String>> {
    let seen = data.ops[o].complete.as_ref()?.value.balances()?;
    let diffs = bank
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
    Some(diffs)
}
