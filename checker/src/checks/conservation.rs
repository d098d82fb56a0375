//! Conservation: money is neither created nor destroyed, and no balance goes negative.
//!
//! Every `read_all` that completed `ok` must sum to the total (accounts × initial
//! balance from run.toml), and no balance may be negative in any read, in any balance a
//! transfer returned, or in any replica's final state. Reads are checked as the history
//! streams by; the final state when final.json has been loaded. Without run.toml the
//! total is not known and the sums cannot be decided; without any fetched final state
//! that part cannot be decided either: both make the verdict `unknown`, never a pass.
//!
//! A `read_all` that shows no account at all read a state without the bank: the initial
//! balances had not reached the node that answered (etcd serves such a read from a member that
//! has not applied the initial txn yet). No money was created or destroyed, so it is no
//! conservation anomaly; it is counted, and whether the read may be that stale is the
//! linearizability and replay checks' to judge. A `read_all` missing only some accounts shows
//! part of the bank: it is reported as such (`partial-read`), not as money created.

use super::{Anomaly, AnomalyKind, Check, CheckResult};
use crate::final_state::NodeState;
use crate::model::{Accounts, Acct};

#[derive(Debug)]
pub(crate) struct Conservation {
    check: Check,
    total: Option<i128>,
    read_alls: u64,
    /// `read_all`s that showed no account: a state before the initial balances.
    empty_read_alls: u64,
    reads: u64,
    transfers: u64,
}

impl Conservation {
    /// `total` is the sum every `read_all` must have, when run.toml gives it.
    pub fn new(total: Option<i128>) -> Conservation {
        Conservation {
            check: Check::default(),
            total,
            read_alls: 0,
            empty_read_alls: 0,
            reads: 0,
            transfers: 0,
        }
    }

    /// A transfer completed ok and returned these balances (if it did).
    pub fn transfer_ok(
        &mut self,
        index: u64,
        from: (Acct, Option<i64>),
        to: (Acct, Option<i64>),
        accounts: &Accounts,
    ) {
        self.transfers += 1;
        for (acct, bal) in [from, to] {
            let Some(bal) = bal else { continue };
            if bal < 0 {
                self.check.anomaly(|| {
                    Anomaly::new(
                        AnomalyKind::NegativeBalance,
                        format!(
                            "The transfer completed at history index {index} returned a negative balance {bal} for account {}.",
                            accounts.name(acct)
                        ),
                        vec![index],
                    )
                });
            }
        }
    }

    /// A read completed ok with `balance` (if it returned one).
    pub fn read_ok(
        &mut self,
        index: u64,
        account: Acct,
        balance: Option<i64>,
        accounts: &Accounts,
    ) {
        self.reads += 1;
        let Some(balance) = balance else { return };
        if balance < 0 {
            self.check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::NegativeBalance,
                    format!(
                        "The read of account {} completed at history index {index} returned the negative balance {balance}.",
                        accounts.name(account)
                    ),
                    vec![index],
                )
            });
        }
    }

    /// A `read_all` completed ok with these balances (sorted by account).
    pub fn read_all_ok(&mut self, index: u64, balances: &[(Acct, i64)], accounts: &Accounts) {
        self.read_alls += 1;
        if balances.is_empty() && accounts.declared_count() > 0 {
            self.empty_read_alls += 1;
            return;
        }
        let where_ = format!("The read_all completed at history index {index}");
        self.negatives(balances, accounts, &where_, vec![index]);
        self.sum(balances, accounts, &where_, vec![index]);
    }

    fn negatives(
        &mut self,
        balances: &[(Acct, i64)],
        accounts: &Accounts,
        where_: &str,
        indices: Vec<u64>,
    ) {
        for &(acct, bal) in balances.iter().filter(|(_, b)| *b < 0) {
            self.check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::NegativeBalance,
                    format!(
                        "{where_} shows the negative balance {bal} for account {}.",
                        accounts.name(acct)
                    ),
                    indices.clone(),
                )
            });
        }
    }

    fn sum(
        &mut self,
        balances: &[(Acct, i64)],
        accounts: &Accounts,
        where_: &str,
        indices: Vec<u64>,
    ) {
        let Some(total) = self.total else { return };
        let sum: i128 = balances.iter().map(|&(_, b)| b as i128).sum();
        if sum == total {
            return;
        }
        let missing = missing_accounts(balances, accounts);
        if !missing.is_empty() {
            // Money cannot be counted over part of the bank: say what the read showed.
            self.check.anomaly(|| {
                Anomaly::new(
                    AnomalyKind::PartialRead,
                    format!(
                        "{where_} shows {} of the bank's {} accounts ({} missing), summing to {sum} of the total {total}: it read part of the bank, so whether money was created or destroyed cannot be told from it.",
                        balances.len(),
                        accounts.declared_count(),
                        missing.join(", ")
                    ),
                    indices,
                )
            });
            return;
        }
        self.check.anomaly(|| {
            Anomaly::new(
                AnomalyKind::SumDrift,
                format!(
                    "{where_} sums to {sum}, not the total {total} (accounts x initial balance): money was created or destroyed.",
                ),
                indices,
            )
        });
    }

    /// Checks every replica's final balances. `None` when there is no final.json.
    pub fn final_state(&mut self, nodes: Option<&[NodeState]>, accounts: &Accounts) {
        let Some(nodes) = nodes else {
            self.check
                .unknown("there is no final.json, so the final balances cannot be checked");
            return;
        };
        let mut seen = 0;
        for node in nodes {
            let Some(bal) = &node.balances else { continue };
            seen += 1;
            let where_ = format!("Replica {}'s final state", node.name);
            self.negatives(bal, accounts, &where_, Vec::new());
            self.sum(bal, accounts, &where_, Vec::new());
        }
        self.check.count("final states", seen);
        if seen == 0 {
            self.check
                .unknown("no replica's final balances could be fetched");
        }
    }

    pub fn finish(mut self) -> CheckResult {
        if self.total.is_none() {
            self.check.unknown(
                "run.toml does not give accounts and initial_balance, so the total is unknown and sums were not checked",
            );
        }
        self.check.count("read_all observations", self.read_alls);
        if self.empty_read_alls > 0 {
            // Not an anomaly of this check (see the module docs), but never silent.
            self.check.note(format!(
                "{} saw no account at all: a state from before the initial balances were \
                 written, not money created or destroyed (whether so stale a read was allowed \
                 is for the linearizability and replay checks)",
                crate::text::count(self.empty_read_alls, "read_all")
            ));
        }
        self.check.count("read observations", self.reads);
        self.check
            .count("transfer acknowledgements", self.transfers);
        self.check.finish()
    }
}

fn missing_accounts(balances: &[(Acct, i64)], accounts: &Accounts) -> Vec<String> {
    (0..accounts.declared_count() as Acct)
        .filter(|a| !balances.iter().any(|(b, _)| b == a))
        .map(|a| accounts.name(a).to_string())
        .collect()
}
