//! Restart: `Core::new` rebuilds the acceptor and the bank from a checkpoint plus WAL records.

use crate::util::*;
use replica::client_proto::{Role, SlotState};
use replica::core::{Core, Effect, PeerMsg, Recovered, WalRecord};
use replica::types::Slot;

/// Applies a burst's effects to a simulated disk the way the shell does.
fn persist(disk: &mut Recovered, out: &[Effect]) {
    for effect in out {
        match effect {
            Effect::Persist(record) => disk.records.push(record.clone()),
            Effect::Checkpoint(checkpoint) => disk.checkpoint = Some((**checkpoint).clone()),
            _ => {}
        }
    }
}

#[test]
fn a_backup_restarts_with_its_promise_its_votes_and_its_executed_state() {
    let mut disk = Recovered::default();
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    for slot in 1..=3 {
        let value = batch(vec![transfer(1, slot, "A", "B", 2)]);
        core.on_message(
            10,
            n(1),
            PeerMsg::Accept {
                ballot: b(1, 1),
                slot: Slot(slot),
                value,
                commit: Slot(2),
            },
            &mut out,
        );
    }
    core.on_message(
        20,
        n(4),
        PeerMsg::Prepare {
            ballot: b(2, 4),
            commit: Slot(0),
        },
        &mut out,
    );
    persist(&mut disk, &out);
    let before = (core.status(), core.balances());

    let (restarted, effects) = Core::new(cfg(2, 5), disk, 1, 5_000);
    let executed: Vec<u64> = executed(&effects).iter().map(|e| e.exec_index).collect();
    assert_eq!(executed, vec![1, 2], "committed entries are executed again");
    assert_eq!(restarted.status().ballot, before.0.ballot);
    assert_eq!(restarted.status().commit_slot, Slot(2));
    assert_eq!(restarted.balances(), before.1);
    assert_eq!(restarted.slot_state(Slot(3)), SlotState::Accepted);
    assert_eq!(restarted.status().role, Role::Backup);
    assert_eq!(restarted.status().leader, None);
}

#[test]
fn a_restarted_leader_never_reuses_its_ballot() {
    let mut disk = Recovered::default();
    let mut core = fresh(1, 3);
    let (ballot, out) = campaign(&mut core, 1_000);
    persist(&mut disk, &out);
    let mut out = Vec::new();
    core.on_message(1_001, n(2), promise(ballot, 0), &mut out);
    persist(&mut disk, &out);
    assert!(core.leads());
    let (mut restarted, _) = Core::new(cfg(1, 3), disk, 3, 0);
    let (next, _) = campaign(&mut restarted, 1_000);
    assert!(next > ballot, "{next} after {ballot}");
}

/// A leader of three that committed slots 1..=14 (a checkpoint at 10) and accepted slot 15,
/// with everything it wrote to disk.
fn fourteen_committed_and_one_accepted() -> (Core, Recovered) {
    let (mut core, ballot) = leader(1, 3);
    let mut disk = Recovered::default();
    for request in 1..=14 {
        let mut out = submit(&mut core, 1_001, request, transfer(request, 1, "A", "B", 1));
        let slot = core.status().commit_slot.next();
        core.on_message(1_001, n(2), PeerMsg::Accepted { ballot, slot }, &mut out);
        persist(&mut disk, &out);
    }
    // One more, accepted but not committed.
    let out = submit(&mut core, 1_001, 99, transfer(99, 1, "C", "D", 1));
    persist(&mut disk, &out);
    (core, disk)
}

#[test]
fn durable_records_and_the_checkpoint_rebuild_the_same_core() {
    let (core, disk) = fourteen_committed_and_one_accepted();
    let compacted = Recovered {
        checkpoint: disk.checkpoint.clone(),
        records: core.durable_records(),
    };
    assert!(compacted.records.len() < disk.records.len());
    assert!(compacted.records.iter().all(|r| match r {
        WalRecord::Accepted { slot, .. } => *slot > Slot(10),
        _ => true,
    }));
    let (from_full, full_effects) = Core::new(cfg(1, 3), disk, 1, 0);
    let (from_compacted, compacted_effects) = Core::new(cfg(1, 3), compacted, 1, 0);
    assert_eq!(full_effects, compacted_effects);
    assert_eq!(
        executed(&full_effects).len(),
        4,
        "slots 11..=14 re-executed above the checkpoint"
    );
    for rebuilt in [&from_full, &from_compacted] {
        assert_eq!(rebuilt.balances(), core.balances());
        assert_eq!(rebuilt.status().commit_slot, Slot(14));
        assert_eq!(rebuilt.status().checkpoint_slot, Slot(10));
        assert_eq!(rebuilt.slot_state(Slot(15)), SlotState::Accepted);
        assert_eq!(rebuilt.durable_records(), core.durable_records());
    }
}

#[test]
fn garbage_records_do_not_panic() {
    let records = vec![
        WalRecord::Committed { upto: Slot(50) },
        WalRecord::Accepted {
            slot: Slot(0),
            ballot: b(1, 1),
            value: replica::core::Value::Noop,
        },
        WalRecord::Accepted {
            slot: Slot(3),
            ballot: b(1, 1),
            value: replica::core::Value::Noop,
        },
    ];
    let (core, effects) = Core::new(
        cfg(1, 3),
        Recovered {
            checkpoint: None,
            records,
        },
        1,
        0,
    );
    assert!(effects.is_empty());
    assert_eq!(
        core.status().commit_slot,
        Slot(0),
        "slot 1 is missing: nothing is committed"
    );
}

/// A restart hands the WAL's records to recovery still encoded, and skips the values of slots
/// the checkpoint covers: that must rebuild exactly the core that decoding every record does,
/// for every record shape (a promise, values below and above the checkpoint, a commit mark).
#[test]
fn replaying_encoded_records_rebuilds_the_same_core_as_decoded_ones() {
    let (_, mut disk) = fourteen_committed_and_one_accepted();
    disk.records.push(WalRecord::Promised(b(7, 3)));
    let checkpoint = disk.checkpoint.clone().expect("a checkpoint at slot 10");
    assert!(
        disk.records
            .iter()
            .any(|r| matches!(r, WalRecord::Accepted { slot, .. } if *slot <= Slot(10)))
            && disk
                .records
                .iter()
                .any(|r| matches!(r, WalRecord::Committed { .. })),
        "the disk holds every shape the skip must handle"
    );

    let mut decoded = Core::recover(cfg(1, 3), Some(checkpoint.clone()), 1, 0);
    let mut encoded = Core::recover(cfg(1, 3), Some(checkpoint), 1, 0);
    for record in &disk.records {
        decoded.replay(record.clone());
        let bytes = postcard::to_allocvec(record).expect("encodes");
        encoded.replay_encoded(&bytes).expect("decodes");
    }
    let (from_decoded, decoded_effects) = decoded.finish();
    let (from_encoded, encoded_effects) = encoded.finish();
    assert_eq!(encoded_effects, decoded_effects);
    assert_eq!(from_encoded.status(), from_decoded.status());
    assert_eq!(from_encoded.balances(), from_decoded.balances());
    assert_eq!(
        from_encoded.durable_records(),
        from_decoded.durable_records()
    );
    assert_eq!(
        from_encoded.status().ballot,
        b(7, 3),
        "a promise below the checkpoint's values still counts"
    );
}

#[test]
fn an_encoded_record_that_is_not_a_record_is_an_error_not_a_panic() {
    let mut recovery = Core::recover(cfg(1, 3), None, 1, 0);
    assert!(recovery.replay_encoded(&[0xff, 0xff, 0xff]).is_err());
    assert!(recovery.replay_encoded(&[]).is_err());
}
