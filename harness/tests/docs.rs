//! Keeps the harness's side of the contract pages honest: every whole `run.toml` shown in
//! `docs/run-toml.md` is read by the type `harness replay` reads it with, and every
//! `harness.json` shown in `docs/results.md` by the harness's summary types; a key the
//! page shows and the type does not define fails (the types ignore unknown keys, so each
//! example must survive a round trip), and the `cluster.toml` of `docs/replica-cli.md` is
//! loaded as `replica run` loads it (unknown keys refused). The checker's side:
//! `checker/tests/docs.rs`.

use harness::run::rundir::RunInfo;
use harness::run::shared::RunSummary;
use harness::sim::{SimRunInfo, SimSummary};
use replica::config::ClusterConfig;
use serde_json::Value;
use std::path::Path;

/// The bodies of the ` ```lang ` blocks of `docs/<page>`.
fn blocks(page: &str, lang: &str) -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../docs")
        .join(page);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let open = format!("```{lang}\n");
    text.split(open.as_str())
        .skip(1)
        .filter_map(|rest| rest.split_once("```").map(|(body, _)| body.to_string()))
        .collect()
}

/// Every key of `doc`, at any depth, is also in `back`.
fn keys_survive(doc: &Value, back: &Value, at: &str) -> Result<(), String> {
    match (doc, back) {
        (Value::Object(d), Value::Object(b)) => d.iter().try_for_each(|(k, v)| {
            let here = format!("{at}.{k}");
            let w = b
                .get(k)
                .ok_or(format!("`{here}` is not a key the harness knows"))?;
            keys_survive(v, w, &here)
        }),
        (Value::Array(d), Value::Array(b)) => d
            .iter()
            .zip(b)
            .try_for_each(|(v, w)| keys_survive(v, w, &format!("{at}[]"))),
        _ => Ok(()),
    }
}

/// Reads `text` as `T` and checks that every key survives the round trip.
fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(doc: Value) -> Result<(), String> {
    let typed: T = serde_json::from_value(doc.clone()).map_err(|e| e.to_string())?;
    let back = serde_json::to_value(typed).map_err(|e| e.to_string())?;
    keys_survive(&doc, &back, "")
}

#[test]
fn every_whole_run_toml_example_is_read_as_harness_replay_reads_it() {
    let (mut real, mut sim) = (0, 0);
    for body in blocks("run-toml.md", "toml") {
        let table: toml::Table = body.parse().expect("a run.toml example is TOML");
        let doc = serde_json::to_value(&table).unwrap();
        let checked = match table.get("kind").and_then(|k| k.as_str()) {
            Some("sim") => {
                sim += 1;
                round_trip::<SimRunInfo>(doc)
            }
            Some(_) => {
                real += 1;
                round_trip::<RunInfo>(doc)
            }
            // A part of a run.toml (what a sharded run adds): read by the checker's test.
            None => continue,
        };
        checked.unwrap_or_else(|e| panic!("run-toml.md: {e}\n{body}"));
    }
    assert!(
        real >= 1 && sim >= 1,
        "{real} real and {sim} simulated run.toml examples"
    );
}

#[test]
fn every_harness_json_example_is_read_as_the_index_and_replay_read_it() {
    let mut seen = 0;
    for body in blocks("results.md", "json") {
        let doc: Value = serde_json::from_str(&body).expect("an example is JSON");
        let checked = if doc.get("virtual_ms").is_some() {
            round_trip::<SimSummary>(doc)
        } else if doc.get("elapsed_s").is_some() {
            round_trip::<RunSummary>(doc)
        } else {
            continue;
        };
        checked.unwrap_or_else(|e| panic!("results.md: {e}\n{body}"));
        seen += 1;
    }
    assert!(seen >= 2, "only {seen} harness.json examples");
}

#[test]
fn the_cluster_toml_example_is_loaded_as_replica_run_loads_it() {
    let found = blocks("replica-cli.md", "toml");
    assert!(
        !found.is_empty(),
        "replica-cli.md has no cluster.toml example"
    );
    for body in found {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.toml");
        std::fs::write(&path, &body).unwrap();
        ClusterConfig::load(&path).unwrap_or_else(|e| panic!("replica-cli.md: {e}\n{body}"));
    }
}
