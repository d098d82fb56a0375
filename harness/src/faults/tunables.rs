//! The replica's tunables a campaign explores, drawn from the run's seed.
//!
//! Why: some bugs only bite when a setting is far from its default: a checkpoint interval
//! longer than a partition (a returning replica catches up from the log, not a snapshot), a
//! checkpoint on nearly every slot, tiny batches or a one-slot pipeline, elections racing
//! heartbeats. A campaign that never leaves the defaults never reaches those paths. So every
//! seed of `harness sim` and every run of `harness campaign` draws its tunables (each one the
//! user did not pin), writes the draw into `run.toml`, and replay uses the recorded values.
//!
//! The draws stay within safe bounds: the heartbeat is well under the election timeout, and
//! timeouts stay above a simulated or loopback round trip.

use crate::rng;
use rand::Rng;
use replica::config::ClusterConfig;
use replica::core::CoreConfig;
use serde::{Deserialize, Serialize};

/// The random stream the draw comes from.
pub const TUNABLES_STREAM: u64 = 7;

/// Most slots between checkpoints a draw may pick.
pub const MAX_CHECKPOINT_INTERVAL: u64 = 100_000;

/// One draw (or the user's pins) of the replica's settings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tunables {
    pub checkpoint_interval_slots: u64,
    pub max_batch_commands: u32,
    pub max_inflight_slots: u32,
    pub heartbeat_interval_ms: u64,
    pub election_timeout_ms_min: u64,
    pub election_timeout_ms_max: u64,
    /// Time between a fault and its heal.
    pub nemesis_interval_ms: u64,
    /// A sharded bank's bound on two-phase commit transactions in flight per shard, when
    /// pinned (small, so that `Busy` refusals happen); absent: the replica's default (the
    /// simulator's 16). Not drawn, so that no seed's run changed when it was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_inflight_txns: Option<u32>,
}

/// What the user pinned; everything else is drawn.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pins {
    pub checkpoint_interval_slots: Option<u64>,
    pub max_batch_commands: Option<u32>,
    pub max_inflight_slots: Option<u32>,
    pub nemesis_interval_ms: Option<u64>,
    pub max_inflight_txns: Option<u32>,
    /// A real sharded run's `--cross-shard-share`, when given (else drawn with its mix).
    pub cross_shard_share: Option<f64>,
}

/// Draws every unpinned tunable from `seed`. `interval_choices_ms` are the nemesis intervals
/// to pick from (faults every second as well as every five, say).
pub fn draw(seed: u64, pins: &Pins, interval_choices_ms: &[u64]) -> Tunables {
    let mut rng = rng::stream(seed, TUNABLES_STREAM);
    let checkpoint = draw_checkpoint_interval(&mut rng);
    let batch = log_uniform(&mut rng, 1, 256) as u32;
    let inflight = log_uniform(&mut rng, 1, 64) as u32;
    let heartbeat = rng.gen_range(10..=50);
    let election_min = rng.gen_range((heartbeat * 4).max(100)..=600);
    let election_max = election_min + rng.gen_range(50..=400);
    let interval = if interval_choices_ms.is_empty() {
        1_000
    } else {
        interval_choices_ms[rng.gen_range(0..interval_choices_ms.len())]
    };
    Tunables {
        checkpoint_interval_slots: pins.checkpoint_interval_slots.unwrap_or(checkpoint),
        max_batch_commands: pins.max_batch_commands.unwrap_or(batch),
        max_inflight_slots: pins.max_inflight_slots.unwrap_or(inflight),
        heartbeat_interval_ms: heartbeat,
        election_timeout_ms_min: election_min,
        election_timeout_ms_max: election_max,
        nemesis_interval_ms: pins.nemesis_interval_ms.unwrap_or(interval),
        max_inflight_txns: pins.max_inflight_txns,
    }
}

/// A checkpoint on nearly every slot, never one, or anything between (log-uniform).
fn draw_checkpoint_interval(rng: &mut impl Rng) -> u64 {
    match rng.gen_range(0..10) {
        0 => rng.gen_range(1..=3),
        1 => MAX_CHECKPOINT_INTERVAL,
        _ => log_uniform(rng, 1, MAX_CHECKPOINT_INTERVAL),
    }
}

/// A whole number in `[lo, hi]` whose logarithm is uniform: small values are as likely as
/// large orders of magnitude.
fn log_uniform(rng: &mut impl Rng, lo: u64, hi: u64) -> u64 {
    let (a, b) = ((lo.max(1) as f64).ln(), (hi.max(lo).max(1) as f64).ln());
    let x = rng.gen_range(a..=b).exp().round() as u64;
    x.clamp(lo, hi)
}

impl Tunables {
    /// Writes the draw into a core configuration (the simulator's).
    pub fn apply_to_core(&self, config: &mut CoreConfig) {
        config.checkpoint_interval_slots = self.checkpoint_interval_slots;
        config.max_batch_commands = self.max_batch_commands;
        config.max_inflight_slots = self.max_inflight_slots;
        config.heartbeat_interval_ms = self.heartbeat_interval_ms;
        config.election_timeout_ms_min = self.election_timeout_ms_min;
        config.election_timeout_ms_max = self.election_timeout_ms_max;
    }

    /// Writes the draw into a cluster file (real runs).
    pub fn apply_to_cluster(&self, config: &mut ClusterConfig) {
        config.limits.checkpoint_interval_slots = self.checkpoint_interval_slots;
        config.limits.max_batch_commands = self.max_batch_commands;
        config.limits.max_inflight_slots = self.max_inflight_slots;
        config.timing.heartbeat_interval_ms = self.heartbeat_interval_ms;
        config.timing.election_timeout_ms_min = self.election_timeout_ms_min;
        config.timing.election_timeout_ms_max = self.election_timeout_ms_max;
        if let Some(txns) = self.max_inflight_txns {
            config.limits.max_inflight_txns = txns;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_are_reproducible_spread_and_respect_pins() {
        let choices = [1_000, 5_000];
        assert_eq!(
            draw(3, &Pins::default(), &choices),
            draw(3, &Pins::default(), &choices)
        );
        let draws: Vec<Tunables> = (0..400)
            .map(|s| draw(s, &Pins::default(), &choices))
            .collect();
        let intervals: Vec<u64> = draws.iter().map(|t| t.checkpoint_interval_slots).collect();
        assert!(
            intervals.iter().any(|&k| k <= 3),
            "a checkpoint on nearly every slot"
        );
        assert!(
            intervals.contains(&MAX_CHECKPOINT_INTERVAL),
            "and almost never"
        );
        assert!(intervals.iter().any(|&k| (100..10_000).contains(&k)));
        assert!(draws.iter().any(|t| t.max_inflight_slots == 1));
        assert!(draws.iter().any(|t| t.nemesis_interval_ms == 1_000));
        assert!(draws.iter().any(|t| t.nemesis_interval_ms == 5_000));
        for t in &draws {
            assert!(t.heartbeat_interval_ms * 4 <= t.election_timeout_ms_min);
            assert!(t.election_timeout_ms_min < t.election_timeout_ms_max);
            assert!((1..=256).contains(&t.max_batch_commands));
        }
        let pins = Pins {
            checkpoint_interval_slots: Some(7),
            nemesis_interval_ms: Some(333),
            ..Pins::default()
        };
        let pinned = draw(3, &pins, &choices);
        assert_eq!(pinned.checkpoint_interval_slots, 7);
        assert_eq!(pinned.nemesis_interval_ms, 333);
    }
}
