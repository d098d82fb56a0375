//! One campaign run from start to verdict: prepare the run directory, start the cluster, drive
//! the clients while the nemesis works through its schedule, heal, fetch the final state, check.
//!
//! The order of the ending matters: the nemesis stops at the end of the workload time and
//! everything is healed *before* the last in-flight requests are awaited, so they can finish
//! (each is still bounded by its own deadline); then the cluster settles and is read.

pub mod bench;
pub mod campaign;
pub mod final_phase;
pub mod index;
pub mod interrupt;
pub mod progress;
pub mod rates;
pub mod replay;
pub mod rundir;
pub mod shared;
pub mod store;
pub mod zoo;

use crate::clients::worker::{pace_for, spawn_workers, WorkerContext};
use crate::clients::workload::{account_names, ShardMix};
use crate::faults::failpoints;
use crate::faults::nemesis::Nemesis;
use crate::faults::processes::{FaultLabel, ProcessWorld};
use crate::faults::schedule::{self, FaultFamily, Step};
use crate::params::TargetKind;
use crate::params::{NetMode, RunParams, ShardParams};
use crate::record::Recorder;
use crate::run::final_phase::heal_all;
use crate::run::progress::Progress;
use crate::run::rundir::RunInfo;
use crate::run::shared::{
    verdict_word, write_json, RunError, RunOptions, RunSummary, DEFAULT_ACCOUNTS, INITIAL_BALANCE,
    SUMMARY_FILE,
};
use crate::targets::faultline::cluster::Cluster;
use crate::targets::faultline::journal::{spawn_sampler, JournalCollector, Sampler, JOURNAL_EVERY};
use crate::targets::{self, PrepareSpec, Target};
use checker::Results;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Checks the parameters before anything is started: every refusal names the flag and why.
pub fn validate(params: &RunParams) -> Result<(), RunError> {
    let bad = |m: String| Err(RunError::Invalid(m));
    if params.nodes == 0 || params.nodes > 99 {
        return bad(format!("--nodes {}: must be 1 to 99", params.nodes));
    }
    if params.clients == 0 || params.clients > 10_000 {
        return bad(format!("--clients {}: must be 1 to 10000", params.clients));
    }
    if params.time_ms == 0 {
        return bad("--time 0s: the workload needs a positive time, e.g. 60s".into());
    }
    if params.op_timeout_ms == 0 || params.attempt_timeout_ms == 0 {
        return bad("--op-timeout and --attempt-timeout must be positive".into());
    }
    if !(0.0..=1.0).contains(&params.loss) {
        return bad(format!(
            "--loss {}: a probability, from 0 (no loss) to 1 (every datagram lost)",
            params.loss
        ));
    }
    if let Some(rate) = params.rate {
        if !(rate.is_finite() && rate > 0.0) {
            return bad(format!(
                "--rate {rate}: must be a positive number of operations per second \
                 (leave it out for closed-loop clients)"
            ));
        }
    }
    if params.nemesis_interval_ms == 0 && !params.nemesis.is_empty() {
        return bad(
            "--nemesis-interval 0s would inject no fault at all: give a positive \
                    interval, e.g. 2s, or --nemesis none for a run without faults"
                .into(),
        );
    }
    if params.net == NetMode::Direct && (params.loss > 0.0 || params.delay_ms > 0) {
        return bad("--loss and --delay need --net relay".into());
    }
    if let Some(shape) = &params.shards {
        validate_shards(params, shape)?;
    } else if params.nemesis.contains(&FaultFamily::CrashCoordinator) {
        return bad(
            "--nemesis crash-coordinator needs a sharded bank (--shards 2 or more): only \
             two-phase commit reaches its failpoints"
                .into(),
        );
    }
    if params.target == TargetKind::Etcd && params.loss > 0.0 {
        return bad(
            "--loss applies to the faultline target only (etcd talks TCP, which cannot lose)"
                .into(),
        );
    }
    Ok(())
}

/// The sharded bank's replica binary when the schedule may arm failpoints: `crash-coordinator`
/// needs `replica-bugs` (see [`crate::faults::failpoints::replica_arms_failpoints`]).
pub fn check_failpoint_binary(opts: &RunOptions) -> Result<(), RunError> {
    let asks = opts.params.nemesis.contains(&FaultFamily::CrashCoordinator);
    if !asks || failpoints::replica_arms_failpoints(&opts.replica_bin) {
        return Ok(());
    }
    Err(RunError::Invalid(format!(
        "--nemesis crash-coordinator needs a replica with failpoints, not {}: build it with \
         `cargo build -p replica --features bugs --bin replica-bugs` (it lands beside the \
         replica), or name it with --replica-bugs-bin",
        opts.replica_bin.display()
    )))
}

/// Settles what a sharded run's `--nemesis` means and which replica binary it runs:
/// `families` as given (None: the default set, plus `crash-coordinator` when `bugs_bin`
/// exists); with `crash-coordinator`, the replicas are `bugs_bin`, or the run is refused
/// with how to build it. A classic run is left as asked.
pub fn resolve_sharded_faults(
    opts: &mut RunOptions,
    families: Option<Vec<FaultFamily>>,
    bugs_bin: &Path,
) -> Result<(), RunError> {
    let have_bugs = bugs_bin.is_file() && failpoints::replica_arms_failpoints(bugs_bin);
    let defaulted = families.is_none();
    opts.params.nemesis = families.unwrap_or_else(|| RunParams::default().nemesis);
    if opts.params.shards.is_none() {
        return Ok(());
    }
    if defaulted && have_bugs {
        opts.params.nemesis.push(FaultFamily::CrashCoordinator);
    }
    let asks = opts.params.nemesis.contains(&FaultFamily::CrashCoordinator);
    if asks && have_bugs && !failpoints::replica_arms_failpoints(&opts.replica_bin) {
        opts.replica_bin = bugs_bin.to_path_buf();
    }
    check_failpoint_binary(opts)
}

/// A sharded bank's shape and workload (see [`rundir::ShardParams`]).
fn validate_shards(params: &RunParams, shape: &ShardParams) -> Result<(), RunError> {
    let bad = |m: String| Err(RunError::Invalid(m));
    if params.target != TargetKind::Faultline {
        return bad("--shards: only the faultline target runs a sharded bank".into());
    }
    let accounts = accounts_for(params).len() as u32;
    if shape.shards < 2 || shape.shards > accounts {
        return bad(format!(
            "--shards {}: a sharded bank needs 2 to {accounts} shards (one account each at \
             least; --shards 1 is the classic cluster)",
            shape.shards
        ));
    }
    if shape.replicas_per_shard == 0 || shape.nodes() > 99 {
        return bad(format!(
            "--replicas-per-shard {}: must be at least 1, and at most 99 replicas in all",
            shape.replicas_per_shard
        ));
    }
    if params.nodes != shape.nodes() {
        return bad(format!(
            "--nodes {} with --shards {} × --replicas-per-shard {}: leave --nodes out",
            params.nodes, shape.shards, shape.replicas_per_shard
        ));
    }
    if !(0.0..=1.0).contains(&shape.cross_shard_share) {
        return bad(format!(
            "--cross-shard-share {}: a share of transfers, from 0 to 1",
            shape.cross_shard_share
        ));
    }
    Ok(())
}

/// Parameters that are allowed but probably not what was meant, each as a sentence for a
/// `warning:` line.
pub fn warnings(params: &RunParams) -> Vec<String> {
    let mut out = Vec::new();
    // A sharded bank's groups are its shards: their size is what tolerates faults.
    if let Some(shape) = params.shards {
        let group = shape.replicas_per_shard;
        if group.is_multiple_of(2) {
            out.push(format!(
                "--replicas-per-shard {group}: an even shard tolerates no more faults than {}",
                group.saturating_sub(1).max(1)
            ));
        }
    } else if params.nodes == 2 {
        out.push(
            "--nodes 2: a majority of 2 is 2, so the cluster stops at the first fault of \
             either replica; 3 tolerate one fault, 5 two"
                .to_string(),
        );
    } else if params.nodes > 2 && params.nodes.is_multiple_of(2) {
        out.push(format!(
            "--nodes {}: an even cluster tolerates no more faults than {} replicas",
            params.nodes,
            params.nodes - 1
        ));
    }
    if params.clients > DEFAULT_ACCOUNTS && params.accounts.is_none() {
        let accounts = accounts_for(params);
        out.push(format!(
            "--clients {}: each client owns one account, so the bank gets {} accounts ({}..{}) \
             instead of the usual {DEFAULT_ACCOUNTS}",
            params.clients,
            accounts.len(),
            accounts.first().map_or("", String::as_str),
            accounts.last().map_or("", String::as_str),
        ));
    }
    if params.rate.is_some_and(|r| r > 0.0 && r < 1.0) {
        out.push("--rate below 1 per second: expect very few operations".to_string());
    }
    out
}

/// Fault families the network mode allows: no partitions without the relay.
fn usable_families(params: &RunParams) -> Vec<FaultFamily> {
    params
        .nemesis
        .iter()
        .copied()
        .filter(|f| {
            params.net == NetMode::Relay
                || !matches!(f, FaultFamily::Partition | FaultFamily::IsolateFollower)
        })
        .collect()
}

/// The accounts of a run: `--accounts`, else one per client; at least two, so transfers are
/// possible.
pub fn accounts_for(params: &RunParams) -> Vec<String> {
    let n = params.accounts.unwrap_or(params.clients);
    let names = account_names(n.max(2) as usize);
    names.into_iter().map(String::from).collect()
}

/// A prepared run directory with its cluster running and a leader elected.
pub struct Prepared {
    pub dir: PathBuf,
    pub cluster: Cluster,
    pub info: RunInfo,
}

/// Refuses, before anything is created, a `--bug` this start-up cannot plant: an unknown name,
/// a target other than the replica, or the shipped `replica` (only `replica-bugs` plants bugs;
/// the plain one would exit at start and leave an incomplete run behind).
pub fn check_bug_binary(opts: &RunOptions) -> Result<(), RunError> {
    let Some(bug) = &opts.params.bug else {
        return Ok(());
    };
    let bad = |m: String| Err(RunError::Invalid(m));
    if opts.params.target != TargetKind::Faultline {
        return bad(format!(
            "--bug {bug}: planted bugs are the faultline replica's; {} has none",
            opts.params.target.name()
        ));
    }
    if !replica::core::config::BUG_NAMES.contains(&bug.as_str()) {
        return bad(format!(
            "--bug {bug}: unknown bug; known: {}",
            replica::core::config::BUG_NAMES.join(", ")
        ));
    }
    if !failpoints::replica_arms_failpoints(&opts.replica_bin) {
        return bad(format!(
            "--bug {bug} needs replica-bugs, not {}: the shipped replica plants no bug; build \
             it with `cargo build --release -p replica --features bugs --bin replica-bugs` and \
             pass --replica-bin target/release/replica-bugs",
            opts.replica_bin.display()
        ));
    }
    Ok(())
}

/// Creates the run directory and writes run.toml, once [`check_bug_binary`] agrees.
pub fn create_run_dir(
    opts: &RunOptions,
    kind: &str,
    accounts: Vec<String>,
) -> Result<(PathBuf, RunInfo), RunError> {
    check_bug_binary(opts)?;
    let (dir, started_at) = rundir::create(&opts.out, opts.seed)?;
    let target = opts.params.target;
    let (bin, version) = match target {
        TargetKind::Faultline => (
            opts.replica_bin.display().to_string(),
            rundir::replica_version(&opts.replica_bin),
        ),
        TargetKind::Etcd => (
            opts.etcd_bin.display().to_string(),
            crate::targets::etcd::etcd_version(&opts.etcd_bin),
        ),
    };
    let shards = match &opts.params.shards {
        Some(shape) => shape.tables(&accounts).map_err(RunError::Invalid)?,
        None => Vec::new(),
    };
    let info = RunInfo {
        target,
        shards,
        accounts,
        initial_balance: INITIAL_BALANCE,
        seed: opts.seed,
        kind: kind.to_string(),
        started_at,
        replica_bin: bin,
        replica_version: version,
        harness_version: env!("CARGO_PKG_VERSION").to_string(),
        replays: None,
        params: opts.params.clone(),
    };
    info.write(&dir)?;
    crate::run::interrupt::register(&dir, &opts.out, &info);
    Ok((dir, info))
}

/// Creates the run directory, writes run.toml, prepares and starts the faultline cluster
/// (scenarios and benchmarks drive the [`Cluster`] directly).
pub async fn prepare(
    opts: &RunOptions,
    kind: &str,
    accounts: Vec<String>,
) -> Result<Prepared, RunError> {
    let (dir, info) = create_run_dir(opts, kind, accounts.clone())?;
    let cluster = targets::faultline::start_cluster(&PrepareSpec {
        dir: &dir,
        params: &opts.params,
        accounts,
        initial_balance: INITIAL_BALANCE,
        replica_bin: &opts.replica_bin,
        etcd_bin: &opts.etcd_bin,
    })
    .await?;
    Ok(Prepared { dir, cluster, info })
}

/// Creates the run directory, writes run.toml, prepares and starts the cluster of the run's
/// target.
pub async fn prepare_target(
    opts: &RunOptions,
    kind: &str,
    accounts: Vec<String>,
) -> Result<(PathBuf, Box<dyn Target>, RunInfo), RunError> {
    let (dir, info) = create_run_dir(opts, kind, accounts.clone())?;
    let target = targets::any::prepare(PrepareSpec {
        dir: &dir,
        params: &opts.params,
        accounts,
        initial_balance: INITIAL_BALANCE,
        replica_bin: &opts.replica_bin,
        etcd_bin: &opts.etcd_bin,
    })
    .await?;
    Ok((dir, target, info))
}

/// Starts collecting the replicas' executed journals into `dir/journals` (see
/// [`crate::targets::faultline::journal`]).
pub fn start_sampler(dir: &Path, cluster: &Cluster) -> Result<Sampler, RunError> {
    let collector = JournalCollector::new(&dir.join("journals"), cluster.nodes())?;
    Ok(spawn_sampler(
        collector,
        cluster.control(),
        JOURNAL_EVERY,
        Duration::from_secs(1),
    ))
}

/// The schedule of a run, from its seed and parameters (drawn as its `schedule_version`
/// says: a saved run from before version 5 is drawn again with even odds).
pub fn schedule_for(params: &RunParams, seed: u64) -> Vec<Step> {
    let odds = schedule::FamilyOdds::for_real_version(params.schedule_version);
    if let Some(shape) = &params.shards {
        let members = (1..=shape.shards)
            .map(|k| {
                let first = (k - 1) * shape.replicas_per_shard;
                let nodes =
                    (1..=shape.replicas_per_shard).map(|r| replica::types::NodeId(first + r));
                (k, nodes.collect())
            })
            .collect();
        return schedule::generate_sharded(
            seed,
            &members,
            &usable_families(params),
            params.nemesis_interval_ms,
            params.time_ms,
            odds,
        );
    }
    let nodes: Vec<_> = (1..=params.nodes).map(replica::types::NodeId).collect();
    schedule::generate(
        seed,
        &nodes,
        &usable_families(params),
        params.nemesis_interval_ms,
        params.time_ms,
        odds,
    )
}

/// Opens the run's `history.jsonl`; time 0 of the history is now.
pub fn create_recorder(dir: &Path) -> Result<Arc<Recorder>, RunError> {
    let history = dir.join("history.jsonl");
    let recorder = Recorder::create(&history, std::time::Instant::now()).map_err(|source| {
        RunError::Write {
            path: history,
            cause: source,
        }
    })?;
    let recorder = Arc::new(recorder);
    crate::run::interrupt::attach_recorder(dir, &recorder);
    Ok(recorder)
}

/// Runs one of a campaign's runs and checks it (`kind = "campaign"` in run.toml);
/// [`campaign::run_campaign`] runs a campaign: many of these.
pub async fn run_in_campaign(opts: &RunOptions) -> Result<RunSummary, RunError> {
    run_of_kind(opts, "campaign").await
}

/// Runs and checks one run on its own (`harness run`: `kind = "run"` in run.toml).
pub async fn run_single(opts: &RunOptions) -> Result<RunSummary, RunError> {
    run_of_kind(opts, "run").await
}

/// One run, recorded as `kind` in run.toml.
async fn run_of_kind(opts: &RunOptions, kind: &str) -> Result<RunSummary, RunError> {
    validate(&opts.params)?;
    check_failpoint_binary(opts)?;
    let wall = std::time::Instant::now();
    let params = &opts.params;
    let steps = schedule_for(params, opts.seed);
    let (dir, mut target, info) = prepare_target(opts, kind, accounts_for(params)).await?;
    write_json(&dir.join("schedule.json"), &steps)?;
    target.begin().await?;
    let recorder = create_recorder(&dir)?;
    let node_shards = target.node_shards();
    if !node_shards.is_empty() {
        recorder.set_node_shards(node_shards);
    }
    let total = Duration::from_millis(params.time_ms);
    let start = Instant::now();
    let ctx = WorkerContext {
        client: target.client(),
        recorder: recorder.clone(),
        op_timeout: Duration::from_millis(params.op_timeout_ms),
        end: start + total,
        pace: pace_for(params.rate, params.clients),
        accounts: info.accounts.iter().map(|a| a.as_str().into()).collect(),
        seed: opts.seed,
        shards: shard_mix(&info),
        shape: params.shards.and_then(|s| s.workload).unwrap_or_default(),
    };
    let workers = spawn_workers(&ctx, u64::from(params.clients));
    let label: FaultLabel = Arc::new(Mutex::new(String::new()));
    let arm_after = params.shards.and_then(|s| s.failpoints).unwrap_or_default();
    let mut world = ProcessWorld::new(target.as_mut(), recorder.clone(), label.clone())
        .arm_after(Duration::from_millis(arm_after.arm_after_ms));
    let mut nemesis = Nemesis::new(steps);
    let progress = if opts.progress {
        Progress::start(recorder.clone(), label.clone(), start, total)
    } else {
        Progress::hidden()
    };
    nemesis.run(&mut world, start, ctx.end).await;
    tokio::time::sleep_until(ctx.end).await;
    progress.finish();
    if opts.progress {
        eprintln!("workload done: healing, settling, fetching the final state and checking");
    }
    heal_all(&mut world, &mut nemesis, &recorder)?;
    drop(world);
    let mut notes = await_workers(workers, ctx.op_timeout).await;
    let more = target
        .final_phase(&recorder, u64::from(params.clients))
        .await?;
    notes.extend(more);
    target.stop_all();
    let mut summary = finish(&dir, &info, &recorder, nemesis.faults, notes, wall)?;
    apply_retention(&mut summary, opts.keep_data)?;
    Ok(summary)
}

/// Applies [`store::retain`] to a finished run and says what it did in the summary's notes
/// (and its harness.json).
pub fn apply_retention(summary: &mut RunSummary, keep_data: bool) -> Result<(), RunError> {
    let done =
        store::retain(&summary.dir, summary.exit_code == 0, keep_data).map_err(|source| {
            RunError::Write {
                path: summary.dir.clone(),
                cause: source,
            }
        })?;
    if done.removed_bytes == 0 {
        return Ok(());
    }
    let size = store::human_bytes(done.removed_bytes);
    summary.notes.push(match done.archive_bytes {
        None => format!(
            "deleted {size} of data directories and certificates (a valid run; --keep-data keeps them)"
        ),
        Some(archive) => format!(
            "packed {size} of data directories and certificates into {} ({})",
            store::DATA_ARCHIVE,
            store::human_bytes(archive)
        ),
    });
    write_json(&summary.dir.join(SUMMARY_FILE), &*summary)
}

/// The sharded workload of a run (see [`crate::clients::workload::ShardMix`]), from its
/// `[[shards]]`; `None` for a classic run.
pub fn shard_mix(info: &RunInfo) -> Option<ShardMix> {
    let shape = info.params.shards?;
    let shard_of = info
        .accounts
        .iter()
        .map(|a| {
            let table = info.shards.iter().find(|t| t.accounts.contains(a));
            table.map_or(1, |t| t.id)
        })
        .collect();
    Some(ShardMix {
        shard_of,
        cross_share: shape.cross_shard_share,
    })
}

/// Waits for the workers, each bounded by its request deadline plus a margin; a worker still
/// running then is aborted (its last invocation stays without completion, which the checker
/// treats like `info`).
pub async fn await_workers<T>(
    workers: Vec<tokio::task::JoinHandle<T>>,
    op_timeout: Duration,
) -> Vec<String> {
    let mut notes = Vec::new();
    let deadline = Instant::now() + op_timeout + Duration::from_secs(5);
    for worker in workers {
        let abort = worker.abort_handle();
        match tokio::time::timeout_at(deadline, worker).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => notes.push(format!("a client worker failed: {e}")),
            Err(_) => {
                abort.abort();
                notes.push("a client worker overran its deadline and was stopped".to_string());
            }
        }
    }
    notes
}

/// Checks the run, writes the report and the summary.
pub fn finish(
    dir: &Path,
    info: &RunInfo,
    recorder: &Recorder,
    faults: u32,
    mut notes: Vec<String>,
    wall: std::time::Instant,
) -> Result<RunSummary, RunError> {
    if let Some(e) = recorder.error() {
        notes.push(e);
    }
    let results = check(dir)?;
    let mut exit_code = results.exit_code();
    // A history we could not write completely cannot vouch for the run.
    if exit_code == 0 && recorder.error().is_some() {
        exit_code = 2;
    }
    let (invoked, ok, fail, info_count) = recorder.counts.snapshot();
    let summary = RunSummary {
        dir: dir.to_path_buf(),
        seed: info.seed,
        kind: info.kind.clone(),
        faults,
        invoked,
        ok,
        fail,
        info: info_count,
        verdict: verdict_word(exit_code).to_string(),
        exit_code,
        notes,
        elapsed_s: wall.elapsed().as_secs_f64(),
        reason: None,
        cause: Some(results.cause_line()),
    };
    write_json(&dir.join(SUMMARY_FILE), &summary)?;
    crate::run::interrupt::clear(dir);
    Ok(summary)
}

/// Runs the checker on `dir` and writes its results and report there.
pub fn check(dir: &Path) -> Result<Results, RunError> {
    let results = checker::check_run(dir).map_err(|e| RunError::Check(e.to_string()))?;
    results.write_json(dir).map_err(|source| RunError::Write {
        path: dir.join("results.json"),
        cause: source,
    })?;
    checker::report::write_report(dir, &results)
        .map_err(|e| RunError::Check(format!("cannot write the report: {e}")))?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ShardParams;

    fn sharded(replica_bin: &Path) -> RunOptions {
        let shape = ShardParams {
            shards: 2,
            replicas_per_shard: 3,
            cross_shard_share: 0.5,
            workload: None,
            lock_policy: replica::core::LockPolicy::default(),
            failpoints: None,
        };
        RunOptions {
            params: RunParams {
                nodes: shape.nodes(),
                shards: Some(shape),
                ..RunParams::default()
            },
            seed: 1,
            out: PathBuf::from("reports"),
            replica_bin: replica_bin.to_path_buf(),
            etcd_bin: PathBuf::from("etcd"),
            progress: false,
            keep_data: false,
        }
    }

    /// A directory with a `replica` and, if `bugs`, a `replica-bugs` file.
    fn bins(bugs: bool) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("replica"), "").unwrap();
        if bugs {
            std::fs::write(dir.path().join("replica-bugs"), "").unwrap();
        }
        dir
    }

    #[test]
    fn the_terminal_names_the_cause_of_an_invalid_run_under_its_verdict() {
        let s = RunSummary {
            dir: PathBuf::from("reports/r"),
            seed: 7,
            kind: "run".into(),
            faults: 1,
            invoked: 10,
            ok: 9,
            fail: 1,
            info: 0,
            verdict: "invalid".into(),
            exit_code: 1,
            notes: vec!["n".into()],
            elapsed_s: 1.0,
            reason: None,
            cause: Some("invalid: replay (1× wrong result); first: read A by client 0".into()),
        };
        let text = s.outcome_lines();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("reports/r: invalid (seed 7, 1 fault, 10 operations"));
        assert_eq!(
            lines[1],
            "  invalid: replay (1× wrong result); first: read A by client 0"
        );
        assert_eq!(lines[2], "  note: n");
    }

    #[test]
    fn a_sharded_default_adds_crash_coordinator_and_runs_replica_bugs_when_it_exists() {
        let dir = bins(true);
        let mut opts = sharded(&dir.path().join("replica"));
        let bugs = dir.path().join("replica-bugs");
        resolve_sharded_faults(&mut opts, None, &bugs).unwrap();
        assert!(opts.params.nemesis.contains(&FaultFamily::CrashCoordinator));
        assert_eq!(opts.replica_bin, bugs);
        let steps = schedule_for(&opts.params, 3);
        assert!(steps
            .iter()
            .any(|s| matches!(&s.fault, Some(f) if f.to_string().contains("crash"))));
    }

    /// The schedules that saved version-5 runs (classic and sharded, every real family) drew,
    /// as the version-5 harness drew them: `testdata/schedules/v5.json`, written once by that
    /// harness (`REWRITE=1`). A later version must replay them exactly.
    #[test]
    fn a_saved_version_5_run_replays_the_schedule_it_drew() {
        let classic = RunParams {
            time_ms: 30_000,
            nemesis_interval_ms: 1_000,
            nemesis: vec![
                FaultFamily::Kill,
                FaultFamily::Pause,
                FaultFamily::Partition,
                FaultFamily::IsolateFollower,
                FaultFamily::Election,
            ],
            schedule_version: 5,
            ..RunParams::default()
        };
        let mut shard = sharded(Path::new("replica")).params;
        shard.time_ms = 30_000;
        shard.nemesis_interval_ms = 2_000;
        shard.nemesis = vec![
            FaultFamily::Kill,
            FaultFamily::Partition,
            FaultFamily::Election,
            FaultFamily::CrashCoordinator,
        ];
        shard.schedule_version = 5;
        let drawn: Vec<serde_json::Value> = (1..=12u64)
            .flat_map(|seed| [schedule_for(&classic, seed), schedule_for(&shard, seed)])
            .map(|steps| serde_json::to_value(steps).unwrap())
            .collect();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/schedules/v5.json");
        if std::env::var_os("REWRITE").is_some() && !path.exists() {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, serde_json::to_string_pretty(&drawn).unwrap()).unwrap();
        }
        let saved: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(
            drawn, saved,
            "a version-5 run.toml draws what version 5 drew"
        );
    }

    #[test]
    fn a_saved_run_draws_its_schedule_by_its_own_version() {
        let now = RunParams {
            time_ms: 30_000,
            nemesis_interval_ms: 1_000,
            ..RunParams::default()
        };
        assert_eq!(now.schedule_version, schedule::SCHEDULE_VERSION);
        let old = RunParams {
            schedule_version: schedule::LAST_EVEN_REAL_VERSION,
            ..now.clone()
        };
        let nodes: Vec<_> = (1..=5).map(replica::types::NodeId).collect();
        let even = schedule::FamilyOdds::Even;
        let as_before = schedule::generate(9, &nodes, &old.nemesis, 1_000, 30_000, even);
        assert_eq!(schedule_for(&old, 9), as_before, "replayed as it was drawn");
        assert_ne!(
            schedule_for(&now, 9),
            as_before,
            "a new run draws by version 5"
        );
        // A run.toml without the key is such an old run.
        let mut table: toml::Table = toml::from_str(&toml::to_string(&now).unwrap()).unwrap();
        table.remove("schedule_version");
        let read: RunParams = toml::from_str(&toml::to_string(&table).unwrap()).unwrap();
        assert_eq!(read.schedule_version, schedule::LAST_EVEN_REAL_VERSION);
    }

    #[test]
    fn without_replica_bugs_the_default_has_no_crash_coordinator_and_asking_for_it_fails() {
        let dir = bins(false);
        let plain = dir.path().join("replica");
        let bugs = dir.path().join("replica-bugs");
        let mut opts = sharded(&plain);
        resolve_sharded_faults(&mut opts, None, &bugs).unwrap();
        assert_eq!(opts.params.nemesis, RunParams::default().nemesis);
        assert_eq!(opts.replica_bin, plain);
        let mut opts = sharded(&plain);
        let asked = vec![FaultFamily::Kill, FaultFamily::CrashCoordinator];
        let e = resolve_sharded_faults(&mut opts, Some(asked), &bugs).unwrap_err();
        let e = e.to_string();
        assert!(
            e.contains("crash-coordinator") && e.contains("--features bugs"),
            "{e}"
        );
        assert!(
            check_failpoint_binary(&opts).is_err(),
            "a run refuses it too"
        );
    }

    #[test]
    fn a_classic_run_is_left_as_asked_and_refuses_crash_coordinator() {
        let dir = bins(true);
        let plain = dir.path().join("replica");
        let mut opts = sharded(&plain);
        opts.params.shards = None;
        opts.params.nodes = 5;
        resolve_sharded_faults(&mut opts, None, &dir.path().join("replica-bugs")).unwrap();
        assert_eq!(opts.params.nemesis, RunParams::default().nemesis);
        assert_eq!(opts.replica_bin, plain);
        opts.params.nemesis.push(FaultFamily::CrashCoordinator);
        let e = validate(&opts.params).unwrap_err().to_string();
        assert!(e.contains("--shards"), "{e}");
    }
}
