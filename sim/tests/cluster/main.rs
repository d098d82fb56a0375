//! Whole clusters of real shells and cores in the deterministic simulator: hand-built
//! scenarios, then seeded sharded runs with every fault (seeded classic runs go through the one
//! nemesis: `harness/tests/sim_harsh.rs`). One test binary, so the suite links once.

mod liveness;
mod messages;
mod scenarios;
mod shards;
mod stall;
