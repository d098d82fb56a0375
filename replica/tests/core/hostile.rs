//! Extreme values from the network (issue 8, item 5): a peer message carrying u64::MAX in a
//! slot, a commit point or a ballot round must be dropped or handled, never panic a debug
//! build through an overflow.

use crate::util::*;
use replica::core::{Core, PeerMsg, SlotEntry};
use replica::types::{Ballot, NodeId, Slot};

const MAX: Slot = Slot(u64::MAX);

fn top_ballot(node: u32) -> Ballot {
    Ballot {
        round: u64::MAX,
        node: NodeId(node),
    }
}

fn hostile_messages(ballot: Ballot) -> Vec<PeerMsg> {
    let far = SlotEntry {
        slot: MAX,
        ballot,
        value: batch(vec![transfer(1, 1, "A", "B", 1)]),
    };
    vec![
        PeerMsg::Prepare {
            ballot,
            commit: MAX,
        },
        PeerMsg::Accept {
            ballot,
            slot: MAX,
            value: batch(vec![]),
            commit: MAX,
        },
        PeerMsg::Commit { ballot, upto: MAX },
        PeerMsg::Heartbeat {
            ballot,
            commit: MAX,
        },
        PeerMsg::NewView {
            ballot,
            commit: MAX,
            next_slot: MAX,
            entries: vec![far.clone()],
        },
        PeerMsg::CatchUpRequest { from: MAX },
        PeerMsg::CatchUpRequest { from: Slot(0) },
        PeerMsg::CatchUpEntries {
            commit: MAX,
            entries: vec![far],
        },
        PeerMsg::Accepted { ballot, slot: MAX },
    ]
}

fn feed(core: &mut Core, from: u32, msgs: Vec<PeerMsg>) {
    for (i, msg) in msgs.into_iter().enumerate() {
        let mut out = Vec::new();
        core.on_message(2_000 + i as u64, n(from), msg, &mut out);
        core.flush(2_000 + i as u64, &mut out);
        core.on_tick(2_000 + i as u64, &mut out);
    }
}

#[test]
fn a_backup_survives_maximal_slots_and_commit_points() {
    let mut core = fresh(2, 3);
    feed(&mut core, 1, hostile_messages(b(3, 1)));
    feed(&mut core, 1, hostile_messages(top_ballot(1)));
}

#[test]
fn a_leader_survives_maximal_slots_and_commit_points() {
    let (mut core, ballot) = leader(1, 3);
    feed(&mut core, 2, hostile_messages(ballot));
    let (mut core, _) = leader(1, 3);
    feed(&mut core, 2, hostile_messages(top_ballot(2)));
}

#[test]
fn a_promise_with_maximal_values_does_not_panic_the_candidate() {
    let mut core = fresh(1, 3);
    let (ballot, _) = campaign(&mut core, 1_000);
    let promise = PeerMsg::Promise {
        ballot,
        commit: MAX,
        entries: vec![SlotEntry {
            slot: MAX,
            ballot,
            value: batch(vec![]),
        }],
        checkpoint: None,
    };
    feed(&mut core, 2, vec![promise]);
}
