//! Catch-up: how a replica that missed decisions gets them without executing out of order.
//!
//! A backup that hears a commit point beyond its own asks the leader for committed entries from
//! its first missing slot. Any replica answers with up to `max_catchup_slots` consecutive
//! committed entries, or, when those entries were compacted into a checkpoint, with the
//! checkpoint itself. One request is outstanding at a time and is repeated after a short delay
//! if the answer was lost; each answer that leaves the replica still behind triggers the next.
//!
//! Every answer fits in one network message: entries are cut by encoded size as well as by
//! count, and a checkpoint too large for one SNAPSHOT goes as SNAPSHOT_PARTs that the receiver
//! puts back together (one snapshot at a time, kept across the retries that fill its gaps).
//!
//! Decided state carries the ballot it was accepted in; the receiver first adopts it if it is
//! above its promise (`Core::adopt`). That is what lets even a leader install decided state
//! safely: with a ballot at or above the deciding one, its own proposals for those slots carry
//! the decided values, and a leader that sees a higher ballot steps down first.

use super::effect::{send, Effect};
use super::parts::{self, Assembly, Part, Parts};
use super::wire::{encoded_len, Checkpoint, SlotEntry};
use super::{Core, PeerMsg, RoleState};
use crate::types::{Ballot, NodeId, Slot};

impl Core {
    /// How long to wait for a catch-up answer before asking again.
    fn catchup_retry_after_ms(&self) -> u64 {
        2 * self.cfg.heartbeat_interval_ms
    }

    /// Asks the leader for what we miss, unless a request is already on its way.
    pub(super) fn maybe_request_catchup(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        if self.known_commit <= self.commit {
            self.catchup_retry_ms = None;
            return;
        }
        let Some(leader) = self.leader.filter(|l| *l != self.me()) else {
            return;
        };
        if self.catchup_retry_ms.is_some_and(|retry| now_ms < retry) {
            return;
        }
        self.catchup_retry_ms = Some(now_ms.saturating_add(self.catchup_retry_after_ms()));
        send(
            out,
            leader,
            PeerMsg::CatchUpRequest {
                from: self.commit.next(),
            },
        );
    }

    /// CATCH_UP_REQUEST: send committed entries from `from`, or our checkpoint if they are gone.
    pub(super) fn on_catchup_request(&mut self, to: NodeId, from: Slot, out: &mut Vec<Effect>) {
        let from = from.max(Slot(1));
        if from <= self.checkpoint_slot() {
            if let Some(checkpoint) = &self.checkpoint {
                self.send_snapshot(to, checkpoint, out);
            }
            return;
        }
        if from > self.commit {
            tracing::debug!(node = %self.me(), %to, %from, "catch-up request beyond our commit point");
            return;
        }
        let max = self.cfg.max_catchup_slots as usize;
        let entries: Vec<SlotEntry> = self
            .log
            .entries_above(Slot(from.0 - 1), max)
            .into_iter()
            .take_while(|e| e.slot <= self.commit)
            .collect();
        let entries = parts::prefix_within(entries, self.cfg.payload_budget());
        send(
            out,
            to,
            PeerMsg::CatchUpEntries {
                commit: self.commit,
                entries,
            },
        );
    }

    /// CATCH_UP_ENTRIES: install committed entries, execute what became contiguous.
    pub(super) fn on_catchup_entries(
        &mut self,
        now_ms: u64,
        from: NodeId,
        commit: Slot,
        entries: Vec<SlotEntry>,
        out: &mut Vec<Effect>,
    ) {
        let max = self.cfg.max_catchup_slots as usize;
        let entries: Vec<SlotEntry> = entries.into_iter().take(max).collect();
        if let Some(top) = entries.iter().map(|e| e.ballot).max() {
            self.adopt(top, out);
        }
        for entry in entries {
            self.install_committed(from, entry, out);
        }
        self.known_commit = self.known_commit.max(commit);
        self.catchup_retry_ms = None;
        self.advance_commit(out);
        self.maybe_request_catchup(now_ms, out);
    }

    /// Stores one entry the sender knows is decided. An entry we accepted at a higher ballot
    /// already holds the decided value (Paxos), so it is only marked; otherwise it is replaced.
    fn install_committed(&mut self, from: NodeId, entry: SlotEntry, out: &mut Vec<Effect>) {
        let SlotEntry {
            slot,
            ballot,
            value,
        } = entry;
        if slot <= self.commit || slot > self.executed.plus(self.cfg.window()) {
            tracing::debug!(node = %self.me(), %from, %slot, "catch-up entry outside the window");
            return;
        }
        if self.beyond_own_proposals(slot) {
            return;
        }
        if let Some(existing) = self.log.get_mut(slot) {
            if existing.ballot >= ballot {
                existing.committed = true;
                return;
            }
        }
        self.store_accepted(slot, ballot, value, true, out);
    }

    /// Sends `checkpoint` as one SNAPSHOT, or in parts if it is too large for one message.
    fn send_snapshot(&self, to: NodeId, checkpoint: &Checkpoint, out: &mut Vec<Effect>) {
        let whole = PeerMsg::Snapshot {
            checkpoint: checkpoint.clone(),
        };
        if encoded_len(&whole) as u64 <= self.cfg.max_message_bytes {
            send(out, to, whole);
            return;
        }
        let budget = self.cfg.payload_budget();
        let Some(payloads) = parts::split(Vec::new(), Some(checkpoint), budget) else {
            tracing::error!(node = %self.me(), %to, slot = %checkpoint.slot, "checkpoint needs too many parts; not sent");
            return;
        };
        let count = payloads.len() as u32;
        for (index, (_, bytes)) in payloads.into_iter().enumerate() {
            let part = PeerMsg::SnapshotPart {
                slot: checkpoint.slot,
                ballot: checkpoint.ballot,
                part: index as u32,
                parts: count,
                bytes,
            };
            send(out, to, part);
        }
    }

    /// SNAPSHOT_PART: keep it; once the checkpoint is complete, handle it as a SNAPSHOT.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_snapshot_part(
        &mut self,
        now_ms: u64,
        from: NodeId,
        slot: Slot,
        ballot: Ballot,
        index: u32,
        count: u32,
        bytes: Vec<u8>,
        out: &mut Vec<Effect>,
    ) {
        if slot <= self.executed {
            return;
        }
        // Parts are streaming in: do not ask again before they had time to arrive.
        self.catchup_retry_ms = Some(now_ms.saturating_add(self.catchup_retry_after_ms()));
        let same = self.snapshot_parts.as_ref().is_some_and(|a| {
            a.from == from && a.slot == slot && a.ballot == ballot && a.parts.count() == count
        });
        if !same {
            let Some(parts) = Parts::new(count) else {
                tracing::debug!(node = %self.me(), %from, count, "malformed snapshot part");
                return;
            };
            self.snapshot_parts = Some(Assembly {
                from,
                slot,
                ballot,
                parts,
            });
        }
        let Some(assembly) = self.snapshot_parts.as_mut() else {
            return;
        };
        let part = Part {
            index,
            count,
            entries: Vec::new(),
            bytes,
        };
        if !assembly.parts.add(part) || !assembly.parts.complete() {
            return;
        }
        let Some(assembly) = self.snapshot_parts.take() else {
            return;
        };
        let (_, bytes) = assembly.parts.into_whole();
        match parts::decode_checkpoint(&bytes) {
            Ok(Some(checkpoint)) if checkpoint.slot == slot && checkpoint.ballot == ballot => {
                self.on_snapshot(now_ms, from, checkpoint, out)
            }
            Ok(_) => tracing::debug!(node = %self.me(), %from, "snapshot parts do not match"),
            Err(e) => tracing::debug!(node = %self.me(), %from, "undecodable snapshot parts: {e}"),
        }
    }

    /// SNAPSHOT: install a checkpoint that is ahead of us.
    pub(super) fn on_snapshot(
        &mut self,
        now_ms: u64,
        from: NodeId,
        checkpoint: Checkpoint,
        out: &mut Vec<Effect>,
    ) {
        if self.refuse_implausible(from, "snapshot", [checkpoint.ballot]) {
            return;
        }
        self.catchup_retry_ms = None;
        if checkpoint.slot <= self.executed || !self.checkpoint_fits(&checkpoint) {
            tracing::debug!(node = %self.me(), %from, slot = %checkpoint.slot, "useless snapshot");
            return;
        }
        self.adopt(checkpoint.ballot, out);
        if self.beyond_own_proposals(checkpoint.slot) {
            return;
        }
        self.install_checkpoint(checkpoint, out);
        self.maybe_request_catchup(now_ms, out);
    }

    /// A leader never learns of decisions at or beyond its next slot from a peer in its own
    /// ballot: nobody else proposes there. Such input is malformed; drop it.
    fn beyond_own_proposals(&self, slot: Slot) -> bool {
        match &self.role {
            RoleState::Leader(leader) if slot >= leader.next_slot => {
                tracing::debug!(node = %self.me(), %slot, "decided state beyond our proposals");
                true
            }
            _ => false,
        }
    }
}
