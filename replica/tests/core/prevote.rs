//! PRE_VOTE and PRE_VOTE_REPLY: a backup asks before it raises a ballot; replicas that still
//! hear a leader refuse, so a replica that merely lost touch cannot depose it.

use crate::util::*;
use replica::client_proto::Role;
use replica::core::{Effect, PeerMsg};
use replica::types::{Ballot, Slot};

fn prevote(ballot: Ballot) -> PeerMsg {
    PeerMsg::PreVote {
        ballot,
        commit: Slot(0),
    }
}

fn answer(out: &[Effect], to: u32) -> (bool, Ballot) {
    match one(sent_to(out, to)) {
        PeerMsg::PreVoteReply {
            granted, promised, ..
        } => (granted, promised),
        other => panic!("not a pre-vote reply: {other:?}"),
    }
}

#[test]
fn an_election_timeout_asks_for_pre_votes_without_raising_the_ballot() {
    let mut core = fresh(3, 5);
    let mut out = Vec::new();
    core.on_tick(1_000, &mut out);
    assert_eq!(core.status().ballot, Ballot::ZERO, "no ballot raised yet");
    assert_eq!(core.status().role, Role::Backup);
    assert!(persists(&out).is_empty(), "nothing to make durable");
    let asked: Vec<_> = prevotes(&out).into_iter().map(|(to, _)| to.0).collect();
    assert_eq!(asked, vec![1, 2, 4, 5]);
    assert!(prevotes(&out).iter().all(|(_, ballot)| *ballot == b(1, 3)));
}

#[test]
fn a_majority_of_grants_starts_the_election() {
    let mut core = fresh(3, 5);
    let mut out = Vec::new();
    core.on_tick(1_000, &mut out);
    let reply = PeerMsg::PreVoteReply {
        ballot: b(1, 3),
        granted: true,
        promised: Ballot::ZERO,
    };
    out.clear();
    core.on_message(1_001, n(1), reply.clone(), &mut out);
    assert_eq!(
        core.status().role,
        Role::Backup,
        "two of five is not enough"
    );
    core.on_message(1_001, n(1), reply.clone(), &mut out);
    assert_eq!(
        core.status().role,
        Role::Backup,
        "a repeated grant counts once"
    );
    core.on_message(1_002, n(5), reply, &mut out);
    assert_eq!(core.status().role, Role::Candidate);
    assert_eq!(core.status().ballot, b(1, 3));
    assert_eq!(persists(&out).len(), 1, "the promise of its own ballot");
}

#[test]
fn refusals_do_not_start_an_election_and_a_higher_promise_is_adopted() {
    let mut core = fresh(3, 5);
    let mut out = Vec::new();
    core.on_tick(1_000, &mut out);
    for peer in [1, 2, 4] {
        let reply = PeerMsg::PreVoteReply {
            ballot: b(1, 3),
            granted: false,
            promised: b(4, 5),
        };
        core.on_message(1_001, n(peer), reply, &mut out);
    }
    assert_eq!(core.status().role, Role::Backup);
    assert_eq!(core.status().ballot, b(4, 5));
    // The next attempt aims above what the others promised.
    let mut out = Vec::new();
    core.on_tick(5_000, &mut out);
    assert!(prevotes(&out).iter().all(|(_, ballot)| *ballot == b(5, 3)));
}

#[test]
fn a_backup_that_hears_its_leader_refuses_and_changes_nothing() {
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(100, n(3), prevote(b(2, 3)), &mut out);
    assert_eq!(answer(&out, 3), (false, b(1, 1)));
    assert!(persists(&out).is_empty());
    assert_eq!(core.status().ballot, b(1, 1));
    assert_eq!(core.status().leader, Some(n(1)));
}

#[test]
fn a_backup_grants_once_its_leader_was_silent_for_the_minimum_election_timeout() {
    // `backup_of` last heard the leader at 10 ms; the minimum election timeout is 150 ms.
    let mut core = backup_of(2, 5, b(1, 1));
    let mut out = Vec::new();
    core.on_message(159, n(3), prevote(b(2, 3)), &mut out);
    assert_eq!(answer(&out, 3), (false, b(1, 1)));
    let mut out = Vec::new();
    core.on_message(160, n(3), prevote(b(2, 3)), &mut out);
    assert_eq!(answer(&out, 3), (true, b(1, 1)));
    assert!(persists(&out).is_empty(), "a grant promises nothing");
    assert_eq!(core.status().ballot, b(1, 1));
}

#[test]
fn a_leader_refuses_pre_votes() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    core.on_message(5_000, n(3), prevote(b(ballot.round + 1, 3)), &mut out);
    assert_eq!(answer(&out, 3), (false, ballot));
    assert!(core.leads());
}

#[test]
fn a_pre_vote_for_a_ballot_not_above_the_promise_is_refused() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(1_000, n(4), prevote(b(3, 4)), &mut out);
    assert_eq!(answer(&out, 4), (true, Ballot::ZERO));
    let mut out = Vec::new();
    core.on_message(
        1_000,
        n(4),
        PeerMsg::Prepare {
            ballot: b(3, 4),
            commit: Slot(0),
        },
        &mut out,
    );
    let mut out = Vec::new();
    core.on_message(1_000, n(3), prevote(b(3, 3)), &mut out);
    assert_eq!(answer(&out, 3), (false, b(3, 4)));
}

#[test]
fn a_pre_vote_in_someone_elses_name_is_ignored() {
    let mut core = fresh(2, 5);
    let mut out = Vec::new();
    core.on_message(1_000, n(4), prevote(b(3, 5)), &mut out);
    assert!(out.is_empty());
}
