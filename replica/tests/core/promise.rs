//! PROMISE: a majority makes the candidate leader; it merges what the promisers accepted.

use crate::util::*;
use replica::bank::Bank;
use replica::client_proto::Role;
use replica::core::{Checkpoint, Effect, PeerMsg, Value, WalRecord};
use replica::types::Slot;

fn new_view_entries(out: &[Effect], to: u32) -> Vec<(u64, Value)> {
    sent_to(out, to)
        .into_iter()
        .filter_map(|m| match m {
            PeerMsg::NewView { entries, .. } => Some(entries),
            _ => None,
        })
        .flatten()
        .map(|e| (e.slot.0, e.value))
        .collect()
}

#[test]
fn a_majority_including_itself_makes_the_candidate_leader() {
    let mut core = fresh(1, 5);
    let (ballot, out) = campaign(&mut core, 1_000);
    assert_eq!(core.status().role, Role::Candidate);
    let prepares = sends(&out)
        .into_iter()
        .filter(|(_, m)| matches!(m, PeerMsg::Prepare { .. }))
        .count();
    assert_eq!(prepares, 4, "prepare to every peer");
    let mut out = Vec::new();
    core.on_message(1_001, n(2), promise(ballot, 0), &mut out);
    core.on_message(1_001, n(2), promise(ballot, 0), &mut out);
    assert_eq!(
        core.status().role,
        Role::Candidate,
        "a repeated promise counts once"
    );
    core.on_message(1_002, n(3), promise(ballot, 0), &mut out);
    assert_eq!(core.status().role, Role::Leader);
    assert_eq!(core.status().leader, Some(n(1)));
    assert_eq!(core.views().len(), 1);
    assert_eq!(core.views()[0].next_slot, Slot(1));
}

#[test]
fn the_merge_takes_the_highest_ballot_per_slot_and_fills_gaps_with_noops() {
    let mut core = fresh(1, 5);
    let (ballot, _) = campaign(&mut core, 1_000);
    let old = batch(vec![transfer(1, 1, "A", "B", 1)]);
    let newer = batch(vec![transfer(2, 1, "B", "C", 2)]);
    let third = batch(vec![transfer(3, 1, "C", "D", 3)]);
    let mut out = Vec::new();
    let p2 = PeerMsg::Promise {
        ballot,
        commit: Slot(0),
        entries: vec![entry(1, b(0, 4), old), entry(3, b(0, 4), third.clone())],
        checkpoint: None,
    };
    let p3 = PeerMsg::Promise {
        ballot,
        commit: Slot(0),
        entries: vec![entry(1, b(0, 5), newer.clone())],
        checkpoint: None,
    };
    core.on_message(1_001, n(2), p2, &mut out);
    core.on_message(1_001, n(3), p3, &mut out);
    assert!(core.leads());
    let expected = vec![(1, newer.clone()), (2, Value::Noop), (3, third)];
    assert_eq!(new_view_entries(&out, 4), expected);
    // The leader votes for the merged slots itself, durably, at its new ballot.
    let accepted: Vec<u64> = persists(&out)
        .into_iter()
        .filter_map(|r| match r {
            WalRecord::Accepted {
                slot, ballot: bb, ..
            } if bb == ballot => Some(slot.0),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, vec![1, 2, 3]);
    assert_eq!(core.views()[0].next_slot, Slot(4));
}

#[test]
fn slots_a_promiser_knows_committed_are_committed_at_once() {
    let mut core = fresh(1, 3);
    let (ballot, _) = campaign(&mut core, 1_000);
    let value = batch(vec![transfer(1, 1, "A", "B", 4)]);
    let p2 = PeerMsg::Promise {
        ballot,
        commit: Slot(1),
        entries: vec![entry(1, b(0, 2), value)],
        checkpoint: None,
    };
    let mut out = Vec::new();
    core.on_message(1_001, n(2), p2, &mut out);
    assert_eq!(core.status().commit_slot, Slot(1));
    assert_eq!(executed(&out).len(), 1);
    assert_eq!(core.balances().1["A"], 6);
}

#[test]
fn the_most_advanced_checkpoint_is_installed_first() {
    let config = cfg(1, 3);
    let mut core = fresh_with(config.clone());
    let (ballot, _) = campaign(&mut core, 1_000);
    let mut bank = Bank::new(&config.accounts, 10);
    bank.execute(&transfer(7, 1, "A", "B", 5), true);
    let checkpoint = Checkpoint {
        slot: Slot(20),
        bank,
        ballot: b(0, 2),
    };
    let after = batch(vec![transfer(7, 2, "A", "B", 1)]);
    let p2 = PeerMsg::Promise {
        ballot,
        commit: Slot(20),
        entries: vec![entry(21, b(0, 2), after)],
        checkpoint: Some(checkpoint.clone()),
    };
    let mut out = Vec::new();
    core.on_message(1_001, n(2), p2, &mut out);
    assert!(core.leads());
    assert_eq!(checkpoints(&out), vec![checkpoint]);
    assert!(out.contains(&Effect::ResetJournal { next_exec_index: 2 }));
    assert_eq!(core.status().executed_slot, Slot(20));
    assert_eq!(
        new_view_entries(&out, 2).len(),
        1,
        "only slot 21 is re-proposed"
    );
    assert_eq!(
        core.slot_state(Slot(21)),
        replica::client_proto::SlotState::Accepted
    );
}

#[test]
fn a_promise_whose_checkpoint_claims_a_higher_ballot_is_malformed() {
    let config = cfg(1, 3);
    let mut core = fresh_with(config.clone());
    let (ballot, _) = campaign(&mut core, 1_000);
    let bank = Bank::new(&config.accounts, 10);
    let checkpoint = Checkpoint {
        slot: Slot(20),
        bank,
        ballot: b(ballot.round + 1, 2),
    };
    let msg = PeerMsg::Promise {
        ballot,
        commit: Slot(20),
        entries: vec![],
        checkpoint: Some(checkpoint),
    };
    let mut out = Vec::new();
    core.on_message(1_001, n(2), msg, &mut out);
    assert_eq!(core.status().role, Role::Candidate);
    assert!(out.is_empty());
}

#[test]
fn a_promise_for_another_ballot_is_ignored() {
    let mut core = fresh(1, 3);
    let (ballot, _) = campaign(&mut core, 1_000);
    let mut out = Vec::new();
    core.on_message(1_001, n(2), promise(b(ballot.round - 1, 1), 0), &mut out);
    assert_eq!(core.status().role, Role::Candidate);
    assert!(out.is_empty());
}
