//! Transcript tests: whole-cluster scenarios in the simulator, written as commented scripts with
//! their expected output (`tests/testdata/*.txt`), in the shape of etcd raft's data-driven
//! `rafttest` files. A reviewer reads what the cluster did, line by line, instead of a page of
//! struct literals, and a change in behaviour shows as a diff of that text.
//!
//! Each file is a sequence of stanzas parsed by the `datadriven` crate: a directive line, its
//! input, `----`, then the expected output. Two directives:
//! - `cluster nodes=N seed=S` starts a fresh simulated cluster (every file begins with one);
//! - `script` runs its input, one command per line (the language is in [`script`]), and prints
//!   one line per command (a few print a table).
//!
//! The simulator is deterministic, so the output is exact. After a deliberate change in
//! behaviour, `REWRITE=1 cargo test -p sim --test transcripts` rewrites the expected output;
//! review the diff as code. Assertions that must hold whatever the schedule (`check`,
//! `expect ...`) fail the script with a message instead of printing a different line, so a
//! rewrite cannot bless a broken run.

mod script;

use script::Transcript;

const TESTDATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata");

#[test]
fn transcripts() {
    datadriven::walk(TESTDATA, |file| {
        let mut transcript: Option<Transcript> = None;
        file.run(|case| -> Result<String, String> {
            match case.directive.as_str() {
                "cluster" => {
                    let nodes: u32 = case.take_arg("nodes").map_err(|e| e.to_string())?;
                    let seed: u64 = case.take_arg("seed").map_err(|e| e.to_string())?;
                    let started = Transcript::new(nodes, seed);
                    let line = started.describe();
                    transcript = Some(started);
                    Ok(line)
                }
                "script" => {
                    let t = transcript
                        .as_mut()
                        .ok_or("a `script` needs a `cluster` stanza above it")?;
                    t.run_script(&case.input)
                }
                other => Err(format!(
                    "unknown directive {other:?}: use cluster or script"
                )),
            }
        })
    });
}
