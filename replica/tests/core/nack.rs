//! NACK: a leader or candidate that learns of a higher ballot steps down.

use crate::util::*;
use replica::client_proto::Role;
use replica::core::{Effect, PeerMsg, WalRecord};

#[test]
fn a_leader_steps_down_on_a_higher_nack() {
    let (mut core, ballot) = leader(1, 5);
    let higher = b(ballot.round + 3, 2);
    let mut out = Vec::new();
    core.on_message(1_100, n(2), PeerMsg::Nack { ballot: higher }, &mut out);
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().ballot, higher);
    assert_eq!(out, vec![Effect::Persist(WalRecord::Promised(higher))]);
    // Its next campaign starts above the ballot it learned.
    let (next, _) = campaign(&mut core, 5_000);
    assert_eq!(next, b(ballot.round + 4, 1));
}

#[test]
fn a_candidate_gives_up_on_a_higher_nack() {
    let mut core = fresh(1, 5);
    let (ballot, _) = campaign(&mut core, 1_000);
    let mut out = Vec::new();
    core.on_message(
        1_001,
        n(3),
        PeerMsg::Nack {
            ballot: b(ballot.round, 3),
        },
        &mut out,
    );
    assert_eq!(core.status().role, Role::Backup);
}

#[test]
fn a_stale_nack_is_ignored() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    core.on_message(1_100, n(2), PeerMsg::Nack { ballot: b(0, 2) }, &mut out);
    core.on_message(1_100, n(2), PeerMsg::Nack { ballot }, &mut out);
    assert!(out.is_empty());
    assert!(core.leads());
}
