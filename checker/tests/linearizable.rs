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
        ..CheckOptions::default()
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

/// run.toml of a faultline run with accounts A, B, C (sessions apply) or, with
/// `target` `None`, of a system that keeps none.
fn abc_toml(target: Option<&str>) -> String {
    let target = target.map_or(String::new(), |t| format!("target = \"{t}\"\n"));
    format!("{target}accounts = [\"A\", \"B\", \"C\"]\ninitial_balance = 10\n")
}

fn read_all(p: u64, rid: u64, balances: [(&str, i64); 3]) -> [Event; 2] {
    [
        Event::invoke(p, rid, "read_all", serde_json::Value::Null),
        Event::client(
            EventType::Ok,
            p,
            rid,
            "read_all",
            values::read_all_ok(balances),
        ),
    ]
}

fn judge(events: &[Event], toml: &str) -> checker::CheckResult {
    let dir = tempfile::tempdir().unwrap();
    write_run(dir.path(), events, None, Some(toml));
    let r = check_run_with(dir.path(), black_box(10_000)).unwrap();
    r.check("linearizable").unwrap().clone()
}

/// Client 1's A->B 3 times out, then its next request, a read of C, answers 10.
fn timed_out_then_read_c() -> Vec<Event> {
    let t = values::transfer("A", "B", 3);
    vec![
        invoke_transfer(1, 1, "A", "B", 3),
        Event::client(EventType::Info, 1, 1, "transfer", t),
        Event::invoke(1, 2, "read", values::read("C")),
        Event::client(EventType::Ok, 1, 2, "read", values::read_ok("C", 10)),
    ]
}

#[test]
fn a_timed_out_transfer_applied_before_its_clients_next_request_counts() {
    // Sessions close client 1's timed-out A->B at its next answer (a read of C, which
    // touches nothing the transfer does): it must stay possible that it executed
    // before that read, as client 2's read_all after it says.
    let mut events = timed_out_then_read_c();
    events.extend(read_all(2, 1, [("A", 7), ("B", 13), ("C", 10)]));
    for target in [Some("faultline"), None] {
        let l = judge(&events, &abc_toml(target));
        assert_eq!(l.valid, Validity::Valid, "{target:?}: {l:?}");
    }
}

#[test]
fn a_timed_out_transfer_may_precede_its_clients_failed_transfer_on_the_same_account() {
    // Client 1's timed-out B->A 1 and its next request, A->C 20, which fails for want
    // of funds with or without that 1: the failure is linearized as soon as it is
    // invoked, yet the timed-out transfer may have executed before it.
    let t = values::transfer("B", "A", 1);
    let mut events = vec![
        invoke_transfer(1, 1, "B", "A", 1),
        Event::client(EventType::Info, 1, 1, "transfer", t),
        invoke_transfer(1, 2, "A", "C", 20),
        Event::client(
            EventType::Fail,
            1,
            2,
            "transfer",
            values::transfer_fail("A", "C", 20, "insufficient-funds"),
        )
        .with_exec_index(1),
    ];
    events.extend(read_all(2, 1, [("A", 11), ("B", 9), ("C", 10)]));
    let l = judge(&events, &abc_toml(Some("faultline")));
    assert_eq!(l.valid, Validity::Valid, "{l:?}");
}

#[test]
fn with_sessions_a_timed_out_transfer_cannot_execute_after_its_clients_next_request() {
    // Client 1's A->B times out; its next request executes; client 2 then sees the
    // transfer not applied, and later applied. A bank without sessions may do that
    // (the late copy executes); faultline's reply table makes the copy stale.
    let mut events = timed_out_then_read_c();
    events.extend(read_all(2, 1, [("A", 10), ("B", 10), ("C", 10)]));
    events.extend(read_all(2, 2, [("A", 7), ("B", 13), ("C", 10)]));
    let l = judge(&events, &abc_toml(None));
    assert_eq!(l.valid, Validity::Valid, "{l:?}");
    let l = judge(&events, &abc_toml(Some("faultline")));
    assert_eq!(l.valid, Validity::Invalid, "{l:?}");
    assert_eq!(l.anomalies[0].indices, [6, 7]);
    // A simulated run is of the faultline replica too.
    let sim = format!("kind = \"sim\"\n{}", abc_toml(None));
    assert_eq!(judge(&events, &sim).valid, Validity::Invalid);
    // The session is the client's: another client's answer closes nothing.
    events[2] = Event::invoke(3, 1, "read", values::read("C"));
    events[3] = Event::client(EventType::Ok, 3, 1, "read", values::read_ok("C", 10));
    let l = judge(&events, &abc_toml(Some("faultline")));
    assert_eq!(l.valid, Validity::Valid, "{l:?}");
}

fn sessions_run(seed: u64, events: usize, plant: Option<Plant>, budget: u64) -> Results {
    let mut run = gen::generate(&GenOptions {
        seed,
        events,
        sessions: true,
        ..GenOptions::default()
    });
    if let Some(p) = plant {
        run.plant(p).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    run.write(dir.path()).unwrap();
    check_run_with(dir.path(), black_box(budget)).unwrap()
}

#[test]
fn runs_with_sessions_are_decided() {
    // Faultline's runs: timed-out transfers close at their client's next answer, so
    // the search does not carry every one of them to the end.
    let budget = checker::checks::linearizable::DEFAULT_BUDGET;
    for seed in 1..=4 {
        let r = sessions_run(seed, 4_000, None, budget);
        let l = r.check("linearizable").unwrap();
        assert_eq!(l.valid, Validity::Valid, "seed {seed}: {}", r.summary());
        for plant in [Plant::WrongRead, Plant::SumDrift, Plant::NegativeBalance] {
            let r = sessions_run(seed, 4_000, Some(plant), budget);
            let l = r.check("linearizable").unwrap();
            assert_eq!(l.valid, Validity::Invalid, "{plant:?} seed {seed}");
        }
    }
}

#[test]
fn a_closing_transfer_may_sit_between_unrelated_operations_before_the_answer() {
    // Client 1's timed-out C->D must have executed before its A->B answered (client
    // 2's read_all sees it), and client 4's A->B before that answer too; the two share
    // no account with each other. The search numbers operations by slot and, of two
    // neighbours that commute, tries only the lower first: the answer ends the chain
    // whatever its number, or neither order of the two would be tried. The reads
    // first fill the low slots so that the timed-out transfer gets the highest.
    let toml =
        "target = \"faultline\"\naccounts = [\"A\", \"B\", \"C\", \"D\"]\ninitial_balance = 10\n";
    let ok_read =
        |p, rid, a, b| Event::client(EventType::Ok, p, rid, "read", values::read_ok(a, b));
    let events = [
        Event::invoke(2, 1, "read", values::read("C")),
        Event::invoke(3, 1, "read", values::read("D")),
        invoke_transfer(1, 1, "C", "D", 1),
        Event::client(
            EventType::Info,
            1,
            1,
            "transfer",
            values::transfer("C", "D", 1),
        ),
        ok_read(2, 1, "C", 10),
        ok_read(3, 1, "D", 10),
        invoke_transfer(1, 2, "A", "B", 1),
        invoke_transfer(4, 1, "A", "B", 2),
        ok_transfer(1, 2, ("A", "B", 1), (7, 13), 3),
        Event::invoke(2, 2, "read_all", serde_json::Value::Null),
        Event::client(
            EventType::Ok,
            2,
            2,
            "read_all",
            values::read_all_ok([("A", 7), ("B", 13), ("C", 9), ("D", 11)]),
        ),
        ok_transfer(4, 1, ("A", "B", 2), (8, 12), 2),
    ];
    let l = judge(&events, toml);
    assert_eq!(l.valid, Validity::Valid, "{l:?}");
    // Without the transfer executed, the read_all is impossible.
    let mut late = events.to_vec();
    late[10] = Event::client(
        EventType::Ok,
        2,
        2,
        "read_all",
        values::read_all_ok([("A", 7), ("B", 13), ("C", 10), ("D", 12)]),
    );
    let l = judge(&late, toml);
    assert_eq!(l.valid, Validity::Invalid, "{l:?}");
}
