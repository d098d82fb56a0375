//! The end of every run: heal, let the cluster settle, read through every replica, and fetch
//! what each replica holds into `final.json`.
//!
//! Why each step: healing (network, paused, killed) gives every replica the chance to catch up,
//! so the checker can compare all of them; waiting for quiet (all replicas at the same executed
//! slot) makes the fetched states comparable; the final `read_all` through each replica is a
//! client operation like any other, recorded in the history, so conservation and order are
//! checked on it too; the executed logs are paged (`FetchExecuted`) because a long run's log does
//! not fit in one frame.

use crate::clients::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use crate::cluster::journal::{JournalCollector, JournalError};
use crate::cluster::transport::Transport;
use crate::cluster::Cluster;
use crate::faults::nemesis::Nemesis;
use crate::run::record::Recorder;
use replica::bank::{Command, Op};
use replica::client_proto::{ClientRequest, ClientResponse};
use replica::types::{ClientId, NodeId, RequestId};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
use tokio::time::Instant;

/// Tries per fetch request.
const FETCH_TRIES: u32 = 3;

/// Bounds of the final phase's waits.
#[derive(Clone, Copy, Debug)]
pub struct FinalTimeouts {
    pub leader: Duration,
    pub quiet: Duration,
    pub read: Duration,
    /// One fetch request.
    pub fetch: Duration,
}

impl Default for FinalTimeouts {
    fn default() -> Self {
        FinalTimeouts {
            leader: Duration::from_secs(30),
            quiet: Duration::from_secs(30),
            read: Duration::from_secs(15),
            fetch: Duration::from_secs(3),
        }
    }
}

/// Undoes every fault: the nemesis's own, then anything else (a replica that died by itself is
/// restarted too, and recorded).
pub fn heal_all(
    cluster: &mut dyn crate::targets::Target,
    nemesis: &mut Nemesis,
    recorder: &Recorder,
) -> Result<(), crate::targets::TargetError> {
    nemesis.heal(cluster)?;
    let extra = cluster.heal_everything()?;
    if !extra.is_empty() {
        recorder.nemesis("heal-all", json!({"actions": extra}));
    }
    Ok(())
}

/// After healing: waits for a leader and quiet, reads through every replica (processes
/// `first_process`, `first_process + 1`, ...), waits for quiet again, then brings the collected
/// journals up to date and writes `final.json` into the run directory. Returns notes on what
/// did not go as hoped.
pub async fn settle_and_fetch(
    cluster: &Cluster,
    recorder: &Recorder,
    first_process: u64,
    policy: RetryPolicy,
    timeouts: FinalTimeouts,
    collector: &mut JournalCollector,
) -> Result<Vec<String>, JournalError> {
    let mut notes = Vec::new();
    if let Err(e) = cluster.wait_for_leader(timeouts.leader).await {
        notes.push(format!("after healing: {e}"));
    }
    if !cluster.wait_for_quiet(timeouts.quiet).await {
        notes.push(format!(
            "the replicas did not agree on an executed slot within {:?}",
            timeouts.quiet
        ));
    }
    let control = cluster.control();
    // A sharded bank has no cross-shard snapshot to read yet (one shard's read_all would
    // rightly be judged a torn snapshot): each replica reads an account of its shard instead.
    if cluster.is_sharded() {
        shard_final_reads(cluster, recorder, first_process, policy, timeouts.read).await;
    } else {
        final_reads(
            control.as_ref(),
            cluster.nodes(),
            recorder,
            first_process,
            policy,
            timeouts.read,
        )
        .await;
    }
    if !cluster.wait_for_quiet(timeouts.quiet).await {
        notes.push("the replicas were not quiet after the final reads".to_string());
    }
    let path = cluster.dir().join("final.json");
    notes.extend(
        write_final(
            control.as_ref(),
            cluster.nodes(),
            collector,
            &path,
            timeouts.fetch,
        )
        .await?,
    );
    collector.remove_files();
    Ok(notes)
}

/// A `read_all` submitted through each replica in turn, recorded as client operations.
pub async fn final_reads(
    transport: &dyn Transport,
    nodes: &[NodeId],
    recorder: &Recorder,
    first_process: u64,
    policy: RetryPolicy,
    timeout: Duration,
) -> Vec<Submitted> {
    let mut outcomes = Vec::new();
    for (k, _) in nodes.iter().enumerate() {
        let process = first_process + k as u64;
        let command = Command {
            client: ClientId(process),
            request: RequestId(1),
            op: Op::ReadAll,
        };
        // A private hint, so the request really starts at replica k.
        let hint = LeaderHint::default();
        recorder.invoke(process, &command);
        let outcome = submit(
            transport,
            nodes,
            &hint,
            &command,
            k,
            Instant::now() + timeout,
            policy,
        )
        .await;
        recorder.complete(process, &command, &outcome);
        outcomes.push(outcome);
    }
    outcomes
}

/// On a sharded bank, a `read` of the first account of its shard submitted through each
/// replica in turn (processes `first_process`, ...), recorded as client operations. Besides
/// checking the end state, it gives every replica an executed entry after the heal: a
/// replica that caught up by installing a snapshot has an empty journal until then.
pub async fn shard_final_reads(
    cluster: &Cluster,
    recorder: &Recorder,
    first_process: u64,
    policy: RetryPolicy,
    timeout: Duration,
) -> Vec<Submitted> {
    let control = cluster.control();
    let map = cluster.config().shard_map();
    let members = cluster.shard_members();
    let mut outcomes = Vec::new();
    for (k, (node, shard)) in cluster.node_shards().into_iter().enumerate() {
        let process = first_process + k as u64;
        let group = members.get(&shard).map_or(&[][..], Vec::as_slice);
        let Some(account) = map
            .accounts_of(replica::types::ShardId(shard))
            .into_iter()
            .next()
        else {
            continue;
        };
        let command = Command {
            client: ClientId(process),
            request: RequestId(1),
            op: Op::Read { account },
        };
        let start = group.iter().position(|n| *n == node).unwrap_or(0);
        let hint = LeaderHint::default();
        recorder.invoke(process, &command);
        let outcome = submit(
            control.as_ref(),
            group,
            &hint,
            &command,
            start,
            Instant::now() + timeout,
            policy,
        )
        .await;
        recorder.complete(process, &command, &outcome);
        outcomes.push(outcome);
    }
    outcomes
}

/// Pages one final catch-up may take per replica (each `PAGE` entries).
const FINAL_PAGES: u32 = 100_000;

/// Brings the collected journals up to date and writes `final.json` with every replica's
/// balances. A replica whose balances and journal disagree on the exec index is asked again
/// (the cluster should be quiet by now; a few tries bound it).
pub async fn write_final(
    transport: &dyn Transport,
    nodes: &[NodeId],
    collector: &mut JournalCollector,
    path: &Path,
    timeout: Duration,
) -> Result<Vec<String>, JournalError> {
    let mut notes = Vec::new();
    let mut balances = BTreeMap::new();
    for &node in nodes {
        let mut result = Err(String::from("not fetched"));
        for _ in 0..FETCH_TRIES {
            let poll = collector
                .poll(transport, node, timeout, FINAL_PAGES)
                .await?;
            let db = call_with_retries(transport, node, ClientRequest::PrintDb, timeout).await;
            result = match db {
                Ok(ClientResponse::Db {
                    exec_index,
                    balances,
                    ..
                }) => {
                    if exec_index == collector.last(node) {
                        Ok(balances)
                    } else {
                        Err(format!(
                            "balances at exec index {exec_index} but journal at {} ({poll:?})",
                            collector.last(node)
                        ))
                    }
                }
                Ok(other) => Err(format!("PrintDB answered {other:?}")),
                Err(e) => Err(e),
            };
            if result.is_ok() {
                break;
            }
        }
        if let Err(e) = &result {
            notes.push(format!("{node}: {e}"));
        }
        balances.insert(node, result);
    }
    collector.write_final(path, &balances)?;
    Ok(notes)
}

async fn call_with_retries(
    transport: &dyn Transport,
    node: NodeId,
    request: ClientRequest,
    timeout: Duration,
) -> Result<ClientResponse, String> {
    let mut last = String::new();
    for _ in 0..FETCH_TRIES {
        match transport.call(node, request.clone(), timeout).await {
            Ok(ClientResponse::Error { message, .. }) => last = format!("{node}: {message}"),
            Ok(response) => return Ok(response),
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::workload::account_names;
    use crate::cluster::fake::FakeCluster;
    use replica::bank::OpResult;

    #[tokio::test]
    async fn final_reads_and_fetch_against_a_fake_cluster() {
        let accounts = account_names(3);
        let fake = FakeCluster::new(3, &accounts, 10);
        let nodes: Vec<NodeId> = (1..=3).map(NodeId).collect();
        fake.set_leader(Some(NodeId(2)));
        let dir = tempfile::tempdir().unwrap();
        let recorder =
            Recorder::create(&dir.path().join("h.jsonl"), std::time::Instant::now()).unwrap();
        let policy = RetryPolicy {
            attempt_timeout: Duration::from_millis(20),
        };
        let outs = final_reads(&fake, &nodes, &recorder, 10, policy, Duration::from_secs(1)).await;
        assert_eq!(outs.len(), 3);
        for out in &outs {
            match out {
                Submitted::Executed { node, reply } => {
                    assert_eq!(*node, NodeId(2));
                    assert!(matches!(reply.result, OpResult::Balances { .. }));
                }
                other => panic!("{other:?}"),
            }
        }
        let history = std::fs::read_to_string(dir.path().join("h.jsonl")).unwrap();
        assert_eq!(history.lines().count(), 6);
        assert!(history.lines().next().unwrap().contains("\"process\":10"));
        fake.set_down(NodeId(3), true);
        let mut collector = JournalCollector::new(&dir.path().join("journals"), &nodes).unwrap();
        let path = dir.path().join("final.json");
        let t = Duration::from_millis(20);
        let notes = write_final(&fake, &nodes, &mut collector, &path, t)
            .await
            .unwrap();
        assert_eq!(notes.len(), 1, "n3 could not be fetched: {notes:?}");
        let state = checker::final_state::FinalState::load(&path).unwrap();
        let n1 = &state.nodes["n1"];
        assert_eq!(n1.executed.len(), 3);
        assert_eq!(n1.executed[2].exec_index, 3);
        assert_eq!(n1.balances.as_ref().unwrap()["A"], 10);
        assert!(state.nodes["n3"].error.is_some());
        assert!(state.nodes["n3"].balances.is_none());
    }
}
