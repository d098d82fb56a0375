//! The replicated state machine: a bank of named accounts, with exactly-once client semantics.
//!
//! Every replica feeds the same committed commands, in slot order, to [`Bank::execute`]; the bank
//! is deterministic, so every replica ends in the same state and hands out the same `exec_index`
//! for the same command. Dedup happens here, at execution, not at proposal: a retried request
//! may be committed in two slots, and only its first copy may change anything. The reply table
//! (last executed request and its reply, per client) is part of the state and of every
//! checkpoint, so a new leader or a restarted replica answers a retry with the original reply.
//!
//! The reply table is bounded by this eviction rule, applied at execution (so identically on
//! every replica, and part of the replicated state):
//!
//! - when a command from a client that has no entry executes and the table then holds more
//!   than [`ReplyLimits::max_clients`] entries, every entry whose client has executed nothing
//!   for more than [`ReplyLimits::idle_commands`] commands is evicted. A client still active
//!   (it executed something within the last `idle_commands` commands) is never evicted, so the
//!   table holds at most `max_clients + idle_commands + 1` entries;
//! - an evicted client leaves a *tombstone*: its last request id. A command from a client
//!   without an entry whose request id is at or below its own tombstone is not executed: it may
//!   be a late copy of a request that executed before the client was evicted. It is answered
//!   `Expired` (never executed now; whether it executed before is unknown). The tombstone is
//!   the client's own: what one client numbers its requests never changes what another may do
//!   (a single table-wide floor did: one request id of `u64::MAX` expired every new client);
//! - tombstones are bounded too: past [`ReplyLimits::max_clients`] of them, the oldest are
//!   forgotten. A client whose tombstone is gone is new again, so a request retried after its
//!   client went idle for `idle_commands` commands *and* `max_clients` other clients were
//!   evicted after it may execute a second time. An honest client never retries that late.
//!
//! Checkpoints written before tombstones kept one table-wide floor in their place; one whose
//! floor is 0 (nothing ever evicted) reads as no tombstones, one with a floor does not decode
//! and the replica refuses it rather than honour a floor that any client could have poisoned.
//!
//! A bank may be one shard of a sharded bank (`Bank::new_shard`): it holds only its own
//! accounts, and a transfer to another shard's account runs two-phase commit, whose
//! replicated half (locks, transactions, votes, decisions) lives in [`twopc`], and a
//! `read_all` runs a snapshot across every shard (`twopc::snapshot`). An unsharded bank has
//! no remote accounts, so none of that ever happens in it: its `read_all` answers `Balances`.

mod twopc;

pub use twopc::{
    AbortReason, Answer, Decision, Outbound, ShardMsg, SnapshotPart, SnapshotVote, Step, TxnEntry,
    TxnId, TxnLimits, TxnStep, Vote,
};

use crate::types::{Account, Amount, ClientId, ExecIndex, RequestId, ShardId};
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

impl Command {
    /// Request `request` of client `client`: move `amount` from `from` to `to`.
    pub fn transfer(client: u64, request: u64, from: &str, to: &str, amount: Amount) -> Command {
        Command {
            client: ClientId(client),
            request: RequestId(request),
            op: Op::Transfer {
                from: from.into(),
                to: to.into(),
                amount,
            },
        }
    }
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
    /// A definite failure that changed nothing: `account` is locked by a cross-shard
    /// transaction in flight (no-wait locking: a conflict fails at once, so no deadlock).
    LockConflict {
        account: Account,
    },
    /// A definite failure that changed nothing: the shard has too many cross-shard
    /// transactions in flight.
    Busy,
    /// A cross-shard transfer that two-phase commit aborted: it changed nothing anywhere.
    Aborted {
        reason: AbortReason,
    },
    /// The credit side of a committed cross-shard transfer, as the participant shard's
    /// executed log records it (never a client's reply): `to`'s balance after it.
    Credited {
        to_balance: Amount,
    },
    /// A sharded bank's `read_all`: one consistent snapshot of every account, and where each
    /// shard's part was taken (the exec index of the snapshot's entry in that shard's log).
    Snapshot {
        balances: BTreeMap<Account, Amount>,
        positions: BTreeMap<ShardId, ExecIndex>,
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
/// Disk and wire type (the journal, FetchExecuted): append fields at the end only.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Executed {
    pub exec_index: ExecIndex,
    pub command: Command,
    pub result: OpResult,
    /// Set on every entry a cross-shard transfer takes in this shard's log (see
    /// [`TxnPhase`]); `None` on every other entry.
    pub txn: Option<TxnRecord>,
}

/// Which step of a cross-shard transaction an executed entry records. Disk and wire type:
/// never reorder variants.
///
/// Each shard logs at most one `Prepare` and one decision per transaction:
/// - the coordinator's start (`Prepare`, `vote_yes: true`): `from` locked with enough money;
///   its `result` is `Balance` of `from` as checked;
/// - the participant's first PREPARE (`Prepare`, its vote): on yes `to` is locked and the
///   `result` is `Balance` of `to` now; on no the `result` is `Aborted` with the reason;
/// - the coordinator's decision (`Commit` with `Transferred`, or `Abort` with `Aborted`): the
///   entry whose exec index the client is answered with;
/// - the participant's decision, only after a yes vote (`Commit` with `Credited`, or
///   `Abort` with `Aborted`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnPhase {
    Prepare { vote_yes: bool },
    Commit,
    Abort,
}

/// A cross-shard transaction's step as one shard executed it. Disk and wire type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnRecord {
    pub id: TxnId,
    pub phase: TxnPhase,
    /// What this entry applied to this shard's account: `-amount` at the coordinator's
    /// commit, `+amount` at the participant's, 0 otherwise.
    pub applied: Amount,
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
    /// The client has no entry and the request id is at or below the eviction floor: it may
    /// have executed before its client was evicted. Nothing happens.
    Expired { floor: RequestId },
}

/// Bounds of the reply table (see the module docs for the eviction rule). Part of the state,
/// so every replica applies the same ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyLimits {
    /// Above this many entries, idle clients are evicted.
    pub max_clients: usize,
    /// A client that executed nothing for more than this many commands is idle.
    pub idle_commands: u64,
}

impl Default for ReplyLimits {
    fn default() -> Self {
        ReplyLimits {
            max_clients: 10_000,
            idle_commands: 100_000,
        }
    }
}

/// The per-client entry of the reply table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastReply {
    pub request: RequestId,
    pub reply: Reply,
}

/// What the reply table remembers of an evicted client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The client's last executed request: at or below it, the client's requests are refused.
    pub request: RequestId,
    /// When it was evicted: the oldest tombstones are forgotten first.
    pub evicted_at: ExecIndex,
}

/// The whole replicated state. Serializable: it is the body of every checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bank {
    balances: BTreeMap<Account, Amount>,
    replies: BTreeMap<ClientId, LastReply>,
    exec_index: ExecIndex,
    /// Evicted clients' last request ids (see the module docs). Where checkpoints before
    /// tombstones kept one `RequestId` floor: a floor of 0 encodes as an empty map.
    evicted: BTreeMap<ClientId, Tombstone>,
    reply_limits: ReplyLimits,
    /// Two-phase commit: this shard, the other shards' accounts, locks and transactions.
    /// Boxed so that messages carrying a checkpoint stay small.
    txns: Box<twopc::Txns>,
    /// Planted bug `no-funds-check`: let a transfer overdraw. Not part of real behaviour, so
    /// never written into a checkpoint: the core sets it again from its config after every
    /// restore or install.
    #[serde(skip)]
    allow_overdraft: bool,
    /// Planted two-phase commit bugs; like `allow_overdraft`, set again after every restore.
    #[serde(skip)]
    planted: PlantedTxnBugs,
}

/// The planted bugs of a participant shard, only reachable through the `bugs` feature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlantedTxnBugs {
    /// Credit `to` at the yes vote, not at the commit (and keep it on abort).
    pub apply_at_prepare: bool,
    /// Keep a participant's lock when its transaction aborts.
    pub keep_locks_on_abort: bool,
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
            evicted: BTreeMap::new(),
            reply_limits: ReplyLimits::default(),
            txns: Box::new(twopc::Txns::new(ShardId::ONLY, BTreeMap::new())),
            allow_overdraft: false,
            planted: PlantedTxnBugs::default(),
        }
    }

    /// The bank of one shard: it holds `accounts`; `remote` names every other shard's
    /// accounts and their shard (the credit side of a cross-shard transfer).
    pub fn new_shard(
        shard: ShardId,
        accounts: &[Account],
        remote: BTreeMap<Account, ShardId>,
        initial_balance: Amount,
    ) -> Bank {
        let mut bank = Bank::new(accounts, initial_balance);
        bank.txns = Box::new(twopc::Txns::new(shard, remote));
        bank
    }

    /// Other reply-table bounds (tests; every replica of a cluster must use the same).
    pub fn with_reply_limits(mut self, limits: ReplyLimits) -> Bank {
        self.reply_limits = limits;
        self
    }

    /// Clients in the reply table.
    pub fn reply_clients(&self) -> usize {
        self.replies.len()
    }

    /// `Some(floor)` if `(client, request)` would be refused as expired: the client was
    /// evicted and `floor`, its own last request, is at or above `request` (see the module docs).
    pub fn expired(&self, client: ClientId, request: RequestId) -> Option<RequestId> {
        if self.replies.contains_key(&client) {
            return None;
        }
        let floor = self.evicted.get(&client)?.request;
        (request <= floor).then_some(floor)
    }

    /// Evicted clients still remembered by a tombstone.
    pub fn tombstones(&self) -> usize {
        self.evicted.len()
    }

    /// Planted bug switch, only reachable through the `bugs` feature's `--bug no-funds-check`.
    pub fn set_allow_overdraft(&mut self, allow: bool) {
        self.allow_overdraft = allow;
    }

    /// Planted bug switches of two-phase commit, only reachable through the `bugs` feature.
    pub fn set_planted_txn_bugs(&mut self, bugs: PlantedTxnBugs) {
        self.planted = bugs;
    }

    /// Refuses a request that can never succeed, before it takes a slot.
    pub fn validate(&self, op: &Op) -> Result<(), Invalid> {
        let known = |a: &Account| {
            // Another shard's account is unknown here: the harness matches `Invalid`
            // exhaustively, so a `WrongShard` variant waits until it learns about shards.
            if self.balances.contains_key(a) {
                Ok(())
            } else {
                Err(Invalid::UnknownAccount(a.clone()))
            }
        };
        match op {
            Op::Transfer { from, to, amount } => self.validate_transfer(from, to, *amount),
            Op::Read { account } => known(account),
            Op::ReadAll => Ok(()),
        }
    }

    /// [`Bank::validate`] of a transfer, on borrowed accounts (execution checks every
    /// committed transfer again, and must not copy its accounts to do so).
    fn validate_transfer(
        &self,
        from: &Account,
        to: &Account,
        amount: Amount,
    ) -> Result<(), Invalid> {
        let known = |a: &Account| {
            if self.balances.contains_key(a) {
                Ok(())
            } else {
                Err(Invalid::UnknownAccount(a.clone()))
            }
        };
        known(from)?;
        if self.txns.remote_shard(to).is_none() {
            known(to)?;
        }
        if from == to {
            return Err(Invalid::SameAccount(from.clone()));
        }
        if amount <= 0 {
            return Err(Invalid::NonPositiveAmount(amount));
        }
        Ok(())
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

    /// Executes one committed command, exactly once per `(client, request)`. For an
    /// unsharded bank this is the whole story; a sharded one goes through
    /// [`Bank::execute_step`], because a cross-shard transfer has no outcome when it starts
    /// (here it reads as [`Outcome::Stale`]: nothing to answer yet).
    pub fn execute(&mut self, command: &Command, dedup: bool) -> Outcome {
        match self.execute_step(command, dedup) {
            Step::Done(outcome) => outcome,
            Step::Started { .. } | Step::InProgress(_) | Step::SnapshotStarted { .. } => {
                Outcome::Stale
            }
        }
    }

    /// Executes one committed command: a finished outcome, or a cross-shard transfer that
    /// started (or is already running) two-phase commit and is answered when it is decided.
    pub fn execute_step(&mut self, command: &Command, dedup: bool) -> Step {
        if dedup {
            if let Some(step) = self.dedup(command) {
                return step;
            }
        }
        if let Some(step) = self.start_snapshot(command) {
            return step;
        }
        if let Some(started) = self.start_cross_shard(command) {
            return match started {
                Ok((send, executed)) => Step::Started {
                    txn: self.txns.txn_of(command),
                    send,
                    executed,
                },
                Err(result) => Step::Done(Outcome::Executed(self.record(command, result, true))),
            };
        }
        let result = self.apply(&command.op);
        Step::Done(Outcome::Executed(self.record(command, result, true)))
    }

    /// What a request already seen gets instead of executing (`None`: execute it).
    fn dedup(&self, command: &Command) -> Option<Step> {
        if let Some(last) = self.replies.get(&command.client) {
            if command.request == last.request {
                return Some(Step::Done(Outcome::Duplicate(last.reply.clone())));
            }
            if command.request < last.request {
                return Some(Step::Done(Outcome::Stale));
            }
        }
        let txn = self.txns.txn_of(command);
        if self.txns.is_coordinating(&txn) {
            return Some(Step::InProgress(txn));
        }
        self.expired(command.client, command.request)
            .map(|floor| Step::Done(Outcome::Expired { floor }))
    }

    /// Takes the next exec index for `command` with `result`, and writes the reply table:
    /// always when `overwrite`, else only if the client has not moved past this request (a
    /// cross-shard decision may come after the client's later requests executed).
    fn record(&mut self, command: &Command, result: OpResult, overwrite: bool) -> Executed {
        // Saturating: the index may come from a checkpoint; 2^64 commands are never executed.
        self.exec_index = self.exec_index.saturating_add(1);
        let reply = Reply {
            exec_index: self.exec_index,
            result: result.clone(),
        };
        self.remember(command, reply, overwrite);
        Executed {
            exec_index: self.exec_index,
            command: command.clone(),
            result,
            txn: None,
        }
    }

    /// Writes `reply` into the reply table for `command` (see `record` for `overwrite`).
    fn remember(&mut self, command: &Command, reply: Reply, overwrite: bool) {
        let new_client = !self.replies.contains_key(&command.client);
        if overwrite || self.last_request(command.client) < Some(command.request) {
            self.replies.insert(
                command.client,
                LastReply {
                    request: command.request,
                    reply,
                },
            );
        }
        if new_client && self.replies.len() > self.reply_limits.max_clients {
            self.evict_idle();
        }
    }

    /// Evicts every client idle for more than `idle_commands`, leaving a tombstone for each,
    /// then forgets the oldest tombstones beyond `max_clients`.
    fn evict_idle(&mut self) {
        let now = self.exec_index;
        let idle = self.reply_limits.idle_commands;
        let evicted = &mut self.evicted;
        self.replies.retain(|client, last| {
            let active = now.saturating_sub(last.reply.exec_index) <= idle;
            if !active {
                let tombstone = Tombstone {
                    request: last.request,
                    evicted_at: now,
                };
                evicted.insert(*client, tombstone);
            }
            active
        });
        let excess = self
            .evicted
            .len()
            .saturating_sub(self.reply_limits.max_clients);
        if excess > 0 {
            let mut oldest: Vec<(ExecIndex, ClientId)> = self
                .evicted
                .iter()
                .map(|(c, t)| (t.evicted_at, *c))
                .collect();
            oldest.sort_unstable();
            for (_, client) in oldest.into_iter().take(excess) {
                self.evicted.remove(&client);
            }
        }
    }

    fn apply(&mut self, op: &Op) -> OpResult {
        match op {
            Op::Transfer { from, to, amount } => self.transfer(from, to, *amount),
            // A read never sees around a lock: a locked account is between a transaction's
            // prepare and its decision, and answering with the last committed balance lets a
            // reader order itself before the transfer on this shard and after it on another
            // (a cycle the checker's strict-serializability check rightly reports). No-wait,
            // like transfers: the read fails definitely and the client retries.
            Op::Read { account } => match self.txns.locked_of(&[account]) {
                Some(account) => OpResult::LockConflict { account },
                None => OpResult::Balance {
                    balance: self.balance(account),
                },
            },
            // An unsharded bank's (a sharded one runs a snapshot, see `twopc`). Locks are
            // only ever taken on this shard's own accounts.
            Op::ReadAll => match self.txns.any_locked() {
                Some(account) => OpResult::LockConflict { account },
                None => OpResult::Balances {
                    balances: self.balances.clone(),
                },
            },
        }
    }

    fn transfer(&mut self, from: &Account, to: &Account, amount: Amount) -> OpResult {
        // A committed command was validated by the leader that proposed it, but a replica must
        // not trust that blindly: an invalid command executes as a failure that changes nothing.
        if self.validate_transfer(from, to, amount).is_err() {
            return OpResult::InsufficientFunds {
                from_balance: self.balance(from),
            };
        }
        if let Some(account) = self.txns.held_of(&[from, to]) {
            return OpResult::LockConflict { account };
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
        self.set_balance(from, new_from);
        self.set_balance(to, to_balance);
        OpResult::Transferred {
            from_balance: new_from,
            to_balance,
        }
    }

    /// Sets an account's balance, adding the account if it is new (only a corrupt command
    /// names one); the name is copied only then.
    fn set_balance(&mut self, account: &Account, balance: Amount) {
        match self.balances.get_mut(account) {
            Some(held) => *held = balance,
            None => {
                self.balances.insert(account.clone(), balance);
            }
        }
    }

    /// Balance of an account; 0 for an unknown one (only reachable by a corrupt command).
    /// Balances change only when a decision executes, so nothing uncommitted is ever here;
    /// client reads of a locked account are refused all the same (see `apply`).
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
        Bank::new(&["A".into(), "B".into()], 10)
    }

    fn transfer(client: u64, request: u64, amount: Amount) -> Command {
        Command::transfer(client, request, "A", "B", amount)
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
        let mut bank = Bank::new(&["A".into(), "B".into()], Amount::MAX);
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

    fn small_table() -> Bank {
        bank().with_reply_limits(ReplyLimits {
            max_clients: 2,
            idle_commands: 3,
        })
    }

    fn read(client: u64, request: u64) -> Command {
        Command {
            client: ClientId(client),
            request: RequestId(request),
            op: Op::ReadAll,
        }
    }

    #[test]
    fn the_reply_table_evicts_idle_clients_beyond_its_cap() {
        let mut bank = small_table();
        bank.execute(&transfer(1, 5, 1), true);
        bank.execute(&read(2, 1), true);
        for r in 2..=5 {
            bank.execute(&read(2, r), true);
        }
        // Client 1 is idle (4 commands since its last), client 2 active; 3 is new and over cap.
        assert_eq!(bank.reply_clients(), 2);
        bank.execute(&read(3, 10), true);
        assert_eq!(bank.reply_clients(), 2, "client 1 evicted");
        assert_eq!(bank.last_request(ClientId(1)), None);
        assert_eq!(bank.last_request(ClientId(2)), Some(RequestId(5)));
        // Its executed request comes back late: refused, not executed twice.
        let before = (bank.balance("A"), bank.exec_index());
        assert_eq!(
            bank.execute(&transfer(1, 5, 1), true),
            Outcome::Expired {
                floor: RequestId(5)
            }
        );
        assert_eq!((bank.balance("A"), bank.exec_index()), before);
        // A new request above the floor executes.
        assert!(matches!(
            bank.execute(&transfer(1, 6, 1), true),
            Outcome::Executed(_)
        ));
        assert_eq!(bank.balance("A"), 8);
    }

    #[test]
    fn active_clients_are_never_evicted_and_the_table_stays_bounded() {
        let mut bank = small_table();
        // Three clients taking turns: each is active within any 3 commands.
        for r in 1..=20 {
            for c in 1..=3 {
                let out = bank.execute(&read(c, r), true);
                assert!(matches!(out, Outcome::Executed(_)), "{c}/{r}: {out:?}");
            }
        }
        assert_eq!(bank.reply_clients(), 3, "over the cap, but nobody is idle");
        // A thousand one-shot clients: the table stays within cap + idle + 1.
        for c in 100..1_100 {
            // Request ids from a clock: each above the floor the evictions before it left.
            bank.execute(&read(c, 1_000 + c), true);
            assert!(
                bank.reply_clients() <= 2 + 3 + 1,
                "{}",
                bank.reply_clients()
            );
        }
    }

    #[test]
    fn one_clients_request_id_of_u64_max_expires_nobody_else() {
        let mut bank = small_table();
        bank.execute(&read(1, u64::MAX), true);
        // A crowd of one-shot clients, numbering from 1, evicts client 1 and one another.
        for c in 100..200 {
            let out = bank.execute(&read(c, 1), true);
            assert!(matches!(out, Outcome::Executed(_)), "client {c}: {out:?}");
        }
        assert_eq!(bank.expired(ClientId(500), RequestId(1)), None);
        assert!(matches!(
            bank.execute(&read(500, 1), true),
            Outcome::Executed(_)
        ));
    }

    #[test]
    fn tombstones_are_bounded_and_the_oldest_go_first() {
        let mut bank = small_table();
        for c in 1..=50 {
            bank.execute(&read(c, 7), true);
            assert!(bank.tombstones() <= 2, "{}", bank.tombstones());
        }
        assert!(
            bank.expired(ClientId(1), RequestId(7)).is_none(),
            "forgotten"
        );
        let recent = (1..=50).filter(|c| bank.expired(ClientId(*c), RequestId(7)).is_some());
        assert!(recent.clone().count() > 0);
        assert!(
            recent.clone().all(|c| c > 40),
            "{:?}",
            recent.collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_checkpoint_from_before_tombstones_with_no_floor_reads_the_same() {
        // The layout before tombstones: the floor was a `RequestId` where the map is now.
        #[derive(Serialize)]
        struct Before {
            balances: BTreeMap<Account, Amount>,
            replies: BTreeMap<ClientId, LastReply>,
            exec_index: ExecIndex,
            evicted_floor: RequestId,
            reply_limits: ReplyLimits,
            txns: Box<twopc::Txns>,
        }
        let mut bank = small_table();
        bank.execute(&transfer(1, 1, 3), true);
        let before = |floor| Before {
            balances: bank.balances.clone(),
            replies: bank.replies.clone(),
            exec_index: bank.exec_index,
            evicted_floor: RequestId(floor),
            reply_limits: bank.reply_limits,
            txns: bank.txns.clone(),
        };
        let old = postcard::to_allocvec(&before(0)).unwrap();
        assert_eq!(postcard::from_bytes::<Bank>(&old).unwrap(), bank);
        let poisoned = postcard::to_allocvec(&before(u64::MAX)).unwrap();
        assert!(postcard::from_bytes::<Bank>(&poisoned).is_err());
    }

    #[test]
    fn overdraft_bug_lets_a_balance_go_negative() {
        let mut bank = bank();
        bank.set_allow_overdraft(true);
        bank.execute(&transfer(1, 1, 15), true);
        assert_eq!(bank.balance("A"), -5);
    }

    /// `Op` and `OpResult` as they were with `Account = String`, variant for variant.
    mod with_string_names {
        use serde::Serialize;
        use std::collections::BTreeMap;

        #[derive(Serialize)]
        pub enum Op {
            Transfer {
                from: String,
                to: String,
                amount: i64,
            },
            Read {
                account: String,
            },
            #[allow(dead_code)]
            ReadAll,
        }

        #[derive(Serialize)]
        pub struct Command {
            pub client: u64,
            pub request: u64,
            pub op: Op,
        }

        #[derive(Serialize)]
        #[allow(dead_code)]
        pub enum OpResult {
            Transferred { from_balance: i64, to_balance: i64 },
            InsufficientFunds { from_balance: i64 },
            Balance { balance: i64 },
            Balances { balances: BTreeMap<String, i64> },
            LockConflict { account: String },
        }
    }

    #[test]
    fn account_names_encode_as_the_strings_they_replaced() {
        // Long enough to leave the inline form (more than 24 bytes) as well as short.
        let long = "an-account-name-longer-than-twenty-four-bytes";
        let cases = [("A", "B"), (long, "C"), ("", long)];
        for (from, to) in cases {
            let new = Command::transfer(3, 9, from, to, 7);
            let old = with_string_names::Command {
                client: 3,
                request: 9,
                op: with_string_names::Op::Transfer {
                    from: from.to_string(),
                    to: to.to_string(),
                    amount: 7,
                },
            };
            let bytes = postcard::to_allocvec(&new).unwrap();
            assert_eq!(
                bytes,
                postcard::to_allocvec(&old).unwrap(),
                "{from:?} {to:?}"
            );
            assert_eq!(postcard::from_bytes::<Command>(&bytes).unwrap(), new);
            let json = serde_json::to_string(&new).unwrap();
            assert_eq!(json, serde_json::to_string(&old).unwrap());
            assert_eq!(serde_json::from_str::<Command>(&json).unwrap(), new);
        }
        let read = Op::Read {
            account: long.into(),
        };
        let old_read = with_string_names::Op::Read {
            account: long.to_string(),
        };
        assert_eq!(
            postcard::to_allocvec(&read).unwrap(),
            postcard::to_allocvec(&old_read).unwrap()
        );
        let balances = [("J", 4), ("A", -1), (long, 12)];
        let new = OpResult::Balances {
            balances: balances.iter().map(|&(a, b)| (a.into(), b)).collect(),
        };
        let old = with_string_names::OpResult::Balances {
            balances: balances.iter().map(|&(a, b)| (a.to_string(), b)).collect(),
        };
        let bytes = postcard::to_allocvec(&new).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&old).unwrap());
        assert_eq!(postcard::from_bytes::<OpResult>(&bytes).unwrap(), new);
        assert_eq!(
            serde_json::to_string(&new).unwrap(),
            serde_json::to_string(&old).unwrap(),
            "the same keys in the same order"
        );
        let locked = OpResult::LockConflict {
            account: "B".into(),
        };
        let old_locked = with_string_names::OpResult::LockConflict {
            account: "B".to_string(),
        };
        assert_eq!(
            postcard::to_allocvec(&locked).unwrap(),
            postcard::to_allocvec(&old_locked).unwrap()
        );
    }
}
