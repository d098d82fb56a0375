//! Two banks, shard 1 (A, B) and shard 2 (C, D), exchanging two-phase commit entries by hand.

use super::*;
use proptest::prelude::*;

const S1: ShardId = ShardId(1);
const S2: ShardId = ShardId(2);

fn shard(id: ShardId) -> Bank {
    let (mine, theirs) = if id == S1 {
        (["A", "B"], ["C", "D"])
    } else {
        (["C", "D"], ["A", "B"])
    };
    let other = if id == S1 { S2 } else { S1 };
    let accounts: Vec<Account> = mine.iter().map(|&a| a.into()).collect();
    let remote = theirs.iter().map(|&a| (a.into(), other)).collect();
    Bank::new_shard(id, &accounts, remote, 10)
}

fn transfer(client: u64, request: u64, from: &str, to: &str, amount: Amount) -> Command {
    Command::transfer(client, request, from, to, amount)
}

fn txn(client: u64, request: u64) -> TxnId {
    TxnId {
        coordinator: S1,
        client: ClientId(client),
        request: RequestId(request),
    }
}

/// Starts a cross-shard transfer at `coord`, returning the PREPARE it sends.
fn start(coord: &mut Bank, command: &Command) -> ShardMsg {
    start_logged(coord, command).0
}

/// Starts a cross-shard transfer at `coord`: the PREPARE it sends and the entry it logs.
fn start_logged(coord: &mut Bank, command: &Command) -> (ShardMsg, Executed) {
    match coord.execute_step(command, true) {
        Step::Started { send, executed, .. } => {
            assert_eq!(send.shard, S2);
            (send.msg, executed)
        }
        other => panic!("not started: {other:?}"),
    }
}

/// The transaction record of an executed entry (panics on an ordinary entry).
fn record_of(step: &TxnStep) -> TxnRecord {
    step.executed
        .as_ref()
        .and_then(|e| e.txn)
        .expect("a txn entry")
}

fn rec(client: u64, request: u64, phase: TxnPhase, applied: Amount) -> TxnRecord {
    TxnRecord {
        id: txn(client, request),
        phase,
        applied,
    }
}

const YES: TxnPhase = TxnPhase::Prepare { vote_yes: true };
const NO: TxnPhase = TxnPhase::Prepare { vote_yes: false };

/// Delivers one message as the receiving shard's leader would: proposes its entry, executes it.
fn deliver(to: &mut Bank, msg: &ShardMsg) -> TxnStep {
    to.apply_txn(&msg.entry())
}

fn only_msg(step: &TxnStep) -> ShardMsg {
    assert_eq!(step.send.len(), 1, "{step:?}");
    step.send[0].msg.clone()
}

fn total(a: &Bank, b: &Bank) -> Amount {
    a.total().unwrap() + b.total().unwrap()
}

#[test]
fn commit_path_moves_money_once_and_answers_the_client_at_the_decision() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let cmd = transfer(1, 1, "A", "C", 4);
    let (prepare, started) = start_logged(&mut s1, &cmd);
    assert_eq!(s1.locks().get("A"), Some(&txn(1, 1)));
    assert_eq!(
        (started.exec_index, started.txn),
        (1, Some(rec(1, 1, YES, 0)))
    );
    assert_eq!(started.result, OpResult::Balance { balance: 10 });
    assert_eq!(
        s1.cached_reply(ClientId(1), RequestId(1)),
        None,
        "no reply yet"
    );
    let prepared = deliver(&mut s2, &prepare);
    assert_eq!(record_of(&prepared), rec(1, 1, YES, 0));
    assert_eq!(prepared.executed.as_ref().map(|e| e.exec_index), Some(1));
    let vote = only_msg(&prepared);
    assert_eq!(s2.locks().get("C"), Some(&txn(1, 1)));
    assert_eq!(
        vote,
        ShardMsg::Vote {
            txn: txn(1, 1),
            vote: Vote::Yes { to_balance: 14 }
        }
    );
    let decided = deliver(&mut s1, &vote);
    let executed = decided.executed.clone().unwrap();
    assert_eq!(executed.command, cmd);
    assert_eq!(executed.txn, Some(rec(1, 1, TxnPhase::Commit, -4)));
    assert_eq!(
        executed.exec_index, 2,
        "the client is answered with the decision's index"
    );
    let expected = OpResult::Transferred {
        from_balance: 6,
        to_balance: 14,
    };
    assert_eq!(executed.result, expected);
    assert_eq!(
        s1.cached_reply(ClientId(1), RequestId(1))
            .map(|r| &r.result),
        Some(&expected)
    );
    assert_eq!(s1.balance("A"), 6);
    assert_eq!(
        s2.balance("C"),
        10,
        "credit only when the participant decides"
    );
    let applied = deliver(&mut s2, &only_msg(&decided));
    assert_eq!(
        applied.executed.as_ref().map(|e| &e.result),
        Some(&OpResult::Credited { to_balance: 14 })
    );
    assert_eq!(record_of(&applied), rec(1, 1, TxnPhase::Commit, 4));
    assert_eq!(applied.executed.as_ref().map(|e| e.exec_index), Some(2));
    assert_eq!(s2.balance("C"), 14);
    assert!(s1.locks().is_empty() && s2.locks().is_empty());
    assert_eq!(s1.txns_in_flight(), 1, "kept until acknowledged");
    deliver(&mut s1, &only_msg(&applied));
    assert_eq!(s1.txns_in_flight(), 0);
    assert_eq!(s2.txns_in_flight(), 0);
    assert_eq!(total(&s1, &s2), 40);
    assert!(s1.unfinished().is_empty() && s2.unfinished().is_empty());
}

#[test]
fn a_no_vote_aborts_changes_nothing_and_releases_the_lock() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    // C is locked on shard 2 by a transaction from B.
    let first = start(&mut s1, &transfer(1, 1, "B", "C", 1));
    deliver(&mut s2, &first);
    let second = start(&mut s1, &transfer(2, 1, "A", "C", 3));
    let voted = deliver(&mut s2, &second);
    assert_eq!(record_of(&voted), rec(2, 1, NO, 0));
    let vote = only_msg(&voted);
    let again = only_msg(&deliver(&mut s2, &second));
    assert!(
        matches!(
            again,
            ShardMsg::Vote {
                vote: Vote::No { .. },
                ..
            }
        ),
        "a resent PREPARE is voted no again: {again:?}"
    );
    assert_eq!(s2.exec_index(), 2, "and is not logged twice");
    assert_eq!(
        vote,
        ShardMsg::Vote {
            txn: txn(2, 1),
            vote: Vote::No {
                reason: AbortReason::LockConflict
            }
        }
    );
    let decided = deliver(&mut s1, &vote);
    assert_eq!(
        decided.executed.clone().unwrap().result,
        OpResult::Aborted {
            reason: AbortReason::LockConflict
        }
    );
    assert_eq!(record_of(&decided), rec(2, 1, TxnPhase::Abort, 0));
    assert_eq!(s1.balance("A"), 10);
    assert_eq!(s1.locks().get("A"), None);
    let acked = deliver(&mut s2, &only_msg(&decided));
    assert!(matches!(only_msg(&acked), ShardMsg::Ack { .. }));
    assert!(
        acked.executed.is_none(),
        "no decision entry after a no vote"
    );
    assert_eq!(
        s2.locks().get("C"),
        Some(&txn(1, 1)),
        "the other txn's lock stays"
    );
}

#[test]
fn no_wait_locking_fails_conflicting_transfers_at_once() {
    let mut s1 = shard(S1);
    start(&mut s1, &transfer(1, 1, "A", "C", 1));
    let conflict = |step: Step| match step {
        Step::Done(Outcome::Executed(e)) if e.txn.is_none() => e.result,
        other => panic!("{other:?}"),
    };
    let locked = OpResult::LockConflict {
        account: "A".into(),
    };
    // Another cross-shard transfer from A, and local transfers from and to A.
    let cross = s1.execute_step(&transfer(2, 1, "A", "D", 1), true);
    assert_eq!(conflict(cross), locked);
    let debit = s1.execute_step(&transfer(3, 1, "A", "B", 1), true);
    assert_eq!(conflict(debit), locked);
    let credit = s1.execute_step(&transfer(4, 1, "B", "A", 1), true);
    assert_eq!(conflict(credit), locked);
    assert_eq!(
        s1.exec_index(),
        4,
        "the start and each failure take their place in the order"
    );
    assert_eq!(s1.balance("B"), 10);
}

#[test]
fn insufficient_funds_fails_at_the_coordinator_without_a_transaction() {
    let mut s1 = shard(S1);
    let step = s1.execute_step(&transfer(1, 1, "A", "C", 11), true);
    let Step::Done(Outcome::Executed(e)) = step else {
        panic!("{step:?}")
    };
    assert_eq!(e.result, OpResult::InsufficientFunds { from_balance: 10 });
    assert_eq!(s1.txns_in_flight(), 0);
    assert!(s1.locks().is_empty());
}

#[test]
fn prepare_is_idempotent_and_a_late_one_never_locks_again() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 2));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let again = deliver(&mut s2, &prepare);
    assert_eq!(only_msg(&again), vote, "same vote again");
    assert!(again.executed.is_none(), "a prepare is logged once");
    assert_eq!(s2.txns_in_flight(), 1);
    let decided = deliver(&mut s1, &vote);
    deliver(&mut s2, &only_msg(&decided));
    // A copy of the PREPARE delayed in the network arrives after the decision.
    let late_step = deliver(&mut s2, &prepare);
    assert!(late_step.executed.is_none(), "a late prepare is not logged");
    let late = only_msg(&late_step);
    assert_eq!(
        late,
        ShardMsg::Vote {
            txn: txn(1, 1),
            vote: Vote::No {
                reason: AbortReason::AlreadyFinished
            }
        }
    );
    assert!(s2.locks().is_empty());
    assert_eq!(s2.balance("C"), 12, "credited once");
    // And the coordinator, already decided, ignores that vote.
    assert_eq!(deliver(&mut s1, &late), TxnStep::default());
}

#[test]
fn only_the_first_decision_counts_everywhere() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 2));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let abort = TxnEntry::Decide {
        txn: txn(1, 1),
        decision: Decision::Abort {
            reason: AbortReason::Timeout,
        },
    };
    // A timeout abort is chosen first; the yes vote's commit comes second and changes nothing.
    let decided = s1.apply_txn(&abort);
    assert_eq!(deliver(&mut s1, &vote), TxnStep::default());
    assert_eq!(s1.balance("A"), 10);
    let reply = s1.cached_reply(ClientId(1), RequestId(1)).unwrap().clone();
    assert_eq!(
        reply.result,
        OpResult::Aborted {
            reason: AbortReason::Timeout
        }
    );
    // The participant releases on the abort; a repeated DECISION only acks again.
    let decision = only_msg(&decided);
    let released = deliver(&mut s2, &decision);
    assert_eq!(
        record_of(&released),
        rec(1, 1, TxnPhase::Abort, 0),
        "a participant that voted yes logs the abort"
    );
    let again = deliver(&mut s2, &decision);
    assert!(again.executed.is_none() && matches!(only_msg(&again), ShardMsg::Ack { .. }));
    assert_eq!(s2.balance("C"), 10);
    assert!(s2.locks().is_empty());
    assert_eq!(s1.exec_index(), 2, "start and abort");
    assert_eq!(s2.exec_index(), 2, "prepare and abort");
}

#[test]
fn a_retried_request_never_starts_a_second_transaction() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let cmd = transfer(1, 7, "A", "C", 5);
    let prepare = start(&mut s1, &cmd);
    // Before the decision: the retry (perhaps to a new leader) finds the running one.
    assert_eq!(s1.execute_step(&cmd, true), Step::InProgress(txn(1, 7)));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let decided = deliver(&mut s1, &vote);
    let reply = s1.cached_reply(ClientId(1), RequestId(7)).unwrap().clone();
    assert_eq!(
        reply.exec_index,
        decided.executed.clone().unwrap().exec_index
    );
    // After it: the original reply, before and after the record is forgotten.
    assert_eq!(
        s1.execute_step(&cmd, true),
        Step::Done(Outcome::Duplicate(reply.clone()))
    );
    let ack = only_msg(&deliver(&mut s2, &only_msg(&decided)));
    deliver(&mut s1, &ack);
    assert_eq!(
        s1.execute_step(&cmd, true),
        Step::Done(Outcome::Duplicate(reply))
    );
    assert_eq!((s1.balance("A"), s2.balance("C")), (5, 15));
}

#[test]
fn a_decision_after_the_client_moved_on_does_not_rewind_its_reply() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 1));
    // The client gave up on request 1 and its request 2 executed.
    s1.execute_step(&transfer(1, 2, "B", "A", 1), true);
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let decided = deliver(&mut s1, &vote);
    assert!(decided.executed.is_some());
    assert_eq!(s1.last_request(ClientId(1)), Some(RequestId(2)));
    let retry = s1.execute_step(&transfer(1, 1, "A", "C", 1), true);
    assert_eq!(retry, Step::Done(Outcome::Stale));
}

#[test]
fn checkpoints_carry_transactions_in_flight() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 3));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let round_trip = |bank: &Bank| -> Bank {
        let bytes = postcard::to_allocvec(bank).unwrap();
        postcard::from_bytes(&bytes).unwrap()
    };
    // Both shards restart from checkpoints taken mid-transaction.
    let (mut s1, mut s2) = (round_trip(&s1), round_trip(&s2));
    assert_eq!(s1.locks().get("A"), Some(&txn(1, 1)));
    assert_eq!(
        s1.unfinished().len(),
        1,
        "the PREPARE is resent after restart"
    );
    assert_eq!(only_msg(&deliver(&mut s2, &prepare)), vote);
    let decided = deliver(&mut s1, &vote);
    deliver(&mut s2, &only_msg(&decided));
    assert_eq!((s1.balance("A"), s2.balance("C")), (7, 13));
}

#[test]
fn the_transaction_tables_are_bounded() {
    let limits = TxnLimits {
        max_inflight: 2,
        max_finished_clients: 2,
    };
    let mut s1 = shard(S1).with_txn_limits(TxnLimits {
        max_inflight: 1,
        ..limits
    });
    let mut s2 = shard(S2).with_txn_limits(limits);
    start(&mut s1, &transfer(1, 1, "A", "C", 1));
    let busy = s1.execute_step(&transfer(3, 1, "B", "C", 1), true);
    assert!(
        matches!(&busy, Step::Done(Outcome::Executed(e)) if e.result == OpResult::Busy),
        "{busy:?}"
    );
    assert_eq!(s1.txns_in_flight(), 1);
    // The participant: beyond its bound it votes no.
    let prepare = |client, to: &str| ShardMsg::Prepare {
        txn: txn(client, 1),
        from: "A".into(),
        to: to.into(),
        amount: 1,
    };
    deliver(&mut s2, &prepare(10, "C"));
    deliver(&mut s2, &prepare(11, "D"));
    let vote = only_msg(&deliver(&mut s2, &prepare(12, "C")));
    assert!(matches!(
        vote,
        ShardMsg::Vote {
            vote: Vote::No {
                reason: AbortReason::Busy | AbortReason::LockConflict
            },
            ..
        }
    ));
    // Finished marks: at most two clients; the oldest mark becomes the floor.
    let abort = |client| TxnEntry::Decide {
        txn: txn(client, 5),
        decision: Decision::Abort {
            reason: AbortReason::Timeout,
        },
    };
    for client in 20..25 {
        s2.apply_txn(&abort(client));
    }
    assert!(s2.txns.finished.len() <= 2);
    assert_eq!(s2.txns.finished_floor, RequestId(5));
    // A late PREPARE of an evicted client is refused, not locked.
    let late = TxnEntry::Prepare {
        txn: txn(20, 5),
        from: "A".into(),
        to: "D".into(),
        amount: 1,
    };
    s2.apply_txn(&TxnEntry::Decide {
        txn: txn(11, 1),
        decision: Decision::Abort {
            reason: AbortReason::Timeout,
        },
    });
    let step = s2.apply_txn(&late);
    assert!(matches!(
        only_msg(&step),
        ShardMsg::Vote {
            vote: Vote::No {
                reason: AbortReason::AlreadyFinished
            },
            ..
        }
    ));
}

#[test]
fn requests_for_other_shards_accounts_are_refused_by_name() {
    let s1 = shard(S1);
    let op = |from: &str, to: &str| Op::Transfer {
        from: from.into(),
        to: to.into(),
        amount: 1,
    };
    assert!(s1.validate(&op("A", "C")).is_ok());
    assert_eq!(
        s1.validate(&op("C", "A")),
        Err(crate::bank::Invalid::UnknownAccount("C".into())),
        "the debit side must be on the coordinator shard"
    );
    assert_eq!(
        s1.validate(&op("A", "Z")),
        Err(crate::bank::Invalid::UnknownAccount("Z".into()))
    );
}

#[test]
fn reads_of_a_locked_account_fail_until_the_decision_then_see_it() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 4));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let mut request = 100;
    let mut read = |bank: &mut Bank, op: Op| {
        request += 1;
        let cmd = Command {
            client: ClientId(9),
            request: RequestId(request),
            op,
        };
        match bank.execute_step(&cmd, true) {
            Step::Done(Outcome::Executed(e)) => e.result,
            other => panic!("{other:?}"),
        }
    };
    let one = |account: &str| Op::Read {
        account: account.into(),
    };
    let conflict = |account: &str| OpResult::LockConflict {
        account: account.into(),
    };
    // Between prepare and decision neither side shows the account, nor a snapshot holding it.
    assert_eq!(read(&mut s1, one("A")), conflict("A"));
    assert_eq!(read(&mut s2, one("C")), conflict("C"));
    assert_eq!(read(&mut s1, Op::ReadAll), conflict("A"));
    assert_eq!(read(&mut s1, one("B")), OpResult::Balance { balance: 10 });
    let decided = deliver(&mut s1, &vote);
    assert_eq!(read(&mut s1, one("A")), OpResult::Balance { balance: 6 });
    assert_eq!(
        read(&mut s2, one("C")),
        conflict("C"),
        "not decided there yet"
    );
    deliver(&mut s2, &only_msg(&decided));
    assert_eq!(read(&mut s2, one("C")), OpResult::Balance { balance: 14 });
    // A sharded read_all is a snapshot (see `snapshot`): this shard's part shows the credit.
    let read_all = Command {
        client: ClientId(9),
        request: RequestId(1_000),
        op: Op::ReadAll,
    };
    let Step::SnapshotStarted { executed, .. } = s2.execute_step(&read_all, true) else {
        panic!("read_all after the decision");
    };
    let OpResult::Balances { balances } = executed.result else {
        panic!("{executed:?}")
    };
    assert_eq!(balances.values().sum::<Amount>(), 24);
}

fn both(f: impl Fn(bool) -> bool) -> (bool, bool) {
    (f(false), f(true))
}

fn timeout_abort(txn: TxnId) -> TxnEntry {
    let reason = AbortReason::Timeout;
    TxnEntry::Decide {
        txn,
        decision: Decision::Abort { reason },
    }
}

#[test]
fn planted_apply_at_prepare_credits_at_the_vote_and_keeps_it_on_abort() {
    let outcome = both(|bug| {
        let (mut s1, mut s2) = (shard(S1), shard(S2));
        s2.set_planted_txn_bugs(crate::bank::PlantedTxnBugs {
            apply_at_prepare: bug,
            ..Default::default()
        });
        let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 4));
        deliver(&mut s2, &prepare);
        let early = s2.balance("C") == 14;
        let decided = s1.apply_txn(&timeout_abort(txn(1, 1)));
        deliver(&mut s2, &only_msg(&decided));
        early && total(&s1, &s2) == 44
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn planted_apply_at_prepare_still_credits_a_commit_once() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    s2.set_planted_txn_bugs(crate::bank::PlantedTxnBugs {
        apply_at_prepare: true,
        ..Default::default()
    });
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 4));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    let applied = deliver(&mut s2, &only_msg(&deliver(&mut s1, &vote)));
    assert_eq!(
        applied.executed.map(|e| e.result),
        Some(OpResult::Credited { to_balance: 14 })
    );
    assert_eq!(total(&s1, &s2), 40);
}

#[test]
fn planted_keep_locks_on_abort_locks_the_account_for_ever() {
    let outcome = both(|bug| {
        let (mut s1, mut s2) = (shard(S1), shard(S2));
        s2.set_planted_txn_bugs(crate::bank::PlantedTxnBugs {
            keep_locks_on_abort: bug,
            ..Default::default()
        });
        let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 4));
        deliver(&mut s2, &prepare);
        let decided = s1.apply_txn(&timeout_abort(txn(1, 1)));
        deliver(&mut s2, &only_msg(&decided));
        // A later transfer to C is refused: C stays locked by a transaction long finished.
        let next = start(&mut s1, &transfer(2, 1, "B", "C", 1));
        let refused = ShardMsg::Vote {
            txn: txn(2, 1),
            vote: Vote::No {
                reason: AbortReason::LockConflict,
            },
        };
        only_msg(&deliver(&mut s2, &next)) == refused && s2.locks().contains_key("C")
    });
    assert_eq!(outcome, (false, true));
}

#[test]
fn the_lock_table_invariant_holds_through_a_commit_and_catches_a_lock_kept_on_abort() {
    let (mut s1, mut s2) = (shard(S1), shard(S2));
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 4));
    let vote = only_msg(&deliver(&mut s2, &prepare));
    assert_eq!(
        (s1.check_lock_table(), s2.check_lock_table()),
        (Ok(()), Ok(()))
    );
    deliver(&mut s2, &only_msg(&deliver(&mut s1, &vote)));
    assert_eq!(
        (s1.check_lock_table(), s2.check_lock_table()),
        (Ok(()), Ok(()))
    );

    let (mut s1, mut s2) = (shard(S1), shard(S2));
    s2.set_planted_txn_bugs(crate::bank::PlantedTxnBugs {
        keep_locks_on_abort: true,
        ..Default::default()
    });
    let prepare = start(&mut s1, &transfer(1, 1, "A", "C", 4));
    deliver(&mut s2, &prepare);
    let decided = s1.apply_txn(&timeout_abort(txn(1, 1)));
    deliver(&mut s2, &only_msg(&decided));
    let broken = s2
        .check_lock_table()
        .expect_err("C stays locked by a finished transaction");
    assert!(broken.starts_with("C locked by"), "{broken}");
}

/// One thing that can happen next in a run of two shards whose messages may be lost,
/// duplicated and reordered.
#[derive(Clone, Debug)]
enum Event {
    /// Client `c` submits (or retries) its current transfer at the coordinator.
    Submit(usize),
    /// Deliver the in-flight message at this position (mod the pool), keeping a copy.
    Deliver(usize),
    /// Deliver it and drop it from the pool.
    DeliverOnce(usize),
    /// The coordinator times out the oldest preparing transaction.
    Timeout,
    /// The leaders resend their unfinished work.
    Resend,
    /// A reader asks for a read_all at shard 1 (`false`) or shard 2 (`true`).
    ReadAll(bool),
    /// Shard 2's coordinator times out its oldest preparing snapshot.
    TimeoutAt2,
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        (0..4usize).prop_map(Event::Submit),
        any::<usize>().prop_map(Event::Deliver),
        any::<usize>().prop_map(Event::DeliverOnce),
        Just(Event::Timeout),
        Just(Event::Resend),
        any::<bool>().prop_map(Event::ReadAll),
        Just(Event::TimeoutAt2),
    ]
}

/// Four clients, each sending cross-shard and local transfers from shard 1.
fn client_command(client: usize, request: u64) -> Command {
    let (from, to) = [("A", "C"), ("B", "D"), ("A", "D"), ("B", "A")][client];
    transfer(
        client as u64,
        request,
        from,
        to,
        1 + (request % 4) as Amount,
    )
}

struct Run {
    s1: Bank,
    s2: Bank,
    pool: Vec<Outbound>,
    requests: [u64; 4],
    /// Transactions the coordinator committed, and those the participant credited.
    committed: std::collections::BTreeSet<TxnId>,
    credited: std::collections::BTreeSet<TxnId>,
    /// Each shard's executed log, as its replicas would journal it.
    logs: BTreeMap<ShardId, Vec<Executed>>,
    /// Read_all requests made so far, and the snapshots answered.
    reads: u64,
    snapshots: Vec<OpResult>,
}

impl Run {
    fn step(&mut self, event: &Event) {
        match event {
            Event::Submit(c) => {
                // A client moves to a new request half the time, else retries.
                if self.requests[*c].is_multiple_of(2) {
                    self.requests[*c] += 1;
                }
                let cmd = client_command(*c, self.requests[*c] / 2 + 1);
                self.requests[*c] += 1;
                match self.s1.execute_step(&cmd, true) {
                    Step::Started { send, executed, .. } => {
                        self.pool.push(send);
                        self.logs.entry(S1).or_default().push(executed);
                    }
                    Step::Done(Outcome::Executed(executed)) => {
                        self.logs.entry(S1).or_default().push(executed);
                    }
                    _ => {}
                }
            }
            Event::Deliver(i) | Event::DeliverOnce(i) if !self.pool.is_empty() => {
                let i = i % self.pool.len();
                let out = if matches!(event, Event::DeliverOnce(_)) {
                    self.pool.remove(i)
                } else {
                    self.pool[i].clone()
                };
                let bank = if out.shard == S1 {
                    &mut self.s1
                } else {
                    &mut self.s2
                };
                let step = bank.apply_txn(&out.msg.entry());
                self.absorb(out.shard, step);
            }
            Event::Deliver(_) | Event::DeliverOnce(_) => {}
            Event::Timeout | Event::TimeoutAt2 => {
                let (shard, bank) = match event {
                    Event::Timeout => (S1, &mut self.s1),
                    _ => (S2, &mut self.s2),
                };
                if let Some(txn) = bank.preparing().first() {
                    let decision = Decision::Abort {
                        reason: AbortReason::Timeout,
                    };
                    let step = bank.apply_txn(&TxnEntry::Decide {
                        txn: *txn,
                        decision,
                    });
                    self.absorb(shard, step);
                }
            }
            Event::ReadAll(at_two) => {
                self.reads += 1;
                let cmd = Command {
                    client: ClientId(100),
                    request: RequestId(self.reads),
                    op: Op::ReadAll,
                };
                let shard = if *at_two { S2 } else { S1 };
                let bank = if *at_two { &mut self.s2 } else { &mut self.s1 };
                match bank.execute_step(&cmd, true) {
                    Step::SnapshotStarted { send, executed, .. } => {
                        self.pool.extend(send);
                        self.logs.entry(shard).or_default().push(executed);
                    }
                    Step::Done(Outcome::Executed(e)) => {
                        assert!(
                            matches!(e.result, OpResult::LockConflict { .. } | OpResult::Busy),
                            "{e:?}"
                        );
                        self.logs.entry(shard).or_default().push(e);
                    }
                    other => panic!("{other:?}"),
                }
            }
            Event::Resend => {
                let resend = self.s1.unfinished().into_iter();
                self.pool.extend(resend.chain(self.s2.unfinished()));
            }
        }
        // Keep the pool bounded, as a lossy network would.
        if self.pool.len() > 64 {
            self.pool.drain(..self.pool.len() - 64);
        }
    }

    /// Notes what an entry executed at `shard` did, and sends its messages.
    fn absorb(&mut self, shard: ShardId, step: TxnStep) {
        if let Some(answer) = &step.answer {
            if answer.client == ClientId(100) {
                self.snapshots.push(answer.reply.result.clone());
            }
        }
        if let Some(e) = step.executed {
            let id = txn(e.command.client.0, e.command.request.0);
            let set = match e.result {
                OpResult::Transferred { .. } if shard == S1 => &mut self.committed,
                OpResult::Credited { .. } if shard == S2 => &mut self.credited,
                _ => &mut std::collections::BTreeSet::new(),
            };
            assert!(set.insert(id), "{id:?} applied twice on {shard}");
            self.logs.entry(shard).or_default().push(e);
        }
        self.pool.extend(step.send);
    }

    /// Times out everything still preparing and delivers until nothing is left to do.
    fn finish(&mut self) {
        for _ in 0..100 {
            self.step(&Event::Timeout);
            self.step(&Event::TimeoutAt2);
        }
        for _ in 0..10_000 {
            if self.pool.is_empty() {
                self.step(&Event::Resend);
                if self.pool.is_empty() {
                    return;
                }
            }
            self.step(&Event::DeliverOnce(0));
        }
        panic!("two-phase commit did not settle");
    }
}

proptest! {
    // Many cases: a torn snapshot needs one particular order of a handful of deliveries (a
    // transfer ignoring a shared lock was caught within about 3,000; each case is cheap).
    #![proptest_config(ProptestConfig::with_cases(4096))]
    #[test]
    fn any_interleaving_conserves_money_and_is_atomic(
        events in proptest::collection::vec(event(), 0..200)
    ) {
        let mut run = Run {
            s1: shard(S1),
            s2: shard(S2),
            pool: Vec::new(),
            requests: [0; 4],
            committed: Default::default(),
            credited: Default::default(),
            logs: BTreeMap::new(),
            reads: 0,
            snapshots: Vec::new(),
        };
        for e in &events {
            run.step(e);
            prop_assert!(run.s1.balances().values().all(|b| *b >= 0));
            prop_assert_eq!(run.s1.check_lock_table(), Ok(()), "after {:?}", e);
            prop_assert_eq!(run.s2.check_lock_table(), Ok(()), "after {:?}", e);
        }
        run.finish();
        let (s1, s2) = (&run.s1, &run.s2);
        prop_assert_eq!(total(s1, s2), 40, "money conserved across both banks");
        prop_assert!(s1.locks().is_empty() && s2.locks().is_empty());
        prop_assert!(s1.shared_locks().is_empty() && s2.shared_locks().is_empty());
        prop_assert_eq!(s1.txns_in_flight() + s2.txns_in_flight(), 0);
        // Every snapshot answered is one consistent cut: it holds the bank's total.
        for snapshot in &run.snapshots {
            match snapshot {
                OpResult::Snapshot { balances, positions } => {
                    prop_assert_eq!(balances.len(), 4);
                    prop_assert_eq!(balances.values().sum::<Amount>(), 40, "torn: {:?}", snapshot);
                    prop_assert_eq!(positions.len(), 2);
                }
                OpResult::Aborted { .. } => {}
                other => prop_assert!(false, "a snapshot answered {:?}", other),
            }
        }
        // Atomicity: every transaction committed at the coordinator was credited at the
        // participant, and nothing was credited that the coordinator did not commit.
        prop_assert_eq!(&run.committed, &run.credited);
        for (shard, bank) in [(S1, s1), (S2, s2)] {
            let log = run.logs.get(&shard).map_or(&[][..], |l| &l[..]);
            check_log(shard, bank, log).map_err(TestCaseError::fail)?;
        }
    }
}

/// What a checker asks of one shard's executed log: contiguous exec indices, each
/// transaction prepared and decided at most once (the decision after the prepare, a commit
/// only after a yes), and a replay of the applied amounts that ends in the bank's balances.
fn check_log(shard: ShardId, bank: &Bank, log: &[Executed]) -> Result<(), String> {
    let mut replayed: BTreeMap<Account, Amount> =
        bank.balances().keys().map(|a| (a.clone(), 10)).collect();
    let mut phases: BTreeMap<TxnId, Vec<TxnPhase>> = BTreeMap::new();
    for (i, e) in log.iter().enumerate() {
        if e.exec_index != i as u64 + 1 {
            return Err(format!(
                "{shard}: entry {i} has exec index {}",
                e.exec_index
            ));
        }
        let Op::Transfer { from, to, amount } = &e.command.op else {
            continue;
        };
        let Some(t) = e.txn else {
            if matches!(e.result, OpResult::Transferred { .. }) {
                *replayed.get_mut(from).unwrap() -= amount;
                *replayed.get_mut(to).unwrap() += amount;
            }
            continue;
        };
        let seen = phases.entry(t.id).or_default();
        let ok = match t.phase {
            TxnPhase::Prepare { .. } => seen.is_empty(),
            TxnPhase::Commit => seen == &[TxnPhase::Prepare { vote_yes: true }],
            TxnPhase::Abort => seen.len() == 1,
        };
        if !ok {
            return Err(format!(
                "{shard}: {:?} after {seen:?} of {:?}",
                t.phase, t.id
            ));
        }
        seen.push(t.phase);
        let account = if replayed.contains_key(from) {
            from
        } else {
            to
        };
        *replayed.get_mut(account).unwrap() += t.applied;
    }
    if &replayed != bank.balances() {
        return Err(format!(
            "{shard}: replay {replayed:?} != {:?}",
            bank.balances()
        ));
    }
    Ok(())
}
