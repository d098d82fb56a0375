//! ACCEPT: a backup votes durably, within its window, never below its promise.

use crate::util::*;
use replica::client_proto::SlotState;
use replica::core::{Effect, PeerMsg, WalRecord};
use replica::types::Slot;

fn accept(ballot: replica::types::Ballot, slot: u64, request: u64, commit: u64) -> PeerMsg {
    let value = batch(vec![transfer(1, request, "A", "B", 1)]);
    PeerMsg::Accept {
        ballot,
        slot: Slot(slot),
        value,
        commit: Slot(commit),
    }
}

#[test]
fn an_accept_is_persisted_then_acknowledged() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), 1, 1, 0), &mut out);
    let value = batch(vec![transfer(1, 1, "A", "B", 1)]);
    assert_eq!(
        out,
        vec![
            Effect::Persist(WalRecord::Promised(b(1, 1))),
            Effect::Persist(WalRecord::Accepted {
                slot: Slot(1),
                ballot: b(1, 1),
                value
            }),
            Effect::Send {
                to: n(1),
                msg: PeerMsg::Accepted {
                    ballot: b(1, 1),
                    slot: Slot(1)
                }
            },
        ]
    );
    assert_eq!(
        core.status().leader,
        Some(n(1)),
        "an accept reveals the leader"
    );
    assert_eq!(core.slot_state(Slot(1)), SlotState::Accepted);
}

#[test]
fn slots_are_accepted_out_of_order_and_a_retransmission_is_not_persisted_twice() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), 3, 3, 0), &mut out);
    core.on_message(10, n(1), accept(b(1, 1), 2, 2, 0), &mut out);
    out.clear();
    core.on_message(11, n(1), accept(b(1, 1), 3, 3, 0), &mut out);
    assert!(persists(&out).is_empty());
    assert_eq!(
        sent_to(&out, 1),
        vec![PeerMsg::Accepted {
            ballot: b(1, 1),
            slot: Slot(3)
        }]
    );
}

#[test]
fn an_accept_below_the_promise_is_nacked() {
    let mut core = backup_of(2, 5, b(3, 3));
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(2, 1), 1, 1, 0), &mut out);
    assert_eq!(
        out,
        vec![Effect::Send {
            to: n(1),
            msg: PeerMsg::Nack { ballot: b(3, 3) }
        }]
    );
    assert_eq!(core.slot_state(Slot(1)), SlotState::Unknown);
}

#[test]
fn a_slot_far_beyond_the_window_is_dropped() {
    let mut core = backup_of(2, 5, b(1, 1));
    let window = cfg(2, 5).window();
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), window + 1, 1, 0), &mut out);
    assert!(out.is_empty(), "{out:?}");
    core.on_message(10, n(1), accept(b(1, 1), 0, 1, 0), &mut out);
    assert!(out.is_empty(), "slot 0 does not exist: {out:?}");
    core.on_message(10, n(1), accept(b(1, 1), window, 1, 0), &mut out);
    assert_eq!(persists(&out).len(), 1);
}

#[test]
fn the_piggybacked_commit_point_commits_earlier_slots_in_order() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), 2, 2, 0), &mut out);
    core.on_message(10, n(1), accept(b(1, 1), 3, 3, 2), &mut out);
    assert_eq!(
        core.status().commit_slot,
        Slot(0),
        "slot 1 is missing: nothing executes"
    );
    assert!(executed(&out).is_empty());
    core.on_message(11, n(1), accept(b(1, 1), 1, 1, 2), &mut out);
    assert_eq!(core.status().commit_slot, Slot(2));
    let order: Vec<u64> = executed(&out).iter().map(|e| e.command.request.0).collect();
    assert_eq!(order, vec![1, 2]);
    assert_eq!(core.slot_state(Slot(3)), SlotState::Accepted);
}

#[test]
fn a_decided_slot_is_never_overwritten_but_gets_a_vote() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), 1, 1, 1), &mut out);
    assert_eq!(core.status().commit_slot, Slot(1));
    out.clear();
    // A later leader re-proposing the slot (its view merge found the decided value) gets a
    // vote; nothing is written.
    core.on_message(20, n(3), accept(b(2, 3), 1, 1, 0), &mut out);
    assert!(
        persists(&out)
            .iter()
            .all(|r| matches!(r, WalRecord::Promised(_))),
        "{out:?}"
    );
    assert_eq!(
        sent_to(&out, 3),
        vec![PeerMsg::Accepted {
            ballot: b(2, 3),
            slot: Slot(1)
        }]
    );
    let (_, log) = core.log_view(Slot(1), 10);
    assert_eq!((log[0].ballot, log[0].commands[0].request.0), (b(1, 1), 1));
}

#[test]
fn a_slot_compacted_into_a_checkpoint_still_gets_a_vote() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    for slot in 1..=10 {
        core.on_message(10, n(1), accept(b(1, 1), slot, slot, slot), &mut out);
    }
    assert_eq!(core.status().checkpoint_slot, Slot(10));
    out.clear();
    core.on_message(20, n(3), accept(b(2, 3), 4, 4, 0), &mut out);
    assert_eq!(
        sent_to(&out, 3),
        vec![PeerMsg::Accepted {
            ballot: b(2, 3),
            slot: Slot(4)
        }]
    );
}
