//! Read-only views of a core, answered by the shell without going through the log:
//! PrintDB, PrintLog, PrintStatus, PrintView, Status, and the records a WAL compaction keeps.

use super::wire::WalRecord;
use super::{Core, RoleState};
use crate::client_proto::{LogEntryView, NodeStatus, SlotState, ViewRecord};
use crate::types::{Account, Amount, Ballot, ExecIndex, Slot};
use std::collections::BTreeMap;

impl Core {
    pub fn status(&self) -> NodeStatus {
        NodeStatus {
            node: self.me(),
            role: self.role(),
            ballot: self.promised,
            leader: self.leader,
            commit_slot: self.commit,
            executed_slot: self.executed,
            exec_index: self.bank.exec_index(),
            checkpoint_slot: self.checkpoint_slot(),
        }
    }

    /// PrintDB: the exec index and balances after the last executed command.
    pub fn balances(&self) -> (ExecIndex, BTreeMap<Account, Amount>) {
        (self.bank.exec_index(), self.bank.balances().clone())
    }

    /// The replicated bank itself, read-only: two-phase commit state for the shell's
    /// failpoints, tests and the simulator's end-of-run checks.
    pub fn bank(&self) -> &crate::bank::Bank {
        &self.bank
    }

    /// PrintLog: the checkpoint slot and up to `max_entries` log entries from `from` (entries at
    /// or below the checkpoint no longer exist).
    pub fn log_view(&self, from: Slot, max_entries: u32) -> (Slot, Vec<LogEntryView>) {
        let after = Slot(from.0.saturating_sub(1)).max(self.checkpoint_slot());
        let entries = self
            .log
            .above(after)
            .take(max_entries as usize)
            .map(|(slot, entry)| LogEntryView {
                slot,
                ballot: entry.ballot,
                commands: entry.value.commands().to_vec(),
                noop: entry.value.is_noop(),
                state: self.slot_state(slot),
            })
            .collect();
        (self.checkpoint_slot(), entries)
    }

    /// PrintStatus: what this replica knows about one slot.
    pub fn slot_state(&self, slot: Slot) -> SlotState {
        if slot == Slot(0) {
            return SlotState::Unknown;
        }
        if slot <= self.executed {
            return SlotState::Executed;
        }
        match self.log.get(slot) {
            Some(entry) if entry.committed => SlotState::Committed,
            Some(_) => SlotState::Accepted,
            None => SlotState::Unknown,
        }
    }

    /// PrintView: the NEW_VIEWs seen (the last `MAX_VIEWS`), oldest first.
    pub fn views(&self) -> Vec<ViewRecord> {
        self.views.iter().cloned().collect()
    }

    /// Everything needed to rebuild the acceptor state above the current checkpoint: the
    /// promise, every accepted entry, the commit point. A WAL holding only these records (next to
    /// the latest checkpoint) recovers the same core.
    pub fn durable_records(&self) -> Vec<WalRecord> {
        let mut records = Vec::with_capacity(self.log.len() + 2);
        if self.promised > Ballot::ZERO {
            records.push(WalRecord::Promised(self.promised));
        }
        for (slot, entry) in self.log.above(self.checkpoint_slot()) {
            let (ballot, value) = (entry.ballot, entry.value.clone());
            records.push(WalRecord::Accepted {
                slot,
                ballot,
                value,
            });
        }
        if self.commit > self.checkpoint_slot() {
            records.push(WalRecord::Committed { upto: self.commit });
        }
        records
    }

    /// Whether this replica currently leads (for the shell's logs and tests).
    pub fn leads(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }
}
