//! Saved runs under testdata/checker/ pin the file formats: if the reader or the
//! writer drifts, these fail even when generator and checker drift together.
//! Regenerate with `cargo test -p checker --test saved_runs -- --ignored`.

use checker::gen::{self, GenOptions, Plant};
use checker::{check_run, Validity};
use std::path::PathBuf;

fn saved(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/checker")
        .join(name)
}

fn options() -> GenOptions {
    GenOptions {
        seed: 7,
        events: 400,
        nodes: 3,
        ..GenOptions::default()
    }
}

#[test]
#[ignore = "writes testdata/checker; run by hand to regenerate"]
fn regenerate_saved_runs() {
    gen::generate(&options())
        .write(&saved("valid-small"))
        .unwrap();
    let mut run = gen::generate(&options());
    run.plant(Plant::LostAck).unwrap();
    run.write(&saved("lost-ack")).unwrap();
}

#[test]
fn saved_valid_run_is_valid() {
    let r = check_run(saved("valid-small")).unwrap();
    assert_eq!(r.valid, Validity::Valid, "{}", r.summary());
    assert_eq!(r.history.events, 400);
}

#[test]
fn saved_lost_ack_run_is_invalid() {
    let r = check_run(saved("lost-ack")).unwrap();
    let eo = r.check("exactly-once").unwrap();
    assert_eq!(eo.valid, Validity::Invalid, "{}", r.summary());
    assert!(eo.anomalies.iter().any(|a| a.kind == "lost-ack"));
}
