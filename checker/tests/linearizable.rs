//! The black-box search: without exec indices or the log it finds the planted
//! anomalies that the clients' results reveal, passes valid runs, and says unknown
//! (with the reason) when its budget runs out.

mod common;

use checker::gen::{self, GenOptions, Plant};
use checker::history::{values, Event, EventType};
use checker::{check_run, check_run_with, CheckOptions, Results, Validity};
use common::*;

fn black_box(budget: u64) -> CheckOptions {
    CheckOptions {
        trust_exec_index: false,
        search_budget: budget,
    }
}

fn generated(seed: u64, plant: Option<Plant>, options: CheckOptions) -> Results {
    generated_n(seed, 4_000, plant, options)
}

fn generated_n(seed: u64, events: usize, plant: Option<Plant>, options: CheckOptions) -> Results {
    let mut run = gen::generate(&GenOptions {
        seed,
        events,
        ..GenOptions::default()
    });
    if let Some(p) = plant {
        run.plant(p).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    check_run_with(dir.path(), options).unwrap()
}

#[test]
fn valid_runs_are_linearizable() {
    // Short runs: on the full 4,000-event ones the search runs out of its budget (see
    // a_long_valid_run_is_unknown_never_invalid).
    for seed in 1..=8 {
        let budget = checker::checks::linearizable::DEFAULT_BUDGET;
        let r = generated_n(seed, 600, None, black_box(budget));
        let l = r.check("linearizable").unwrap();
        assert_eq!(l.valid, Validity::Valid, "seed {seed}: {}", r.summary());
        assert_eq!(r.valid, Validity::Valid);
    }
}

#[test]
fn a_long_valid_run_is_unknown_never_invalid() {
    let r = generated(1, None, black_box(1_000_000));
    let l = r.check("linearizable").unwrap();
    assert_eq!(l.valid, Validity::Unknown, "{}", r.summary());
    assert!(l.unknown[0].contains("budget"), "{:?}", l.unknown);
}

#[test]
fn the_search_catches_what_the_results_reveal() {
    // The plants a client can see in its answers (the others live in the log, which
    // the black-box search does not read).
    for plant in [Plant::WrongRead, Plant::SumDrift, Plant::NegativeBalance] {
        for seed in [1, 2] {
            let r = generated(
                seed,
                Some(plant),
                black_box(checker::checks::linearizable::DEFAULT_BUDGET),
            );
            let l = r.check("linearizable").unwrap();
            assert_eq!(
                l.valid,
                Validity::Invalid,
                "{plant:?} seed {seed}: {}",
                r.summary()
            );
            assert_eq!(l.anomalies[0].kind, "not-linearizable");
        }
    }
}

#[test]
fn a_spent_budget_is_unknown_with_the_reason() {
    let r = generated(1, None, black_box(50));
    let l = r.check("linearizable").unwrap();
    assert_eq!(l.valid, Validity::Unknown, "{}", r.summary());
    assert!(
        l.unknown[0].contains("budget of 50 states"),
        "{:?}",
        l.unknown
    );
    assert_eq!(r.valid, Validity::Unknown);
}

#[test]
fn it_runs_by_itself_when_an_ok_answer_has_no_position_anywhere() {
    // A stale read without exec_index, which no replica's log holds either.
    let dir = tempfile::tempdir().unwrap();
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),
        ok_transfer(1, 1, ("A", "B", 3), (7, 13), 1),
        Event::invoke(2, 1, "read", values::read("A")),
        Event::client(EventType::Ok, 2, 1, "read", values::read_ok("A", 10)),
    ];
    let log = [transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13))];
    let fin = final_state(&["n1"], &log, &[("A", 7), ("B", 13)]);
    write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
    let r = check_run(dir.path()).unwrap();
    let l = r.check("linearizable").unwrap();
    assert_eq!(l.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(l.anomalies[0].indices, [2, 3]);
    // With every position known, it does not run unless asked.
    let r = generated(1, None, CheckOptions::default());
    assert!(r.check("linearizable").is_none());
}

#[test]
fn timed_out_transfers_may_or_may_not_have_executed() {
    let dir = tempfile::tempdir().unwrap();
    let t = values::transfer("A", "B", 3);
    let events = [
        invoke_transfer(1, 1, "A", "B", 3),
        Event::client(EventType::Info, 1, 1, "transfer", t),
        Event::invoke(2, 1, "read_all", serde_json::Value::Null),
        // Executed after all, before the read_all.
        Event::client(
            EventType::Ok,
            2,
            1,
            "read_all",
            values::read_all_ok([("A", 7), ("B", 13)]),
        ),
        Event::invoke(2, 2, "read_all", serde_json::Value::Null),
        Event::client(
            EventType::Ok,
            2,
            2,
            "read_all",
            values::read_all_ok([("A", 7), ("B", 13)]),
        ),
    ];
    write_run(dir.path(), &events, None, Some(RUN_TOML));
    let r = check_run_with(dir.path(), black_box(1000)).unwrap();
    assert_eq!(
        r.check("linearizable").unwrap().valid,
        Validity::Valid,
        "{}",
        r.summary()
    );
    // But not twice, nor undone.
    let mut undone = events.to_vec();
    undone[5] = Event::client(
        EventType::Ok,
        2,
        2,
        "read_all",
        values::read_all_ok([("A", 10), ("B", 10)]),
    );
    write_run(dir.path(), &undone, None, Some(RUN_TOML));
    let r = check_run_with(dir.path(), black_box(1000)).unwrap();
    let l = r.check("linearizable").unwrap();
    assert_eq!(l.valid, Validity::Invalid, "{}", r.summary());
    assert_eq!(l.anomalies[0].indices, [4, 5]);
}

#[test]
fn thousand_event_valid_runs_are_decided() {
    // Long enough that several timed-out transfers stay in flight for good and
    // clients overlap throughout: the search must remember what it has linearized,
    // not retry every order (`checker bench --linearizable --events 1000`, a like
    // run, spent 5M states and ended unknown before it did).
    for seed in [1, 3, 4, 7] {
        let budget = checker::checks::linearizable::DEFAULT_BUDGET;
        let r = generated_n(seed, 1_000, None, black_box(budget));
        let l = r.check("linearizable").unwrap();
        assert_eq!(l.valid, Validity::Valid, "seed {seed}: {}", r.summary());
    }
}
