//! The harness's subcommands, one file each: its clap arguments beside the code that runs it
//! (`harness sim` keeps its own in [`crate::sim::cli`]). `main.rs` only parses and dispatches.
//! They sit above every other room: nothing imports them but `main.rs`.

pub mod bench;
pub mod campaign;
pub mod exit;
pub mod merge;
pub mod prune;
pub mod replay;
pub mod run;
pub mod scenario;
pub mod zoo;
