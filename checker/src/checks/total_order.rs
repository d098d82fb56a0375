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

use super::{Anomaly, Check, CheckResult};
use crate::model::Accounts;
use crate::ops::{Clients, OpRec, NO_OP};

#[derive(Debug)]
pub(crate) struct TotalOrder {
    check: Check,
    max_op: u32,
    max_exec: u64,
    told: u64,
}

impl Default for TotalOrder {
    fn default() -> Self {
        TotalOrder {
            check: Check::default(),
            max_op: NO_OP,
            max_exec: 0,
            told: 0,
        }
    }
}

impl TotalOrder {
    /// The completed operation with the largest exec index so far.
    pub fn floor(&self) -> u32 {
        self.max_op
    }

    /// `op` just completed and was told its exec index.
    pub fn on_definite(&mut self, ops: &[OpRec], op: u32, clients: &Clients, accounts: &Accounts) {
        self.told += 1;
        let x = &ops[op as usize];
        if x.rt_floor != NO_OP {
            let y = &ops[x.rt_floor as usize];
            if y.exec >= x.exec {
                self.check
                    .anomaly(|| realtime(x, y, x.exec, "completed with", clients, accounts));
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
        ops: &[OpRec],
        op: u32,
        exec: u64,
        index: u64,
        clients: &Clients,
        accounts: &Accounts,
    ) {
        let x = &ops[op as usize];
        self.check.anomaly(|| {
            let mut indices = x.indices();
            indices.push(index);
            Anomaly::new(
                "exec-index-conflict",
                format!(
                    "{} was told exec_index {} and later, at history index {index}, exec_index {exec}: one command cannot occupy two positions.",
                    x.describe(clients, accounts),
                    x.exec
                ),
                indices,
            )
            .at_slots(vec![x.exec, exec])
        });
    }

    /// A timed-out (or unanswered) `op` was found in the log at `exec`.
    pub fn late(
        &mut self,
        ops: &[OpRec],
        op: u32,
        exec: u64,
        clients: &Clients,
        accounts: &Accounts,
    ) {
        let x = &ops[op as usize];
        if x.rt_floor == NO_OP {
            return;
        }
        let y = &ops[x.rt_floor as usize];
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

    /// Two different operations told the same exec index. `by_exec` lists operations
    /// with an exec index, sorted by it.
    pub fn unique(
        &mut self,
        ops: &[OpRec],
        by_exec: &[u32],
        clients: &Clients,
        accounts: &Accounts,
    ) {
        for pair in by_exec.windows(2) {
            let (a, b) = (&ops[pair[0] as usize], &ops[pair[1] as usize]);
            if a.exec != b.exec || (a.client == b.client && a.request_id == b.request_id) {
                continue;
            }
            self.check.anomaly(|| {
                let mut indices = a.indices();
                indices.extend(b.indices());
                Anomaly::new(
                    "duplicate-exec-index",
                    format!(
                        "{} and {} were both told exec_index {}: two commands cannot share a position.",
                        a.describe(clients, accounts),
                        b.describe(clients, accounts),
                        a.exec
                    ),
                    indices,
                )
                .at_slots(vec![a.exec])
            });
        }
    }

    /// Each client's exec indices increase in the order it issued its operations.
    pub fn client_order(&mut self, ops: &[OpRec], clients: &Clients, accounts: &Accounts) {
        let mut last: Vec<u32> = vec![NO_OP; clients.len()];
        for (i, x) in ops.iter().enumerate() {
            if x.exec == 0 {
                continue;
            }
            let prev = last[x.client as usize];
            if prev != NO_OP {
                let p = &ops[prev as usize];
                if p.exec >= x.exec && p.request_id != x.request_id {
                    self.check.anomaly(|| client_order(p, x, clients, accounts));
                }
                if p.exec >= x.exec {
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
        "real-time-order",
        format!(
            "{} {verb} exec_index {exec}, but {} completed at history index {} before it was invoked at {} and has the larger exec_index {}: the order contradicts real time.",
            x.describe(clients, accounts),
            y.describe(clients, accounts),
            y.done_index,
            x.first_index,
            y.exec
        ),
        indices,
    )
    .at_slots(vec![y.exec, exec])
}

fn client_order(p: &OpRec, x: &OpRec, clients: &Clients, accounts: &Accounts) -> Anomaly {
    let mut indices = p.indices();
    indices.extend(x.indices());
    Anomaly::new(
        "client-order",
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
