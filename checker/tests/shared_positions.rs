//! Shared positions (`"positions": "shared_reads"`, etcd's revisions): writes take
//! unique positions, reads and failed transfers observe the state after a write and
//! share its position. One module per property whose meaning had to be generalised,
//! each with a valid history and the anomalies planted in it; then generated
//! etcd-like runs.
//!
//! The hand-written runs share one shape: accounts A and B start at 10 at revision 2
//! (the base: etcd's first write to a fresh cluster), and the log's writes follow from
//! revision 3.

mod common;

use checker::final_state::{ExecutedEntry, Positions};
use checker::history::{values, Event, EventType};
use checker::{check_run, Results, Validity};
use common::*;
use serde_json::Value;

/// Writes the run with final.json saying `"positions": "shared_reads"` and
/// `"base_revision": 2` (three members holding `log` and `balances`) and checks it.
fn check_shared(events: &[Event], log: &[ExecutedEntry], balances: &[(&str, i64)]) -> Results {
    check_with_base(events, log, balances, Some(BASE))
}

/// The initial balances' revision in the hand-written runs.
const BASE: u64 = 2;

/// [`check_shared`] with another (or no) `base_revision`.
fn check_with_base(
    events: &[Event],
    log: &[ExecutedEntry],
    balances: &[(&str, i64)],
    base: Option<u64>,
) -> Results {
    let dir = tempfile::tempdir().unwrap();
    let fin = final_state(&["n1", "n2", "n3"], log, balances);
    write_run(dir.path(), events, None, Some(RUN_TOML));
    let path = dir.path().join("final.json");
    fin.write_with_positions(&path, Some(Positions::SharedReads), base)
        .unwrap();
    check_run(dir.path()).unwrap()
}

fn read(p: u64, rid: u64, account: &str) -> Event {
    Event::invoke(p, rid, "read", values::read(account))
}

fn read_ok(p: u64, rid: u64, account: &str, balance: i64, rev: u64) -> Event {
    Event::client(
        EventType::Ok,
        p,
        rid,
        "read",
        values::read_ok(account, balance),
    )
    .on_node("n1")
    .with_exec_index(rev)
}

fn read_all(p: u64, rid: u64) -> Event {
    Event::invoke(p, rid, "read_all", Value::Null)
}

fn read_all_ok(p: u64, rid: u64, a: i64, b: i64, rev: u64) -> Event {
    Event::client(
        EventType::Ok,
        p,
        rid,
        "read_all",
        values::read_all_ok([("A", a), ("B", b)]),
    )
    .on_node("n2")
    .with_exec_index(rev)
}

fn fail_insufficient(p: u64, rid: u64, t: (&str, &str, i64), rev: u64) -> Event {
    Event::client(
        EventType::Fail,
        p,
        rid,
        "transfer",
        values::transfer_fail(t.0, t.1, t.2, values::INSUFFICIENT_FUNDS),
    )
    .on_node("n1")
    .with_exec_index(rev)
}

/// The one write of the hand-written runs: transfer A->B 3 by client 1 at revision 3.
fn the_write() -> ExecutedEntry {
    transfer_entry(3, 1, 1, ("A", "B", 3), (7, 13))
}

const AFTER: [(&str, i64); 2] = [("A", 7), ("B", 13)];

fn assert_valid(r: &Results) {
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    assert!(
        r.checks.values().all(|c| c.anomaly_count == 0),
        "{}",
        r.summary()
    );
}

/// `check` is invalid with an anomaly of `kind` naming history `indices`; the other
/// checks in `clean` stay valid.
fn assert_caught(r: &Results, check: &str, kind: &str, indices: &[u64], clean: &[&str]) {
    let c = r.check(check).unwrap();
    assert_eq!(c.valid, Validity::Invalid, "{}", r.summary());
    assert!(
        c.anomalies
            .iter()
            .any(|a| a.kind == kind && indices.iter().all(|i| a.indices.contains(i))),
        "no {kind} naming {indices:?}: {:#?}",
        c.anomalies
    );
    for name in clean {
        assert_eq!(
            r.check(name).unwrap().valid,
            Validity::Valid,
            "{name}: {}",
            r.summary()
        );
    }
}

mod total_order {
    use super::*;

    /// Reads share the write's revision and the base revision; a read at the base
    /// completes before the write is invoked, reads at 3 start after it completed.
    #[test]
    fn reads_sharing_revisions_pass() {
        let events = [
            read(2, 1, "A"),                              // 0
            read_ok(2, 1, "A", 10, 2),                    // 1: at the base
            read_all(3, 1),                               // 2
            read_all_ok(3, 1, 10, 10, 2),                 // 3: shares the base
            invoke_transfer(1, 1, "A", "B", 3),           // 4
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 5: the write, revision 3
            read(2, 2, "A"),                              // 6
            read_all(3, 2),                               // 7
            read_ok(2, 2, "A", 7, 3),                     // 8: shares revision 3
            read_all_ok(3, 2, 7, 13, 3),                  // 9: and so does this
            invoke_transfer(4, 1, "B", "A", 20),          // 10
            fail_insufficient(4, 1, ("B", "A", 20), 3),   // 11: decided at 3 too
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_valid(&r);
        assert_eq!(r.final_state.positions, Positions::SharedReads);
        assert_eq!(r.final_state.log_first_gap, None);
        let to = r.check("total-order").unwrap();
        assert_eq!(to.counts["operations told an exec_index"], 6);
    }

    /// Without `"base_revision"`, the base is the revision before the first write.
    #[test]
    fn the_base_is_inferred_from_the_first_write() {
        let events = [
            read(2, 1, "A"),
            read_ok(2, 1, "A", 10, 2),
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
            read(2, 2, "A"),
            read_ok(2, 2, "A", 7, 3),
        ];
        assert_valid(&check_with_base(&events, &[the_write()], &AFTER, None));
    }

    /// The same history without `"positions"`: every command must have a position of
    /// its own, so the shared ones are anomalies (the default is unchanged).
    #[test]
    fn the_same_history_with_unique_positions_is_invalid() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
            read(2, 1, "A"),
            read_ok(2, 1, "A", 7, 3),
        ];
        let dir = tempfile::tempdir().unwrap();
        let fin = final_state(&["n1"], &[the_write()], &AFTER);
        write_run(dir.path(), &events, Some(&fin), Some(RUN_TOML));
        let r = check_run(dir.path()).unwrap();
        let to = r.check("total-order").unwrap();
        assert_eq!(to.valid, Validity::Invalid, "{}", r.summary());
        assert!(to
            .anomalies
            .iter()
            .any(|a| a.kind == "duplicate-exec-index"));
        assert!(to.anomalies.iter().any(|a| a.kind == "real-time-order"));
    }

    /// A serializable read served by a lagging member: invoked after the write at
    /// revision 3 completed, it is told revision 2 (and returns the state there).
    #[test]
    fn stale_read_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),           // 0
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 1
            read(2, 1, "A"),                              // 2
            read_ok(2, 1, "A", 10, 2),                    // 3: stale
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(
            &r,
            "total-order",
            "real-time-order",
            &[0, 1, 2, 3],
            &["replay", "exactly-once", "conservation"],
        );
        let a = &r.check("total-order").unwrap().anomalies[0];
        assert!(
            a.message.contains("has the larger exec_index 3") && a.message.contains("a stale read"),
            "{}",
            a.message
        );
    }

    /// A stale read_all after another read saw the newer revision.
    #[test]
    fn read_older_than_a_completed_read_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),           // 0
            read(2, 1, "A"),                              // 1
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 2
            read_ok(2, 1, "A", 7, 3),                     // 3: saw revision 3
            read_all(3, 1),                               // 4
            read_all_ok(3, 1, 10, 10, 2),                 // 5: but this one is older
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "total-order", "real-time-order", &[4, 5], &["replay"]);
    }

    /// A write told the revision a read that completed before it had already seen.
    #[test]
    fn write_at_a_revision_already_observed_is_caught() {
        let events = [
            read(2, 1, "A"),                              // 0
            read_ok(2, 1, "A", 7, 3),                     // 1: sees revision 3...
            invoke_transfer(1, 1, "A", "B", 3),           // 2: ...before its write began
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 3
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "total-order", "real-time-order", &[0, 1, 2, 3], &[]);
    }

    #[test]
    fn two_writes_on_one_revision_are_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),           // 0
            invoke_transfer(2, 1, "B", "A", 1),           // 1
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 2
            ok_transfer(2, 1, ("B", "A", 1), (8, 12), 3), // 3: the same revision
        ];
        let log = [the_write(), transfer_entry(4, 2, 1, ("B", "A", 1), (8, 12))];
        let r = check_shared(&events, &log, &[("A", 8), ("B", 12)]);
        assert_caught(
            &r,
            "total-order",
            "duplicate-exec-index",
            &[0, 1, 2, 3],
            &["exactly-once"],
        );
    }

    /// A client's own reads may repeat a revision, but never go back.
    #[test]
    fn client_reading_backwards_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),           // 0
            read(2, 1, "A"),                              // 1
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 2
            read_ok(2, 1, "A", 7, 3),                     // 3
            read(2, 2, "A"),                              // 4
            read_ok(2, 2, "A", 7, 3),                     // 5: repeats: fine
            read(2, 3, "A"),                              // 6
            read_ok(2, 3, "A", 10, 2),                    // 7: goes back
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(
            &r,
            "total-order",
            "client-order",
            &[4, 5, 6, 7],
            &["replay"],
        );
        let to = r.check("total-order").unwrap();
        assert!(
            to.anomalies.iter().all(|a| !a.indices.contains(&1)),
            "the repeated revision is fine: {:#?}",
            to.anomalies
        );
    }
}

mod replay {
    use super::*;

    #[test]
    fn read_whose_value_does_not_match_its_revision_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),           // 0
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 1
            read(2, 1, "A"),                              // 2
            read_ok(2, 1, "A", 10, 3),                    // 3: revision 3 holds 7
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "replay", "wrong-result", &[2, 3], &["total-order"]);
    }

    #[test]
    fn read_all_at_the_base_must_see_the_initial_balances() {
        let events = [
            read_all(3, 1),              // 0
            read_all_ok(3, 1, 7, 13, 2), // 1: the base holds 10 and 10
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "replay", "wrong-result", &[0, 1], &["total-order"]);
    }

    /// etcd answered a read_all `{}` 12 ms into a run, from a member that had not applied the
    /// initial balances (revision 1, before the base): not money created or destroyed, so
    /// conservation says what it saw instead of "sum drift"; the staleness is replay's.
    #[test]
    fn read_all_before_the_bank_existed_is_no_sum_drift() {
        let empty = Event::client(
            EventType::Ok,
            3,
            1,
            "read_all",
            values::read_all_ok(std::iter::empty::<(&str, i64)>()),
        )
        .on_node("n2")
        .with_exec_index(1);
        let events = [
            read_all(3, 1), // 0
            empty,          // 1: {} at revision 1, before the base
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        let conservation = r.check("conservation").unwrap();
        assert_eq!(conservation.valid, Validity::Valid, "{}", r.summary());
        assert!(
            conservation
                .notes
                .iter()
                .any(|n| n.contains("1 read_all saw no account at all")),
            "{:?}",
            conservation.notes
        );
        let text = serde_json::to_string(&r.checks).unwrap();
        assert!(!text.contains("money was created or destroyed"), "{text}");
        assert_caught(&r, "replay", "stale-read", &[0, 1], &["conservation"]);
        let a = &r.check("replay").unwrap().anomalies[0];
        assert!(
            a.message.contains("before the bank existed") && a.message.contains("position 1"),
            "{}",
            a.message
        );
    }

    #[test]
    fn failed_transfer_that_had_funds_is_caught() {
        let events = [
            invoke_transfer(4, 1, "A", "B", 5),        // 0
            fail_insufficient(4, 1, ("A", "B", 5), 2), // 1: A held 10
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "replay", "wrong-result", &[0, 1], &["total-order"]);
        let a = &r.check("replay").unwrap().anomalies[0];
        assert!(a.message.contains("enough for 5"), "{}", a.message);
    }

    #[test]
    fn failed_transfer_that_lacked_funds_passes() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),           // 0
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3), // 1
            invoke_transfer(4, 1, "A", "B", 8),           // 2
            fail_insufficient(4, 1, ("A", "B", 8), 3),    // 3: A holds 7 at 3
        ];
        assert_valid(&check_shared(&events, &[the_write()], &AFTER));
    }

    #[test]
    fn read_past_the_last_write_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
            read(2, 1, "A"),
            read_ok(2, 1, "A", 7, 9),
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "replay", "beyond-log", &[2, 3], &[]);
    }

    /// The log must cover every revision after the base: a missing first write
    /// leaves what follows undecided, never passed.
    #[test]
    fn a_log_starting_after_the_first_write_is_unknown() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
            read(2, 1, "A"),
            read_ok(2, 1, "A", 7, 3),
        ];
        let r = check_with_base(&events, &[the_write()], &AFTER, Some(1));
        assert_eq!(r.final_state.log_first_gap, Some(2), "{}", r.summary());
        assert_eq!(
            r.check("replay").unwrap().valid,
            Validity::Unknown,
            "{}",
            r.summary()
        );
        // The acknowledged write is in the log: nothing needs its absence decided.
        let eo = r.check("exactly-once").unwrap();
        assert!(
            eo.notes.iter().any(|n| n.contains("gaps")),
            "{}",
            r.summary()
        );
    }

    #[test]
    fn writes_listed_at_the_base_are_not_replayed() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
        ];
        let r = check_with_base(&events, &[the_write()], &AFTER, Some(3));
        let replay = r.check("replay").unwrap();
        assert_eq!(replay.valid, Validity::Invalid, "{}", r.summary());
        assert!(
            replay.unknown.iter().any(|u| u.contains("base_revision 3")),
            "{}",
            r.summary()
        );
    }

    /// With no write at all, every read sees the initial balances at the one revision.
    #[test]
    fn reads_of_an_untouched_bank_pass() {
        let events = [
            read(2, 1, "A"),
            read_ok(2, 1, "A", 10, 2),
            read_all(3, 1),
            read_all_ok(3, 1, 10, 10, 2),
        ];
        assert_valid(&check_shared(&events, &[], &[("A", 10), ("B", 10)]));
    }
}

mod exactly_once {
    use super::*;

    #[test]
    fn acknowledged_write_missing_from_the_log_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
            invoke_transfer(2, 1, "B", "A", 1),
            ok_transfer(2, 1, ("B", "A", 1), (8, 12), 4),
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "exactly-once", "lost-ack", &[2, 3], &[]);
    }

    #[test]
    fn failed_transfer_in_the_log_is_caught() {
        let events = [
            invoke_transfer(1, 1, "A", "B", 3),        // 0
            fail_insufficient(1, 1, ("A", "B", 3), 2), // 1: told it failed...
        ];
        // ...yet the log holds it as the write at revision 3.
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_caught(&r, "exactly-once", "failed-but-applied", &[0, 1], &[]);
    }

    #[test]
    fn read_in_the_log_is_caught() {
        let events = [read(2, 1, "A"), read_ok(2, 1, "A", 10, 2)];
        let log = [entry(
            3,
            2,
            1,
            "read",
            values::read_ok("A", 10),
            EventType::Ok,
        )];
        let r = check_shared(&events, &log, &[("A", 10), ("B", 10)]);
        assert_caught(&r, "exactly-once", "observer-in-log", &[0, 1], &[]);
    }

    /// Reads and failed transfers are never in the log, and that is no loss.
    #[test]
    fn observers_absent_from_the_log_pass() {
        let events = [
            read(2, 1, "B"),
            read_ok(2, 1, "B", 10, 2),
            invoke_transfer(4, 1, "B", "A", 11),
            fail_insufficient(4, 1, ("B", "A", 11), 2),
            invoke_transfer(1, 1, "A", "B", 3),
            ok_transfer(1, 1, ("A", "B", 3), (7, 13), 3),
        ];
        let r = check_shared(&events, &[the_write()], &AFTER);
        assert_valid(&r);
        assert_eq!(
            r.check("exactly-once").unwrap().counts["operations checked"],
            3
        );
    }
}

mod malformed {
    use super::*;

    #[test]
    fn an_unknown_positions_word_names_the_field() {
        let dir = tempfile::tempdir().unwrap();
        write_run(dir.path(), &[], None, Some(RUN_TOML));
        std::fs::write(
            dir.path().join("final.json"),
            r#"{"positions": "sometimes", "nodes": {}}"#,
        )
        .unwrap();
        let err = check_run(dir.path()).unwrap_err().to_string();
        assert!(err.contains("field `positions`"), "{err}");
        assert!(err.contains("sometimes"), "{err}");
    }
}

mod generated {
    use super::*;
    use checker::gen::{self, GenOptions, Plant};

    fn run(seed: u64, plant: Option<Plant>) -> (Option<checker::gen::Planted>, Results) {
        let mut run = gen::generate(&GenOptions::etcd_like(seed, 4_000));
        let planted = plant.map(|p| run.plant(p).unwrap_or_else(|e| panic!("{e} (seed {seed})")));
        let dir = tempfile::tempdir().unwrap();
        run.write(dir.path()).unwrap();
        (planted, check_run(dir.path()).unwrap())
    }

    #[test]
    fn etcd_like_runs_are_valid_and_share_positions() {
        for seed in [1, 2, 3] {
            let (_, r) = run(seed, None);
            assert_valid(&r);
            let replay = r.check("replay").unwrap();
            assert!(
                replay.counts["observations replayed"] > 500,
                "{}",
                r.summary()
            );
            // Shared positions really occur: more operations were told a position than
            // the log has writes.
            let told = r.check("total-order").unwrap().counts["operations told an exec_index"];
            assert!(
                told > replay.counts["log entries replayed"] + 300,
                "{}",
                r.summary()
            );
            assert_eq!(r.final_state.log_first_gap, None);
        }
    }

    #[test]
    fn planted_anomalies_are_caught_with_their_history() {
        for plant in Plant::SHARED {
            for seed in [1, 2, 3] {
                let (planted, r) = run(seed, Some(plant));
                let planted = planted.unwrap();
                let check = r.check(plant.check()).unwrap();
                assert_eq!(
                    check.valid,
                    Validity::Invalid,
                    "{plant:?} seed {seed}: {}",
                    r.summary()
                );
                let (first, last) = (planted.indices[0], *planted.indices.last().unwrap());
                assert!(
                    check
                        .anomalies
                        .iter()
                        .any(|a| a.indices.contains(&first) && a.indices.contains(&last)),
                    "{plant:?} seed {seed}: no anomaly names {planted:?}: {:#?}",
                    check.anomalies
                );
            }
        }
    }

    /// The black-box search uses no position, so shared ones change nothing for it:
    /// a small etcd-like run is linearizable, and a planted stale read is not.
    #[test]
    fn black_box_search_agrees() {
        let small = |seed| GenOptions {
            clients: 4,
            p_timeout: 0.0,
            nemesis: false,
            ..GenOptions::etcd_like(seed, 400)
        };
        let options = checker::CheckOptions {
            trust_exec_index: false,
            ..checker::CheckOptions::default()
        };
        for seed in [1, 2] {
            let dir = tempfile::tempdir().unwrap();
            gen::generate(&small(seed)).write(dir.path()).unwrap();
            let r = checker::check_run_with(dir.path(), options).unwrap();
            assert_valid(&r);
            let mut run = gen::generate(&small(seed));
            run.plant(Plant::StaleRead).unwrap();
            run.write(dir.path()).unwrap();
            let r = checker::check_run_with(dir.path(), options).unwrap();
            let lin = r.check("linearizable").unwrap();
            assert_eq!(lin.valid, Validity::Invalid, "seed {seed}: {}", r.summary());
        }
    }

    /// The report shows a stale read with its history excerpt, cited rows marked.
    #[test]
    fn report_shows_a_stale_read_with_its_history() {
        let mut run = gen::generate(&GenOptions::etcd_like(1, 3_000));
        let planted = run.plant(Plant::StaleRead).unwrap();
        let dir = tempfile::tempdir().unwrap();
        run.write(dir.path()).unwrap();
        let results = check_run(dir.path()).unwrap();
        let written = checker::report::write_report(dir.path(), &results).unwrap();
        let html = std::fs::read_to_string(&written.html).unwrap();
        assert!(
            html.contains("(real-time-order, total-order)"),
            "anomaly shown"
        );
        let last = planted.indices.last().unwrap();
        assert!(
            html.contains(&format!("<tr class=\"cited\"><td>{last}</td>")),
            "the stale read's completion is a cited excerpt row"
        );
        assert!(html.contains("shared_reads"), "shared positions explained");
        let json: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("results.json")).unwrap())
                .unwrap();
        assert_eq!(json["final_state"]["positions"], "shared_reads");
    }

    /// The unique-position plants edit the log as if every command had its own slot:
    /// they refuse an etcd-like run rather than plant something else.
    #[test]
    fn log_plants_refuse_shared_runs() {
        let mut run = gen::generate(&GenOptions::etcd_like(1, 500));
        assert!(run.plant(Plant::LostAck).is_err());
        let mut unique = gen::generate(&GenOptions {
            events: 500,
            ..GenOptions::default()
        });
        assert!(unique.plant(Plant::StaleRead).is_err());
    }
}

mod random {
    use super::*;
    use checker::gen::{self, GenOptions};
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

        /// No false positives: random etcd-like workloads (retries, timeouts that may
        /// still write, rejections, lagging and unreachable members) are valid.
        #[test]
        fn random_etcd_like_workloads_are_valid(
            seed in 0u64..1 << 40,
            events in 200usize..2_500,
            clients in 1u64..12,
            accounts in 2usize..8,
            p_timeout in 0.0f64..0.3,
            p_reject in 0.0f64..0.2,
            p_read in 0.0f64..0.5,
            nodes in 1usize..6,
        ) {
            let opt = GenOptions {
                clients, accounts, p_timeout, p_reject, p_read, nodes,
                max_amount: 12,
                ..GenOptions::etcd_like(seed, events)
            };
            let dir = tempfile::tempdir().unwrap();
            gen::generate(&opt).write(dir.path()).unwrap();
            let r = check_run(dir.path()).unwrap();
            prop_assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
        }
    }
}
