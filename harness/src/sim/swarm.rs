//! Swarm testing: each seed of `harness sim` enables its own subset of fault families and its
//! own workload shape, instead of every seed mixing everything at fixed odds.
//!
//! Why (Groce et al., "Swarm Testing"; TigerBeetle's VOPR swarm options): a fault or a share of
//! operations that every seed mixes in at fixed odds also keeps masking others. A seed with
//! only kills and power cuts crashes twice as often as one that spreads its faults over nine
//! families; a seed with no whole-bank reads and one hot account contends as a default mix
//! never does. Over many seeds every combination is drawn, each in concentrated form.
//!
//! Drawn from its own stream of the seed ([`SWARM_STREAM`]), so the tunables, the schedule and
//! the clients draw as before; written under `[params]` in run.toml (`faults`, `workload`,
//! `swarm = true`), so replay uses what was drawn. `--faults` pins the families, and
//! `--no-swarm` gives every seed every family and the default workload.

use crate::clients::workload::WorkloadShape;
use crate::faults::schedule::{FaultFamily, World};
use crate::rng;
use rand::Rng;
use replica::core::LockPolicy;
use serde::{Deserialize, Serialize};

/// The random stream the swarm draw comes from.
pub const SWARM_STREAM: u64 = 9;

/// How often each fault family is enabled for a seed, beyond [`ALWAYS`].
pub const FAMILY_CHANCE: f64 = 0.5;
/// The families every seed keeps (when asked for): crashes, partitions and leader changes
/// are what makes a replica recover, merge a view, catch up and finish or abort a
/// transaction, and a seed without them spends its faults on what few bugs can show.
/// (Schedule version 4 added `election`: view changes with laggers are where view-merge and
/// catch-up bugs hide, and a plain kill reaches them only now and then.)
pub const ALWAYS: [FaultFamily; 3] = [
    FaultFamily::Kill,
    FaultFamily::Partition,
    FaultFamily::Election,
];
/// The think times a seed may draw (virtual ms a client waits between two operations): a
/// closed loop ends its operation budget within a few virtual seconds, and with it the
/// faults; think time spreads the same budget over more of the run, so more faults strike
/// it, for little more work (idle virtual time costs only heartbeats).
pub const THINK_MS: [u64; 4] = [0, 10, 30, 60];
/// The shares of whole-bank reads a seed may draw, in percent.
pub const READ_ALL_PCTS: [u32; 4] = [0, 5, 10, 20];
/// The most single-account reads a seed may draw, in percent (transfers, the writes every
/// bug needs, stay at 60% or more).
pub const MAX_READ_PCT: u32 = 20;
/// The contention shares a seed may draw (transfers to the one hot account), in percent.
pub const HOT_PCTS: [u32; 4] = [0, 0, 10, 50];
/// Fewest accounts a seed may draw (a sharded bank of three shards needs one per shard). The
/// most is one per client (schedule version 4; version 3 drew up to two per client): every
/// account is then some client's own, so the clients' last reads probe every lock, and
/// fewer accounts means more transfers contend for them.
pub const MIN_ACCOUNTS: u32 = 3;
/// The share of a sharded bank's transfers that cross shards, drawn between these.
pub const CROSS_SHARD_SHARES: std::ops::RangeInclusive<f64> = 0.1..=0.9;

/// What a seed drew: written under `[params.workload]` in run.toml.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimWorkload {
    /// The bank's accounts (client `i` owns account `i` modulo this: fewer accounts than
    /// clients means clients share their source account).
    pub accounts: u32,
    #[serde(flatten)]
    pub shape: WorkloadShape,
    /// On a sharded bank, the share of transfers to another shard's account.
    pub cross_shard_share: f64,
    /// Each client's think time between operations, in virtual ms (0: a closed loop).
    #[serde(default)]
    pub think_ms: u64,
    /// On a sharded bank, the leaders' lock policy (absent in runs from before it was drawn:
    /// they ran no-wait).
    #[serde(default = "no_wait")]
    pub lock_policy: LockPolicy,
}

fn no_wait() -> LockPolicy {
    LockPolicy::NoWait
}

impl Default for SimWorkload {
    /// The fixed workload of ten clients (what a run.toml without `[params.workload]` had).
    fn default() -> SimWorkload {
        SimWorkload::fixed(10)
    }
}

impl SimWorkload {
    /// The workload every seed had before swarm testing: one account per client, the
    /// default mix, half the transfers across shards.
    pub fn fixed(clients: u32) -> SimWorkload {
        SimWorkload {
            accounts: clients.max(2),
            shape: WorkloadShape::default(),
            cross_shard_share: 0.5,
            think_ms: 0,
            lock_policy: LockPolicy::default(),
        }
    }
}

/// One seed's draw: its fault families (those of [`ALWAYS`] in `families`, and each other one
/// with [`FAMILY_CHANCE`]; never none) and its workload for `clients` clients.
pub fn draw(seed: u64, families: &[FaultFamily], clients: u32) -> (Vec<FaultFamily>, SimWorkload) {
    let mut rng = rng::stream(seed, SWARM_STREAM);
    let mut chosen: Vec<FaultFamily> = families
        .iter()
        .copied()
        .filter(|f| {
            let drawn = rng.gen_bool(FAMILY_CHANCE);
            drawn || ALWAYS.contains(f)
        })
        .collect();
    if chosen.is_empty() && !families.is_empty() {
        chosen.push(families[rng.gen_range(0..families.len())]);
    }
    let accounts = rng.gen_range(MIN_ACCOUNTS..=clients.max(MIN_ACCOUNTS));
    let (shape, cross_shard_share) = draw_shape(&mut rng);
    let think_ms = THINK_MS[rng.gen_range(0..THINK_MS.len())];
    let workload = SimWorkload {
        accounts,
        shape,
        cross_shard_share,
        think_ms,
        // Drawn last, so every earlier draw of a seed stays what it was.
        lock_policy: if rng.gen_bool(0.5) {
            LockPolicy::WaitDie
        } else {
            LockPolicy::NoWait
        },
    };
    (chosen, workload)
}

/// A workload's mix, contention and cross-shard share.
fn draw_shape(rng: &mut impl Rng) -> (WorkloadShape, f64) {
    let shape = WorkloadShape {
        read_pct: rng.gen_range(0..=MAX_READ_PCT),
        read_all_pct: READ_ALL_PCTS[rng.gen_range(0..READ_ALL_PCTS.len())],
        hot_pct: HOT_PCTS[rng.gen_range(0..HOT_PCTS.len())],
    };
    (shape, rng.gen_range(CROSS_SHARD_SHARES))
}

/// A real sharded run's draw (`harness run --shards`, campaigns): the mix, contention and
/// cross-shard share as a simulated seed draws them, from the same stream (the accounts stay
/// as the run sets them, the families as `--nemesis` names them).
pub fn draw_mix(seed: u64) -> (WorkloadShape, f64) {
    draw_shape(&mut rng::stream(seed, SWARM_STREAM))
}

/// The swarm draw of a default `harness sim` seed: among every simulator family, and on a
/// sharded bank `crash-coordinator` too (schedule version 5).
pub fn draw_default(seed: u64, clients: u32, sharded: bool) -> (Vec<FaultFamily>, SimWorkload) {
    if sharded {
        return draw(seed, &World::Simulator.sharded_families(), clients);
    }
    draw(seed, World::Simulator.all_families(), clients)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn each_seed_draws_its_own_subset_and_shape_and_over_seeds_everything_is_drawn() {
        let all = World::Simulator.all_families();
        let draws: Vec<_> = (0..200).map(|s| draw_default(s, 10, false)).collect();
        assert_eq!(
            draws[7],
            draw_default(7, 10, false),
            "a seed fixes its draw"
        );
        let mut families = BTreeSet::new();
        let mut sizes = BTreeSet::new();
        let mut policies = BTreeSet::new();
        for (faults, workload) in &draws {
            assert!(!faults.is_empty(), "every seed has a fault");
            assert!(faults.iter().all(|f| all.contains(f)));
            sizes.insert(faults.len());
            families.extend(faults.iter().copied());
            assert!((MIN_ACCOUNTS..=10).contains(&workload.accounts));
            assert!(workload.shape.read_pct + workload.shape.read_all_pct <= 40);
            assert!(ALWAYS.iter().all(|f| faults.contains(f)));
            assert!(CROSS_SHARD_SHARES.contains(&workload.cross_shard_share));
            policies.insert(workload.lock_policy.name());
        }
        assert_eq!(policies.len(), 2, "both lock policies are drawn");
        assert_eq!(families.len(), all.len(), "every family is drawn somewhere");
        assert!(
            sizes.first() >= Some(&ALWAYS.len()) && sizes.len() >= 6,
            "{sizes:?}"
        );
        let shapes: BTreeSet<(u32, u32)> = draws
            .iter()
            .map(|(_, w)| (w.shape.read_all_pct, w.shape.hot_pct))
            .collect();
        assert!(
            shapes.contains(&(0, 50)) && shapes.contains(&(20, 0)),
            "{shapes:?}"
        );
        assert!(draws.iter().any(|(_, w)| w.accounts == MIN_ACCOUNTS));
        assert!(draws.iter().any(|(_, w)| w.accounts == 10));
    }
}
