//! faultline's replica: a stable-leader Multi-Paxos bank ledger.
//!
//! - `types`, `bank`, `client_proto`, `config`: the vocabulary shared by everything.
//! - `shard`: which shard owns which account and which replicas (sharded banks).
//! - `core`: the Paxos protocol as a pure state machine (messages and ticks in, effects out).
//! - `storage`: the write-ahead log, checkpoints and the executed journal on disk.
//! - `net`: QUIC with mutual TLS, frames, certificates.
//! - `shell`: carries out the core's effects on a pluggable file system (shared with the simulator).
//! - `server`: `replica run`, the shell driven by real sockets, disk and timers.
//! - `client`: the client library used by `replica ctl` and the harness.
//! - `logfile`: `--log-file`, capped in size.
//! - `failpoints`: crashes at named steps of two-phase commit, for tests (feature `failpoints`).

pub mod bank;
pub mod cli;
pub mod client;
pub mod client_proto;
pub mod config;
pub mod core;
pub mod failpoints;
pub mod logfile;
pub mod net;
pub mod server;
pub mod shard;
pub mod shell;
pub mod storage;
pub mod types;
