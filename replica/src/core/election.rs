//! Phase 1: electing a leader for every slot above its commit point at once.
//!
//! A backup whose leader went quiet for a randomized election timeout becomes a candidate with
//! a ballot one round above anything it has promised and sends PREPARE(ballot, its commit
//! point). Acceptors that have not promised a higher ballot promise this one (durably, see the
//! shell contract) and report everything they accepted above the candidate's commit point, plus
//! their checkpoint if the candidate is behind it. With a majority (itself included) the
//! candidate installs the most advanced checkpoint, merges the reports (`merge`), re-proposes
//! the merged slots in a NEW_VIEW and leads. A candidate that gets no majority before its timer
//! fires again retries with a higher round; the random timers make duels short.

use super::effect::{send, Effect};
use super::merge::{merge, MergeInput};
use super::wire::{Checkpoint, SlotEntry, Value, WalRecord};
use super::{Candidate, Core, Inflight, Leader, PeerMsg, PromiseInfo, RoleState};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::{BTreeMap, BTreeSet};

/// Most commands one NEW_VIEW message carries; a longer view is cut into several messages.
const MAX_VIEW_COMMANDS_PER_MESSAGE: usize = 4096;

impl Core {
    /// Becomes a candidate with a fresh, higher ballot and asks every peer to promise it.
    pub(super) fn start_election(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(round) = self.promised.round.checked_add(1) else {
            // Only reachable if a peer sent an absurd ballot; better stuck than panicking.
            tracing::error!(node = %self.me(), promised = %self.promised, "ballot rounds exhausted");
            self.reset_election_timer(now_ms);
            return;
        };
        let ballot = Ballot {
            round,
            node: self.me(),
        };
        tracing::debug!(node = %self.me(), %ballot, "starting an election");
        self.raise_promised(ballot, out);
        self.role = RoleState::Candidate(Candidate {
            ballot,
            promises: BTreeMap::new(),
            best_checkpoint: None,
        });
        self.reset_election_timer(now_ms);
        for peer in self.cfg.peers().collect::<Vec<_>>() {
            send(
                out,
                peer,
                PeerMsg::Prepare {
                    ballot,
                    commit: self.commit,
                },
            );
        }
        self.maybe_win(now_ms, out);
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
            if self.cfg.bugs.stale_leader && self.is_leader() {
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
        let checkpoint = self.checkpoint.clone().filter(|c| c.slot > commit);
        let promise = PeerMsg::Promise {
            ballot,
            commit: self.commit,
            entries,
            checkpoint,
        };
        send(out, from, promise);
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
        if self.cfg.bugs.stale_leader && self.is_leader() {
            // PLANTED BUG stale_leader: a leader ignores a higher ballot and keeps leading.
            tracing::debug!(node = %self.me(), %from, %ballot, "planted bug: ignoring a nack");
            return;
        }
        self.raise_promised(ballot, out);
        self.reset_election_timer(now_ms);
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
            ignore_others: self.cfg.bugs.no_view_merge,
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
        tracing::debug!(node = %self.me(), %ballot, %base, %last, "leading");
        self.role = RoleState::Leader(Leader {
            ballot,
            next_slot: last.next(),
            inflight,
            proposals: Default::default(),
            last_heartbeat_ms: now_ms,
            commit_sent: Slot(0),
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
        let mut chunks: Vec<Vec<SlotEntry>> = vec![Vec::new()];
        let mut commands = 0;
        for (slot, value) in merged {
            let size = value.commands().len().max(1);
            let current = chunks.last_mut().expect("never empty");
            if !current.is_empty() && commands + size > MAX_VIEW_COMMANDS_PER_MESSAGE {
                chunks.push(Vec::new());
                commands = 0;
            }
            commands += size;
            chunks.last_mut().expect("never empty").push(SlotEntry {
                slot,
                ballot,
                value,
            });
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
