//! Exploratory: 3 of 5 up and connected must keep committing.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use replica::core::sim::{Sim, SimOptions};
use replica::types::NodeId;

fn run(seed: u64) -> Result<(), String> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut options = SimOptions::new(5, seed);
    options.drop_rate = rng.gen_range(0.0..0.2);
    options.max_delay_ms = rng.gen_range(2..=40);
    options.long_delay_rate = rng.gen_range(0.0..0.03);
    options.config.checkpoint_interval_slots = rng.gen_range(2..=12);
    options.config.max_inflight_slots = rng.gen_range(1..=8);
    options.config.max_batch_commands = rng.gen_range(1..=8);
    options.config.max_catchup_slots = rng.gen_range(1..=16);
    options.dup_rate = rng.gen_range(0.0..0.05);
    if rng.gen_bool(0.5) {
        let min = 2 * options.max_delay_ms + 5;
        options.config.heartbeat_interval_ms = min / 2;
        options.config.election_timeout_ms_min = min;
        options.config.election_timeout_ms_max = min + rng.gen_range(5..=50);
    }
    let mut sim = Sim::new(options);
    sim.start_clients(5);
    let nodes = sim.node_ids();
    for _ in 0..rng.gen_range(0..12) {
        sim.run_for(rng.gen_range(50..400));
        let up: Vec<NodeId> = nodes.iter().copied().filter(|id| sim.is_up(*id)).collect();
        let down: Vec<NodeId> = nodes.iter().copied().filter(|id| !sim.is_up(*id)).collect();
        let pick = |rng: &mut SmallRng, v: &[NodeId]| (!v.is_empty()).then(|| v[rng.gen_range(0..v.len())]);
        match rng.gen_range(0..7) {
            0 => pick(&mut rng, &up).into_iter().for_each(|id| sim.crash(id)),
            6 => pick(&mut rng, &up).into_iter().for_each(|id| sim.crash_during_next_burst(id)),
            1 => pick(&mut rng, &down).into_iter().for_each(|id| sim.restart(id)),
            2 => {
                let split = rng.gen_range(1..nodes.len());
                let (left, right) = nodes.split_at(split);
                sim.partition(&[left, right]);
            }
            3 => sim.leader().into_iter().for_each(|id| sim.isolate(id)),
            4 => sim.heal(),
            _ => sim.leader().into_iter().for_each(|id| sim.crash(id)),
        }
    }
    sim.heal();
    for id in &nodes {
        sim.restart(*id);
    }
    sim.run_for(rng.gen_range(0..600));
    let duel = rng.gen_bool(0.7);
    // Wait for two nodes promising the same round (a duel), then crash the higher one.
    let mut pair = None;
    if duel {
        sim.run_until(5_000, |sim| {
            let st: Vec<_> = nodes.iter().filter_map(|id| sim.core(*id).map(|c| c.status().ballot)).collect();
            for x in &st {
                for y in &st {
                    if x.round == y.round && x.node < y.node {
                        return true;
                    }
                }
            }
            false
        });
        let st: Vec<_> = nodes.iter().filter_map(|id| sim.core(*id).map(|c| (c.status().ballot, *id))).collect();
        let top = st.iter().max().map(|x| x.1).unwrap();
        let other = nodes[rng.gen_range(0..5)];
        if other != top {
            pair = Some((top, other));
        }
    }
    let (a, b) = pair.unwrap_or_else(|| {
        let a = nodes[rng.gen_range(0..5)];
        let mut b = a;
        while b == a {
            b = nodes[rng.gen_range(0..5)];
        }
        (a, b)
    });
    sim.crash(a);
    sim.crash(b);
    for id in &nodes {
        if *id != a && *id != b {
            sim.restart(*id);
        }
    }
    sim.set_drop_rate(0.0);
    sim.run_for(2_000);
    for id in &nodes {
        if *id != a && *id != b {
            sim.restart(*id);
        }
    }
    let before = sim.stats.client_ops_done;
    sim.run_for(3_000);
    if sim.stats.client_ops_done <= before {
        let st: Vec<String> = nodes
            .iter()
            .map(|id: &NodeId| format!("{:?}", sim.core(*id).map(|c| c.status())))
            .collect();
        return Err(format!("stall after crashing {a} {b}: {st:#?}"));
    }
    Ok(())
}

#[test]
#[ignore]
fn search_stall() {
    let n: u64 = std::env::var("N").ok().and_then(|s| s.parse().ok()).unwrap_or(500);
    let mut bad = 0;
    for seed in 0..n {
        if let Err(e) = run(seed) {
            bad += 1;
            if bad < 3 {
                eprintln!("seed {seed}: {e}");
            } else {
                eprintln!("seed {seed}");
            }
        }
    }
    assert_eq!(bad, 0);
}

#[test]
#[ignore]
fn hand_built_duel() {
    use crate::util::transfer;
    for seed in 0..200 {
        let mut sim = Sim::new(SimOptions::new(5, seed));
        let Some(first) = sim.run_until_leader(2_000) else { continue };
        let nodes = sim.node_ids();
        let others: Vec<NodeId> = nodes.iter().copied().filter(|n| *n != first).collect();
        // `hi` duels mutely with the rest.
        let hi = *others.last().unwrap();
        for n in &nodes {
            if *n != hi {
                sim.cut_link(hi, *n);
            }
        }
        sim.crash(first);
        sim.run_for(rng_ms(seed));
        let b = sim.core(hi).map(|c| c.status().ballot);
        sim.crash(hi);
        sim.heal();
        let l = sim.leader();
        let lb = l.and_then(|l| sim.core(l)).map(|c| c.status().ballot);
        let up: Vec<NodeId> = nodes.iter().copied().filter(|n| sim.is_up(*n)).collect();
        let mut tokens = Vec::new();
        for (i, n) in up.iter().enumerate() {
            tokens.push(sim.submit(*n, transfer(1 + i as u64, 1, "A", "B", 1)));
        }
        sim.run_for(3_000);
        for (i, n) in up.iter().enumerate() {
            tokens.push(sim.submit(*n, transfer(1 + i as u64, 1, "A", "B", 1)));
        }
        sim.run_for(1_000);
        let tokens = &tokens[up.len()..];
        let done = tokens.iter().filter(|t| sim.reply_to(**t).is_some()).count();
        if done < tokens.len() {
            eprintln!("seed {seed}: first {first} hi {hi} at {b:?}, leader {l:?} {lb:?}: {done}/{}", tokens.len());
            for n in &up {
                eprintln!("  {:?}", sim.core(*n).unwrap().status());
            }
        }
    }
}

fn rng_ms(seed: u64) -> u64 {
    200 + (seed * 37) % 600
}
