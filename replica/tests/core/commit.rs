//! COMMIT and HEARTBEAT: backups learn the leader's commit point and keep following it.

use crate::util::*;
use replica::client_proto::{Role, SlotState};
use replica::core::PeerMsg;
use replica::types::Slot;

fn accept(ballot: replica::types::Ballot, slot: u64) -> PeerMsg {
    let value = batch(vec![transfer(1, slot, "A", "B", 1)]);
    PeerMsg::Accept {
        ballot,
        slot: Slot(slot),
        value,
        commit: Slot(0),
    }
}

#[test]
fn a_commit_marks_entries_of_the_leaders_ballot_and_executes_them() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), 1), &mut out);
    core.on_message(10, n(1), accept(b(1, 1), 2), &mut out);
    out.clear();
    core.on_message(
        11,
        n(1),
        PeerMsg::Commit {
            ballot: b(1, 1),
            upto: Slot(2),
        },
        &mut out,
    );
    assert_eq!(core.status().commit_slot, Slot(2));
    assert_eq!(executed(&out).len(), 2);
    assert!(
        sends(&out).is_empty(),
        "nothing missing, nothing to ask for"
    );
}

#[test]
fn an_entry_from_an_older_ballot_is_fetched_not_trusted() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(10, n(1), accept(b(1, 1), 1), &mut out);
    // A new leader took over; its slot 1 may hold another value.
    out.clear();
    core.on_message(
        20,
        n(3),
        PeerMsg::Heartbeat {
            ballot: b(2, 3),
            commit: Slot(1),
        },
        &mut out,
    );
    assert_eq!(core.slot_state(Slot(1)), SlotState::Accepted);
    assert_eq!(
        sent_to(&out, 3),
        vec![
            PeerMsg::HeartbeatAck { ballot: b(2, 3) },
            PeerMsg::CatchUpRequest { from: Slot(1) }
        ]
    );
    // Only one request is outstanding at a time.
    out.clear();
    core.on_message(
        21,
        n(3),
        PeerMsg::Heartbeat {
            ballot: b(2, 3),
            commit: Slot(1),
        },
        &mut out,
    );
    assert_eq!(
        sent_to(&out, 3),
        vec![PeerMsg::HeartbeatAck { ballot: b(2, 3) }]
    );
    // ... and it is repeated once its retry delay passed.
    out.clear();
    core.on_tick(100, &mut out);
    assert_eq!(
        sent_to(&out, 3),
        vec![PeerMsg::CatchUpRequest { from: Slot(1) }]
    );
}

#[test]
fn heartbeats_keep_a_backup_from_campaigning() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    for now in (0..3_000).step_by(10) {
        if now % 30 == 0 {
            core.on_message(
                now,
                n(1),
                PeerMsg::Heartbeat {
                    ballot: b(1, 1),
                    commit: Slot(0),
                },
                &mut out,
            );
        }
        core.on_tick(now, &mut out);
    }
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().ballot, b(1, 1));
    assert!(
        sends(&out)
            .iter()
            .all(|(to, m)| *to == n(1) && matches!(m, PeerMsg::HeartbeatAck { .. })),
        "only heartbeat acks: {:?}",
        sends(&out)
    );
}

#[test]
fn a_heartbeat_from_a_higher_ballot_deposes_a_leader() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    let higher = b(ballot.round + 1, 4);
    core.on_message(
        1_100,
        n(4),
        PeerMsg::Heartbeat {
            ballot: higher,
            commit: Slot(0),
        },
        &mut out,
    );
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().leader, Some(n(4)));
}

#[test]
fn a_stale_leaders_heartbeat_is_nacked() {
    let mut core = backup_of(2, 5, b(2, 3));
    let mut out = Vec::new();
    core.on_message(
        10,
        n(1),
        PeerMsg::Heartbeat {
            ballot: b(1, 1),
            commit: Slot(5),
        },
        &mut out,
    );
    assert_eq!(sent_to(&out, 1), vec![PeerMsg::Nack { ballot: b(2, 3) }]);
    assert_eq!(core.status().leader, Some(n(3)));
}
