//! What every part of a run shares: its options ([`RunOptions`]), its error ([`RunError`]),
//! what it leaves behind in short ([`RunSummary`], `harness.json`) and the few constants and
//! helpers that the run loop, campaigns, replay, scenarios, the zoo and the simulator all use.
//! It imports no other part of [`crate::run`], so each of them can import it.

use crate::params::RunParams;
use crate::run::rundir::RunDirError;
use crate::targets::faultline::cluster::ClusterError;
use crate::targets::faultline::journal::JournalError;
use crate::targets::TargetError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every account starts with this much.
pub const INITIAL_BALANCE: i64 = 10;
/// Summary file the harness leaves in each run directory (read by the campaign index).
pub const SUMMARY_FILE: &str = "harness.json";

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot check the run: {0}")]
    Check(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Journal(#[from] JournalError),
    #[error(transparent)]
    Target(#[from] TargetError),
    /// `harness bench --baseline BIN` named a replica build this harness cannot drive.
    #[error("baseline replica {bin}: {message}")]
    Baseline { bin: PathBuf, message: String },
}

/// What a run needs besides its parameters.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub params: RunParams,
    pub seed: u64,
    /// The reports directory; the run gets its own directory inside.
    pub out: PathBuf,
    pub replica_bin: PathBuf,
    /// The etcd binary, for `--target etcd`.
    pub etcd_bin: PathBuf,
    pub progress: bool,
    /// Keep the data directories and certificates of a checked run as they are (see
    /// [`store`]: otherwise a valid run deletes them and a failing one packs them).
    pub keep_data: bool,
}

/// What a run left behind, in short (also written as `harness.json`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunSummary {
    pub dir: PathBuf,
    pub seed: u64,
    pub kind: String,
    pub faults: u32,
    pub invoked: u64,
    pub ok: u64,
    pub fail: u64,
    pub info: u64,
    /// `valid`, `invalid` or `unknown`.
    pub verdict: String,
    /// 0 valid, 1 invalid, 2 unknown.
    pub exit_code: i32,
    pub notes: Vec<String>,
    pub elapsed_s: f64,
    /// Why the run ended early (`interrupted`), if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The checker's outcome in one line (`invalid: exactly-once (2× executed twice);
    /// first: ...`), when the run was checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

impl RunSummary {
    /// What the terminal shows when a run ends: where, the verdict and the counts, then
    /// the cause in one line and the notes.
    pub fn outcome_lines(&self) -> String {
        use checker::text::count;
        let mut text = format!(
            "{}: {} (seed {}, {}, {}: {} ok, {} fail, {} info, {:.1} s)\n",
            self.dir.display(),
            self.verdict,
            self.seed,
            count(self.faults, "fault"),
            count(self.invoked, "operation"),
            self.ok,
            self.fail,
            self.info,
            self.elapsed_s
        );
        if let Some(cause) = &self.cause {
            text.push_str(&format!("  {cause}\n"));
        }
        for note in &self.notes {
            text.push_str(&format!("  note: {note}\n"));
        }
        text
    }
}

/// Accounts of the bank the course's scenarios assume (A to J).
pub const DEFAULT_ACCOUNTS: u32 = 10;

/// A duration in whole milliseconds, for run.toml.
pub fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub fn verdict_word(exit_code: i32) -> &'static str {
    match exit_code {
        0 => "valid",
        1 => "invalid",
        _ => "unknown",
    }
}

pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), RunError> {
    let text = serde_json::to_string_pretty(value).map_err(|e| RunError::Write {
        path: path.to_path_buf(),
        cause: std::io::Error::other(e),
    })?;
    std::fs::write(path, text + "\n").map_err(|source| RunError::Write {
        path: path.to_path_buf(),
        cause: source,
    })
}
