//! What the core asks its shell to do, and the contract the shell must keep.
//!
//! The core performs no I/O: every handler appends [`Effect`]s to a caller-supplied `Vec`. The
//! order of effects in that `Vec` matters and the shell must keep it.
//!
//! # The shell's contract (group commit)
//!
//! 1. Feed a burst of inputs (`on_message`, `on_client`, `on_tick`, in any mix), then call
//!    `flush` once, collecting every effect into one `Vec`.
//! 2. Write every [`Effect::Persist`] and [`Effect::Checkpoint`] of that `Vec` to disk, in order,
//!    and fsync **once**. Append [`Effect::Executed`] to the executed journal (and obey
//!    [`Effect::ResetJournal`]) in order with them; the journal need not be fsynced, because
//!    the core re-executes committed entries after a restart.
//! 3. Only then release the [`Effect::Send`]s and [`Effect::Reply`]s, in order.
//!
//! One refinement the shell may use: a `Send` whose message is not a vote
//! ([`PeerMsg::is_vote`]: PROMISE and ACCEPTED are votes) may be released *before* the fsync
//! of its burst. A leader's ACCEPT, NEW_VIEW, PREPARE or COMMIT only asks others to act; the
//! leader's own vote is counted when the answers come back, and those are handled in a later
//! burst, after this burst's fsync has finished. So the leader's disk write and its backups'
//! overlap instead of adding up, and nothing that could be forgotten is ever counted.
//!
//! Because of (2)–(3) an acceptor's PROMISE or ACCEPTED is never seen before the state behind
//! it is durable, and a leader may count its own vote for a slot when it proposes it: its
//! `Persist` is durable before any message that could lead to a commit leaves the process. A
//! client never sees a reply for something this replica could forget in a crash.
//!
//! After a [`Effect::Checkpoint`] is durable the shell may compact its WAL to
//! `Core::durable_records()` (taken after the burst), which describes exactly the acceptor state
//! above that checkpoint.
//!
//! On restart the shell reads the newest checkpoint and the WAL into a `Recovered`, truncates
//! its executed journal to the checkpoint's exec index (`checkpoint.bank.exec_index()`, 0 without
//! one), and calls `Core::new`, which returns the `Executed` effects of re-executing the
//! committed entries above the checkpoint (and any checkpoint that re-execution takes).

use super::wire::{Checkpoint, PeerMsg, WalRecord};
use super::ReplyToken;
use crate::bank::Executed;
use crate::client_proto::ClientResponse;
use crate::types::{ExecIndex, NodeId};
use std::sync::Arc;

/// One thing for the shell to do. See the module docs for the ordering contract.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    /// Append this record to the WAL. Durable (fsynced) before any later `Send` or `Reply` of the
    /// same burst is released.
    Persist(WalRecord),
    /// Send a message to a peer. Best effort: the network may drop it, the core retransmits.
    Send { to: NodeId, msg: PeerMsg },
    /// Answer the client stream `token`. A token the core never answers has timed out in the
    /// core; the shell closes such streams on its own timer.
    Reply {
        token: ReplyToken,
        response: ClientResponse,
    },
    /// Append to the executed journal (the replica's executed log, served by FetchExecuted).
    Executed(Executed),
    /// Write this checkpoint atomically, replacing the previous one. Emitted when the replica
    /// takes a checkpoint and when it installs one received from another replica. Shared with
    /// the core, which keeps the same checkpoint to answer lagging replicas: the bank in it is
    /// copied once, not once more for the shell.
    Checkpoint(Arc<Checkpoint>),
    /// The replica installed another replica's checkpoint: its journal restarts at
    /// `next_exec_index` (earlier entries are not known here). Always follows the `Checkpoint`.
    ResetJournal { next_exec_index: ExecIndex },
}

/// Shorthand used by the handlers.
pub(super) fn send(out: &mut Vec<Effect>, to: NodeId, msg: PeerMsg) {
    out.push(Effect::Send { to, msg });
}
