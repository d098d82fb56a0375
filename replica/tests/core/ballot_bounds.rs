//! Ballot bounds (issue 21, item 3): one member message with an absurd ballot (round u64::MAX,
//! or a jump of more than `MAX_BALLOT_JUMP_ROUNDS`) is dropped as malformed by every handler
//! that adopts ballots, so it can neither raise the promise nor end elections; a plausible
//! jump is still taken.

use crate::util::*;
use replica::bank::Bank;
use replica::core::{
    Checkpoint, Core, PeerMsg, Recovered, WalRecord, MAX_BALLOT_JUMP_ROUNDS, MAX_BALLOT_ROUND,
};
use replica::types::{Ballot, NodeId, Slot};

fn round(round: u64, node: u32) -> Ballot {
    Ballot {
        round,
        node: NodeId(node),
    }
}

/// Absurd ballots from node `node` for a replica that promised round 0: u64::MAX, just past
/// the ceiling, just past the jump bound.
fn absurd(node: u32) -> Vec<Ballot> {
    absurd_above(0, node)
}

fn absurd_above(promised: u64, node: u32) -> Vec<Ballot> {
    vec![
        round(u64::MAX, node),
        round(MAX_BALLOT_ROUND + 1, node),
        round(promised + MAX_BALLOT_JUMP_ROUNDS + 1, node),
    ]
}

fn deliver(core: &mut Core, from: u32, msg: PeerMsg) {
    let mut out = Vec::new();
    core.on_message(2_000, n(from), msg, &mut out);
}

/// `core` still has its promise `before`, and still elects itself with the next round.
fn still_live(mut core: Core, before: Ballot) {
    assert_eq!(core.status().ballot, before, "an absurd ballot was adopted");
    let (ballot, _) = campaign(&mut core, 60_000);
    assert_eq!(ballot.round, before.round + 1);
}

fn refused_by_a_backup(make: impl Fn(Ballot) -> PeerMsg) {
    for ballot in absurd(1) {
        let mut core = fresh(2, 3);
        deliver(&mut core, 1, make(ballot));
        still_live(core, Ballot::ZERO);
    }
}

#[test]
fn prepare_with_an_absurd_ballot_is_dropped() {
    refused_by_a_backup(|ballot| PeerMsg::Prepare {
        ballot,
        commit: Slot(0),
    });
}

#[test]
fn heartbeat_with_an_absurd_ballot_is_dropped() {
    refused_by_a_backup(|ballot| PeerMsg::Heartbeat {
        ballot,
        commit: Slot(0),
    });
}

#[test]
fn accept_with_an_absurd_ballot_is_dropped() {
    refused_by_a_backup(|ballot| PeerMsg::Accept {
        ballot,
        slot: Slot(1),
        value: batch(vec![]),
        commit: Slot(0),
    });
}

#[test]
fn nack_with_an_absurd_ballot_does_not_depose_a_leader() {
    for ballot in absurd_above(1, 2) {
        let (mut core, mine) = leader(1, 3);
        deliver(&mut core, 2, PeerMsg::Nack { ballot });
        assert!(core.leads());
        assert_eq!(core.status().ballot, mine);
    }
}

#[test]
fn a_prevote_refusal_with_an_absurd_promise_is_dropped() {
    for promised in absurd(2) {
        let mut core = fresh(1, 3);
        let mut out = Vec::new();
        core.on_tick(1_000, &mut out);
        let (_, ballot) = prevotes(&out)[0];
        let reply = PeerMsg::PreVoteReply {
            ballot,
            granted: false,
            promised,
        };
        deliver(&mut core, 2, reply);
        still_live(core, Ballot::ZERO);
    }
}

#[test]
fn a_snapshot_from_an_absurd_ballot_is_not_installed() {
    for ballot in absurd(1) {
        let config = cfg(2, 3);
        let checkpoint = Checkpoint {
            slot: Slot(5),
            bank: Bank::new(&config.accounts, 10),
            ballot,
        };
        let mut core = fresh_with(config);
        deliver(&mut core, 1, PeerMsg::Snapshot { checkpoint });
        assert_eq!(core.status().checkpoint_slot, Slot(0));
        still_live(core, Ballot::ZERO);
    }
}

#[test]
fn a_promise_with_a_checkpoint_from_an_absurd_ballot_is_not_counted() {
    for bad in absurd(2) {
        let config = cfg(1, 3);
        let bank = Bank::new(&config.accounts, 10);
        let mut core = fresh_with(config);
        let (ballot, _) = campaign(&mut core, 1_000);
        let promise = PeerMsg::Promise {
            ballot,
            commit: Slot(5),
            entries: vec![],
            checkpoint: Some(Checkpoint {
                slot: Slot(5),
                bank,
                ballot: bad,
            }),
        };
        deliver(&mut core, 2, promise);
        assert!(!core.leads(), "the promise was counted");
        assert_eq!(core.status().ballot, ballot);
    }
}

#[test]
fn a_plausible_jump_is_still_taken() {
    let mut core = fresh(2, 3);
    let far = round(MAX_BALLOT_JUMP_ROUNDS, 1);
    deliver(
        &mut core,
        1,
        PeerMsg::Prepare {
            ballot: far,
            commit: Slot(0),
        },
    );
    assert_eq!(core.status().ballot, far);
}

#[test]
fn no_election_starts_above_the_ceiling() {
    // A promise at the ceiling can only come from this replica's own (corrupted) disk.
    let recovered = Recovered {
        checkpoint: None,
        records: vec![WalRecord::Promised(round(MAX_BALLOT_ROUND, 1))],
    };
    let (mut core, _) = Core::new(cfg(2, 3), recovered, 7, 0);
    let mut out = Vec::new();
    core.on_tick(60_000, &mut out);
    assert!(
        prevotes(&out).is_empty(),
        "asked for a round past the ceiling"
    );
}
