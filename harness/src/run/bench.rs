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
//!
//! On a sharded bank (`--shards`) each phase runs twice, each kind of transfer on its own:
//! first only single-shard transfers, then only cross-shard ones (two-phase commit), each with
//! its own rate and latencies, side by side in the same table. (Measured in one mixed
//! closed loop, both kinds would share every client's loop and show one combined rate twice.)
//!
//! With a baseline (`--baseline BIN`: another replica build) both builds' clusters run side
//! by side and their phases alternate, this build then the baseline, at each client count, so
//! both are measured in the same minutes of a shared machine; the table ends with this build's
//! throughput and median latency as ratios of the baseline's. A baseline this harness cannot
//! drive (a replica that refuses this harness's `cluster.toml`, or whose client protocol it
//! does not speak) is refused by name before anything is measured.
//!
//! Each phase says on stderr what it starts and what it measured, so a long bench is never
//! silent.

use crate::clients::caller::Submitted;
use crate::clients::workload::{account_names, OpGen, ShardMix};
use crate::params::{NetMode, TargetKind};
use crate::run;
use crate::run::shared::{RunError, RunOptions};
use crate::targets::faultline::cluster::ClusterError;
use crate::targets::{BankClient, PrepareSpec, TargetError};
use hdrhistogram::Histogram;
use replica::bank::{Command, Op, OpResult};
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
/// Accounts of the bench workload unless `--accounts` says otherwise.
const BENCH_ACCOUNTS: u32 = 10;

/// The bench's accounts: `--accounts`, else ten (A–J).
fn bench_accounts(params: &crate::params::RunParams) -> Vec<String> {
    let names = account_names(params.accounts.unwrap_or(BENCH_ACCOUNTS).max(2) as usize);
    names.into_iter().map(String::from).collect()
}

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
    /// Another replica build measured beside `run.replica_bin`, phase by phase.
    pub baseline: Option<PathBuf>,
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
    /// On a sharded bank: which transfers this row counts (`single-shard`, `cross-shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfers: Option<String>,
    /// Of the definite answers, the transfers that moved money (not refused for funds, a
    /// lock or an abort): `moved/s` in the table, where `ops/s` counts every definite answer.
    pub committed: u64,
    /// A row of the baseline build (`--baseline`), not of this one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub baseline: bool,
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
    /// With `--baseline`: the other build, and this build's figures against its.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline: Option<Baseline>,
    pub run_dirs: Vec<PathBuf>,
}

/// The baseline build of a `--baseline` bench and how this build compares with it.
#[derive(Clone, Debug, Serialize)]
pub struct Baseline {
    pub replica_bin: PathBuf,
    /// Its `--version`.
    pub version: String,
    /// This build's rows against the baseline's of the same network, clients and transfers.
    pub ratios: Vec<BaselineRatio>,
}

/// This build's figure divided by the baseline's (1.0 = the same; ops/s above 1 is faster,
/// p50 below 1 is faster).
#[derive(Clone, Debug, Serialize)]
pub struct BaselineRatio {
    pub net: NetMode,
    pub clients: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfers: Option<String>,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
}

/// One system under measurement: a target, and for faultline the replica build.
#[derive(Clone, Debug)]
struct Contender {
    kind: TargetKind,
    replica_bin: PathBuf,
    baseline: bool,
}

impl Contender {
    fn name(&self) -> &'static str {
        if self.baseline {
            "baseline"
        } else {
            self.kind.name()
        }
    }
}

/// What `--baseline` must be: a replica build this harness can start and talk to. The
/// refusal names the binary, what went wrong, and the first warning its replica n1 logged
/// (for a build of another protocol version, what it refused of this harness: a certificate
/// role, a handshake).
fn baseline_error(bin: &std::path::Path, dir: &std::path::Path, error: RunError) -> RunError {
    let cluster = match &error {
        RunError::Cluster(e) | RunError::Target(TargetError::Cluster(e)) => Some(e),
        _ => None,
    };
    let mut message = match cluster {
        Some(ClusterError::NoLeader(after)) => format!(
            "its replicas started but none answered this harness's status requests within \
             {after:?}: a build whose client protocol, certificates or handshake differ from \
             this harness's; measure it with its own harness instead"
        ),
        Some(ClusterError::ExitedAtStart { .. }) => format!(
            "{error}\n(a build that cannot read this harness's cluster.toml or flags; measure \
             it with its own harness instead)"
        ),
        _ => error.to_string(),
    };
    if let Some(warning) = first_warning(&dir.join("n1.log")) {
        message.push_str(&format!("\nits replica n1 logged: {warning}"));
    }
    RunError::Baseline {
        bin: bin.to_path_buf(),
        message,
    }
}

/// The first WARN or ERROR line of a replica's log, if any.
fn first_warning(log: &std::path::Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .find(|l| l.contains(" WARN ") || l.contains(" ERROR "))?;
    Some(line.chars().take(300).collect())
}

/// What every phase runs: closed-loop transfers between the bench's accounts.
pub const WORKLOAD: &str = "transfers only, closed loop, 10 accounts";

pub async fn run_bench(opts: &BenchOptions) -> Result<BenchReport, RunError> {
    if let Some(bin) = opts.baseline.as_ref().filter(|b| !b.is_file()) {
        return Err(RunError::Baseline {
            bin: bin.clone(),
            message: "no such file (give the path of another build's `replica` binary)".into(),
        });
    }
    let contenders = contenders(opts);
    let mut phases = Vec::new();
    let mut run_dirs = Vec::new();
    // Without a baseline the targets take turns (one cluster at a time); a baseline's
    // phases alternate with this build's, both clusters up at once.
    let rounds: Vec<Vec<Contender>> = if opts.baseline.is_some() {
        vec![contenders]
    } else {
        contenders.into_iter().map(|c| vec![c]).collect()
    };
    for round in &rounds {
        for &net in &opts.nets {
            let dirs = run_round(opts, round, net, &mut phases).await?;
            run_dirs.extend(dirs);
        }
    }
    let relay_ratio = ratios(&phases);
    let baseline = opts.baseline.as_ref().map(|bin| Baseline {
        replica_bin: bin.clone(),
        version: crate::run::rundir::replica_version(bin),
        ratios: baseline_ratios(&phases),
    });
    Ok(BenchReport {
        nodes: opts.run.params.nodes,
        phase_s: opts.phase.as_secs_f64(),
        workload: workload_words(&opts.run.params),
        fsync: true,
        phases,
        relay_ratio,
        baseline,
        run_dirs,
    })
}

/// The bench's workload in words, for the table's first line: the default one, or its
/// accounts, and a sharded bank's shape and lock policy.
fn workload_words(params: &crate::params::RunParams) -> String {
    let base = match params.accounts {
        None => WORKLOAD.to_string(),
        Some(n) => WORKLOAD.replace("10 accounts", &format!("{n} accounts")),
    };
    match &params.shards {
        Some(shape) => format!(
            "{base} over {} shards of {} replicas, {} locks, single-shard and cross-shard \
             transfers each measured on its own",
            shape.shards,
            shape.replicas_per_shard,
            shape.lock_policy.name(),
        ),
        None => base,
    }
}

/// The systems of the bench, in the order of the table: the targets, and with `--baseline`
/// this replica build then the baseline.
fn contenders(opts: &BenchOptions) -> Vec<Contender> {
    let mut all: Vec<Contender> = opts
        .targets
        .iter()
        .map(|&kind| Contender {
            kind,
            replica_bin: opts.run.replica_bin.clone(),
            baseline: false,
        })
        .collect();
    if let Some(bin) = &opts.baseline {
        all.push(Contender {
            kind: TargetKind::Faultline,
            replica_bin: bin.clone(),
            baseline: true,
        });
    }
    all
}

/// Starts one cluster per contender on `net` (a baseline first, so that one this harness
/// cannot drive is refused before anything is measured), runs every phase on each in turn,
/// stops them; returns their run directories.
async fn run_round(
    opts: &BenchOptions,
    round: &[Contender],
    net: NetMode,
    phases: &mut Vec<PhaseResult>,
) -> Result<Vec<PathBuf>, RunError> {
    let mut targets = Vec::new();
    let mut dirs = Vec::new();
    let mut mix = None;
    let mut order: Vec<usize> = (0..round.len()).collect();
    order.sort_by_key(|&i| !round[i].baseline);
    for i in order {
        let contender = &round[i];
        let mut run_opts = opts.run.clone();
        run_opts.params.target = contender.kind;
        run_opts.params.net = net;
        run_opts.params.nemesis = Vec::new();
        run_opts.params.clients = opts.high_clients.max(opts.low_clients);
        run_opts.replica_bin = contender.replica_bin.clone();
        run::validate(&run_opts.params)?;
        let accounts = bench_accounts(&run_opts.params);
        let (dir, info) = run::create_run_dir(&run_opts, "bench", accounts.clone())?;
        let prepared = crate::targets::any::prepare(PrepareSpec {
            dir: &dir,
            params: &run_opts.params,
            accounts,
            initial_balance: run::INITIAL_BALANCE,
            replica_bin: &run_opts.replica_bin,
            etcd_bin: &run_opts.etcd_bin,
        })
        .await;
        let mut target = match prepared {
            Ok(target) => target,
            Err(e) if contender.baseline => {
                return Err(baseline_error(&contender.replica_bin, &dir, e.into()))
            }
            Err(e) => return Err(e.into()),
        };
        mix = run::shard_mix(&info);
        target.begin_bench().await?;
        dirs.push(dir);
        targets.push((i, target));
    }
    targets.sort_by_key(|(i, _)| *i);
    let mut client_base = 0u64;
    for clients in [opts.low_clients, opts.high_clients] {
        for (mix, kind) in kinds(mix.as_ref()) {
            for (i, target) in &targets {
                let contender = &round[*i];
                eprintln!(
                    "bench: {} {}, {}{}: {:.0} s warm-up and measure ...",
                    contender.name(),
                    format!("{net:?}").to_lowercase(),
                    checker::text::count(u64::from(clients), "client"),
                    kind.map_or(String::new(), |k| format!(", {} transfers", KINDS[k])),
                    (WARMUP + opts.phase).as_secs_f64()
                );
                let phase = Phase {
                    client: target.bench_client(clients)?,
                    accounts: bench_accounts(&opts.run.params),
                    seed: opts.run.seed,
                    client_base,
                    mix: mix.clone(),
                    kind,
                };
                let mut result = phase.run(clients, opts.phase).await;
                result.target = contender.kind;
                result.net = net;
                result.baseline = contender.baseline;
                eprintln!(
                    "  {:.0} ops/s, p50 {:.2} ms, p99 {:.2} ms",
                    result.ops_per_sec, result.p50_ms, result.p99_ms
                );
                phases.push(result);
            }
            // Fresh client ids for every phase: a reused id's requests would be answered
            // from the replicas' dedup tables. (Each contender has its own cluster, so both
            // run the same clients' same operations.)
            client_base += u64::from(clients);
        }
    }
    for (_, target) in &mut targets {
        target.stop_all();
    }
    for dir in &dirs {
        // A bench has no verdict to keep evidence for: its data goes like a valid run's.
        crate::run::store::retain(dir, true, opts.run.keep_data).map_err(|source| {
            RunError::Write {
                path: dir.clone(),
                cause: source,
            }
        })?;
    }
    Ok(dirs)
}

fn ratios(phases: &[PhaseResult]) -> Vec<(TargetKind, u32, f64)> {
    phases
        .iter()
        .filter(|p| p.net == NetMode::Relay && !p.baseline)
        .filter_map(|relay| {
            let direct = phases.iter().find(|d| {
                d.net == NetMode::Direct
                    && d.clients == relay.clients
                    && d.target == relay.target
                    && d.baseline == relay.baseline
                    && d.transfers == relay.transfers
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

/// This build's rows against the baseline's: each baseline row against the row of this build
/// measured just before it (same network, clients and transfers), so equal client counts
/// (`--clients 10 --high-clients 10`) pair phase by phase.
fn baseline_ratios(phases: &[PhaseResult]) -> Vec<BaselineRatio> {
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { f64::NAN };
    phases
        .iter()
        .enumerate()
        .filter(|(_, p)| p.baseline)
        .filter_map(|(at, base)| {
            let this = phases[..at].iter().rev().find(|p| {
                !p.baseline
                    && p.target == TargetKind::Faultline
                    && p.net == base.net
                    && p.clients == base.clients
                    && p.transfers == base.transfers
            })?;
            Some(BaselineRatio {
                net: base.net,
                clients: base.clients,
                transfers: base.transfers.clone(),
                ops_per_sec: ratio(this.ops_per_sec, base.ops_per_sec),
                p50_ms: ratio(this.p50_ms, base.p50_ms),
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
    let sharded = report.phases.iter().any(|p| p.transfers.is_some());
    let kind = |k: &str| {
        if sharded {
            format!(" {k:<12}")
        } else {
            String::new()
        }
    };
    let _ = writeln!(
        out,
        "{:<10} {:<6} {:>7}{} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "target",
        "net",
        "clients",
        kind("transfers"),
        "ops/s",
        "moved/s",
        "p50 (ms)",
        "p99 (ms)",
        "max (ms)",
        "unknown"
    );
    for p in &report.phases {
        let moved = if p.seconds > 0.0 {
            p.committed as f64 / p.seconds
        } else {
            0.0
        };
        let _ = writeln!(
            out,
            "{:<10} {:<6} {:>7}{} {:>10.0} {:>9.0} {:>9.2} {:>9.2} {:>9.2} {:>8}",
            if p.baseline {
                "baseline"
            } else {
                p.target.name()
            },
            format!("{:?}", p.net).to_lowercase(),
            p.clients,
            kind(p.transfers.as_deref().unwrap_or("")),
            p.ops_per_sec,
            moved,
            p.p50_ms,
            p.p99_ms,
            p.max_ms,
            p.unknown
        );
    }
    if let Some(baseline) = &report.baseline {
        render_baseline(&mut out, baseline);
    }
    out
}

/// The ratios of a `--baseline` bench, under the table.
fn render_baseline(out: &mut String, baseline: &Baseline) {
    let _ = writeln!(
        out,
        "baseline: {} ({})",
        baseline.replica_bin.display(),
        baseline.version
    );
    for r in &baseline.ratios {
        let _ = writeln!(
            out,
            "this build / baseline, {} {}{}: ops/s {:.2}x, p50 {:.2}x",
            format!("{:?}", r.net).to_lowercase(),
            checker::text::count(u64::from(r.clients), "client"),
            r.transfers
                .as_deref()
                .map_or(String::new(), |t| format!(" {t}")),
            r.ops_per_sec,
            r.p50_ms
        );
    }
}

struct Phase {
    client: Arc<dyn BankClient>,
    accounts: Vec<String>,
    seed: u64,
    client_base: u64,
    /// A sharded bank's workload, whose transfers are counted apart by kind.
    mix: Option<ShardMix>,
    /// On a sharded bank, the one kind of transfer this phase runs (an index into [`KINDS`]).
    kind: Option<usize>,
}

/// The phases of one client count: one for a classic bank; on a sharded bank one per kind of
/// transfer, its workload all of that kind (a cross-shard share of 0, then of 1).
fn kinds(mix: Option<&ShardMix>) -> Vec<(Option<ShardMix>, Option<usize>)> {
    match mix {
        None => vec![(None, None)],
        Some(mix) => (0..KINDS.len())
            .map(|k| {
                let only = ShardMix {
                    cross_share: k as f64,
                    ..mix.clone()
                };
                (Some(only), Some(k))
            })
            .collect(),
    }
}

/// What one kind of transfer (single-shard, or cross-shard) did in a phase.
struct ClientStats {
    histogram: Histogram<u64>,
    ok: u64,
    committed: u64,
    unknown: u64,
}

impl ClientStats {
    fn new() -> ClientStats {
        ClientStats {
            histogram: new_histogram(),
            ok: 0,
            committed: 0,
            unknown: 0,
        }
    }

    fn add(&mut self, other: &ClientStats) {
        let _ = self.histogram.add(&other.histogram);
        self.ok += other.ok;
        self.committed += other.committed;
        self.unknown += other.unknown;
    }
}

/// Row labels of a sharded phase, by [`BenchClient::kind_of`].
const KINDS: [&str; 2] = ["single-shard", "cross-shard"];

impl Phase {
    /// The phase's row: every transfer of a classic bank, or those of its one kind.
    async fn run(&self, clients: u32, length: Duration) -> PhaseResult {
        let start = Instant::now();
        let counted_from = start + WARMUP;
        let end = counted_from + length;
        let mut tasks = Vec::new();
        for k in 0..u64::from(clients) {
            let mut ops = OpGen::new(self.seed, self.client_base + k, self.accounts.clone())
                .spread_over(u64::from(clients))
                .transfers_only();
            if let Some(mix) = &self.mix {
                ops = ops.with_shards(mix.clone());
            }
            let worker = BenchClient {
                bank: self.client.clone(),
                client: self.client_base + k,
                ops,
                shard_of: self.mix.as_ref().map(|m| m.shard_of.clone()),
                accounts: self.accounts.clone(),
            };
            tasks.push(tokio::spawn(worker.run(counted_from, end)));
        }
        let mut totals = [ClientStats::new(), ClientStats::new()];
        for task in tasks {
            if let Ok(stats) = task.await {
                for (total, s) in totals.iter_mut().zip(&stats) {
                    total.add(s);
                }
            }
        }
        let seconds = length.as_secs_f64();
        let row = |stats: &ClientStats, transfers: Option<&str>| {
            let ms = |q: f64| stats.histogram.value_at_quantile(q) as f64 / 1000.0;
            PhaseResult {
                target: TargetKind::Faultline,
                net: NetMode::Direct,
                clients,
                seconds,
                ops_per_sec: stats.ok as f64 / seconds,
                ok: stats.ok,
                unknown: stats.unknown,
                p50_ms: ms(0.5),
                p90_ms: ms(0.9),
                p99_ms: ms(0.99),
                p999_ms: ms(0.999),
                max_ms: stats.histogram.max() as f64 / 1000.0,
                transfers: transfers.map(str::to_string),
                committed: stats.committed,
                baseline: false,
            }
        };
        match self.kind {
            None => row(&totals[0], None),
            Some(k) => row(&totals[k], Some(KINDS[k])),
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
    /// On a sharded bank, each bench account's shard (by index).
    shard_of: Option<Vec<u32>>,
    /// The bench's accounts, in the order of `shard_of`.
    accounts: Vec<String>,
}

impl BenchClient {
    /// 1 for a transfer between two shards, else 0 (an index into [`KINDS`]); a phase of one
    /// kind counts only that kind's transfers, so its row cannot claim another's.
    fn kind_of(&self, op: &Op) -> usize {
        let (Some(shard_of), Op::Transfer { from, to, .. }) = (&self.shard_of, op) else {
            return 0;
        };
        let names = &self.accounts;
        let shard = |a: &str| {
            let i = names.iter().position(|n| n == a);
            i.and_then(|i| shard_of.get(i))
        };
        usize::from(shard(from) != shard(to))
    }

    async fn run(mut self, counted_from: Instant, end: Instant) -> [ClientStats; 2] {
        let mut all = [ClientStats::new(), ClientStats::new()];
        let mut request = 0;
        while Instant::now() < end {
            request += 1;
            let command = Command {
                client: ClientId(self.client),
                request: RequestId(request),
                op: self.ops.next_op(),
            };
            let stats = &mut all[self.kind_of(&command.op)];
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
                    if let Submitted::Executed { reply, .. } = &outcome {
                        let moved = matches!(reply.result, OpResult::Transferred { .. });
                        stats.committed += u64::from(moved);
                    }
                    let us = u64::try_from((done - sent).as_micros()).unwrap_or(MAX_LATENCY_US);
                    stats
                        .histogram
                        .saturating_record(us.clamp(1, MAX_LATENCY_US));
                }
                Submitted::Unknown { .. } => stats.unknown += 1,
            }
        }
        all
    }
}

/// Writes the report as JSON into the out directory; returns its path.
pub fn save(report: &BenchReport, out: &std::path::Path) -> Result<PathBuf, RunError> {
    let (stamp, _) = crate::run::rundir::utc_now();
    let path = out.join(format!("bench-{stamp}.json"));
    run::shared::write_json(&path, report)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(transfers: Option<&str>, committed: u64) -> PhaseResult {
        PhaseResult {
            target: TargetKind::Faultline,
            net: NetMode::Direct,
            clients: 10,
            seconds: 2.0,
            ops_per_sec: 50.0,
            ok: 100,
            unknown: 0,
            p50_ms: 1.5,
            p90_ms: 2.0,
            p99_ms: 3.25,
            p999_ms: 4.0,
            max_ms: 5.0,
            transfers: transfers.map(str::to_string),
            committed,
            baseline: false,
        }
    }

    fn report(phases: Vec<PhaseResult>) -> BenchReport {
        BenchReport {
            nodes: 9,
            phase_s: 2.0,
            workload: WORKLOAD.into(),
            fsync: true,
            phases,
            relay_ratio: Vec::new(),
            baseline: None,
            run_dirs: Vec::new(),
        }
    }

    #[test]
    fn a_sharded_table_puts_single_and_cross_shard_transfers_side_by_side() {
        let table = render_table(&report(vec![
            row(Some("single-shard"), 80),
            row(Some("cross-shard"), 30),
        ]));
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].contains("transfers") && lines[1].contains("moved/s"));
        for unit in ["ops/s", "p50 (ms)", "p99 (ms)", "max (ms)"] {
            assert!(lines[1].contains(unit), "{unit}: {}", lines[1]);
        }
        assert!(lines[2].contains("single-shard") && lines[2].contains(" 40 "));
        assert!(lines[3].contains("cross-shard") && lines[3].contains(" 15 "));
        let classic = render_table(&report(vec![row(None, 100)]));
        let header = classic.lines().nth(1).unwrap_or_default();
        assert!(!header.contains("transfers"), "{classic}");
    }

    /// A bench client on a fake one-node cluster, its accounts on `shard_of`'s shards.
    fn fake_client(shard_of: Option<Vec<u32>>) -> BenchClient {
        BenchClient {
            bank: Arc::new(crate::targets::faultline::FaultlineClient {
                transport: Arc::new(crate::targets::faultline::fake::FakeCluster::new(
                    1,
                    &[],
                    10,
                )),
                nodes: Vec::new(),
                hint: Arc::default(),
                policy: Default::default(),
            }),
            client: 0,
            ops: OpGen::new(1, 0, account_names(BENCH_ACCOUNTS as usize)),
            shard_of,
            accounts: account_names(BENCH_ACCOUNTS as usize)
                .into_iter()
                .map(String::from)
                .collect(),
        }
    }

    #[test]
    fn transfers_are_told_apart_by_their_shards() {
        let client = fake_client;
        let t = |from: &str, to: &str| Op::Transfer {
            from: from.into(),
            to: to.into(),
            amount: 1,
        };
        let sharded = client(Some((0..10).map(|i| i % 2 + 1).collect()));
        assert_eq!(sharded.kind_of(&t("A", "C")), 0, "A and C on shard 1");
        assert_eq!(sharded.kind_of(&t("A", "B")), 1);
        assert_eq!(client(None).kind_of(&t("A", "B")), 0);
    }

    /// `bench --shards` measures each kind of transfer on its own: one phase of only
    /// single-shard transfers, one of only cross-shard ones (not one mixed loop counted twice).
    #[test]
    fn a_sharded_bench_runs_one_phase_per_kind_of_transfer() {
        assert_eq!(kinds(None).len(), 1);
        let mix = ShardMix {
            shard_of: (0..10).map(|i| i % 3 + 1).collect(),
            cross_share: 0.5,
        };
        let phases = kinds(Some(&mix));
        assert_eq!(phases.len(), 2);
        for (only, kind) in phases {
            let (only, kind) = (only.unwrap(), kind.unwrap());
            let client = fake_client(Some(only.shard_of.clone()));
            let mut ops = OpGen::new(7, 3, account_names(BENCH_ACCOUNTS as usize))
                .transfers_only()
                .with_shards(only);
            for _ in 0..500 {
                assert_eq!(client.kind_of(&ops.next_op()), kind, "{}", KINDS[kind]);
            }
        }
    }

    /// `--baseline`: each of this build's rows is divided by the baseline's row of the same
    /// client count (not by another count's), and the table names the baseline's rows and
    /// binary and prints the ratios.
    #[test]
    fn a_baseline_bench_prints_this_build_against_the_baseline_row_by_row() {
        let mut phases = Vec::new();
        for (clients, ops, p50, baseline) in [
            (10, 200.0, 2.0, false),
            (10, 100.0, 4.0, true),
            (200, 900.0, 9.0, false),
            (200, 1000.0, 10.0, true),
            (200, 300.0, 3.0, false),
            (200, 100.0, 6.0, true),
        ] {
            let mut r = row(None, 0);
            (r.clients, r.ops_per_sec, r.p50_ms, r.baseline) = (clients, ops, p50, baseline);
            phases.push(r);
        }
        let ratios = baseline_ratios(&phases);
        let got: Vec<(u32, f64, f64)> = ratios
            .iter()
            .map(|r| (r.clients, r.ops_per_sec, r.p50_ms))
            .collect();
        assert_eq!(got, vec![(10, 2.0, 0.5), (200, 0.9, 0.9), (200, 3.0, 0.5)]);
        let mut report = report(phases);
        report.baseline = Some(Baseline {
            replica_bin: "/old/replica".into(),
            version: "replica 0.1.0".into(),
            ratios,
        });
        let table = render_table(&report);
        let rows: Vec<&str> = table.lines().collect();
        assert!(rows[2].starts_with("faultline") && rows[3].starts_with("baseline"));
        assert!(
            table.contains("baseline: /old/replica (replica 0.1.0)"),
            "{table}"
        );
        assert!(
            table.contains("this build / baseline, direct 10 clients: ops/s 2.00x, p50 0.50x"),
            "{table}"
        );
    }

    /// A baseline that is not a file is refused by name before any cluster starts.
    #[tokio::test]
    async fn a_missing_baseline_is_refused_by_name() {
        let opts = BenchOptions {
            run: RunOptions {
                params: Default::default(),
                seed: 1,
                out: "/nonexistent-out".into(),
                replica_bin: "/nonexistent-replica".into(),
                etcd_bin: "etcd".into(),
                progress: false,
                keep_data: false,
            },
            phase: Duration::from_secs(1),
            low_clients: 1,
            high_clients: 2,
            nets: vec![NetMode::Direct],
            targets: vec![TargetKind::Faultline],
            baseline: Some("/no/such/replica".into()),
        };
        let e = run_bench(&opts).await.err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "baseline replica /no/such/replica: no such file (give the path of another \
                 build's `replica` binary)"
            )
        );
    }
}
