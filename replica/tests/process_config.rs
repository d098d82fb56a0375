//! Tier 3: replicas compare configurations when they connect (issue 21, item 6). A replica
//! started with other accounts and no checkpoint used to join the cluster and diverge.

mod process_support;

use process_support::*;
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::config::ClusterConfig;
use replica::types::NodeId;
use std::time::Duration;

const ELECTION: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_with_other_accounts_is_refused_and_says_why() {
    let mut cluster = Cluster::start(3);
    let client = cluster.client();
    wait_for_leader(&client, &cluster.live(), ELECTION)
        .await
        .expect("a leader");
    let odd = NodeId(3);
    cluster.kill(odd);
    std::fs::remove_dir_all(cluster.data_dir(odd)).unwrap();
    // The same cluster, but for n3 one account more (and so another fingerprint).
    let mut other: ClusterConfig = cluster.config.clone();
    other.accounts.push("Z".into());
    let other_path = cluster.dir.path().join("other.toml");
    other.save(&other_path).unwrap();
    cluster.start_node_with(odd, &other_path);

    for r in 1..=5 {
        let request = transfer(3, r, "A", "B", 1);
        let answer = submit(&client, &request, ELECTION).await;
        assert!(answer.as_ref().is_some_and(transferred), "{answer:?}");
    }
    // The client may first try the connection to n3's previous run.
    let mut db = None;
    for _ in 0..20 {
        let call = client.call(odd, &ClientRequest::PrintDb, Duration::from_secs(1));
        if let Ok(answer) = call.await {
            db = Some(answer);
            break;
        }
    }
    let db = db.expect("n3 runs and answers");
    let ClientResponse::Db { exec_index, .. } = db else {
        panic!("{db:?}")
    };
    assert_eq!(exec_index, 0, "n3 took part in nothing");

    let ours = cluster.config.fingerprint().to_string();
    let theirs = other.fingerprint().to_string();
    assert_ne!(ours, theirs);
    let log = |id: &str| std::fs::read_to_string(cluster.dir.path().join(format!("{id}.log")));
    let n1 = log("n1").unwrap();
    let refusal = n1
        .lines()
        .find(|l| l.contains("refusing n3"))
        .unwrap_or_else(|| panic!("n1 says it refuses n3:\n{}", cluster.logs_tail()));
    assert!(
        refusal.contains(&ours) && refusal.contains(&theirs),
        "{refusal}"
    );
    let n3 = log("n3").unwrap();
    assert!(
        n3.lines()
            .any(|l| l.contains("refuses our peer messages") && l.contains(&ours)),
        "n3 learns why: {n3}"
    );
}
