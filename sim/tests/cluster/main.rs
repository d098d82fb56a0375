//! Whole clusters of real shells and cores in the deterministic simulator: hand-built
//! scenarios, then seeded runs with every fault. One test binary, so the suite links once.

mod liveness;
mod messages;
mod random;
mod scenarios;
mod shards;
mod stall;
