//! The planted bugs: each wrong behaviour happens with its flag and only with it.

use crate::twopc::shard_cfg;
use crate::util::*;
use replica::bank::{Bank, Decision, OpResult, ShardMsg, TxnId};
use replica::client_proto::{ClientResponse, Role};
use replica::core::{Bugs, Core, CoreConfig, Effect, PeerMsg, Value};
use replica::types::{Ballot, ClientId, RequestId, ShardId, Slot};
use std::collections::BTreeMap;

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
            recovery_aborts: false,
            apply_at_prepare: false,
            keep_locks_on_abort: false,
            stuck_leader: false,
        }
    );
    let _ = Value::Noop;
}

/// What `out` sends to node `to` about two-phase commit.
fn shard_msgs_to(out: &[Effect], to: u32) -> Vec<ShardMsg> {
    sent_to(out, to)
        .into_iter()
        .filter_map(|m| match m {
            PeerMsg::Shard(m) => Some(m),
            _ => None,
        })
        .collect()
}

/// Commits `slot` at `core` (leader at `ballot`) with a vote from `peer`.
fn commit_slot(core: &mut Core, ballot: Ballot, slot: u64, peer: u32, now_ms: u64) -> Vec<Effect> {
    let mut out = Vec::new();
    let accepted = PeerMsg::Accepted {
        ballot,
        slot: Slot(slot),
    };
    core.on_message(now_ms, n(peer), accepted, &mut out);
    core.flush(now_ms, &mut out);
    out
}

fn proposed_in(out: &[Effect], slot: u64) -> Value {
    let value = sends(out).into_iter().find_map(|(_, msg)| match msg {
        PeerMsg::Accept { slot: s, value, .. } if s == Slot(slot) => Some(value),
        _ => None,
    });
    value.expect("a proposal")
}

/// Shard 2 (C, D) as a bank, the participant.
fn participant() -> Bank {
    let accounts = ["C".into(), "D".into()];
    let remote = BTreeMap::from([("A".into(), ShardId(1)), ("B".into(), ShardId(1))]);
    Bank::new_shard(ShardId(2), &accounts, remote, 10)
}

#[test]
fn recovery_aborts_sends_abort_for_a_transaction_decided_commit() {
    let outcome = both(|bug| {
        let cfg = |me| CoreConfig {
            bugs: Bugs {
                recovery_aborts: bug,
                ..Bugs::default()
            },
            ..shard_cfg(me)
        };
        // n1 leads shard 1: A -> C (4) starts, shard 2 votes yes, the commit is chosen.
        let (mut n1, b1) = leader_with(cfg(1));
        let mut s2 = participant();
        let start = submit(&mut n1, 1_001, 7, transfer(1, 1, "A", "C", 4));
        let prepared = commit_slot(&mut n1, b1, 1, 3, 1_002);
        let prepare = shard_msgs_to(&prepared, 4).remove(0);
        let vote = s2.apply_txn(&prepare.entry()).send.remove(0).msg;
        let decide = {
            let mut out = Vec::new();
            n1.on_message(1_003, n(4), PeerMsg::Shard(vote), &mut out);
            n1.flush(1_003, &mut out);
            out
        };
        commit_slot(&mut n1, b1, 2, 3, 1_004);
        // n2 accepted both slots and learned them committed; n1 dies before telling shard 2.
        let mut n2 = fresh_with(cfg(2));
        let mut out = Vec::new();
        for (slot, value) in [(1, proposed_in(&start, 1)), (2, proposed_in(&decide, 2))] {
            let accept = PeerMsg::Accept {
                ballot: b1,
                slot: Slot(slot),
                value,
                commit: Slot(2),
            };
            n2.on_message(1_005, n(1), accept, &mut out);
        }
        assert_eq!(n2.balances().1["A"], 6, "n2 executed the commit");
        let (ballot, _) = campaign(&mut n2, 5_000);
        n2.on_message(5_000, n(3), promise(ballot, 2), &mut out);
        assert!(n2.leads());
        let mut out = Vec::new();
        n2.on_tick(5_010, &mut out);
        // Shard 2 hears what the new leader sends, in order: the money must arrive.
        for msg in shard_msgs_to(&out, 4) {
            s2.apply_txn(&msg.entry());
        }
        let aborts = shard_msgs_to(&out, 4).iter().any(|m| {
            matches!(
                m,
                ShardMsg::Decision {
                    decision: Decision::Abort { .. },
                    ..
                }
            )
        });
        aborts && s2.balance("C") == 10 && n2.balances().1["A"] == 6
    });
    assert_eq!(outcome, (false, true), "with the bug, 4 vanish");
}

#[test]
fn apply_at_prepare_reaches_the_bank_through_the_config() {
    let outcome = both(|bug| {
        let cfg = CoreConfig {
            bugs: Bugs {
                apply_at_prepare: bug,
                ..Bugs::default()
            },
            ..shard_cfg(4)
        };
        let (mut s2, b2) = leader_with(cfg);
        let prepare = ShardMsg::Prepare {
            txn: TxnId {
                coordinator: ShardId(1),
                client: ClientId(1),
                request: RequestId(1),
            },
            from: "A".into(),
            to: "C".into(),
            amount: 4,
        };
        let mut out = Vec::new();
        s2.on_message(1_001, n(1), PeerMsg::Shard(prepare), &mut out);
        s2.flush(1_001, &mut out);
        commit_slot(&mut s2, b2, 1, 5, 1_002);
        // Voted yes, nothing decided: only the bug has moved money already.
        s2.balances().1["C"] == 14
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn stuck_leader_stops_proposing_after_its_budget_but_keeps_heartbeating() {
    use replica::core::config::STUCK_LEADER_SLOTS;
    let outcome = both(|bug| {
        let (mut core, ballot) = leader_with(with_bugs(
            1,
            3,
            Bugs {
                stuck_leader: bug,
                ..Bugs::default()
            },
        ));
        // Every read is proposed, accepted by node 2 and so committed, one after another.
        let mut proposed = 0;
        let mut now = 1_001;
        for request in 1..=STUCK_LEADER_SLOTS + 1 {
            let out = submit(&mut core, now, request, read(1, request, "A"));
            let accepts: Vec<Slot> = sent_to(&out, 2)
                .into_iter()
                .filter_map(|m| match m {
                    PeerMsg::Accept { slot, .. } => Some(slot),
                    _ => None,
                })
                .collect();
            for slot in accepts {
                proposed += 1;
                let mut out = Vec::new();
                core.on_message(now, n(2), PeerMsg::Accepted { ballot, slot }, &mut out);
            }
            now += 1;
        }
        // Still the leader, still heartbeating: no backup would time out.
        let mut out = Vec::new();
        core.on_tick(now + 40, &mut out);
        let heartbeats = sent_to(&out, 2)
            .iter()
            .any(|m| matches!(m, PeerMsg::Heartbeat { .. }));
        assert!(core.leads() && heartbeats);
        proposed == STUCK_LEADER_SLOTS
    });
    assert_eq!(outcome, (false, true));
}
