//! Snapshots between banks exchanging entries by hand: shard 1 (A, B), shard 2 (C, D) and,
//! where three are needed, shard 3 (E, F).

use super::*;
use crate::bank::{TxnEntry, TxnLimits};
use crate::types::{ClientId, RequestId};

const S1: ShardId = ShardId(1);
const S2: ShardId = ShardId(2);
const S3: ShardId = ShardId(3);

/// Shard `id` of a bank of `shards` shards, two accounts each at 10.
fn shard(id: ShardId, shards: u32) -> Bank {
    let names = |s: u32| {
        let first = b'A' + 2 * (s as u8 - 1);
        [first, first + 1].map(|c| Account::from((c as char).to_string()))
    };
    let remote = (1..=shards)
        .filter(|s| ShardId(*s) != id)
        .flat_map(|s| names(s).map(|a| (a, ShardId(s))))
        .collect();
    Bank::new_shard(id, &names(id.0), remote, 10)
}

fn read_all(client: u64, request: u64) -> Command {
    Command {
        client: ClientId(client),
        request: RequestId(request),
        op: Op::ReadAll,
    }
}

fn snapshot_txn(coordinator: ShardId, client: u64, request: u64) -> TxnId {
    TxnId {
        coordinator,
        client: ClientId(client),
        request: RequestId(request),
    }
}

/// Starts a snapshot at `coord`: its part and the PREPAREs it sends.
fn start(coord: &mut Bank, command: &Command) -> (Executed, Vec<Outbound>) {
    match coord.execute_step(command, true) {
        Step::SnapshotStarted { executed, send, .. } => (executed, send),
        other => panic!("not started: {other:?}"),
    }
}

/// What a command executed as, when it finished at once.
fn result_of(step: Step) -> OpResult {
    match step {
        Step::Done(Outcome::Executed(e)) => e.result,
        other => panic!("not executed at once: {other:?}"),
    }
}

fn deliver(to: &mut Bank, msg: &ShardMsg) -> TxnStep {
    to.apply_txn(&msg.entry())
}

fn only_msg(step: &TxnStep) -> ShardMsg {
    assert_eq!(step.send.len(), 1, "{step:?}");
    step.send[0].msg.clone()
}

fn answer(step: &TxnStep) -> OpResult {
    step.answer.clone().expect("an answer").reply.result
}

fn no_locks(bank: &Bank) -> bool {
    bank.locks().is_empty() && bank.shared_locks().is_empty()
}

#[test]
fn a_snapshot_across_two_shards_answers_every_balance_with_each_shards_position() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    // Something executed on shard 2 first, so the positions differ.
    s2.execute_step(&Command::transfer(5, 1, "C", "D", 3), true);
    let (part, send) = start(&mut s1, &read_all(1, 1));
    assert_eq!(
        part.exec_index, 1,
        "the coordinator's part takes an exec index"
    );
    assert_eq!(
        part.result,
        OpResult::Balances {
            balances: s1.balances().clone()
        }
    );
    assert_eq!(s1.shared_locks().len(), 1);
    assert_eq!(
        s1.cached_reply(ClientId(1), RequestId(1)),
        None,
        "no answer yet"
    );
    assert_eq!(send.len(), 1);
    assert_eq!(send[0].shard, S2);
    let voted = deliver(&mut s2, &send[0].msg);
    assert_eq!(voted.executed.as_ref().map(|e| e.exec_index), Some(2));
    assert_eq!(s2.shared_locks().len(), 1);
    let decided = deliver(&mut s1, &only_msg(&voted));
    let expected = OpResult::Snapshot {
        balances: [("A", 10), ("B", 10), ("C", 7), ("D", 13)]
            .map(|(a, b)| (Account::from(a), b))
            .into(),
        positions: BTreeMap::from([(S1, 1), (S2, 2)]),
    };
    assert_eq!(answer(&decided), expected);
    assert!(
        decided.executed.is_none(),
        "the decision takes no exec index"
    );
    assert_eq!(decided.answer.as_ref().map(|a| a.reply.exec_index), Some(1));
    assert_eq!(
        s1.cached_reply(ClientId(1), RequestId(1))
            .map(|r| &r.result),
        Some(&expected)
    );
    assert!(no_locks(&s1));
    let acked = deliver(&mut s2, &only_msg(&decided));
    assert!(no_locks(&s2));
    assert_eq!(s1.txns_in_flight(), 1, "kept until acknowledged");
    deliver(&mut s1, &only_msg(&acked));
    assert_eq!(s1.txns_in_flight() + s2.txns_in_flight(), 0);
    assert!(s1.unfinished().is_empty() && s2.unfinished().is_empty());
    assert_eq!((s1.exec_index(), s2.exec_index()), (1, 2));
}

#[test]
fn a_snapshot_across_three_shards_commits_on_the_last_yes_and_forgets_on_the_last_ack() {
    let mut banks = [shard(S1, 3), shard(S2, 3), shard(S3, 3)];
    let (_, send) = start(&mut banks[0], &read_all(1, 1));
    let to: Vec<ShardId> = send.iter().map(|o| o.shard).collect();
    assert_eq!(to, vec![S2, S3]);
    let vote2 = only_msg(&deliver(&mut banks[1], &send[0].msg));
    let vote3 = only_msg(&deliver(&mut banks[2], &send[1].msg));
    assert_eq!(deliver(&mut banks[0], &vote2), TxnStep::default());
    assert_eq!(banks[0].coordinated(&snapshot_txn(S1, 1, 1)), Some(None));
    assert_eq!(
        banks[0].unfinished().len(),
        1,
        "only the shard that has not voted is asked again"
    );
    let decided = deliver(&mut banks[0], &vote3);
    let OpResult::Snapshot {
        balances,
        positions,
    } = answer(&decided)
    else {
        panic!("{decided:?}")
    };
    assert_eq!(balances.len(), 6);
    assert_eq!(balances.values().sum::<Amount>(), 60);
    assert_eq!(positions, BTreeMap::from([(S1, 1), (S2, 1), (S3, 1)]));
    assert_eq!(decided.send.len(), 2);
    let ack2 = only_msg(&deliver(&mut banks[1], &decided.send[0].msg));
    deliver(&mut banks[0], &ack2);
    assert_eq!(banks[0].txns_in_flight(), 1, "shard 3 has not acknowledged");
    deliver(&mut banks[0], &ack2);
    assert_eq!(banks[0].txns_in_flight(), 1, "one shard's ack counts once");
    let ack3 = only_msg(&deliver(&mut banks[2], &decided.send[1].msg));
    deliver(&mut banks[0], &ack3);
    assert!(banks.iter().all(|b| b.txns_in_flight() == 0 && no_locks(b)));
}

#[test]
fn an_exclusive_lock_fails_or_aborts_a_snapshot() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    // A transfer A → C holds A on shard 1 and C on shard 2.
    let prepare = match s1.execute_step(&Command::transfer(1, 1, "A", "C", 2), true) {
        Step::Started { send, .. } => send.msg,
        other => panic!("{other:?}"),
    };
    deliver(&mut s2, &prepare);
    let at_once = result_of(s1.execute_step(&read_all(2, 1), true));
    assert_eq!(
        at_once,
        OpResult::LockConflict {
            account: "A".into()
        }
    );
    assert!(s1.shared_locks().is_empty());
    // Coordinated by shard 2 instead: shard 1's part finds A locked and votes no.
    let mut s2_first = shard(S2, 2);
    let (_, send) = start(&mut s2_first, &read_all(3, 1));
    let vote = only_msg(&deliver(&mut s1, &send[0].msg));
    assert!(matches!(
        vote,
        ShardMsg::SnapshotVote {
            vote: SnapshotVote::No {
                reason: AbortReason::LockConflict
            },
            ..
        }
    ));
    assert_eq!(s1.shared_locks().len(), 0, "a no takes no lock");
    let decided = deliver(&mut s2_first, &vote);
    assert_eq!(
        answer(&decided),
        OpResult::Aborted {
            reason: AbortReason::LockConflict
        }
    );
    assert!(no_locks(&s2_first));
}

#[test]
fn a_shared_lock_fails_transfers_but_not_reads_or_other_snapshots() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let (_, send) = start(&mut s1, &read_all(1, 1));
    let locked = |account: &str| OpResult::LockConflict {
        account: account.into(),
    };
    // A local transfer and a cross-shard start on the coordinator.
    let local = s1.execute_step(&Command::transfer(2, 1, "B", "A", 1), true);
    assert_eq!(result_of(local), locked("B"));
    let cross = s1.execute_step(&Command::transfer(3, 1, "A", "C", 1), true);
    assert_eq!(result_of(cross), locked("A"));
    // A participant holding its part votes no on a transfer's PREPARE.
    deliver(&mut s2, &send[0].msg);
    let prepare = ShardMsg::Prepare {
        txn: snapshot_txn(S1, 4, 1),
        from: "A".into(),
        to: "C".into(),
        amount: 1,
    };
    let vote = only_msg(&deliver(&mut s2, &prepare));
    assert_eq!(
        vote,
        ShardMsg::Vote {
            txn: snapshot_txn(S1, 4, 1),
            vote: crate::bank::Vote::No {
                reason: AbortReason::LockConflict
            }
        }
    );
    assert!(s2.locks().is_empty());
    // Reads of one account go on; so does a second snapshot.
    let read = Command {
        client: ClientId(5),
        request: RequestId(1),
        op: Op::Read {
            account: "C".into(),
        },
    };
    assert_eq!(
        result_of(s2.execute_step(&read, true)),
        OpResult::Balance { balance: 10 }
    );
    let (_, again) = start(&mut s2, &read_all(6, 1));
    assert_eq!(s2.shared_locks().len(), 2);
    let vote = only_msg(&deliver(&mut s1, &again[0].msg));
    assert!(matches!(
        vote,
        ShardMsg::SnapshotVote {
            vote: SnapshotVote::Yes { .. },
            ..
        }
    ));
    assert_eq!(s1.balances().values().sum::<Amount>(), 20, "nothing moved");
}

#[test]
fn an_abort_releases_every_shared_lock_and_transfers_go_on() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let (_, send) = start(&mut s1, &read_all(1, 1));
    let vote = only_msg(&deliver(&mut s2, &send[0].msg));
    // The vote is late: the coordinator's leader times the snapshot out first.
    assert_eq!(s1.preparing(), vec![snapshot_txn(S1, 1, 1)]);
    let timeout = TxnEntry::Decide {
        txn: snapshot_txn(S1, 1, 1),
        decision: Decision::Abort {
            reason: AbortReason::Timeout,
        },
    };
    let decided = s1.apply_txn(&timeout);
    assert_eq!(
        answer(&decided),
        OpResult::Aborted {
            reason: AbortReason::Timeout
        }
    );
    assert!(no_locks(&s1));
    assert_eq!(
        deliver(&mut s1, &vote),
        TxnStep::default(),
        "decided already"
    );
    assert!(s2.shared_locks().len() == 1, "until the decision arrives");
    deliver(&mut s2, &only_msg(&decided));
    assert!(no_locks(&s2));
    let cross = s1.execute_step(&Command::transfer(2, 1, "A", "C", 1), true);
    assert!(matches!(cross, Step::Started { .. }), "{cross:?}");
}

#[test]
fn only_the_first_decision_counts_and_a_repeated_one_only_acks_again() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let (_, send) = start(&mut s1, &read_all(1, 1));
    let vote = only_msg(&deliver(&mut s2, &send[0].msg));
    let decided = deliver(&mut s1, &vote);
    let reply = s1.cached_reply(ClientId(1), RequestId(1)).cloned();
    assert!(matches!(
        reply.as_ref().map(|r| &r.result),
        Some(OpResult::Snapshot { .. })
    ));
    // A timeout abort proposed before the commit was seen, chosen after it.
    let late_abort = TxnEntry::Decide {
        txn: snapshot_txn(S1, 1, 1),
        decision: Decision::Abort {
            reason: AbortReason::Timeout,
        },
    };
    assert_eq!(s1.apply_txn(&late_abort), TxnStep::default());
    assert_eq!(s1.cached_reply(ClientId(1), RequestId(1)).cloned(), reply);
    assert_eq!(
        s1.coordinated(&snapshot_txn(S1, 1, 1)),
        Some(Some(Decision::SnapshotCommit))
    );
    let decision = only_msg(&decided);
    let first = deliver(&mut s2, &decision);
    let again = deliver(&mut s2, &decision);
    assert_eq!(first, again, "the same ack, nothing else");
    assert!(no_locks(&s2));
    assert_eq!(s2.exec_index(), 1);
}

#[test]
fn a_late_prepare_votes_no_and_locks_nothing() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let (_, send) = start(&mut s1, &read_all(1, 1));
    let prepare = send[0].msg.clone();
    let vote = only_msg(&deliver(&mut s2, &prepare));
    assert_eq!(
        only_msg(&deliver(&mut s2, &prepare)),
        vote,
        "same vote again"
    );
    assert_eq!(s2.exec_index(), 1, "one part, however often asked");
    let decided = deliver(&mut s1, &vote);
    deliver(&mut s2, &only_msg(&decided));
    // A copy delayed in the network arrives after the decision.
    let late = deliver(&mut s2, &prepare);
    assert!(late.executed.is_none());
    assert_eq!(
        only_msg(&late),
        ShardMsg::SnapshotVote {
            txn: snapshot_txn(S1, 1, 1),
            shard: S2,
            vote: SnapshotVote::No {
                reason: AbortReason::AlreadyFinished
            }
        }
    );
    assert!(no_locks(&s2));
    assert_eq!(s2.txns_in_flight(), 0);
}

#[test]
fn a_retried_read_all_runs_one_snapshot_and_gets_its_answer() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let cmd = read_all(1, 7);
    let (_, send) = start(&mut s1, &cmd);
    assert_eq!(
        s1.execute_step(&cmd, true),
        Step::InProgress(snapshot_txn(S1, 1, 7))
    );
    let vote = only_msg(&deliver(&mut s2, &send[0].msg));
    let decided = deliver(&mut s1, &vote);
    let reply = decided.answer.clone().unwrap().reply;
    assert_eq!(
        s1.execute_step(&cmd, true),
        Step::Done(Outcome::Duplicate(reply))
    );
    assert_eq!(s1.exec_index(), 1);
}

#[test]
fn snapshots_count_in_the_bound_on_transactions_in_flight() {
    let limits = TxnLimits {
        max_inflight: 1,
        ..TxnLimits::default()
    };
    let mut s1 = shard(S1, 2).with_txn_limits(limits);
    let mut s2 = shard(S2, 2).with_txn_limits(limits);
    let (_, send) = start(&mut s1, &read_all(1, 1));
    assert_eq!(
        result_of(s1.execute_step(&read_all(2, 1), true)),
        OpResult::Busy
    );
    start(&mut s2, &read_all(3, 1));
    let vote = only_msg(&deliver(&mut s2, &send[0].msg));
    assert!(matches!(
        vote,
        ShardMsg::SnapshotVote {
            vote: SnapshotVote::No {
                reason: AbortReason::Busy
            },
            ..
        }
    ));
}

#[test]
fn a_checkpoint_carries_snapshots_for_a_new_leader_to_finish() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let (_, send) = start(&mut s1, &read_all(1, 1));
    deliver(&mut s2, &send[0].msg);
    let round_trip = |bank: &Bank| -> Bank {
        let bytes = postcard::to_allocvec(bank).unwrap();
        postcard::from_bytes(&bytes).unwrap()
    };
    let (mut s1, mut s2) = (round_trip(&s1), round_trip(&s2));
    // Both sides list what they need resent: the PREPARE, and the yes vote.
    let resend1 = s1.unfinished();
    assert_eq!(resend1.len(), 1);
    assert!(matches!(resend1[0].msg, ShardMsg::SnapshotPrepare { .. }));
    let resend2 = s2.unfinished();
    let decided = deliver(&mut s1, &resend2[0].msg);
    assert!(matches!(answer(&decided), OpResult::Snapshot { .. }));
    deliver(&mut s2, &only_msg(&decided));
    assert!(no_locks(&s1) && no_locks(&s2));
}

#[test]
fn a_yes_vote_with_a_part_of_other_accounts_is_dropped() {
    let (mut s1, mut s2) = (shard(S1, 2), shard(S2, 2));
    let (_, send) = start(&mut s1, &read_all(1, 1));
    let ShardMsg::SnapshotVote { txn, shard, vote } = only_msg(&deliver(&mut s2, &send[0].msg))
    else {
        panic!("not a snapshot vote")
    };
    let SnapshotVote::Yes { part } = vote.clone() else {
        panic!("{vote:?}")
    };
    // The coordinator's own account slipped in: it would overwrite A in the answer.
    let mut forged = part.clone();
    forged.balances.insert("A".into(), 1_000);
    let bad = TxnEntry::SnapshotVote {
        txn,
        shard,
        vote: SnapshotVote::Yes { part: forged },
    };
    assert_eq!(s1.apply_txn(&bad), TxnStep::default());
    assert_eq!(
        s1.coordinated(&txn),
        Some(None),
        "still waiting for shard 2"
    );
    let good = TxnEntry::SnapshotVote { txn, shard, vote };
    let OpResult::Snapshot { balances, .. } = answer(&s1.apply_txn(&good)) else {
        panic!("no snapshot")
    };
    assert_eq!(balances["A"], 10);
}
