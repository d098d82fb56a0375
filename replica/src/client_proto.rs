//! The client protocol: what a client (the harness, `replica ctl`) may ask a replica and what
//! it gets back. One request and one response per QUIC bidirectional stream, each a postcard
//! frame (see `net::frame`). The contract, every variant with its meaning and what the harness
//! records for it: docs/client-protocol.md.
//!
//! Outcomes are definite (`Reply`, `Rejected`, `Overloaded`, `Unauthorized`) or absent (no
//! answer: the client must treat the command as maybe-executed and retry with the same request
//! id). `NotLeader` is definite too: the replica did not forward or propose the command.
//! `Expired` is definite about this attempt (not executed) but not about the request: an
//! earlier attempt may have executed before the client's reply-table entry was evicted.
//!
//! Wire types: never reorder variants or fields (postcard encodes by position); add new
//! variants at the end only.

use crate::bank::{Command, Executed, Invalid, Reply};
use crate::types::{Account, Amount, Ballot, ClientId, ExecIndex, NodeId, RequestId, Slot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientRequest {
    /// Execute a bank command through the log (reads too, so they are linearizable).
    Submit(Command),
    /// PrintDB: this replica's balances.
    PrintDb,
    /// PrintLog: this replica's Paxos log from `from_slot`, at most `max_entries` entries.
    PrintLog { from_slot: Slot, max_entries: u32 },
    /// PrintStatus(slot): A / C / E / X for one slot on this replica.
    PrintStatus { slot: Slot },
    /// PrintView: every NEW_VIEW this replica has seen.
    PrintView,
    /// The executed log (for `final.json`), from `from_exec_index`, at most `max_entries`.
    FetchExecuted {
        from_exec_index: ExecIndex,
        max_entries: u32,
    },
    /// Role, ballot, leader and progress of this replica.
    Status,
    /// Arm the failpoint `name` (`replica::failpoints`) on this replica: it crashes at that
    /// step of two-phase commit, at its next hit (at every hit unless `once`). Only
    /// `replica-bugs` accepts it; answered `FailpointArmed` or `Error` saying why not.
    ArmFailpoint { name: String, once: bool },
}

impl ClientRequest {
    /// Requests only an operator certificate or a cluster member may make: they read the
    /// replica's state (balances, log, executed journal) or crash it on purpose.
    pub fn needs_operator(&self) -> bool {
        matches!(
            self,
            ClientRequest::PrintDb
                | ClientRequest::PrintLog { .. }
                | ClientRequest::FetchExecuted { .. }
                | ClientRequest::ArmFailpoint { .. }
        )
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ClientResponse {
    /// The command executed (now or earlier: a retry gets the original reply).
    Reply {
        node: NodeId,
        reply: Reply,
    },
    /// The command is invalid and was never proposed.
    Rejected {
        node: NodeId,
        reason: Invalid,
    },
    /// This replica will not handle the command; try the hinted leader.
    NotLeader {
        node: NodeId,
        leader_hint: Option<NodeId>,
    },
    /// The replica's queues are full; the command was not proposed. Retry later.
    Overloaded {
        node: NodeId,
    },
    Db {
        node: NodeId,
        exec_index: ExecIndex,
        balances: BTreeMap<Account, Amount>,
    },
    Log {
        node: NodeId,
        checkpoint_slot: Slot,
        entries: Vec<LogEntryView>,
    },
    SlotStatus {
        node: NodeId,
        slot: Slot,
        state: SlotState,
    },
    Views {
        node: NodeId,
        views: Vec<ViewRecord>,
    },
    /// Entries of the executed log. `first_available` is the lowest exec index this replica can
    /// still report (above 1 when it installed a checkpoint from another replica).
    Executed {
        node: NodeId,
        first_available: ExecIndex,
        last: ExecIndex,
        entries: Vec<Executed>,
    },
    Status(NodeStatus),
    /// The request could not be served (bad arguments, internal limit); says why.
    Error {
        node: NodeId,
        message: String,
    },
    /// The connection's certificate does not allow submitting as `client`. Refused by the
    /// network layer: this attempt never reached the core. Retrying cannot help.
    Unauthorized {
        node: NodeId,
        client: ClientId,
    },
    /// The reply table no longer remembers `client` (it was idle and evicted), and this
    /// request id is at or below the ids of evicted clients: the request may have executed
    /// before the eviction, so it is not executed again. Whether it ever executed is unknown.
    /// Retrying the same id cannot help; a new request id above `floor` can.
    Expired {
        node: NodeId,
        client: ClientId,
        floor: RequestId,
    },
    /// The failpoint `name` is armed on `node`.
    FailpointArmed {
        node: NodeId,
        name: String,
        once: bool,
    },
    /// The request needs an operator ([`ClientRequest::needs_operator`]: PrintDb, PrintLog,
    /// FetchExecuted, ArmFailpoint) and the certificate is neither an operator's nor a cluster
    /// member's. Refused by the network layer; retrying cannot help.
    OperatorOnly {
        node: NodeId,
    },
}

impl ClientResponse {
    /// The replica that answered.
    pub fn node(&self) -> NodeId {
        match self {
            ClientResponse::Reply { node, .. }
            | ClientResponse::Rejected { node, .. }
            | ClientResponse::NotLeader { node, .. }
            | ClientResponse::Overloaded { node }
            | ClientResponse::Db { node, .. }
            | ClientResponse::Log { node, .. }
            | ClientResponse::SlotStatus { node, .. }
            | ClientResponse::Views { node, .. }
            | ClientResponse::Executed { node, .. }
            | ClientResponse::Error { node, .. }
            | ClientResponse::Unauthorized { node, .. }
            | ClientResponse::Expired { node, .. }
            | ClientResponse::FailpointArmed { node, .. }
            | ClientResponse::OperatorOnly { node } => *node,
            ClientResponse::Status(status) => status.node,
        }
    }
}

/// What a replica knows about one slot (PrintStatus letters A / C / E / X).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SlotState {
    /// Accepted by this replica, not known to be committed.
    Accepted,
    /// Known committed, not executed yet.
    Committed,
    /// Executed (or covered by a checkpoint).
    Executed,
    /// Nothing known about this slot here.
    Unknown,
}

impl SlotState {
    pub fn letter(self) -> char {
        match self {
            SlotState::Accepted => 'A',
            SlotState::Committed => 'C',
            SlotState::Executed => 'E',
            SlotState::Unknown => 'X',
        }
    }
}

/// One slot of PrintLog.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntryView {
    pub slot: Slot,
    pub ballot: Ballot,
    /// Empty for a no-op.
    pub commands: Vec<Command>,
    pub noop: bool,
    pub state: SlotState,
}

/// One NEW_VIEW seen by a replica (PrintView).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ViewRecord {
    pub ballot: Ballot,
    pub leader: NodeId,
    /// First slot the new leader proposes fresh commands in.
    pub next_slot: Slot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    Leader,
    Candidate,
    Backup,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node: NodeId,
    pub role: Role,
    /// Highest ballot promised.
    pub ballot: Ballot,
    pub leader: Option<NodeId>,
    /// Every slot up to here is known committed.
    pub commit_slot: Slot,
    /// Every slot up to here is executed.
    pub executed_slot: Slot,
    pub exec_index: ExecIndex,
    pub checkpoint_slot: Slot,
}
