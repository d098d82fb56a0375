//! The replicated half of two-phase commit between shards: locks, transactions, votes and
//! decisions, executed from the log like every other command, so every replica of a shard
//! holds the same transactions and every checkpoint carries them.
//!
//! How a transfer from `from` (this shard, the coordinator) to `to` (another shard, the
//! participant) runs; each step below is the execution of one log entry of one shard:
//!
//! 1. Coordinator, the client's transfer: `from` locked (or shared-locked by a snapshot) →
//!    `LockConflict`; too little money → `InsufficientFunds`; too many transactions → `Busy`
//!    (all definite, at once). Otherwise lock `from`, record the transaction as preparing,
//!    and send PREPARE. No reply yet, but the start takes an exec index (a prepare entry,
//!    vote yes).
//! 2. Participant, [`TxnEntry::Prepare`]: a transaction it already voted on gets the same vote
//!    again; one it already finished gets no (without locking: a late duplicate must not lock
//!    `to` for ever); `to` locked by another one, or shared-locked by a snapshot → no
//!    (no-wait locking, so no deadlock); else lock `to` and vote yes with the balance `to`
//!    will have. The first vote takes an exec index (a prepare entry); a no vote marks the
//!    transaction finished here, so a resent PREPARE is voted no again and never logged twice.
//! 3. Coordinator, [`TxnEntry::Decide`] (proposed by its leader on a vote, or on a timeout):
//!    the first decision for a transaction wins, later ones change nothing. Commit debits
//!    `from`; either unlocks it, takes the exec index and writes the client's reply into the
//!    reply table (so a retry gets it), and sends the DECISION.
//! 4. Participant, [`TxnEntry::Decide`]: commit credits `to` (the executed log records
//!    `Credited`); either unlocks it; after a yes vote either takes an exec index; always
//!    answers ACK.
//!
//! Every entry that takes an exec index carries a [`super::TxnRecord`] (its phase and the
//! amount it applied), so a shard's executed log shows each transaction's steps there.
//! 5. Coordinator, [`TxnEntry::Forget`] (on the ACK): drops the decided transaction.
//!
//! The transaction id is the client's `(client, request)` and the coordinator shard, so a
//! retried request, to any leader of the coordinator shard, finds the running transaction (or
//! its reply, once decided) and never starts a second one.
//!
//! Bounds: at most [`TxnLimits::max_inflight`] transactions (coordinated plus participated)
//! per shard; beyond it a transfer fails `Busy` and a PREPARE is voted no. A participant
//! remembers finished transactions as one high-water request id per (coordinator, client),
//! at most [`TxnLimits::max_finished_clients`] of them; beyond it the oldest is dropped and
//! its mark raises a floor, and any PREPARE at or below the floor from a client without a
//! mark is voted no. A no vote is always safe (the coordinator has not decided yet, or has and
//! ignores it), so a mark only ever errs towards aborting. (Request ids increase per client,
//! so a lower request than a finished one of the same client is a late copy or a request its
//! client gave up on.)
//!
//! Reads never see around a lock: a read that touches a locked account fails definitely with
//! `LockConflict`, like a transfer (no-wait), and the client retries. Answering with the last
//! committed balance would let a reader order itself before a transfer on one shard and after
//! it on the other: a cycle, not a serializable history.
//!
//! A `read_all` on a sharded bank is a snapshot: a read-only transaction of the same shape
//! whose every shard takes a shared lock on all its accounts (see [`snapshot`] for how it runs
//! and why that makes it consistent). A shared lock is held by the snapshot, not by an
//! account's transaction: transfers (at their start, at a participant's prepare, and local
//! ones) fail or vote no on a shared-locked account, single reads go on, and snapshots share.
//! Snapshots count in `max_inflight` like transfers.

mod snapshot;

pub use snapshot::{SnapshotPart, SnapshotVote};

use super::{Bank, Command, Executed, Op, OpResult, Outcome, Reply, TxnPhase, TxnRecord};
use crate::types::{Account, Amount, ClientId, RequestId, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// A cross-shard transaction: the client request that started it, at its coordinator shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TxnId {
    pub coordinator: ShardId,
    pub client: ClientId,
    pub request: RequestId,
}

/// Why a cross-shard transfer was aborted. Wire type: never reorder variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AbortReason {
    /// The credited account was locked by another transaction.
    LockConflict,
    /// The participant had too many transactions in flight.
    Busy,
    /// The participant's vote did not arrive in time.
    Timeout,
    /// The participant cannot take the credit (not its account, or the balance would overflow).
    Refused,
    /// The participant had already finished this transaction (a late PREPARE).
    AlreadyFinished,
}

/// A participant's vote. Wire type: never reorder variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Vote {
    /// Prepared: `to` is locked and will hold `to_balance` on commit.
    Yes {
        to_balance: Amount,
    },
    No {
        reason: AbortReason,
    },
}

/// The coordinator's decision. Wire type: never reorder variants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Decision {
    /// Commit; `to_balance` is the participant's voted balance, for the client's reply.
    Commit {
        to_balance: Amount,
    },
    Abort {
        reason: AbortReason,
    },
    /// A snapshot committed: every shard's part was taken; participants release their
    /// shared locks.
    SnapshotCommit,
    /// A snapshot aborted; participants release their shared locks.
    SnapshotAbort {
        reason: AbortReason,
    },
}

impl Decision {
    /// The decision that a vote leads to.
    pub fn from_vote(vote: Vote) -> Decision {
        match vote {
            Vote::Yes { to_balance } => Decision::Commit { to_balance },
            Vote::No { reason } => Decision::Abort { reason },
        }
    }
}

/// An internal log entry of two-phase commit. Clients cannot submit these: the client protocol
/// carries [`Op`]s only, and these travel in a log value of their own. Wire and disk type:
/// never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnEntry {
    /// Participant: prepare to credit `to` with `amount` (`from` is for the executed log).
    Prepare {
        txn: TxnId,
        from: Account,
        to: Account,
        amount: Amount,
    },
    /// Either side: the decision (the coordinator's first one is the decision).
    Decide { txn: TxnId, decision: Decision },
    /// Coordinator: the participant acknowledged the decision; forget the transaction.
    Forget { txn: TxnId },
    /// Participant: take this shard's part of snapshot `txn` (see `snapshot`).
    SnapshotPrepare { txn: TxnId },
    /// Coordinator: `shard`'s vote on snapshot `txn`; the last yes or the first no decides.
    SnapshotVote {
        txn: TxnId,
        shard: ShardId,
        vote: SnapshotVote,
    },
    /// Coordinator: `shard` applied the snapshot's decision; forgotten once all have.
    SnapshotForget { txn: TxnId, shard: ShardId },
}

/// A message between shards. Wire type: never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ShardMsg {
    /// Coordinator to participant.
    Prepare {
        txn: TxnId,
        from: Account,
        to: Account,
        amount: Amount,
    },
    /// Participant to coordinator.
    Vote { txn: TxnId, vote: Vote },
    /// Coordinator to participant.
    Decision { txn: TxnId, decision: Decision },
    /// Participant to coordinator: the decision is applied there.
    Ack { txn: TxnId },
    /// Coordinator to participant: take your part of a snapshot.
    SnapshotPrepare { txn: TxnId },
    /// Participant `shard` to coordinator.
    SnapshotVote {
        txn: TxnId,
        shard: ShardId,
        vote: SnapshotVote,
    },
    /// Participant `shard` to coordinator: the snapshot's decision is applied there.
    SnapshotAck { txn: TxnId, shard: ShardId },
}

impl ShardMsg {
    /// The log entry the receiving shard's leader proposes for this message; a VOTE becomes
    /// the decision it leads to.
    pub fn entry(&self) -> TxnEntry {
        match self.clone() {
            ShardMsg::Prepare {
                txn,
                from,
                to,
                amount,
            } => TxnEntry::Prepare {
                txn,
                from,
                to,
                amount,
            },
            ShardMsg::Vote { txn, vote } => TxnEntry::Decide {
                txn,
                decision: Decision::from_vote(vote),
            },
            ShardMsg::Decision { txn, decision } => TxnEntry::Decide { txn, decision },
            ShardMsg::Ack { txn } => TxnEntry::Forget { txn },
            ShardMsg::SnapshotPrepare { txn } => TxnEntry::SnapshotPrepare { txn },
            ShardMsg::SnapshotVote { txn, shard, vote } => {
                TxnEntry::SnapshotVote { txn, shard, vote }
            }
            ShardMsg::SnapshotAck { txn, shard } => TxnEntry::SnapshotForget { txn, shard },
        }
    }
}

/// A message for every member of `shard` (only its leader acts on it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outbound {
    pub shard: ShardId,
    pub msg: ShardMsg,
}

/// What executing a client command did, on a bank that may be sharded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Finished (executed, duplicate, stale, expired) as in an unsharded bank.
    Done(Outcome),
    /// A cross-shard transfer started: send `send`; the client is answered at the decision.
    /// `executed` is the start's log entry (phase prepare, no reply).
    Started {
        txn: TxnId,
        send: Outbound,
        executed: Executed,
    },
    /// A retry of a cross-shard transfer still running: nothing to do, keep waiting.
    InProgress(TxnId),
    /// A snapshot (a sharded `read_all`) started: `executed` is this shard's part, taking
    /// its exec index; send `send`; the client is answered at the decision.
    SnapshotStarted {
        txn: TxnId,
        executed: Executed,
        send: Vec<Outbound>,
    },
}

/// A client's answer that an entry produced at the coordinator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Answer {
    pub client: ClientId,
    pub request: RequestId,
    pub reply: Reply,
}

/// What executing a [`TxnEntry`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TxnStep {
    /// The entry took an exec index (a decision at the coordinator, a commit at the
    /// participant, a snapshot's part at a participant).
    pub executed: Option<Executed>,
    pub send: Vec<Outbound>,
    /// The client's answer, at the coordinator's decision (a snapshot's decision takes no
    /// exec index: its answer carries the coordinator part's).
    pub answer: Option<Answer>,
}

/// Bounds of the transaction tables; part of the state, like the reply limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnLimits {
    /// Most transactions coordinated plus participated in at once.
    pub max_inflight: usize,
    /// Most (coordinator, client) finished marks a participant keeps.
    pub max_finished_clients: usize,
}

impl Default for TxnLimits {
    fn default() -> Self {
        TxnLimits {
            max_inflight: 1024,
            max_finished_clients: 10_000,
        }
    }
}

/// A transaction this shard coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Coordinated {
    command: Command,
    from: Account,
    to: Account,
    amount: Amount,
    to_shard: ShardId,
    /// `None` while preparing.
    decision: Option<Decision>,
}

/// A transaction this shard voted yes on and has not seen decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Participated {
    from: Account,
    to: Account,
    amount: Amount,
    to_balance: Amount,
}

/// A participant's memory of finished transactions of one (coordinator, client).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct FinishedMark {
    request: RequestId,
    /// Order of the last update, to drop the oldest mark first.
    seq: u64,
}

/// The two-phase commit state of one shard's bank. See the module docs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Txns {
    shard: ShardId,
    remote: BTreeMap<Account, ShardId>,
    locks: BTreeMap<Account, TxnId>,
    coordinating: BTreeMap<TxnId, Coordinated>,
    participating: BTreeMap<TxnId, Participated>,
    finished: BTreeMap<(ShardId, ClientId), FinishedMark>,
    finished_floor: RequestId,
    finished_seq: u64,
    limits: TxnLimits,
    /// Snapshots holding a shared lock on every account of this shard (see `snapshot`).
    shared: BTreeSet<TxnId>,
    /// Snapshots this shard coordinates.
    snapshots: BTreeMap<TxnId, snapshot::Coordinated>,
    /// Snapshots this shard voted yes on and has not seen decided: its part, for resends.
    parts: BTreeMap<TxnId, SnapshotPart>,
}

impl Txns {
    pub(super) fn new(shard: ShardId, remote: BTreeMap<Account, ShardId>) -> Txns {
        Txns {
            shard,
            remote,
            locks: BTreeMap::new(),
            coordinating: BTreeMap::new(),
            participating: BTreeMap::new(),
            finished: BTreeMap::new(),
            finished_floor: RequestId(0),
            finished_seq: 0,
            limits: TxnLimits::default(),
            shared: BTreeSet::new(),
            snapshots: BTreeMap::new(),
            parts: BTreeMap::new(),
        }
    }

    pub(super) fn remote_shard(&self, account: &str) -> Option<ShardId> {
        self.remote.get(account).copied()
    }

    pub(super) fn txn_of(&self, command: &Command) -> TxnId {
        TxnId {
            coordinator: self.shard,
            client: command.client,
            request: command.request,
        }
    }

    pub(super) fn is_coordinating(&self, txn: &TxnId) -> bool {
        self.coordinating.contains_key(txn) || self.snapshots.contains_key(txn)
    }

    /// The first of `accounts` (this shard's) that a transaction holds locked, exclusively or
    /// shared: what a transfer may not touch.
    pub(super) fn held_of(&self, accounts: &[&Account]) -> Option<Account> {
        let shared = !self.shared.is_empty();
        accounts
            .iter()
            .find(|a| shared || self.locks.contains_key(a.as_str()))
            .map(|a| (*a).clone())
    }

    /// The first of `accounts` that a transaction holds locked exclusively: what a read
    /// may not see (a shared lock keeps balances as they are, so reads may).
    pub(super) fn locked_of(&self, accounts: &[&Account]) -> Option<Account> {
        accounts
            .iter()
            .find(|a| self.locks.contains_key(a.as_str()))
            .map(|a| (*a).clone())
    }

    /// The first (by name) of this shard's accounts that a transaction holds locked.
    pub(super) fn any_locked(&self) -> Option<Account> {
        self.locks.keys().next().cloned()
    }

    /// Whether `part` holds exactly the accounts of `shard` (another shard).
    fn holds_exactly(&self, shard: ShardId, part: &SnapshotPart) -> bool {
        let theirs = self.remote.iter().filter(|(_, s)| **s == shard);
        part.balances.keys().eq(theirs.map(|(a, _)| a))
    }

    fn inflight(&self) -> usize {
        let snapshots = self.snapshots.len() + self.parts.len();
        self.coordinating.len() + self.participating.len() + snapshots
    }

    /// Whether this participant has finished `txn` (or may have: see the floor).
    fn finished(&self, txn: &TxnId) -> bool {
        match self.finished.get(&(txn.coordinator, txn.client)) {
            Some(mark) => txn.request <= mark.request,
            None => txn.request <= self.finished_floor,
        }
    }

    fn mark_finished(&mut self, txn: &TxnId) {
        self.finished_seq += 1;
        let seq = self.finished_seq;
        let mark = self
            .finished
            .entry((txn.coordinator, txn.client))
            .or_insert(FinishedMark {
                request: txn.request,
                seq,
            });
        mark.request = mark.request.max(txn.request);
        mark.seq = seq;
        if self.finished.len() > self.limits.max_finished_clients {
            let oldest = self.finished.iter().min_by_key(|(_, m)| m.seq);
            if let Some((&key, &mark)) = oldest {
                self.finished.remove(&key);
                self.finished_floor = self.finished_floor.max(mark.request);
            }
        }
    }
}

impl Bank {
    /// Whether the lock tables agree with the transactions in flight (the core checks this
    /// after every input in test builds): every exclusive lock is held by a transaction
    /// preparing here as coordinator (on its `from`) or voted yes on here (on its `to`) and
    /// each of those holds its lock; every shared lock belongs to a snapshot still holding it;
    /// shared and exclusive locks never stand at once (each refuses the other).
    pub fn check_lock_table(&self) -> Result<(), String> {
        let t = &self.txns;
        for (account, txn) in &t.locks {
            let coordinates = t
                .coordinating
                .get(txn)
                .is_some_and(|c| c.decision.is_none() && c.from == *account);
            let participates = t.participating.get(txn).is_some_and(|p| p.to == *account);
            if !(coordinates || participates) {
                return Err(format!(
                    "{account} locked by {txn:?}, which holds no lock on it"
                ));
            }
        }
        let preparing = t.coordinating.iter().filter(|(_, c)| c.decision.is_none());
        let holders = preparing.map(|(txn, c)| (txn, &c.from));
        let voted = t.participating.iter().map(|(txn, p)| (txn, &p.to));
        for (txn, account) in holders.chain(voted) {
            if t.locks.get(account) != Some(txn) {
                return Err(format!("{txn:?} in flight without its lock on {account}"));
            }
        }
        for txn in &t.shared {
            let coordinates = t.snapshots.get(txn).is_some_and(|s| s.decision.is_none());
            if !(coordinates || t.parts.contains_key(txn)) {
                return Err(format!(
                    "shared lock of {txn:?}, a snapshot not in flight here"
                ));
            }
        }
        match (t.shared.first(), t.locks.keys().next()) {
            (Some(txn), Some(account)) => Err(format!(
                "{account} locked exclusively while {txn:?} holds shared locks"
            )),
            _ => Ok(()),
        }
    }
}

impl TxnId {
    /// Whether this transaction is older than `other` under wait-die (`core::locks`): the
    /// lower request id first (a client's request ids count up, so a transfer whose client
    /// has done less, or that has been retried longest, goes first), then the lower client,
    /// then the lower coordinator shard. A strict total order every shard computes alike.
    pub fn is_older_than(&self, other: &TxnId) -> bool {
        let age = |t: &TxnId| (t.request, t.client, t.coordinator);
        age(self) < age(other)
    }
}

impl Txns {
    /// The transactions whose locks keep a transfer off `account` (this shard's): its
    /// exclusive holder and every snapshot (a shared lock covers every account).
    fn holders_of(&self, account: &str) -> impl Iterator<Item = TxnId> + '_ {
        let exclusive = self.locks.get(account).copied();
        exclusive.into_iter().chain(self.shared.iter().copied())
    }
}

impl Bank {
    /// The transactions whose locks would make `op` fail `LockConflict` if it executed now
    /// (empty: it would meet no lock). A lock wait (`core::locks`) holds a command back while
    /// this is not empty. A snapshot (a sharded `read_all`) never waits: always empty.
    pub fn lock_blockers(&self, op: &Op) -> Vec<TxnId> {
        let t = &self.txns;
        match op {
            Op::Transfer { from, to, .. } => {
                let cross = t.remote_shard(to).is_some();
                let accounts: &[&Account] = if cross { &[from] } else { &[from, to] };
                let mut holders: Vec<TxnId> =
                    accounts.iter().flat_map(|a| t.holders_of(a)).collect();
                holders.dedup();
                holders
            }
            Op::Read { account } => t.locks.get(account).copied().into_iter().collect(),
            Op::ReadAll => Vec::new(),
        }
    }

    /// The transactions whose locks would make a PREPARE of `txn` crediting `to` vote no
    /// `LockConflict` if it executed now. Empty for a transaction already voted on or finished
    /// here: its PREPARE only repeats the vote.
    pub fn prepare_blockers(&self, txn: &TxnId, to: &str) -> Vec<TxnId> {
        let t = &self.txns;
        if t.participating.contains_key(txn) || t.finished(txn) {
            return Vec::new();
        }
        t.holders_of(to).filter(|h| h != txn).collect()
    }

    /// Whether the PREPARE of `txn` has executed here (voted yes and still in flight, or
    /// finished).
    pub fn prepared_here(&self, txn: &TxnId) -> bool {
        self.txns.participating.contains_key(txn) || self.txns.finished(txn)
    }

    /// Whether `account` is another shard's (a transfer to it is cross-shard).
    pub fn is_remote(&self, account: &str) -> bool {
        self.txns.remote_shard(account).is_some()
    }
}

impl Bank {
    /// Other transaction bounds (tests; every replica of a shard must use the same).
    pub fn with_txn_limits(mut self, limits: TxnLimits) -> Bank {
        self.txns.limits = limits;
        self
    }

    /// This bank's shard (1 for an unsharded bank).
    pub fn shard(&self) -> ShardId {
        self.txns.shard
    }

    /// Transactions in flight here (coordinated plus participated).
    pub fn txns_in_flight(&self) -> usize {
        self.txns.inflight()
    }

    /// Accounts locked by a transaction, with the transaction.
    pub fn locks(&self) -> &BTreeMap<Account, TxnId> {
        &self.txns.locks
    }

    /// A transaction this shard coordinates: `Some(None)` while preparing, `Some(Some(d))`
    /// once decided (until forgotten), `None` if unknown here.
    pub fn coordinated(&self, txn: &TxnId) -> Option<Option<Decision>> {
        let snapshot = || self.txns.snapshots.get(txn).map(|s| s.decision);
        self.txns
            .coordinating
            .get(txn)
            .map(|c| c.decision)
            .or_else(snapshot)
    }

    /// Transactions this shard coordinates that have no decision yet (a leader aborts those
    /// whose vote does not come in time).
    pub fn preparing(&self) -> Vec<TxnId> {
        let txns = &self.txns.coordinating;
        let open = txns.iter().filter(|(_, c)| c.decision.is_none());
        let transfers = open.map(|(txn, _)| *txn);
        transfers.chain(self.snapshots_preparing()).collect()
    }

    /// The messages that unfinished work here needs (re)sent: PREPARE for every transaction
    /// preparing, DECISION for every decided one not yet acknowledged, the yes vote of every
    /// transaction prepared here. A leader resends these until the entries that end them run.
    pub fn unfinished(&self) -> Vec<Outbound> {
        let coordinated = self.txns.coordinating.iter().map(|(txn, c)| Outbound {
            shard: c.to_shard,
            msg: match c.decision {
                None => prepare_msg(*txn, c),
                Some(decision) => ShardMsg::Decision {
                    txn: *txn,
                    decision,
                },
            },
        });
        let voted = self.txns.participating.iter().map(|(txn, p)| Outbound {
            shard: txn.coordinator,
            msg: ShardMsg::Vote {
                txn: *txn,
                vote: Vote::Yes {
                    to_balance: p.to_balance,
                },
            },
        });
        let snapshots = self.snapshots_unfinished();
        coordinated.chain(voted).chain(snapshots).collect()
    }

    /// Step 1 (module docs) for a transfer to another shard's account; `None` for any other
    /// command. `Ok`: started, send this, log that. `Err`: a definite failure to execute at
    /// once.
    pub(super) fn start_cross_shard(
        &mut self,
        command: &Command,
    ) -> Option<Result<(Outbound, Executed), OpResult>> {
        let Op::Transfer { from, to, amount } = &command.op else {
            return None;
        };
        let to_shard = self.txns.remote_shard(to)?;
        Some(self.try_start(command, from, to, *amount, to_shard))
    }

    fn try_start(
        &mut self,
        command: &Command,
        from: &Account,
        to: &Account,
        amount: Amount,
        to_shard: ShardId,
    ) -> Result<(Outbound, Executed), OpResult> {
        let from_balance = self.balance(from);
        if self.validate(&command.op).is_err() {
            // Never trusted blindly (see `transfer`): an invalid command changes nothing.
            return Err(OpResult::InsufficientFunds { from_balance });
        }
        if let Some(account) = self.txns.held_of(&[from]) {
            return Err(OpResult::LockConflict { account });
        }
        if from_balance < amount && !self.allow_overdraft {
            return Err(OpResult::InsufficientFunds { from_balance });
        }
        if self.txns.inflight() >= self.txns.limits.max_inflight {
            return Err(OpResult::Busy);
        }
        let txn = self.txns.txn_of(command);
        let record = Coordinated {
            command: command.clone(),
            from: from.clone(),
            to: to.clone(),
            amount,
            to_shard,
            decision: None,
        };
        let msg = prepare_msg(txn, &record);
        self.txns.locks.insert(from.clone(), txn);
        self.txns.coordinating.insert(txn, record);
        let prepared = TxnRecord {
            id: txn,
            phase: TxnPhase::Prepare { vote_yes: true },
            applied: 0,
        };
        let result = OpResult::Balance {
            balance: from_balance,
        };
        let executed = self.log_txn(command.clone(), result, prepared);
        let send = Outbound {
            shard: to_shard,
            msg,
        };
        Ok((send, executed))
    }

    /// Executes an internal entry of two-phase commit (steps 2–5 of the module docs).
    pub fn apply_txn(&mut self, entry: &TxnEntry) -> TxnStep {
        match entry {
            TxnEntry::Prepare {
                txn,
                from,
                to,
                amount,
            } => self.prepare(*txn, from, to, *amount),
            TxnEntry::Decide { txn, decision } if self.txns.snapshots.contains_key(txn) => {
                self.decide_snapshot_on_timeout(*txn, *decision)
            }
            TxnEntry::Decide { txn, decision } if txn.coordinator == self.shard() => {
                self.decide_as_coordinator(*txn, *decision)
            }
            TxnEntry::Decide {
                txn,
                decision: Decision::SnapshotCommit | Decision::SnapshotAbort { .. },
            } => self.release_snapshot(*txn),
            TxnEntry::Decide { txn, decision } => self.decide_as_participant(*txn, *decision),
            TxnEntry::Forget { txn } => {
                let decided = self
                    .txns
                    .coordinating
                    .get(txn)
                    .map(|c| c.decision.is_some());
                if decided == Some(true) {
                    self.txns.coordinating.remove(txn);
                }
                TxnStep::default()
            }
            TxnEntry::SnapshotPrepare { txn } => self.snapshot_prepare(*txn),
            TxnEntry::SnapshotVote { txn, shard, vote } => {
                self.snapshot_vote(*txn, *shard, vote.clone())
            }
            TxnEntry::SnapshotForget { txn, shard } => self.snapshot_forget(*txn, *shard),
        }
    }

    fn prepare(&mut self, txn: TxnId, from: &Account, to: &Account, amount: Amount) -> TxnStep {
        // Only a transaction's first vote here is logged; a repeated PREPARE gets the same
        // vote (yes: still participating; no: marked finished) without a second entry.
        let first = !self.txns.participating.contains_key(&txn) && !self.txns.finished(&txn);
        let vote = self.vote(txn, from, to, amount);
        let executed = first.then(|| {
            let (vote_yes, result) = match vote {
                Vote::Yes { .. } => (true, self.balance_result(to)),
                Vote::No { reason } => {
                    self.txns.mark_finished(&txn);
                    (false, OpResult::Aborted { reason })
                }
            };
            let phase = TxnPhase::Prepare { vote_yes };
            let command = txn_command(txn, from, to, amount);
            self.log_txn(command, result, txn_record(txn, phase, 0))
        });
        TxnStep {
            executed,
            send: vec![Outbound {
                shard: txn.coordinator,
                msg: ShardMsg::Vote { txn, vote },
            }],
            ..TxnStep::default()
        }
    }

    /// Step 2: the vote, locking `to` on a yes.
    fn vote(&mut self, txn: TxnId, from: &Account, to: &Account, amount: Amount) -> Vote {
        if let Some(p) = self.txns.participating.get(&txn) {
            return Vote::Yes {
                to_balance: p.to_balance,
            };
        }
        let no = |reason| Vote::No { reason };
        if self.txns.finished(&txn) {
            return no(AbortReason::AlreadyFinished);
        }
        let to_balance = self.balances.get(to).and_then(|b| b.checked_add(amount));
        let (Some(to_balance), true) = (to_balance, amount > 0 && txn.coordinator != self.shard())
        else {
            return no(AbortReason::Refused);
        };
        if self.txns.held_of(&[to]).is_some() {
            return no(AbortReason::LockConflict);
        }
        if self.txns.inflight() >= self.txns.limits.max_inflight {
            return no(AbortReason::Busy);
        }
        self.txns.locks.insert(to.clone(), txn);
        let record = Participated {
            from: from.clone(),
            to: to.clone(),
            amount,
            to_balance,
        };
        self.txns.participating.insert(txn, record);
        if self.planted.apply_at_prepare {
            // PLANTED BUG apply_at_prepare: the credit lands at the vote, before any decision.
            self.balances.insert(to.clone(), to_balance);
        }
        Vote::Yes { to_balance }
    }

    /// Step 3: the first decision for `txn` wins; later ones (and unknown ids) change nothing.
    fn decide_as_coordinator(&mut self, txn: TxnId, decision: Decision) -> TxnStep {
        let Some(record) = self.txns.coordinating.get_mut(&txn) else {
            return TxnStep::default();
        };
        let snapshot = matches!(
            decision,
            Decision::SnapshotCommit | Decision::SnapshotAbort { .. }
        );
        // A snapshot's decision for a transfer: only a corrupt entry; it changes nothing.
        if record.decision.is_some() || snapshot {
            return TxnStep::default();
        }
        record.decision = Some(decision);
        let record = record.clone();
        self.txns.locks.remove(&record.from);
        let result = match decision {
            Decision::Commit { to_balance } => {
                // Cannot fail: `from` was locked with enough money since the start.
                let from_balance = self.balance(&record.from).saturating_sub(record.amount);
                self.balances.insert(record.from.clone(), from_balance);
                OpResult::Transferred {
                    from_balance,
                    to_balance,
                }
            }
            Decision::Abort { reason } | Decision::SnapshotAbort { reason } => {
                OpResult::Aborted { reason }
            }
            Decision::SnapshotCommit => unreachable!("returned above"),
        };
        let (phase, applied) = match decision {
            Decision::Commit { .. } => (TxnPhase::Commit, -record.amount),
            _ => (TxnPhase::Abort, 0),
        };
        let mut executed = self.record(&record.command, result, false);
        executed.txn = Some(txn_record(txn, phase, applied));
        let answer = Answer {
            client: txn.client,
            request: txn.request,
            reply: Reply {
                exec_index: executed.exec_index,
                result: executed.result.clone(),
            },
        };
        TxnStep {
            executed: Some(executed),
            send: vec![Outbound {
                shard: record.to_shard,
                msg: ShardMsg::Decision { txn, decision },
            }],
            answer: Some(answer),
        }
    }

    /// Step 4: apply (on commit) and unlock; acknowledge in every case where the decision is
    /// known applied here.
    fn decide_as_participant(&mut self, txn: TxnId, decision: Decision) -> TxnStep {
        let ack = vec![Outbound {
            shard: txn.coordinator,
            msg: ShardMsg::Ack { txn },
        }];
        let Some(p) = self.txns.participating.remove(&txn) else {
            if matches!(decision, Decision::Commit { .. }) && !self.txns.finished(&txn) {
                // A commit this shard never voted yes on: impossible unless state is corrupt.
                // Acknowledging would let the coordinator forget an unapplied credit.
                tracing::error!(?txn, "commit for a transaction never prepared here");
                return TxnStep::default();
            }
            self.txns.mark_finished(&txn);
            return TxnStep {
                send: ack,
                ..TxnStep::default()
            };
        };
        let aborted = matches!(decision, Decision::Abort { .. });
        // PLANTED BUG keep_locks_on_abort: an aborted transaction's lock stays for ever.
        if !(aborted && self.planted.keep_locks_on_abort) {
            self.txns.locks.remove(&p.to);
        }
        self.txns.mark_finished(&txn);
        let reason = match decision {
            Decision::Commit { .. } => None,
            Decision::Abort { reason } | Decision::SnapshotAbort { reason } => Some(reason),
            // A snapshot's commit for a transfer: only a corrupt entry. `apply_txn` routes
            // snapshot decisions elsewhere; if one came here, it must not credit.
            Decision::SnapshotCommit => Some(AbortReason::Refused),
        };
        let executed = match reason {
            None => self.credit(txn, p),
            Some(reason) => {
                let command = txn_command(txn, &p.from, &p.to, p.amount);
                let result = OpResult::Aborted { reason };
                self.log_txn(command, result, txn_record(txn, TxnPhase::Abort, 0))
            }
        };
        TxnStep {
            executed: Some(executed),
            send: ack,
            ..TxnStep::default()
        }
    }

    fn balance_result(&self, account: &str) -> OpResult {
        OpResult::Balance {
            balance: self.balance(account),
        }
    }

    /// A transaction's entry in this shard's log: it takes the next exec index and leaves
    /// the reply table alone (only the coordinator's decision answers the client).
    fn log_txn(&mut self, command: Command, result: OpResult, txn: TxnRecord) -> Executed {
        self.exec_index = self.exec_index.saturating_add(1);
        Executed {
            exec_index: self.exec_index,
            command,
            result,
            txn: Some(txn),
        }
    }

    /// The credit of a committed transaction, as an executed log entry (not in the reply
    /// table: the client is answered by the coordinator shard).
    fn credit(&mut self, txn: TxnId, p: Participated) -> Executed {
        // Cannot overflow: the vote checked it, and `to` stayed locked since.
        let mut to_balance = self.balance(&p.to).saturating_add(p.amount);
        if self.planted.apply_at_prepare {
            // PLANTED BUG apply_at_prepare: credited at the vote already.
            to_balance = self.balance(&p.to);
        }
        self.balances.insert(p.to.clone(), to_balance);
        let command = txn_command(txn, &p.from, &p.to, p.amount);
        let result = OpResult::Credited { to_balance };
        self.log_txn(command, result, txn_record(txn, TxnPhase::Commit, p.amount))
    }
}

/// The client's transfer behind `txn`, as a participant knows it.
fn txn_command(txn: TxnId, from: &Account, to: &Account, amount: Amount) -> Command {
    Command {
        client: txn.client,
        request: txn.request,
        op: Op::Transfer {
            from: from.clone(),
            to: to.clone(),
            amount,
        },
    }
}

fn txn_record(id: TxnId, phase: TxnPhase, applied: Amount) -> TxnRecord {
    TxnRecord { id, phase, applied }
}

fn prepare_msg(txn: TxnId, c: &Coordinated) -> ShardMsg {
    ShardMsg::Prepare {
        txn,
        from: c.from.clone(),
        to: c.to.clone(),
        amount: c.amount,
    }
}

#[cfg(test)]
mod tests;
