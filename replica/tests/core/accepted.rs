//! ACCEPTED: the leader commits a slot on a majority of votes, itself included.

use crate::util::*;
use replica::bank::OpResult;
use replica::client_proto::{ClientResponse, SlotState};
use replica::core::PeerMsg;
use replica::types::Slot;

#[test]
fn a_majority_commits_executes_and_answers_the_client() {
    let (mut core, ballot) = leader(1, 5);
    let out = submit(&mut core, 1_001, 77, transfer(1, 1, "A", "B", 4));
    assert_eq!(sends(&out).len(), 4, "accept to every backup");
    let slot = Slot(1);
    let mut out = Vec::new();
    core.on_message(1_002, n(2), PeerMsg::Accepted { ballot, slot }, &mut out);
    core.on_message(1_002, n(2), PeerMsg::Accepted { ballot, slot }, &mut out);
    assert_eq!(
        core.slot_state(slot),
        SlotState::Accepted,
        "two votes of five: not yet"
    );
    assert!(replies(&out).is_empty());
    core.on_message(1_003, n(4), PeerMsg::Accepted { ballot, slot }, &mut out);
    assert_eq!(core.slot_state(slot), SlotState::Executed);
    let (token, ClientResponse::Reply { node, reply }) = one(replies(&out)) else {
        panic!("expected one reply: {out:?}")
    };
    assert_eq!((token, node, reply.exec_index), (77, n(1), 1));
    assert_eq!(
        reply.result,
        OpResult::Transferred {
            from_balance: 6,
            to_balance: 14
        }
    );
    // Backups hear about it at the next flush.
    let mut out = Vec::new();
    core.flush(1_003, &mut out);
    assert_eq!(
        sent_to(&out, 5),
        vec![PeerMsg::Commit {
            ballot,
            upto: Slot(1)
        }]
    );
}

#[test]
fn votes_for_another_ballot_or_unknown_slots_do_not_count() {
    let (mut core, ballot) = leader(1, 3);
    submit(&mut core, 1_001, 1, transfer(1, 1, "A", "B", 1));
    let mut out = Vec::new();
    core.on_message(
        1_002,
        n(2),
        PeerMsg::Accepted {
            ballot: b(ballot.round - 1, 1),
            slot: Slot(1),
        },
        &mut out,
    );
    core.on_message(
        1_002,
        n(2),
        PeerMsg::Accepted {
            ballot,
            slot: Slot(9),
        },
        &mut out,
    );
    assert_eq!(core.slot_state(Slot(1)), SlotState::Accepted);
    assert!(out.is_empty());
}

#[test]
fn pipelined_slots_commit_in_any_order_but_execute_in_slot_order() {
    let (mut core, ballot) = leader(1, 3);
    submit(&mut core, 1_001, 1, transfer(1, 1, "A", "B", 1));
    submit(&mut core, 1_001, 2, transfer(2, 1, "A", "C", 1));
    let mut out = Vec::new();
    core.on_message(
        1_002,
        n(2),
        PeerMsg::Accepted {
            ballot,
            slot: Slot(2),
        },
        &mut out,
    );
    assert_eq!(core.slot_state(Slot(2)), SlotState::Committed);
    assert!(executed(&out).is_empty());
    core.on_message(
        1_002,
        n(3),
        PeerMsg::Accepted {
            ballot,
            slot: Slot(1),
        },
        &mut out,
    );
    let order: Vec<u64> = executed(&out).iter().map(|e| e.command.client.0).collect();
    assert_eq!(order, vec![1, 2]);
}
