//! The planted bugs: each wrong behaviour happens with its flag and only with it.

use crate::util::*;
use replica::bank::OpResult;
use replica::client_proto::{ClientResponse, Role};
use replica::core::{Bugs, CoreConfig, PeerMsg, Value};
use replica::types::Slot;

fn with_bugs(me: u32, nodes: u32, bugs: Bugs) -> CoreConfig {
    CoreConfig {
        bugs,
        ..cfg(me, nodes)
    }
}

fn both(f: impl Fn(bool) -> bool) -> (bool, bool) {
    (f(false), f(true))
}

#[test]
fn no_dedup_executes_a_request_committed_twice_twice() {
    let outcome = both(|bug| {
        let mut core = fresh_with(with_bugs(
            2,
            5,
            Bugs {
                no_dedup: bug,
                ..Bugs::default()
            },
        ));
        let value = batch(vec![transfer(1, 1, "A", "B", 3)]);
        let mut out = Vec::new();
        for slot in 1..=2 {
            let msg = PeerMsg::Accept {
                ballot: b(1, 1),
                slot: Slot(slot),
                value: value.clone(),
                commit: Slot(2),
            };
            core.on_message(10, n(1), msg, &mut out);
        }
        core.balances().1["A"] == 4
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn early_commit_commits_on_the_leaders_vote_alone() {
    let outcome = both(|bug| {
        let (mut core, _) = leader_with(with_bugs(
            1,
            5,
            Bugs {
                early_commit: bug,
                ..Bugs::default()
            },
        ));
        let out = submit(&mut core, 1_001, 1, transfer(1, 1, "A", "B", 1));
        !replies(&out).is_empty()
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn no_view_merge_overwrites_accepted_values_with_noops() {
    let outcome = both(|bug| {
        let mut core = fresh_with(with_bugs(
            1,
            3,
            Bugs {
                no_view_merge: bug,
                ..Bugs::default()
            },
        ));
        let (ballot, _) = campaign(&mut core, 1_000);
        let value = batch(vec![transfer(1, 1, "A", "B", 1)]);
        let msg = PeerMsg::Promise {
            ballot,
            commit: Slot(0),
            entries: vec![entry(1, b(0, 2), value)],
            checkpoint: None,
        };
        let mut out = Vec::new();
        core.on_message(1_001, n(2), msg, &mut out);
        let (_, log) = core.log_view(Slot(1), 10);
        log[0].noop
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn local_reads_answers_at_once_from_a_backup() {
    let outcome = both(|bug| {
        let mut core = fresh_with(with_bugs(
            2,
            5,
            Bugs {
                local_reads: bug,
                ..Bugs::default()
            },
        ));
        let mut out = Vec::new();
        core.on_message(
            10,
            n(1),
            PeerMsg::Heartbeat {
                ballot: b(1, 1),
                commit: Slot(0),
            },
            &mut out,
        );
        let out = submit(&mut core, 20, 1, read(1, 1, "A"));
        matches!(
            replies(&out).as_slice(),
            [(1, ClientResponse::Reply { .. })]
        )
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn no_funds_check_lets_a_transfer_overdraw() {
    let outcome = both(|bug| {
        let mut core = fresh_with(with_bugs(
            2,
            5,
            Bugs {
                no_funds_check: bug,
                ..Bugs::default()
            },
        ));
        let value = batch(vec![transfer(1, 1, "A", "B", 15)]);
        let mut out = Vec::new();
        let msg = PeerMsg::Accept {
            ballot: b(1, 1),
            slot: Slot(1),
            value,
            commit: Slot(1),
        };
        core.on_message(10, n(1), msg, &mut out);
        matches!(
            executed(&out)[0].result,
            OpResult::Transferred {
                from_balance: -5,
                ..
            }
        )
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn stale_leader_ignores_a_higher_ballot_and_reads_locally() {
    let outcome = both(|bug| {
        let (mut core, ballot) = leader_with(with_bugs(
            1,
            5,
            Bugs {
                stale_leader: bug,
                ..Bugs::default()
            },
        ));
        let mut out = Vec::new();
        let higher = b(ballot.round + 1, 2);
        core.on_message(
            1_100,
            n(2),
            PeerMsg::Prepare {
                ballot: higher,
                commit: Slot(0),
            },
            &mut out,
        );
        core.on_message(1_100, n(3), PeerMsg::Nack { ballot: higher }, &mut out);
        let still_leading = core.status().role == Role::Leader;
        let out = submit(&mut core, 1_101, 1, read(1, 1, "A"));
        let answered_locally = matches!(
            replies(&out).as_slice(),
            [(1, ClientResponse::Reply { .. })]
        );
        assert_eq!(still_leading, answered_locally);
        still_leading
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn no_bug_is_on_by_default() {
    assert_eq!(
        Bugs::default(),
        Bugs {
            no_dedup: false,
            early_commit: false,
            no_view_merge: false,
            local_reads: false,
            no_funds_check: false,
            stale_leader: false,
        }
    );
    let _ = Value::Noop;
}
