//! The streamed check (bounded memory, `run::streamed`) against the classic one that
//! holds every record: on every run both give the same results, the streamed one
//! judges the clean generated runs itself, and it never calls clean a run the classic
//! check finds anything in (it hands those back).

use checker::gen::{self, GenOptions, Plant};
use checker::{check_run_as, CheckOptions, Judging, Memory, Results};
use std::path::Path;

/// results.json's content but for what differs between two checks of one run.
fn comparable(r: &Results) -> serde_json::Value {
    let mut v = serde_json::to_value(r).unwrap();
    v["elapsed_ms"] = 0.into();
    v
}

fn judged(dir: &Path, memory: Memory, how: Judging) -> Option<Results> {
    let options = CheckOptions {
        memory,
        ..CheckOptions::default()
    };
    check_run_as(dir, options, how).unwrap()
}

/// The full check, every record held.
fn classic(dir: &Path) -> Results {
    judged(dir, Memory::Fast, Judging::Either).unwrap()
}

/// Checks `dir` both ways; returns whether the streamed check judged it itself.
fn same_both_ways(dir: &Path, what: &str) -> bool {
    let classic = classic(dir);
    // The streamed check first, then the full one for what it hands back (with the
    // final.json it read).
    let lean = judged(dir, Memory::Lean, Judging::Either).unwrap();
    assert_eq!(comparable(&lean), comparable(&classic), "{what}");
    match judged(dir, Memory::Lean, Judging::Streamed) {
        Some(streamed) => {
            assert_eq!(comparable(&streamed), comparable(&classic), "{what}");
            true
        }
        None => false,
    }
}

/// Whether every check the classic way is valid (or did not apply), with nothing
/// undecided: the runs the streamed check may judge.
fn all_clean(r: &Results) -> bool {
    r.checks
        .values()
        .all(|c| c.anomaly_count == 0 && c.unknown.is_empty())
}

fn write(run: &gen::GenRun) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    dir
}

#[test]
fn clean_generated_runs_are_judged_streamed_with_the_classic_results() {
    for seed in 1..=3 {
        let opts = [
            GenOptions {
                seed,
                events: 10_000,
                ..GenOptions::default()
            },
            GenOptions::etcd_like(seed, 10_000),
            GenOptions {
                seed,
                events: 10_000,
                sessions: true,
                ..GenOptions::default()
            },
        ];
        for opt in opts {
            let dir = write(&gen::generate(&opt));
            let what = format!("seed {seed} {:?}", opt.positions);
            let classic = classic(dir.path());
            assert!(all_clean(&classic), "{what}: {}", classic.summary());
            assert!(same_both_ways(dir.path(), &what), "{what}: handed back");
        }
    }
}

#[test]
fn runs_with_anomalies_are_handed_back_and_keep_their_results() {
    let shapes = [
        (Plant::ALL.as_slice(), false),
        (Plant::SHARED.as_slice(), true),
    ];
    for (plants, shared) in shapes {
        for &plant in plants {
            for seed in [1, 2] {
                let opt = if shared {
                    GenOptions::etcd_like(seed, 4_000)
                } else {
                    GenOptions {
                        seed,
                        events: 4_000,
                        ..GenOptions::default()
                    }
                };
                let mut run = gen::generate(&opt);
                if run.plant(plant).is_err() {
                    continue;
                }
                let dir = write(&run);
                let what = format!("{plant:?} seed {seed}");
                let streamed = same_both_ways(dir.path(), &what);
                let classic = classic(dir.path());
                assert!(!all_clean(&classic), "{what}: the plant was not found");
                // Those it judges itself it must hand back; the others (agreement,
                // conservation) it words as the classic check does, as asserted above.
                if ["exactly-once", "replay", "total-order"].contains(&plant.check()) {
                    assert!(!streamed, "{what}: the streamed check judged a broken run");
                }
            }
        }
    }
}

#[test]
fn saved_runs_have_the_classic_results() {
    let saved = Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/checker");
    let mut seen = 0;
    for entry in std::fs::read_dir(&saved).unwrap() {
        let dir = entry.unwrap().path();
        if dir.join("history.jsonl").exists() {
            same_both_ways(&dir, &dir.display().to_string());
            seen += 1;
        }
    }
    assert!(seen >= 3, "the saved runs are where they were");
}
