//! PROMISE_PART: a promise too large for one message goes in parts, each within
//! `max_message_bytes`, and the candidate counts it once it holds them all.

use crate::util::*;
use replica::core::wire::encoded_len;
use replica::core::{Core, CoreConfig, Effect, PeerMsg};
use replica::types::Slot;

/// Five accounts with 64-character names, 1 KiB messages, batches of 8.
pub fn big_cfg(me: u32) -> CoreConfig {
    CoreConfig {
        accounts: (0..5).map(|i| format!("{i:0>64}").into()).collect(),
        max_message_bytes: 1024,
        ..cfg(me, 5)
    }
}

/// A batch of 4 transfers between the long-named accounts (~600 bytes encoded).
pub fn big_batch(config: &CoreConfig, first_request: u64) -> replica::core::Value {
    let a = &config.accounts;
    batch(
        (0..4)
            .map(|i| transfer(9, first_request + i, &a[0], &a[1], 1))
            .collect(),
    )
}

/// A backup of n1 at ballot 1.n1 that accepted slots 1..=10, each a big batch.
fn loaded_backup(me: u32) -> Core {
    let config = big_cfg(me);
    let values: Vec<_> = (1..=10).map(|s| big_batch(&config, s * 10)).collect();
    let mut core = fresh_with(config);
    let mut out = Vec::new();
    for (i, value) in values.into_iter().enumerate() {
        let accept = PeerMsg::Accept {
            ballot: b(1, 1),
            slot: Slot(i as u64 + 1),
            value,
            commit: Slot(0),
        };
        core.on_message(10, n(1), accept, &mut out);
    }
    core
}

fn all_fit(out: &[Effect], max: usize) {
    for (to, msg) in sends(out) {
        let len = encoded_len(&msg);
        assert!(len <= max, "{} to {to} is {len} bytes", msg.kind());
    }
}

#[test]
fn a_long_promise_is_cut_into_parts_that_each_fit() {
    let mut core = loaded_backup(2);
    let mut out = Vec::new();
    let prepare = PeerMsg::Prepare {
        ballot: b(1, 3),
        commit: Slot(0),
    };
    core.on_message(1_000, n(3), prepare, &mut out);
    all_fit(&out, 1024);
    let parts: Vec<_> = sent_to(&out, 3)
        .into_iter()
        .map(|m| match m {
            PeerMsg::PromisePart {
                part,
                parts,
                entries,
                ..
            } => (part, parts, entries.len()),
            other => panic!("expected parts, got {other:?}"),
        })
        .collect();
    assert!(parts.len() > 1, "{parts:?}");
    assert_eq!(parts.iter().map(|p| p.2).sum::<usize>(), 10, "every entry");
    for (i, (part, count, _)) in parts.iter().enumerate() {
        assert_eq!((*part as usize, *count as usize), (i, parts.len()));
    }
}

#[test]
fn the_candidate_counts_a_promise_in_parts_only_when_complete() {
    let mut promiser = loaded_backup(2);
    let mut candidate = fresh_with(big_cfg(3));
    let (ballot, _) = campaign(&mut candidate, 1_000);
    let mut out = Vec::new();
    let prepare = PeerMsg::Prepare {
        ballot,
        commit: Slot(0),
    };
    promiser.on_message(1_001, n(3), prepare, &mut out);
    let mut parts = sent_to(&out, 3);
    assert!(parts.len() > 2);
    parts.reverse();
    let last = parts.pop().expect("several parts");
    let mut out = Vec::new();
    candidate.on_message(1_002, n(4), promise(ballot, 0), &mut out);
    for part in parts.iter().chain(parts.iter()) {
        candidate.on_message(1_003, n(2), part.clone(), &mut out);
        assert!(
            !candidate.leads(),
            "a promise with a part missing does not count"
        );
    }
    candidate.on_message(1_004, n(2), last, &mut out);
    assert!(candidate.leads());
    // The view carries all ten promised slots, cut to fit as well.
    let mut slots: Vec<u64> = sent_to(&out, 4)
        .into_iter()
        .filter_map(|m| match m {
            PeerMsg::NewView { entries, .. } => Some(entries),
            _ => None,
        })
        .flatten()
        .map(|e| e.slot.0)
        .collect();
    slots.dedup();
    assert_eq!(slots, (1..=10).collect::<Vec<_>>());
    all_fit(&out, 1024);
}

#[test]
fn parts_for_another_ballot_or_with_a_bad_count_are_ignored() {
    let mut candidate = fresh_with(big_cfg(3));
    let (ballot, _) = campaign(&mut candidate, 1_000);
    let mut out = Vec::new();
    candidate.on_message(1_001, n(4), promise(ballot, 0), &mut out);
    let part = |ballot, part, parts| PeerMsg::PromisePart {
        ballot,
        commit: Slot(0),
        part,
        parts,
        entries: vec![],
        checkpoint_bytes: vec![],
    };
    candidate.on_message(1_002, n(2), part(b(9, 9), 0, 1), &mut out);
    candidate.on_message(1_002, n(2), part(ballot, 0, 0), &mut out);
    candidate.on_message(1_002, n(2), part(ballot, 5, 2), &mut out);
    candidate.on_message(1_002, n(2), part(ballot, 0, u32::MAX), &mut out);
    assert!(!candidate.leads());
    candidate.on_message(1_003, n(2), part(ballot, 0, 1), &mut out);
    assert!(candidate.leads(), "a one-part promise is a promise");
}
