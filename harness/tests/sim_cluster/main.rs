//! Whole clusters of real shells and cores in the deterministic simulator, with faults scripted
//! by hand and, where a test needs a workload, the harness's own clients on them
//! ([`LoadedWorld`]): the world has no clients of its own, so these tests live beside the one
//! client loop rather than in the sim crate. Seeded runs with random faults go through the one
//! nemesis instead (`tests/sim_harsh.rs`, `tests/sim_shards.rs`). One test binary, so the
//! suite links once.

mod durability;
mod liveness;
mod locks;
mod messages;
mod scenarios;
mod stall;

use harness::sim::clients::LoadedWorld;
use sim::{Sim, SimOptions};

/// A world of `options`, no client running yet.
pub fn world(options: SimOptions) -> LoadedWorld {
    LoadedWorld::new(Sim::new(options))
}
