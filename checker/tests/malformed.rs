//! Bad input gets an error naming the file, line and field; a history cut off by a
//! crash is checked up to its last whole line, with a warning.

mod common;

use checker::history::{HistoryReader, HistoryWriter};
use checker::{check_run, CheckError, Validity};
use common::*;
use std::io::Write;

const GOOD: &str = r#"{"index":0,"time_ns":10,"process":1,"type":"invoke","f":"transfer","value":{"from":"A","to":"B","amount":3},"request_id":1}
{"index":1,"time_ns":20,"process":1,"type":"ok","f":"transfer","value":{"from":"A","to":"B","amount":3,"from_balance":7,"to_balance":13},"request_id":1,"node":"n1","exec_index":1}
"#;

fn run_with_history(history: &str) -> (tempfile::TempDir, Result<checker::Results, CheckError>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.jsonl"), history).unwrap();
    std::fs::write(dir.path().join("run.toml"), RUN_TOML).unwrap();
    let log = [transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13))];
    final_state(&["n1"], &log, &[("A", 7), ("B", 13)])
        .write(dir.path().join("final.json"))
        .unwrap();
    let r = check_run(dir.path());
    (dir, r)
}

fn error_of(history: &str) -> String {
    match run_with_history(history).1 {
        Err(e) => e.to_string(),
        Ok(r) => panic!("expected an error, got {}", r.summary()),
    }
}

#[test]
fn the_good_history_is_valid() {
    let (_d, r) = run_with_history(GOOD);
    assert_eq!(r.unwrap().valid, Validity::Valid);
}

#[test]
fn wrong_type_names_file_line_and_field() {
    let bad = GOOD.replace(r#""time_ns":20"#, r#""time_ns":"later""#);
    let msg = error_of(&bad);
    assert!(
        msg.contains("history.jsonl:2: field `time_ns`: expected a non-negative integer"),
        "{msg}"
    );
}

#[test]
fn missing_field_is_named() {
    let bad = GOOD.replace(r#""type":"invoke","#, "");
    let msg = error_of(&bad);
    assert!(
        msg.contains("history.jsonl:1: field `type`: missing"),
        "{msg}"
    );
}

#[test]
fn bad_value_field_is_named() {
    let bad = GOOD.replace(
        r#""amount":3,"from_balance""#,
        r#""amount":"3","from_balance""#,
    );
    let msg = error_of(&bad);
    assert!(
        msg.contains("history.jsonl:2: field `value.amount`: expected an integer"),
        "{msg}"
    );
    let bad = GOOD.replace(
        r#"{"from":"A","to":"B","amount":3},"request_id":1}"#,
        r#"{"from":"A","amount":3},"request_id":1}"#,
    );
    let msg = error_of(&bad);
    assert!(
        msg.contains("history.jsonl:1: field `value.to`: missing"),
        "{msg}"
    );
}

#[test]
fn client_event_needs_a_request_id() {
    let bad = GOOD.replace(
        r#","request_id":1}
{"index":1"#,
        "}\n{\"index\":1",
    );
    let msg = error_of(&bad);
    assert!(
        msg.contains("history.jsonl:1: field `request_id`: missing"),
        "{msg}"
    );
}

#[test]
fn broken_json_in_the_middle_is_an_error_not_a_truncation() {
    let bad = format!("{{\"index\":0,\"time\n{GOOD}");
    let msg = error_of(&bad);
    assert!(msg.contains("history.jsonl:1: not valid JSON"), "{msg}");
}

#[test]
fn cut_off_last_line_is_a_warning() {
    let cut = format!("{GOOD}{{\"index\":2,\"time_ns\":30,\"process\":2,\"ty");
    let (_d, r) = run_with_history(&cut);
    let r = r.unwrap();
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    assert_eq!(r.history.truncated_at_line, Some(3));
    assert_eq!(r.history.events, 2);
    assert!(r.warnings[0].contains("line (3"), "{:?}", r.warnings);
    assert!(
        r.warnings[0].contains("checked up to line 2"),
        "{:?}",
        r.warnings
    );
}

#[test]
fn writer_leaves_whole_lines_and_reader_streams_them() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("h.jsonl");
    let mut w = HistoryWriter::create(&path).unwrap();
    let i = w
        .append_next(invoke_transfer(4, 9, "A", "B", 1).at(0, 5))
        .unwrap();
    assert_eq!((i, w.next_index()), (0, 1));
    drop(w);
    // A crash mid-write: append half a line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    f.write_all(b"{\"index\":1,\"ti").unwrap();
    let mut r = HistoryReader::open(&path).unwrap();
    let e = r.next_owned().unwrap().unwrap();
    assert_eq!((e.index, e.request_id), (0, Some(9)));
    assert!(r.next_owned().unwrap().is_none());
    assert_eq!(r.truncation().unwrap().line, 2);
}

#[test]
fn malformed_final_json_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.jsonl"), GOOD).unwrap();
    std::fs::write(dir.path().join("run.toml"), RUN_TOML).unwrap();
    std::fs::write(
        dir.path().join("final.json"),
        r#"{"nodes":{"n1":{"balances":{"A":7,"B":13},"executed":[{"exec_index":1,"client":1,"request_id":"x","f":"transfer","value":{},"type":"ok"}],"error":null}}}"#,
    )
    .unwrap();
    let msg = check_run(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("final.json"), "{msg}");
    assert!(msg.contains("nodes.n1: executed[0]"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn malformed_run_toml_names_the_field() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.jsonl"), GOOD).unwrap();
    std::fs::write(dir.path().join("run.toml"), "accounts = \"A\"\n").unwrap();
    let msg = check_run(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("run.toml: field `accounts`"), "{msg}");
}

#[test]
fn missing_history_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        check_run(dir.path()),
        Err(CheckError::NoHistory(_))
    ));
}

#[test]
fn absurd_exec_index_in_final_json_is_an_error_not_an_allocation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("history.jsonl"), GOOD).unwrap();
    std::fs::write(dir.path().join("run.toml"), RUN_TOML).unwrap();
    let log = [
        transfer_entry(1, 1, 1, ("A", "B", 3), (7, 13)),
        transfer_entry(1_000_000_000_000_000, 1, 1, ("A", "B", 3), (7, 13)),
    ];
    final_state(&["n1"], &log, &[("A", 7), ("B", 13)])
        .write(dir.path().join("final.json"))
        .unwrap();
    let msg = check_run(dir.path()).unwrap_err().to_string();
    assert!(msg.contains("implausibly far"), "{msg}");
}

#[test]
fn an_endless_line_is_an_error_naming_it_not_an_allocation() {
    let long = format!(
        "{GOOD}\n{{\"index\":2,\"time_ns\":30,\"process\":1,\"type\":\"invoke\",\"f\":\"{}",
        "x".repeat(checker::history::MAX_LINE_BYTES + 10)
    );
    let msg = error_of(&long);
    assert!(
        msg.contains("history.jsonl:4: the line is longer than"),
        "{}",
        &msg[..msg.len().min(300)]
    );
}

#[test]
fn an_ok_whose_amount_differs_from_its_invoke_is_unknown_with_its_line() {
    let bad = GOOD.replace(
        r#""amount":3,"from_balance""#,
        r#""amount":-9223372036854775808,"from_balance""#,
    );
    let (_d, r) = run_with_history(&bad);
    let r = r.unwrap();
    let c = &r.checks["well-formed"];
    assert_eq!(c.valid, Validity::Unknown, "{c:#?}");
    assert_ne!(r.valid, Validity::Valid);
    let a = &c.anomalies[0];
    assert_eq!(a.kind, "completion-changed-command");
    assert!(
        a.message.contains("line 2 ") && a.message.contains("-9223372036854775808"),
        "{a:?}"
    );
}
