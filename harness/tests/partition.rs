//! Through the relay, a minority holding the old leader cannot commit while the majority keeps
//! committing; after the heal the minority catches up.

mod common;

use harness::clients::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use harness::clients::workload::account_names;
use harness::faults::schedule::{partition_cuts, Partition};
use harness::params::NetMode;
use harness::targets::faultline::cluster::{Cluster, ClusterSpec};
use replica::bank::{Command, Op};
use replica::types::{ClientId, NodeId, RequestId};
use std::time::Duration;
use tokio::time::Instant;

fn transfer(request: u64) -> Command {
    Command {
        client: ClientId(1),
        request: RequestId(request),
        op: Op::Transfer {
            from: "B".into(),
            to: "C".into(),
            amount: 1,
        },
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_and_catches_up_after_heal() {
    let dir = tempfile::tempdir().unwrap();
    let spec = ClusterSpec {
        nodes: 5,
        net: NetMode::Relay,
        replica_bin: common::replica_bin(),
        bug: None,
        accounts: account_names(10).into_iter().map(String::from).collect(),
        initial_balance: 10,
        checkpoint_interval_slots: None,
        tunables: None,
        shards: None,
    };
    let mut cluster = Cluster::prepare(dir.path(), spec).await.unwrap();
    cluster.start_all().unwrap();
    let leader = cluster
        .wait_for_leader(Duration::from_secs(30))
        .await
        .unwrap();
    let nodes = cluster.nodes().to_vec();
    let other = *nodes.iter().find(|&&n| n != leader).unwrap();
    let minority = vec![leader, other];
    let majority: Vec<NodeId> = nodes
        .iter()
        .copied()
        .filter(|n| !minority.contains(n))
        .collect();
    cluster.set_cuts(&partition_cuts(
        &Partition::Halves {
            minority: minority.clone(),
        },
        &nodes,
        None,
    ));

    let transport = cluster.workload();
    let policy = RetryPolicy {
        attempt_timeout: Duration::from_millis(300),
    };
    // The old leader, cut off from the majority, gives no definite answer.
    let stuck = submit(
        transport.as_ref(),
        &[leader],
        &LeaderHint::default(),
        &transfer(1),
        0,
        Instant::now() + Duration::from_secs(2),
        policy,
    )
    .await;
    assert!(
        matches!(stuck, Submitted::Unknown { .. }),
        "the isolated leader committed: {stuck:?}"
    );

    // The majority elects a leader and commits.
    let hint = LeaderHint::default();
    for request in 2..=21 {
        let out = submit(
            transport.as_ref(),
            &majority,
            &hint,
            &transfer(request),
            0,
            Instant::now() + Duration::from_secs(10),
            policy,
        )
        .await;
        assert!(
            matches!(out, Submitted::Executed { .. }),
            "the majority commits: {out:?}"
        );
    }
    let during = cluster.statuses().await;
    let committed = majority
        .iter()
        .filter_map(|n| during.get(n))
        .map(|s| s.exec_index)
        .max()
        .unwrap();
    assert!(committed >= 20, "majority exec index {committed}");
    for n in &minority {
        if let Some(s) = during.get(n) {
            assert!(
                s.exec_index < committed,
                "{n} is behind while cut off: {s:?}"
            );
        }
    }

    cluster.set_cuts(&[]);
    assert!(
        cluster.wait_for_quiet(Duration::from_secs(30)).await,
        "the cluster settles after the heal"
    );
    let after = cluster.statuses().await;
    assert_eq!(after.len(), 5);
    for (n, s) in &after {
        assert!(s.exec_index >= committed, "{n} caught up: {s:?}");
    }
}
