//! The `checker` command's exit codes: 0 valid, 1 invalid, 2 unknown, 64 usage, 66
//! when the run cannot be read; `--out` leaves the run directory as it was.

use checker::gen::{self, GenOptions, Plant};
use std::path::Path;
use std::process::Command;

fn checker(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_checker"))
        .args(args)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code().unwrap_or(-1), text)
}

fn run_dir(plant: Option<Plant>) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut run = gen::generate(&GenOptions {
        events: 1_500,
        ..GenOptions::default()
    });
    if let Some(p) = plant {
        run.plant(p).unwrap();
    }
    run.write(dir.path()).unwrap();
    dir
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn valid_invalid_unknown() {
    let valid = run_dir(None);
    let (code, out) = checker(&["check", s(valid.path()), "--no-report"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict: valid"));
    assert!(valid.path().join("results.json").is_file());
    assert!(!valid.path().join("report.html").exists(), "--no-report");

    let invalid = run_dir(Some(Plant::Phantom));
    let history = invalid.path().join("history.jsonl");
    let (code, out) = checker(&["check", s(&history)]);
    assert_eq!(code, 1, "{out}");
    assert!(invalid.path().join("report.html").is_file());

    let unknown = run_dir(None);
    std::fs::remove_file(unknown.path().join("final.json")).unwrap();
    let (code, out) = checker(&["check", s(unknown.path()), "--no-report"]);
    assert_eq!(code, 2, "{out}");
}

#[test]
fn report_command_uses_saved_results() {
    let dir = run_dir(None);
    assert_eq!(checker(&["check", s(dir.path()), "--no-report"]).0, 0);
    let (code, out) = checker(&["report", s(dir.path())]);
    assert_eq!(code, 0, "{out}");
    assert!(dir.path().join("report.html").is_file());
    assert!(dir.path().join("rate.png").is_file());
}

#[test]
fn errors_are_not_verdicts() {
    let (code, _) = checker(&["check"]);
    assert_eq!(code, 64, "usage error");
    let (code, _) = checker(&["frobnicate"]);
    assert_eq!(code, 64, "unknown command");
    let (code, out) = checker(&["check", "/nonexistent/run"]);
    assert_eq!(code, 66, "{out}");
    let dir = run_dir(None);
    std::fs::write(dir.path().join("history.jsonl"), "{\"index\":0}\n{}\n").unwrap();
    let (code, out) = checker(&["check", s(dir.path())]);
    assert_eq!(code, 66, "{out}");
    assert!(
        out.contains("history.jsonl:1: field `time_ns`: missing"),
        "{out}"
    );
    for args in [&["--help"][..], &["check", "--help"]] {
        let (code, out) = checker(args);
        assert_eq!(code, 0);
        for listed in ["0 valid", "1 invalid", "2 unknown", "64 usage", "66 input"] {
            assert!(out.contains(listed), "{args:?} lacks {listed}: {out}");
        }
    }
}

#[test]
fn out_writes_results_and_report_elsewhere() {
    let run = run_dir(Some(Plant::Phantom));
    let out = tempfile::tempdir().unwrap();
    let target = out.path().join("recheck");
    let (code, text) = checker(&["check", s(run.path()), "--out", s(&target)]);
    assert_eq!(code, 1, "{text}");
    assert!(target.join("results.json").is_file());
    assert!(target.join("report.html").is_file());
    assert!(!run.path().join("results.json").exists());
    assert!(!run.path().join("report.html").exists());
    let html = std::fs::read_to_string(target.join("report.html")).unwrap();
    assert!(html.contains("phantom"), "the report is about the run");
}

/// `--memory` picks how the run is read, never what it finds: the same results either
/// way, on a clean run and on one with an anomaly; a word it does not know is a usage
/// error naming the flag.
#[test]
fn memory_picks_the_way_not_the_verdict() {
    for (plant, verdict) in [(None, 0), (Some(Plant::Phantom), 1)] {
        let run = run_dir(plant);
        let mut seen = Vec::new();
        for memory in ["lean", "fast", "auto"] {
            let out = tempfile::tempdir().unwrap();
            let args = ["check", s(run.path()), "--no-report", "--memory", memory];
            let (code, text) = checker(&[&args[..], &["--out", s(out.path())]].concat());
            assert_eq!(code, verdict, "{memory}: {text}");
            let json = std::fs::read_to_string(out.path().join("results.json")).unwrap();
            let mut v: serde_json::Value = serde_json::from_str(&json).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("elapsed_ms");
            seen.push((memory, v));
        }
        for (memory, v) in &seen[1..] {
            assert_eq!(v, &seen[0].1, "{memory} against lean, plant {plant:?}");
        }
    }
    let run = run_dir(None);
    let (code, text) = checker(&["check", s(run.path()), "--memory", "huge"]);
    assert_eq!(code, 64, "{text}");
    assert!(text.contains("--memory"), "{text}");
}

#[test]
fn bench_runs_small() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("b");
    let (code, out) = checker(&["bench", "--events", "20000", "--out", s(&out_dir)]);
    assert_eq!(code, 0, "{out}");
    for shown in ["events/s", "wall", "CPU", "peak RSS"] {
        assert!(out.contains(shown), "{shown}: {out}");
    }
    assert!(out.contains("verdict valid"), "{out}");
    assert!(out_dir.join("final.json").is_file());
}

#[test]
fn bench_judges_black_box_with_linearizable() {
    let (code, out) = checker(&["bench", "--linearizable", "--events", "1000"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("linearizable: valid,") && out.contains("states explored"),
        "{out}"
    );
    let (code, out) = checker(&["bench", "--events", "1000"]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("linearizable:"), "trusted by default: {out}");
}

#[test]
fn bench_checks_a_sharded_run_with_the_sharded_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("b");
    let args = [
        "bench",
        "--shards",
        "3",
        "--events",
        "5000",
        "--out",
        s(&out_dir),
    ];
    let (code, out) = checker(&args);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("verdict valid"), "{out}");
    let results = std::fs::read_to_string(out_dir.join("run.toml")).unwrap();
    assert_eq!(results.matches("[[shards]]").count(), 3, "{results}");
    let (code, out) = checker(&["check", "--no-report", s(&out_dir)]);
    assert_eq!(code, 0, "{out}");
    let results = std::fs::read_to_string(out_dir.join("results.json")).unwrap();
    assert!(results.contains("strict-serializability"), "{results}");
    let (code, out) = checker(&["bench", "--shards", "1"]);
    assert_eq!(code, 64, "one shard is no sharded bank: {out}");
}

#[test]
fn an_unreadable_file_says_its_cause_once() {
    // The error prints its cause; chaining it too would make `{:#}` say it twice.
    let run = run_dir(None);
    let final_json = run.path().join("final.json");
    std::fs::remove_file(&final_json).unwrap();
    std::fs::create_dir(&final_json).unwrap();
    let (code, out) = checker(&["check", s(run.path()), "--no-report"]);
    assert_eq!(code, 66, "{out}");
    assert!(out.contains("final.json"), "{out}");
    assert_eq!(out.matches("os error").count(), 1, "{out}");
}
