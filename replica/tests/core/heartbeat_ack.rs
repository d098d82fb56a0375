//! HEARTBEAT_ACK and check-quorum: a leader that does not hear a majority follow it for a lease
//! (twice the maximum election timeout) steps down; one that does keeps leading.

use crate::util::*;
use replica::client_proto::Role;
use replica::core::PeerMsg;
use replica::types::Slot;

#[test]
fn a_backup_acknowledges_heartbeats_of_the_leader_it_follows() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    let beat = PeerMsg::Heartbeat {
        ballot: b(1, 1),
        commit: Slot(0),
    };
    core.on_message(50, n(1), beat, &mut out);
    assert_eq!(
        sent_to(&out, 1),
        vec![PeerMsg::HeartbeatAck { ballot: b(1, 1) }]
    );
    // A stale leader gets a NACK, not an acknowledgement.
    let mut out = Vec::new();
    let stale = PeerMsg::Heartbeat {
        ballot: b(0, 3),
        commit: Slot(0),
    };
    core.on_message(60, n(3), stale, &mut out);
    assert_eq!(sent_to(&out, 3), vec![PeerMsg::Nack { ballot: b(1, 1) }]);
}

#[test]
fn a_leader_that_hears_no_majority_for_an_election_timeout_steps_down() {
    // Elected at 1000 ms; the lease is twice the maximum election timeout of 300 ms.
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    for now in (1_000..1_600).step_by(10) {
        // One follower of four still answers: with the leader, two of five.
        core.on_message(now, n(2), PeerMsg::HeartbeatAck { ballot }, &mut out);
        core.on_tick(now, &mut out);
        assert!(core.leads(), "still within the first lease at {now}");
    }
    core.on_tick(1_600, &mut out);
    assert!(!core.leads());
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().leader, None);
    assert_eq!(
        core.status().ballot,
        ballot,
        "stepping down keeps the promise"
    );
}

#[test]
fn a_leader_that_hears_a_majority_keeps_leading() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    for now in (1_000..5_000).step_by(10) {
        let peer = if (now / 10) % 2 == 0 { 2 } else { 3 };
        core.on_message(now, n(peer), PeerMsg::HeartbeatAck { ballot }, &mut out);
        core.on_tick(now, &mut out);
    }
    assert!(core.leads());
}

#[test]
fn accepted_votes_count_as_hearing_a_follower_and_other_ballots_do_not() {
    let (mut core, ballot) = leader(1, 3);
    let mut out = Vec::new();
    for now in (1_000..2_000).step_by(10) {
        core.on_message(
            now,
            n(2),
            PeerMsg::Accepted {
                ballot,
                slot: Slot(1),
            },
            &mut out,
        );
        core.on_tick(now, &mut out);
    }
    assert!(core.leads());
    for now in (2_000..2_700).step_by(10) {
        let other = b(0, 2);
        core.on_message(now, n(2), PeerMsg::HeartbeatAck { ballot: other }, &mut out);
        core.on_tick(now, &mut out);
    }
    assert!(!core.leads());
}
