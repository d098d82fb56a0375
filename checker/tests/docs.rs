//! Keeps the contract pages under `docs/` honest: every example block there is read by the
//! checker's own readers, and every field an example shows must survive a round trip through
//! the checker's types (a field the format does not define is dropped by them, and fails here).
//!
//! Blocks are found by their fence: ` ```jsonl ` is history lines, ` ```json ` starting with
//! `{"nodes"` is a final.json, ` ```json ` holding `"run_dir"` is a results.json, ` ```toml `
//! is a run.toml (or a part of one). The harness's own files (run.toml as the harness reads
//! it, harness.json) are checked by `harness/tests/docs.rs`.

use checker::final_state::FinalState;
use checker::history::{read_all_events, Event};
use checker::run_params::RunParams;
use checker::shards::{shard_specs, ShardedFinal};
use checker::Results;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn docs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs")
}

/// The fenced blocks of `page` whose info string is exactly `lang`, with their first line
/// number.
fn blocks(page: &str, lang: &str) -> Vec<(usize, String)> {
    let path = docs_dir().join(page);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, line) in text.lines().enumerate() {
        match (&mut open, line.trim_end()) {
            (None, fence) if fence.starts_with("```") => {
                if fence == format!("```{lang}") {
                    open = Some((n + 2, String::new()));
                } else {
                    // Another language: skip to its closing fence.
                    open = Some((0, String::new()));
                }
            }
            (Some(_), "```") => {
                let (start, body) = open.take().unwrap_or_default();
                if start > 0 {
                    out.push((start, body));
                }
            }
            (Some((_, body)), _) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    assert!(open.is_none(), "{page}: a fenced block is not closed");
    out
}

/// Every object key of `doc`, at any depth, is also in `back` at the same place.
fn keys_survive(doc: &Value, back: &Value, at: &str) -> Result<(), String> {
    match (doc, back) {
        (Value::Object(d), Value::Object(b)) => {
            for (k, v) in d {
                let here = format!("{at}.{k}");
                let Some(w) = b.get(k) else {
                    return Err(format!("`{here}` is not a field of the format"));
                };
                keys_survive(v, w, &here)?;
            }
            Ok(())
        }
        (Value::Array(d), Value::Array(b)) => d
            .iter()
            .zip(b)
            .enumerate()
            .try_for_each(|(i, (v, w))| keys_survive(v, w, &format!("{at}[{i}]"))),
        _ => Ok(()),
    }
}

#[test]
fn every_history_example_is_read_by_the_checker_and_uses_only_defined_fields() {
    let mut lines = 0;
    for page in ["history.md", "sharded.md"] {
        let found = blocks(page, "jsonl");
        assert!(!found.is_empty(), "{page} has no ```jsonl example");
        for (start, body) in found {
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("history.jsonl");
            std::fs::write(&file, &body).unwrap();
            let events = read_all_events(&file)
                .unwrap_or_else(|e| panic!("{page}, block at line {start}: {e}"));
            assert_eq!(events.len(), body.lines().count(), "{page}:{start}");
            for (k, line) in body.lines().enumerate() {
                let doc: Value = serde_json::from_str(line).unwrap();
                let event: Event = serde_json::from_str(line).unwrap();
                let back = serde_json::to_value(&event).unwrap();
                keys_survive(&doc, &back, "")
                    .unwrap_or_else(|e| panic!("{page}:{}: {e}", start + k));
                lines += 1;
            }
        }
    }
    assert!(lines >= 10, "only {lines} example lines found");
}

#[test]
fn every_final_json_example_parses_as_its_shape() {
    let mut seen = 0;
    for page in ["final-json.md", "sharded.md"] {
        for (start, body) in blocks(page, "json") {
            if !body.trim_start().starts_with("{\"nodes\"") {
                continue;
            }
            let doc: Value = serde_json::from_str(&body)
                .unwrap_or_else(|e| panic!("{page}:{start}: not JSON: {e}"));
            let sharded = doc["nodes"]
                .as_object()
                .is_some_and(|nodes| nodes.values().any(|n| n.get("shard").is_some()));
            let mut back = if sharded {
                let state: ShardedFinal = serde_json::from_value(doc.clone())
                    .unwrap_or_else(|e| panic!("{page}:{start}: {e}"));
                serde_json::to_value(state).unwrap()
            } else {
                let state: FinalState = serde_json::from_value(doc.clone())
                    .unwrap_or_else(|e| panic!("{page}:{start}: {e}"));
                serde_json::to_value(state).unwrap()
            };
            // The top-level words the streaming reader takes apart from `nodes`.
            let dir = tempfile::tempdir().unwrap();
            let file = dir.path().join("final.json");
            std::fs::write(&file, &body).unwrap();
            let positions =
                FinalState::load_positions(&file).unwrap_or_else(|e| panic!("{page}:{start}: {e}"));
            if let Some(word) = doc.get("positions") {
                assert_eq!(word, positions.as_str(), "{page}:{start}");
                back["positions"] = word.clone();
            }
            if let Some(base) = doc.get("base_revision") {
                assert!(base.is_u64(), "{page}:{start}: base_revision is a revision");
                back["base_revision"] = base.clone();
            }
            keys_survive(&doc, &back, "").unwrap_or_else(|e| panic!("{page}:{start}: {e}"));
            seen += 1;
        }
    }
    assert!(seen >= 3, "only {seen} final.json examples found");
}

#[test]
fn every_run_toml_example_is_read_by_the_checker() {
    let mut seen = 0;
    for page in ["run-toml.md", "sharded.md"] {
        for (start, body) in blocks(page, "toml") {
            let path = Path::new(page);
            let params =
                RunParams::parse(&body, path).unwrap_or_else(|e| panic!("{page}:{start}: {e}"));
            shard_specs(&params, path).unwrap_or_else(|e| panic!("{page}:{start}: {e}"));
            seen += 1;
        }
    }
    assert!(seen >= 4, "only {seen} run.toml examples found");
}

#[test]
fn the_results_json_example_is_a_results_json() {
    let found: Vec<_> = blocks("results.md", "json")
        .into_iter()
        .filter(|(_, body)| body.contains("\"run_dir\""))
        .collect();
    assert!(!found.is_empty(), "results.md has no results.json example");
    for (start, body) in found {
        let doc: Value = serde_json::from_str(&body).unwrap();
        let results: Results =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("results.md:{start}: {e}"));
        let back = serde_json::to_value(results).unwrap();
        keys_survive(&doc, &back, "").unwrap_or_else(|e| panic!("results.md:{start}: {e}"));
    }
}

/// docs/results.md's table of anomaly kinds: (tag, tier cell) per row.
fn kind_rows() -> Vec<(String, String)> {
    let path = docs_dir().join("results.md");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let table = text
        .split("### Anomaly kinds")
        .nth(1)
        .expect("results.md has an `### Anomaly kinds` section");
    table
        .lines()
        .skip_while(|l| !l.starts_with("| `kind` |"))
        .skip(2)
        .take_while(|l| l.starts_with('|'))
        .map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            (cells[1].trim_matches('`').to_string(), cells[2].to_string())
        })
        .collect()
}

#[test]
fn results_md_lists_every_anomaly_kind_once_with_its_tier_and_nothing_else() {
    use checker::checks::{AnomalyKind, OpFunction};
    let rows = kind_rows();
    let listed: Vec<&str> = rows.iter().map(|(t, _)| t.as_str()).collect();
    let kinds: Vec<&str> = AnomalyKind::ALL.iter().map(|k| k.tag()).collect();
    assert_eq!(
        listed, kinds,
        "docs/results.md's anomaly kinds differ from AnomalyKind::ALL (same order)"
    );
    for (kind, (tag, tier)) in AnomalyKind::ALL.iter().zip(&rows) {
        let rank = kind.severity(None).rank().to_string();
        assert!(
            tier.starts_with(&rank),
            "{tag}: results.md says tier {tier}, the type {rank}"
        );
        let for_reads = kind.severity(Some(OpFunction::Read)) != kind.severity(None);
        assert_eq!(
            tier.contains("when `f` is `read`"),
            for_reads,
            "{tag}: results.md and the type differ on whether a read changes its tier"
        );
    }
}
