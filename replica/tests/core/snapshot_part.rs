//! SNAPSHOT_PART: a checkpoint too large for one message goes in parts, each within
//! `max_message_bytes`; the receiver installs it once it holds them all.

use crate::util::*;
use replica::bank::Bank;
use replica::core::wire::encoded_len;
use replica::core::{Checkpoint, Core, CoreConfig, PeerMsg, Recovered};
use replica::types::Slot;

/// Forty accounts with 64-character names (a 3 KiB bank) and 1 KiB messages.
fn wide_cfg(me: u32) -> CoreConfig {
    CoreConfig {
        accounts: (0..40).map(|i| format!("{i:0>64}").into()).collect(),
        max_message_bytes: 1024,
        ..cfg(me, 5)
    }
}

fn with_checkpoint(me: u32) -> Core {
    let config = wide_cfg(me);
    let checkpoint = Checkpoint {
        slot: Slot(10),
        bank: Bank::new(&config.accounts, config.initial_balance),
        ballot: b(1, 1),
    };
    let recovered = Recovered {
        checkpoint: Some(checkpoint),
        records: vec![],
    };
    Core::new(config, recovered, 1, 0).0
}

fn snapshot_parts(sender: &mut Core, to: u32) -> Vec<PeerMsg> {
    let mut out = Vec::new();
    sender.on_message(
        100,
        n(to),
        PeerMsg::CatchUpRequest { from: Slot(1) },
        &mut out,
    );
    let sent = sent_to(&out, to);
    for msg in &sent {
        assert!(matches!(msg, PeerMsg::SnapshotPart { .. }), "{msg:?}");
        assert!(encoded_len(msg) <= 1024, "{} bytes", encoded_len(msg));
    }
    sent
}

#[test]
fn a_large_checkpoint_goes_in_parts_that_each_fit() {
    let mut sender = with_checkpoint(1);
    let parts = snapshot_parts(&mut sender, 4);
    assert!(parts.len() > 2, "{} parts", parts.len());
}

#[test]
fn the_receiver_installs_it_once_every_part_is_in() {
    let mut sender = with_checkpoint(1);
    let mut parts = snapshot_parts(&mut sender, 4);
    let mut receiver = fresh_with(wide_cfg(4));
    let last = parts.pop().expect("parts");
    let mut out = Vec::new();
    // Out of order and repeated (a retried request resends them all).
    for part in parts.iter().rev().chain(parts.iter()) {
        receiver.on_message(101, n(1), part.clone(), &mut out);
        assert_eq!(receiver.status().executed_slot, Slot(0));
    }
    assert!(checkpoints(&out).is_empty());
    receiver.on_message(102, n(1), last, &mut out);
    assert_eq!(receiver.status().executed_slot, Slot(10));
    assert_eq!(one(checkpoints(&out)).slot, Slot(10));
}

#[test]
fn parts_that_do_not_decode_to_the_announced_checkpoint_are_dropped() {
    let mut receiver = fresh_with(wide_cfg(4));
    let mut out = Vec::new();
    let part = PeerMsg::SnapshotPart {
        slot: Slot(10),
        ballot: b(1, 1),
        part: 0,
        parts: 1,
        bytes: vec![1, 2, 3],
    };
    receiver.on_message(101, n(1), part, &mut out);
    assert_eq!(receiver.status().executed_slot, Slot(0));
    assert!(checkpoints(&out).is_empty());
}
