//! Snapshots: a sharded bank's `read_all` as a read-only two-phase transaction (the Spanner
//! shape), so that it sees one consistent cut of every shard.
//!
//! How a snapshot runs; each step is the execution of one log entry of one shard:
//!
//! 1. Coordinator (the shard the client asked), the client's `read_all`: an account locked
//!    exclusively → `LockConflict`; too many transactions → `Busy` (definite, at once).
//!    Otherwise take a shared lock on every account of the shard, take the next exec index
//!    and record the shard's balances there as its part (the executed log shows that part),
//!    and send SNAPSHOT-PREPARE to every other shard. No reply yet.
//! 2. Participant, [`TxnEntry::SnapshotPrepare`](super::TxnEntry): the same yes again for a
//!    snapshot it already voted on; no for one it finished (a late copy), for an exclusive
//!    lock (no-wait) or when busy; else the shared locks, an exec index and its part as for
//!    the coordinator, and a yes vote carrying the part.
//! 3. Coordinator, [`TxnEntry::SnapshotVote`](super::TxnEntry) (one per participant's
//!    vote): the first vote of each participant counts; a no aborts, the last yes commits.
//!    A vote timeout proposes an abort (`TxnEntry::Decide`), as for transfers; the first
//!    decision wins. The decision releases the coordinator's shared locks, writes the client's
//!    reply (`Snapshot` with every balance and each shard's position, or `Aborted`) into the
//!    reply table at the coordinator part's exec index (the decision itself takes none), and
//!    sends the DECISION to every participant.
//! 4. Participant, the DECISION: releases its shared locks and answers SNAPSHOT-ACK.
//! 5. Coordinator, [`TxnEntry::SnapshotForget`](super::TxnEntry): forgets the snapshot once
//!    every participant acknowledged.
//!
//! Why it is consistent: a transfer (local or cross-shard, at its start or its participant's
//! prepare) fails on an account under a shared lock, and a part is only taken where no account
//! is locked exclusively. So at a shard's position no cross-shard transfer is between prepare
//! and decision there, and from then until the snapshot's decision reaches the shard none can
//! start or prepare there. A transfer committed at one shard before its part was taken was
//! prepared at the other before that and holds its lock there until it applies, so the other
//! part either shows it applied or finds the lock and votes no; a transfer that starts after a
//! part was taken can only reach another shard after the snapshot's decision, which follows
//! every part. Either way no part shows half of a transfer.
//!
//! Exactly-once and recovery are those of transfers: the snapshot's id is the client's request
//! at the coordinator shard, a retry finds it running (or its reply), a new leader resends what
//! [`Bank::unfinished`] lists and times out what [`Bank::preparing`] lists, and a snapshot
//! counts in `max_inflight` at every shard that holds it.

use super::{AbortReason, Answer, Decision, Outbound, ShardMsg, Step, TxnId, TxnStep};
use crate::bank::{Bank, Command, Executed, Op, OpResult, Outcome, Reply};
use crate::types::{Account, Amount, ExecIndex, ShardId};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// One shard's part of a snapshot: its balances at `position` in its execution order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    pub balances: BTreeMap<Account, Amount>,
    pub position: ExecIndex,
}

/// A participant's vote on a snapshot. Wire type: never reorder variants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SnapshotVote {
    /// Its part is taken; its accounts stay under a shared lock until the decision.
    Yes {
        part: SnapshotPart,
    },
    No {
        reason: AbortReason,
    },
}

/// A snapshot this shard coordinates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(in crate::bank) struct Coordinated {
    command: Command,
    own: SnapshotPart,
    /// Every participant, with its part once it voted yes.
    parts: BTreeMap<ShardId, Option<SnapshotPart>>,
    /// `None` while preparing.
    pub(in crate::bank) decision: Option<Decision>,
    /// Participants that applied the decision.
    acked: BTreeSet<ShardId>,
}

impl Bank {
    /// Step 1 for a `read_all` on a sharded bank; `None` for anything else (an unsharded
    /// bank's `read_all` is answered at once).
    pub(in crate::bank) fn start_snapshot(&mut self, command: &Command) -> Option<Step> {
        if command.op != Op::ReadAll {
            return None;
        }
        let participants: BTreeSet<ShardId> = self.txns.remote.values().copied().collect();
        if participants.is_empty() {
            return None;
        }
        Some(match self.try_start_snapshot(command, participants) {
            Ok(step) => step,
            Err(result) => Step::Done(Outcome::Executed(self.record(command, result, true))),
        })
    }

    fn try_start_snapshot(
        &mut self,
        command: &Command,
        participants: BTreeSet<ShardId>,
    ) -> Result<Step, OpResult> {
        if let Some(account) = self.txns.any_locked() {
            return Err(OpResult::LockConflict { account });
        }
        if self.txns.inflight() >= self.txns.limits.max_inflight {
            return Err(OpResult::Busy);
        }
        let txn = self.txns.txn_of(command);
        let own = self.take_part(txn);
        let executed = part_executed(txn, &own);
        let send = participants
            .iter()
            .map(|shard| Outbound {
                shard: *shard,
                msg: ShardMsg::SnapshotPrepare { txn },
            })
            .collect();
        let record = Coordinated {
            command: command.clone(),
            own,
            parts: participants.into_iter().map(|s| (s, None)).collect(),
            decision: None,
            acked: BTreeSet::new(),
        };
        self.txns.snapshots.insert(txn, record);
        Ok(Step::SnapshotStarted {
            txn,
            executed,
            send,
        })
    }

    /// Shared locks for `txn` and this shard's part at the next exec index.
    fn take_part(&mut self, txn: TxnId) -> SnapshotPart {
        self.exec_index = self.exec_index.saturating_add(1);
        self.txns.shared.insert(txn);
        SnapshotPart {
            balances: self.balances.clone(),
            position: self.exec_index,
        }
    }

    /// Step 2: the participant's vote, sent to the coordinator.
    pub(super) fn snapshot_prepare(&mut self, txn: TxnId) -> TxnStep {
        let (vote, executed) = match self.snapshot_vote_here(txn) {
            Ok((part, executed)) => (SnapshotVote::Yes { part }, executed),
            Err(reason) => (SnapshotVote::No { reason }, None),
        };
        let msg = ShardMsg::SnapshotVote {
            txn,
            shard: self.shard(),
            vote,
        };
        TxnStep {
            executed,
            send: vec![Outbound {
                shard: txn.coordinator,
                msg,
            }],
            answer: None,
        }
    }

    /// The part this shard votes yes with (and its executed entry, if taken now), or why no.
    fn snapshot_vote_here(
        &mut self,
        txn: TxnId,
    ) -> Result<(SnapshotPart, Option<Executed>), AbortReason> {
        if let Some(part) = self.txns.parts.get(&txn) {
            return Ok((part.clone(), None));
        }
        if self.txns.finished(&txn) {
            return Err(AbortReason::AlreadyFinished);
        }
        if txn.coordinator == self.shard() {
            return Err(AbortReason::Refused);
        }
        if self.txns.any_locked().is_some() {
            return Err(AbortReason::LockConflict);
        }
        if self.txns.inflight() >= self.txns.limits.max_inflight {
            return Err(AbortReason::Busy);
        }
        let part = self.take_part(txn);
        self.txns.parts.insert(txn, part.clone());
        let executed = part_executed(txn, &part);
        Ok((part, Some(executed)))
    }

    /// Step 3: a participant's vote; the first per participant counts, and only before the
    /// decision.
    pub(super) fn snapshot_vote(
        &mut self,
        txn: TxnId,
        shard: ShardId,
        vote: SnapshotVote,
    ) -> TxnStep {
        if let SnapshotVote::Yes { part } = &vote {
            if !self.txns.holds_exactly(shard, part) {
                // Only a corrupt or foreign vote: dropped; the snapshot times out if need be.
                tracing::warn!(?txn, %shard, "dropping a snapshot vote whose part is not that shard's accounts");
                return TxnStep::default();
            }
        }
        let Some(record) = self.txns.snapshots.get_mut(&txn) else {
            return TxnStep::default();
        };
        let undecided = record.decision.is_none();
        let Some(slot) = record
            .parts
            .get_mut(&shard)
            .filter(|s| s.is_none() && undecided)
        else {
            return TxnStep::default();
        };
        let outcome = match vote {
            SnapshotVote::No { reason } => Some(Err(reason)),
            SnapshotVote::Yes { part } => {
                *slot = Some(part);
                let all = record.parts.values().all(Option::is_some);
                all.then_some(Ok(()))
            }
        };
        match outcome {
            Some(outcome) => self.decide_snapshot(txn, outcome),
            None => TxnStep::default(),
        }
    }

    /// A decision proposed for a snapshot from outside its votes: only an abort (a vote
    /// timeout) counts, and only as the first decision.
    pub(super) fn decide_snapshot_on_timeout(&mut self, txn: TxnId, decision: Decision) -> TxnStep {
        let undecided = self
            .txns
            .snapshots
            .get(&txn)
            .is_some_and(|r| r.decision.is_none());
        match decision {
            Decision::Abort { reason } | Decision::SnapshotAbort { reason } if undecided => {
                self.decide_snapshot(txn, Err(reason))
            }
            _ => TxnStep::default(),
        }
    }

    /// The coordinator's decision: release, answer, tell every participant.
    fn decide_snapshot(&mut self, txn: TxnId, outcome: Result<(), AbortReason>) -> TxnStep {
        let Some(record) = self.txns.snapshots.get_mut(&txn) else {
            return TxnStep::default();
        };
        let decision = match outcome {
            Ok(()) => Decision::SnapshotCommit,
            Err(reason) => Decision::SnapshotAbort { reason },
        };
        record.decision = Some(decision);
        let record = record.clone();
        self.txns.shared.remove(&txn);
        let result = match outcome {
            Ok(()) => snapshot_result(self.shard(), &record),
            Err(reason) => OpResult::Aborted { reason },
        };
        let reply = Reply {
            exec_index: record.own.position,
            result,
        };
        self.remember(&record.command, reply.clone(), false);
        let send = record.parts.keys().map(|shard| Outbound {
            shard: *shard,
            msg: ShardMsg::Decision { txn, decision },
        });
        TxnStep {
            executed: None,
            send: send.collect(),
            answer: Some(Answer {
                client: txn.client,
                request: txn.request,
                reply,
            }),
        }
    }

    /// Step 4: a participant releases its shared locks (on either decision) and acknowledges.
    pub(super) fn release_snapshot(&mut self, txn: TxnId) -> TxnStep {
        if self.txns.parts.remove(&txn).is_some() {
            self.txns.shared.remove(&txn);
        }
        self.txns.mark_finished(&txn);
        let ack = ShardMsg::SnapshotAck {
            txn,
            shard: self.shard(),
        };
        TxnStep {
            send: vec![Outbound {
                shard: txn.coordinator,
                msg: ack,
            }],
            ..TxnStep::default()
        }
    }

    /// Step 5: `shard` applied the decision; the snapshot is forgotten once all have.
    pub(super) fn snapshot_forget(&mut self, txn: TxnId, shard: ShardId) -> TxnStep {
        let Some(record) = self.txns.snapshots.get_mut(&txn) else {
            return TxnStep::default();
        };
        if record.decision.is_none() || !record.parts.contains_key(&shard) {
            return TxnStep::default();
        }
        record.acked.insert(shard);
        if record.acked.len() == record.parts.len() {
            self.txns.snapshots.remove(&txn);
        }
        TxnStep::default()
    }

    /// Snapshots this shard coordinates that have no decision yet.
    pub(super) fn snapshots_preparing(&self) -> Vec<TxnId> {
        let open = self.txns.snapshots.iter();
        let open = open.filter(|(_, r)| r.decision.is_none());
        open.map(|(txn, _)| *txn).collect()
    }

    /// What unfinished snapshots need (re)sent: PREPARE to participants that have not voted,
    /// the DECISION to those that have not acknowledged, this shard's yes votes.
    pub(super) fn snapshots_unfinished(&self) -> Vec<Outbound> {
        let mut out = Vec::new();
        for (txn, record) in &self.txns.snapshots {
            for (shard, part) in &record.parts {
                let msg = match record.decision {
                    None if part.is_none() => ShardMsg::SnapshotPrepare { txn: *txn },
                    Some(decision) if !record.acked.contains(shard) => ShardMsg::Decision {
                        txn: *txn,
                        decision,
                    },
                    _ => continue,
                };
                out.push(Outbound { shard: *shard, msg });
            }
        }
        for (txn, part) in &self.txns.parts {
            let vote = SnapshotVote::Yes { part: part.clone() };
            let msg = ShardMsg::SnapshotVote {
                txn: *txn,
                shard: self.shard(),
                vote,
            };
            out.push(Outbound {
                shard: txn.coordinator,
                msg,
            });
        }
        out
    }

    /// Snapshots holding shared locks on this shard's accounts.
    pub fn shared_locks(&self) -> &BTreeSet<TxnId> {
        &self.txns.shared
    }

    /// The participants of every transaction or snapshot this shard coordinates, decided or
    /// not, each with an ABORT for it: what a recovery that aborts whatever it finds in
    /// flight would send (the planted bug `recovery-aborts`; correct recovery resends the
    /// decision in the log, see [`Bank::unfinished`]).
    pub fn aborts_for_in_flight(&self) -> Vec<Outbound> {
        let reason = AbortReason::Timeout;
        let transfers = self.txns.coordinating.iter().map(|(txn, c)| Outbound {
            shard: c.to_shard,
            msg: ShardMsg::Decision {
                txn: *txn,
                decision: Decision::Abort { reason },
            },
        });
        let snapshots = self.txns.snapshots.iter().flat_map(|(txn, r)| {
            r.parts.keys().map(|shard| Outbound {
                shard: *shard,
                msg: ShardMsg::Decision {
                    txn: *txn,
                    decision: Decision::SnapshotAbort { reason },
                },
            })
        });
        transfers.chain(snapshots).collect()
    }
}

/// A part as its shard's executed log records it: the client's `read_all` and the part, like
/// an unsharded read_all (no transaction record: a snapshot changes nothing, so its decision
/// is not logged as a step).
fn part_executed(txn: TxnId, part: &SnapshotPart) -> Executed {
    Executed {
        exec_index: part.position,
        command: Command {
            client: txn.client,
            request: txn.request,
            op: Op::ReadAll,
        },
        result: OpResult::Balances {
            balances: part.balances.clone(),
        },
        txn: None,
    }
}

/// The client's answer to a committed snapshot: every shard's part together.
fn snapshot_result(coordinator: ShardId, record: &Coordinated) -> OpResult {
    let mut balances = record.own.balances.clone();
    let mut positions = BTreeMap::from([(coordinator, record.own.position)]);
    for (shard, part) in &record.parts {
        if let Some(part) = part {
            balances.extend(part.balances.clone());
            positions.insert(*shard, part.position);
        }
    }
    OpResult::Snapshot {
        balances,
        positions,
    }
}

#[cfg(test)]
mod tests;
