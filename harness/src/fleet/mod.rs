//! A night on a fleet: one sweep or campaign split over many machines by the engine that runs
//! them (a Slurm job array, a Kubernetes Indexed Job), and one morning report.
//!
//! - [`slice`]: `--slice K/N` and `--slice auto`, each task's share of the seeds;
//! - [`task`]: a task's results directory and its resumable `summary.json`;
//! - [`identity`]: the build a task ran (commit, binaries' hashes);
//! - [`merge`]: `harness merge`, every task's summary into one report of unique failures.

pub mod identity;
pub mod merge;
pub mod slice;
pub mod task;
