//! Ending a run that was interrupted (Ctrl-C, SIGTERM) the way a finished run ends: checked,
//! with results.json, harness.json, a report and an updated index, so nobody has to run the
//! checker by hand to learn what the run saw before it was stopped.
//!
//! How: a run registers itself here once its directory exists ([`register`]) and again when
//! its history is opened ([`attach_recorder`]); the binary's signal handler stops waiting for
//! the run (dropping it, which stops its replicas), kills what is left, and calls
//! [`finish_interrupted`]. The registration is one global because a signal belongs to the
//! process, not to a task; a finished run clears it ([`clear`]).
//!
//! The verdict is `unknown` with the reason "interrupted": a run cut short has no final
//! state and its pending operations never completed, so it cannot vouch for the system. Only
//! an anomaly already proven on the recorded prefix keeps the run `invalid`: that history
//! happened, and a bug found in it stays found.

use crate::record::Recorder;
use crate::run::index::write_index;
use crate::run::rundir::RunInfo;
use crate::run::shared::{write_json, RunError, RunSummary, SUMMARY_FILE};
use checker::checks::Validity;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The reason recorded for a run stopped by a signal.
pub const REASON: &str = "interrupted";

/// The run in progress.
struct Active {
    dir: PathBuf,
    out: PathBuf,
    info: RunInfo,
    recorder: Option<Arc<Recorder>>,
    wall: std::time::Instant,
}

static ACTIVE: Mutex<Option<Active>> = Mutex::new(None);

fn active() -> std::sync::MutexGuard<'static, Option<Active>> {
    ACTIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Marks the run in `dir` (inside the reports directory `out`) as the one in progress.
pub fn register(dir: &Path, out: &Path, info: &RunInfo) {
    *active() = Some(Active {
        dir: dir.to_path_buf(),
        out: out.to_path_buf(),
        info: info.clone(),
        recorder: None,
        wall: std::time::Instant::now(),
    });
}

/// Gives the run in progress in `dir` its history recorder.
pub fn attach_recorder(dir: &Path, recorder: &Arc<Recorder>) {
    if let Some(run) = active().as_mut().filter(|r| r.dir == dir) {
        run.recorder = Some(recorder.clone());
    }
}

/// The run in `dir` ended on its own.
pub fn clear(dir: &Path) {
    let mut guard = active();
    if guard.as_ref().is_some_and(|r| r.dir == dir) {
        *guard = None;
    }
}

/// Whether a run is in progress (else a signal has nothing to save).
pub fn in_progress() -> bool {
    active().is_some()
}

/// Checks what the interrupted run recorded and writes its results, report, summary and the
/// index. Call it after every replica was stopped. `None` if no run was in progress.
pub fn finish_interrupted(signal: &str) -> Option<Result<RunSummary, RunError>> {
    let run = active().take()?;
    Some(save(run, signal))
}

fn save(run: Active, signal: &str) -> Result<RunSummary, RunError> {
    if let Some(recorder) = &run.recorder {
        recorder.nemesis(REASON, json!({"signal": signal}));
        recorder.close();
    }
    let mut notes = vec![format!(
        "{REASON} by {signal}: verdict unknown unless the recorded part already shows an anomaly"
    )];
    let verdict = match checked(&run.dir, signal) {
        Ok(valid) => valid,
        Err(e) => {
            notes.push(e.to_string());
            Validity::Unknown
        }
    };
    let exit_code = verdict.exit_code();
    let (invoked, ok, fail, info) = run
        .recorder
        .as_ref()
        .map_or((0, 0, 0, 0), |r| r.counts.snapshot());
    let summary = RunSummary {
        dir: run.dir.clone(),
        seed: run.info.seed,
        kind: run.info.kind.clone(),
        faults: count_faults(&run.dir.join("history.jsonl")),
        invoked,
        ok,
        fail,
        info,
        verdict: crate::run::shared::verdict_word(exit_code).to_string(),
        exit_code,
        notes,
        elapsed_s: run.wall.elapsed().as_secs_f64(),
        reason: Some(REASON.to_string()),
        cause: None,
    };
    write_json(&run.dir.join(SUMMARY_FILE), &summary)?;
    write_index(&run.out).map_err(|source| RunError::Write {
        path: run.out.join("index.html"),
        cause: source,
    })?;
    Ok(summary)
}

/// Runs the checker on what was recorded, marks the results interrupted and writes them and
/// the report; the verdict kept.
fn checked(dir: &Path, signal: &str) -> Result<Validity, RunError> {
    let mut results = checker::check_run(dir).map_err(|e| RunError::Check(e.to_string()))?;
    if results.valid != Validity::Invalid {
        results.valid = Validity::Unknown;
    }
    results.warnings.insert(
        0,
        format!(
            "{REASON}: the harness was stopped by {signal} before the run ended; this is what \
             it had recorded by then (no final state)"
        ),
    );
    results.write_json(dir).map_err(|source| RunError::Write {
        path: dir.join(checker::results::RESULTS_FILE),
        cause: source,
    })?;
    checker::report::write_report(dir, &results)
        .map_err(|e| RunError::Check(format!("cannot write the report: {e}")))?;
    Ok(results.valid)
}

/// Faults the nemesis started, from the history (kill, pause and partition events).
fn count_faults(history: &Path) -> u32 {
    let Ok(text) = std::fs::read_to_string(history) else {
        return 0;
    };
    let faults = text
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event.get("process").and_then(|p| p.as_str()) == Some("nemesis"))
        .filter(|event| {
            matches!(
                event.get("f").and_then(|f| f.as_str()),
                Some("kill" | "pause" | "partition")
            )
        })
        .count();
    u32::try_from(faults).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_are_counted_from_the_nemesis_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        std::fs::write(
            &path,
            "{\"process\":\"nemesis\",\"f\":\"kill\"}\n{\"process\":\"nemesis\",\"f\":\"heal\"}\n\
             {\"process\":3,\"f\":\"kill\"}\n{\"process\":\"nemesis\",\"f\":\"partition\"}\n{\"process\":",
        )
        .unwrap();
        assert_eq!(count_faults(&path), 2);
        assert_eq!(count_faults(&dir.path().join("none")), 0);
    }
}
