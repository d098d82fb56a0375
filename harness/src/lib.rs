//! faultline's harness: a Jepsen-style black-box tester for the replicated bank.
//!
//! It knows the replica only through its command line and its client protocol. A run prepares a
//! directory (certificates, cluster config, `run.toml`), starts every replica as its own OS
//! process, drives concurrent clients while a seeded nemesis kills, pauses and partitions
//! replicas (partitions through the harness's own UDP [`relay`]), records everything in
//! `history.jsonl`, heals, fetches every replica's final state and hands the run to the checker.
//!
//! The system under test is a [`targets::Target`]: the faultline replica, or etcd 3.4
//! (`--target etcd`, through the TCP [`relay_tcp`]). The [`targets`] module documents the trait
//! with a worked example, for adding a third system.

pub mod bench;
pub mod caller;
pub mod campaign;
pub mod cluster;
pub mod fake;
pub mod final_phase;
pub mod interrupt;
pub mod journal;
pub mod nemesis;
pub mod process;
pub mod progress;
pub mod record;
pub mod relay;
pub mod relay_tcp;
pub mod repl;
pub mod replay;
pub mod rng;
pub mod run;
pub mod rundir;
pub mod scenario;
pub mod scenario_run;
pub mod schedule;
pub mod sim;
pub mod targets;
pub mod transport;
pub mod tunables;
pub mod worker;
pub mod workload;
pub mod zoo;
