//! The replicated state machine: a bank of named accounts, with exactly-once client semantics.
//!
//! Every replica feeds the same committed commands, in slot order, to [`Bank::execute`]; the bank
//! is deterministic, so every replica ends in the same state and hands out the same `exec_index`
//! for the same command. Dedup happens here, at execution, not at proposal: a retried request
//! may be committed in two slots, and only its first copy may change anything. The reply table
//! (last executed request and its reply, per client) is part of the state and of every
//! checkpoint, so a new leader or a restarted replica answers a retry with the original reply.

use crate::types::{Account, Amount, ClientId, ExecIndex, RequestId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What a client asks the bank to do. Wire type: never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    Transfer {
        from: Account,
        to: Account,
        amount: Amount,
    },
    Read {
        account: Account,
    },
    ReadAll,
}

/// A client operation with the identity used for exactly-once execution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub client: ClientId,
    pub request: RequestId,
    pub op: Op,
}

/// The outcome of an executed command. Wire type: never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum OpResult {
    /// The transfer happened; balances after it.
    Transferred {
        from_balance: Amount,
        to_balance: Amount,
    },
    /// The transfer was executed as a definite failure and changed nothing.
    InsufficientFunds {
        from_balance: Amount,
    },
    Balance {
        balance: Amount,
    },
    Balances {
        balances: BTreeMap<Account, Amount>,
    },
}

/// A reply to an executed command: its place in the total order and its outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub exec_index: ExecIndex,
    pub result: OpResult,
}

/// Why a request is refused before it is ever proposed. Wire type: never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Invalid {
    #[error("unknown account {0:?}")]
    UnknownAccount(Account),
    #[error("a transfer needs two different accounts, got {0:?} twice")]
    SameAccount(Account),
    #[error("amount must be positive, got {0}")]
    NonPositiveAmount(Amount),
}

/// One entry of the executed log: what `final.json` and PrintLog report per replica.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    pub exec_index: ExecIndex,
    pub command: Command,
    pub result: OpResult,
}

/// What [`Bank::execute`] did with a command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The command ran now and took the next exec index.
    Executed(Executed),
    /// The client's request was already executed; this is its original reply.
    Duplicate(Reply),
    /// The request is older than the client's last executed one: the client has moved on, and
    /// its reply is no longer kept. Nothing happens.
    Stale,
}

/// The per-client entry of the reply table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastReply {
    pub request: RequestId,
    pub reply: Reply,
}

/// The whole replicated state. Serializable: it is the body of every checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bank {
    balances: BTreeMap<Account, Amount>,
    replies: BTreeMap<ClientId, LastReply>,
    exec_index: ExecIndex,
    /// Planted bug `no-funds-check`: let a transfer overdraw. Not part of real behaviour.
    #[serde(default)]
    allow_overdraft: bool,
}

impl Bank {
    pub fn new(accounts: &[Account], initial_balance: Amount) -> Bank {
        assert!(initial_balance >= 0, "initial balance must not be negative");
        let balances = accounts
            .iter()
            .map(|a| (a.clone(), initial_balance))
            .collect();
        Bank {
            balances,
            replies: BTreeMap::new(),
            exec_index: 0,
            allow_overdraft: false,
        }
    }

    /// Planted bug switch, only reachable through the `bugs` feature's `--bug no-funds-check`.
    pub fn set_allow_overdraft(&mut self, allow: bool) {
        self.allow_overdraft = allow;
    }

    /// Refuses a request that can never succeed, before it takes a slot.
    pub fn validate(&self, op: &Op) -> Result<(), Invalid> {
        let known = |a: &Account| {
            if self.balances.contains_key(a) {
                Ok(())
            } else {
                Err(Invalid::UnknownAccount(a.clone()))
            }
        };
        match op {
            Op::Transfer { from, to, amount } => {
                known(from)?;
                known(to)?;
                if from == to {
                    return Err(Invalid::SameAccount(from.clone()));
                }
                if *amount <= 0 {
                    return Err(Invalid::NonPositiveAmount(*amount));
                }
                Ok(())
            }
            Op::Read { account } => known(account),
            Op::ReadAll => Ok(()),
        }
    }

    /// The reply table lookup used before proposing: a request that already executed is
    /// answered from here instead of taking a new slot.
    pub fn cached_reply(&self, client: ClientId, request: RequestId) -> Option<&Reply> {
        self.replies
            .get(&client)
            .filter(|last| last.request == request)
            .map(|last| &last.reply)
    }

    /// The last request executed for `client`, if any.
    pub fn last_request(&self, client: ClientId) -> Option<RequestId> {
        self.replies.get(&client).map(|last| last.request)
    }

    /// Executes one committed command, exactly once per `(client, request)`.
    pub fn execute(&mut self, command: &Command, dedup: bool) -> Outcome {
        if dedup {
            if let Some(last) = self.replies.get(&command.client) {
                if command.request == last.request {
                    return Outcome::Duplicate(last.reply.clone());
                }
                if command.request < last.request {
                    return Outcome::Stale;
                }
            }
        }
        let result = self.apply(&command.op);
        // Saturating: the index may come from a checkpoint; 2^64 commands are never executed.
        self.exec_index = self.exec_index.saturating_add(1);
        let reply = Reply {
            exec_index: self.exec_index,
            result: result.clone(),
        };
        self.replies.insert(
            command.client,
            LastReply {
                request: command.request,
                reply,
            },
        );
        Outcome::Executed(Executed {
            exec_index: self.exec_index,
            command: command.clone(),
            result,
        })
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Transfer { from, to, amount } => self.transfer(from, to, *amount),
            Op::Read { account } => OpResult::Balance {
                balance: self.balance(account),
            },
            Op::ReadAll => OpResult::Balances {
                balances: self.balances.clone(),
            },
        }
    }

    fn transfer(&mut self, from: &Account, to: &Account, amount: Amount) -> OpResult {
        // A committed command was validated by the leader that proposed it, but a replica must
        // not trust that blindly: an invalid command executes as a failure that changes nothing.
        if self
            .validate(&Op::Transfer {
                from: from.clone(),
                to: to.clone(),
                amount,
            })
            .is_err()
        {
            return OpResult::InsufficientFunds {
                from_balance: self.balance(from),
            };
        }
        let from_balance = self.balance(from);
        if from_balance < amount && !self.allow_overdraft {
            return OpResult::InsufficientFunds { from_balance };
        }
        // Checked: balances may come from a checkpoint received over the network. A transfer
        // whose result does not fit executes as a failure that changes nothing.
        let (Some(new_from), Some(to_balance)) = (
            from_balance.checked_sub(amount),
            self.balance(to).checked_add(amount),
        ) else {
            return OpResult::InsufficientFunds { from_balance };
        };
        self.balances.insert(from.clone(), new_from);
        self.balances.insert(to.clone(), to_balance);
        OpResult::Transferred {
            from_balance: new_from,
            to_balance,
        }
    }

    /// Balance of an account; 0 for an unknown one (only reachable by a corrupt command).
    pub fn balance(&self, account: &str) -> Amount {
        self.balances.get(account).copied().unwrap_or(0)
    }

    pub fn balances(&self) -> &BTreeMap<Account, Amount> {
        &self.balances
    }

    /// Number of commands executed so far (the exec index of the last one).
    pub fn exec_index(&self) -> ExecIndex {
        self.exec_index
    }

    /// The sum of all balances; `None` if it does not fit in an [`Amount`] (only reachable
    /// with a corrupt checkpoint: the config bounds accounts × initial balance).
    pub fn total(&self) -> Option<Amount> {
        self.balances
            .values()
            .try_fold(0 as Amount, |sum, b| sum.checked_add(*b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bank() -> Bank {
        Bank::new(&["A".to_string(), "B".to_string()], 10)
    }

    fn transfer(client: u64, request: u64, amount: Amount) -> Command {
        Command {
            client: ClientId(client),
            request: RequestId(request),
            op: Op::Transfer {
                from: "A".into(),
                to: "B".into(),
                amount,
            },
        }
    }

    #[test]
    fn transfer_moves_money_and_reports_balances() {
        let mut bank = bank();
        let Outcome::Executed(e) = bank.execute(&transfer(1, 1, 3), true) else {
            panic!()
        };
        assert_eq!(e.exec_index, 1);
        assert_eq!(
            e.result,
            OpResult::Transferred {
                from_balance: 7,
                to_balance: 13
            }
        );
        assert_eq!(bank.total(), Some(20));
    }

    #[test]
    fn insufficient_funds_is_a_definite_failure_that_changes_nothing() {
        let mut bank = bank();
        let Outcome::Executed(e) = bank.execute(&transfer(1, 1, 11), true) else {
            panic!()
        };
        assert_eq!(e.result, OpResult::InsufficientFunds { from_balance: 10 });
        assert_eq!(
            e.exec_index, 1,
            "a failed transfer still takes its place in the order"
        );
        assert_eq!(bank.balance("A"), 10);
    }

    #[test]
    fn a_retry_executes_once_and_gets_the_original_reply() {
        let mut bank = bank();
        let Outcome::Executed(first) = bank.execute(&transfer(1, 5, 3), true) else {
            panic!()
        };
        let again = bank.execute(&transfer(1, 5, 3), true);
        assert_eq!(
            again,
            Outcome::Duplicate(Reply {
                exec_index: 1,
                result: first.result
            })
        );
        assert_eq!(bank.execute(&transfer(1, 4, 3), true), Outcome::Stale);
        assert_eq!(bank.balance("A"), 7);
        assert_eq!(bank.exec_index(), 1);
    }

    #[test]
    fn invalid_requests_are_refused_with_a_reason() {
        let bank = bank();
        let t = |from: &str, to: &str, amount| Op::Transfer {
            from: from.into(),
            to: to.into(),
            amount,
        };
        assert_eq!(
            bank.validate(&t("A", "Z", 1)),
            Err(Invalid::UnknownAccount("Z".into()))
        );
        assert_eq!(
            bank.validate(&t("A", "A", 1)),
            Err(Invalid::SameAccount("A".into()))
        );
        assert_eq!(
            bank.validate(&t("A", "B", 0)),
            Err(Invalid::NonPositiveAmount(0))
        );
        assert_eq!(
            bank.validate(&Op::Read {
                account: "Q".into()
            }),
            Err(Invalid::UnknownAccount("Q".into()))
        );
        assert!(bank.validate(&t("A", "B", 1)).is_ok());
    }

    #[test]
    fn a_transfer_that_would_overflow_the_recipient_changes_nothing() {
        let mut bank = Bank::new(&["A".to_string(), "B".to_string()], Amount::MAX);
        let Outcome::Executed(e) = bank.execute(&transfer(1, 1, 1), true) else {
            panic!()
        };
        assert!(
            matches!(e.result, OpResult::InsufficientFunds { .. }),
            "{e:?}"
        );
        assert_eq!(bank.balance("A"), Amount::MAX);
        assert_eq!(bank.balance("B"), Amount::MAX);
        assert_eq!(bank.exec_index(), 1);
        assert_eq!(
            bank.total(),
            None,
            "a total beyond i64 is reported, not wrapped"
        );
    }

    #[test]
    fn overdraft_bug_lets_a_balance_go_negative() {
        let mut bank = bank();
        bank.set_allow_overdraft(true);
        bank.execute(&transfer(1, 1, 15), true);
        assert_eq!(bank.balance("A"), -5);
    }
}
