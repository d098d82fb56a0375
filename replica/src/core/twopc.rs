//! Two-phase commit between shards, the core's side: the bank (`bank::twopc`) holds the
//! replicated state and decides; the core carries messages between shards and turns them into
//! log entries.
//!
//! Only a leader acts. A message from another shard's member (PREPARE, VOTE, DECISION, ACK) is
//! turned into the internal entry it asks for and proposed through this shard's own log; a
//! backup drops it (senders address every member, so the leader gets its copy). When an entry
//! executes, the messages it produces go to every member of the other shard, from the leader
//! only. Every `resend_interval_ms` the leader resends what its bank says is unfinished, and a
//! coordinator leader proposes an abort for a transaction whose vote has not come within
//! `vote_timeout_ms` of the time it first saw it preparing. All of this is derived from the
//! bank, so a new leader finishes whatever its predecessor left in flight. An abort after a
//! timeout is safe: the decision is the first DECIDE in the coordinator's log, whatever comes
//! later.

use super::effect::{send, Effect};
use super::{Core, PeerMsg, RoleState};
use crate::bank::{AbortReason, Decision, Outbound, ShardMsg, TxnEntry, TxnId};
use crate::types::NodeId;
use std::collections::{BTreeMap, VecDeque};

/// Most internal entries a leader keeps waiting for a slot; beyond it new ones are dropped
/// (their senders resend).
const MAX_PENDING_TXN_ENTRIES: usize = 4096;

/// A leader's two-phase commit work that is not replicated state: entries waiting for a
/// slot, when it first saw each transaction preparing, when it last resent.
#[derive(Default)]
pub(super) struct LeaderTxns {
    pending: VecDeque<TxnEntry>,
    preparing_since_ms: BTreeMap<TxnId, u64>,
    last_resend_ms: Option<u64>,
    /// Whether this leader has looked at what it found in flight (planted bug only).
    recovered: bool,
}

impl LeaderTxns {
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// At most `max` entries and, past the first, at most `max_bytes` encoded bytes.
    pub fn next_batch(&mut self, max: usize, max_bytes: usize) -> Vec<TxnEntry> {
        let mut bytes = 0;
        let mut n = 0;
        for entry in self.pending.iter().take(max) {
            bytes += super::wire::encoded_len(entry);
            if n > 0 && bytes > max_bytes {
                break;
            }
            n += 1;
        }
        self.pending.drain(..n).collect()
    }

    /// Queues `entry` unless the same one is already waiting or the queue is full.
    pub(super) fn push(&mut self, entry: TxnEntry) {
        if self.pending.len() < MAX_PENDING_TXN_ENTRIES && !self.pending.contains(&entry) {
            self.pending.push_back(entry);
        }
    }
}

impl Core {
    /// A two-phase commit message from `from`, which must be a member of another shard; the
    /// leader proposes the entry it asks for, anyone else drops it.
    pub(super) fn on_shard_msg(&mut self, now_ms: u64, from: NodeId, msg: ShardMsg) {
        let Some(from_shard) = self.cfg.shard_of_peer(from) else {
            tracing::debug!(node = %self.me(), %from, "dropping a shard message from a non-shard");
            return;
        };
        let Some(shard) = self.cfg.sharding.as_ref().map(|s| s.shard) else {
            return;
        };
        // The message must be about a transaction between the sender's shard and this one.
        let txn = match &msg {
            ShardMsg::Prepare { txn, .. }
            | ShardMsg::Decision { txn, .. }
            | ShardMsg::SnapshotPrepare { txn } => (txn.coordinator == from_shard).then_some(txn),
            ShardMsg::Vote { txn, .. } | ShardMsg::Ack { txn } => {
                (txn.coordinator == shard).then_some(txn)
            }
            // A snapshot's vote and ack name their shard: it must be the sender's.
            ShardMsg::SnapshotVote {
                txn, shard: voter, ..
            }
            | ShardMsg::SnapshotAck { txn, shard: voter } => {
                (txn.coordinator == shard && *voter == from_shard).then_some(txn)
            }
        };
        let Some(txn) = txn else {
            tracing::debug!(node = %self.me(), %from, ?msg, "dropping a shard message for another pair of shards");
            return;
        };
        // A vote counts only while preparing, an ACK only once decided: others would only
        // take a slot to change nothing (resends keep coming until the work is done).
        let state = self.bank.coordinated(txn);
        let useful = match &msg {
            ShardMsg::Vote { .. } | ShardMsg::SnapshotVote { .. } => state == Some(None),
            ShardMsg::Ack { .. } | ShardMsg::SnapshotAck { .. } => matches!(state, Some(Some(_))),
            ShardMsg::Prepare { .. }
            | ShardMsg::Decision { .. }
            | ShardMsg::SnapshotPrepare { .. } => true,
        };
        if !useful {
            return;
        }
        let entry = msg.entry();
        if self.is_leader() && self.prepare_waits(now_ms, &entry) {
            return;
        }
        if let RoleState::Leader(leader) = &mut self.role {
            leader.txn.push(entry);
        }
    }

    /// Executes one committed internal entry: journal and answer what it decided, send what it
    /// produced (from the leader).
    pub(super) fn execute_txn_entry(&mut self, entry: &TxnEntry, out: &mut Vec<Effect>) {
        let step = self.bank.apply_txn(entry);
        if let Some(executed) = step.executed {
            out.push(Effect::Executed(executed));
        }
        if let Some(answer) = step.answer {
            self.answer_waiters((answer.client, answer.request), &answer.reply, out);
        }
        self.send_to_shards(step.send, out);
    }

    /// Sends each message to every member of its shard, if this replica leads.
    pub(super) fn send_to_shards(&mut self, messages: Vec<Outbound>, out: &mut Vec<Effect>) {
        if !self.is_leader() {
            return;
        }
        for Outbound { shard, msg } in messages {
            for member in self.cfg.shard_members(shard) {
                send(out, *member, PeerMsg::Shard(msg.clone()));
            }
        }
    }

    /// The leader's periodic work: resend unfinished work, abort transactions whose vote is late.
    pub(super) fn txn_tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(sharding) = &self.cfg.sharding else {
            return;
        };
        let (vote_timeout_ms, resend_interval_ms) =
            (sharding.vote_timeout_ms, sharding.resend_interval_ms);
        if !matches!(self.role, RoleState::Leader(_)) {
            return;
        }
        let preparing = self.bank.preparing();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let txns = &mut leader.txn;
        txns.preparing_since_ms
            .retain(|txn, _| preparing.contains(txn));
        for txn in preparing {
            let since = *txns.preparing_since_ms.entry(txn).or_insert(now_ms);
            if now_ms.saturating_sub(since) >= vote_timeout_ms {
                let decision = Decision::Abort {
                    reason: AbortReason::Timeout,
                };
                txns.push(TxnEntry::Decide { txn, decision });
                // Proposed again only after another timeout, should this one be lost.
                txns.preparing_since_ms.insert(txn, now_ms);
            }
        }
        self.abort_in_flight_once(out);
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let txns = &mut leader.txn;
        let due = txns
            .last_resend_ms
            .is_none_or(|last| now_ms.saturating_sub(last) >= resend_interval_ms);
        if due {
            txns.last_resend_ms = Some(now_ms);
            let unfinished = self.bank.unfinished();
            self.send_to_shards(unfinished, out);
        }
    }

    /// PLANTED BUG recovery_aborts: on its first tick a new leader aborts every transaction
    /// it coordinates, even one already decided commit, and tells the participants ABORT
    /// directly (correct recovery resends the decision its log holds).
    fn abort_in_flight_once(&mut self, out: &mut Vec<Effect>) {
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if !self.cfg.bugs.recovery_aborts() || leader.txn.recovered {
            return;
        }
        leader.txn.recovered = true;
        let reason = AbortReason::Timeout;
        for txn in self.bank.preparing() {
            let decision = Decision::Abort { reason };
            leader.txn.push(TxnEntry::Decide { txn, decision });
        }
        let aborts = self.bank.aborts_for_in_flight();
        self.send_to_shards(aborts, out);
    }
}
