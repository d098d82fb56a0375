//! faultline's checker: reads a saved run and decides whether the bank behaved.
//!
//! A run directory holds `history.jsonl` (what the clients and the nemesis did, see
//! [`history`]), `final.json` (what every replica held after healing, see
//! [`final_state`]) and `run.toml` (the parameters, see [`run_params`]). The checker
//! owns these formats, so the harness writes them with the types defined here.
//!
//! [`check_run`] streams the files and runs the checks (modules under [`checks`]):
//! well-formed, conservation, agreement, total order, replay, exactly-once and
//! liveness, plus the black-box linearizability search with
//! [`check_run_with`] when exec indices are not to be trusted. Each anomaly names
//! the history indices involved and says in a sentence what went wrong; what cannot be
//! decided is `unknown`, never a silent pass. Positions are unique per command (the
//! replica) unless final.json says `"positions": "shared_reads"` (etcd's revisions:
//! writes unique, reads and failed transfers sharing the position of the write they
//! observed; see [`final_state::Positions`]). [`report::write_report`] then writes
//! `results.json`, `report.html` and the charts. [`gen`] makes valid histories (and
//! plants anomalies in them) for tests and the benchmark.
//!
//! A sharded bank (run.toml with `[[shards]]`) is modelled by [`shards`] and checked
//! instead (by `run::sharded`) for atomicity, bank-wide conservation, per-shard agreement and strict serializability
//! across shards; its format is in docs/sharded.md (shown in [`shards`]).
//!
//! ```no_run
//! let results = checker::check_run("reports/run-1")?;
//! checker::report::write_report("reports/run-1".as_ref(), &results)?;
//! std::process::exit(results.exit_code());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bench;
pub mod checks;
pub mod final_state;
pub mod gen;
pub mod history;
mod load;
mod model;
mod ops;
mod records;
pub mod report;
pub mod results;
mod run;
pub mod run_params;
pub mod shards;
pub mod text;

pub use checks::{Anomaly, CheckResult, Validity};
pub use load::run_files::{CheckError, RunFiles};
pub use ops::HistoryStats;
pub use results::{FinalSummary, NodeSummary, Results};
pub use run::classic::{check_run, check_run_with, CheckOptions};
#[doc(hidden)]
pub use run::classic::{check_run_as, Judging};
pub use run::memory::Memory;
