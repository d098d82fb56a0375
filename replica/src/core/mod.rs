//! The Paxos protocol core: a stable-leader Multi-Paxos bank as a deterministic state machine.
//!
//! Why pure: a core that never touches a clock, a socket, a disk or a random source can be
//! tested handler by handler and run thousands of times inside a seeded simulator (the `sim` crate),
//! where every interleaving is reproducible from a seed. The tokio shell (`server`) owns all I/O
//! and obeys the contract documented on [`Effect`].
//!
//! How it works, in one paragraph: every replica is an acceptor, a learner and an executor; one
//! of them is the leader. A backup that hears nothing from a leader for a randomized election
//! timeout asks its peers for pre-votes (granted only by replicas that do not hear a leader
//! either), then becomes a candidate and sends one PREPARE covering every slot above its commit
//! point. A leader that stops hearing a majority steps down (check-quorum).
//! With a majority of PROMISEs it merges what they report (per slot the value with the highest
//! ballot, gaps as no-ops), re-proposes that in a NEW_VIEW and then proposes batches of client
//! commands in consecutive slots, pipelined (ACCEPT without waiting for earlier slots). A slot is
//! committed when a majority accepted it; every replica executes committed slots strictly in
//! order through [`Bank::execute`], which deduplicates retried requests. Checkpoints bound the
//! log; replicas that fall behind fetch committed entries or a checkpoint from the leader.
//!
//! The invariants the handlers keep (and the `sim` crate's `Sim::check_safety` watches):
//! - Ballots only grow, and every rise is persisted before anything that depends on it leaves.
//! - Every message fits in `CoreConfig::max_message_bytes` (the network's frame limit): long
//!   ones go in parts (`parts`), and a batch never exceeds half a message.
//! - Within one ballot its leader proposes at most one value per slot, and never reuses a ballot
//!   across restarts (a restarted replica starts as a backup with its old promise).
//! - A backup trusts a commit point only for entries it accepted in that leader's ballot; other
//!   decided entries come through catch-up, tagged with their ballot.
//! - Every decided value a replica holds was accepted in a ballot at or below its promise
//!   (`adopt`), so its ACCEPTED for an already decided slot is always true, and a leader that
//!   learns of a higher ballot from decided state steps down before trusting it.
//! - No log holds entries more than `CoreConfig::window` above its executed slot, so a promise
//!   never needs cutting and the view merge can reject anything longer as malformed.
//! - The commit point only moves over entries present here; execution follows it slot by slot.
//!
//! Module map:
//! - [`wire`]: messages, values, WAL records, checkpoints (the formats).
//! - [`effect`]: effects and the shell contract.
//! - [`config`]: `CoreConfig` and the planted `Bugs`.
//! - `log`: the in-memory log above the checkpoint.
//! - `prevote`: PRE_VOTE, leader stickiness and check-quorum (HEARTBEAT_ACK).
//! - `election`: PREPARE / PROMISE / NACK, becoming leader, and `merge`, the view merge.
//! - `parts`: cutting PROMISEs, snapshots and catch-up answers to fit one network frame.
//! - `replication`: NEW_VIEW / ACCEPT / ACCEPTED / COMMIT / HEARTBEAT, `flush`, the leader's tick.
//! - `clients`: client commands, forwarding, waiters, the leader's pending queue.
//! - `execute`: commit point, execution, checkpoints, installing snapshots.
//! - `catchup`: CATCH_UP_REQUEST / CATCH_UP_ENTRIES / SNAPSHOT.
//! - `recovery`: `Core::new` from what was on disk.
//! - `twopc`: two-phase commit between shards: messages from other shards, resends, timeouts.
//! - `locks`: the leader's bounded lock waits (the wait-die lock policy).
//! - `introspect`: status, balances, log, slot states, views, durable records.
//! - `invariants`: the invariants above as code, checked after every input in test builds.
//!
//! The deterministic simulator that runs whole clusters of cores lives in the `sim` crate.

mod catchup;
mod clients;
pub mod config;
pub mod effect;
mod election;
mod execute;
mod introspect;
mod invariants;
mod locks;
mod log;
mod merge;
mod parts;
mod prevote;
mod recovery;
mod replication;
mod twopc;

pub mod wire;

pub use config::{Bugs, CoreConfig, CoreConfigError, LockPolicy, Sharding};
pub use effect::Effect;
pub use invariants::Broken;
pub use recovery::Recovery;
pub use wire::{Checkpoint, PeerMsg, Recovered, SlotEntry, Value, WalRecord};

use crate::bank::Bank;
use crate::client_proto::{Role, ViewRecord};
use crate::types::{Ballot, NodeId, Slot};
use clients::{Proposals, Waiters};
use log::Log;
use rand::rngs::SmallRng;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

/// Opaque handle from the shell naming the client stream to answer.
pub type ReplyToken = u64;

/// Most NEW_VIEWs remembered for PrintView.
pub const MAX_VIEWS: usize = 1000;

/// How far above its own promise a replica takes a peer's ballot. Honest ballots grow by one
/// round per election, so a replica falls this far behind only after four billion elections
/// held without it; one message from a buggy member cannot move the cluster further.
pub const MAX_BALLOT_JUMP_ROUNDS: u64 = 1 << 32;

/// The highest ballot round any replica takes or starts: at one election per millisecond,
/// reaching it by honest elections takes 146 million years, so ballot space never runs out.
pub const MAX_BALLOT_ROUND: u64 = 1 << 62;

/// The protocol state of one replica. See the module docs.
pub struct Core {
    cfg: CoreConfig,
    rng: SmallRng,

    // Acceptor state: durable through `Effect::Persist`.
    /// Highest ballot promised; nothing below it is accepted.
    promised: Ballot,
    log: Log,
    /// Every slot up to here is committed and present (in the log or the checkpoint).
    commit: Slot,

    // Executor state.
    /// Watched: the invariants over the bank are checked again only after it changed.
    bank: invariants::Watched<Bank>,
    /// Every slot up to here is executed; equal to `commit` between inputs.
    executed: Slot,
    /// The last checkpoint taken or installed, kept to answer lagging replicas. Shared with
    /// the `Effect::Checkpoint` that writes it: a checkpoint holds the whole bank and its
    /// reply table, and one copy of it is enough.
    checkpoint: Option<Arc<Checkpoint>>,
    /// Highest ballot among the entries executed here (and the checkpoints installed). Never
    /// above `promised`: see `adopt`.
    decided_ballot: Ballot,

    // Roles and timers.
    role: RoleState,
    /// The leader this replica currently follows (itself when leading).
    leader: Option<NodeId>,
    /// A backup or candidate starts an election when the clock reaches this.
    election_deadline_ms: u64,
    /// Highest commit point heard from a leader; above `commit` means "catch up".
    known_commit: Slot,
    /// When the outstanding catch-up request may be repeated; `None` when none is outstanding.
    catchup_retry_ms: Option<u64>,
    /// When this backup last heard the leader it follows. While that is recent it refuses
    /// pre-votes, so a replica that lost touch alone cannot depose a healthy leader.
    leader_heard_ms: Option<u64>,
    /// The pre-vote this backup is collecting before it dares to raise a ballot.
    prevote: Option<PreVote>,
    /// A snapshot arriving in parts (`PeerMsg::SnapshotPart`).
    snapshot_parts: Option<parts::Assembly>,

    // Clients.
    waiters: Waiters,
    views: VecDeque<ViewRecord>,
}

/// What this replica is doing besides accepting.
enum RoleState {
    Backup,
    Candidate(Candidate),
    Leader(Leader),
}

/// A replica collecting PROMISEs for `ballot`.
struct Candidate {
    ballot: Ballot,
    /// Promises from other nodes (this replica's own log counts as the last one).
    promises: BTreeMap<NodeId, PromiseInfo>,
    /// The most advanced checkpoint any promiser sent.
    best_checkpoint: Option<Checkpoint>,
    /// Promises arriving in parts (`PeerMsg::PromisePart`), per promiser.
    partial: BTreeMap<NodeId, parts::PartialPromise>,
}

/// A backup asking whether a majority would promise `ballot` (none of them changes state).
struct PreVote {
    ballot: Ballot,
    grants: BTreeSet<NodeId>,
}

struct PromiseInfo {
    commit: Slot,
    entries: Vec<SlotEntry>,
}

/// A replica that won `ballot` and proposes in it.
struct Leader {
    ballot: Ballot,
    /// The next slot a fresh batch goes to.
    next_slot: Slot,
    /// Proposed, not yet committed slots and who accepted them.
    inflight: BTreeMap<Slot, Inflight>,
    proposals: Proposals,
    last_heartbeat_ms: u64,
    /// Highest commit point already told to the backups.
    commit_sent: Slot,
    /// When this replica started leading (check-quorum waits one lease before judging).
    since_ms: u64,
    /// When each peer last showed it follows this ballot (HEARTBEAT_ACK, ACCEPTED, catch-up).
    heard: BTreeMap<NodeId, u64>,
    /// Two-phase commit work of a sharded bank (see `twopc`).
    txn: twopc::LeaderTxns,
    /// Commands and PREPAREs waiting for locks (see `locks`).
    locks: locks::LockWaits,
    /// Slots proposed in this ballot (the planted `stuck_leader` bug's budget).
    proposed_slots: u64,
}

struct Inflight {
    acks: BTreeSet<NodeId>,
    last_sent_ms: u64,
}

impl Core {
    fn me(&self) -> NodeId {
        self.cfg.me
    }

    fn is_leader(&self) -> bool {
        matches!(self.role, RoleState::Leader(_))
    }

    fn role(&self) -> Role {
        match self.role {
            RoleState::Backup => Role::Backup,
            RoleState::Candidate(_) => Role::Candidate,
            RoleState::Leader(_) => Role::Leader,
        }
    }

    /// The round a new pre-vote or election asks for: one above the promise, unless that
    /// would pass [`MAX_BALLOT_ROUND`] (only a corrupted disk gets there: peers' ballots are
    /// bounded).
    fn next_round(&self) -> Option<u64> {
        self.promised
            .round
            .checked_add(1)
            .filter(|r| *r <= MAX_BALLOT_ROUND)
    }

    /// Pushes the election deadline a fresh random timeout into the future.
    fn reset_election_timer(&mut self, now_ms: u64) {
        let timeout = self
            .rng
            .gen_range(self.cfg.election_timeout_ms_min..=self.cfg.election_timeout_ms_max);
        self.election_deadline_ms = now_ms.saturating_add(timeout);
    }

    /// Adopts a higher ballot: persist the promise, and stop leading or campaigning for a lower
    /// one. Precondition: `ballot > promised`.
    fn raise_promised(&mut self, ballot: Ballot, out: &mut Vec<Effect>) {
        assert!(
            ballot > self.promised,
            "ballots only grow: {ballot} <= {}",
            self.promised
        );
        self.promised = ballot;
        out.push(Effect::Persist(WalRecord::Promised(ballot)));
        if !matches!(self.role, RoleState::Backup) {
            tracing::info!(node = %self.me(), %ballot, role = ?self.role(), "stepping down for a higher ballot");
            self.role = RoleState::Backup;
        }
        self.leader = None;
        self.leader_heard_ms = None;
        self.prevote = None;
    }

    /// Adopts the ballot a decided entry or checkpoint was accepted in, if it is above our
    /// promise. This keeps the invariant "every decided value held here was accepted in a
    /// ballot <= promised", which makes two things safe: voting ACCEPTED for a slot already
    /// decided here (any proposal at a ballot >= the deciding one carries the decided value), and
    /// a leader installing decided state (a leader that learns of a higher ballot steps down).
    fn adopt(&mut self, ballot: Ballot, out: &mut Vec<Effect>) {
        if ballot > self.promised {
            tracing::debug!(node = %self.me(), %ballot, "adopting the ballot of decided state");
            self.raise_promised(ballot, out);
        }
    }

    /// Whether a peer's `ballot` is one an honest member can send: at most
    /// [`MAX_BALLOT_JUMP_ROUNDS`] above our promise and at most [`MAX_BALLOT_ROUND`]. Anything
    /// else is malformed (a bug or a corrupted disk at the sender) and is dropped, as if lost:
    /// adopting it would let one message use up the ballot space and end every election.
    fn ballot_is_plausible(&self, ballot: Ballot) -> bool {
        let reach = self.promised.round.saturating_add(MAX_BALLOT_JUMP_ROUNDS);
        ballot.round <= reach.min(MAX_BALLOT_ROUND)
    }

    /// Drops (with a warning) input carrying an implausible ballot; `true` if it did.
    fn refuse_implausible(
        &self,
        from: NodeId,
        kind: &str,
        ballots: impl IntoIterator<Item = Ballot>,
    ) -> bool {
        let mut ballots = ballots.into_iter();
        let Some(bad) = ballots.find(|b| !self.ballot_is_plausible(*b)) else {
            return false;
        };
        tracing::warn!(node = %self.me(), %from, kind, ballot = %bad, promised = %self.promised, "dropping a message with an implausible ballot");
        true
    }

    /// Records a NEW_VIEW for PrintView, once per ballot, keeping the last [`MAX_VIEWS`].
    fn record_view(&mut self, ballot: Ballot, next_slot: Slot) {
        if self.views.iter().rev().take(8).any(|v| v.ballot == ballot) {
            return;
        }
        if self.views.len() >= MAX_VIEWS {
            self.views.pop_front();
        }
        self.views.push_back(ViewRecord {
            ballot,
            leader: ballot.node,
            next_slot,
        });
    }

    /// Handles one message from a peer. Messages from non-members (but two-phase commit ones
    /// from other shards) or from this node itself are dropped; so is anything malformed or
    /// stale (see each handler).
    pub fn on_message(&mut self, now_ms: u64, from: NodeId, msg: PeerMsg, out: &mut Vec<Effect>) {
        // Two-phase commit messages come from other shards' members (checked by their handler).
        let foreign_ok = matches!(msg, PeerMsg::Shard(_));
        let kind = msg.kind();
        if from == self.me() || !(self.cfg.is_member(from) || foreign_ok) {
            tracing::debug!(node = %self.me(), %from, kind, "dropping message from a non-peer");
            return;
        }
        if self.refuse_implausible(from, kind, msg.each_ballot()) {
            return;
        }
        self.dispatch(now_ms, from, msg, out);
        self.assert_invariants_after(|| format!("on_message({kind} from {from})"));
    }

    fn dispatch(&mut self, now_ms: u64, from: NodeId, msg: PeerMsg, out: &mut Vec<Effect>) {
        match msg {
            PeerMsg::Prepare { ballot, commit } => {
                self.on_prepare(now_ms, from, ballot, commit, out)
            }
            PeerMsg::Promise {
                ballot,
                commit,
                entries,
                checkpoint,
            } => self.on_promise(now_ms, from, ballot, commit, entries, checkpoint, out),
            PeerMsg::NewView {
                ballot,
                commit,
                next_slot,
                entries,
            } => self.on_new_view(now_ms, from, ballot, commit, next_slot, entries, out),
            PeerMsg::Accept {
                ballot,
                slot,
                value,
                commit,
            } => self.on_accept(now_ms, from, ballot, slot, value, commit, out),
            PeerMsg::Accepted { ballot, slot } => self.on_accepted(now_ms, from, ballot, slot, out),
            PeerMsg::Commit { ballot, upto } => {
                self.on_commit_point(now_ms, from, ballot, upto, out)
            }
            PeerMsg::Heartbeat { ballot, commit } => {
                self.on_heartbeat(now_ms, from, ballot, commit, out)
            }
            PeerMsg::Nack { ballot } => self.on_nack(now_ms, from, ballot, out),
            PeerMsg::Forward { command } => self.on_forward(now_ms, from, command),
            PeerMsg::CatchUpRequest { from: slot } => self.on_catchup_request(from, slot, out),
            PeerMsg::CatchUpEntries { commit, entries } => {
                self.on_catchup_entries(now_ms, from, commit, entries, out)
            }
            PeerMsg::Snapshot { checkpoint } => self.on_snapshot(now_ms, from, checkpoint, out),
            PeerMsg::PreVote { ballot, commit } => {
                self.on_prevote(now_ms, from, ballot, commit, out)
            }
            PeerMsg::PreVoteReply {
                ballot,
                granted,
                promised,
            } => self.on_prevote_reply(now_ms, from, ballot, granted, promised, out),
            PeerMsg::HeartbeatAck { ballot } => self.note_follower(now_ms, from, ballot),
            PeerMsg::PromisePart {
                ballot,
                commit,
                part,
                parts,
                entries,
                checkpoint_bytes,
            } => {
                let part = parts::Part {
                    index: part,
                    count: parts,
                    entries,
                    bytes: checkpoint_bytes,
                };
                self.on_promise_part(now_ms, from, ballot, commit, part, out)
            }
            PeerMsg::SnapshotPart {
                slot,
                ballot,
                part,
                parts,
                bytes,
            } => self.on_snapshot_part(now_ms, from, slot, ballot, part, parts, bytes, out),
            PeerMsg::Shard(msg) => self.on_shard_msg(now_ms, from, msg),
        }
    }

    /// Called every ~10 ms: client waits expire, backups ask for pre-votes, candidates resend
    /// PREPARE, the leader sends heartbeats, retransmits and checks it still has a quorum,
    /// lagging replicas repeat catch-up requests.
    pub fn on_tick(&mut self, now_ms: u64, out: &mut Vec<Effect>) {
        self.waiters.expire(now_ms);
        if self.is_leader() {
            self.release_lock_waits(now_ms);
            self.leader_tick(now_ms, out);
            self.txn_tick(now_ms, out);
            self.check_quorum(now_ms);
        } else if now_ms >= self.election_deadline_ms {
            if matches!(self.role, RoleState::Candidate(_)) {
                self.resend_prepare(now_ms, out);
            } else {
                self.start_prevote(now_ms, out);
            }
        }
        self.maybe_request_catchup(now_ms, out);
        self.assert_invariants("on_tick");
    }
}
