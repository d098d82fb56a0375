//! The command-line face of simulation: `harness sim`, `harness replay` of a simulated run,
//! and `harness zoo --sim`. Prints what a person needs: a progress bar, every failing seed
//! with the one line that reproduces it, and a summary with the speed.

use super::shrink::{default_out, shrink};
use super::sweep::{
    catch_panic, keep_panic, recorded_panic, sweep_seeds, Keep, SweepKnobs, SweepOptions,
    SweepReport,
};
use super::{simulate, write_and_check, SimRunInfo, SimSummary};
use crate::faults::schedule::{parse_families, FaultFamily, World};
use crate::faults::tunables::Pins;
use crate::fleet::identity::BuildIdentity;
use crate::fleet::slice::Slice;
use crate::fleet::task::{fresh_summary, SeedResult, Task, TaskKind, TASK_SUMMARY_FILE};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `--faults` as one clap value.
#[derive(Clone, Debug, PartialEq)]
pub struct Families(pub Vec<FaultFamily>);

fn parse_faults(s: &str) -> Result<Families, String> {
    parse_families(s, World::Simulator).map(Families)
}

fn parse_ms(s: &str) -> Result<u64, String> {
    crate::run::rundir::parse_duration(s).map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[derive(clap::Args, Debug, Clone)]
pub struct SimArgs {
    /// How many seeds to run.
    #[arg(long, default_value_t = 100)]
    pub seeds: u64,
    /// The first seed; the others follow it.
    #[arg(long, default_value_t = 1)]
    pub from_seed: u64,
    /// Operations per run, over all ten clients.
    #[arg(long)]
    pub ops: Option<u64>,
    /// Faults: a comma-separated subset of kill,pause,partition,power,clock,disk,crash-burst,
    /// power-after-send,election (and crash-coordinator with --shards); all; or none
    /// (default: a subset drawn per seed, crash-coordinator among them with --shards).
    #[arg(long, value_parser = parse_faults)]
    pub faults: Option<Families>,
    /// Every seed with every fault family and the fixed workload, instead of the subset of
    /// families and the workload shape each seed draws (swarm testing).
    #[arg(long)]
    pub no_swarm: bool,
    /// Which run directories to keep.
    #[arg(long, value_enum, default_value = "failing")]
    pub keep: Keep,
    /// Shrink this failing simulated run instead of sweeping: writes `<DIR>-shrunk`.
    #[arg(long, value_name = "DIR")]
    pub shrink: Option<PathBuf>,
    /// Plant a replica bug (see `harness zoo`).
    #[arg(long)]
    pub bug: Option<String>,
    /// A sharded bank: this many shards of three replicas, two-phase commit between them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=10))]
    pub shards: Option<u32>,
    /// Pin the checkpoint interval (slots) instead of drawing it per seed.
    #[arg(long)]
    pub checkpoint_interval: Option<u64>,
    /// Pin the most commands per slot instead of drawing it per seed.
    #[arg(long)]
    pub max_batch: Option<u32>,
    /// Pin the most slots in flight instead of drawing it per seed.
    #[arg(long)]
    pub max_inflight: Option<u32>,
    /// Pin a sharded bank's most two-phase commit transactions in flight per shard (not
    /// drawn: the default is 16).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_inflight_txns: Option<u32>,
    /// Pin the time between a fault and its heal (virtual), e.g. 500ms.
    #[arg(long, value_parser = parse_ms)]
    pub nemesis_interval: Option<u64>,
    /// After the final heal, every pending operation must finish within this (virtual).
    #[arg(long, value_parser = parse_ms)]
    pub liveness_bound: Option<u64>,
    /// Worker threads (default: one per core).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Where kept run directories go.
    #[arg(long, default_value = "reports/sim")]
    pub out: PathBuf,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    /// Run only task K of N's share of the seeds (e.g. 3/10), into `<out>/slice-K-of-N`,
    /// skipping the seeds an earlier attempt of the same task finished; `auto` takes K and N
    /// from a Slurm job array or a Kubernetes Indexed Job.
    #[arg(long, value_parser = crate::fleet::slice::parse_slice)]
    pub slice: Option<crate::fleet::slice::SliceArg>,
    /// A name for this sweep: kept run directories are `<name>-<seed>...` (default `sim`).
    #[arg(long)]
    pub name: Option<String>,
}

impl SimArgs {
    fn pins(&self) -> Pins {
        Pins {
            checkpoint_interval_slots: self.checkpoint_interval,
            max_batch_commands: self.max_batch,
            max_inflight_slots: self.max_inflight,
            nemesis_interval_ms: self.nemesis_interval,
            max_inflight_txns: self.max_inflight_txns,
            ..Pins::default()
        }
    }

    fn knobs(&self) -> SweepKnobs {
        SweepKnobs {
            ops: self.ops,
            faults: self.faults.as_ref().map(|f| f.0.clone()),
            bug: self.bug.clone(),
            liveness_bound_ms: self.liveness_bound,
            shards: self.shards,
            no_swarm: self.no_swarm,
        }
    }

    /// Everything that shapes a seed's run, for a task's summary: tasks whose parameters
    /// differ are not one sweep.
    fn task_params(&self) -> serde_json::Map<String, serde_json::Value> {
        let faults = self
            .faults
            .as_ref()
            .map(|f| f.0.iter().map(ToString::to_string).collect::<Vec<_>>());
        let value = serde_json::json!({
            "ops": self.ops,
            "faults": faults,
            "bug": self.bug,
            "shards": self.shards,
            "checkpoint_interval": self.checkpoint_interval,
            "max_batch": self.max_batch,
            "max_inflight": self.max_inflight,
            "nemesis_interval_ms": self.nemesis_interval,
            "liveness_bound_ms": self.liveness_bound,
            "no_swarm": self.no_swarm,
            "keep": format!("{:?}", self.keep).to_lowercase(),
        });
        let mut map = match value {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        // Only when pinned, so that a task's parameters read as before it existed.
        if let Some(txns) = self.max_inflight_txns {
            map.insert("max_inflight_txns".into(), txns.into());
        }
        map
    }

    /// The flags that must come along to reproduce one seed.
    pub fn reproduce_flags(&self) -> String {
        let mut flags = String::new();
        let mut add = |name: &str, value: Option<String>| {
            if let Some(v) = value {
                flags.push_str(&format!(" --{name} {v}"));
            }
        };
        add("ops", self.ops.map(|v| v.to_string()));
        add(
            "faults",
            self.faults.as_ref().map(|f| {
                let names: Vec<String> = f.0.iter().map(ToString::to_string).collect();
                if names.is_empty() {
                    "none".into()
                } else {
                    names.join(",")
                }
            }),
        );
        add("bug", self.bug.clone());
        add("shards", self.shards.map(|v| v.to_string()));
        add(
            "checkpoint-interval",
            self.checkpoint_interval.map(|v| v.to_string()),
        );
        add("max-batch", self.max_batch.map(|v| v.to_string()));
        add("max-inflight", self.max_inflight.map(|v| v.to_string()));
        add(
            "max-inflight-txns",
            self.max_inflight_txns.map(|v| v.to_string()),
        );
        add(
            "nemesis-interval",
            self.nemesis_interval.map(|v| format!("{v}ms")),
        );
        add(
            "liveness-bound",
            self.liveness_bound.map(|v| format!("{v}ms")),
        );
        if self.no_swarm {
            flags.push_str(" --no-swarm");
        }
        flags
    }
}

/// `harness sim`.
pub fn run(args: &SimArgs) -> anyhow::Result<i32> {
    if let Some(dir) = &args.shrink {
        return run_shrink(dir);
    }
    let asks_crash = args
        .faults
        .as_ref()
        .is_some_and(|f| f.0.contains(&FaultFamily::CrashCoordinator));
    if asks_crash && args.shards.is_none_or(|s| s < 2) {
        return Err(crate::commands::exit::usage(
            "--faults crash-coordinator needs a sharded bank (--shards 2 or more): only \
             two-phase commit reaches its failpoints",
        ));
    }
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let slice = args.slice.map(|s| s.resolve()).transpose()?;
    let out = match slice {
        Some(slice) => args.out.join(slice.dir_name()),
        None => args.out.clone(),
    };
    let opts = SweepOptions {
        from_seed: args.from_seed,
        seeds: args.seeds,
        out,
        keep: args.keep,
        jobs,
        pins: args.pins(),
        knobs: args.knobs(),
        progress: !args.no_progress,
        name: args.name.clone(),
    };
    std::fs::create_dir_all(&opts.out)
        .with_context(|| format!("cannot create {}", opts.out.display()))?;
    let build = BuildIdentity::of(&[]).context("cannot hash the harness binary")?;
    let flags = args.reproduce_flags();
    let fresh = fresh_summary(
        TaskKind::Sim,
        slice.unwrap_or(Slice::WHOLE),
        args.from_seed,
        args.seeds,
        args.task_params(),
        flags.clone(),
        build,
    );
    let share = fresh.share();
    // Only a slice resumes: a plain sweep into the same directory runs all its seeds again.
    let (task, done) = Task::open(&opts.out, fresh, slice.is_some())
        .with_context(|| format!("cannot write the task summary in {}", opts.out.display()))?;
    let seeds: Vec<u64> = share.filter(|s| !done.contains(s)).collect();
    if !done.is_empty() {
        println!(
            "{}: {} already done, {} to run",
            opts.out.display(),
            checker::text::count(done.len() as u64, "seed"),
            seeds.len()
        );
    }
    let bar = progress_bar(seeds.len() as u64, opts.progress);
    let in_order = std::sync::Mutex::new(InOrder::new(&seeds));
    let show = |line: String| {
        if bar.is_hidden() {
            println!("{line}");
        } else {
            bar.println(line);
        }
    };
    let on_seed = |summary: &SimSummary| {
        if let Err(e) = task.record(seed_result(summary)) {
            bar.println(format!("warning: cannot update the task summary: {e}"));
        }
        bar.inc(1);
        let line = (summary.exit_code != 0).then(|| failing_line(summary, &flags));
        let mut in_order = in_order.lock().unwrap_or_else(|p| p.into_inner());
        in_order
            .finished(summary.seed, line)
            .into_iter()
            .for_each(show);
    };
    let report = sweep_seeds(&opts, &seeds, &on_seed);
    // Seeds that never reported (an error) leave gaps: print what waits behind them.
    let rest = in_order.into_inner().unwrap_or_else(|p| p.into_inner());
    rest.drain().into_iter().for_each(show);
    bar.finish_and_clear();
    print_report(&report, jobs);
    let summary = task.finish().context("cannot write the task summary")?;
    println!(
        "summary: {} ({} valid, {} invalid, {} unknown over {})",
        task.dir().join(TASK_SUMMARY_FILE).display(),
        summary.counts.valid,
        summary.counts.invalid,
        summary.counts.unknown,
        checker::text::count(summary.done_seeds().count() as u64, "seed"),
    );
    Ok(report.exit_code().max(task_exit_code(&summary)))
}

/// A task's verdict over every seed it did, this attempt and earlier ones.
fn task_exit_code(summary: &crate::fleet::task::TaskSummary) -> i32 {
    if summary.counts.invalid > 0 {
        1
    } else if summary.counts.unknown > 0 {
        2
    } else {
        0
    }
}

/// A finished seed as its task records it.
fn seed_result(summary: &SimSummary) -> SeedResult {
    SeedResult {
        seed: summary.seed,
        exit_code: summary.exit_code,
        verdict: summary.verdict.clone(),
        failed_checks: summary.failed_checks.clone(),
        details: summary.world_violations.clone(),
        // A seed that was not kept has had its scratch directory removed already.
        dir: summary.dir.is_dir().then(|| summary.dir.clone()),
        faults: summary.faults,
        virtual_ms: summary.virtual_ms,
    }
}

/// Seeds finish out of order on several threads; their lines are printed in the order the
/// seeds were given (a resumed slice skips the seeds it already did, so not always contiguous).
struct InOrder {
    expected: std::collections::VecDeque<u64>,
    waiting: std::collections::BTreeMap<u64, Option<String>>,
}

impl InOrder {
    fn new(seeds: &[u64]) -> InOrder {
        InOrder {
            expected: seeds.iter().copied().collect(),
            waiting: Default::default(),
        }
    }

    /// `seed` finished with `line` to print (if any); returns the lines now due, in order.
    fn finished(&mut self, seed: u64, line: Option<String>) -> Vec<String> {
        self.waiting.insert(seed, line);
        let mut due = Vec::new();
        while let Some(line) = self.expected.front().and_then(|s| self.waiting.remove(s)) {
            due.extend(line);
            self.expected.pop_front();
        }
        due
    }

    /// Whatever still waits, in seed order.
    fn drain(self) -> Vec<String> {
        self.waiting.into_values().flatten().collect()
    }
}

fn progress_bar(len: u64, visible: bool) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {per_sec}  eta {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// One failing seed, with the commands that reproduce it.
fn failing_line(summary: &SimSummary, flags: &str) -> String {
    let mut what = summary.failed_checks.join(", ");
    if !summary.world_violations.is_empty() {
        if !what.is_empty() {
            what.push_str(", ");
        }
        what.push_str(&format!("world: {}", summary.world_violations[0]));
    }
    let rerun = format!("harness sim --seeds 1 --from-seed {}{flags}", summary.seed);
    // With `--keep none` the seed's directory is gone: only a rerun can bring it back.
    let replay = if summary.dir.exists() {
        format!("  replay: harness replay {}", summary.dir.display())
    } else {
        "  (not kept, by --keep none: the rerun below keeps it)".to_string()
    };
    format!(
        "seed {}: {} ({what})\n{replay}\n  rerun:  {rerun}",
        summary.seed, summary.verdict,
    )
}

fn print_report(report: &SweepReport, jobs: usize) {
    for error in &report.errors {
        println!("error: {error}");
    }
    let per_min = report.ran as f64 / report.wall_s.max(1e-9) * 60.0;
    let ratio = report.virtual_ms as f64 / 1000.0 / report.wall_s.max(1e-9);
    println!(
        "{} in {:.1} s ({per_min:.0} seeds/min on {jobs} thread{}): {} failing, {}; \
         {:.0} s of virtual time ({ratio:.0}x wall time)",
        checker::text::count(report.ran, "seed"),
        report.wall_s,
        if jobs == 1 { "" } else { "s" },
        report.failing.len(),
        checker::text::count(report.errors.len() as u64, "error"),
        report.virtual_ms as f64 / 1000.0,
    );
    if let Some(first) = report.failing.iter().find(|f| f.dir.exists()) {
        println!(
            "shrink the first: harness sim --shrink {}",
            first.dir.display()
        );
    }
}

fn run_shrink(dir: &Path) -> anyhow::Result<i32> {
    let out = default_out(dir);
    let _ = std::fs::remove_dir_all(&out);
    let shrunk = shrink(dir, &out)?;
    let before = SimRunInfo::load(dir)?;
    println!(
        "{}: still fails {} after {} attempts; faults {} -> {}, operations {} -> {}, time limit {} -> {} ms",
        out.display(),
        shrunk.check,
        shrunk.attempts,
        shrunk.original_faults,
        shrunk.summary.faults,
        before.params.ops,
        shrunk.info.params.ops,
        before.params.time_limit_ms,
        shrunk.info.params.time_limit_ms,
    );
    println!("  replay: harness replay {}", out.display());
    Ok(shrunk.summary.exit_code)
}

/// A replay of a simulated run: the new run, and whether its history is the original's.
pub struct SimReplay {
    pub summary: SimSummary,
    pub identical: bool,
    /// The first line where the histories differ, if they do.
    pub difference: Option<String>,
    pub original_verdict: Option<String>,
    /// The original's panic (`panic.txt`), and the replay's, when they panicked.
    pub original_panic: Option<String>,
    pub panic: Option<String>,
}

/// Runs `dir`'s simulation again into a new directory beside it (or in `out`, as `harness
/// replay --out` does for a real run), and compares. A seed that panicked is replayed too:
/// its replay ends as a verdict (the same panic, or what it did instead), never as a crash.
pub fn replay(dir: &Path, out: Option<&Path>) -> anyhow::Result<SimReplay> {
    replay_with(dir, out, &simulate)
}

type Simulate<'a> = dyn Fn(&SimRunInfo) -> Result<super::SimOutcome, super::SimError> + 'a;

/// [`replay`] with what simulates as a parameter (a test plants a panic there).
fn replay_with(
    dir: &Path,
    out: Option<&Path>,
    simulate: &Simulate<'_>,
) -> anyhow::Result<SimReplay> {
    let mut info = SimRunInfo::load(dir)?;
    let original_panic = recorded_panic(dir);
    let simulated = catch_panic(|| simulate(&info));
    info.replays = Some(dir.display().to_string());
    let out = replay_dir(dir, out);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let _ = std::fs::remove_dir_all(&out);
    let original_verdict = crate::run::store::original_verdict(dir);
    let outcome = match simulated {
        Ok(outcome) => outcome?,
        Err(message) => {
            let summary = keep_panic(&out, info.seed, Some(&info), &message)?;
            let identical = original_panic.as_deref() == Some(message.as_str());
            let difference = (!identical).then(|| match &original_panic {
                Some(was) => format!("the original panicked otherwise: {was}"),
                None => "the original did not panic".to_string(),
            });
            return Ok(SimReplay {
                summary,
                identical,
                difference,
                original_verdict,
                original_panic,
                panic: Some(message),
            });
        }
    };
    let difference = match &original_panic {
        Some(was) => Some(format!("the original panicked ({was}); the replay did not")),
        None => {
            let original = std::fs::read(dir.join("history.jsonl"))
                .with_context(|| format!("cannot read {}", dir.join("history.jsonl").display()))?;
            first_difference(&original, &outcome.history)
        }
    };
    let summary = write_and_check(&out, &info, &outcome, true)?;
    Ok(SimReplay {
        summary,
        identical: difference.is_none(),
        difference,
        original_verdict,
        original_panic,
        panic: None,
    })
}

/// `<name>-replay` beside the original, or inside `out` when given.
fn replay_dir(dir: &Path, out: Option<&Path>) -> PathBuf {
    let name = dir
        .file_name()
        .map_or_else(|| "run".into(), |n| n.to_string_lossy().into_owned());
    let name = format!("{name}-replay");
    match out {
        Some(out) => out.join(name),
        None => dir.with_file_name(name),
    }
}

fn first_difference(a: &[u8], b: &[u8]) -> Option<String> {
    if a == b {
        return None;
    }
    let (a, b) = (String::from_utf8_lossy(a), String::from_utf8_lossy(b));
    let mut lines = a.lines().zip(b.lines()).enumerate();
    match lines.find(|(_, (x, y))| x != y) {
        Some((k, (x, y))) => Some(format!("line {}: {x}\n  now: {y}", k + 1)),
        None => Some(format!(
            "one history is a prefix of the other ({} vs {} lines)",
            a.lines().count(),
            b.lines().count()
        )),
    }
}

/// Prints a simulated replay's outcome; returns the exit code.
pub fn print_replay(replay: &SimReplay) -> i32 {
    let s = &replay.summary;
    println!(
        "{}: {} (seed {}, {}, {})",
        s.dir.display(),
        s.verdict,
        s.seed,
        checker::text::count(s.faults, "fault"),
        checker::text::count(s.invoked, "operation")
    );
    if let Some(message) = &replay.panic {
        println!("the simulation panicked: {message}");
        if replay.identical {
            println!("the original panicked the same way (its panic.txt)");
        } else {
            println!("{}", replay.difference.as_deref().unwrap_or(""));
        }
    } else if replay.identical {
        println!("history.jsonl is byte-identical to the original's");
    } else if replay.original_panic.is_some() {
        println!("{}", replay.difference.as_deref().unwrap_or(""));
    } else {
        println!(
            "history.jsonl differs from the original's: {}",
            replay.difference.as_deref().unwrap_or("")
        );
    }
    // A simulated replay is compared by its whole history: identical, or not comparable.
    let was = replay.original_verdict.as_deref().unwrap_or("unknown");
    let conclusion = match (replay.identical, was == s.verdict) {
        (true, true) if replay.panic.is_some() => "reproduced (the same panic)",
        (_, _) if replay.original_panic.is_some() && replay.panic.is_none() => {
            "not reproduced (the original panicked, the replay did not)"
        }
        (true, true) => "reproduced",
        (true, false) => "not reproduced (the same history, checked differently)",
        (false, _) => "not comparable (the history differs)",
    };
    println!("verdict {} (was {was}): {conclusion}", s.verdict);
    if replay.identical {
        s.exit_code
    } else {
        2
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failing seed's line offers `harness replay` only for a directory that exists: with
    /// `--keep none` it was deleted, and the line says so and points at the rerun instead.
    #[test]
    fn a_seed_that_was_not_kept_is_offered_a_rerun_not_a_replay_of_a_deleted_directory() {
        let out = tempfile::tempdir().unwrap();
        let mut summary = SimSummary {
            dir: out.path().join("sim-9"),
            seed: 9,
            exit_code: 1,
            verdict: "invalid".into(),
            failed_checks: vec!["agreement".into()],
            faults: 3,
            invoked: 10,
            virtual_ms: 1_000,
            world_violations: Vec::new(),
        };
        let gone = failing_line(&summary, " --ops 300");
        assert!(!gone.contains("harness replay"), "{gone}");
        assert!(gone.contains("not kept"), "{gone}");
        assert!(
            gone.contains("rerun:  harness sim --seeds 1 --from-seed 9 --ops 300"),
            "{gone}"
        );
        std::fs::create_dir_all(&summary.dir).unwrap();
        let kept = failing_line(&summary, "");
        assert!(kept.contains(&format!("replay: harness replay {}", summary.dir.display())));
        summary.dir = out.path().join("elsewhere");
        assert!(!failing_line(&summary, "").contains("replay: harness replay"));
    }

    /// A kept seed that panicked (issue 24, item 4) replays as a verdict, never a crash: the
    /// same panic again is "reproduced (the same panic)", unknown, exit 2; a replay that does
    /// not panic says the original did and is not reproduced.
    #[test]
    fn a_panicked_seed_replays_as_a_verdict_not_a_crash() {
        let out = tempfile::tempdir().unwrap();
        let dir = out.path().join("sim-5");
        let mut params = super::super::SimParams::for_seed(5, &Pins::default(), None);
        params.ops = 100;
        let info = SimRunInfo::new(5, params).unwrap();
        let message = "index out of bounds: the len is 0 but the index is 0";
        keep_panic(&dir, 5, Some(&info), message).unwrap();
        assert_eq!(recorded_panic(&dir).as_deref(), Some(message));

        let planted = |_: &SimRunInfo| -> Result<super::super::SimOutcome, super::super::SimError> {
            panic!("index out of bounds: the len is 0 but the index is 0")
        };
        let again = replay_with(&dir, Some(out.path()), &planted).unwrap();
        assert!(again.identical && again.panic.as_deref() == Some(message));
        assert_eq!(print_replay(&again), 2);
        let replayed = out.path().join("sim-5-replay");
        assert_eq!(again.summary.dir, replayed);
        assert!(replayed.join("panic.txt").is_file() && replayed.join("run.toml").is_file());

        let fixed = replay_with(&dir, Some(out.path()), &simulate).unwrap();
        assert!(fixed.panic.is_none() && !fixed.identical);
        assert!(
            fixed
                .difference
                .as_deref()
                .unwrap()
                .contains("the original panicked"),
            "{:?}",
            fixed.difference
        );
        assert_eq!(
            print_replay(&fixed),
            2,
            "not reproduced is not the original's verdict"
        );
        assert!(
            replayed.join("history.jsonl").is_file(),
            "the replay ran whole"
        );
    }

    #[test]
    fn seeds_finishing_out_of_order_are_printed_in_order() {
        let mut in_order = InOrder::new(&[5, 6, 7, 9, 10]);
        let line = |s: &str| Some(s.to_string());
        assert!(in_order.finished(7, line("seed 7")).is_empty());
        assert!(in_order.finished(6, None).is_empty(), "5 is still running");
        assert_eq!(in_order.finished(5, line("seed 5")), ["seed 5", "seed 7"]);
        assert!(in_order.finished(10, line("seed 10")).is_empty());
        assert_eq!(in_order.drain(), ["seed 10"], "9 never reported");
        // A resumed slice's seeds have gaps: a seed done earlier is not waited for.
        let mut resumed = InOrder::new(&[3, 8]);
        assert_eq!(resumed.finished(8, line("seed 8")), Vec::<String>::new());
        assert_eq!(resumed.finished(3, line("seed 3")), ["seed 3", "seed 8"]);
        assert_eq!(
            replay_dir(Path::new("reports/sim/sim-4"), Some(Path::new("/tmp/r"))),
            Path::new("/tmp/r/sim-4-replay")
        );
        assert_eq!(
            replay_dir(Path::new("reports/sim/sim-4"), None),
            Path::new("reports/sim/sim-4-replay")
        );
    }
}
