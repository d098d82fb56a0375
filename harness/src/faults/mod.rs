//! The faults of a run: which fault starts when ([`schedule`], from the seed alone), carrying
//! them out against the cluster and recording each one ([`nemesis`]), and the replica tunables a
//! campaign draws ([`tunables`]), since a bug often hides behind one setting. On a sharded bank,
//! [`failpoints`] crashes a shard's leader at a named step of two-phase commit.

pub mod failpoints;
pub mod nemesis;
pub mod schedule;
pub mod tunables;
