//! The campaign's client workers: each one a closed loop (or a paced loop with `--rate`) of
//! generated operations, one request at a time, recorded as invoke + completion.
//!
//! Client `i` is process `i` in the history and `ClientId(i)` on the wire; its request ids count
//! up from 1. A request that gets no definite answer before its deadline is recorded as `info`,
//! and the client moves on with a new request id (the replica's reply table then treats any late
//! copy of the old one as stale, so it executes at most once).

use crate::clients::workload::{OpGen, ShardMix, WorkloadShape};
use crate::record::Recorder;
use crate::targets::BankClient;
use replica::bank::Command;
use replica::types::{Account, ClientId, RequestId};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What every worker of a run shares.
#[derive(Clone)]
pub struct WorkerContext {
    /// Runs one operation against the system under test.
    pub client: Arc<dyn BankClient>,
    pub recorder: Arc<Recorder>,
    /// How long one request may be retried.
    pub op_timeout: Duration,
    /// No new request starts after this.
    pub end: Instant,
    /// Pause between one client's requests (`--rate`), if any.
    pub pace: Option<Duration>,
    pub accounts: Vec<Account>,
    pub seed: u64,
    /// A sharded bank's workload, if any.
    pub shards: Option<ShardMix>,
    /// The mix of operations and the contention.
    pub shape: WorkloadShape,
}

/// Starts `clients` workers; each task returns how many requests it made.
pub fn spawn_workers(ctx: &WorkerContext, clients: u64) -> Vec<JoinHandle<u64>> {
    (0..clients)
        .map(|client| tokio::spawn(run_worker(ctx.clone(), client, clients)))
        .collect()
}

/// Per-client pause that gives `rate` operations per second over `clients` clients.
pub fn pace_for(rate: Option<f64>, clients: u32) -> Option<Duration> {
    let rate = rate.filter(|r| r.is_finite() && *r > 0.0)?;
    Some(Duration::from_secs_f64(f64::from(clients.max(1)) / rate))
}

async fn run_worker(ctx: WorkerContext, client: u64, clients: u64) -> u64 {
    let mut ops = OpGen::new(ctx.seed, client, ctx.accounts.clone())
        .with_shape(ctx.shape)
        .spread_over(clients);
    if let Some(mix) = &ctx.shards {
        ops = ops.with_shards(mix.clone());
    }
    let mut request = 0u64;
    let mut next_start = Instant::now();
    loop {
        if let Some(pace) = ctx.pace {
            tokio::time::sleep_until(next_start).await;
            next_start += pace;
        }
        if Instant::now() >= ctx.end {
            return request;
        }
        request += 1;
        let command = Command {
            client: ClientId(client),
            request: RequestId(request),
            op: ops.next_op(),
        };
        ctx.recorder.invoke(client, &command);
        let deadline = Instant::now() + ctx.op_timeout;
        let outcome = ctx.client.submit(&command, deadline).await;
        ctx.recorder.complete(client, &command, &outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::caller::{LeaderHint, RetryPolicy};
    use crate::clients::workload::account_names;
    use crate::targets::faultline::fake::FakeCluster;
    use crate::targets::faultline::FaultlineClient;
    use replica::types::NodeId;

    #[tokio::test]
    async fn workers_record_a_complete_history_against_a_fake_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let accounts = account_names(4);
        let fake = Arc::new(FakeCluster::new(3, &accounts, 10));
        let recorder = Arc::new(Recorder::create(&path, std::time::Instant::now()).unwrap());
        let ctx = WorkerContext {
            client: Arc::new(FaultlineClient {
                transport: fake.clone(),
                nodes: (1..=3).map(NodeId).collect(),
                hint: Arc::new(LeaderHint::default()),
                policy: RetryPolicy {
                    attempt_timeout: Duration::from_millis(10),
                },
            }),
            recorder: recorder.clone(),
            op_timeout: Duration::from_millis(100),
            end: Instant::now() + Duration::from_millis(200),
            pace: pace_for(Some(400.0), 4),
            accounts: accounts.clone(),
            seed: 1,
            shards: None,
            shape: WorkloadShape::default(),
        };
        // Halfway through, the leader moves and one reply is lost.
        let workers = spawn_workers(&ctx, 4);
        tokio::time::sleep(Duration::from_millis(80)).await;
        fake.set_leader(Some(NodeId(2)));
        fake.lose_next_replies(1);
        let mut total = 0;
        for w in workers {
            total += w.await.unwrap();
        }
        let (invoked, ok, fail, info) = recorder.counts.snapshot();
        assert_eq!(invoked, total);
        assert_eq!(ok + fail + info, invoked, "every invocation completed");
        assert!(
            (20..=120).contains(&total),
            "paced at ~400/s for 0.2 s: {total}"
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count() as u64, 2 * total);
        let balances = fake.balances();
        assert_eq!(
            balances.values().sum::<i64>(),
            40,
            "the fake bank conserves money"
        );
    }

    #[test]
    fn pace() {
        assert_eq!(pace_for(None, 10), None);
        assert_eq!(pace_for(Some(100.0), 10), Some(Duration::from_millis(100)));
        assert_eq!(pace_for(Some(0.0), 10), None);
    }
}
