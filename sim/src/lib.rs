//! faultline's deterministic simulator: the replica's real shell and core, many of them in one
//! process, on a simulated disk ([`disk`]), network and clock ([`world`]), all driven by one
//! seed. A failing seed replays exactly.
//!
//! This crate is test machinery: the replica's shipped binary never links it. The harness
//! builds `harness sim` (seeded runs written as ordinary run directories) on top of it.

pub mod by_exec;
pub mod disk;
pub mod world;

pub use disk::SimDisk;
pub use world::{AfterSend, SeenReply, Sim, SimNode, SimOptions, SimStats};
