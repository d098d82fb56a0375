//! Failpoints: crash this replica at a named step of two-phase commit, so that tests and the
//! harness can show that no single crash of a coordinator or participant breaks or blocks a
//! transaction.
//!
//! The steps live in the shell, where it carries out the core's effects, never in the core
//! (which stays pure): a cross-shard message about to leave, or one about to reach the core.
//! Every failpoint, in one place ([`Failpoint::ALL`]):
//!
//! | name | fires on | when |
//! |---|---|---|
//! | `coordinator-after-start` | coordinator leader | the transfer's start (`from` locked) is chosen; PREPARE not sent |
//! | `participant-after-prepare` | participant leader | its PREPARE is chosen (vote decided, `to` locked on yes); VOTE not sent |
//! | `coordinator-before-decision` | coordinator leader | a VOTE of a preparing transaction arrived; the decision not proposed |
//! | `coordinator-after-decision-before-send` | coordinator leader | the decision is chosen; DECISION not sent, client not answered |
//! | `coordinator-after-send` | coordinator leader | an ACK arrived (the decision reached a participant and was applied there); not yet recorded |
//!
//! A message step fires on resends too (a leader resends unfinished work every
//! `resend_interval_ms`): the state is the same, the message has not been acknowledged yet.
//! `coordinator-after-send` waits for the ACK rather than firing right after the send, because
//! a send only queues the message: aborting then would most often lose it, which is
//! `coordinator-after-decision-before-send` again. The ACK proves the DECISION got out.
//!
//! How: the `fail` crate, compiled in only with the `failpoints` feature (which `bugs`, the
//! test build, carries); a shipped `replica` has none. Even where compiled in, only the
//! `replica-bugs` binary accepts arming, like `--bug`. A client arms one with
//! [`crate::client_proto::ClientRequest::ArmFailpoint`] (`replica ctl arm-failpoint`). A fired
//! failpoint calls [`std::process::abort`]: like SIGKILL, no destructor runs and nothing is
//! flushed beyond what the write-ahead log already made durable.

use crate::bank::{Decision, ShardMsg};
use crate::core::PeerMsg;
use crate::types::NodeId;
use std::fmt;

/// A named step of two-phase commit where the replica can be made to crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Failpoint {
    CoordinatorAfterStart,
    ParticipantAfterPrepare,
    CoordinatorBeforeDecision,
    CoordinatorAfterDecisionBeforeSend,
    CoordinatorAfterSend,
}

impl Failpoint {
    /// Every failpoint, in protocol order.
    pub const ALL: [Failpoint; 5] = [
        Failpoint::CoordinatorAfterStart,
        Failpoint::ParticipantAfterPrepare,
        Failpoint::CoordinatorBeforeDecision,
        Failpoint::CoordinatorAfterDecisionBeforeSend,
        Failpoint::CoordinatorAfterSend,
    ];

    /// The stable name clients arm it by.
    pub fn name(self) -> &'static str {
        match self {
            Failpoint::CoordinatorAfterStart => "coordinator-after-start",
            Failpoint::ParticipantAfterPrepare => "participant-after-prepare",
            Failpoint::CoordinatorBeforeDecision => "coordinator-before-decision",
            Failpoint::CoordinatorAfterDecisionBeforeSend => {
                "coordinator-after-decision-before-send"
            }
            Failpoint::CoordinatorAfterSend => "coordinator-after-send",
        }
    }

    pub fn from_name(name: &str) -> Option<Failpoint> {
        Failpoint::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether it fires on a coordinator (else on a participant).
    pub fn on_coordinator(self) -> bool {
        self != Failpoint::ParticipantAfterPrepare
    }

    /// Every name, comma-separated (for error messages and help).
    pub fn names() -> String {
        let names: Vec<&str> = Failpoint::ALL.iter().map(|f| f.name()).collect();
        names.join(", ")
    }
}

impl fmt::Display for Failpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a failpoint could not be armed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArmError {
    #[error(
        "{node} was built without failpoints; use replica-bugs (`cargo build -p replica \
         --features bugs --bin replica-bugs`)"
    )]
    Disabled { node: NodeId },
    #[error("unknown failpoint {name:?}; known: {known}", known = Failpoint::names())]
    Unknown { name: String },
    #[error("cannot arm failpoint {name}: {reason}")]
    Registry { name: String, reason: String },
}

/// Arms `name` in this process: it fires at its next hit (every hit unless `once`). `allowed`
/// is false in every binary but `replica-bugs`.
pub fn arm(node: NodeId, name: &str, once: bool, allowed: bool) -> Result<Failpoint, ArmError> {
    if !(allowed && compiled_in()) {
        return Err(ArmError::Disabled { node });
    }
    let failpoint = Failpoint::from_name(name).ok_or_else(|| ArmError::Unknown {
        name: name.to_string(),
    })?;
    configure(failpoint, once).map_err(|reason| ArmError::Registry {
        name: name.to_string(),
        reason,
    })?;
    tracing::warn!(%node, failpoint = name, once, "failpoint armed");
    Ok(failpoint)
}

/// Whether this build has failpoints at all.
pub fn compiled_in() -> bool {
    cfg!(feature = "failpoints")
}

#[cfg(feature = "failpoints")]
fn configure(failpoint: Failpoint, once: bool) -> Result<(), String> {
    fail::cfg(failpoint.name(), if once { "1*return" } else { "return" })
}

#[cfg(not(feature = "failpoints"))]
fn configure(_failpoint: Failpoint, _once: bool) -> Result<(), String> {
    Err("not compiled in".into())
}

/// The step that sending `msg` completes, if it is one: the message is about to leave.
pub fn step_of_send(msg: &PeerMsg) -> Option<Failpoint> {
    match msg {
        PeerMsg::Shard(ShardMsg::Prepare { .. }) => Some(Failpoint::CoordinatorAfterStart),
        PeerMsg::Shard(ShardMsg::Vote { .. }) => Some(Failpoint::ParticipantAfterPrepare),
        PeerMsg::Shard(ShardMsg::Decision { .. }) => {
            Some(Failpoint::CoordinatorAfterDecisionBeforeSend)
        }
        _ => None,
    }
}

/// The step that receiving `msg` reaches, if it is one. `leads`: this replica leads its
/// shard; `coordinated`: what its bank knows of the message's transaction as coordinator
/// (`Bank::coordinated`). Only a message the core would act on counts: a vote while preparing,
/// an ACK once decided (the others change nothing).
pub fn step_of_receive(
    msg: &PeerMsg,
    leads: bool,
    coordinated: impl FnOnce(&crate::bank::TxnId) -> Option<Option<Decision>>,
) -> Option<Failpoint> {
    if !leads {
        return None;
    }
    match msg {
        PeerMsg::Shard(ShardMsg::Vote { txn, .. }) => {
            (coordinated(txn) == Some(None)).then_some(Failpoint::CoordinatorBeforeDecision)
        }
        PeerMsg::Shard(ShardMsg::Ack { txn }) => {
            matches!(coordinated(txn), Some(Some(_))).then_some(Failpoint::CoordinatorAfterSend)
        }
        _ => None,
    }
}

/// Crashes the process here if `failpoint` is armed.
pub fn hit(node: NodeId, failpoint: Failpoint) {
    #[cfg(feature = "failpoints")]
    fail::fail_point!(failpoint.name(), |_| crash(node, failpoint));
    #[cfg(not(feature = "failpoints"))]
    let _ = (node, failpoint);
}

#[cfg(feature = "failpoints")]
fn crash(node: NodeId, failpoint: Failpoint) -> ! {
    // stderr is unbuffered: the line is out before the abort. Nothing else is flushed.
    eprintln!("{node}: failpoint {failpoint} fired: aborting");
    std::process::abort()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bank::{TxnId, Vote};
    use crate::types::{ClientId, RequestId, ShardId};

    fn txn() -> TxnId {
        TxnId {
            coordinator: ShardId(1),
            client: ClientId(1),
            request: RequestId(1),
        }
    }

    #[test]
    fn every_name_parses_back_and_names_are_distinct() {
        for f in Failpoint::ALL {
            assert_eq!(Failpoint::from_name(f.name()), Some(f));
        }
        let names: std::collections::BTreeSet<_> =
            Failpoint::ALL.iter().map(|f| f.name()).collect();
        assert_eq!(names.len(), Failpoint::ALL.len());
        assert_eq!(Failpoint::from_name("coordinator"), None);
    }

    #[test]
    fn an_unknown_name_is_refused_with_the_list_of_names() {
        let err = arm(NodeId(1), "no-such-step", true, true);
        if compiled_in() {
            let message = err.unwrap_err().to_string();
            assert!(message.contains("no-such-step"), "{message}");
            assert!(message.contains("coordinator-after-send"), "{message}");
        } else {
            assert_eq!(err, Err(ArmError::Disabled { node: NodeId(1) }));
        }
    }

    #[test]
    fn a_binary_that_does_not_allow_arming_says_to_use_replica_bugs() {
        let err = arm(NodeId(2), "coordinator-after-send", true, false).unwrap_err();
        assert!(err.to_string().contains("use replica-bugs"), "{err}");
    }

    #[test]
    fn outgoing_two_phase_commit_messages_map_to_their_steps() {
        let prepare = ShardMsg::Prepare {
            txn: txn(),
            from: "A".into(),
            to: "B".into(),
            amount: 1,
        };
        let vote = ShardMsg::Vote {
            txn: txn(),
            vote: Vote::Yes { to_balance: 11 },
        };
        let decision = ShardMsg::Decision {
            txn: txn(),
            decision: Decision::Commit { to_balance: 11 },
        };
        let ack = ShardMsg::Ack { txn: txn() };
        let step = |m: ShardMsg| step_of_send(&PeerMsg::Shard(m));
        assert_eq!(step(prepare), Some(Failpoint::CoordinatorAfterStart));
        assert_eq!(step(vote), Some(Failpoint::ParticipantAfterPrepare));
        assert_eq!(
            step(decision),
            Some(Failpoint::CoordinatorAfterDecisionBeforeSend)
        );
        assert_eq!(step(ack), None);
    }

    #[test]
    fn a_vote_counts_only_at_a_leader_while_preparing_and_an_ack_only_once_decided() {
        let vote = PeerMsg::Shard(ShardMsg::Vote {
            txn: txn(),
            vote: Vote::Yes { to_balance: 11 },
        });
        let ack = PeerMsg::Shard(ShardMsg::Ack { txn: txn() });
        let decided = Some(Some(Decision::Commit { to_balance: 11 }));
        let preparing = Some(None);
        let at = |msg: &PeerMsg, leads, state: Option<Option<Decision>>| {
            step_of_receive(msg, leads, |_| state)
        };
        assert_eq!(
            at(&vote, true, preparing),
            Some(Failpoint::CoordinatorBeforeDecision)
        );
        assert_eq!(at(&vote, false, preparing), None);
        assert_eq!(at(&vote, true, decided), None);
        assert_eq!(at(&vote, true, None), None);
        assert_eq!(
            at(&ack, true, decided),
            Some(Failpoint::CoordinatorAfterSend)
        );
        assert_eq!(at(&ack, true, preparing), None);
        assert_eq!(at(&ack, false, decided), None);
    }
}
