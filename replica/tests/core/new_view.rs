//! NEW_VIEW: a backup follows the new leader and accepts its merged slots.

use crate::util::*;
use replica::client_proto::SlotState;
use replica::core::{Effect, PeerMsg, Value, WalRecord};
use replica::types::Slot;

fn new_view(
    ballot: replica::types::Ballot,
    commit: u64,
    entries: Vec<replica::core::SlotEntry>,
) -> PeerMsg {
    let next_slot = Slot(entries.last().map_or(commit, |e| e.slot.0) + 1);
    PeerMsg::NewView {
        ballot,
        commit: Slot(commit),
        next_slot,
        entries,
    }
}

#[test]
fn a_backup_accepts_every_merged_slot_and_records_the_view() {
    let mut core = fresh(2, 5);
    let value = batch(vec![transfer(1, 1, "A", "B", 1)]);
    let msg = new_view(
        b(2, 1),
        0,
        vec![
            entry(1, b(2, 1), value.clone()),
            entry(2, b(2, 1), Value::Noop),
        ],
    );
    let mut out = Vec::new();
    core.on_message(50, n(1), msg, &mut out);
    assert_eq!(core.status().leader, Some(n(1)));
    assert_eq!(core.status().ballot, b(2, 1));
    let expected = vec![
        PeerMsg::Accepted {
            ballot: b(2, 1),
            slot: Slot(1),
        },
        PeerMsg::Accepted {
            ballot: b(2, 1),
            slot: Slot(2),
        },
    ];
    assert_eq!(sent_to(&out, 1), expected);
    assert!(persists(&out).contains(&WalRecord::Accepted {
        slot: Slot(1),
        ballot: b(2, 1),
        value
    }));
    assert_eq!(core.views().len(), 1);
    assert_eq!(
        (core.views()[0].leader, core.views()[0].next_slot),
        (n(1), Slot(3))
    );
    assert_eq!(core.slot_state(Slot(2)), SlotState::Accepted);
}

#[test]
fn the_commit_point_in_the_view_commits_and_executes() {
    let mut core = fresh(2, 5);
    let value = batch(vec![transfer(1, 1, "A", "B", 3)]);
    let mut out = Vec::new();
    core.on_message(
        50,
        n(1),
        new_view(b(2, 1), 1, vec![entry(1, b(2, 1), value)]),
        &mut out,
    );
    assert_eq!(core.status().commit_slot, Slot(1));
    assert_eq!(executed(&out).len(), 1);
    assert_eq!(core.balances().1["B"], 13);
}

#[test]
fn a_view_below_the_promise_is_nacked() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(
        5,
        n(3),
        PeerMsg::Prepare {
            ballot: b(5, 3),
            commit: Slot(0),
        },
        &mut out,
    );
    out.clear();
    core.on_message(
        6,
        n(1),
        new_view(b(4, 1), 0, vec![entry(1, b(4, 1), Value::Noop)]),
        &mut out,
    );
    assert_eq!(
        out,
        vec![Effect::Send {
            to: n(1),
            msg: PeerMsg::Nack { ballot: b(5, 3) }
        }]
    );
    assert!(core.views().is_empty());
}

#[test]
fn views_are_recorded_once_per_ballot_and_bounded() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    for round in 1..=1_005u64 {
        let msg = new_view(b(round, 1), 0, vec![]);
        core.on_message(round, n(1), msg.clone(), &mut out);
        core.on_message(round, n(1), msg, &mut out);
        out.clear();
    }
    let views = core.views();
    assert_eq!(views.len(), replica::core::MAX_VIEWS);
    assert_eq!(views.last().unwrap().ballot, b(1_005, 1));
    assert_eq!(views.first().unwrap().ballot, b(6, 1));
}
