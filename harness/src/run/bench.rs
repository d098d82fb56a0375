//! `harness bench`: throughput and latency of the replicated bank, without faults, for one
//! target or two side by side (`--compare`: faultline and etcd back to back).
//!
//! For each target and network mode (direct, and through the relay, to measure the relay's
//! cost) a fresh cluster runs two closed-loop phases: the classic 10 clients, then a high
//! concurrency (200 clients by default) where batching carries the throughput. Every client
//! issues transfers one at a time through the target's [`BankClient`]; the latency of each
//! (first send to definite answer, retries included) goes into an HDR histogram. The first
//! second of each phase is a warm-up and not counted. Both targets fsync (the replica's and
//! etcd's default). The result is one table ([`render_table`]), saved as JSON too; nothing here
//! is a pass/fail test.

use crate::clients::caller::Submitted;
use crate::clients::workload::{account_names, OpGen};
use crate::run::rundir::NetMode;
use crate::run::{self, RunError, RunOptions};
use crate::targets::{BankClient, TargetKind};
use hdrhistogram::Histogram;
use replica::bank::Command;
use replica::types::{ClientId, RequestId};
use serde::Serialize;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Not counted at the start of each phase.
const WARMUP: Duration = Duration::from_secs(1);
/// Latencies above this are clamped into the histogram's top bucket.
const MAX_LATENCY_US: u64 = 60_000_000;
/// Accounts of the bench workload.
const BENCH_ACCOUNTS: usize = 10;

#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub run: RunOptions,
    /// Length of each measured phase.
    pub phase: Duration,
    pub low_clients: u32,
    pub high_clients: u32,
    pub nets: Vec<NetMode>,
    /// The systems to measure, in order.
    pub targets: Vec<TargetKind>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PhaseResult {
    pub target: TargetKind,
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
    /// Length of each measured phase, in seconds (after the warm-up).
    pub phase_s: f64,
    pub workload: String,
    pub fsync: bool,
    pub phases: Vec<PhaseResult>,
    /// Throughput through the relay relative to direct, per target and client count
    /// (1.0 = no cost).
    pub relay_ratio: Vec<(TargetKind, u32, f64)>,
    pub run_dirs: Vec<PathBuf>,
}

/// What every phase runs: closed-loop transfers between the bench's accounts.
pub const WORKLOAD: &str = "transfers only, closed loop, 10 accounts";

pub async fn run_bench(opts: &BenchOptions) -> Result<BenchReport, RunError> {
    let mut phases = Vec::new();
    let mut run_dirs = Vec::new();
    for &target_kind in &opts.targets {
        for &net in &opts.nets {
            let mut run_opts = opts.run.clone();
            run_opts.params.target = target_kind;
            run_opts.params.net = net;
            run_opts.params.nemesis = Vec::new();
            run_opts.params.clients = opts.high_clients.max(opts.low_clients);
            run::validate(&run_opts.params)?;
            let (dir, mut target, _) =
                run::prepare_target(&run_opts, "bench", account_names(BENCH_ACCOUNTS)).await?;
            run_dirs.push(dir);
            target.begin_bench().await?;
            let mut client_base = 0u64;
            for clients in [opts.low_clients, opts.high_clients] {
                let phase = Phase {
                    client: target.bench_client(clients)?,
                    seed: opts.run.seed,
                    client_base,
                };
                let mut result = phase.run(clients, opts.phase).await;
                result.target = target_kind;
                result.net = net;
                phases.push(result);
                client_base += u64::from(clients);
            }
            target.stop_all();
        }
    }
    let relay_ratio = ratios(&phases);
    Ok(BenchReport {
        nodes: opts.run.params.nodes,
        phase_s: opts.phase.as_secs_f64(),
        workload: WORKLOAD.to_string(),
        fsync: true,
        phases,
        relay_ratio,
        run_dirs,
    })
}

fn ratios(phases: &[PhaseResult]) -> Vec<(TargetKind, u32, f64)> {
    phases
        .iter()
        .filter(|p| p.net == NetMode::Relay)
        .filter_map(|relay| {
            let direct = phases.iter().find(|d| {
                d.net == NetMode::Direct && d.clients == relay.clients && d.target == relay.target
            })?;
            (direct.ops_per_sec > 0.0).then(|| {
                (
                    relay.target,
                    relay.clients,
                    relay.ops_per_sec / direct.ops_per_sec,
                )
            })
        })
        .collect()
}

/// The whole report as one table, its parameters on the first line.
pub fn render_table(report: &BenchReport) -> String {
    let mut out = format!(
        "bench: {} nodes, workload {}, fsync {}, {:.0} s per phase after a {} s warm-up\n",
        report.nodes,
        report.workload,
        if report.fsync { "on" } else { "off" },
        report.phase_s,
        WARMUP.as_secs()
    );
    let _ = writeln!(
        out,
        "{:<10} {:<6} {:>7} {:>10} {:>9} {:>9} {:>9} {:>8}",
        "target", "net", "clients", "ops/s", "p50 (ms)", "p99 (ms)", "max (ms)", "unknown"
    );
    for p in &report.phases {
        let _ = writeln!(
            out,
            "{:<10} {:<6} {:>7} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>8}",
            p.target.name(),
            format!("{:?}", p.net).to_lowercase(),
            p.clients,
            p.ops_per_sec,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.unknown
        );
    }
    out
}

struct Phase {
    client: Arc<dyn BankClient>,
    seed: u64,
    client_base: u64,
}

struct ClientStats {
    histogram: Histogram<u64>,
    ok: u64,
    unknown: u64,
}

impl Phase {
    async fn run(&self, clients: u32, length: Duration) -> PhaseResult {
        let start = Instant::now();
        let counted_from = start + WARMUP;
        let end = counted_from + length;
        let mut tasks = Vec::new();
        for k in 0..u64::from(clients) {
            let worker = BenchClient {
                bank: self.client.clone(),
                client: self.client_base + k,
                ops: OpGen::new(
                    self.seed,
                    self.client_base + k,
                    account_names(BENCH_ACCOUNTS),
                )
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
            target: TargetKind::Faultline,
            net: NetMode::Direct,
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
    bank: Arc<dyn BankClient>,
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
        while Instant::now() < end {
            request += 1;
            let command = Command {
                client: ClientId(self.client),
                request: RequestId(request),
                op: self.ops.next_op(),
            };
            let sent = Instant::now();
            let deadline = sent + Duration::from_secs(10);
            let outcome = self.bank.submit(&command, deadline).await;
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
    let (stamp, _) = crate::run::rundir::utc_now();
    let path = out.join(format!("bench-{stamp}.json"));
    run::write_json(&path, report)?;
    Ok(path)
}
