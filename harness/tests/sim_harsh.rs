//! Randomized safety on a harsh simulated network: loss up to 20%, duplicates, delays close to
//! the election timeouts, and small limits (checkpoints every few slots, short pipelines and
//! batches), so checkpoints, snapshots, full pipelines and election duels are common. Faults
//! come from the one nemesis and operations from the harness's clients, as in `harness sim`:
//! every run must be valid under the checker with no violation the world saw, and the checks
//! must catch the planted bugs these runs can expose.
//!
//! `FAULTLINE_SIM_SEEDS=<n>` runs more seeds (the default keeps the suite fast).

use harness::faults::schedule::FaultFamily;
use harness::faults::tunables::Pins;
use harness::sim::{simulate, write_and_check, SimParams, SimRunInfo, SimSummary};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::path::Path;

fn seeds() -> u64 {
    std::env::var("FAULTLINE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(40)
}

/// Seed `seed`'s run on a harsh network, its knobs drawn from the seed.
fn harsh(seed: u64, bug: Option<&str>) -> SimRunInfo {
    let mut knobs = ChaCha8Rng::seed_from_u64(seed);
    let mut params = SimParams::for_seed(seed, &Pins::default(), None);
    params.ops = 300;
    params.faults = vec![
        FaultFamily::Kill,
        FaultFamily::Partition,
        FaultFamily::Power,
    ];
    params.bug = bug.map(str::to_string);
    params.drop_rate = knobs.gen_range(0.0..0.2);
    params.dup_rate = knobs.gen_range(0.0..0.05);
    params.max_delay_ms = knobs.gen_range(2..=40);
    let t = &mut params.tunables;
    t.checkpoint_interval_slots = knobs.gen_range(2..=12);
    t.max_inflight_slots = knobs.gen_range(1..=8);
    t.max_batch_commands = knobs.gen_range(1..=8);
    if knobs.gen_bool(0.3) {
        // Election timeouts close to the message delays: duels. Still above one round trip
        // (2 × max_delay_ms): below it no election could ever finish, here or on a network.
        let min = 2 * params.max_delay_ms + 5;
        t.heartbeat_interval_ms = min / 2;
        t.election_timeout_ms_min = min;
        t.election_timeout_ms_max = min + knobs.gen_range(5..=50);
    }
    SimRunInfo::new(seed, params).unwrap()
}

fn run(dir: &Path, info: &SimRunInfo) -> SimSummary {
    let outcome = simulate(info).unwrap();
    write_and_check(dir, info, &outcome, false).unwrap()
}

#[test]
fn harsh_networks_and_small_limits_never_break_the_checks() {
    let out = tempfile::tempdir().unwrap();
    for seed in 0..seeds() {
        let s = run(&out.path().join(format!("seed-{seed}")), &harsh(seed, None));
        assert!(
            s.verdict == "valid" && s.world_violations.is_empty(),
            "seed {seed}: {} {:?} {:?}",
            s.verdict,
            s.failed_checks,
            s.world_violations
        );
    }
}

#[test]
fn harsh_runs_catch_the_planted_bugs_they_can_expose() {
    let out = tempfile::tempdir().unwrap();
    let bugs = [
        "no-dedup",
        "early-commit",
        "no-view-merge",
        "local-reads",
        "no-funds-check",
        "stale-leader",
    ];
    for bug in bugs {
        let caught = (0..20).find(|&seed| {
            let dir = out.path().join(format!("{bug}-{seed}"));
            run(&dir, &harsh(seed, Some(bug))).verdict != "valid"
        });
        eprintln!("{bug}: caught by seed {caught:?}");
        assert!(caught.is_some(), "{bug} went unnoticed in 20 harsh seeds");
    }
}
