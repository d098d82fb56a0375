//! The run directory and `run.toml`: everything needed to read a run later and to replay it.
//!
//! Layout of `reports/<UTC time>-<seed>/`:
//!
//! ```text
//! run.toml          every parameter, the seed, the replica's version (read by replay)
//! cluster.toml      the cluster config the replicas run with (routes through the relay)
//! certs/            CA, one certificate per replica, the harness's client certificate
//! n1/ ... n5/       one data directory per replica
//! n1.log ...        one log file per replica (plus n1.stderr for what it printed)
//! schedule.json     the nemesis schedule generated from the seed
//! history.jsonl     the history, written as the run goes
//! final.json        what every replica held after healing
//! results.json, report.html, *.png   the checker's verdict and report
//! ```
//!
//! `reports/latest` is a symlink to the newest run, as in Jepsen's store. Every key of
//! run.toml, and every file of the directory: docs/run-toml.md.

use crate::params::{RunParams, ShardTable, TargetKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    #[error("cannot create run directory {path}: {cause}")]
    Create {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot write {path}: {cause}")]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("{path} is not a usable run.toml: {message}")]
    Parse { path: PathBuf, message: String },
}

/// The contents of `run.toml`. `accounts` and `initial_balance` sit at the top level because
/// the checker reads them there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The system under test, at the top level for tools that read run.toml.
    #[serde(default)]
    pub target: TargetKind,
    pub accounts: Vec<String>,
    pub initial_balance: i64,
    pub seed: u64,
    /// `campaign` or `scenario`.
    pub kind: String,
    /// UTC start time, RFC 3339.
    pub started_at: String,
    pub replica_bin: String,
    pub replica_version: String,
    pub harness_version: String,
    /// The run directory this run replays, if it is a replay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replays: Option<String>,
    pub params: RunParams,
    /// A sharded run's `[[shards]]` (top level, where the checker reads them); empty for a
    /// classic run.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardTable>,
}

impl RunInfo {
    pub fn write(&self, dir: &Path) -> Result<(), RunDirError> {
        let path = dir.join("run.toml");
        let text = toml::to_string_pretty(self).map_err(|e| RunDirError::Parse {
            path: path.clone(),
            message: e.to_string(),
        })?;
        std::fs::write(&path, text).map_err(|cause| RunDirError::Write { path, cause })
    }

    /// Reads `run.toml` from a run directory.
    pub fn load(dir: &Path) -> Result<RunInfo, RunDirError> {
        let path = dir.join("run.toml");
        let text = std::fs::read_to_string(&path).map_err(|source| RunDirError::Read {
            path: path.clone(),
            cause: source,
        })?;
        toml::from_str(&text).map_err(|e| RunDirError::Parse {
            path,
            message: e.to_string(),
        })
    }
}

/// `60s`, `500ms`, `2m`, `1h`, or a plain number of seconds (shared with `replica ctl`).
pub use replica::cli::parse_duration;

/// The UTC time now as `2026-11-23T11-25-03Z`-style text fit for a directory name, and as
/// RFC 3339.
pub fn utc_now() -> (String, String) {
    let now = time::OffsetDateTime::now_utc();
    let dir = format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let rfc = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| dir.clone());
    (dir, rfc)
}

/// Creates a fresh `out/<UTC time>-<seed>` directory (suffixed if it exists) and points
/// `out/latest` at it. Returns the directory and the RFC 3339 start time.
pub fn create(out: &Path, seed: u64) -> Result<(PathBuf, String), RunDirError> {
    std::fs::create_dir_all(out).map_err(|source| RunDirError::Create {
        path: out.to_path_buf(),
        cause: source,
    })?;
    let (stamp, rfc) = utc_now();
    let mut dir = out.join(format!("{stamp}-{seed}"));
    // Two runs of one seed in one second (campaigns of quick runs, replays): add a suffix.
    for k in 2..1000 {
        match std::fs::create_dir(&dir) {
            Ok(()) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                dir = out.join(format!("{stamp}-{seed}-{k}"));
            }
            Err(source) => {
                return Err(RunDirError::Create {
                    path: dir,
                    cause: source,
                })
            }
        }
    }
    point_latest(out, &dir);
    Ok((dir, rfc))
}

/// `out/latest` → the run directory (relative, so the store can be moved). Best effort.
fn point_latest(out: &Path, dir: &Path) {
    let link = out.join("latest");
    let target = dir
        .file_name()
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.to_path_buf());
    // Replace atomically: make a temporary link, rename it over the old one.
    let tmp = out.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    if std::os::unix::fs::symlink(&target, &tmp).is_ok() && std::fs::rename(&tmp, &link).is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
}

/// `replica --version`, or why it could not be had. Bounded: a binary that does not answer
/// within a few seconds is killed.
pub fn replica_version(bin: &Path) -> String {
    use std::io::Read;
    let mut command = std::process::Command::new(bin);
    command
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped());
    command.stderr(std::process::Stdio::null());
    // A supervised child, so even this short-lived one cannot outlive the harness.
    let mut child = match crate::os::process::Child::spawn(command) {
        Ok(child) => child,
        Err(e) => return format!("unknown ({e})"),
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        match child.try_wait() {
            Some(status) => break status,
            None if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            None => return "unknown (--version did not answer)".to_string(),
        }
    };
    let mut out = String::new();
    if let Some(mut stdout) = child.take_stdout() {
        let _ = stdout.read_to_string(&mut out);
    }
    if status.success() {
        out.trim().to_string()
    } else {
        format!("unknown (--version exited with {status})")
    }
}

/// Where the replica binary is when not given: next to the harness's own executable, or one
/// level up for test binaries in `target/<profile>/deps/`.
pub fn default_replica_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe.parent().map(Path::to_path_buf).unwrap_or_default();
    let beside = dir.join("replica");
    if beside.is_file() {
        return beside;
    }
    match dir.parent() {
        Some(up) if dir.file_name().is_some_and(|n| n == "deps") => up.join("replica"),
        _ => beside,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::ShardParams;

    #[test]
    fn run_toml_round_trips_with_accounts_at_the_top() {
        let dir = tempfile::tempdir().unwrap();
        let info = RunInfo {
            target: TargetKind::Etcd,
            accounts: vec!["A".into(), "B".into()],
            initial_balance: 10,
            seed: 42,
            kind: "campaign".into(),
            started_at: "2026-01-01T00:00:00Z".into(),
            replica_bin: "/x/replica".into(),
            replica_version: "replica 0.1.0".into(),
            harness_version: "0.1.0".into(),
            replays: None,
            params: RunParams {
                rate: Some(100.0),
                bug: Some("no-funds-check".into()),
                ..RunParams::default()
            },
            shards: Vec::new(),
        };
        info.write(dir.path()).unwrap();
        let text = std::fs::read_to_string(dir.path().join("run.toml")).unwrap();
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["accounts"].as_array().unwrap().len(), 2);
        assert_eq!(table["initial_balance"].as_integer(), Some(10));
        assert_eq!(
            table["params"]["nemesis"].as_array().unwrap()[0].as_str(),
            Some("kill")
        );
        assert_eq!(RunInfo::load(dir.path()).unwrap(), info);
        assert!(
            !text.contains("shards"),
            "a classic run.toml is unchanged: {text}"
        );
    }

    #[test]
    fn a_sharded_run_toml_has_the_checkers_shards_tables() {
        let dir = tempfile::tempdir().unwrap();
        let shape = ShardParams {
            shards: 2,
            replicas_per_shard: 3,
            cross_shard_share: 0.5,
            workload: None,
            lock_policy: replica::core::LockPolicy::default(),
            failpoints: None,
        };
        let accounts: Vec<String> = ["A", "B", "C", "D"].map(String::from).to_vec();
        let info = RunInfo {
            target: TargetKind::Faultline,
            accounts: accounts.clone(),
            initial_balance: 10,
            seed: 1,
            kind: "campaign".into(),
            started_at: "t".into(),
            replica_bin: "r".into(),
            replica_version: "v".into(),
            harness_version: "h".into(),
            replays: None,
            params: RunParams {
                nodes: shape.nodes(),
                shards: Some(shape),
                ..RunParams::default()
            },
            shards: shape.tables(&accounts).unwrap(),
        };
        info.write(dir.path()).unwrap();
        let path = dir.path().join("run.toml");
        let params = checker::run_params::RunParams::load(&path)
            .unwrap()
            .unwrap();
        let specs = checker::shards::shard_specs(&params, &path)
            .unwrap()
            .unwrap();
        assert_eq!(specs.len(), 2);
        assert_eq!(specs[0].accounts, ["A", "C"]);
        assert_eq!(specs[1].nodes, ["n4", "n5", "n6"]);
        assert_eq!(RunInfo::load(dir.path()).unwrap(), info);
    }

    #[test]
    fn run_dirs_are_fresh_and_latest_follows() {
        let out = tempfile::tempdir().unwrap();
        let (a, _) = create(out.path(), 7).unwrap();
        let (b, _) = create(out.path(), 7).unwrap();
        assert_ne!(a, b);
        assert!(a.file_name().unwrap().to_str().unwrap().ends_with("-7"));
        let latest = std::fs::canonicalize(out.path().join("latest")).unwrap();
        assert_eq!(latest, std::fs::canonicalize(&b).unwrap());
    }
}
