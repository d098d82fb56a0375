//! NACK: a leader or candidate that learns of a higher ballot steps down, unless it is a
//! healthy leader and the NACK comes from a replica that was not following it (then it
//! prepares again above that ballot).

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

#[test]
fn a_healthy_leader_nacked_by_a_rejoining_replica_prepares_again_above_it_and_keeps_leading() {
    // n2 and n3 promised at 1000 ms: a fresh majority with the leader. n5 comes back from a
    // restart holding a promise from an old duel, above the leader's ballot.
    let (mut core, ballot) = leader(1, 5);
    let leftover = b(ballot.round + 3, 5);
    let mut out = Vec::new();
    core.on_message(1_100, n(5), PeerMsg::Nack { ballot: leftover }, &mut out);
    let next = b(ballot.round + 4, 1);
    assert_eq!(core.status().role, Role::Candidate);
    assert_eq!(core.status().ballot, next);
    assert_eq!(
        persists(&out),
        vec![WalRecord::Promised(leftover), WalRecord::Promised(next)]
    );
    for peer in [2, 3, 4, 5] {
        assert!(sent_to(&out, peer).contains(&PeerMsg::Prepare {
            ballot: next,
            commit: replica::types::Slot(0)
        }));
    }
    core.on_message(1_101, n(2), promise(next, 0), &mut out);
    core.on_message(1_101, n(5), promise(next, 0), &mut out);
    assert!(core.leads(), "the same replica leads, one round trip later");
}

#[test]
fn a_leader_without_fresh_acknowledgements_steps_down_on_an_outsiders_nack() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    // The promises of 1000 ms are older than the minimum election timeout (150 ms).
    let higher = b(ballot.round + 3, 5);
    core.on_message(1_200, n(5), PeerMsg::Nack { ballot: higher }, &mut out);
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().ballot, higher);
}
