//! `harness merge DIR... --out DIR`: every task's `summary.json` into one `summary.json` and
//! one `index.html` of unique failures.
//!
//! Tasks are found as given (a task directory) or one level down (a night's directory of
//! `slice-K-of-N`). They must be one sweep: same kind, range, parameters, slice count and
//! build, or the merge refuses and names the first difference (`--force` merges anyway).
//! Failing seeds are grouped by signature (verdict, failed checks, the kinds of what the
//! world saw); each group keeps its first seed as representative, shrunk with
//! [`crate::sim::shrink`] for a simulated sweep, and the one line that replays it byte for
//! byte. Missing, partial and failed tasks are named; the exit code is 1 if any seed was
//! invalid, else 2 if any was unknown or a task or seed is missing, else 0.

use super::identity::BuildIdentity;
use super::task::{ranges, render_ranges, FailingRun, TaskKind, TaskSummary, VerdictCounts};
use super::task::{TASK_FORMAT, TASK_SUMMARY_FILE};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct MergeOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    /// Merge tasks of different builds or parameters anyway.
    pub force: bool,
    /// Shrink each group's representative (simulated sweeps).
    pub shrink: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("nothing to merge: no summary.json in {0}")]
    Nothing(String),
    #[error("cannot merge {a} with {b}: they differ in {what} (--force merges anyway)")]
    Mixed { a: String, b: String, what: String },
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
}

/// The merged `summary.json`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MergedSummary {
    pub format: u32,
    pub kind: TaskKind,
    pub first_seed: u64,
    pub seeds: u64,
    pub params: serde_json::Map<String, serde_json::Value>,
    pub build: BuildIdentity,
    pub verdict: String,
    pub exit_code: i32,
    pub counts: VerdictCounts,
    pub tasks: TaskCensus,
    /// Seeds finished by some task, and the ones no task finished, as inclusive ranges.
    pub seeds_done: u64,
    pub seeds_missing: Vec<[u64; 2]>,
    /// Seeds finished by more than one task (never, when every task had its own slice).
    pub seeds_twice: Vec<[u64; 2]>,
    pub groups: Vec<FailureGroup>,
    /// Wall time summed over tasks, and the longest task.
    pub task_wall_s: f64,
    pub longest_task_s: f64,
    pub virtual_ms: u64,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TaskCensus {
    /// N of `--slice K/N`.
    pub count: u64,
    pub present: Vec<TaskRow>,
    /// Slices no directory holds.
    pub missing: Vec<u64>,
    /// Directories given that hold no task summary.
    pub unreadable: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct TaskRow {
    pub slice: u64,
    pub dir: String,
    pub complete: bool,
    pub share: [u64; 2],
    pub seeds_done: u64,
    pub counts: VerdictCounts,
    pub wall_s: f64,
    pub attempts: u32,
}

impl TaskRow {
    pub fn failed(&self) -> bool {
        self.counts.invalid + self.counts.unknown > 0
    }
}

/// One distinct failure.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FailureGroup {
    pub signature: String,
    pub count: u64,
    pub first_seed: u64,
    /// The first seeds of the group that its tasks listed (at most 50).
    pub seeds: Vec<u64>,
    /// The first seed's kept run directory.
    pub representative: Option<String>,
    /// The representative shrunk, in the merge's directory.
    pub shrunk: Option<String>,
    /// What shrinking did, or why it did not.
    pub shrink_note: Option<String>,
    /// The one line that replays the group's smallest run byte for byte.
    pub replay: Option<String>,
    /// The one line that runs the first seed again from scratch.
    pub rerun: String,
}

struct Found {
    dir: PathBuf,
    summary: TaskSummary,
}

/// Task directories among `inputs`: each input itself, or its subdirectories.
fn find_tasks(inputs: &[PathBuf], notes: &mut Vec<String>) -> (Vec<Found>, Vec<String>) {
    let mut found = Vec::new();
    let mut unreadable = Vec::new();
    for input in inputs {
        let mut dirs = Vec::new();
        if input.join(TASK_SUMMARY_FILE).is_file() {
            dirs.push(input.clone());
        } else if let Ok(entries) = std::fs::read_dir(input) {
            let mut subs: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.join(TASK_SUMMARY_FILE).is_file())
                .collect();
            subs.sort();
            dirs.extend(subs);
        }
        if dirs.is_empty() {
            unreadable.push(format!("{} (no summary.json)", input.display()));
        }
        for dir in dirs {
            match TaskSummary::read(&dir) {
                Ok(summary) => found.push(Found { dir, summary }),
                Err(e) => {
                    notes.push(e.clone());
                    unreadable.push(e);
                }
            }
        }
    }
    (found, unreadable)
}

/// The first way `b` is not the same sweep as `a`.
fn difference(a: &TaskSummary, b: &TaskSummary) -> Option<String> {
    if a.kind != b.kind {
        return Some(format!("kind ({:?} vs {:?})", a.kind, b.kind));
    }
    if (a.first_seed, a.seeds) != (b.first_seed, b.seeds) {
        return Some(format!(
            "seed range ({} seeds from {} vs {} from {})",
            a.seeds, a.first_seed, b.seeds, b.first_seed
        ));
    }
    if a.slice.count != b.slice.count {
        return Some(format!(
            "slice count (of {} vs of {})",
            a.slice.count, b.slice.count
        ));
    }
    let keys: BTreeSet<&String> = a.params.keys().chain(b.params.keys()).collect();
    for key in keys {
        let (x, y) = (a.params.get(key), b.params.get(key));
        if x != y {
            let show = |v: Option<&serde_json::Value>| v.map_or("absent".into(), |v| v.to_string());
            return Some(format!("parameter {key} ({} vs {})", show(x), show(y)));
        }
    }
    a.build.difference(&b.build).map(|d| format!("build ({d})"))
}

/// Merges; writes `out/summary.json` and `out/index.html`.
pub fn merge(opts: &MergeOptions) -> Result<MergedSummary, MergeError> {
    let mut notes = Vec::new();
    let (mut found, unreadable) = find_tasks(&opts.inputs, &mut notes);
    if found.is_empty() {
        let inputs: Vec<String> = opts
            .inputs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        return Err(MergeError::Nothing(inputs.join(", ")));
    }
    found.sort_by_key(|f| (f.summary.slice.index, f.dir.clone()));
    let reference = &found[0];
    for other in &found[1..] {
        if let Some(what) = difference(&reference.summary, &other.summary) {
            let (a, b) = (
                reference.dir.display().to_string(),
                other.dir.display().to_string(),
            );
            if !opts.force {
                return Err(MergeError::Mixed { a, b, what });
            }
            notes.push(format!("forced: {b} differs from {a} in {what}"));
        }
    }
    // Two directories of one slice (a copy, a rerun elsewhere): the one with more done counts.
    let mut by_slice: BTreeMap<u64, Found> = BTreeMap::new();
    for f in found {
        let index = f.summary.slice.index;
        match by_slice.get(&index) {
            Some(kept) if kept.summary.done_seeds().count() >= f.summary.done_seeds().count() => {
                notes.push(format!(
                    "slice {index} appears twice: {} is ignored beside {}",
                    f.dir.display(),
                    kept.dir.display()
                ));
            }
            _ => {
                by_slice.insert(index, f);
            }
        }
    }
    let tasks: Vec<&Found> = by_slice.values().collect();
    let first = &tasks[0].summary;
    std::fs::create_dir_all(&opts.out).map_err(|e| write_error(&opts.out, e))?;
    let mut merged = MergedSummary {
        format: TASK_FORMAT,
        kind: first.kind,
        first_seed: first.first_seed,
        seeds: first.seeds,
        params: first.params.clone(),
        build: first.build.clone(),
        verdict: String::new(),
        exit_code: 0,
        counts: VerdictCounts::default(),
        tasks: census(&tasks, first.slice.count, unreadable),
        seeds_done: 0,
        seeds_missing: Vec::new(),
        seeds_twice: Vec::new(),
        groups: Vec::new(),
        task_wall_s: tasks.iter().map(|t| t.summary.wall_s).sum(),
        longest_task_s: tasks.iter().map(|t| t.summary.wall_s).fold(0.0, f64::max),
        virtual_ms: tasks.iter().map(|t| t.summary.virtual_ms).sum(),
        notes,
    };
    let mut done = BTreeSet::new();
    let mut twice = BTreeSet::new();
    for t in &tasks {
        let c = &t.summary.counts;
        merged.counts.valid += c.valid;
        merged.counts.invalid += c.invalid;
        merged.counts.unknown += c.unknown;
        for seed in t.summary.done_seeds() {
            if !done.insert(seed) {
                twice.insert(seed);
            }
        }
    }
    merged.seeds_done = done.len() as u64;
    let whole = first.first_seed..first.first_seed.saturating_add(first.seeds);
    merged.seeds_missing = ranges(whole.filter(|s| !done.contains(s)));
    merged.seeds_twice = ranges(twice);
    merged.groups = groups(&tasks, opts);
    merged.exit_code = exit_code(&merged);
    merged.verdict = crate::run::shared::verdict_word(merged.exit_code).to_string();
    let json = serde_json::to_string_pretty(&merged).map_err(|e| MergeError::Write {
        path: opts.out.join(TASK_SUMMARY_FILE),
        message: e.to_string(),
    })?;
    write(&opts.out.join(TASK_SUMMARY_FILE), &json)?;
    write(&opts.out.join("index.html"), &render_html(&merged))?;
    Ok(merged)
}

fn write_error(path: &Path, e: std::io::Error) -> MergeError {
    MergeError::Write {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

fn write(path: &Path, text: &str) -> Result<(), MergeError> {
    std::fs::write(path, text).map_err(|e| write_error(path, e))
}

fn census(tasks: &[&Found], count: u64, unreadable: Vec<String>) -> TaskCensus {
    let present: Vec<TaskRow> = tasks
        .iter()
        .map(|t| TaskRow {
            slice: t.summary.slice.index,
            dir: t.dir.display().to_string(),
            complete: t.summary.complete,
            share: t.summary.share,
            seeds_done: t.summary.done_seeds().count() as u64,
            counts: t.summary.counts.clone(),
            wall_s: t.summary.wall_s,
            attempts: t.summary.attempts,
        })
        .collect();
    let have: BTreeSet<u64> = present.iter().map(|r| r.slice).collect();
    TaskCensus {
        count,
        missing: (1..=count).filter(|k| !have.contains(k)).collect(),
        present,
        unreadable,
    }
}

fn exit_code(m: &MergedSummary) -> i32 {
    let partial = m.tasks.present.iter().any(|t| !t.complete);
    if m.counts.invalid > 0 {
        1
    } else if m.counts.unknown > 0
        || partial
        || !m.tasks.missing.is_empty()
        || !m.tasks.unreadable.is_empty()
        || !m.seeds_missing.is_empty()
    {
        2
    } else {
        0
    }
}

/// Failing runs grouped by signature, largest group first.
fn groups(tasks: &[&Found], opts: &MergeOptions) -> Vec<FailureGroup> {
    let mut by_signature: BTreeMap<&str, Vec<(&Found, &FailingRun)>> = BTreeMap::new();
    for t in tasks {
        for run in &t.summary.failing {
            by_signature
                .entry(&run.signature)
                .or_default()
                .push((t, run));
        }
    }
    // A summary lists a signature's first seeds and counts them all.
    let mut totals: BTreeMap<&str, u64> = BTreeMap::new();
    for t in tasks {
        for (sig, listed) in &by_signature {
            let counted = t.summary.signatures.get(*sig).map(|c| c.count);
            let here = || listed.iter().filter(|(f, _)| std::ptr::eq(*f, *t)).count() as u64;
            *totals.entry(sig).or_default() += counted.unwrap_or_else(here);
        }
    }
    let mut groups: Vec<(&str, Vec<(&Found, &FailingRun)>)> = by_signature.into_iter().collect();
    for (_, runs) in &mut groups {
        runs.sort_by_key(|(_, r)| r.seed);
    }
    let total = |sig: &str| totals.get(sig).copied().unwrap_or(0);
    groups.sort_by_key(|(sig, runs)| (std::cmp::Reverse(total(sig)), runs[0].1.seed, *sig));
    groups
        .iter()
        .enumerate()
        .map(|(k, (signature, runs))| one_group(k + 1, signature, total(signature), runs, opts))
        .collect()
}

fn one_group(
    number: usize,
    signature: &str,
    count: u64,
    runs: &[(&Found, &FailingRun)],
    opts: &MergeOptions,
) -> FailureGroup {
    let (task, first) = runs[0];
    let representative = first.dir.as_ref().map(|d| task.dir.join(d));
    let rerun = match task.summary.kind {
        TaskKind::Sim => format!(
            "harness sim --seeds 1 --from-seed {}{}",
            first.seed, task.summary.reproduce_flags
        ),
        TaskKind::Campaign => format!(
            "harness campaign --runs 1 --seed {}{}",
            first.seed, task.summary.reproduce_flags
        ),
    };
    let mut group = FailureGroup {
        signature: signature.to_string(),
        count,
        first_seed: first.seed,
        seeds: runs.iter().take(50).map(|(_, r)| r.seed).collect(),
        representative: representative.as_ref().map(|d| d.display().to_string()),
        shrunk: None,
        shrink_note: None,
        replay: representative
            .as_ref()
            .map(|d| format!("harness replay {}", d.display())),
        rerun,
    };
    let shrinkable = task.summary.kind == TaskKind::Sim
        && representative
            .as_ref()
            .is_some_and(|d| d.join("history.jsonl").is_file());
    if let (true, true, Some(dir)) = (opts.shrink, shrinkable, representative) {
        let out = opts
            .out
            .join("groups")
            .join(format!("{number}-seed-{}-shrunk", first.seed));
        match shrink_caught(&dir, &out) {
            Ok(note) => {
                group.replay = Some(format!("harness replay {}", out.display()));
                group.shrunk = Some(out.display().to_string());
                group.shrink_note = Some(note);
            }
            Err(e) => group.shrink_note = Some(format!("not shrunk: {e}")),
        }
    }
    group
}

/// Shrinks `dir` into `out`; a panic while shrinking is an error, not the merge's end.
fn shrink_caught(dir: &Path, out: &Path) -> Result<String, String> {
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_dir_all(out);
    let caught = std::panic::catch_unwind(|| crate::sim::shrink::shrink(dir, out));
    match caught {
        Ok(Ok(shrunk)) => Ok(format!(
            "still fails {} with {} and {} (was {} and {})",
            shrunk.check,
            checker::text::count(u64::from(shrunk.summary.faults), "fault"),
            checker::text::count(shrunk.info.params.ops, "operation"),
            checker::text::count(u64::from(shrunk.original_faults), "fault"),
            checker::text::count(shrunk.original_ops, "operation"),
        )),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the shrink panicked".to_string()),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The merged report: the verdict and the distinct failures first, then the tasks.
pub fn render_html(m: &MergedSummary) -> String {
    let mut h = String::from(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>faultline: a night on a fleet</title>\n<style>\
         body{font-family:sans-serif;margin:2em;max-width:80em}table{border-collapse:collapse}\
         td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}\
         code{background:#f4f4f4;padding:1px 4px}.valid{color:#1a7f37}\
         .invalid{color:#cf222e;font-weight:bold}.unknown{color:#9a6700;font-weight:bold}\
         </style></head><body>\n",
    );
    let kind = match m.kind {
        TaskKind::Sim => "simulated seeds",
        TaskKind::Campaign => "real runs",
    };
    let _ = writeln!(
        h,
        "<h1 class=\"{}\">{}: {}</h1>",
        escape(&m.verdict),
        escape(&m.verdict),
        match m.groups.len() {
            0 => "no failures".to_string(),
            1 => "1 distinct failure".to_string(),
            n => format!("{n} distinct failures"),
        }
    );
    let _ = writeln!(
        h,
        "<p>{} of {} {kind} done ({} from {}) by {} of {} tasks: {} valid, {} invalid, {} unknown. \
         Build {}.</p>",
        m.seeds_done,
        m.seeds,
        m.seeds,
        m.first_seed,
        m.tasks.present.len(),
        m.tasks.count,
        m.counts.valid,
        m.counts.invalid,
        m.counts.unknown,
        escape(&m.build.commit)
    );
    task_problems_html(&mut h, m);
    if !m.groups.is_empty() {
        h.push_str(
            "<h2>Distinct failures</h2>\n<table>\n<tr><th>#</th><th>failure</th><th>runs</th>\
                    <th>first seed</th><th>reproduce</th></tr>\n",
        );
        for (k, g) in m.groups.iter().enumerate() {
            let seeds: Vec<String> = g.seeds.iter().map(u64::to_string).collect();
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}<br><small>seeds {}{}</small></td><td>{}</td><td>{}</td>\
                 <td>replay: <code>{}</code><br>rerun: <code>{}</code><br><small>{}</small></td></tr>",
                k + 1,
                escape(&g.signature),
                seeds.join(", "),
                if g.count > g.seeds.len() as u64 { ", ..." } else { "" },
                g.count,
                g.first_seed,
                escape(g.replay.as_deref().unwrap_or("(run directory not kept)")),
                escape(&g.rerun),
                escape(g.shrink_note.as_deref().unwrap_or("")),
            );
        }
        h.push_str("</table>\n");
    }
    h.push_str(
        "<h2>Tasks</h2>\n<table>\n<tr><th>slice</th><th>directory</th><th>state</th>\
                <th>seeds</th><th>valid</th><th>invalid</th><th>unknown</th><th>wall</th></tr>\n",
    );
    for t in &m.tasks.present {
        let state = if t.complete { "complete" } else { "partial" };
        let _ = writeln!(
            h,
            "<tr><td>{}/{}</td><td>{}</td><td>{state}{}</td><td>{} of {}</td><td>{}</td><td>{}</td>\
             <td>{}</td><td>{:.1} s</td></tr>",
            t.slice,
            m.tasks.count,
            escape(&t.dir),
            if t.attempts > 1 { format!(" ({} attempts)", t.attempts) } else { String::new() },
            t.seeds_done,
            t.share[1] - t.share[0],
            t.counts.valid,
            t.counts.invalid,
            t.counts.unknown,
            t.wall_s
        );
    }
    h.push_str("</table>\n");
    for note in &m.notes {
        let _ = writeln!(h, "<p>note: {}</p>", escape(note));
    }
    h.push_str("</body></html>\n");
    h
}

fn task_problems_html(h: &mut String, m: &MergedSummary) {
    let mut lines = task_problems(m);
    if lines.is_empty() {
        return;
    }
    h.push_str("<ul>\n");
    for line in lines.drain(..) {
        let _ = writeln!(h, "<li class=\"unknown\">{}</li>", escape(&line));
    }
    h.push_str("</ul>\n");
}

/// Missing, partial and failed tasks and missing seeds, one line each (for the page and the
/// terminal).
pub fn task_problems(m: &MergedSummary) -> Vec<String> {
    let mut lines = Vec::new();
    if !m.tasks.missing.is_empty() {
        let missing: Vec<String> = m
            .tasks
            .missing
            .iter()
            .map(|k| format!("{k}/{}", m.tasks.count))
            .collect();
        lines.push(format!("missing tasks: {}", missing.join(", ")));
    }
    for dir in &m.tasks.unreadable {
        lines.push(format!("unreadable: {dir}"));
    }
    for t in m.tasks.present.iter().filter(|t| !t.complete) {
        lines.push(format!(
            "partial task {}/{} ({}): {} of {} seeds done",
            t.slice,
            m.tasks.count,
            t.dir,
            t.seeds_done,
            t.share[1] - t.share[0]
        ));
    }
    for t in m.tasks.present.iter().filter(|t| t.failed()) {
        lines.push(format!(
            "failed task {}/{} ({}): {} invalid, {} unknown",
            t.slice, m.tasks.count, t.dir, t.counts.invalid, t.counts.unknown
        ));
    }
    if !m.seeds_missing.is_empty() {
        lines.push(format!(
            "seeds not run: {}",
            render_ranges(&m.seeds_missing)
        ));
    }
    if !m.seeds_twice.is_empty() {
        lines.push(format!(
            "seeds run twice: {}",
            render_ranges(&m.seeds_twice)
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::slice::Slice;
    use crate::fleet::task::{fresh_summary, SeedResult, Task};

    fn build(harness: &str) -> BuildIdentity {
        BuildIdentity {
            commit: "abc".into(),
            binaries: [("harness".to_string(), harness.to_string())].into(),
        }
    }

    /// Task `index` of `count` over seeds 1..=`seeds`, run to the end (or `stop_after` seeds);
    /// seeds divisible by 4 fail the `exactly-once` check, seed 7 is unknown.
    fn task(root: &Path, index: u64, count: u64, seeds: u64, stop_after: Option<usize>, b: &str) {
        let slice = Slice { index, count };
        let mut params = serde_json::Map::new();
        params.insert("bug".into(), "no-dedup".into());
        let fresh = fresh_summary(
            TaskKind::Sim,
            slice,
            1,
            seeds,
            params,
            " --bug no-dedup".into(),
            build(b),
        );
        let share = fresh.share();
        let (t, _) = Task::open(&root.join(slice.dir_name()), fresh, true).unwrap();
        for seed in share.take(stop_after.unwrap_or(usize::MAX)) {
            let exit_code = if seed % 4 == 0 {
                1
            } else if seed == 7 {
                2
            } else {
                0
            };
            t.record(SeedResult {
                seed,
                exit_code,
                verdict: crate::run::shared::verdict_word(exit_code).into(),
                failed_checks: match exit_code {
                    1 => vec!["exactly-once".into()],
                    2 => vec!["panic".into()],
                    _ => vec![],
                },
                details: vec![],
                dir: None,
                faults: 1,
                virtual_ms: 10,
            })
            .unwrap();
        }
        t.finish().unwrap();
    }

    fn opts(root: &Path) -> MergeOptions {
        MergeOptions {
            inputs: vec![root.to_path_buf()],
            out: root.join("merged"),
            force: false,
            shrink: false,
        }
    }

    #[test]
    fn a_merge_groups_failures_and_names_missing_and_partial_tasks() {
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 1, 4, 40, None, "h");
        task(root.path(), 2, 4, 40, Some(3), "h");
        task(root.path(), 4, 4, 40, None, "h");
        let m = merge(&opts(root.path())).unwrap();
        assert_eq!(m.tasks.missing, vec![3]);
        assert_eq!(m.exit_code, 1, "invalid seeds outrank the missing task");
        let problems = task_problems(&m).join("\n");
        assert!(problems.contains("missing tasks: 3/4"), "{problems}");
        assert!(problems.contains("partial task 2/4"), "{problems}");
        assert!(problems.contains("seeds not run: 14-30"), "{problems}");
        assert_eq!(m.groups.len(), 2, "{:?}", m.groups);
        let big = &m.groups[0];
        assert_eq!(
            (big.signature.as_str(), big.first_seed),
            ("invalid: exactly-once", 4)
        );
        assert_eq!(
            big.count, 6,
            "4, 8; 12 (the partial task did 11..=13); 32, 36, 40"
        );
        assert_eq!(
            big.rerun,
            "harness sim --seeds 1 --from-seed 4 --bug no-dedup"
        );
        let html = std::fs::read_to_string(root.path().join("merged/index.html")).unwrap();
        assert!(html.contains("2 distinct failures") && html.contains("missing tasks: 3/4"));
        let json: MergedSummary = serde_json::from_str(
            &std::fs::read_to_string(root.path().join("merged/summary.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(json.seeds_done, 23);
    }

    #[test]
    fn a_complete_valid_night_exits_0_and_an_unknown_one_2() {
        let root = tempfile::tempdir().unwrap();
        // Seeds 1..=3: no multiple of 4, not 7.
        task(root.path(), 1, 1, 3, None, "h");
        assert_eq!(merge(&opts(root.path())).unwrap().exit_code, 0);
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 1, 2, 2, None, "h");
        let m = merge(&opts(root.path())).unwrap();
        assert_eq!((m.exit_code, m.tasks.missing.clone()), (2, vec![2]));
    }

    #[test]
    fn mixed_builds_are_refused_naming_the_difference_unless_forced() {
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 1, 2, 10, None, "1111111111111111");
        task(root.path(), 2, 2, 10, None, "2222222222222222");
        let e = merge(&opts(root.path())).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, MergeError::Mixed { .. }), "{text}");
        assert!(
            text.contains("binary harness sha256 111111111111 vs 222222222222"),
            "{text}"
        );
        assert!(
            text.contains("slice-1-of-2") && text.contains("slice-2-of-2"),
            "{text}"
        );
        let forced = merge(&MergeOptions {
            force: true,
            ..opts(root.path())
        })
        .unwrap();
        assert!(
            forced.notes.iter().any(|n| n.contains("forced")),
            "{:?}",
            forced.notes
        );
    }

    #[test]
    fn a_summary_lists_a_few_seeds_per_failure_and_the_merge_counts_them_all() {
        let root = tempfile::tempdir().unwrap();
        task(root.path(), 1, 2, 800, None, "h");
        task(root.path(), 2, 2, 800, None, "h");
        let one = TaskSummary::read(&root.path().join("slice-1-of-2")).unwrap();
        let listed = one.failing.iter().filter(|f| f.exit_code == 1).count() as u64;
        assert_eq!(listed, crate::fleet::task::FAILING_KEPT_PER_SIGNATURE);
        assert_eq!(one.signatures["invalid: exactly-once"].count, 100);
        let m = merge(&opts(root.path())).unwrap();
        assert_eq!(m.groups[0].count, 200, "{:?}", m.groups[0]);
        assert_eq!(m.groups[0].first_seed, 4);
    }

    /// The figure of the README: `cargo test --release -p harness --lib merge_of_a_thousand
    /// -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn merge_of_a_thousand_task_summaries() {
        let root = tempfile::tempdir().unwrap();
        let started = std::time::Instant::now();
        for k in 1..=1000 {
            task(root.path(), k, 1000, 700_000, None, "h");
        }
        println!(
            "wrote 1000 summaries of 700 seeds in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let started = std::time::Instant::now();
        let m = merge(&opts(root.path())).unwrap();
        println!(
            "merged 1000 task summaries ({} seeds, {} failing) in {:.2} s",
            m.seeds_done,
            m.counts.invalid + m.counts.unknown,
            started.elapsed().as_secs_f64()
        );
    }
}
