//! Total order: exec indices are unique per command and agree with real time and with
//! each client's own order.
//!
//! - Real time: if operation Y completed before X was invoked, Y executed first, so
//!   exec(Y) < exec(X). Checking every pair would be quadratic; instead the history
//!   pass keeps the completed operation with the largest exec index so far, and each
//!   operation records it at its first invocation (its `rt_floor`). When X completes
//!   with an exec index, comparing it with that one operation suffices: if any earlier
//!   completed Y has a larger index, the largest one does. O(n) in all.
//! - Uniqueness: the operations told an exec index are sorted by it (O(n log n)); two
//!   different operations on one index, or one operation told two indices, are
//!   anomalies.
//! - Client order: walking operations in the order they were first invoked, a client's
//!   exec indices must increase.
//!
//! Timed-out operations that turn out to be in the log get the real-time check too,
//! once the log is known (see `TotalOrder::late`).
//!
//! With shared positions (etcd's revisions, see [`Positions`]) only writes take a
//! position of their own; a read or failed transfer at position r observes the state
//! after write r, so it is ordered after write r and before write r+1. The rules become:
//! if Y completed before X was invoked, exec(Y) <= exec(X), and strictly less when X is
//! a write (a write cannot take a position some earlier-completed operation already
//! saw); writes are unique; a client's positions never decrease and strictly increase
//! into a write. A stale read (an old revision read after a later write completed)
//! breaks the first rule. The largest completed exec index is still the one floor to
//! compare with: when any earlier Y breaks the rule for X, the largest does. Whether
//! positions are shared is known only once final.json is read, after the history
//! pass: the pass reports what breaks both rules at once and keeps the few operations
//! that break only the unique rule (an observer on its floor's exact position) for
//! `TotalOrder::settle`.

use super::{Anomaly, AnomalyKind, Check, CheckResult, OpFunction};
use crate::final_state::Positions;
use crate::model::{Accounts, Cmd};
use crate::records::{Clients, OpRec, Ops, NO_OP};

#[derive(Debug)]
pub(crate) struct TotalOrder {
    check: Check,
    max_op: u32,
    max_exec: u64,
    told: u64,
    /// Observers told the very exec index of their real-time floor: a violation only
    /// where every operation takes a position of its own (see [`TotalOrder::settle`]).
    same_as_floor: Vec<u32>,
}

impl Default for TotalOrder {
    fn default() -> Self {
        TotalOrder {
            check: Check::default(),
            max_op: NO_OP,
            max_exec: 0,
            told: 0,
            same_as_floor: Vec::new(),
        }
    }
}

impl TotalOrder {
    /// The completed operation with the largest exec index so far.
    pub fn floor(&self) -> u32 {
        self.max_op
    }

    /// `op` just completed and was told its exec index.
    pub fn on_definite(&mut self, ops: &Ops, op: u32, clients: &Clients, accounts: &Accounts) {
        self.told += 1;
        let x = &ops.get(op);
        if x.rt_floor != NO_OP {
            let y = &ops.get(x.rt_floor);
            if y.exec > x.exec || (y.exec == x.exec && !x.observes()) {
                self.check
                    .anomaly(|| realtime(x, y, x.exec, "completed with", clients, accounts));
            } else if y.exec == x.exec {
                self.same_as_floor.push(op);
            }
        }
        if x.exec > self.max_exec {
            self.max_exec = x.exec;
            self.max_op = op;
        }
    }

    /// `op`, already told one exec index, was told `exec` at history `index`.
    pub fn on_conflict(
        &mut self,
        ops: &Ops,
        op: u32,
        exec: u64,
        index: u64,
        clients: &Clients,
        accounts: &Accounts,
    ) {
        let x = &ops.get(op);
        self.check.anomaly(|| {
            let mut indices = x.indices();
            indices.push(index);
            Anomaly::new(
                AnomalyKind::ExecIndexConflict,
                format!(
                    "{} was told exec_index {} and later, at history index {index}, exec_index {exec}: one command cannot occupy two positions.",
                    x.describe(clients, accounts),
                    x.exec
                ),
                indices,
            )
.about(OpFunction::of(x.cmd()))
            .at_slots(vec![x.exec, exec])
        });
    }

    /// A timed-out (or unanswered) `op` was found in the log at `exec`.
    pub fn late(&mut self, ops: &Ops, op: u32, exec: u64, clients: &Clients, accounts: &Accounts) {
        let x = &ops.get(op);
        if x.rt_floor == NO_OP {
            return;
        }
        let y = &ops.get(x.rt_floor);
        if y.exec >= exec {
            self.check.anomaly(|| {
                realtime(
                    x,
                    y,
                    exec,
                    "was executed (per the log) at",
                    clients,
                    accounts,
                )
            });
        }
    }

    /// Once final.json said what positions mean: under unique positions, an observer
    /// told its real-time floor's exact position contradicts real time too.
    pub fn settle(
        &mut self,
        positions: Positions,
        ops: &Ops,
        clients: &Clients,
        accounts: &Accounts,
    ) {
        let held = std::mem::take(&mut self.same_as_floor);
        if positions == Positions::SharedReads {
            self.check.note(
                "positions are shared (final.json: positions = shared_reads, e.g. etcd revisions): writes take unique positions; a read or failed transfer carries the position of the write it observed",
            );
            return;
        }
        for op in held {
            let x = &ops.get(op);
            let y = &ops.get(x.rt_floor);
            self.check
                .anomaly(|| realtime(x, y, x.exec, "completed with", clients, accounts));
        }
    }

    /// Two different operations told the same exec index (under shared positions: two
    /// different writes). `by_exec` lists operations with an exec index, sorted by it
    /// (under shared positions, writes first at each index).
    pub fn unique(
        &mut self,
        positions: Positions,
        ops: &Ops,
        by_exec: &[u32],
        clients: &Clients,
        accounts: &Accounts,
    ) {
        let shared = positions == Positions::SharedReads;
        for pair in by_exec.windows(2) {
            let (a, b) = (&ops.get(pair[0]), &ops.get(pair[1]));
            if a.exec != b.exec || (a.client == b.client && a.request_id == b.request_id) {
                continue;
            }
            if shared && (a.observes() || b.observes()) {
                continue;
            }
            self.check.anomaly(|| {
                let mut indices = a.indices();
                indices.extend(b.indices());
                Anomaly::new(
                    AnomalyKind::DuplicateExecIndex,
                    format!(
                        "{} and {} were both told exec_index {}: two commands cannot share a position.",
                        a.describe(clients, accounts),
                        b.describe(clients, accounts),
                        a.exec
                    ),
                    indices,
                )
.about(OpFunction::of(a.cmd()))
                .at_slots(vec![a.exec])
            });
        }
    }

    /// Each client's exec indices increase in the order it issued its operations
    /// (under shared positions: never decrease, and increase into a write).
    pub fn client_order(
        &mut self,
        positions: Positions,
        ops: &Ops,
        clients: &Clients,
        accounts: &Accounts,
    ) {
        let shared = positions == Positions::SharedReads;
        let mut last: Vec<u32> = vec![NO_OP; clients.len()];
        for (i, x) in ops.iter().enumerate() {
            if x.exec == 0 {
                continue;
            }
            let prev = last[x.client as usize];
            if prev != NO_OP {
                let p = &ops.get(prev);
                let may_share = shared && p.exec == x.exec && x.observes();
                if p.exec >= x.exec && !may_share && p.request_id != x.request_id {
                    self.check
                        .anomaly(|| client_order(p, &x, clients, accounts));
                }
                if p.exec > x.exec || (p.exec == x.exec && !may_share) {
                    continue;
                }
            }
            last[x.client as usize] = i as u32;
        }
    }

    pub fn finish(mut self) -> CheckResult {
        self.check.count("operations told an exec_index", self.told);
        self.check.finish()
    }
}

fn realtime(
    x: &OpRec,
    y: &OpRec,
    exec: u64,
    verb: &str,
    clients: &Clients,
    accounts: &Accounts,
) -> Anomaly {
    let mut indices = y.indices();
    indices.extend(x.indices());
    Anomaly::new(
        AnomalyKind::RealTimeOrder,
        format!(
            "{} {verb} exec_index {exec}, but {} completed at history index {} before it was invoked at {} and has the {} exec_index {}: the order contradicts real time{}.",
            x.describe(clients, accounts),
            y.describe(clients, accounts),
            y.done_index,
            x.first_index,
            if y.exec == exec { "same" } else { "larger" },
            y.exec,
            if matches!(x.cmd(), Cmd::Read { .. } | Cmd::ReadAll) && y.exec > exec {
                " (a stale read: it saw an older state than one already written or read)"
            } else {
                ""
            }
        ),
        indices,
    )
.about(OpFunction::of(x.cmd()))
    .at_slots(vec![y.exec, exec])
}

fn client_order(p: &OpRec, x: &OpRec, clients: &Clients, accounts: &Accounts) -> Anomaly {
    let mut indices = p.indices();
    indices.extend(x.indices());
    Anomaly::new(
        AnomalyKind::ClientOrder,
        format!(
            "Client {} issued {} before {}, yet they executed at {} and {}: a client's commands must execute in the order it issued them.",
            clients.raw(x.client),
            p.describe(clients, accounts),
            x.describe(clients, accounts),
            p.exec,
            x.exec
        ),
        indices,
    )
    .at_slots(vec![p.exec, x.exec])
}
