//! Phase 2: the leader proposes, a majority accepts, everyone learns.
//!
//! The leader cuts its pending client commands into batches (`flush`), gives each batch the
//! next slot, votes for it itself (its `Persist` is durable before any ACCEPT leaves, see the
//! shell contract) and sends ACCEPT without waiting for earlier slots. A slot commits on a
//! majority of ACCEPTED. Backups learn commits from the commit point the leader piggybacks on
//! ACCEPT, COMMIT and HEARTBEAT: an entry this backup accepted in the leader's own ballot at or
//! below that point holds the decided value. Slots not yet accepted by everyone are retransmitted
//! on a timer, because the transport drops messages under load.

use super::effect::{send, Effect};
use super::wire::{SlotEntry, Value};
use super::{Core, Inflight, PeerMsg, RoleState};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeSet;

impl Core {
    /// Cuts pending client commands into batched slots and proposes them, then tells backups
    /// about a commit point that moved during the burst. Called after each burst of inputs.
    pub fn flush(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        // Locks released by what executed in the burst let waiting commands go (`locks`).
        self.release_lock_waits(now_ms);
        self.propose_pending(now_ms, out);
        self.assert_invariants("flush");
    }

    fn propose_pending(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let max_inflight = self.cfg.max_inflight_slots as usize;
        let max_batch = self.cfg.max_batch_commands as usize;
        // Half a message: a batch travels alone in an ACCEPT and beside others in a view, a
        // promise or a catch-up answer, which are cut between entries.
        let max_batch_bytes = self.cfg.payload_budget() / 2;
        // Like every acceptor, the leader holds no entry beyond the window: the view merge's
        // bound (`CoreConfig::max_log_span`) depends on it.
        let last_allowed = self.executed.plus(self.cfg.window());
        loop {
            let RoleState::Leader(leader) = &mut self.role else {
                return;
            };
            let full = leader.inflight.len() >= max_inflight || leader.next_slot > last_allowed;
            // PLANTED BUG stuck_leader: the ballot's proposal budget is never refilled; the
            // leader still heartbeats (`leader_tick`), so no backup ever takes over.
            let stuck = self.cfg.bugs.stuck_leader()
                && leader.proposed_slots >= super::config::STUCK_LEADER_SLOTS;
            if stuck {
                break;
            }
            let txns = leader.txn.has_pending();
            if !(leader.proposals.has_pending() || txns) || full {
                break;
            }
            // Two-phase commit entries first: they unlock accounts client commands wait for.
            let value = if txns {
                Value::Txn(leader.txn.next_batch(max_batch, max_batch_bytes))
            } else {
                Value::Batch(leader.proposals.next_batch(max_batch, max_batch_bytes))
            };
            self.propose(now_ms, value, out);
        }
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if self.commit > leader.commit_sent {
            leader.commit_sent = self.commit;
            let msg = PeerMsg::Commit {
                ballot: leader.ballot,
                upto: self.commit,
            };
            for peer in self.cfg.peers() {
                send(out, peer, msg.clone());
            }
        }
    }

    /// Proposes `value` in the next slot. Precondition: this node leads.
    fn propose(&mut self, now_ms: u64, value: Value, out: &mut Vec<Effect>) {
        let me = self.me();
        let commit = self.commit;
        let RoleState::Leader(leader) = &mut self.role else {
            unreachable!("only a leader proposes")
        };
        let (ballot, slot) = (leader.ballot, leader.next_slot);
        leader.next_slot = slot.next();
        leader.proposed_slots += 1;
        leader.commit_sent = commit;
        leader.inflight.insert(
            slot,
            Inflight {
                acks: BTreeSet::from([me]),
                last_sent_ms: now_ms,
            },
        );
        self.store_accepted(slot, ballot, value.clone(), false, out);
        let msg = PeerMsg::Accept {
            ballot,
            slot,
            value,
            commit,
        };
        for peer in self.cfg.peers() {
            send(out, peer, msg.clone());
        }
        self.commit_on_own_vote_if_alone(out);
    }

    /// Commits every in-flight slot on the leader's vote alone: right for a one-node cluster,
    /// and the planted `early_commit` bug everywhere else.
    pub(super) fn commit_on_own_vote_if_alone(&mut self, out: &mut Vec<Effect>) {
        // PLANTED BUG early_commit: one vote (the leader's) is treated as a majority.
        if self.cfg.quorum() > 1 && !self.cfg.bugs.early_commit() {
            return;
        }
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        let slots: Vec<Slot> = std::mem::take(&mut leader.inflight).into_keys().collect();
        for slot in slots {
            self.mark_slot_committed(slot);
        }
        self.advance_commit(out);
    }

    fn mark_slot_committed(&mut self, slot: Slot) {
        if let Some(entry) = self.log.get_mut(slot) {
            entry.committed = true;
        }
    }

    /// ACCEPTED: count the vote; a majority commits the slot.
    pub(super) fn on_accepted(
        &mut self,
        _now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        out: &mut Vec<Effect>,
    ) {
        self.note_follower(_now_ms, from, ballot);
        let quorum = self.cfg.quorum();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if ballot != leader.ballot {
            tracing::debug!(node = %self.cfg.me, %from, %ballot, "accepted for another ballot");
            return;
        }
        let Some(inflight) = leader.inflight.get_mut(&slot) else {
            return;
        };
        inflight.acks.insert(from);
        if inflight.acks.len() >= quorum {
            leader.inflight.remove(&slot);
            self.mark_slot_committed(slot);
            self.advance_commit(out);
        }
    }

    /// NEW_VIEW: follow the new leader, accept its merged slots, learn its commit point.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_new_view(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        next_slot: Slot,
        entries: Vec<SlotEntry>,
        out: &mut Vec<Effect>,
    ) {
        if !self.follow(now_ms, from, ballot, out) {
            return;
        }
        self.record_view(ballot, next_slot);
        for entry in entries.into_iter().take(self.cfg.max_log_span() as usize) {
            self.accept_entry(from, ballot, entry.slot, entry.value, out);
        }
        self.learn_commit(now_ms, ballot, commit, out);
    }

    /// ACCEPT: follow the leader, accept the slot, learn the piggybacked commit point.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_accept(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: Value,
        commit: Slot,
        out: &mut Vec<Effect>,
    ) {
        if !self.follow(now_ms, from, ballot, out) {
            return;
        }
        self.accept_entry(from, ballot, slot, value, out);
        self.learn_commit(now_ms, ballot, commit, out);
    }

    /// COMMIT: follow the leader and learn its commit point.
    pub(super) fn on_commit_point(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        out: &mut Vec<Effect>,
    ) {
        if self.follow(now_ms, from, ballot, out) {
            self.learn_commit(now_ms, ballot, commit, out);
        }
    }

    /// HEARTBEAT: like COMMIT, and acknowledged, so the leader knows a majority still hears it
    /// (check-quorum).
    pub(super) fn on_heartbeat(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        out: &mut Vec<Effect>,
    ) {
        if self.follow(now_ms, from, ballot, out) {
            send(out, from, PeerMsg::HeartbeatAck { ballot });
            self.learn_commit(now_ms, ballot, commit, out);
        }
    }

    /// Checks a message from a would-be leader: its ballot must be its own and not below our
    /// promise (else NACK). Adopts the ballot and the leader and resets the election timer.
    /// Returns whether the message should be processed.
    fn follow(&mut self, now_ms: u64, from: NodeId, ballot: Ballot, out: &mut Vec<Effect>) -> bool {
        if ballot.node != from {
            tracing::debug!(node = %self.me(), %from, %ballot, "leader message for another's ballot");
            return false;
        }
        if ballot < self.promised {
            send(
                out,
                from,
                PeerMsg::Nack {
                    ballot: self.promised,
                },
            );
            return false;
        }
        if ballot > self.promised {
            self.raise_promised(ballot, out);
        } else if !matches!(self.role, RoleState::Backup) {
            // Equal ballot but we lead or campaign: only the ballot's owner can, and it is not us.
            tracing::debug!(node = %self.me(), %from, %ballot, "leader message for our own ballot");
            return false;
        }
        if self.leader != Some(from) {
            tracing::info!(node = %self.me(), leader = %from, %ballot, "following a new leader");
        }
        self.leader = Some(from);
        self.leader_heard_ms = Some(now_ms);
        self.prevote = None;
        self.reset_election_timer(now_ms);
        true
    }

    /// Accepts `value` in `slot` at `ballot` (durably) and answers ACCEPTED. Precondition:
    /// `ballot` is the promised ballot.
    fn accept_entry(
        &mut self,
        from: NodeId,
        ballot: Ballot,
        slot: Slot,
        value: Value,
        out: &mut Vec<Effect>,
    ) {
        debug_assert_eq!(ballot, self.promised);
        if slot == Slot(0) || slot > self.executed.plus(self.cfg.window()) {
            tracing::debug!(node = %self.me(), %from, %slot, "accept outside the window");
            return;
        }
        match self.log.get(slot) {
            // Decided here (kept or compacted): never overwrite, but vote. It was decided in a
            // ballot <= promised = `ballot` (see `Core::adopt`), and every proposal in a ballot
            // at or above the deciding one carries the decided value, so the vote is true.
            Some(existing) if existing.committed => {}
            None if slot <= self.commit => {}
            // A retransmission: already durable.
            Some(existing) if existing.ballot == ballot => {}
            _ => {
                self.store_accepted(slot, ballot, value, false, out);
            }
        }
        send(out, from, PeerMsg::Accepted { ballot, slot });
    }

    /// The leader of `ballot` says every slot up to `commit` is decided: mark what we hold,
    /// execute, and ask for what we miss.
    fn learn_commit(&mut self, now_ms: u64, ballot: Ballot, commit: Slot, out: &mut Vec<Effect>) {
        self.known_commit = self.known_commit.max(commit);
        self.log.mark_committed(self.commit, commit, ballot);
        self.advance_commit(out);
        self.maybe_request_catchup(now_ms, out);
    }

    /// The leader's timers: heartbeats and retransmission of slots not yet accepted by all.
    pub(super) fn leader_tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let heartbeat = self.cfg.heartbeat_interval_ms;
        let retransmit_after = 2 * heartbeat;
        let commit = self.commit;
        let peers: Vec<NodeId> = self.cfg.peers().collect();
        let RoleState::Leader(leader) = &mut self.role else {
            return;
        };
        if now_ms >= leader.last_heartbeat_ms.saturating_add(heartbeat) {
            leader.last_heartbeat_ms = now_ms;
            leader.commit_sent = commit;
            for peer in &peers {
                send(
                    out,
                    *peer,
                    PeerMsg::Heartbeat {
                        ballot: leader.ballot,
                        commit,
                    },
                );
            }
        }
        for (slot, inflight) in leader.inflight.iter_mut() {
            if now_ms < inflight.last_sent_ms.saturating_add(retransmit_after) {
                continue;
            }
            let Some(entry) = self.log.get(*slot) else {
                continue;
            };
            inflight.last_sent_ms = now_ms;
            let msg = PeerMsg::Accept {
                ballot: leader.ballot,
                slot: *slot,
                value: entry.value.clone(),
                commit,
            };
            for peer in peers.iter().filter(|p| !inflight.acks.contains(p)) {
                send(out, *peer, msg.clone());
            }
        }
    }
}
