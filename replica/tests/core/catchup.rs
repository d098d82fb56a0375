//! CATCH_UP_REQUEST / CATCH_UP_ENTRIES / SNAPSHOT: a lagging replica gets decided state in order.

use crate::util::*;
use replica::client_proto::SlotState;
use replica::core::{Core, Effect, PeerMsg};
use replica::types::{Ballot, Slot};

/// A leader of 3 with `slots` committed slots (one transfer of 1 from A each).
fn leader_with_history(slots: u64) -> (Core, Ballot) {
    let (mut core, ballot) = leader(1, 3);
    for request in 1..=slots {
        let mut out = submit(&mut core, 1_001, request, transfer(1, request, "A", "B", 1));
        let slot = core.status().commit_slot.next();
        core.on_message(1_001, n(2), PeerMsg::Accepted { ballot, slot }, &mut out);
    }
    assert_eq!(core.status().commit_slot, Slot(slots));
    (core, ballot)
}

#[test]
fn committed_entries_are_served_up_to_the_limit() {
    let (mut core, _) = leader_with_history(5);
    let mut out = Vec::new();
    core.on_message(
        1_100,
        n(3),
        PeerMsg::CatchUpRequest { from: Slot(2) },
        &mut out,
    );
    let PeerMsg::CatchUpEntries { commit, entries } = one(sent_to(&out, 3)) else {
        panic!("{out:?}")
    };
    assert_eq!(commit, Slot(5));
    assert_eq!(
        entries.iter().map(|e| e.slot.0).collect::<Vec<_>>(),
        vec![2, 3, 4, 5]
    );
    // Beyond the commit point there is nothing to send.
    out.clear();
    core.on_message(
        1_100,
        n(3),
        PeerMsg::CatchUpRequest { from: Slot(6) },
        &mut out,
    );
    assert!(out.is_empty());
}

#[test]
fn compacted_entries_are_served_as_a_snapshot() {
    let (mut core, _) = leader_with_history(12);
    assert_eq!(core.status().checkpoint_slot, Slot(10));
    let mut out = Vec::new();
    core.on_message(
        1_100,
        n(3),
        PeerMsg::CatchUpRequest { from: Slot(3) },
        &mut out,
    );
    let PeerMsg::Snapshot { checkpoint } = one(sent_to(&out, 3)) else {
        panic!("{out:?}")
    };
    assert_eq!(checkpoint.slot, Slot(10));
    assert_eq!(checkpoint.bank.exec_index(), 10);
}

#[test]
fn a_lagging_backup_catches_up_in_order_and_ends_identical() {
    let (mut leader, ballot) = leader_with_history(25);
    let mut backup = backup_of(3, 3, ballot);
    let mut to_backup = vec![PeerMsg::Heartbeat {
        ballot,
        commit: leader.status().commit_slot,
    }];
    let mut all = Vec::new();
    for _ in 0..10 {
        let mut to_leader = Vec::new();
        for msg in to_backup.drain(..) {
            let mut out = Vec::new();
            backup.on_message(1_200, n(1), msg, &mut out);
            to_leader.extend(sent_to(&out, 1));
            all.extend(out);
        }
        for msg in to_leader {
            let mut out = Vec::new();
            leader.on_message(1_200, n(3), msg, &mut out);
            to_backup.extend(sent_to(&out, 3));
        }
    }
    // Snapshot at 20 (the leader's checkpoint), then entries 21..=25.
    assert_eq!(checkpoints(&all)[0].slot, Slot(20));
    assert!(all.contains(&Effect::ResetJournal {
        next_exec_index: 21
    }));
    let replayed: Vec<u64> = executed(&all).iter().map(|e| e.exec_index).collect();
    assert_eq!(replayed, vec![21, 22, 23, 24, 25]);
    assert_eq!(backup.balances(), leader.balances());
    assert_eq!(backup.status().commit_slot, Slot(25));
    assert_eq!(backup.slot_state(Slot(25)), SlotState::Executed);
}

#[test]
fn a_snapshot_that_is_not_ahead_is_ignored() {
    let (mut core, _) = leader_with_history(12);
    let checkpoint = {
        let mut out = Vec::new();
        core.on_message(
            1_100,
            n(3),
            PeerMsg::CatchUpRequest { from: Slot(1) },
            &mut out,
        );
        let PeerMsg::Snapshot { checkpoint } = one(sent_to(&out, 3)) else {
            panic!()
        };
        checkpoint
    };
    let mut backup = backup_of(2, 3, b(1, 1));
    let mut out = Vec::new();
    backup.on_message(
        1_200,
        n(1),
        PeerMsg::Snapshot {
            checkpoint: checkpoint.clone(),
        },
        &mut out,
    );
    assert_eq!(backup.status().executed_slot, Slot(10));
    out.clear();
    backup.on_message(1_201, n(1), PeerMsg::Snapshot { checkpoint }, &mut out);
    assert!(out.is_empty());
}

#[test]
fn decided_state_from_a_higher_ballot_deposes_a_leader() {
    let (mut core, ballot) = leader(1, 3);
    let value = batch(vec![transfer(5, 1, "A", "B", 1)]);
    let higher = b(ballot.round + 5, 2);
    let mut out = Vec::new();
    let msg = PeerMsg::CatchUpEntries {
        commit: Slot(1),
        entries: vec![entry(1, higher, value)],
    };
    core.on_message(1_100, n(2), msg, &mut out);
    assert!(!core.leads());
    assert_eq!(core.status().ballot, higher);
    assert_eq!(core.status().commit_slot, Slot(1), "installed as a backup");
    // A heartbeat of the old ballot is now refused.
    let mut out = Vec::new();
    let mut backup = backup_of(3, 3, ballot);
    let msg = PeerMsg::Snapshot {
        checkpoint: replica::core::Checkpoint {
            slot: Slot(10),
            bank: replica::bank::Bank::new(&cfg(3, 3).accounts, 10),
            ballot: higher,
        },
    };
    backup.on_message(1_200, n(2), msg, &mut out);
    assert_eq!(backup.status().ballot, higher);
    backup.on_message(
        1_201,
        n(1),
        PeerMsg::Heartbeat {
            ballot,
            commit: Slot(0),
        },
        &mut out,
    );
    assert_eq!(sent_to(&out, 1), vec![PeerMsg::Nack { ballot: higher }]);
}

#[test]
fn a_leader_installs_decided_entries_of_its_own_ballot_and_stops_collecting_votes() {
    let (mut core, ballot) = leader(1, 5);
    let value = batch(vec![transfer(5, 1, "A", "B", 1)]);
    let mut out = submit(&mut core, 1_001, 1, transfer(5, 1, "A", "B", 1));
    let msg = PeerMsg::CatchUpEntries {
        commit: Slot(1),
        entries: vec![entry(1, ballot, value.clone())],
    };
    core.on_message(1_100, n(2), msg, &mut out);
    assert!(core.leads());
    assert_eq!(core.status().commit_slot, Slot(1));
    // Nothing left to retransmit.
    let mut out = Vec::new();
    core.on_tick(1_200, &mut out);
    assert!(!sends(&out)
        .iter()
        .any(|(_, m)| matches!(m, PeerMsg::Accept { .. })));
    // Entries beyond what it proposed cannot be right: dropped.
    let msg = PeerMsg::CatchUpEntries {
        commit: Slot(2),
        entries: vec![entry(2, ballot, value)],
    };
    core.on_message(1_201, n(2), msg, &mut out);
    assert_eq!(core.status().commit_slot, Slot(1));
}

#[test]
fn catch_up_answers_are_cut_to_fit_the_message_budget() {
    use replica::core::wire::{encoded_len, WalRecord};
    use replica::core::{CoreConfig, Recovered};
    let config = CoreConfig {
        accounts: (0..5).map(|i| format!("{i:0>64}").into()).collect(),
        max_message_bytes: 1024,
        checkpoint_interval_slots: 100,
        ..cfg(1, 3)
    };
    let a = config.accounts.clone();
    let mut records = Vec::new();
    for slot in 1..=8u64 {
        let commands = (0..3).map(|i| transfer(1, slot * 10 + i, &a[0], &a[1], 1));
        records.push(WalRecord::Accepted {
            slot: Slot(slot),
            ballot: b(1, 1),
            value: batch(commands.collect()),
        });
    }
    records.push(WalRecord::Committed { upto: Slot(8) });
    let recovered = Recovered {
        checkpoint: None,
        records,
    };
    let (mut core, _) = Core::new(config, recovered, 1, 0);
    assert_eq!(core.status().commit_slot, Slot(8));
    let mut next = 1;
    while next <= 8 {
        let mut out = Vec::new();
        let request = PeerMsg::CatchUpRequest { from: Slot(next) };
        core.on_message(100, n(3), request, &mut out);
        let msg = one(sent_to(&out, 3));
        assert!(encoded_len(&msg) <= 1024, "{} bytes", encoded_len(&msg));
        let PeerMsg::CatchUpEntries { entries, .. } = msg else {
            panic!("{msg:?}")
        };
        assert!(
            !entries.is_empty() && entries.len() < 8,
            "{}",
            entries.len()
        );
        assert_eq!(entries[0].slot, Slot(next));
        next += entries.len() as u64;
    }
}
