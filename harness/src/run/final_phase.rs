//! The end of every run: heal, let the cluster settle, read through every replica, and fetch
//! what each replica holds into `final.json`.
//!
//! Why each step: healing (network, paused, killed) gives every replica the chance to catch up,
//! so the checker can compare all of them; waiting for quiet (all replicas at the same executed
//! slot) makes the fetched states comparable; the final `read_all` through each replica is a
//! client operation like any other, recorded in the history, so conservation and order are
//! checked on it too; the executed logs are paged (`FetchExecuted`) because a long run's log does
//! not fit in one frame.
//!
//! Every run makes a liveness promise. A sharded bank, once healed and led, records a nemesis
//! `stable` event, writes `liveness_bound_ms` to run.toml, and probes every account (and the
//! cross-shard snapshot) until each read succeeds or the bound has passed, so a lock never
//! released shows as a `lock-conflict` after the bound: the checker's `stall`. A classic bank
//! records `stable` as soon as everything is healed, before waiting for a leader (a cluster
//! that never elects one must show as a stall, not as a harness error), writes the bound and
//! `progress_bound_ms` (the checker's no-progress rule), and probes with a `read_all` through
//! every replica until one is answered or the bound and a margin have passed.

use crate::clients::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use crate::faults::nemesis::Nemesis;
use crate::faults::processes::ProcessWorld;
use crate::os::transport::Transport;
use crate::record::Recorder;
use crate::targets::faultline::cluster::Cluster;
use crate::targets::faultline::journal::{JournalCollector, JournalError};
use replica::bank::{Command, Op, OpResult};
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
    world: &mut ProcessWorld<'_>,
    nemesis: &mut Nemesis,
    recorder: &Recorder,
) -> Result<(), crate::targets::TargetError> {
    nemesis.heal(world)?;
    let extra = world.cluster().heal_everything()?;
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
    let mut notes = declare_progress_bound(cluster.dir(), PROGRESS_BOUND);
    let classic_stable = (!cluster.is_sharded()).then(|| {
        notes.extend(declare_stable(cluster.dir(), recorder, LIVENESS_BOUND));
        Instant::now()
    });
    let led = cluster.wait_for_leader(timeouts.leader).await;
    if let Err(e) = &led {
        notes.push(format!("after healing: {e}"));
    }
    if !cluster.wait_for_quiet(timeouts.quiet).await {
        notes.push(format!(
            "the replicas did not agree on an executed slot within {:?}",
            timeouts.quiet
        ));
    }
    let control = cluster.control();
    if cluster.is_sharded() && led.is_ok() {
        let probes = shard_probes(cluster);
        let first = first_process + cluster.nodes().len() as u64;
        notes.extend(declare_stable(cluster.dir(), recorder, LIVENESS_BOUND));
        let until = Instant::now() + LIVENESS_BOUND + PROBE_MARGIN;
        let probe = Probing {
            transport: control.as_ref(),
            recorder,
            first_process: first,
            policy,
            op_timeout: LIVENESS_BOUND,
        };
        let unanswered = probe.until_answered(&probes, until).await;
        if !unanswered.is_empty() {
            notes.push(format!(
                "after the heal, {} never got an answer but a lock conflict or a timeout",
                unanswered.join(", ")
            ));
        }
    }
    if let Some(stable) = classic_stable {
        let probe = Probing {
            transport: control.as_ref(),
            recorder,
            first_process: first_process + cluster.nodes().len() as u64,
            policy,
            op_timeout: LIVENESS_BOUND,
        };
        let all = [Probe {
            op: Op::ReadAll,
            group: cluster.nodes().to_vec(),
        }];
        let until = stable + LIVENESS_BOUND + PROBE_MARGIN;
        if !probe.until_answered(&all, until).await.is_empty() {
            notes.push(format!(
                "after the heal, no read_all was answered within {:?}",
                LIVENESS_BOUND + PROBE_MARGIN
            ));
        }
    }
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

/// How long after the `stable` event a sharded bank owes every operation an answer (and every
/// transaction in flight its end): well above the replicas' 1 s vote timeout plus resends.
pub const LIVENESS_BOUND: Duration = Duration::from_millis(5_000);
/// How long the liveness probe goes on past the bound, so that a lock never released meets a
/// read invoked after the bound (the checker's `stall`).
const PROBE_MARGIN: Duration = Duration::from_millis(1_500);
/// Between two rounds of the probe.
const PROBE_PAUSE: Duration = Duration::from_millis(200);

/// How long a bank may go without answering any operation `ok` while a majority of its
/// replicas (of every shard's, sharded) is up and connected (the checker's `progress` check):
/// twice the liveness bound, so a leader's death, an election and the clients' retries fit
/// well within it.
pub const PROGRESS_BOUND: Duration = Duration::from_millis(10_000);

/// Writes `progress_bound_ms` at run.toml's top level; returns notes on what could not be.
pub fn declare_progress_bound(dir: &Path, bound: Duration) -> Vec<String> {
    let bound_ms = crate::run::shared::ms(bound);
    match write_top_level(&dir.join("run.toml"), "progress_bound_ms", bound_ms) {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!("progress is not judged: {e}")],
    }
}

/// Records the nemesis `stable` event (everything healed, every shard led: from here the
/// liveness promise holds) and writes `liveness_bound_ms` at run.toml's top level, where the
/// checker's liveness check reads it. Returns notes on what could not be written.
pub fn declare_stable(dir: &Path, recorder: &Recorder, bound: Duration) -> Vec<String> {
    let bound_ms = crate::run::shared::ms(bound);
    let mut notes = Vec::new();
    if let Err(e) = write_top_level(&dir.join("run.toml"), "liveness_bound_ms", bound_ms) {
        notes.push(format!("liveness is not judged: {e}"));
    }
    recorder.nemesis("stable", json!({"liveness_bound_ms": bound_ms}));
    notes
}

/// Sets the integer `key` at the top level of the run.toml at `path`.
fn write_top_level(path: &Path, key: &str, bound_ms: u64) -> Result<(), String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut table: toml::Table = text
        .parse()
        .map_err(|e| format!("{} is not TOML: {e}", path.display()))?;
    let bound = i64::try_from(bound_ms).unwrap_or(i64::MAX);
    table.insert(key.into(), toml::Value::Integer(bound));
    let text = toml::to_string_pretty(&table)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// One operation of the liveness probe and the replicas it goes through.
#[derive(Clone, Debug)]
pub struct Probe {
    pub op: Op,
    pub group: Vec<NodeId>,
}

/// The sharded bank's probe: a `read` of every account through its shard, and a `read_all`
/// (the cross-shard snapshot, coordinated by shard 1, as the clients route it).
pub fn shard_probes(cluster: &Cluster) -> Vec<Probe> {
    let map = cluster.config().shard_map();
    let members = cluster.shard_members();
    let group = |shard: u32| members.get(&shard).cloned().unwrap_or_default();
    let mut probes: Vec<Probe> = cluster
        .config()
        .accounts
        .iter()
        .filter_map(|a| {
            let shard = map.shard_of_account(a)?;
            Some(Probe {
                op: Op::Read { account: a.clone() },
                group: group(shard.0),
            })
        })
        .collect();
    probes.push(Probe {
        op: Op::ReadAll,
        group: group(1),
    });
    probes
}

/// Runs probes as client operations (probe k is process `first_process + k`), each with a
/// fresh request id, recorded in the history.
pub struct Probing<'a> {
    pub transport: &'a dyn Transport,
    pub recorder: &'a Recorder,
    pub first_process: u64,
    pub policy: RetryPolicy,
    /// One operation's deadline.
    pub op_timeout: Duration,
}

impl Probing<'_> {
    /// Submits every probe, again and again, until each has been answered with a balance or
    /// `until` passes; returns the probes never answered so (as text). A lock that is never
    /// released thus meets reads invoked after the liveness bound.
    pub async fn until_answered(&self, probes: &[Probe], until: Instant) -> Vec<String> {
        let hints: Vec<LeaderHint> = probes.iter().map(|_| LeaderHint::default()).collect();
        let mut requests = vec![0u64; probes.len()];
        let mut pending: Vec<usize> = (0..probes.len()).collect();
        loop {
            let mut still = Vec::new();
            for k in pending {
                requests[k] += 1;
                let process = self.first_process + k as u64;
                let command = Command {
                    client: ClientId(process),
                    request: RequestId(requests[k]),
                    op: probes[k].op.clone(),
                };
                self.recorder.invoke(process, &command);
                let deadline = Instant::now() + self.op_timeout;
                let group = &probes[k].group;
                let outcome = submit(
                    self.transport,
                    group,
                    &hints[k],
                    &command,
                    0,
                    deadline,
                    self.policy,
                )
                .await;
                self.recorder.complete(process, &command, &outcome);
                if !read_something(&outcome) {
                    still.push(k);
                }
            }
            pending = still;
            if pending.is_empty() || Instant::now() >= until {
                break;
            }
            tokio::time::sleep(PROBE_PAUSE).await;
        }
        pending.iter().map(|&k| describe(&probes[k].op)).collect()
    }
}

/// Whether a probe read what it asked for: a balance, or the bank (a sharded bank's
/// `read_all` answers with a snapshot).
fn read_something(outcome: &Submitted) -> bool {
    matches!(
        outcome,
        Submitted::Executed { reply, .. }
            if matches!(
                reply.result,
                OpResult::Balance { .. } | OpResult::Balances { .. } | OpResult::Snapshot { .. }
            )
    )
}

fn describe(op: &Op) -> String {
    match op {
        Op::Read { account } => format!("the read of {account}"),
        Op::ReadAll => "the read_all".to_string(),
        Op::Transfer { from, to, .. } => format!("the transfer from {from} to {to}"),
    }
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
    use crate::targets::faultline::fake::FakeCluster;
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

    /// The fake cluster, except that account B stays locked for ever.
    struct LockedB(FakeCluster);

    impl Transport for LockedB {
        fn call(
            &self,
            node: NodeId,
            request: ClientRequest,
            timeout: Duration,
        ) -> crate::os::transport::CallFuture<'_> {
            if let ClientRequest::Submit(Command {
                op: Op::Read { account },
                ..
            }) = &request
            {
                if account == "B" {
                    let result = OpResult::LockConflict {
                        account: account.clone(),
                    };
                    let reply = replica::bank::Reply {
                        exec_index: 1,
                        result,
                    };
                    return Box::pin(async move { Ok(ClientResponse::Reply { node, reply }) });
                }
            }
            self.0.call(node, request, timeout)
        }
    }

    fn probes(accounts: &[replica::types::Account], group: &[NodeId]) -> Vec<Probe> {
        let mut probes: Vec<Probe> = accounts
            .iter()
            .map(|a| Probe {
                op: Op::Read { account: a.clone() },
                group: group.to_vec(),
            })
            .collect();
        probes.push(Probe {
            op: Op::ReadAll,
            group: group.to_vec(),
        });
        probes
    }

    fn history(path: &Path) -> Vec<serde_json::Value> {
        let text = std::fs::read_to_string(path).unwrap();
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[tokio::test]
    async fn stable_is_recorded_and_the_bound_lands_at_run_toml_top_level() {
        let dir = tempfile::tempdir().unwrap();
        let run_toml = dir.path().join("run.toml");
        std::fs::write(&run_toml, "seed = 1\n\n[params]\nnodes = 6\n").unwrap();
        let path = dir.path().join("h.jsonl");
        let recorder = Recorder::create(&path, std::time::Instant::now()).unwrap();
        let notes = declare_stable(dir.path(), &recorder, Duration::from_millis(4_321));
        recorder.close();
        assert!(notes.is_empty(), "{notes:?}");
        let table: toml::Table = std::fs::read_to_string(&run_toml).unwrap().parse().unwrap();
        assert_eq!(table["liveness_bound_ms"].as_integer(), Some(4_321));
        assert_eq!(
            table["params"]["nodes"].as_integer(),
            Some(6),
            "the rest is kept"
        );
        let events = history(&path);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["process"], "nemesis");
        assert_eq!(events[0]["f"], "stable");
        // Without a run.toml the bound cannot be written, and the note says so.
        let elsewhere = tempfile::tempdir().unwrap();
        let notes = declare_stable(elsewhere.path(), &recorder, LIVENESS_BOUND);
        assert!(notes[0].contains("not judged"), "{notes:?}");
    }

    #[tokio::test]
    async fn the_probe_reads_every_account_once_when_nothing_is_locked() {
        let accounts = account_names(3);
        let fake = FakeCluster::new(3, &accounts, 10);
        let nodes: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let recorder = Recorder::create(&path, std::time::Instant::now()).unwrap();
        let probing = Probing {
            transport: &fake,
            recorder: &recorder,
            first_process: 20,
            policy: RetryPolicy::default(),
            op_timeout: Duration::from_secs(5),
        };
        let until = Instant::now() + Duration::from_secs(60);
        let unanswered = probing
            .until_answered(&probes(&accounts, &nodes), until)
            .await;
        recorder.close();
        assert!(unanswered.is_empty(), "{unanswered:?}");
        let events = history(&path);
        assert_eq!(events.len(), 2 * 4, "one invoke and one ok per probe");
        let processes: std::collections::BTreeSet<u64> = events
            .iter()
            .filter_map(|e| e["process"].as_u64())
            .collect();
        assert_eq!(processes, (20..24).collect());
        assert!(events
            .iter()
            .all(|e| e["type"] == "invoke" || e["type"] == "ok"));
    }

    #[tokio::test]
    async fn a_lock_never_released_is_read_again_until_the_deadline_and_reported() {
        let accounts = account_names(3);
        let locked = LockedB(FakeCluster::new(3, &accounts, 10));
        let nodes: Vec<NodeId> = (1..=3).map(NodeId).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.jsonl");
        let recorder = Recorder::create(&path, std::time::Instant::now()).unwrap();
        let probing = Probing {
            transport: &locked,
            recorder: &recorder,
            first_process: 20,
            policy: RetryPolicy::default(),
            op_timeout: Duration::from_secs(5),
        };
        let until = Instant::now() + 5 * PROBE_PAUSE;
        let unanswered = probing
            .until_answered(&probes(&accounts, &nodes), until)
            .await;
        recorder.close();
        assert!(
            Instant::now() >= until,
            "the probe went on until its deadline"
        );
        assert_eq!(unanswered, ["the read of B"]);
        let events = history(&path);
        let invokes_of = |process: u64| {
            events
                .iter()
                .filter(|e| e["process"] == process && e["type"] == "invoke")
                .count()
        };
        assert_eq!(invokes_of(20), 1, "A was read once");
        assert!(invokes_of(21) >= 2, "B was read again and again");
        let last_b = events.iter().rev().find(|e| e["process"] == 21).unwrap();
        assert_eq!(last_b["type"], "fail");
        assert_eq!(last_b["value"]["error"], "lock-conflict");
        let ids: Vec<u64> = events
            .iter()
            .filter(|e| e["process"] == 21 && e["type"] == "invoke")
            .filter_map(|e| e["request_id"].as_u64())
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "fresh request ids: {ids:?}"
        );
    }

    #[test]
    fn a_snapshot_or_a_balance_answers_a_probe_and_a_lock_conflict_does_not() {
        let executed = |result| Submitted::Executed {
            node: NodeId(1),
            reply: replica::bank::Reply {
                exec_index: 1,
                result,
            },
        };
        let snapshot = OpResult::Snapshot {
            balances: BTreeMap::new(),
            positions: BTreeMap::new(),
        };
        assert!(read_something(&executed(snapshot)));
        assert!(read_something(&executed(OpResult::Balance { balance: 3 })));
        let locked = OpResult::LockConflict {
            account: "A".into(),
        };
        assert!(!read_something(&executed(locked)));
        let unknown = Submitted::Unknown {
            last_error: "timeout".into(),
            last_node: None,
        };
        assert!(!read_something(&unknown));
    }
}
