//! faultline's harness: a Jepsen-style black-box tester for the replicated bank.
//!
//! It knows the replica only through its command line and its client protocol. A run prepares a
//! directory (certificates, cluster config, `run.toml`), starts every replica as its own OS
//! process, drives concurrent clients while a seeded nemesis kills, pauses and partitions
//! replicas (partitions through the harness's own UDP [`os::relay`]), records everything in
//! `history.jsonl`, heals, fetches every replica's final state and hands the run to the checker.
//!
//! The system under test is a [`targets::Target`]: the faultline replica, or etcd 3.4
//! (`--target etcd`, through the TCP [`os::relay_tcp`]). The [`targets`] module documents the trait
//! with a worked example, for adding a third system.
//!
//! The rooms, from the bottom up: no file imports one that imports it back, and nearly every
//! import points to a room listed earlier (docs/README.md names the exceptions):
//! - [`params`], [`rng`], [`record`]: a run's parameters, its seeded random streams, the
//!   history writer;
//! - [`os`]: the OS plumbing both targets use: processes, the UDP and TCP relays, transports;
//! - [`clients`]: the workload, the client loops and the submit-until-answered rule;
//! - [`targets`]: the system under test behind one trait: faultline (its cluster of replica
//!   processes, the journal collector behind final.json) and etcd;
//! - [`faults`]: the fault schedule, the nemesis that carries it out, drawn tunables;
//! - [`run`]: one run from start to verdict, campaigns, replay, bench, zoo, the run directory;
//! - [`scenario`]: scenario CSV files and their interactive mode;
//! - [`sim`]: deterministic simulation of the real replica code from a seed;
//! - [`fleet`]: slices of a sweep over many machines, their summaries and their merge;
//! - [`commands`]: each subcommand's arguments beside its code (`main.rs` dispatches).

pub mod clients;
pub mod commands;
pub mod faults;
pub mod fleet;
pub mod os;
pub mod params;
pub mod record;
pub mod rng;
pub mod run;
pub mod scenario;
pub mod sim;
pub mod targets;
