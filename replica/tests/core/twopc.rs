//! Two-phase commit between shards, the core's side: shard 1 (n1–n3, accounts A and B)
//! coordinates transfers to shard 2 (n4–n6, accounts C and D).

use crate::util::*;
use replica::bank::{AbortReason, Decision, OpResult, ShardMsg, TxnEntry, TxnId, Vote};
use replica::client_proto::ClientResponse;
use replica::core::{Core, CoreConfig, Effect, LockPolicy, PeerMsg, Sharding, Value};
use replica::types::{Ballot, ClientId, RequestId, ShardId, Slot};
use std::collections::BTreeMap;

const VOTE_TIMEOUT_MS: u64 = 500;

pub fn shard_cfg(me: u32) -> CoreConfig {
    let (shard, other, mine, theirs) = if me <= 3 {
        (1, 2, ["A", "B"], ["C", "D"])
    } else {
        (2, 1, ["C", "D"], ["A", "B"])
    };
    let members = |s: u32| (3 * s - 2..=3 * s).map(n).collect::<Vec<_>>();
    CoreConfig {
        me: n(me),
        nodes: members(shard),
        accounts: mine.iter().map(|&a| a.into()).collect(),
        sharding: Some(Sharding {
            shard: ShardId(shard),
            others: BTreeMap::from([(ShardId(other), members(other))]),
            remote: theirs.iter().map(|&a| (a.into(), ShardId(other))).collect(),
            vote_timeout_ms: VOTE_TIMEOUT_MS,
            resend_interval_ms: 100,
            max_inflight_txns: 16,
            lock_policy: LockPolicy::NoWait,
            lock_wait_ms: 250,
        }),
        ..cfg(me, 3)
    }
}

fn txn(request: u64) -> TxnId {
    TxnId {
        coordinator: ShardId(1),
        client: ClientId(1),
        request: RequestId(request),
    }
}

/// The shard messages in `out`, per receiver.
fn shard_sends(out: &[Effect]) -> Vec<(u32, ShardMsg)> {
    sends(out)
        .into_iter()
        .filter_map(|(to, msg)| match msg {
            PeerMsg::Shard(m) => Some((to.0, m)),
            _ => None,
        })
        .collect()
}

/// The value `out` proposes in `slot`.
fn proposed(out: &[Effect], slot: u64) -> Option<Value> {
    sends(out).into_iter().find_map(|(_, msg)| match msg {
        PeerMsg::Accept { slot: s, value, .. } if s == Slot(slot) => Some(value),
        _ => None,
    })
}

/// A second vote for `slot` (a majority of three), committing and executing it.
fn commit(core: &mut Core, ballot: Ballot, slot: u64, peer: u32, now_ms: u64) -> Vec<Effect> {
    let mut out = Vec::new();
    let accepted = PeerMsg::Accepted {
        ballot,
        slot: Slot(slot),
    };
    core.on_message(now_ms, n(peer), accepted, &mut out);
    core.flush(now_ms, &mut out);
    out
}

fn deliver(core: &mut Core, from: u32, msg: ShardMsg, now_ms: u64) -> Vec<Effect> {
    let mut out = Vec::new();
    core.on_message(now_ms, n(from), PeerMsg::Shard(msg), &mut out);
    core.flush(now_ms, &mut out);
    out
}

/// Shard 1's leader with transfer A → C (4) started: returns it, its ballot and the PREPARE.
fn started() -> (Core, Ballot, ShardMsg) {
    let (mut s1, b1) = leader_with(shard_cfg(1));
    let out = submit(&mut s1, 1_001, 7, transfer(1, 1, "A", "C", 4));
    assert!(matches!(proposed(&out, 1), Some(Value::Batch(_))));
    let out = commit(&mut s1, b1, 1, 2, 1_002);
    assert!(replies(&out).is_empty(), "no reply before the decision");
    let prepares = shard_sends(&out);
    let to: Vec<u32> = prepares.iter().map(|(to, _)| *to).collect();
    assert_eq!(to, vec![4, 5, 6], "PREPARE goes to every member of shard 2");
    (s1, b1, prepares[0].1.clone())
}

#[test]
fn a_cross_shard_transfer_commits_through_both_logs() {
    let (mut s1, b1, prepare) = started();
    // Shard 2's leader proposes the PREPARE through its own log, then votes.
    let (mut s2, b2) = leader_with(shard_cfg(4));
    let out = deliver(&mut s2, 2, prepare, 1_003);
    assert!(
        matches!(proposed(&out, 1), Some(Value::Txn(e)) if matches!(e[..], [TxnEntry::Prepare { .. }]))
    );
    let out = commit(&mut s2, b2, 1, 5, 1_004);
    let votes = shard_sends(&out);
    assert_eq!(votes.len(), 3);
    let vote = votes[0].1.clone();
    assert_eq!(
        vote,
        ShardMsg::Vote {
            txn: txn(1),
            vote: Vote::Yes { to_balance: 14 }
        }
    );
    // The coordinator decides through its log and only then answers the client.
    let out = deliver(&mut s1, 4, vote, 1_005);
    assert!(matches!(proposed(&out, 2), Some(Value::Txn(_))));
    let out = commit(&mut s1, b1, 2, 3, 1_006);
    let (token, response) = one(replies(&out));
    assert_eq!(token, 7);
    let ClientResponse::Reply { reply, .. } = response else {
        panic!("{response:?}")
    };
    assert_eq!(
        reply.result,
        OpResult::Transferred {
            from_balance: 6,
            to_balance: 14
        }
    );
    let decision = shard_sends(&out)[0].1.clone();
    // The participant applies the decision through its log and acknowledges.
    deliver(&mut s2, 1, decision, 1_007);
    let out = commit(&mut s2, b2, 2, 6, 1_008);
    assert_eq!(
        executed(&out)[0].result,
        OpResult::Credited { to_balance: 14 }
    );
    let ack = shard_sends(&out)[0].1.clone();
    assert_eq!(ack, ShardMsg::Ack { txn: txn(1) });
    // A vote that comes again after the decision takes no slot; the ACK does, once.
    assert!(proposed(&deliver(&mut s1, 6, votes[0].1.clone(), 1_009), 3).is_none());
    let out = deliver(&mut s1, 5, ack.clone(), 1_009);
    assert!(matches!(proposed(&out, 3), Some(Value::Txn(_))));
    commit(&mut s1, b1, 3, 2, 1_010);
    assert!(proposed(&deliver(&mut s1, 4, ack, 1_011), 4).is_none());
    let mut out = Vec::new();
    s1.on_tick(1_500, &mut out);
    assert!(shard_sends(&out).is_empty(), "nothing left to resend");
    assert_eq!(s1.balances().1["A"], 6);
    assert_eq!(s2.balances().1["C"], 14);
}

#[test]
fn backups_and_strangers_do_not_act_on_shard_messages() {
    let (_, _, prepare) = started();
    let mut backup = fresh_with(shard_cfg(5));
    let mut out = Vec::new();
    backup.on_message(1_003, n(1), PeerMsg::Shard(prepare.clone()), &mut out);
    backup.flush(1_003, &mut out);
    assert!(sends(&out).is_empty(), "a backup drops it: {out:?}");
    let (mut s2, _) = leader_with(shard_cfg(4));
    // From its own shard, and about another pair of shards: dropped.
    assert!(proposed(&deliver(&mut s2, 5, prepare.clone(), 1_003), 1).is_none());
    let foreign = ShardMsg::Prepare {
        txn: TxnId {
            coordinator: ShardId(3),
            ..txn(1)
        },
        from: "A".into(),
        to: "C".into(),
        amount: 1,
    };
    assert!(proposed(&deliver(&mut s2, 1, foreign, 1_003), 1).is_none());
    // From the coordinator shard: proposed.
    assert!(proposed(&deliver(&mut s2, 1, prepare, 1_003), 1).is_some());
}

#[test]
fn a_late_vote_is_aborted_by_the_coordinator_leader() {
    let (mut s1, b1, _) = started();
    let mut out = Vec::new();
    s1.on_tick(1_010, &mut out);
    s1.flush(1_010, &mut out);
    assert!(proposed(&out, 2).is_none(), "not yet late");
    let late = 1_010 + VOTE_TIMEOUT_MS;
    let mut out = Vec::new();
    s1.on_tick(late, &mut out);
    s1.flush(late, &mut out);
    let Some(Value::Txn(entries)) = proposed(&out, 2) else {
        panic!("no abort proposed: {out:?}")
    };
    let abort = Decision::Abort {
        reason: AbortReason::Timeout,
    };
    assert_eq!(
        entries,
        vec![TxnEntry::Decide {
            txn: txn(1),
            decision: abort
        }]
    );
    let out = commit(&mut s1, b1, 2, 2, late + 1);
    let (_, response) = one(replies(&out));
    assert!(
        matches!(&response, ClientResponse::Reply { reply, .. } if reply.result == OpResult::Aborted { reason: AbortReason::Timeout }),
        "{response:?}"
    );
    assert_eq!(s1.balances().1["A"], 10);
}

#[test]
fn the_leader_resends_unfinished_work_on_tick() {
    let (mut s1, _, prepare) = started();
    let mut out = Vec::new();
    s1.on_tick(1_200, &mut out);
    let resent: Vec<ShardMsg> = shard_sends(&out).into_iter().map(|(_, m)| m).collect();
    assert_eq!(resent, vec![prepare.clone(); 3]);
    // Not again within the resend interval.
    let mut out = Vec::new();
    s1.on_tick(1_210, &mut out);
    assert!(shard_sends(&out).is_empty());
}

#[test]
fn a_retry_during_the_transaction_is_not_started_twice() {
    let (mut s1, b1, _) = started();
    let out = submit(&mut s1, 1_003, 8, transfer(1, 1, "A", "C", 4));
    // The copy takes a slot and executes as "in progress": no second PREPARE, no reply.
    assert!(proposed(&out, 2).is_some());
    let out = commit(&mut s1, b1, 2, 2, 1_004);
    assert!(shard_sends(&out).is_empty(), "no second PREPARE");
    assert!(replies(&out).is_empty());
    assert_eq!(s1.balances().1["A"], 10);
}

#[test]
fn a_new_leader_finishes_what_its_predecessor_started() {
    let (mut s1, b1) = leader_with(shard_cfg(1));
    let out = submit(&mut s1, 1_001, 7, transfer(1, 1, "A", "C", 4));
    let value = proposed(&out, 1).unwrap();
    // n2 accepts and learns the start as a backup: it executes it but sends nothing.
    let mut n2 = fresh_with(shard_cfg(2));
    let mut out = Vec::new();
    let accept = PeerMsg::Accept {
        ballot: b1,
        slot: Slot(1),
        value,
        commit: Slot(0),
    };
    n2.on_message(1_002, n(1), accept, &mut out);
    let commit_point = PeerMsg::Commit {
        ballot: b1,
        upto: Slot(1),
    };
    n2.on_message(1_003, n(1), commit_point, &mut out);
    n2.flush(1_003, &mut out);
    assert_eq!(n2.status().executed_slot, Slot(1));
    assert!(shard_sends(&out).is_empty(), "a backup sends nothing");
    // n1 dies; n2 is elected and resends the PREPARE from its own state.
    let (ballot, _) = campaign(&mut n2, 5_000);
    let mut out = Vec::new();
    n2.on_message(5_000, n(3), promise(ballot, 1), &mut out);
    assert!(n2.leads());
    n2.on_tick(5_010, &mut out);
    let prepares = shard_sends(&out);
    assert_eq!(prepares.len(), 3, "{out:?}");
    assert!(matches!(prepares[0].1, ShardMsg::Prepare { txn: t, .. } if t == txn(1)));
}

/// Node `me` of a bank of `shards` shards of three nodes (n1–n3 shard 1, n4–n6 shard 2, ...),
/// two accounts each (A, B on shard 1, C, D on shard 2, E, F on shard 3).
fn shards_cfg(me: u32, shards: u32) -> CoreConfig {
    let shard_of = |node: u32| (node - 1) / 3 + 1;
    let members = |s: u32| (3 * s - 2..=3 * s).map(n).collect::<Vec<_>>();
    let accounts = |s: u32| {
        let first = b'A' + 2 * (s as u8 - 1);
        [first, first + 1].map(|c| (c as char).to_string().into())
    };
    let mine = shard_of(me);
    let others = (1..=shards).filter(|s| *s != mine);
    CoreConfig {
        sharding: Some(Sharding {
            shard: ShardId(mine),
            others: others.clone().map(|s| (ShardId(s), members(s))).collect(),
            remote: others
                .flat_map(|s| accounts(s).map(|a| (a, ShardId(s))))
                .collect(),
            vote_timeout_ms: VOTE_TIMEOUT_MS,
            resend_interval_ms: 100,
            max_inflight_txns: 16,
            lock_policy: LockPolicy::NoWait,
            lock_wait_ms: 250,
        }),
        nodes: members(mine),
        accounts: accounts(mine).to_vec(),
        ..cfg(me, 3)
    }
}

/// The messages `out` sends to node `to`'s shard, one copy (every member gets the same).
fn to_member(out: &[Effect], to: u32) -> Vec<ShardMsg> {
    let sent = shard_sends(out).into_iter().filter(|(t, _)| *t == to);
    sent.map(|(_, m)| m).collect()
}

/// A snapshot coordinated by shard 1 across `shards` shards, every step through the cores'
/// logs; returns the client's answer.
fn snapshot_through_cores(shards: u32) -> OpResult {
    let (mut s1, b1) = leader_with(shards_cfg(1, shards));
    let mut others: Vec<(u32, Core, Ballot)> = (2..=shards)
        .map(|s| {
            let leader = 3 * s - 2;
            let (core, ballot) = leader_with(shards_cfg(leader, shards));
            (leader, core, ballot)
        })
        .collect();
    submit(&mut s1, 1_001, 7, read_all(1, 1));
    let out = commit(&mut s1, b1, 1, 2, 1_002);
    assert!(replies(&out).is_empty(), "no answer before the decision");
    let part = one(executed(&out));
    assert_eq!(part.exec_index, 1, "the coordinator's part is in its log");
    // A transfer on shard 1 while the snapshot holds its shared locks fails at once.
    submit(&mut s1, 1_003, 8, transfer(2, 1, "B", "A", 1));
    let locked = commit(&mut s1, b1, 2, 2, 1_003);
    let (_, response) = one(replies(&locked));
    assert!(
        matches!(&response, ClientResponse::Reply { reply, .. } if matches!(reply.result, OpResult::LockConflict { .. })),
        "{response:?}"
    );
    let mut slot1 = 2;
    let mut answer = None;
    for (leader, core, ballot) in &mut others {
        let prepare = one(to_member(&out, *leader));
        assert!(matches!(prepare, ShardMsg::SnapshotPrepare { .. }));
        let proposed_out = deliver(core, 1, prepare, 1_004);
        assert!(matches!(proposed(&proposed_out, 1), Some(Value::Txn(_))));
        let voted = commit(core, *ballot, 1, *leader + 1, 1_005);
        assert_eq!(
            one(executed(&voted)).exec_index,
            1,
            "the participant's part"
        );
        let vote = one(to_member(&voted, 1));
        slot1 += 1;
        deliver(&mut s1, *leader, vote, 1_006);
        let decided = commit(&mut s1, b1, slot1, 2, 1_007);
        if let Some((token, response)) = replies(&decided).into_iter().next() {
            assert_eq!(token, 7);
            assert!(answer.is_none(), "answered once, at the last vote");
            answer = Some((response, decided));
        }
    }
    let (response, decided) = answer.expect("answered at the last vote");
    // The decision reaches every participant; each releases and acknowledges.
    for (leader, core, ballot) in &mut others {
        let decision = one(to_member(&decided, *leader));
        deliver(core, 1, decision, 1_008);
        let acked = commit(core, *ballot, 2, *leader + 1, 1_009);
        let ack = one(to_member(&acked, 1));
        assert!(matches!(ack, ShardMsg::SnapshotAck { .. }));
        slot1 += 1;
        deliver(&mut s1, *leader, ack, 1_010);
        commit(&mut s1, b1, slot1, 2, 1_011);
    }
    let mut out = Vec::new();
    s1.on_tick(1_500, &mut out);
    assert!(shard_sends(&out).is_empty(), "nothing left to resend");
    let after = submit(&mut s1, 1_501, 9, transfer(2, 2, "B", "A", 1));
    assert!(proposed(&after, slot1 + 1).is_some());
    let out = commit(&mut s1, b1, slot1 + 1, 2, 1_502);
    let (_, response_after) = one(replies(&out));
    assert!(
        matches!(&response_after, ClientResponse::Reply { reply, .. } if matches!(reply.result, OpResult::Transferred { .. })),
        "the shared locks are released: {response_after:?}"
    );
    let ClientResponse::Reply { reply, .. } = response else {
        panic!("{response:?}")
    };
    assert_eq!(
        reply.exec_index, 1,
        "answered at the coordinator part's position"
    );
    reply.result
}

#[test]
fn a_snapshot_across_two_shards_runs_through_both_logs() {
    let OpResult::Snapshot {
        balances,
        positions,
    } = snapshot_through_cores(2)
    else {
        panic!("not a snapshot")
    };
    let names: Vec<&str> = balances.keys().map(|a| a.as_str()).collect();
    assert_eq!(names, ["A", "B", "C", "D"]);
    assert_eq!(balances.values().sum::<i64>(), 40);
    assert_eq!(
        positions,
        BTreeMap::from([(ShardId(1), 1), (ShardId(2), 1)])
    );
}

#[test]
fn a_snapshot_across_three_shards_waits_for_every_part() {
    let OpResult::Snapshot {
        balances,
        positions,
    } = snapshot_through_cores(3)
    else {
        panic!("not a snapshot")
    };
    assert_eq!(balances.len(), 6);
    assert_eq!(balances.values().sum::<i64>(), 60);
    assert_eq!(positions.len(), 3);
}

#[test]
fn a_snapshot_vote_naming_another_shard_is_dropped() {
    let (mut s1, b1) = leader_with(shards_cfg(1, 3));
    submit(&mut s1, 1_001, 7, read_all(1, 1));
    commit(&mut s1, b1, 1, 2, 1_002);
    let (mut s2, b2) = leader_with(shards_cfg(4, 3));
    let prepare = ShardMsg::SnapshotPrepare {
        txn: TxnId {
            coordinator: ShardId(1),
            ..txn(1)
        },
    };
    deliver(&mut s2, 1, prepare, 1_003);
    let vote = one(to_member(&commit(&mut s2, b2, 1, 5, 1_004), 1));
    // Shard 2's yes, sent by a member of shard 3: it would count for shard 3.
    assert!(proposed(&deliver(&mut s1, 7, vote.clone(), 1_005), 2).is_none());
    assert!(proposed(&deliver(&mut s1, 4, vote, 1_005), 2).is_some());
}

#[test]
fn a_new_leader_finishes_its_predecessors_snapshot_and_times_it_out() {
    let (mut s1, b1) = leader_with(shard_cfg(1));
    let out = submit(&mut s1, 1_001, 7, read_all(1, 1));
    let value = proposed(&out, 1).unwrap();
    // n2 learns the snapshot's start as a backup; n1 dies before any PREPARE arrives.
    let mut n2 = fresh_with(shard_cfg(2));
    let mut out = Vec::new();
    let accept = PeerMsg::Accept {
        ballot: b1,
        slot: Slot(1),
        value,
        commit: Slot(1),
    };
    n2.on_message(1_002, n(1), accept, &mut out);
    assert_eq!(one(executed(&out)).exec_index, 1, "n2 holds the part too");
    let (ballot, _) = campaign(&mut n2, 5_000);
    n2.on_message(5_000, n(3), promise(ballot, 1), &mut out);
    assert!(n2.leads());
    let mut out = Vec::new();
    n2.on_tick(5_010, &mut out);
    let resent: Vec<ShardMsg> = shard_sends(&out).into_iter().map(|(_, m)| m).collect();
    let prepare = ShardMsg::SnapshotPrepare { txn: txn(1) };
    assert_eq!(
        resent,
        vec![prepare; 3],
        "the PREPARE, to every member of shard 2"
    );
    // No vote comes: the new leader aborts it after the timeout, through its log.
    let late = 5_010 + VOTE_TIMEOUT_MS;
    let mut out = Vec::new();
    n2.on_tick(late, &mut out);
    n2.flush(late, &mut out);
    let abort = Decision::Abort {
        reason: AbortReason::Timeout,
    };
    let decide = TxnEntry::Decide {
        txn: txn(1),
        decision: abort,
    };
    let proposed_abort = sends(&out).into_iter().any(|(_, m)| {
        matches!(m, PeerMsg::Accept { value: Value::Txn(entries), .. } if entries == vec![decide.clone()])
    });
    assert!(proposed_abort, "{out:?}");
}

// --- The wait-die lock policy (`core::locks`): waits held at the leader, per handler. ---

/// [`shard_cfg`] under the wait-die lock policy.
fn wait_die_cfg(me: u32) -> CoreConfig {
    let mut cfg = shard_cfg(me);
    if let Some(s) = cfg.sharding.as_mut() {
        s.lock_policy = LockPolicy::WaitDie;
    }
    cfg
}

const LOCK_WAIT_MS: u64 = 250;

/// Shard 1's leader under wait-die with transfer A → C (4) started (A locked).
fn started_wait_die() -> (Core, Ballot, ShardMsg) {
    let (mut s1, b1) = leader_with(wait_die_cfg(1));
    submit(&mut s1, 1_001, 7, transfer(1, 1, "A", "C", 4));
    let out = commit(&mut s1, b1, 1, 2, 1_002);
    (s1, b1, shard_sends(&out)[0].1.clone())
}

fn the_reply(out: &[Effect]) -> OpResult {
    match one(replies(out)).1 {
        ClientResponse::Reply { reply, .. } => reply.result,
        other => panic!("{other:?}"),
    }
}

#[test]
fn on_client_a_transfer_on_a_locked_account_waits_and_runs_once_the_lock_is_gone() {
    let (mut s1, b1, _) = started_wait_die();
    let out = submit(&mut s1, 1_003, 8, transfer(2, 1, "A", "B", 1));
    assert!(proposed(&out, 2).is_none(), "held back behind A's lock");
    assert!(replies(&out).is_empty(), "and not answered");
    // The participant votes yes; the decision unlocks A, and the transfer is proposed next.
    let vote = ShardMsg::Vote {
        txn: txn(1),
        vote: Vote::Yes { to_balance: 14 },
    };
    deliver(&mut s1, 4, vote, 1_010);
    let out = commit(&mut s1, b1, 2, 2, 1_011);
    assert!(
        matches!(proposed(&out, 3), Some(Value::Batch(b)) if b.len() == 1),
        "released at the flush after the decision: {out:?}"
    );
    let out = commit(&mut s1, b1, 3, 2, 1_012);
    assert_eq!(
        the_reply(&out),
        OpResult::Transferred {
            from_balance: 5,
            to_balance: 11
        }
    );
}

#[test]
fn on_client_under_no_wait_the_same_transfer_fails_at_once() {
    let (mut s1, b1, _) = started();
    let out = submit(&mut s1, 1_003, 8, transfer(2, 1, "A", "B", 1));
    assert!(proposed(&out, 2).is_some(), "proposed at once");
    let out = commit(&mut s1, b1, 2, 2, 1_004);
    assert!(matches!(the_reply(&out), OpResult::LockConflict { .. }));
}

#[test]
fn on_tick_a_wait_that_runs_out_is_proposed_and_fails_lock_conflict_definitely() {
    let (mut s1, b1, _) = started_wait_die();
    submit(&mut s1, 1_003, 8, transfer(2, 1, "B", "A", 1));
    // A retry of the waiting command waits with it (no slot, no second wait).
    let out = submit(&mut s1, 1_100, 9, transfer(2, 1, "B", "A", 1));
    assert!(proposed(&out, 2).is_none());
    let mut out = Vec::new();
    s1.on_tick(1_003 + LOCK_WAIT_MS - 1, &mut out);
    s1.flush(1_003 + LOCK_WAIT_MS - 1, &mut out);
    assert!(proposed(&out, 2).is_none(), "not yet due");
    let due = 1_003 + LOCK_WAIT_MS;
    let mut out = Vec::new();
    s1.on_tick(due, &mut out);
    s1.flush(due, &mut out);
    assert!(proposed(&out, 2).is_some(), "due: proposed all the same");
    let out = commit(&mut s1, b1, 2, 2, due + 1);
    // Both streams of the request get the same definite failure, with its exec index.
    let answers = replies(&out);
    assert_eq!(answers.len(), 2, "{answers:?}");
    for (_, response) in answers {
        assert!(
            matches!(&response, ClientResponse::Reply { reply, .. } if reply.result == OpResult::LockConflict { account: "A".into() } && reply.exec_index == 2),
            "{response:?}"
        );
    }
    assert_eq!(s1.balances().1["B"], 10, "it changed nothing");
}

#[test]
fn on_message_forward_a_forwarded_command_waits_at_the_leader_too() {
    let (mut s1, _, _) = started_wait_die();
    let mut out = Vec::new();
    let forward = PeerMsg::Forward {
        command: transfer(2, 1, "A", "B", 1),
    };
    s1.on_message(1_003, n(2), forward, &mut out);
    s1.flush(1_003, &mut out);
    assert!(proposed(&out, 2).is_none(), "held back: {out:?}");
    let mut out = Vec::new();
    s1.on_tick(1_003 + LOCK_WAIT_MS, &mut out);
    s1.flush(1_003 + LOCK_WAIT_MS, &mut out);
    assert!(proposed(&out, 2).is_some());
}

/// Shard 2's leader under wait-die with its own transfer C → A started by client 2's
/// request 5 (C locked by the transaction `(2, 2, 5)`).
fn participant_with_c_locked() -> (Core, Ballot) {
    let (mut s2, b2) = leader_with(wait_die_cfg(4));
    submit(&mut s2, 1_001, 7, transfer(2, 5, "C", "A", 1));
    commit(&mut s2, b2, 1, 5, 1_002);
    (s2, b2)
}

fn prepare_to_c(request: u64) -> ShardMsg {
    ShardMsg::Prepare {
        txn: txn(request),
        from: "A".into(),
        to: "C".into(),
        amount: 4,
    }
}

#[test]
fn on_message_shard_an_older_prepare_waits_and_a_younger_one_dies_at_once() {
    let (mut s2, b2) = participant_with_c_locked();
    // Request 9 (of another client) is younger than the holder (request 5): it dies, voting
    // no through the log.
    let younger = TxnId {
        client: ClientId(3),
        ..txn(9)
    };
    let prepare = ShardMsg::Prepare {
        txn: younger,
        from: "B".into(),
        to: "C".into(),
        amount: 4,
    };
    let out = deliver(&mut s2, 1, prepare, 1_003);
    assert!(
        proposed(&out, 2).is_some(),
        "the younger one is proposed at once"
    );
    let out = commit(&mut s2, b2, 2, 5, 1_004);
    let vote = to_member(&out, 1);
    assert_eq!(
        vote,
        vec![ShardMsg::Vote {
            txn: younger,
            vote: Vote::No {
                reason: AbortReason::LockConflict
            }
        }]
    );
    // Request 1 is older: it waits, and its resends take no slot either.
    assert!(proposed(&deliver(&mut s2, 1, prepare_to_c(1), 1_005), 3).is_none());
    assert!(proposed(&deliver(&mut s2, 2, prepare_to_c(1), 1_050), 3).is_none());
    // Its wait runs out with C still locked: proposed all the same, it votes no.
    let mut out = Vec::new();
    s2.on_tick(1_005 + LOCK_WAIT_MS - 1, &mut out);
    s2.flush(1_005 + LOCK_WAIT_MS - 1, &mut out);
    assert!(proposed(&out, 3).is_none(), "not yet due");
    let due = 1_005 + LOCK_WAIT_MS;
    let mut out = Vec::new();
    s2.on_tick(due, &mut out);
    s2.flush(due, &mut out);
    assert!(
        matches!(proposed(&out, 3), Some(Value::Txn(e)) if matches!(e[..], [TxnEntry::Prepare { txn: t, .. }] if t == txn(1))),
        "{out:?}"
    );
    let out = commit(&mut s2, b2, 3, 5, due + 1);
    assert_eq!(
        to_member(&out, 1),
        vec![ShardMsg::Vote {
            txn: txn(1),
            vote: Vote::No {
                reason: AbortReason::LockConflict
            }
        }]
    );
}

#[test]
fn on_message_shard_a_prepare_released_by_its_lock_votes_yes_before_its_deadline() {
    let (mut s2, b2) = participant_with_c_locked();
    assert!(proposed(&deliver(&mut s2, 1, prepare_to_c(1), 1_003), 2).is_none());
    // Shard 1 votes no on shard 2's transaction: its abort frees C within the wait.
    let no = ShardMsg::Vote {
        txn: TxnId {
            coordinator: ShardId(2),
            client: ClientId(2),
            request: RequestId(5),
        },
        vote: Vote::No {
            reason: AbortReason::LockConflict,
        },
    };
    deliver(&mut s2, 1, no, 1_010);
    let out = commit(&mut s2, b2, 2, 5, 1_011);
    assert!(
        matches!(proposed(&out, 3), Some(Value::Txn(e)) if matches!(e[..], [TxnEntry::Prepare { .. }])),
        "released by the abort, not the clock: {out:?}"
    );
    let out = commit(&mut s2, b2, 3, 5, 1_012);
    assert_eq!(
        to_member(&out, 1),
        vec![ShardMsg::Vote {
            txn: txn(1),
            vote: Vote::Yes { to_balance: 14 }
        }]
    );
}
