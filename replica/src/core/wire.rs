//! The core's wire and disk vocabulary: peer messages, log values, WAL records, checkpoints.
//!
//! Everything here crosses a process boundary (postcard on QUIC between replicas, postcard in the
//! WAL and the checkpoint file), so every type derives `Serialize + Deserialize` and the order of
//! variants and fields is part of the format: never reorder, add new variants at the end only.
//!
//! The messages follow the classic stable-leader Multi-Paxos vocabulary. One flat enum with
//! struct variants (as in tikv/raft-rs's `Message` and stateright's actor examples) keeps the
//! dispatch in one `match` and makes every field visible at the call site.
//!
//! The peer protocol, variant by variant: docs/peer-protocol.md.

use crate::bank::{Bank, Command, ShardMsg, TxnEntry};
use crate::types::{Ballot, Slot};
use serde::{Deserialize, Serialize};

/// What one log slot decides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Value {
    /// Fills a slot that no quorum member had accepted anything in (view change gaps).
    Noop,
    /// A batch of client commands, executed in order.
    Batch(Vec<Command>),
    /// Internal entries of two-phase commit between shards, executed in order. Only a leader
    /// proposes these, on messages from other shards; the client protocol cannot carry one.
    Txn(Vec<TxnEntry>),
}

impl Value {
    /// The commands this value executes (none for a no-op).
    pub fn commands(&self) -> &[Command] {
        match self {
            Value::Noop | Value::Txn(_) => &[],
            Value::Batch(commands) => commands,
        }
    }

    pub fn is_noop(&self) -> bool {
        matches!(self, Value::Noop)
    }
}

/// One slot's accepted (or committed) value and the ballot it was accepted in.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotEntry {
    pub slot: Slot,
    pub ballot: Ballot,
    pub value: Value,
}

/// The replicated state after executing every slot up to and including `slot`.
///
/// The bank carries the balances, the reply table (for exactly-once retries) and the exec index,
/// so a replica that installs a checkpoint answers retries and numbers commands exactly as the
/// replica that took it.
///
/// `ballot` is the highest ballot any slot it covers was accepted in (at the replica that took
/// it). A replica installing it adopts that ballot if it is above its promise: whoever decided
/// those slots is at least that recent, so a leader below it is stale (see `Core::adopt`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Last slot included.
    pub slot: Slot,
    pub bank: Bank,
    pub ballot: Ballot,
}

/// One record of the write-ahead log. Replaying them in order over the latest checkpoint
/// rebuilds the acceptor state (see `Core::new`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WalRecord {
    /// The acceptor promised not to accept anything below this ballot.
    Promised(Ballot),
    /// The acceptor accepted `value` in `slot` at `ballot` (a later record for the same slot
    /// with a higher or equal ballot replaces it).
    Accepted {
        slot: Slot,
        ballot: Ballot,
        value: Value,
    },
    /// Every slot up to `upto` is committed (the records for them precede this one, or are
    /// covered by the checkpoint).
    Committed { upto: Slot },
}

/// What the shell found on disk at start. `Recovered::default()` for a fresh node.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recovered {
    pub checkpoint: Option<Checkpoint>,
    pub records: Vec<WalRecord>,
}

/// Replica-to-replica messages. Wire type: never reorder variants or fields.
///
/// Every message a leader sends names its ballot; its `node` must be the sender, or the message
/// is dropped. Commit points are contiguous: "every slot up to here is committed".
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerMsg {
    /// Phase 1a for every slot above `commit` (the candidate's commit point) at once.
    Prepare { ballot: Ballot, commit: Slot },
    /// Phase 1b: the promiser's accepted entries above the candidate's commit point, its own
    /// commit point, and its checkpoint when the candidate is behind it.
    Promise {
        ballot: Ballot,
        commit: Slot,
        entries: Vec<SlotEntry>,
        checkpoint: Option<Checkpoint>,
    },
    /// The new leader's merged log above its commit point, to accept at `ballot`; fresh commands
    /// go to `next_slot` and beyond. Long views are cut into several messages.
    NewView {
        ballot: Ballot,
        commit: Slot,
        next_slot: Slot,
        entries: Vec<SlotEntry>,
    },
    /// Phase 2a for one slot, with the leader's commit point piggybacked.
    Accept {
        ballot: Ballot,
        slot: Slot,
        value: Value,
        commit: Slot,
    },
    /// Phase 2b: the sender durably accepted `slot` at `ballot`.
    Accepted { ballot: Ballot, slot: Slot },
    /// The leader's commit point moved.
    Commit { ballot: Ballot, upto: Slot },
    /// The leader is alive; its commit point.
    Heartbeat { ballot: Ballot, commit: Slot },
    /// A refusal: the sender has promised `ballot`, higher than the message it refuses.
    Nack { ballot: Ballot },
    /// A client command a backup received, for the leader to propose.
    Forward { command: Command },
    /// "Send me committed entries from `from` on."
    CatchUpRequest { from: Slot },
    /// Committed entries (consecutive slots), and the sender's commit point.
    CatchUpEntries {
        commit: Slot,
        entries: Vec<SlotEntry>,
    },
    /// The sender's checkpoint, for a replica that asked for entries it no longer has.
    Snapshot { checkpoint: Checkpoint },
    /// Pre-vote: "would you promise `ballot` if I prepared it?" Sent by a backup whose election
    /// timer fired, before it raises any ballot. Granting changes nothing at the receiver.
    PreVote { ballot: Ballot, commit: Slot },
    /// The answer to a pre-vote for `ballot`, with the sender's promise (a refusal with a higher
    /// promise tells the asker which round to aim above).
    PreVoteReply {
        ballot: Ballot,
        granted: bool,
        promised: Ballot,
    },
    /// A backup heard the leader of `ballot`: lets the leader check that a majority still
    /// hears it (check-quorum).
    HeartbeatAck { ballot: Ballot },
    /// One part of a PROMISE too large for one message. Each part carries some of the entries
    /// (in slot order) or a slice of the postcard-encoded checkpoint; the candidate counts the
    /// promise once it holds all `parts`.
    PromisePart {
        ballot: Ballot,
        commit: Slot,
        part: u32,
        parts: u32,
        entries: Vec<SlotEntry>,
        checkpoint_bytes: Vec<u8>,
    },
    /// One slice of a postcard-encoded checkpoint too large for one SNAPSHOT message; the
    /// receiver installs it once it holds all `parts` of the checkpoint at (`slot`, `ballot`).
    SnapshotPart {
        slot: Slot,
        ballot: Ballot,
        part: u32,
        parts: u32,
        bytes: Vec<u8>,
    },
    /// Two-phase commit between shards, from a member of another shard: only this shard's
    /// leader acts on it, by proposing the entry it asks for (`ShardMsg::entry`).
    Shard(ShardMsg),
}

/// The size of `value` in postcard, the encoding of every message and record.
pub fn encoded_len<T: Serialize>(value: &T) -> usize {
    postcard::serialize_with_flavor(value, postcard::ser_flavors::Size::default())
        .unwrap_or(usize::MAX)
}

impl PeerMsg {
    /// A vote of this replica as an acceptor (PROMISE, ACCEPTED): it may leave the process
    /// only once the state behind it is durable. Every other message may go before the burst's
    /// fsync, because its sender's own state is counted only in later bursts (see `Effect`).
    pub fn is_vote(&self) -> bool {
        matches!(
            self,
            PeerMsg::Promise { .. } | PeerMsg::Accepted { .. } | PeerMsg::PromisePart { .. }
        )
    }

    /// Every ballot the message carries, in whatever role (its own, a promise, the ballots of
    /// the entries and checkpoint in it). Parts of a checkpoint are checked once decoded.
    pub fn ballots(&self) -> Vec<Ballot> {
        self.each_ballot().collect()
    }

    /// [`PeerMsg::ballots`] without collecting them: the core checks them on every message.
    pub fn each_ballot(&self) -> impl Iterator<Item = Ballot> + '_ {
        let entries: &[SlotEntry] = match self {
            PeerMsg::Promise { entries, .. }
            | PeerMsg::NewView { entries, .. }
            | PeerMsg::CatchUpEntries { entries, .. }
            | PeerMsg::PromisePart { entries, .. } => entries,
            _ => &[],
        };
        let own: [Option<Ballot>; 2] = match self {
            PeerMsg::Prepare { ballot, .. }
            | PeerMsg::NewView { ballot, .. }
            | PeerMsg::Accept { ballot, .. }
            | PeerMsg::Accepted { ballot, .. }
            | PeerMsg::Commit { ballot, .. }
            | PeerMsg::Heartbeat { ballot, .. }
            | PeerMsg::Nack { ballot }
            | PeerMsg::PreVote { ballot, .. }
            | PeerMsg::HeartbeatAck { ballot }
            | PeerMsg::PromisePart { ballot, .. }
            | PeerMsg::SnapshotPart { ballot, .. } => [Some(*ballot), None],
            PeerMsg::Promise {
                ballot, checkpoint, ..
            } => [Some(*ballot), checkpoint.as_ref().map(|c| c.ballot)],
            PeerMsg::Snapshot { checkpoint } => [Some(checkpoint.ballot), None],
            PeerMsg::PreVoteReply {
                ballot, promised, ..
            } => [Some(*ballot), Some(*promised)],
            PeerMsg::Forward { .. }
            | PeerMsg::CatchUpRequest { .. }
            | PeerMsg::CatchUpEntries { .. }
            | PeerMsg::Shard(_) => [None, None],
        };
        let own = own.into_iter().flatten();
        entries.iter().map(|e| e.ballot).chain(own)
    }

    /// A short name for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            PeerMsg::Prepare { .. } => "prepare",
            PeerMsg::Promise { .. } => "promise",
            PeerMsg::NewView { .. } => "new-view",
            PeerMsg::Accept { .. } => "accept",
            PeerMsg::Accepted { .. } => "accepted",
            PeerMsg::Commit { .. } => "commit",
            PeerMsg::Heartbeat { .. } => "heartbeat",
            PeerMsg::Nack { .. } => "nack",
            PeerMsg::Forward { .. } => "forward",
            PeerMsg::CatchUpRequest { .. } => "catch-up-request",
            PeerMsg::CatchUpEntries { .. } => "catch-up-entries",
            PeerMsg::Snapshot { .. } => "snapshot",
            PeerMsg::PreVote { .. } => "pre-vote",
            PeerMsg::PreVoteReply { .. } => "pre-vote-reply",
            PeerMsg::HeartbeatAck { .. } => "heartbeat-ack",
            PeerMsg::PromisePart { .. } => "promise-part",
            PeerMsg::SnapshotPart { .. } => "snapshot-part",
            PeerMsg::Shard(_) => "shard",
        }
    }
}
