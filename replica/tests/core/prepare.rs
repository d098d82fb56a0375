//! PREPARE: promise a higher ballot durably, report accepted entries, NACK a lower one.

use crate::util::*;
use replica::client_proto::Role;
use replica::core::{Effect, PeerMsg, WalRecord};
use replica::types::Slot;

#[test]
fn a_higher_ballot_is_promised_durably_before_the_promise_leaves() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(
        5,
        n(1),
        PeerMsg::Prepare {
            ballot: b(3, 1),
            commit: Slot(0),
        },
        &mut out,
    );
    assert_eq!(core.status().ballot, b(3, 1));
    let persisted = position(&out, |e| {
        *e == Effect::Persist(WalRecord::Promised(b(3, 1)))
    });
    let promised = position(&out, |e| {
        matches!(
            e,
            Effect::Send {
                msg: PeerMsg::Promise { .. },
                ..
            }
        )
    });
    assert!(
        persisted < promised,
        "persist precedes the promise: {out:?}"
    );
    assert_eq!(sent_to(&out, 1), vec![promise(b(3, 1), 0)]);
}

#[test]
fn the_promise_reports_entries_above_the_candidates_commit_point() {
    let ballot = b(1, 1);
    let mut core = backup_of(2, 5, ballot);
    let mut out = Vec::new();
    for slot in 1..=3 {
        let value = batch(vec![transfer(1, slot, "A", "B", 1)]);
        let msg = PeerMsg::Accept {
            ballot,
            slot: Slot(slot),
            value,
            commit: Slot(0),
        };
        core.on_message(20, n(1), msg, &mut out);
    }
    out.clear();
    core.on_message(
        30,
        n(3),
        PeerMsg::Prepare {
            ballot: b(2, 3),
            commit: Slot(1),
        },
        &mut out,
    );
    let PeerMsg::Promise {
        ballot,
        commit,
        entries,
        checkpoint,
    } = one(sent_to(&out, 3))
    else {
        panic!("expected one promise: {out:?}")
    };
    assert_eq!((ballot, commit, checkpoint), (b(2, 3), Slot(0), None));
    assert_eq!(
        entries.iter().map(|e| e.slot.0).collect::<Vec<_>>(),
        vec![2, 3]
    );
    assert!(entries.iter().all(|e| e.ballot == b(1, 1)));
}

#[test]
fn a_lower_ballot_is_nacked_with_the_promised_one() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(
        5,
        n(3),
        PeerMsg::Prepare {
            ballot: b(4, 3),
            commit: Slot(0),
        },
        &mut out,
    );
    out.clear();
    core.on_message(
        6,
        n(1),
        PeerMsg::Prepare {
            ballot: b(4, 1),
            commit: Slot(0),
        },
        &mut out,
    );
    assert_eq!(
        out,
        vec![Effect::Send {
            to: n(1),
            msg: PeerMsg::Nack { ballot: b(4, 3) }
        }]
    );
    assert_eq!(core.status().ballot, b(4, 3));
}

#[test]
fn a_repeated_prepare_is_answered_again_without_a_new_persist() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    let prepare = PeerMsg::Prepare {
        ballot: b(1, 1),
        commit: Slot(0),
    };
    core.on_message(5, n(1), prepare.clone(), &mut out);
    out.clear();
    core.on_message(6, n(1), prepare, &mut out);
    assert!(persists(&out).is_empty());
    assert_eq!(sent_to(&out, 1), vec![promise(b(1, 1), 0)]);
}

#[test]
fn a_leader_steps_down_for_a_higher_ballot() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    let higher = ballot_above(ballot, 2);
    core.on_message(
        1_100,
        n(2),
        PeerMsg::Prepare {
            ballot: higher,
            commit: Slot(0),
        },
        &mut out,
    );
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().leader, None);
    assert_eq!(core.status().ballot, higher);
}

#[test]
fn a_prepare_for_someone_elses_ballot_or_from_a_stranger_is_dropped() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(
        5,
        n(3),
        PeerMsg::Prepare {
            ballot: b(9, 1),
            commit: Slot(0),
        },
        &mut out,
    );
    core.on_message(
        5,
        n(9),
        PeerMsg::Prepare {
            ballot: b(9, 9),
            commit: Slot(0),
        },
        &mut out,
    );
    core.on_message(
        5,
        n(2),
        PeerMsg::Prepare {
            ballot: b(9, 2),
            commit: Slot(0),
        },
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    assert_eq!(core.status().ballot, b(0, 0));
}

#[test]
fn a_behind_candidate_gets_the_checkpoint() {
    let (mut core, ballot) = leader(1, 3);
    // Commit 10 slots (the checkpoint interval) with n2's votes.
    for request in 1..=10 {
        let mut out = submit(&mut core, 1_001, request, transfer(1, request, "A", "B", 1));
        let slot = core.status().commit_slot.next();
        core.on_message(1_001, n(2), PeerMsg::Accepted { ballot, slot }, &mut out);
    }
    assert_eq!(core.status().checkpoint_slot, Slot(10));
    let mut out = Vec::new();
    let higher = ballot_above(ballot, 3);
    core.on_message(
        2_000,
        n(3),
        PeerMsg::Prepare {
            ballot: higher,
            commit: Slot(4),
        },
        &mut out,
    );
    let PeerMsg::Promise {
        checkpoint: Some(checkpoint),
        commit,
        ..
    } = one(sent_to(&out, 3))
    else {
        panic!("expected a promise with a checkpoint: {out:?}")
    };
    assert_eq!((checkpoint.slot, commit), (Slot(10), Slot(10)));
    assert_eq!(checkpoint.bank.balance("A"), 0);
}

/// A ballot owned by `node`, above `ballot`.
pub fn ballot_above(ballot: replica::types::Ballot, node: u32) -> replica::types::Ballot {
    b(ballot.round + 1, node)
}
