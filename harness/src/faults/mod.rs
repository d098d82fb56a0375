//! The faults of a run: one vocabulary of faults and which one starts when ([`schedule`], from
//! the seed alone), one nemesis carrying them out against any world and recording each one
//! ([`nemesis`]), the process cluster as such a world ([`processes`]; the simulator's is
//! `crate::sim::faults`), and the replica tunables a campaign draws ([`tunables`]), since a
//! bug often hides behind one setting. On a sharded bank, [`failpoints`] crashes a shard's
//! leader at a named step of two-phase commit.

pub mod failpoints;
pub mod nemesis;
pub mod processes;
pub mod schedule;
pub mod tunables;
