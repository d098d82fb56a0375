//! `harness bench`: throughput and latency of the replicated bank, without faults.
//!
//! For each network mode (direct, and through the relay, to measure the relay's cost) a fresh
//! cluster runs two closed-loop phases: the classic 10 clients, then a high concurrency (200
//! clients by default) where batching carries the throughput. Every client issues transfers
//! one at a time; the latency of each (first send to definite answer, retries included) goes
//! into an HDR histogram. The first second of each phase is a warm-up and not counted. Results
//! are printed and saved as JSON; nothing here is a pass/fail test.

use crate::caller::{submit, LeaderHint, RetryPolicy, Submitted};
use crate::run::{self, Prepared, RunError, RunOptions};
use crate::rundir::NetMode;
use crate::transport::Transport;
use crate::workload::{account_names, OpGen};
use hdrhistogram::Histogram;
use replica::bank::Command;
use replica::types::{ClientId, NodeId, RequestId};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Clients per QUIC connection (a connection's concurrent streams are limited).
const CLIENTS_PER_TRANSPORT: usize = 50;
/// Not counted at the start of each phase.
const WARMUP: Duration = Duration::from_secs(1);
/// Latencies above this are clamped into the histogram's top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub run: RunOptions,
    /// Length of each measured phase.
    pub phase: Duration,
    pub low_clients: u32,
    pub high_clients: u32,
    pub nets: Vec<NetMode>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    pub net: NetMode,
    pub clients: u32,
    pub seconds: f64,
    /// Definite answers (ok or insufficient funds) per second.
    pub ops_per_sec: f64,
    pub ok: u64,
    pub unknown: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    pub nodes: u32,
    pub phases: Vec<PhaseResult>,
    /// Throughput through the relay relative to direct, per client count (1.0 = no cost).
    pub relay_ratio: Vec<(u32, f64)>,
    pub run_dirs: Vec<PathBuf>,
}

pub async fn run_bench(opts: &BenchOptions) -> Result<BenchReport, RunError> {
    let mut phases = Vec::new();
    let mut run_dirs = Vec::new();
    for &net in &opts.nets {
        let mut run_opts = opts.run.clone();
        run_opts.params.net = net;
        run_opts.params.nemesis = Vec::new();
        run_opts.params.clients = opts.high_clients.max(opts.low_clients);
        run::validate(&run_opts.params)?;
        let Prepared {
            dir, mut cluster, ..
        } = run::prepare(&run_opts, "bench", account_names(10)).await?;
        run_dirs.push(dir);
        let mut client_base = 0u64;
        for clients in [opts.low_clients, opts.high_clients] {
            let transports = (0..(clients as usize).div_ceil(CLIENTS_PER_TRANSPORT))
                .map(|_| cluster.new_workload_transport())
                .collect::<Result<Vec<_>, _>>()?;
            let hint = Arc::new(LeaderHint::default());
            if let Some(leader) = cluster.leader().await {
                hint.set(leader);
            }
            let phase = Phase {
                transports,
                nodes: cluster.nodes().to_vec(),
                hint,
                policy: RetryPolicy {
                    attempt_timeout: Duration::from_millis(opts.run.params.attempt_timeout_ms),
                },
                seed: opts.run.seed,
                client_base,
            };
            let before = cluster.relay().map(|r| r.totals());
            let result = phase.run(net, clients, opts.phase).await;
            if let (Some(relay), Some(before)) = (cluster.relay(), before) {
                let after = relay.totals();
                let datagrams = after.forwarded - before.forwarded;
                let bursts = (after.bursts - before.bursts).max(1);
                eprintln!(
                    "relay: {datagrams} datagrams in {bursts} bursts ({:.2} per burst)",
                    datagrams as f64 / bursts as f64
                );
            }
            phases.push(result);
            client_base += u64::from(clients);
        }
        cluster.stop_all();
    }
    let relay_ratio = ratios(&phases);
    Ok(BenchReport {
        nodes: opts.run.params.nodes,
        phases,
        relay_ratio,
        run_dirs,
    })
}

fn ratios(phases: &[PhaseResult]) -> Vec<(u32, f64)> {
    phases
        .iter()
        .filter(|p| p.net == NetMode::Relay)
        .filter_map(|relay| {
            let direct = phases
                .iter()
                .find(|d| d.net == NetMode::Direct && d.clients == relay.clients)?;
            (direct.ops_per_sec > 0.0)
                .then(|| (relay.clients, relay.ops_per_sec / direct.ops_per_sec))
        })
        .collect()
}

pub fn describe(p: &PhaseResult) -> String {
    format!(
        "{:<6} {:>4} clients: {:>9.0} ops/s  p50 {:>7.2} ms  p90 {:>7.2}  p99 {:>7.2}  p99.9 {:>7.2}  max {:>8.2}  ({} ok, {} unknown)",
        format!("{:?}", p.net).to_lowercase(),
        p.clients,
        p.ops_per_sec,
        p.p50_ms,
        p.p90_ms,
        p.p99_ms,
        p.p999_ms,
        p.max_ms,
        p.ok,
        p.unknown
    )
}

struct Phase {
    transports: Vec<Arc<dyn Transport>>,
    nodes: Vec<NodeId>,
    hint: Arc<LeaderHint>,
    policy: RetryPolicy,
    seed: u64,
    client_base: u64,
}

struct ClientStats {
    histogram: Histogram<u64>,
    ok: u64,
    unknown: u64,
}

impl Phase {
    async fn run(&self, net: NetMode, clients: u32, length: Duration) -> PhaseResult {
        let start = Instant::now();
        let counted_from = start + WARMUP;
        let end = counted_from + length;
        let mut tasks = Vec::new();
        for k in 0..u64::from(clients) {
            let transport =
                self.transports[k as usize / CLIENTS_PER_TRANSPORT % self.transports.len()].clone();
            let worker = BenchClient {
                transport,
                nodes: self.nodes.clone(),
                hint: self.hint.clone(),
                policy: self.policy,
                client: self.client_base + k,
                ops: OpGen::new(self.seed, self.client_base + k, account_names(10))
                    .transfers_only(),
            };
            tasks.push(tokio::spawn(worker.run(counted_from, end)));
        }
        let mut histogram = new_histogram();
        let (mut ok, mut unknown) = (0, 0);
        for task in tasks {
            if let Ok(stats) = task.await {
                let _ = histogram.add(&stats.histogram);
                ok += stats.ok;
                unknown += stats.unknown;
            }
        }
        let seconds = length.as_secs_f64();
        let ms = |q: f64| histogram.value_at_quantile(q) as f64 / 1000.0;
        PhaseResult {
            net,
            clients,
            seconds,
            ops_per_sec: ok as f64 / seconds,
            ok,
            unknown,
            p50_ms: ms(0.5),
            p90_ms: ms(0.9),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
            max_ms: histogram.max() as f64 / 1000.0,
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3)
        .unwrap_or_else(|_| Histogram::new(3).expect("3 significant digits is valid"))
}

struct BenchClient {
    transport: Arc<dyn Transport>,
    nodes: Vec<NodeId>,
    hint: Arc<LeaderHint>,
    policy: RetryPolicy,
    client: u64,
    ops: OpGen,
}

impl BenchClient {
    async fn run(mut self, counted_from: Instant, end: Instant) -> ClientStats {
        let mut stats = ClientStats {
            histogram: new_histogram(),
            ok: 0,
            unknown: 0,
        };
        let mut request = 0;
        let start_node = usize::try_from(self.client).unwrap_or(0);
        while Instant::now() < end {
            request += 1;
            let command = Command {
                client: ClientId(self.client),
                request: RequestId(request),
                op: self.ops.next_op(),
            };
            let sent = Instant::now();
            let deadline = sent + Duration::from_secs(10);
            let outcome = submit(
                self.transport.as_ref(),
                &self.nodes,
                &self.hint,
                &command,
                start_node,
                deadline,
                self.policy,
            )
            .await;
            let done = Instant::now();
            if sent < counted_from || done > end {
                continue;
            }
            match outcome {
                Submitted::Executed { .. } | Submitted::Rejected { .. } => {
                    stats.ok += 1;
                    let us = u64::try_from((done - sent).as_micros()).unwrap_or(MAX_LATENCY_US);
                    stats
                        .histogram
                        .saturating_record(us.clamp(1, MAX_LATENCY_US));
                }
                Submitted::Unknown { .. } => stats.unknown += 1,
            }
        }
        stats
    }
}

/// Writes the report as JSON into the out directory; returns its path.
pub fn save(report: &BenchReport, out: &std::path::Path) -> Result<PathBuf, RunError> {
    let (stamp, _) = crate::rundir::utc_now();
    let path = out.join(format!("bench-{stamp}.json"));
    run::write_json(&path, report)?;
    Ok(path)
}
