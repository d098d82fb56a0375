//! Agreement: every replica executed the same commands in the same order, and its
//! final balances are what that order produces.
//!
//! Logs are compared slot by slot while final.json streams in (see
//! [`crate::final_state`]): each replica's executed list is laid over the agreed log
//! assembled so far, so a replica that is behind must match on its prefix and one
//! that started from a checkpoint must match on the overlap. A replica whose own list
//! skips or repeats an index is an anomaly too. Final balances are compared during
//! the replay (see [`crate::checks::replay`]) with the bank state right after each
//! replica's last exec index.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::model::{replica_name, NodeState};

#[derive(Debug, Default)]
pub(crate) struct Agreement {
    check: Check,
    compared: u64,
}

/// One side of a disagreement: the replica and what it holds.
pub(crate) struct Side<'a> {
    pub node: &'a str,
    pub entry: String,
}

impl Agreement {
    /// A slot held by two replicas was compared.
    pub fn compared(&mut self) {
        self.compared += 1;
    }

    /// Two replicas hold different entries at `exec`.
    pub fn divergence(&mut self, exec: u64, first: Side<'_>, second: Side<'_>) {
        self.check.anomaly(|| {
            let detail = if first.entry == second.entry {
                format!("both hold {} but record different results", first.entry)
            } else {
                format!(
                    "{} holds {} while {} holds {}",
                    first.node, first.entry, second.node, second.entry
                )
            };
            Anomaly::new(
                AnomalyKind::Divergence,
                format!(
                    "Replicas {} and {} disagree at exec_index {exec}: {detail}.",
                    first.node, second.node
                ),
                Vec::new(),
            )
            .at_slots(vec![exec])
        });
    }

    /// A replica's executed list goes from `prev` to `next` instead of `prev + 1`.
    pub fn jump(&mut self, node: &str, prev: u64, next: u64) {
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::LogNotContiguous,
                format!(
                    "Replica {node}'s executed log goes from exec_index {prev} to {next}; a replica must execute every index in order."
                ),
                Vec::new(),
            )
            .at_slots(vec![prev, next])
        });
    }

    /// A replica's final balances differ from the replay of the agreed log up to its
    /// last exec index. `diffs` lists (account, replica's balance, replayed balance).
    pub fn balances_differ(&mut self, node: &str, last: u64, diffs: &[(String, String, String)]) {
        self.check.anomaly(|| {
            let shown: Vec<String> = diffs
                .iter()
                .take(5)
                .map(|(a, n, r)| format!("{a}: {n} instead of {r}"))
                .collect();
            Anomaly::new(
                AnomalyKind::FinalBalances,
                format!(
                    "Replica {node}'s final balances do not match the replay of the agreed log up to its last exec_index {last}: {}.",
                    shown.join(", ")
                ),
                Vec::new(),
            )
            .at_slots(vec![last])
        });
    }

    /// A replica's balances could not be compared.
    pub fn balances_undecided(&mut self) {
        self.check
            .undecided("replicas' final balances could not be compared (the agreed log does not reach their last index)");
    }

    pub fn balances_checked(&mut self) {
        self.check.count("final balances compared", 1);
    }

    /// `nodes` is `None` when there is no final.json.
    pub fn finish(mut self, nodes: Option<&[NodeState]>) -> CheckResult {
        self.check
            .count("slots compared between replicas", self.compared);
        match nodes {
            None => self
                .check
                .unknown("there is no final.json, so the replicas' logs cannot be compared"),
            Some(nodes) => self.node_notes(nodes),
        }
        self.check.finish()
    }

    fn node_notes(&mut self, nodes: &[NodeState]) {
        // Journal stretches (`n1:1-14274`) are parts of a replica, not replicas.
        let fetched = nodes
            .iter()
            .filter(|n| n.fetched())
            .map(|n| replica_name(&n.name))
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        self.check.count("replicas fetched", fetched as u64);
        if fetched == 0 {
            self.check
                .unknown("the final state of every replica is missing");
        }
        for n in nodes.iter().filter(|n| n.error.is_some()) {
            let why = n.error.as_deref().unwrap_or_default();
            self.check
                .note(format!("replica {} could not be fetched: {why}", n.name));
        }
    }
}
