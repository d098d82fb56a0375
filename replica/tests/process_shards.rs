//! Tier 3 for the sharded bank: two shards of three `replica` processes each, over QUIC with
//! mutual TLS on loopback. A transfer between the shards is one two-phase commit whose
//! coordinator is the source shard: it must move the money on both shards exactly once, answer
//! a retry after the coordinator's leader was killed with the original reply, and keep the
//! bank's total.
//!
//! The client library routes each command to the shard that holds its source account; the
//! killed node stays in its shard's list, so the retry also shows the client going past it.
//! A read_all at the end is one snapshot across both shards: every account, a position on each.

mod process_support;

use process_support::*;
use replica::bank::OpResult;
use replica::client::Client;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::{Amount, NodeId, ShardId};
use std::collections::BTreeMap;
use std::time::Duration;

const ELECTION: Duration = Duration::from_secs(10);
const ANSWER: Duration = Duration::from_secs(20);

/// Submits `request` through the client library, which sends it to the shard holding its
/// source account, until a replica of that shard executes it.
async fn executed(client: &Client, request: &ClientRequest) -> OpResult {
    match submit(client, request, ANSWER).await {
        Some(ClientResponse::Reply { reply, .. }) => reply.result,
        other => panic!("{request:?} was not executed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_shard_transfer_commits_once_on_both_shards_across_a_coordinator_failover() {
    let mut cluster = Cluster::start_sharded(2, 3);
    let shards = cluster.config.shards.clone();
    assert_eq!(shards.len(), 2);
    let (one, two) = (&shards[0], &shards[1]);
    let client = cluster.client();
    for shard in [one, two] {
        wait_for_leader(&client, &shard.nodes, ELECTION)
            .await
            .unwrap_or_else(|| panic!("no leader in {:?}\n{}", shard.nodes, cluster.logs_tail()));
    }
    let (from, to) = (one.accounts[0].clone(), two.accounts[0].clone());

    // The shipped binary has no failpoints to arm, and says where they are.
    let leader = wait_for_leader(&client, &one.nodes, ELECTION)
        .await
        .expect("shard 1's leader");
    let arm = ClientRequest::ArmFailpoint {
        name: "coordinator-after-send".into(),
        once: true,
    };
    match client.call(leader, &arm, ANSWER).await {
        Ok(ClientResponse::Error { message, .. }) => {
            assert!(message.contains("use replica-bugs"), "{message}")
        }
        other => panic!("the plain replica armed a failpoint: {other:?}"),
    }

    let request = transfer(1, 1, &from, &to, 3);
    let result = executed(&client, &request).await;
    assert_eq!(
        result,
        OpResult::Transferred {
            from_balance: 7,
            to_balance: 13
        },
        "{}",
        cluster.logs_tail()
    );
    settled(&client, &one.nodes, &from, 7, ANSWER).await;
    settled(&client, &two.nodes, &to, 13, ANSWER).await;

    // The coordinator's leader dies; the client retries the same request at the survivors.
    let leader = wait_for_leader(&client, &one.nodes, ELECTION)
        .await
        .expect("shard 1's leader");
    cluster.kill(leader);
    let survivors: Vec<NodeId> = one.nodes.iter().copied().filter(|n| *n != leader).collect();
    let retried = executed(&client, &request).await;
    assert_eq!(retried, result, "a retry gets the original reply");

    // The other way round, with shard 2 as the coordinator, while shard 1 has a new leader.
    let back = transfer(2, 1, &to, &from, 5);
    let result = executed(&client, &back).await;
    assert_eq!(
        result,
        OpResult::Transferred {
            from_balance: 8,
            to_balance: 12
        },
        "{}",
        cluster.logs_tail()
    );

    // Moved once each way: A 10 - 3 + 5, B 10 + 3 - 5.
    let first = settled(&client, &survivors, &from, 12, ANSWER).await;
    let second = settled(&client, &two.nodes, &to, 8, ANSWER).await;
    let total: Amount = first.values().chain(second.values()).sum();
    assert_eq!(total, 100, "the bank's total: {first:?} {second:?}");

    // One read_all across both shards: a snapshot of every account, with a position on each.
    let (balances, positions) = snapshot(&client).await;
    let settled: BTreeMap<replica::types::Account, Amount> =
        first.into_iter().chain(second).collect();
    assert_eq!(
        balances, settled,
        "nothing is in flight: the snapshot is the settled bank"
    );
    let shard_ids: Vec<ShardId> = positions.keys().copied().collect();
    assert_eq!(shard_ids, vec![ShardId(1), ShardId(2)]);
}

/// A read_all's snapshot, retried (as a new request) while it fails definitely: a transfer's
/// decision may still be on its way to a shard, and a locked account fails a snapshot at once.
async fn snapshot(
    client: &Client,
) -> (
    BTreeMap<replica::types::Account, Amount>,
    BTreeMap<ShardId, u64>,
) {
    let mut failures = Vec::new();
    for request in 1..=20 {
        match executed(client, &read_all(3, request)).await {
            OpResult::Snapshot {
                balances,
                positions,
            } => return (balances, positions),
            failed @ (OpResult::LockConflict { .. } | OpResult::Aborted { .. }) => {
                failures.push(failed);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!("read_all answered {other:?}"),
        }
    }
    panic!("no snapshot in 20 tries: {failures:?}")
}
