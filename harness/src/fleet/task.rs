//! One task's results directory and its `summary.json`, kept true while the task runs.
//!
//! The summary is rewritten (to a temporary file, then renamed) at most once a second, so a
//! task killed midway leaves a summary of what it finished, give or take its last second:
//! `complete: false` and the seeds done. It stays small on a night where most seeds fail: every
//! signature is counted, but only its first [`FAILING_KEPT_PER_SIGNATURE`] seeds are listed. Started again with the same slice, parameters and
//! build, the task reads that summary and skips those seeds, so an engine's retry costs
//! nothing twice. `task.log` gets one line per finished seed or run.

use super::identity::BuildIdentity;
use super::slice::Slice;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const TASK_SUMMARY_FILE: &str = "summary.json";
pub const TASK_LOG_FILE: &str = "task.log";
/// Failing seeds listed per signature in a summary (the rest are counted).
pub const FAILING_KEPT_PER_SIGNATURE: u64 = 20;
/// `format` of summary.json; a reader refuses a newer one.
pub const TASK_FORMAT: u32 = 1;
const WRITE_EVERY: Duration = Duration::from_secs(1);

/// What kind of work a task did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskKind {
    /// `harness sim`: simulated seeds.
    Sim,
    /// `harness campaign`: real runs, one per seed.
    Campaign,
}

/// `summary.json` of a task.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskSummary {
    pub format: u32,
    pub kind: TaskKind,
    pub slice: Slice,
    /// The sweep's whole range: every slice shares these.
    pub first_seed: u64,
    pub seeds: u64,
    /// Every choice that shapes a seed's run (ops, faults, bug, shards, pins...): tasks with
    /// different parameters are not one sweep.
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The flags that reproduce one seed (`harness sim --seeds 1 --from-seed S` + these).
    pub reproduce_flags: String,
    pub build: BuildIdentity,
    /// This task's share, `[start, end)`.
    pub share: [u64; 2],
    /// The seeds finished, as inclusive ranges.
    pub seeds_done: Vec<[u64; 2]>,
    pub complete: bool,
    pub counts: VerdictCounts,
    pub started_at: String,
    pub updated_at: String,
    /// Wall time spent, over every attempt of this task.
    pub wall_s: f64,
    /// Virtual time simulated (sim tasks).
    pub virtual_ms: u64,
    /// How many times the task was started (1, or more after a retry).
    pub attempts: u32,
    /// The first failing seeds of each signature (at most [`FAILING_KEPT_PER_SIGNATURE`]).
    pub failing: Vec<FailingRun>,
    /// Every signature's count of failing seeds and its first seed.
    #[serde(default)]
    pub signatures: std::collections::BTreeMap<String, SignatureCount>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureCount {
    pub count: u64,
    pub first_seed: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerdictCounts {
    pub valid: u64,
    pub invalid: u64,
    pub unknown: u64,
}

/// A seed (or real run) that was not valid.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FailingRun {
    pub seed: u64,
    pub verdict: String,
    pub exit_code: i32,
    /// What groups it with others: the verdict, the failed checks, the world's violations
    /// (or the panic) in kind.
    pub signature: String,
    pub failed_checks: Vec<String>,
    pub details: Vec<String>,
    /// The kept run directory, relative to the task directory (absent when not kept).
    pub dir: Option<String>,
    pub faults: u32,
}

/// One finished seed, as a task records it.
pub struct SeedResult {
    pub seed: u64,
    pub exit_code: i32,
    pub verdict: String,
    pub failed_checks: Vec<String>,
    pub details: Vec<String>,
    pub dir: Option<PathBuf>,
    pub faults: u32,
    pub virtual_ms: u64,
}

/// A task's results directory while it runs.
pub struct Task {
    dir: PathBuf,
    state: Mutex<State>,
}

struct State {
    summary: TaskSummary,
    done: BTreeSet<u64>,
    started: Instant,
    wall_before_s: f64,
    last_write: Instant,
    log: Option<std::fs::File>,
}

impl TaskSummary {
    pub fn read(dir: &Path) -> Result<TaskSummary, String> {
        let path = dir.join(TASK_SUMMARY_FILE);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let summary: TaskSummary = serde_json::from_str(&text)
            .map_err(|e| format!("{} is not a task summary: {e}", path.display()))?;
        if summary.format > TASK_FORMAT {
            return Err(format!(
                "{} has format {}, newer than this harness's {TASK_FORMAT}",
                path.display(),
                summary.format
            ));
        }
        Ok(summary)
    }

    /// Whether `other` is the same task of the same sweep (so its seeds done count here).
    fn same_task(&self, other: &TaskSummary) -> bool {
        self.kind == other.kind
            && self.slice == other.slice
            && self.first_seed == other.first_seed
            && self.seeds == other.seeds
            && self.params == other.params
            && self.build == other.build
    }

    /// The seeds of `seeds_done`, one by one.
    pub fn done_seeds(&self) -> impl Iterator<Item = u64> + '_ {
        self.seeds_done.iter().flat_map(|[a, b]| *a..=*b)
    }

    pub fn share(&self) -> std::ops::Range<u64> {
        self.share[0]..self.share[1]
    }
}

/// Inclusive ranges of consecutive numbers.
pub fn ranges(seeds: impl IntoIterator<Item = u64>) -> Vec<[u64; 2]> {
    let mut out: Vec<[u64; 2]> = Vec::new();
    for s in seeds {
        match out.last_mut() {
            Some(last) if last[1].checked_add(1) == Some(s) => last[1] = s,
            _ => out.push([s, s]),
        }
    }
    out
}

/// `3-7, 9`.
pub fn render_ranges(ranges: &[[u64; 2]]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|[a, b]| {
            if a == b {
                a.to_string()
            } else {
                format!("{a}-{b}")
            }
        })
        .collect();
    parts.join(", ")
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl Task {
    /// Opens `dir` for `fresh`'s task. With `resume`, a summary of the same task found there
    /// carries over (its seeds are done); any other summary is replaced. Returns the task and
    /// the seeds already done.
    pub fn open(
        dir: &Path,
        mut fresh: TaskSummary,
        resume: bool,
    ) -> std::io::Result<(Task, BTreeSet<u64>)> {
        std::fs::create_dir_all(dir)?;
        let mut notes = Vec::new();
        let mut wall_before_s = 0.0;
        match TaskSummary::read(dir) {
            Ok(old) if resume && old.same_task(&fresh) => {
                fresh.seeds_done = old.seeds_done;
                fresh.counts = old.counts;
                fresh.failing = old.failing;
                fresh.signatures = old.signatures;
                fresh.started_at = old.started_at;
                fresh.virtual_ms = old.virtual_ms;
                fresh.attempts = old.attempts + 1;
                wall_before_s = old.wall_s;
                notes.push(format!(
                    "resumed: {} of {} seeds were done",
                    fresh.done_seeds().count(),
                    fresh.share[1] - fresh.share[0]
                ));
            }
            Ok(_) if resume => notes.push(
                "a summary of another sweep, slice or build was here: starting afresh".into(),
            ),
            _ => {}
        }
        let done: BTreeSet<u64> = fresh.done_seeds().collect();
        // A resumed task's log goes on; a fresh task's starts again.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(fresh.attempts > 1)
            .truncate(fresh.attempts == 1)
            .open(dir.join(TASK_LOG_FILE))?;
        let task = Task {
            dir: dir.to_path_buf(),
            state: Mutex::new(State {
                summary: fresh,
                done: done.clone(),
                started: Instant::now(),
                wall_before_s,
                last_write: Instant::now(),
                log: Some(log),
            }),
        };
        {
            let mut state = task.lock();
            let line = format!(
                "{} start slice {} (attempt {})",
                now_rfc3339(),
                state.summary.slice,
                state.summary.attempts
            );
            state.log_line(&line);
            for note in notes {
                state.log_line(&note);
                eprintln!("{}: {note}", dir.display());
            }
            task.write(&mut state)?;
        }
        Ok((task, done))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Records one finished seed; rewrites the summary when due.
    pub fn record(&self, result: SeedResult) -> std::io::Result<()> {
        let mut state = self.lock();
        let failing = result.exit_code != 0;
        state.log_line(&format!(
            "seed {} {}{}",
            result.seed,
            result.verdict,
            if result.failed_checks.is_empty() {
                String::new()
            } else {
                format!(" ({})", result.failed_checks.join(", "))
            }
        ));
        if state.done.insert(result.seed) {
            let counts = &mut state.summary.counts;
            match result.exit_code {
                0 => counts.valid += 1,
                1 => counts.invalid += 1,
                _ => counts.unknown += 1,
            }
            state.summary.virtual_ms += result.virtual_ms;
            let sig = signature(&result.verdict, &result.failed_checks, &result.details);
            let listed = failing && {
                let entry = state
                    .summary
                    .signatures
                    .entry(sig.clone())
                    .or_insert(SignatureCount {
                        count: 0,
                        first_seed: result.seed,
                    });
                entry.count += 1;
                entry.first_seed = entry.first_seed.min(result.seed);
                entry.count <= FAILING_KEPT_PER_SIGNATURE
            };
            if listed {
                let dir = result
                    .dir
                    .as_ref()
                    .map(|d| d.strip_prefix(&self.dir).unwrap_or(d).display().to_string());
                state.summary.failing.push(FailingRun {
                    seed: result.seed,
                    signature: sig,
                    verdict: result.verdict,
                    exit_code: result.exit_code,
                    failed_checks: result.failed_checks,
                    details: result.details,
                    dir,
                    faults: result.faults,
                });
            }
        }
        if state.last_write.elapsed() >= WRITE_EVERY {
            self.write(&mut state)?;
        }
        Ok(())
    }

    /// Writes the final summary; returns it.
    pub fn finish(&self) -> std::io::Result<TaskSummary> {
        let mut state = self.lock();
        state.log_line(&format!("{} end", now_rfc3339()));
        self.write(&mut state)?;
        Ok(state.summary.clone())
    }

    fn write(&self, state: &mut State) -> std::io::Result<()> {
        let share = state.summary.share();
        state.summary.seeds_done = ranges(state.done.iter().copied());
        state.summary.complete = share.clone().all(|s| state.done.contains(&s));
        state.summary.failing.sort_by_key(|f| f.seed);
        state.summary.updated_at = now_rfc3339();
        state.summary.wall_s = state.wall_before_s + state.started.elapsed().as_secs_f64();
        let text = serde_json::to_string_pretty(&state.summary)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let tmp = self.dir.join(".summary.json.tmp");
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, self.dir.join(TASK_SUMMARY_FILE))?;
        state.last_write = Instant::now();
        Ok(())
    }
}

impl State {
    fn log_line(&mut self, line: &str) {
        if let Some(log) = &mut self.log {
            // A log that cannot be written is not worth losing the task over.
            let _ = writeln!(log, "{line}");
        }
    }
}

/// The failure's kind: verdict, failed checks, and the first word-part of each detail with
/// numbers taken out (so "seed 3's replica n2 panicked at x.rs:10" and seed 9's group).
pub fn signature(verdict: &str, checks: &[String], details: &[String]) -> String {
    let mut checks: Vec<&str> = checks.iter().map(String::as_str).collect();
    checks.sort_unstable();
    checks.dedup();
    let mut kinds: Vec<String> = details.iter().map(|d| detail_kind(d)).collect();
    kinds.sort();
    kinds.dedup();
    let mut sig = format!("{verdict}: {}", checks.join(", "));
    if !kinds.is_empty() {
        sig.push_str(&format!(" [{}]", kinds.join("; ")));
    }
    sig
}

fn detail_kind(detail: &str) -> String {
    let head = detail.split(':').next().unwrap_or(detail);
    let words: Vec<&str> = head
        .split_whitespace()
        .filter(|w| !w.chars().any(|c| c.is_ascii_digit()))
        .collect();
    words.join(" ")
}

/// A fresh summary for a task (nothing done yet).
pub fn fresh_summary(
    kind: TaskKind,
    slice: Slice,
    first_seed: u64,
    seeds: u64,
    params: serde_json::Map<String, serde_json::Value>,
    reproduce_flags: String,
    build: BuildIdentity,
) -> TaskSummary {
    let share = slice.share(first_seed, seeds);
    TaskSummary {
        format: TASK_FORMAT,
        kind,
        slice,
        first_seed,
        seeds,
        params,
        reproduce_flags,
        build,
        share: [share.start, share.end],
        seeds_done: Vec::new(),
        complete: share.is_empty(),
        counts: VerdictCounts::default(),
        started_at: now_rfc3339(),
        updated_at: now_rfc3339(),
        wall_s: 0.0,
        virtual_ms: 0,
        attempts: 1,
        failing: Vec::new(),
        signatures: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(slice: Slice) -> TaskSummary {
        let build = BuildIdentity {
            commit: "c".into(),
            binaries: Default::default(),
        };
        fresh_summary(
            TaskKind::Sim,
            slice,
            1,
            10,
            Default::default(),
            String::new(),
            build,
        )
    }

    fn result(seed: u64, exit_code: i32) -> SeedResult {
        SeedResult {
            seed,
            exit_code,
            verdict: crate::run::shared::verdict_word(exit_code).into(),
            failed_checks: if exit_code == 0 {
                vec![]
            } else {
                vec!["sum".into()]
            },
            details: vec![],
            dir: None,
            faults: 2,
            virtual_ms: 5,
        }
    }

    #[test]
    fn a_task_killed_midway_says_what_it_finished_and_resumes_from_there() {
        let dir = tempfile::tempdir().unwrap();
        let slice = Slice { index: 1, count: 2 };
        let (task, done) = Task::open(dir.path(), summary(slice), true).unwrap();
        assert!(done.is_empty());
        task.record(result(1, 0)).unwrap();
        task.record(result(2, 1)).unwrap();
        // Dropped without finish(), as a killed task is, after its once-a-second write.
        std::thread::sleep(WRITE_EVERY);
        task.record(result(3, 0)).unwrap();
        // Seed 4 finishes within the second: a kill now loses it, and the retry runs it again.
        task.record(result(4, 0)).unwrap();
        drop(task);
        let left = TaskSummary::read(dir.path()).unwrap();
        assert!(!left.complete);
        assert_eq!(left.seeds_done, vec![[1, 3]]);
        assert_eq!(left.counts.invalid, 1);
        assert_eq!(left.signatures["invalid: sum"].first_seed, 2);
        let (task, done) = Task::open(dir.path(), summary(slice), true).unwrap();
        assert_eq!(done.into_iter().collect::<Vec<_>>(), vec![1, 2, 3]);
        for seed in 4..=5 {
            task.record(result(seed, 0)).unwrap();
        }
        let end = task.finish().unwrap();
        assert!(end.complete, "{end:?}");
        assert_eq!(end.attempts, 2);
        assert_eq!(
            end.counts,
            VerdictCounts {
                valid: 4,
                invalid: 1,
                unknown: 0
            }
        );
        assert_eq!(end.failing.len(), 1);
        // Another slice's summary is not resumed.
        let (_, done) =
            Task::open(dir.path(), summary(Slice { index: 2, count: 2 }), true).unwrap();
        assert!(done.is_empty());
    }

    #[test]
    fn signatures_ignore_numbers_and_order() {
        let a = signature(
            "invalid",
            &["sum".into(), "exactly-once".into()],
            &["n2 executed 17 twice: x".into()],
        );
        let b = signature(
            "invalid",
            &["exactly-once".into(), "sum".into()],
            &["n2 executed 9 twice: y".into()],
        );
        assert_eq!(a, b);
        assert_eq!(ranges([1, 2, 3, 5, 7, 8]), vec![[1, 3], [5, 5], [7, 8]]);
        assert_eq!(render_ranges(&ranges([1, 2, 3, 5])), "1-3, 5");
    }
}
