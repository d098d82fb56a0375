//! Where a run's files are, and why a run could not be checked at all.
//!
//! Both paths (the classic `crate::run::classic` and the sharded `crate::run::sharded`) and
//! the checks that read files of their own (`checks::progress`) take these from here.

use crate::final_state::FinalError;
use crate::history::HistoryError;
use crate::run_params::RunParamsError;
use std::path::{Path, PathBuf};

/// The files of one run.
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// Where results and the report are written.
    pub dir: PathBuf,
    pub history: PathBuf,
    pub final_json: PathBuf,
    pub run_toml: PathBuf,
}

impl RunFiles {
    /// `path` is a run directory or its history.jsonl (then its siblings are used).
    pub fn locate(path: &Path) -> Result<RunFiles, CheckError> {
        let (dir, history) = if path.is_dir() {
            (path.to_path_buf(), path.join("history.jsonl"))
        } else {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            (dir.to_path_buf(), path.to_path_buf())
        };
        if !history.is_file() {
            return Err(CheckError::NoHistory(history));
        }
        Ok(RunFiles {
            final_json: dir.join("final.json"),
            run_toml: dir.join("run.toml"),
            dir,
            history,
        })
    }
}

/// Why a run could not be checked at all (as opposed to checked and found wanting).
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Final(#[from] FinalError),
    #[error(transparent)]
    RunParams(#[from] RunParamsError),
    #[error("{}: no such history file", .0.display())]
    NoHistory(PathBuf),
    #[error("internal error: {0}")]
    Internal(String),
}
