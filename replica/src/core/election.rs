//! Phase 1: electing a leader for every slot above its commit point at once.
//!
//! A backup whose leader went quiet for a randomized election timeout first asks for pre-votes
//! (`prevote`); with a majority it becomes a candidate with a ballot one round above anything
//! it has promised and sends PREPARE(ballot, its commit point). Acceptors that have not promised a higher ballot promise this one (durably, see the
//! shell contract) and report everything they accepted above the candidate's commit point, plus
//! their checkpoint if the candidate is behind it. With a majority (itself included) the
//! candidate installs the most advanced checkpoint, merges the reports (`merge`), re-proposes
//! the merged slots in a NEW_VIEW and leads. A candidate that gets no majority before its timer
//! fires again resends PREPARE, same ballot, to those that have not promised: lost messages
//! cost a resend, not a round. Only a NACK (someone promised higher) ends a candidacy, and the
//! next attempt goes through pre-vote again. A PROMISE too large for one message comes in
//! parts (`PeerMsg::PromisePart`) and counts once all of them are in.

use super::effect::{send, Effect};
use super::merge::{merge, MergeInput};
use super::parts::{self, Part, PartialPromise, Parts};
use super::wire::{encoded_len, Checkpoint, SlotEntry, Value, WalRecord};
use super::{Candidate, Core, Inflight, Leader, PeerMsg, PromiseInfo, RoleState};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::{BTreeMap, BTreeSet};

/// Most commands one NEW_VIEW message carries; a longer view is cut into several messages.
const MAX_VIEW_COMMANDS_PER_MESSAGE: usize = 4096;

impl Core {
    /// Becomes a candidate with a fresh, higher ballot and asks every peer to promise it.
    pub(super) fn start_election(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(round) = self.next_round() else {
            // Only reachable from a corrupted disk (peers' ballots are bounded); better stuck
            // than panicking.
            tracing::error!(node = %self.me(), promised = %self.promised, "ballot rounds exhausted");
            self.reset_election_timer(now_ms);
            return;
        };
        let ballot = Ballot {
            round,
            node: self.me(),
        };
        tracing::info!(node = %self.me(), %ballot, commit = %self.commit, "starting an election");
        self.raise_promised(ballot, out);
        self.role = RoleState::Candidate(Candidate {
            ballot,
            promises: BTreeMap::new(),
            best_checkpoint: None,
            partial: BTreeMap::new(),
        });
        self.resend_prepare(now_ms, out);
        self.maybe_win(now_ms, out);
    }

    /// Sends PREPARE for the candidate's ballot to every peer that has not promised it yet,
    /// and rearms the timer for the next resend.
    pub(super) fn resend_prepare(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        self.reset_election_timer(now_ms);
        let RoleState::Candidate(candidate) = &self.role else {
            return;
        };
        let ballot = candidate.ballot;
        let missing: Vec<_> = self
            .cfg
            .peers()
            .filter(|p| !candidate.promises.contains_key(p))
            .collect();
        tracing::debug!(node = %self.me(), %ballot, ?missing, "sending prepare");
        for peer in missing {
            let commit = self.commit;
            send(out, peer, PeerMsg::Prepare { ballot, commit });
        }
    }

    /// PREPARE: promise `ballot` unless a higher one was promised (then NACK).
    pub(super) fn on_prepare(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        out: &mut Vec<Effect>,
    ) {
        if ballot.node != from {
            tracing::debug!(node = %self.me(), %from, %ballot, "prepare for someone else's ballot");
            return;
        }
        if ballot < self.promised {
            send(
                out,
                from,
                PeerMsg::Nack {
                    ballot: self.promised,
                },
            );
            return;
        }
        if ballot > self.promised {
            if self.cfg.bugs.stale_leader() && self.is_leader() {
                // PLANTED BUG stale_leader: a leader ignores a higher ballot and keeps leading.
                tracing::debug!(node = %self.me(), %ballot, "planted bug: ignoring a prepare");
                return;
            }
            self.raise_promised(ballot, out);
        }
        // `ballot == promised`: a fresh promise, or the same candidate asking again.
        self.reset_election_timer(now_ms);
        let after = commit.max(self.checkpoint_slot());
        // Never cut: a promise that leaves out an accepted value could let the new leader
        // overwrite a chosen one. The log is bounded by `max_log_span` anyway.
        let entries = self.log.entries_above(after, usize::MAX);
        // Copied only when sent: the candidate is behind it.
        let checkpoint = self
            .checkpoint
            .as_deref()
            .filter(|c| c.slot > commit)
            .cloned();
        self.send_promise(from, ballot, entries, checkpoint, out);
    }

    /// Sends a PROMISE, in parts if it is too large for one message.
    fn send_promise(
        &self,
        to: NodeId,
        ballot: Ballot,
        entries: Vec<SlotEntry>,
        checkpoint: Option<Checkpoint>,
        out: &mut Vec<Effect>,
    ) {
        let commit = self.commit;
        let promise = PeerMsg::Promise {
            ballot,
            commit,
            entries,
            checkpoint,
        };
        if encoded_len(&promise) as u64 <= self.cfg.max_message_bytes {
            send(out, to, promise);
            return;
        }
        let PeerMsg::Promise {
            entries,
            checkpoint,
            ..
        } = promise
        else {
            unreachable!("built above")
        };
        let Some(payloads) = parts::split(entries, checkpoint.as_ref(), self.cfg.payload_budget())
        else {
            tracing::error!(node = %self.me(), %to, %ballot, "promise needs too many parts; not sent");
            return;
        };
        let count = payloads.len() as u32;
        for (index, (entries, checkpoint_bytes)) in payloads.into_iter().enumerate() {
            let part = PeerMsg::PromisePart {
                ballot,
                commit,
                part: index as u32,
                parts: count,
                entries,
                checkpoint_bytes,
            };
            send(out, to, part);
        }
    }

    /// PROMISE_PART: keep it; once every part of the promise is in, count the promise.
    pub(super) fn on_promise_part(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        part: Part,
        out: &mut Vec<Effect>,
    ) {
        let RoleState::Candidate(candidate) = &mut self.role else {
            return;
        };
        if candidate.ballot != ballot || candidate.promises.contains_key(&from) {
            return;
        }
        let fresh = candidate
            .partial
            .get(&from)
            .is_none_or(|p| p.commit != commit || p.parts.count() != part.count);
        if fresh {
            let Some(parts) = Parts::new(part.count) else {
                tracing::debug!(node = %self.cfg.me, %from, count = part.count, "malformed promise part");
                return;
            };
            candidate
                .partial
                .insert(from, PartialPromise { commit, parts });
        }
        let Some(partial) = candidate.partial.get_mut(&from) else {
            return;
        };
        if !partial.parts.add(part) || !partial.parts.complete() {
            return;
        }
        let Some(partial) = candidate.partial.remove(&from) else {
            return;
        };
        let (entries, bytes) = partial.parts.into_whole();
        match parts::decode_checkpoint(&bytes) {
            Ok(checkpoint) => {
                self.on_promise(now_ms, from, ballot, commit, entries, checkpoint, out)
            }
            Err(e) => {
                tracing::debug!(node = %self.cfg.me, %from, "undecodable promised checkpoint: {e}")
            }
        }
    }

    /// PROMISE: count it; with a majority, take over.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_promise(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        commit: Slot,
        entries: Vec<SlotEntry>,
        checkpoint: Option<Checkpoint>,
        out: &mut Vec<Effect>,
    ) {
        let ballots = checkpoint.iter().map(|c| c.ballot);
        if self.refuse_implausible(from, "promise", ballots) {
            return;
        }
        let fits = checkpoint.as_ref().is_none_or(|c| self.checkpoint_fits(c));
        let span = self.cfg.max_log_span() as usize;
        let RoleState::Candidate(candidate) = &mut self.role else {
            tracing::debug!(node = %self.cfg.me, %from, %ballot, "promise while not a candidate");
            return;
        };
        // A promise with more entries than any log can hold, or a checkpoint from a ballot the
        // promiser cannot have seen, is malformed: drop it whole (cutting it would be unsafe).
        let above = checkpoint.as_ref().is_some_and(|c| c.ballot > ballot);
        if candidate.ballot != ballot || !fits || above || entries.len() > span {
            tracing::debug!(node = %self.cfg.me, %from, %ballot, "stale or malformed promise");
            return;
        }
        if let Some(checkpoint) = checkpoint {
            let best = candidate
                .best_checkpoint
                .as_ref()
                .map_or(Slot(0), |c| c.slot);
            if checkpoint.slot > best {
                candidate.best_checkpoint = Some(checkpoint);
            }
        }
        candidate
            .promises
            .insert(from, PromiseInfo { commit, entries });
        self.maybe_win(now_ms, out);
    }

    /// NACK: someone promised a higher ballot; adopt it and stop leading or campaigning.
    pub(super) fn on_nack(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        out: &mut Vec<Effect>,
    ) {
        if ballot <= self.promised {
            return;
        }
        if self.cfg.bugs.stale_leader() && self.is_leader() {
            // PLANTED BUG stale_leader: a leader ignores a higher ballot and keeps leading.
            tracing::debug!(node = %self.me(), %from, %ballot, "planted bug: ignoring a nack");
            return;
        }
        let reprepare = self.healthy_leader_nacked_by_outsider(now_ms, from);
        self.raise_promised(ballot, out);
        self.reset_election_timer(now_ms);
        if reprepare {
            // A replica back from a restart or a partition still holds a promise from an old
            // duel. Its NACK is no sign of a rival leader: the majority that just acknowledged
            // us refuses pre-votes. Run phase 1 again above that promise at once instead of
            // leaving the cluster leaderless for an election timeout.
            tracing::info!(node = %self.me(), %from, %ballot, "a rejoining replica holds a higher promise: preparing again above it");
            self.start_election(now_ms, out);
        }
    }

    /// Whether this replica leads, a majority (itself included) acknowledged its ballot within
    /// the minimum election timeout, and `from` is not among them. Those acknowledgers heard
    /// this leader too recently to have granted a pre-vote to anyone, so no other leader can
    /// have been elected by a majority meanwhile.
    fn healthy_leader_nacked_by_outsider(&self, now_ms: u64, from: NodeId) -> bool {
        let RoleState::Leader(leader) = &self.role else {
            return false;
        };
        let window = self.cfg.election_timeout_ms_min;
        let fresh: Vec<NodeId> = leader
            .heard
            .iter()
            .filter(|(_, t)| now_ms < t.saturating_add(window))
            .map(|(node, _)| *node)
            .collect();
        !fresh.contains(&from) && fresh.len() + 1 >= self.cfg.quorum()
    }

    /// Becomes leader if a majority (this node included) promised the candidate's ballot.
    fn maybe_win(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let RoleState::Candidate(candidate) = &self.role else {
            return;
        };
        if candidate.promises.len() + 1 < self.cfg.quorum() {
            return;
        }
        let RoleState::Candidate(candidate) = std::mem::replace(&mut self.role, RoleState::Backup)
        else {
            unreachable!("checked above")
        };
        self.become_leader(now_ms, candidate, out);
    }

    /// Installs the best checkpoint, merges, persists the merged slots at the new ballot, and
    /// announces the view.
    fn become_leader(&mut self, now_ms: u64, candidate: Candidate, out: &mut Vec<Effect>) {
        let ballot = candidate.ballot;
        if let Some(checkpoint) = candidate.best_checkpoint {
            if checkpoint.slot > self.executed {
                self.install_checkpoint(checkpoint, out);
            }
        }
        let base = self.commit;
        let own = self.log.entries_above(base, usize::MAX);
        let others: Vec<&[SlotEntry]> = candidate
            .promises
            .values()
            .map(|p| p.entries.as_slice())
            .collect();
        let merged = merge(&MergeInput {
            base,
            limit: base.plus(self.cfg.max_log_span()),
            own: &own,
            others,
            ignore_others: self.cfg.bugs.no_view_merge(),
        });
        let last = merged.last().map_or(base, |(slot, _)| *slot);
        // Slots some promiser knows committed hold their chosen value in the merge.
        let known_committed = candidate
            .promises
            .values()
            .map(|p| p.commit)
            .max()
            .unwrap_or(base);
        let decided = known_committed.min(last);

        let mut inflight = BTreeMap::new();
        for (slot, value) in &merged {
            let committed = *slot <= decided;
            self.store_accepted(*slot, ballot, value.clone(), committed, out);
            if !committed {
                let acks = BTreeSet::from([self.me()]);
                inflight.insert(
                    *slot,
                    Inflight {
                        acks,
                        last_sent_ms: now_ms,
                    },
                );
            }
        }
        tracing::info!(node = %self.me(), %ballot, %base, %last, "leading");
        let heard = candidate.promises.keys().map(|p| (*p, now_ms)).collect();
        self.role = RoleState::Leader(Leader {
            ballot,
            next_slot: last.next(),
            inflight,
            proposals: Default::default(),
            last_heartbeat_ms: now_ms,
            commit_sent: Slot(0),
            since_ms: now_ms,
            heard,
            txn: Default::default(),
            locks: Default::default(),
            proposed_slots: 0,
        });
        self.leader = Some(self.me());
        self.record_view(ballot, last.next());
        self.advance_commit(out);
        self.send_new_view(ballot, last.next(), merged, out);
        self.commit_on_own_vote_if_alone(out);
    }

    /// Accepts `value` in `slot` at `ballot` here: the WAL record (durable before any vote or
    /// reply of the burst leaves) and the log entry. Used for the leader's own proposals, for
    /// ACCEPTs and NEW_VIEW entries from the leader, and for entries learned in catch-up.
    pub(super) fn store_accepted(
        &mut self,
        slot: Slot,
        ballot: Ballot,
        value: Value,
        committed: bool,
        out: &mut Vec<Effect>,
    ) {
        out.push(Effect::Persist(WalRecord::Accepted {
            slot,
            ballot,
            value: value.clone(),
        }));
        self.log.insert(
            slot,
            super::log::Entry {
                ballot,
                value,
                committed,
            },
        );
    }

    /// Sends the merged slots to every peer, cut into messages of bounded size.
    fn send_new_view(
        &mut self,
        ballot: Ballot,
        next_slot: Slot,
        merged: Vec<(Slot, Value)>,
        out: &mut Vec<Effect>,
    ) {
        let commit = self.commit;
        let budget = self.cfg.payload_budget();
        let mut chunks: Vec<Vec<SlotEntry>> = vec![Vec::new()];
        let (mut commands, mut bytes) = (0, 0);
        for (slot, value) in merged {
            let entry = SlotEntry {
                slot,
                ballot,
                value,
            };
            let size = entry.value.commands().len().max(1);
            let entry_bytes = encoded_len(&entry);
            let current = chunks.last_mut().expect("never empty");
            let full =
                commands + size > MAX_VIEW_COMMANDS_PER_MESSAGE || bytes + entry_bytes > budget;
            if !current.is_empty() && full {
                chunks.push(Vec::new());
                (commands, bytes) = (0, 0);
            }
            commands += size;
            bytes += entry_bytes;
            chunks.last_mut().expect("never empty").push(entry);
        }
        for peer in self.cfg.peers().collect::<Vec<_>>() {
            for entries in &chunks {
                let msg = PeerMsg::NewView {
                    ballot,
                    commit,
                    next_slot,
                    entries: entries.clone(),
                };
                send(out, peer, msg);
            }
        }
        if let RoleState::Leader(leader) = &mut self.role {
            leader.commit_sent = commit;
        }
    }
}
