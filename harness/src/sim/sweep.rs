//! Many seeds, one after another on each worker thread: `harness sim --seeds N`.
//!
//! Every seed is simulated in memory, written to a scratch run directory and judged by the
//! checker; a seed that passes is deleted unless the user keeps all. Kept seeds get the full
//! report and a directory named after the seed and the sweep's non-default parameters
//! (`sim-17`, `sim-17-bug-no-dedup-shards-3`, or `--name`'s prefix), so sweeps of other
//! parameters never overwrite each other, and `latest` points at the last one kept.
//!
//! A panic while simulating or judging one seed (a bug in the system under test that the
//! simulator did not expect, or one of the tester's own) costs that seed only: it is caught,
//! the seed's `run.toml` is kept beside a `panic.txt`, and it counts as unknown.

use super::{simulate, write_and_check, SimError, SimParams, SimRunInfo, SimSummary};
use crate::faults::tunables::Pins;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Which run directories a sweep keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Keep {
    Failing,
    All,
    None,
}

/// A sweep's parameters.
#[derive(Clone, Debug)]
pub struct SweepOptions {
    pub from_seed: u64,
    pub seeds: u64,
    pub out: PathBuf,
    pub keep: Keep,
    pub jobs: usize,
    pub pins: Pins,
    /// Applied to each seed's defaults (ops, faults, bug...).
    pub knobs: SweepKnobs,
    pub progress: bool,
    /// The prefix of kept run directories (`--name`; default `sim`).
    pub name: Option<String>,
}

/// The command line's choices that override the defaults of every seed.
#[derive(Clone, Debug, Default)]
pub struct SweepKnobs {
    pub ops: Option<u64>,
    pub faults: Option<Vec<crate::faults::schedule::FaultFamily>>,
    pub bug: Option<String>,
    pub liveness_bound_ms: Option<u64>,
    /// A sharded bank of this many shards (`--shards`).
    pub shards: Option<u32>,
    /// Every family and the fixed workload for every seed (`--no-swarm`).
    pub no_swarm: bool,
}

/// Applies [`SweepKnobs`] the usual way.
pub fn apply_knobs(params: &mut SimParams, knobs: &SweepKnobs) {
    // First: without swarm, a sharded bank's every family includes crash-coordinator.
    params.set_shards(knobs.shards);
    if knobs.no_swarm {
        params.unswarmed();
    }
    if let Some(ops) = knobs.ops {
        params.ops = ops;
    }
    if let Some(faults) = &knobs.faults {
        params.faults = faults.clone();
    }
    if let Some(bound) = knobs.liveness_bound_ms {
        params.liveness_bound_ms = bound;
    }
    params.bug = knobs.bug.clone();
}

/// What a sweep found.
#[derive(Debug, Default)]
pub struct SweepReport {
    pub ran: u64,
    pub failing: Vec<SimSummary>,
    pub kept: Vec<PathBuf>,
    pub errors: Vec<String>,
    pub wall_s: f64,
    pub virtual_ms: u64,
}

impl SweepReport {
    /// 0 all valid, 1 some invalid, 2 some unknown, as a checked run.
    pub fn exit_code(&self) -> i32 {
        if self.failing.iter().any(|s| s.exit_code == 1) {
            1
        } else if !self.failing.is_empty() || !self.errors.is_empty() {
            2
        } else {
            0
        }
    }
}

/// The directory a kept seed of default parameters goes to (`sim-17`).
pub fn seed_dir(out: &Path, seed: u64) -> PathBuf {
    out.join(format!("sim-{seed}"))
}

/// The directory a kept seed goes to: `<name>-<seed>`, then the sweep's non-default knobs
/// and pins (`sim-17-bug-no-dedup-shards-3`), so that sweeps of other parameters keep apart.
pub fn kept_dir(opts: &SweepOptions, seed: u64) -> PathBuf {
    let name = opts.name.as_deref().unwrap_or("sim");
    let mut dir = format!("{name}-{seed}");
    for (key, value) in parameter_words(opts) {
        dir.push_str(&format!("-{key}-{value}"));
    }
    if dir.len() > 120 {
        // Too many pins for a readable name: the parameters' hash keeps it unique.
        let hash = crc32fast::hash(dir.as_bytes());
        dir = format!("{name}-{seed}-{hash:08x}");
    }
    opts.out.join(dir)
}

/// The knobs and pins that differ from a seed's defaults, as (flag, value) words.
fn parameter_words(opts: &SweepOptions) -> Vec<(&'static str, String)> {
    let k = &opts.knobs;
    let p = &opts.pins;
    let word = |s: String| s.replace(['/', ' ', ','], "+");
    let mut words = Vec::new();
    let mut add = |key: &'static str, value: Option<String>| {
        if let Some(v) = value {
            words.push((key, word(v)));
        }
    };
    add("bug", k.bug.clone());
    add("shards", k.shards.map(|v| v.to_string()));
    add("ops", k.ops.map(|v| v.to_string()));
    add(
        "faults",
        k.faults.as_ref().map(|f| {
            let names: Vec<String> = f.iter().map(ToString::to_string).collect();
            if names.is_empty() {
                "none".into()
            } else {
                names.join("+")
            }
        }),
    );
    add("liveness", k.liveness_bound_ms.map(|v| format!("{v}ms")));
    add("swarm", k.no_swarm.then(|| "off".to_string()));
    add("ckpt", p.checkpoint_interval_slots.map(|v| v.to_string()));
    add("batch", p.max_batch_commands.map(|v| v.to_string()));
    add("inflight", p.max_inflight_slots.map(|v| v.to_string()));
    add("interval", p.nemesis_interval_ms.map(|v| format!("{v}ms")));
    words
}

/// Runs the sweep; `on_seed` is told about every finished seed (for progress output).
pub fn sweep(opts: &SweepOptions, on_seed: &(dyn Fn(&SimSummary) + Sync)) -> SweepReport {
    let seeds: Vec<u64> = (0..opts.seeds)
        .map(|k| opts.from_seed.wrapping_add(k))
        .collect();
    sweep_seeds(opts, &seeds, on_seed)
}

/// Runs exactly `seeds` (a slice's share less the seeds already done).
pub fn sweep_seeds(
    opts: &SweepOptions,
    seeds: &[u64],
    on_seed: &(dyn Fn(&SimSummary) + Sync),
) -> SweepReport {
    sweep_with(opts, seeds, on_seed, &|seed, scratch| {
        one_seed(opts, seed, scratch)
    })
}

type OneSeed<'a> =
    dyn Fn(u64, &Path) -> Result<(SimSummary, Option<PathBuf>), SimError> + Sync + 'a;

/// The sweep's loop, with what runs one seed as a parameter (a test plants a panic there).
fn sweep_with(
    opts: &SweepOptions,
    seeds: &[u64],
    on_seed: &(dyn Fn(&SimSummary) + Sync),
    run_seed: &OneSeed<'_>,
) -> SweepReport {
    let started = Instant::now();
    let next = AtomicU64::new(0);
    let report = Mutex::new(SweepReport::default());
    let scratch = opts.out.join(".sim-scratch");
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.max(1) {
            scope.spawn(|| loop {
                let k = next.fetch_add(1, Ordering::Relaxed);
                let Some(&seed) = usize::try_from(k).ok().and_then(|k| seeds.get(k)) else {
                    return;
                };
                let result = isolated(opts, seed, &scratch, run_seed);
                let mut report = report.lock().unwrap_or_else(|p| p.into_inner());
                report.ran += 1;
                match result {
                    Ok((summary, kept)) => {
                        report.virtual_ms += summary.virtual_ms;
                        on_seed(&summary);
                        if let Some(dir) = kept {
                            report.kept.push(dir);
                        }
                        if summary.exit_code != 0 {
                            report.failing.push(summary);
                        }
                    }
                    Err(e) => report.errors.push(format!("seed {seed}: {e}")),
                }
            });
        }
    });
    let _ = std::fs::remove_dir_all(&scratch);
    let mut report = report.into_inner().unwrap_or_else(|p| p.into_inner());
    report.failing.sort_by_key(|s| s.seed);
    report.kept.sort();
    report.wall_s = started.elapsed().as_secs_f64();
    if let Some(last) = report.failing.last().map(|s| s.dir.clone()) {
        point_latest(&opts.out, &last);
    }
    report
}

/// `out/latest` -> the last failing seed's directory (a link, replaced).
fn point_latest(out: &Path, dir: &Path) {
    let (Some(name), link) = (dir.file_name(), out.join("latest")) else {
        return;
    };
    if link.is_symlink() || !link.exists() {
        let _ = std::fs::remove_file(&link);
        let _ = std::os::unix::fs::symlink(name, &link);
    }
}

/// One seed, with a panic caught: the seed becomes an unknown verdict whose directory keeps
/// its `run.toml` and the panic's message.
fn isolated(
    opts: &SweepOptions,
    seed: u64,
    scratch: &Path,
    run_seed: &OneSeed<'_>,
) -> Result<(SimSummary, Option<PathBuf>), SimError> {
    let message = match catch_panic(|| run_seed(seed, scratch)) {
        Ok(result) => return result,
        Err(message) => message,
    };
    let _ = std::fs::remove_dir_all(scratch.join(seed.to_string()));
    let dir = kept_dir(opts, seed);
    let _ = std::fs::remove_dir_all(&dir);
    let mut params = SimParams::for_seed(seed, &opts.pins, opts.knobs.shards);
    apply_knobs(&mut params, &opts.knobs);
    let info = SimRunInfo::new(seed, params).ok();
    let summary = keep_panic(&dir, seed, info.as_ref(), &message)?;
    Ok((summary, Some(dir)))
}

/// Runs `f`, turning a panic into its message (the panic hook has printed it already).
pub fn catch_panic<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).map_err(|payload| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_string())
    })
}

/// The file a panicked seed's directory keeps its panic in.
pub const PANIC_FILE: &str = "panic.txt";

/// The panic message a kept seed's `panic.txt` records, if it panicked.
pub fn recorded_panic(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(PANIC_FILE)).ok()?;
    let line = text.lines().next()?;
    Some(
        line.split_once(" panicked: ")
            .map_or(line, |(_, m)| m)
            .to_string(),
    )
}

/// Writes a panicked seed's directory (`run.toml` when the parameters are known, and
/// `panic.txt`); returns its summary: unknown, failing check `panic`.
pub fn keep_panic(
    dir: &Path,
    seed: u64,
    info: Option<&SimRunInfo>,
    message: &str,
) -> Result<SimSummary, SimError> {
    std::fs::create_dir_all(dir).map_err(|e| SimError::io(dir, e))?;
    if let Some(info) = info {
        info.write(dir)?;
    }
    let panic_path = dir.join(PANIC_FILE);
    std::fs::write(&panic_path, format!("seed {seed} panicked: {message}\n"))
        .map_err(|e| SimError::io(&panic_path, e))?;
    Ok(SimSummary {
        dir: dir.to_path_buf(),
        seed,
        exit_code: 2,
        verdict: crate::run::shared::verdict_word(2).to_string(),
        failed_checks: vec!["panic".to_string()],
        faults: 0,
        invoked: 0,
        virtual_ms: 0,
        world_violations: vec![format!("panic: {message}")],
    })
}

/// Simulates, judges and keeps (or drops) one seed.
fn one_seed(
    opts: &SweepOptions,
    seed: u64,
    scratch: &Path,
) -> Result<(SimSummary, Option<PathBuf>), SimError> {
    let mut params = SimParams::for_seed(seed, &opts.pins, opts.knobs.shards);
    apply_knobs(&mut params, &opts.knobs);
    let info = SimRunInfo::new(seed, params)?;
    let outcome = simulate(&info)?;
    let dir = scratch.join(seed.to_string());
    let mut summary = write_and_check(&dir, &info, &outcome, false)?;
    let keep = match opts.keep {
        Keep::All => true,
        Keep::Failing => summary.exit_code != 0,
        Keep::None => false,
    };
    if !keep {
        let _ = std::fs::remove_dir_all(&dir);
        return Ok((summary, None));
    }
    let kept = kept_dir(opts, seed);
    let _ = std::fs::remove_dir_all(&kept);
    std::fs::rename(&dir, &kept).map_err(|e| SimError::io(&kept, e))?;
    summary = write_and_check(&kept, &info, &outcome, true)?;
    Ok((summary, Some(kept)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(out: &Path) -> SweepOptions {
        SweepOptions {
            from_seed: 1,
            seeds: 4,
            out: out.to_path_buf(),
            keep: Keep::Failing,
            jobs: 2,
            pins: Pins::default(),
            knobs: SweepKnobs::default(),
            progress: false,
            name: None,
        }
    }

    /// A panic in one seed (here planted in what runs a seed) costs that seed only: the sweep
    /// goes on, and the seed is kept and counted unknown, named by its panic.
    #[test]
    fn a_panic_in_one_seed_costs_that_seed_only() {
        let out = tempfile::tempdir().unwrap();
        let opts = opts(out.path());
        let planted = |seed: u64, _: &Path| {
            if seed == 3 {
                panic!("index out of bounds: the len is 0 but the index is 0");
            }
            Ok((
                SimSummary {
                    dir: PathBuf::new(),
                    seed,
                    exit_code: 0,
                    verdict: "valid".into(),
                    failed_checks: vec![],
                    faults: 1,
                    invoked: 1,
                    virtual_ms: 1,
                    world_violations: vec![],
                },
                None,
            ))
        };
        let report = sweep_with(&opts, &[1, 2, 3, 4], &|_| {}, &planted);
        assert_eq!(report.ran, 4);
        assert_eq!(report.failing.len(), 1);
        let bad = &report.failing[0];
        assert_eq!((bad.seed, bad.exit_code), (3, 2));
        assert!(bad.world_violations[0].contains("index out of bounds"));
        let panic = std::fs::read_to_string(bad.dir.join("panic.txt")).unwrap();
        assert!(panic.contains("seed 3 panicked"), "{panic}");
        assert!(
            bad.dir.join("run.toml").is_file(),
            "the seed is kept to replay"
        );
        assert_eq!(
            std::fs::read_link(out.path().join("latest")).unwrap(),
            PathBuf::from("sim-3")
        );
    }

    #[test]
    fn kept_runs_are_named_by_sweep_name_and_parameters() {
        let out = Path::new("/o");
        let mut o = opts(out);
        assert_eq!(kept_dir(&o, 17), PathBuf::from("/o/sim-17"));
        o.knobs.bug = Some("no-dedup".into());
        o.knobs.shards = Some(3);
        assert_eq!(
            kept_dir(&o, 17),
            PathBuf::from("/o/sim-17-bug-no-dedup-shards-3")
        );
        o.knobs = SweepKnobs::default();
        o.knobs.shards = Some(3);
        assert_ne!(
            kept_dir(&o, 17),
            seed_dir(out, 17),
            "a sharded sweep keeps apart"
        );
        o.name = Some("nightly".into());
        assert_eq!(kept_dir(&o, 17), PathBuf::from("/o/nightly-17-shards-3"));
    }
}
