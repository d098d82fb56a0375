//! Pre-vote, check-quorum and leader stickiness: no single replica keeps the cluster from
//! progressing, and none that merely lost touch can depose a healthy leader.
//!
//! - Pre-vote. A backup whose election timer fires does not raise its ballot at once: it asks
//!   every peer whether it would promise the next round (PRE_VOTE). Granting changes nothing at
//!   the granter. Only with a majority of grants (itself included) does it start the real
//!   election, so a replica cut off in a minority, or alone behind a one-way cut, never raises
//!   a ballot that would later force a healthy leader to step down.
//! - Stickiness. A replica that heard its leader within the minimum election timeout refuses
//!   pre-votes (so does a leader). A replica rejoining after a partition or a restart therefore
//!   finds no majority for a new round while the leader is alive, and follows it instead.
//! - Check-quorum. Backups acknowledge heartbeats (HEARTBEAT_ACK); a leader that has not heard
//!   a majority (itself included) follow its ballot for a lease of twice the maximum election
//!   timeout steps down (twice: an acknowledgement comes a heartbeat interval plus a round trip
//!   after the last one, which on a slow network is close to one election timeout; a shorter
//!   lease made healthy leaders step down again and again in simulation), so a leader stranded in a minority stops taking clients' commands, and the majority
//!   side, whose members stopped hearing it, grants a pre-vote and elects a new leader.

use super::effect::{send, Effect};
use super::{Core, PeerMsg, PreVote, RoleState};
use crate::types::{Ballot, NodeId, Slot};
use std::collections::BTreeSet;

impl Core {
    /// The election timer fired at a backup: ask for pre-votes for the next round.
    pub(super) fn start_prevote(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        self.reset_election_timer(now_ms);
        let Some(round) = self.next_round() else {
            tracing::error!(node = %self.me(), promised = %self.promised, "ballot rounds exhausted");
            return;
        };
        let ballot = Ballot {
            round,
            node: self.me(),
        };
        tracing::info!(node = %self.me(), %ballot, leader = ?self.leader, "election timeout: asking for pre-votes");
        self.leader = None;
        self.prevote = Some(PreVote {
            ballot,
            grants: BTreeSet::new(),
        });
        let commit = self.commit;
        for peer in self.cfg.peers().collect::<Vec<_>>() {
            send(out, peer, PeerMsg::PreVote { ballot, commit });
        }
        self.maybe_end_prevote(now_ms, out);
    }

    /// PRE_VOTE: grant unless this replica leads, heard its leader recently, or has promised
    /// at least `ballot` (the real PREPARE would be refused).
    pub(super) fn on_prevote(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        _commit: Slot,
        out: &mut Vec<Effect>,
    ) {
        if ballot.node != from {
            return;
        }
        let min = self.cfg.election_timeout_ms_min;
        let heard_leader = self
            .leader_heard_ms
            .is_some_and(|t| now_ms < t.saturating_add(min));
        let granted = !self.is_leader() && !heard_leader && ballot > self.promised;
        tracing::debug!(node = %self.me(), %from, %ballot, granted, "pre-vote");
        let promised = self.promised;
        send(
            out,
            from,
            PeerMsg::PreVoteReply {
                ballot,
                granted,
                promised,
            },
        );
    }

    /// PRE_VOTE_REPLY: count a grant; a refusal with a higher promise is adopted, so the next
    /// attempt aims above it.
    pub(super) fn on_prevote_reply(
        &mut self,
        now_ms: u64,
        from: NodeId,
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
        out: &mut Vec<Effect>,
    ) {
        if promised > self.promised && !granted {
            self.raise_promised(promised, out);
            return;
        }
        let Some(prevote) = self.prevote.as_mut() else {
            return;
        };
        if prevote.ballot != ballot || !granted || !matches!(self.role, RoleState::Backup) {
            return;
        }
        prevote.grants.insert(from);
        self.maybe_end_prevote(now_ms, out);
    }

    /// With a majority of grants, the real election starts.
    fn maybe_end_prevote(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        let Some(prevote) = &self.prevote else {
            return;
        };
        if prevote.grants.len() + 1 < self.cfg.quorum() {
            return;
        }
        self.prevote = None;
        self.start_election(now_ms, out);
    }

    /// How long a leader may go without hearing a majority before it steps down.
    pub(super) fn quorum_lease_ms(&self) -> u64 {
        self.cfg.election_timeout_ms_max.saturating_mul(2)
    }

    /// A peer showed it follows `ballot` (HEARTBEAT_ACK, ACCEPTED): the leader notes when.
    pub(super) fn note_follower(&mut self, now_ms: u64, from: NodeId, ballot: Ballot) {
        if let RoleState::Leader(leader) = &mut self.role {
            if leader.ballot == ballot {
                leader.heard.insert(from, now_ms);
            }
        }
    }

    /// Check-quorum: a leader that has not heard a majority follow it within the lease steps
    /// down (keeping its promise; it only stops leading).
    pub(super) fn check_quorum(&mut self, now_ms: u64) {
        let lease = self.quorum_lease_ms();
        let quorum = self.cfg.quorum();
        let RoleState::Leader(leader) = &self.role else {
            return;
        };
        if now_ms < leader.since_ms.saturating_add(lease) {
            return;
        }
        let recent = |t: &&u64| now_ms < t.saturating_add(lease);
        let live = 1 + leader.heard.values().filter(recent).count();
        if live >= quorum {
            return;
        }
        let ballot = leader.ballot;
        tracing::info!(node = %self.me(), %ballot, live, quorum, "stepping down: no majority heard for a lease");
        self.role = RoleState::Backup;
        self.leader = None;
        self.leader_heard_ms = None;
        self.reset_election_timer(now_ms);
    }
}
