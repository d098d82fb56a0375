//! Exactly-once: each logical operation (client, request id) is in the log as often as
//! its outcome allows, and nothing is in the log that no client asked for.
//!
//! | the client was told                 | times in the agreed log |
//! |-------------------------------------|-------------------------|
//! | `ok`                                | exactly once            |
//! | `fail` with an exec index           | exactly once, as a no-op|
//! | `fail` without one, on every attempt| never                   |
//! | `info`, or no answer                | at most once            |
//!
//! Whatever the outcome, every log entry under an operation's (client, request id)
//! must hold exactly the command that operation invoked: a key is the system's claim,
//! the command is what it executed.
//!
//! Both sides are reduced to (client, request id) keys and sorted, then merged in one
//! pass (O(n log n)). Presence is always decidable; absence only when the agreed log is
//! complete from exec index 1 (no replica gap), otherwise it is counted as undecided.
//! Timed-out operations found in the log also get their real-time check here, since
//! only now is their position known.
//!
//! Under shared positions (etcd, see [`Positions`]) the log holds writes only: an ok
//! transfer is there exactly once as before, but reads and failed transfers (whatever
//! the client was told) must be absent, since they observed a position without writing.

use super::total_order::TotalOrder;
use super::{Anomaly, AnomalyKind, Check, CheckResult, OpFunction};
use crate::final_state::{AgreedLog, Positions, Slot};
use crate::model::{list, Accounts, Cmd};
use crate::records::{flag, Clients, OpClass, OpRec, Ops};

/// What the merge needs.
pub(crate) struct Input<'a> {
    pub ops: &'a Ops,
    pub clients: &'a Clients,
    pub accounts: &'a Accounts,
    pub log: &'a AgreedLog,
    /// From [`log_order`] and [`op_order`] (sorted on the loading threads, in parallel).
    pub log_order: &'a [u32],
    pub op_order: &'a [u32],
    pub positions: Positions,
}

/// The result when there is no log to search, for `reason`.
pub(crate) fn unknown(reason: &str) -> CheckResult {
    let mut c = Check::default();
    c.unknown(reason);
    c.finish()
}

pub(crate) fn run(input: &Input<'_>, total_order: &mut TotalOrder) -> CheckResult {
    let mut check = Check::default();
    let complete = input.log.first_gap().is_none();
    if !complete {
        check.note("the agreed log has gaps, so an operation's absence from it cannot be decided");
    }
    let mut m = Merge {
        input,
        check,
        total_order,
        complete,
        execs: Vec::new(),
        group: Vec::new(),
    };
    m.merge();
    m.check.finish()
}

/// Judges one operation as [`run`]'s merge does, for the streamed check (see
/// `crate::run::streamed`): `group` are its records, `execs` the exec indices the log
/// holds under its key, in exec order. `complete`: the agreed log has no gap (else
/// [`run`] notes that once, before the merge). Returns whether `check` is still clean
/// (no anomaly, nothing undecided), so a streamed caller can stop at the first finding.
pub(crate) fn judge_one(
    input: &Input<'_>,
    check: &mut Check,
    total_order: &mut TotalOrder,
    group: &[u32],
    execs: &[u64],
    complete: bool,
) -> bool {
    let mut m = Merge {
        input,
        check: std::mem::take(check),
        total_order,
        complete,
        execs: Vec::new(),
        group: Vec::new(),
    };
    m.operation(group, execs);
    *check = m.check;
    check.clean()
}

/// The exec indices the log holds under (client process, request id) `key`, in exec
/// order, found in `log_order` (from [`log_order`]) by bisection.
pub(crate) fn execs_of(log: &AgreedLog, log_order: &[u32], key: (u64, u64), out: &mut Vec<u64>) {
    let key_at = |at: u32| log.at(at).map(|s| (log.client(&s), s.request_id));
    let start = log_order.partition_point(|&at| key_at(at) < Some(key));
    out.clear();
    out.extend(
        log_order[start..]
            .iter()
            .take_while(|&&at| key_at(at) == Some(key))
            .map(|&at| log.exec_of(at)),
    );
}

/// The log's slots (numbered as [`AgreedLog::at`] takes them), sorted by (client
/// process, request id, exec index). Empty slots are left out.
pub(crate) fn log_order(log: &AgreedLog) -> Vec<u32> {
    let slots = log.slot_count() as u32;
    order_by_client(
        (0..slots).filter_map(|at| log.at(at).map(|s| (at, log.client_number(&s)))),
        log.client_count(),
        |c| log.client_process(c),
        |at| log_slot(log, at).request_id,
    )
}

/// The operations' numbers, sorted by (client process, request id, number).
pub(crate) fn op_order(ops: &Ops, clients: &Clients) -> Vec<u32> {
    order_by_client(
        (0..ops.len() as u32).map(|i| (i, ops.key(i).0)),
        clients.len(),
        |c| clients.raw(c),
        |i| ops.key(i).1,
    )
}

/// The slot numbered `at`, which [`log_order`] only lists when some replica covers it.
fn log_slot(log: &AgreedLog, at: u32) -> Slot {
    log.at(at)
        .unwrap_or_else(|| unreachable!("log_order lists covered slots"))
}

/// Orders `items` (number, dense client) by the client's process number `raw`, then
/// `rid`, then number, without a key array beside them (that would double the memory
/// of a long run): a counting sort by client, then the adaptive stable sort finishes
/// each client's run, whose request ids already (nearly) increase in item order.
fn order_by_client(
    items: impl Iterator<Item = (u32, u32)> + Clone,
    clients: usize,
    raw: impl Fn(u32) -> u64,
    rid: impl Fn(u32) -> u64,
) -> Vec<u32> {
    let mut count = vec![0usize; clients];
    for (_, c) in items.clone() {
        count[c as usize] += 1;
    }
    let mut by_raw: Vec<u32> = (0..clients as u32)
        .filter(|&c| count[c as usize] > 0)
        .collect();
    by_raw.sort_unstable_by_key(|&c| raw(c));
    let mut start = vec![0usize; clients];
    let mut runs = Vec::with_capacity(by_raw.len());
    let mut at = 0;
    for &c in &by_raw {
        start[c as usize] = at;
        runs.push(at..at + count[c as usize]);
        at += count[c as usize];
    }
    let mut order = vec![0u32; at];
    for (item, c) in items {
        order[start[c as usize]] = item;
        start[c as usize] += 1;
    }
    // Each client's run sorted with its keys beside it (read once; the comparisons
    // then on adjacent words, not through the records), one run at a time so the
    // keys cost little memory beside the order itself: 8 bytes an item, request id
    // and item packed in one word, when the run's request ids fit in 32 bits.
    const KEYED_MAX: usize = 1 << 20;
    let mut keyed: Vec<u64> = Vec::new();
    for run in runs {
        let run = &mut order[run];
        if run.len() > KEYED_MAX || run.iter().any(|&i| rid(i) > u64::from(u32::MAX)) {
            run.sort_by_key(|&i| rid(i));
            continue;
        }
        keyed.clear();
        keyed.extend(run.iter().map(|&i| rid(i) << 32 | u64::from(i)));
        // Equal request ids stay in item order (the low half), as a stable sort keeps them.
        keyed.sort_unstable();
        for (slot, &k) in run.iter_mut().zip(&keyed) {
            *slot = k as u32;
        }
    }
    order
}

struct Merge<'a, 'b> {
    input: &'a Input<'a>,
    check: Check,
    total_order: &'b mut TotalOrder,
    complete: bool,
    execs: Vec<u64>,
    group: Vec<u32>,
}

impl Merge<'_, '_> {
    fn merge(&mut self) {
        let (ops, log) = (self.input.op_order, self.input.log_order);
        let (mut i, mut j) = (0, 0);
        // Each side's next key, computed once per item (an operation's key is a read
        // of its record, scattered in memory: this merge is bound by those reads).
        let mut op_key = ops.first().map(|&o| self.op_key(o));
        let mut log_key = log.first().map(|&at| self.log_key(at));
        while i < ops.len() || j < log.len() {
            let key = match (op_key, log_key) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) => a,
                (None, Some(b)) => b,
                (None, None) => break,
            };
            let mut i_end = i;
            while op_key == Some(key) {
                i_end += 1;
                op_key = ops.get(i_end).map(|&o| self.op_key(o));
            }
            let mut j_end = j;
            while log_key == Some(key) {
                j_end += 1;
                log_key = log.get(j_end).map(|&at| self.log_key(at));
            }
            // Reused buffers: one allocation for the whole merge, not one per key.
            let mut execs = std::mem::take(&mut self.execs);
            let mut group = std::mem::take(&mut self.group);
            execs.clear();
            execs.extend(log[j..j_end].iter().map(|&at| self.input.log.exec_of(at)));
            group.clear();
            group.extend_from_slice(&ops[i..i_end]);
            if group.is_empty() {
                self.phantom(key, &execs);
            } else {
                self.operation(&group, &execs);
            }
            (self.execs, self.group) = (execs, group);
            (i, j) = (i_end, j_end);
        }
    }

    /// (client process, request id) of an operation.
    fn op_key(&self, op: u32) -> (u64, u64) {
        let (client, request_id) = self.input.ops.key(op);
        (self.input.clients.raw(client), request_id)
    }

    /// (client process, request id) of the log's slot numbered `at`.
    fn log_key(&self, at: u32) -> (u64, u64) {
        let log = self.input.log;
        let s = log_slot(log, at);
        (log.client(&s), s.request_id)
    }

    /// One logical operation (possibly several records) and where the log has it.
    fn operation(&mut self, group: &[u32], execs: &[u64]) {
        self.check.count("operations checked", 1);
        let ops = self.input.ops;
        // Several records of one (client, request id) are one operation: combine them.
        let x = &if let [one] = group {
            ops.get(*one)
        } else {
            combine(group.iter().map(|&o| ops.get(o)))
        };
        if self.input.positions == Positions::SharedReads && x.observes() {
            if !execs.is_empty() {
                self.observer_written(x, execs);
            }
            return;
        }
        if execs.len() > 1 {
            self.executed_twice(x, execs);
        }
        self.commands(group, x, execs);
        match x.class() {
            OpClass::Ok | OpClass::FailExec if execs.is_empty() => self.missing(x),
            OpClass::Ok => self.ok_recorded_as_fail(x, execs[0]),
            OpClass::FailExec => self.fail_applied(x, execs[0]),
            OpClass::Rejected if !execs.is_empty() => self.rejected_executed(x, execs),
            OpClass::Rejected => {}
            OpClass::Indefinite => self.indefinite(group, execs),
        }
    }

    fn describe(&self, x: &OpRec) -> String {
        x.describe(self.input.clients, self.input.accounts)
    }

    /// Each log entry under the operation's key holds the command it invoked.
    fn commands(&mut self, group: &[u32], x: &OpRec, execs: &[u64]) {
        let ops = self.input.ops;
        let recs = || group.iter().map(|&o| ops.get(o));
        for &exec in execs {
            let Some(slot) = self.input.log.get(exec) else {
                continue;
            };
            if recs().any(|r| r.cmd() == slot.cmd()) {
                continue;
            }
            if recs().any(|r| r.has(flag::RETRY_CHANGED)) {
                // The history itself does not say which command the request meant
                // (the well-formed check reports it).
                self.check
                    .undecided("log entries belong to requests retried with another command");
                continue;
            }
            let d = self.describe(x);
            let logged = slot.cmd().describe(self.input.accounts);
            self.check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::CommandMismatch,
                    format!(
                        "{d} is in the log at exec_index {exec} as {logged}: the log holds a command its client never invoked under that request."
                    ),
                    x.indices(),
                )
.about(OpFunction::of(x.cmd()))
                .at_slots(vec![exec])
            });
        }
    }

    /// Under shared positions: a read or failed transfer that the log holds as a write.
    fn observer_written(&mut self, x: &OpRec, execs: &[u64]) {
        let d = self.describe(x);
        let (kind, what) = if matches!(x.cmd(), Cmd::Transfer { .. }) {
            (AnomalyKind::FailedButApplied, "was told it failed")
        } else {
            (AnomalyKind::ObserverInLog, "only reads")
        };
        self.check.anomaly(|| {
            Anomaly::new(
                kind,
                format!(
                    "{d} {what}, yet the log holds it as a write at exec_index {}: here only applied transfers write.",
                    list(execs)
                ),
                x.indices(),
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(execs.to_vec())
        });
    }

    fn executed_twice(&mut self, x: &OpRec, execs: &[u64]) {
        let d = self.describe(x);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::ExecutedTwice,
                format!(
                    "{d} is in the log {}, at exec_index {}: a request must execute at most once.",
                    crate::text::count(execs.len() as u64, "time"),
                    list(execs)
                ),
                x.indices(),
            )
            .about(OpFunction::of(x.cmd()))
            .at_slots(execs.to_vec())
        });
    }

    fn missing(&mut self, x: &OpRec) {
        if !self.complete {
            self.check.undecided(
                "acknowledged operations could not be looked up (the agreed log has gaps)",
            );
            return;
        }
        let d = self.describe(x);
        let (kind, told) = if x.class() == OpClass::Ok {
            (AnomalyKind::LostAck, "acknowledged (ok)")
        } else {
            (AnomalyKind::LostFail, "told it failed as a no-op")
        };
        let at = if x.exec != 0 {
            format!(" with exec_index {}", x.exec)
        } else {
            String::new()
        };
        self.check.anomaly(|| {
            let slots = if x.exec != 0 {
                vec![x.exec]
            } else {
                Vec::new()
            };
            Anomaly::new(
                kind,
                format!("{d} was {told}{at}, but it is in no replica's log: the command was lost."),
                x.indices(),
            )
            .about(OpFunction::of(x.cmd()))
            .at_slots(slots)
        });
    }

    fn ok_recorded_as_fail(&mut self, x: &OpRec, exec: u64) {
        let Some(slot) = self.input.log.get(exec) else {
            return;
        };
        if slot.ok {
            return;
        }
        let d = self.describe(x);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::AckNotApplied,
                format!("{d} was acknowledged (ok), but the log records it at exec_index {exec} as a failed no-op: it was never applied."),
                x.indices(),
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(vec![exec])
        });
    }

    fn fail_applied(&mut self, x: &OpRec, exec: u64) {
        let Some(slot) = self.input.log.get(exec) else {
            return;
        };
        if !slot.ok {
            return;
        }
        let d = self.describe(x);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::FailedButApplied,
                format!("{d} was told it failed, but the log records it at exec_index {exec} as applied (ok)."),
                x.indices(),
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(vec![exec])
        });
    }

    fn rejected_executed(&mut self, x: &OpRec, execs: &[u64]) {
        let d = self.describe(x);
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::FailedButApplied,
                format!(
                    "{d} was told it failed before being proposed (no exec_index), yet it executed at exec_index {}.",
                    list(execs)
                ),
                x.indices(),
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(execs.to_vec())
        });
    }

    fn indefinite(&mut self, group: &[u32], execs: &[u64]) {
        match execs {
            [] => self.check.count("timed-out operations not executed", 1),
            [e] => {
                self.check.count("timed-out operations executed", 1);
                let i = self.input;
                for &op in group {
                    self.total_order.late(i.ops, op, *e, i.clients, i.accounts);
                }
            }
            _ => {}
        }
    }

    /// A log entry whose (client, request id) no client invoked.
    fn phantom(&mut self, key: (u64, u64), execs: &[u64]) {
        let (client, rid) = key;
        let known = self.input.clients.get(client).is_some();
        let what = execs
            .first()
            .and_then(|&e| self.input.log.get(e))
            .map(|s| s.cmd().describe(self.input.accounts))
            .unwrap_or_default();
        self.check.anomaly(|| {
            let who = if known {
                format!("client {client} never invoked request {rid}")
            } else {
                format!("client {client} never appears in the history")
            };
            Anomaly::new(
                AnomalyKind::Phantom,
                format!(
                    "The log holds {what} by client {client} request {rid} at exec_index {}, but {who}: nothing may execute that no client asked for.",
                    list(execs)
                ),
                Vec::new(),
            )
            .at_slots(execs.to_vec())
        });
    }
}

/// Folds several records of one operation into one.
fn combine(mut recs: impl Iterator<Item = OpRec>) -> OpRec {
    let Some(mut x) = recs.next() else {
        unreachable!("an operation group is never empty")
    };
    for r in recs {
        x.flags |= r.flags & !(flag::OBSERVED | flag::OBS_OK | flag::A_SEEN | flag::B_SEEN);
        x.pending = x.pending.saturating_add(r.pending);
        if x.exec == 0 {
            x.exec = r.exec;
        }
        x.done_index = x.done_index.max(r.done_index);
    }
    x
}

#[cfg(test)]
mod tests {
    use super::order_by_client;

    #[test]
    fn client_order_is_stable_by_request_id_with_short_and_long_ids() {
        // (item, dense client): clients numbered apart from their process numbers.
        let clients = [1u32, 0, 1, 0, 1, 1, 0, 1];
        let items = || clients.iter().enumerate().map(|(i, &c)| (i as u32, c));
        let raw = |c: u32| [20, 10][c as usize];
        for ids in [
            [7u64, 3, 2, 3, 2, 7, 1, 2],
            [7, 3, 1 << 40, 3, u64::MAX, 7, 1, 1 << 40],
        ] {
            let rid = |i: u32| ids[i as usize];
            let order = order_by_client(items(), 2, raw, rid);
            // The reference: a stable sort by (process number, request id).
            let mut expect: Vec<u32> = (0..ids.len() as u32).collect();
            expect.sort_by_key(|&i| (raw(clients[i as usize]), rid(i)));
            assert_eq!(order, expect, "{ids:?}");
        }
    }
}
