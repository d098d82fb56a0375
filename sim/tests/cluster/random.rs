//! Randomized safety: seeded runs with message loss, duplication, reordering, partitions and
//! crashes, then healing. Every run must keep one agreed executed order, conserve money, answer
//! every client with what replaying that order gives, and converge once healed.
//!
//! `FAULTLINE_SIM_SEEDS=<n>` runs more seeds (the default keeps the suite fast).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replica::core::Bugs;
use replica::types::NodeId;
use sim::{Sim, SimOptions};

fn seeds() -> u64 {
    std::env::var("FAULTLINE_SIM_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200)
}

fn pick(rng: &mut SmallRng, from: &[NodeId]) -> Option<NodeId> {
    (!from.is_empty()).then(|| from[rng.gen_range(0..from.len())])
}

/// One random run; `Err` says which property broke.
fn random_run(seed: u64, bugs: Bugs) -> Result<Sim, String> {
    random_run_traced(seed, bugs, false)
}

fn random_run_traced(seed: u64, bugs: Bugs, trace: bool) -> Result<Sim, String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut options = SimOptions::new(5, seed);
    options.config.bugs = bugs;
    options.drop_rate = rng.gen_range(0.0..0.2);
    options.dup_rate = rng.gen_range(0.0..0.05);
    options.max_delay_ms = rng.gen_range(2..=40);
    options.long_delay_rate = rng.gen_range(0.0..0.03);
    // Small limits make checkpoints, snapshots, full pipelines and short catch-ups common.
    options.config.checkpoint_interval_slots = rng.gen_range(2..=12);
    options.config.max_inflight_slots = rng.gen_range(1..=8);
    options.config.max_batch_commands = rng.gen_range(1..=8);
    options.config.max_catchup_slots = rng.gen_range(1..=16);
    if rng.gen_bool(0.3) {
        // Election timeouts close to the message delays: duels.
        // Still above one round trip (2 × max_delay_ms): with timeouts below the round trip no
        // election can ever finish, in this simulator or on a real network.
        let min = 2 * options.max_delay_ms + 5;
        options.config.heartbeat_interval_ms = min / 2;
        options.config.election_timeout_ms_min = min;
        options.config.election_timeout_ms_max = min + rng.gen_range(5..=50);
    }
    let mut sim = Sim::new(options);
    sim.start_clients(5);
    let nodes = sim.node_ids();
    for _ in 0..rng.gen_range(5..15) {
        sim.run_for(rng.gen_range(50..400));
        let up: Vec<NodeId> = nodes.iter().copied().filter(|id| sim.is_up(*id)).collect();
        let down: Vec<NodeId> = nodes.iter().copied().filter(|id| !sim.is_up(*id)).collect();
        let action = rng.gen_range(0..7);
        if trace {
            eprintln!(
                "t={} action {action} up {up:?}: {:?}",
                sim.now_ms,
                statuses(&sim)
            );
        }
        match action {
            0 => pick(&mut rng, &up).into_iter().for_each(|id| sim.crash(id)),
            6 => pick(&mut rng, &up)
                .into_iter()
                .for_each(|id| sim.crash_during_next_burst(id)),
            1 => pick(&mut rng, &down)
                .into_iter()
                .for_each(|id| sim.restart(id)),
            2 => {
                let split = rng.gen_range(1..nodes.len());
                let (left, right) = nodes.split_at(split);
                sim.partition(&[left, right]);
            }
            3 => sim.leader().into_iter().for_each(|id| sim.isolate(id)),
            4 => sim.heal(),
            _ => sim.leader().into_iter().for_each(|id| sim.crash(id)),
        }
        sim.check_safety()?;
    }
    sim.heal();
    sim.set_drop_rate(0.0);
    for id in &nodes {
        sim.restart(*id);
    }
    let before = sim.stats.client_ops_done;
    for _ in 0..10 {
        sim.run_for(100);
        if trace {
            eprintln!("t={} healing: {:?}", sim.now_ms, statuses(&sim));
        }
    }
    if sim.stats.client_ops_done <= before {
        if trace {
            eprintln!("clients: {:#?}", sim.describe_clients());
            for id in sim.node_ids() {
                if let Some(core) = sim.core(id) {
                    eprintln!("{id} log: {:?}", core.log_view(replica::types::Slot(0), 50));
                }
            }
        }
        return Err(format!("no progress after healing: {:?}", sim.stats));
    }
    sim.stop_clients();
    if trace {
        eprintln!("t={} healed: {:?}", sim.now_ms, statuses(&sim));
    }
    if !sim.run_until_converged(5_000) {
        return Err(format!("no convergence: {:?}", sim.check_converged()));
    }
    sim.check_safety()?;
    sim.check_replies()?;
    Ok(sim)
}

#[test]
fn random_faults_never_break_safety_and_healing_converges() {
    for seed in 0..seeds() {
        if let Err(e) = random_run(seed, Bugs::default()) {
            panic!("seed {seed}: {e}");
        }
    }
}

/// The checks have teeth: every planted bug that these runs can expose is caught by some seed.
#[test]
fn the_random_runs_catch_planted_bugs() {
    let bugs = [
        (
            "no_dedup",
            Bugs {
                no_dedup: true,
                ..Bugs::default()
            },
        ),
        (
            "early_commit",
            Bugs {
                early_commit: true,
                ..Bugs::default()
            },
        ),
        (
            "no_view_merge",
            Bugs {
                no_view_merge: true,
                ..Bugs::default()
            },
        ),
        (
            "local_reads",
            Bugs {
                local_reads: true,
                ..Bugs::default()
            },
        ),
        (
            "no_funds_check",
            Bugs {
                no_funds_check: true,
                ..Bugs::default()
            },
        ),
        (
            "stale_leader",
            Bugs {
                stale_leader: true,
                ..Bugs::default()
            },
        ),
    ];
    for (name, bug) in bugs {
        let caught = (0..20).find(|seed| random_run(*seed, bug).is_err());
        eprintln!("{name}: caught by seed {caught:?}");
        assert!(caught.is_some(), "{name} went unnoticed");
    }
}

fn statuses(sim: &Sim) -> Vec<String> {
    let status = |id: NodeId| sim.core(id).map(|c| format!("{:?}", c.status()));
    sim.node_ids()
        .into_iter()
        .map(|id| status(id).unwrap_or_else(|| format!("{id} down")))
        .collect()
}

/// Replays one seed with a trace: `SEED=123 cargo test -p sim --test cluster replay_one_seed
/// -- --ignored --nocapture`.
#[test]
#[ignore]
fn replay_one_seed() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let seed = std::env::var("SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("SEED=<n>");
    match random_run_traced(seed, Bugs::default(), true) {
        Ok(sim) => eprintln!(
            "ok at t={}: {} executed, {:?}",
            sim.now_ms,
            sim.executed_log().len(),
            sim.stats
        ),
        Err(e) => panic!("seed {seed}: {e}"),
    }
}
