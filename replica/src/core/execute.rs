//! Learning, executing and checkpointing.
//!
//! The commit point only moves over a contiguous run of committed entries that this replica
//! holds, and execution follows it slot by slot, so every replica feeds the bank the same
//! commands in the same order. Each executed command answers the clients waiting for it here.
//! Every `checkpoint_interval_slots` executed slots the replica snapshots the bank (balances,
//! reply table, exec index) and forgets the log below it; a replica too far behind to be sent
//! entries installs such a snapshot instead.

use super::clients::key_of;
use super::effect::Effect;
use super::wire::{Checkpoint, WalRecord};
use super::{Core, RoleState, Value};
use crate::bank::{Command, Outcome, Step};
use crate::types::Slot;
use std::sync::Arc;

impl Core {
    /// Moves the commit point over the committed entries that follow it, persists it, and
    /// executes everything newly committed.
    pub(super) fn advance_commit(&mut self, out: &mut Vec<Effect>) {
        let end = self.log.committed_prefix_end(self.commit);
        if end > self.commit {
            self.commit = end;
            out.push(Effect::Persist(WalRecord::Committed { upto: end }));
        }
        if let RoleState::Leader(leader) = &mut self.role {
            // Decided by other means (catch-up, a checkpoint): nothing left to collect votes for.
            leader.inflight.retain(|slot, _| *slot > end);
        }
        self.execute_committed(out);
    }

    /// Executes committed slots in order, taking checkpoints on the way.
    pub(super) fn execute_committed(&mut self, out: &mut Vec<Effect>) {
        while self.executed < self.commit {
            let slot = self.executed.next();
            let Some(entry) = self.log.get_mut(slot) else {
                // Unreachable: the commit point only covers entries present in the log.
                debug_assert!(false, "committed slot {slot} is missing");
                tracing::error!(node = %self.me(), %slot, "committed slot missing from the log");
                return;
            };
            self.decided_ballot = self.decided_ballot.max(entry.ballot);
            // The value is lent out of its slot while it executes (nothing executing reads
            // the log) and put back after: no copy of its commands per executed slot.
            let value = std::mem::replace(&mut entry.value, Value::Noop);
            match &value {
                Value::Noop => {}
                Value::Batch(commands) => {
                    for command in commands {
                        self.execute_command(command, out);
                    }
                }
                Value::Txn(entries) => {
                    for txn_entry in entries {
                        self.execute_txn_entry(txn_entry, out);
                    }
                }
            }
            if let Some(entry) = self.log.get_mut(slot) {
                entry.value = value;
            }
            self.executed = slot;
            if slot.0 - self.log.base().0 >= self.cfg.checkpoint_interval_slots {
                self.take_checkpoint(out);
            }
        }
    }

    fn execute_command(&mut self, command: &Command, out: &mut Vec<Effect>) {
        // PLANTED BUG no_dedup: execute without consulting the reply table.
        let dedup = !self.cfg.bugs.no_dedup();
        let key = key_of(command);
        let outcome = match self.bank.execute_step(command, dedup) {
            Step::Done(outcome) => outcome,
            // A cross-shard transfer: its waiters are answered when its decision executes.
            Step::Started { send, executed, .. } => {
                out.push(Effect::Executed(executed));
                self.send_to_shards(vec![send], out);
                self.executed_request(key);
                return;
            }
            Step::InProgress(_) => {
                self.executed_request(key);
                return;
            }
            // A snapshot: its part here is executed now, its client answered at the decision.
            Step::SnapshotStarted { executed, send, .. } => {
                out.push(Effect::Executed(executed));
                self.send_to_shards(send, out);
                self.executed_request(key);
                return;
            }
        };
        match outcome {
            Outcome::Executed(executed) => {
                let reply = crate::bank::Reply {
                    exec_index: executed.exec_index,
                    result: executed.result.clone(),
                };
                out.push(Effect::Executed(executed));
                self.answer_waiters(key, &reply, out);
            }
            Outcome::Duplicate(reply) => self.answer_waiters(key, &reply, out),
            Outcome::Stale => {
                // The client moved on long ago; nobody can be waiting for this one.
                self.waiters.take(key);
            }
            Outcome::Expired { floor } => self.answer_expired(key, floor, out),
        }
        self.executed_request(key);
    }

    /// A request left the leader's proposals: a retry may be queued again.
    fn executed_request(&mut self, key: super::clients::RequestKey) {
        if let RoleState::Leader(leader) = &mut self.role {
            leader.proposals.executed(key);
        }
    }

    /// Snapshots the bank at the executed slot and drops the log up to it.
    fn take_checkpoint(&mut self, out: &mut Vec<Effect>) {
        let (slot, ballot, bank) = (self.executed, self.decided_ballot, self.bank.clone());
        let checkpoint = Arc::new(Checkpoint { slot, bank, ballot });
        self.log.truncate_through(self.executed);
        tracing::debug!(node = %self.me(), slot = %self.executed, "checkpoint");
        out.push(Effect::Checkpoint(Arc::clone(&checkpoint)));
        self.checkpoint = Some(checkpoint);
    }

    /// Whether a checkpoint from elsewhere describes this cluster's bank (a corrupt or foreign
    /// one is dropped rather than installed).
    pub(super) fn checkpoint_fits(&self, checkpoint: &Checkpoint) -> bool {
        let accounts = checkpoint.bank.balances().keys();
        accounts.eq(self
            .cfg
            .accounts
            .iter()
            .collect::<std::collections::BTreeSet<_>>())
    }

    /// Replaces the state up to `checkpoint.slot` with another replica's checkpoint.
    /// Precondition: it is ahead of what this replica executed, and its ballot was adopted.
    pub(super) fn install_checkpoint(&mut self, checkpoint: Checkpoint, out: &mut Vec<Effect>) {
        assert!(
            checkpoint.slot > self.executed,
            "installing a checkpoint that is not ahead"
        );
        assert!(
            checkpoint.ballot <= self.promised,
            "install after adopting its ballot"
        );
        let slot = checkpoint.slot;
        tracing::debug!(node = %self.me(), %slot, "installing a checkpoint");
        self.decided_ballot = self.decided_ballot.max(checkpoint.ballot);
        *self.bank = checkpoint.bank.clone();
        // PLANTED BUGs of the bank travel with the config, not with the checkpoint.
        self.cfg.bugs.plant_in(&mut self.bank);
        self.log.truncate_through(slot);
        self.executed = slot;
        self.commit = self.commit.max(slot);
        self.known_commit = self.known_commit.max(slot);
        let next_exec_index = self.bank.exec_index().saturating_add(1);
        let checkpoint = Arc::new(Checkpoint {
            slot,
            bank: self.bank.clone(),
            ballot: self.decided_ballot,
        });
        out.push(Effect::Checkpoint(Arc::clone(&checkpoint)));
        out.push(Effect::ResetJournal { next_exec_index });
        self.checkpoint = Some(checkpoint);
        self.answer_waiters_from_reply_table(out);
        if let RoleState::Leader(leader) = &mut self.role {
            let bank = &self.bank;
            leader
                .proposals
                .forget_executed(|c, r| bank.last_request(c) >= Some(r));
        }
        self.advance_commit(out);
    }

    /// The slot of the last checkpoint (0 before the first).
    pub(super) fn checkpoint_slot(&self) -> Slot {
        self.log.base()
    }
}
