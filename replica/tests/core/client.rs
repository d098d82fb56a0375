//! Client commands and FORWARD: validation, the reply table, batching, forwarding, waiters.

use crate::util::*;
use replica::bank::Invalid;
use replica::client_proto::ClientResponse;
use replica::core::{CoreConfig, PeerMsg, Value};
use replica::types::Slot;

fn accepted_by_majority(
    core: &mut replica::core::Core,
    ballot: replica::types::Ballot,
    slot: u64,
    out: &mut Vec<replica::core::Effect>,
) {
    core.on_message(
        1_010,
        n(2),
        PeerMsg::Accepted {
            ballot,
            slot: Slot(slot),
        },
        out,
    );
    core.on_message(
        1_010,
        n(3),
        PeerMsg::Accepted {
            ballot,
            slot: Slot(slot),
        },
        out,
    );
}

#[test]
fn an_invalid_command_is_rejected_before_proposal() {
    let (mut core, _) = leader(1, 5);
    let out = submit(&mut core, 1_001, 5, transfer(1, 1, "A", "A", 1));
    assert_eq!(
        replies(&out),
        vec![(
            5,
            ClientResponse::Rejected {
                node: n(1),
                reason: Invalid::SameAccount("A".into())
            }
        )]
    );
    assert!(sends(&out).is_empty());
}

#[test]
fn the_leader_batches_pending_commands_and_bounds_the_pipeline() {
    let mut config = cfg(1, 5);
    config.max_batch_commands = 3;
    config.max_inflight_slots = 2;
    let (mut core, _) = leader_with(config);
    let mut out = Vec::new();
    for request in 1..=10 {
        core.on_client(1_001, request, transfer(request, 1, "A", "B", 1), &mut out);
    }
    core.flush(1_001, &mut out);
    let accepts: Vec<(Slot, usize)> = sent_to(&out, 2)
        .into_iter()
        .filter_map(|m| match m {
            PeerMsg::Accept { slot, value, .. } => Some((slot, value.commands().len())),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepts,
        vec![(Slot(1), 3), (Slot(2), 3)],
        "two slots in flight at most"
    );
}

#[test]
fn a_retry_of_a_queued_command_is_not_proposed_twice() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    core.on_client(1_001, 1, transfer(1, 1, "A", "B", 1), &mut out);
    core.on_client(1_001, 2, transfer(1, 1, "A", "B", 1), &mut out);
    core.flush(1_001, &mut out);
    let accepts = sent_to(&out, 2);
    assert_eq!(accepts.len(), 1);
    let PeerMsg::Accept { value, .. } = &accepts[0] else {
        panic!()
    };
    assert_eq!(value.commands().len(), 1);
    // Retried again while in flight: still one copy; both streams are answered on execution.
    out.clear();
    core.on_client(1_002, 3, transfer(1, 1, "A", "B", 1), &mut out);
    core.flush(1_002, &mut out);
    assert!(sent_to(&out, 2).is_empty());
    accepted_by_majority(&mut core, ballot, 1, &mut out);
    let tokens: Vec<u64> = replies(&out).into_iter().map(|(t, _)| t).collect();
    assert_eq!(tokens, vec![1, 2, 3]);
}

#[test]
fn an_executed_request_is_answered_from_the_reply_table() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = submit(&mut core, 1_001, 1, transfer(1, 1, "A", "B", 2));
    accepted_by_majority(&mut core, ballot, 1, &mut out);
    let first = replies(&out).pop().unwrap().1;
    let out = submit(&mut core, 1_020, 9, transfer(1, 1, "A", "B", 2));
    assert_eq!(replies(&out), vec![(9, first)]);
    assert!(
        !sends(&out)
            .iter()
            .any(|(_, m)| matches!(m, PeerMsg::Accept { .. })),
        "nothing proposed"
    );
    // An older request than the last executed one is dropped silently.
    let out = submit(&mut core, 1_020, 10, transfer(1, 0, "A", "B", 2));
    assert!(out.is_empty());
}

#[test]
fn a_full_queue_answers_overloaded() {
    let mut config = cfg(1, 5);
    config.max_pending_commands = 2;
    config.max_inflight_slots = 1;
    config.max_batch_commands = 1;
    let (mut core, _) = leader_with(config);
    let mut out = Vec::new();
    for request in 1..=4 {
        core.on_client(1_001, request, transfer(request, 1, "A", "B", 1), &mut out);
    }
    assert_eq!(
        replies(&out),
        vec![
            (3, ClientResponse::Overloaded { node: n(1) }),
            (4, ClientResponse::Overloaded { node: n(1) })
        ]
    );
}

#[test]
fn a_backup_forwards_and_answers_when_it_executes() {
    let ballot = b(1, 1);
    let mut core = backup_of(2, 5, ballot);
    let command = transfer(4, 1, "C", "D", 5);
    let out = submit(&mut core, 20, 42, command.clone());
    assert_eq!(
        sent_to(&out, 1),
        vec![PeerMsg::Forward {
            command: command.clone()
        }]
    );
    assert!(replies(&out).is_empty());
    let mut out = Vec::new();
    let value = Value::Batch(vec![command]);
    core.on_message(
        30,
        n(1),
        PeerMsg::Accept {
            ballot,
            slot: Slot(1),
            value,
            commit: Slot(1),
        },
        &mut out,
    );
    let (42, ClientResponse::Reply { node, reply }) = one(replies(&out)) else {
        panic!("{out:?}")
    };
    assert_eq!((node, reply.exec_index), (n(2), 1));
}

#[test]
fn without_a_known_leader_the_answer_is_not_leader() {
    let mut core = fresh(2, 5);
    let out = submit(&mut core, 20, 1, read(1, 1, "A"));
    assert_eq!(
        replies(&out),
        vec![(
            1,
            ClientResponse::NotLeader {
                node: n(2),
                leader_hint: None
            }
        )]
    );
}

#[test]
fn waiters_time_out_silently() {
    let config = CoreConfig {
        client_wait_timeout_ms: 100,
        ..cfg(2, 5)
    };
    let ballot = b(1, 1);
    let mut core = fresh_with(config);
    let mut out = Vec::new();
    core.on_message(
        10,
        n(1),
        PeerMsg::Heartbeat {
            ballot,
            commit: Slot(0),
        },
        &mut out,
    );
    let command = transfer(4, 1, "C", "D", 5);
    submit(&mut core, 20, 42, command.clone());
    core.on_tick(130, &mut out);
    out.clear();
    let value = Value::Batch(vec![command]);
    core.on_message(
        140,
        n(1),
        PeerMsg::Accept {
            ballot,
            slot: Slot(1),
            value,
            commit: Slot(1),
        },
        &mut out,
    );
    assert_eq!(executed(&out).len(), 1);
    assert!(replies(&out).is_empty(), "the wait expired: no answer");
}

#[test]
fn the_leader_proposes_forwarded_commands_but_not_invalid_or_executed_ones() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = Vec::new();
    let command = transfer(3, 1, "A", "B", 1);
    core.on_message(
        1_001,
        n(2),
        PeerMsg::Forward {
            command: command.clone(),
        },
        &mut out,
    );
    core.on_message(
        1_001,
        n(2),
        PeerMsg::Forward {
            command: transfer(3, 2, "A", "Z", 1),
        },
        &mut out,
    );
    core.flush(1_001, &mut out);
    let accepts = sent_to(&out, 3);
    assert_eq!(accepts.len(), 1);
    accepted_by_majority(&mut core, ballot, 1, &mut out);
    out.clear();
    core.on_message(1_020, n(2), PeerMsg::Forward { command }, &mut out);
    core.flush(1_020, &mut out);
    assert!(!sent_to(&out, 3)
        .iter()
        .any(|m| matches!(m, PeerMsg::Accept { .. })));
}

#[test]
fn reads_go_through_the_log() {
    let (mut core, ballot) = leader(1, 5);
    let mut out = submit(&mut core, 1_001, 1, read_all(1, 1));
    assert!(replies(&out).is_empty());
    accepted_by_majority(&mut core, ballot, 1, &mut out);
    let (1, ClientResponse::Reply { reply, .. }) = one(replies(&out)) else {
        panic!()
    };
    assert_eq!(reply.exec_index, 1);
}
